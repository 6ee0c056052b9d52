"""A write killed midway (SIGKILL from outside, at random points and at chosen ones) never breaks the store.

A child process commits index versions in a loop; the parent kills it, then checks that the store
verifies (checksums, hash) and loads, holding one complete committed version.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ragkit.retrievers.hybrid import HybridRetriever
from ragkit.store.store import IndexStore
from ragkit.testing.fakes import FakeEmbedder
from ragkit.types import Chunk, Document, sha256_hex

CONFIG = {"index": "kill-test"}
HASH = sha256_hex(CONFIG)[:16]
N_CHUNKS = 400

CHILD = r'''
import itertools, sys, time
import ragkit.store.store as st
from ragkit.retrievers.hybrid import HybridRetriever
from ragkit.testing.fakes import FakeEmbedder
from ragkit.types import Chunk, Document

path, index_hash, n, hook = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
docs = [Document.from_text(f"child document {i} words w{i % 13} v{i % 7}") for i in range(n)]
chunks = [Chunk.from_span(d, 0, len(d.text), 5) for d in docs]
retriever = HybridRetriever(embedder=FakeEmbedder(dimension=64, mode="hash")).index(chunks)
store = st.IndexStore(path)

def pause(where):
    print(f"AT {where}", flush=True)
    time.sleep(60)  # the parent kills us here

if hook == "save":  # inside retriever.save, after chunks.jsonl is written
    import ragkit.retrievers.dense as dense
    original = dense.atomic_write_npy
    def slow(p, a, **kw):
        original(p, a, **kw)
        pause("save")
    dense.atomic_write_npy = slow
elif hook == "checksum":  # files written, manifest not yet
    original_sha = st.sha256_file
    def slow_sha(p):
        pause("checksum")
    st.sha256_file = slow_sha
elif hook == "pointer":  # new version renamed into place, CURRENT not yet replaced
    original_json = st.atomic_write_json
    def slow_json(p, obj, **kw):
        if str(p).endswith("CURRENT"):
            pause("pointer")
        return original_json(p, obj, **kw)
    st.atomic_write_json = slow_json

print("READY", flush=True)
for generation in itertools.count(1):
    records = [{"id": f"gen{generation}", "fingerprint": f"g{generation}", "chunks": len(chunks)}]
    store.commit(retriever, records, {"index": "kill-test"}, index_hash, extra={"generation": generation})
'''


def baseline(path: Path) -> HybridRetriever:
    docs = [Document.from_text(f"parent document {i} words w{i % 11}") for i in range(50)]
    chunks = [Chunk.from_span(d, 0, len(d.text), 5) for d in docs]
    retriever = HybridRetriever(embedder=FakeEmbedder(dimension=64, mode="hash")).index(chunks)
    IndexStore(path).commit(retriever, [{"id": "gen0", "fingerprint": "g0", "chunks": 50}], CONFIG, HASH,
                            extra={"generation": 0})
    return retriever


def check_loadable(path: Path) -> int:
    """The store verifies and loads; returns the generation it holds."""
    store = IndexStore(path)
    manifest = store.verify(HASH)  # every checksum and the hash
    loaded = HybridRetriever(embedder=FakeEmbedder(dimension=64, mode="hash")).load(store.retriever_dir())
    expected = 50 if manifest["generation"] == 0 else N_CHUNKS
    assert len(loaded.chunks_) == expected == manifest["counts"]["chunks"]
    assert len(loaded.retrieve("document words", k=5)) == 5
    return manifest["generation"]


def run_child(script: Path, store: Path, hook: str, kill_after: float | None) -> str:
    child = subprocess.Popen([sys.executable, str(script), str(store), HASH, str(N_CHUNKS), hook],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        marker = "READY" if hook == "none" else f"AT {hook}"
        deadline = time.monotonic() + 120
        while True:
            line = child.stdout.readline()
            if not line:
                raise AssertionError(f"child exited early: {child.stderr.read()[-2000:]}")
            if line.strip() == marker:
                break
            if time.monotonic() > deadline:
                raise AssertionError("child never reached its kill point")
        if kill_after:
            time.sleep(kill_after)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=30)
        child.stdout.close()
        child.stderr.close()
    return marker


@pytest.fixture
def child_script(tmp_path: Path) -> Path:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    return script


@pytest.mark.parametrize("hook", ["save", "checksum", "pointer"])
def test_kill_at_chosen_points_keeps_previous_index(tmp_path, child_script, hook):
    store = tmp_path / "store"
    baseline(store)
    run_child(child_script, store, hook, kill_after=None)
    assert check_loadable(store) == 0, "the write never finished, so the previous index must be current"
    leftovers = [p.name for p in store.iterdir() if p.name.endswith(".tmp") or p.name.startswith("v")]
    assert len(leftovers) >= 2, "the killed write left partial state behind (and it was ignored)"
    # the next commit cleans up and works
    baseline(store)
    assert check_loadable(store) == 0
    assert [p.name for p in store.iterdir() if p.name.endswith(".tmp")] == []
    assert len([p for p in store.iterdir() if p.name.startswith("v")]) == 1


def test_kill_at_random_points(tmp_path, child_script):
    rng = random.Random(20240917)
    store = tmp_path / "store"
    baseline(store)
    generations, mid_write = [], 0
    for _ in range(4):
        run_child(child_script, store, "none", kill_after=rng.uniform(0.05, 1.2))
        mid_write += any(p.name.endswith(".tmp") for p in store.iterdir())
        generations.append(check_loadable(store))
    assert max(generations) >= 1, "the child committed at least once before a kill"
    print(f"kills that interrupted a write: {mid_write} of 4; generations held: {generations}")
