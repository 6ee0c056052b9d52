"""Readers racing writers (issue 13.8) and leftovers of a killed writer cleaned at open (issue 13.11)."""

from __future__ import annotations

import subprocess
import sys
import time

from store_helpers import corpus, make_pipeline, open_existing_index, run_index_phase

from ragkit.retrievers.bm25 import BM25Retriever
from ragkit.store.store import CURRENT, IndexStore
from ragkit.types import Chunk, Document, sha256_hex

CONFIG = {"index": "race-test"}
HASH = sha256_hex(CONFIG)[:16]


def commit(store: IndexStore, tag: str, n: int = 20) -> None:
    docs = [Document.from_text(f"document {i} {tag} words w{i % 7}") for i in range(n)]
    retriever = BM25Retriever().index([Chunk.from_span(d, 0, len(d.text), 4) for d in docs])
    store.commit(retriever, [{"id": d.id, "fingerprint": d.id, "chunks": 1} for d in docs], CONFIG, HASH)


def versions(store: IndexStore) -> list[str]:
    return sorted(p.name for p in store.path.iterdir() if p.name.startswith("v"))


def test_a_commit_never_deletes_the_version_a_reader_is_loading(tmp_path):
    """The commit used to delete the version a reader had just resolved; the reader then failed and was told to rebuild."""
    store = IndexStore(tmp_path / "s")
    commit(store, "one")
    reader = IndexStore(store.path)
    with reader.reading() as pinned:
        commit(IndexStore(store.path), "two")  # another process commits while we load
        assert pinned in versions(store) and len(versions(store)) == 2
        assert reader.verify(HASH)["counts"]["chunks"] == 20
        chunks = reader.read_chunks()
        assert all(" one " in c.text for c in chunks)  # one consistent version, not a mix
    assert IndexStore(store.path).current_version() != pinned
    commit(store, "three")  # no reader now: superseded versions go
    assert versions(store) == [IndexStore(store.path).current_version()]


def test_readers_racing_a_writing_process_always_load_a_complete_version(registry, tmp_path):
    """A child process commits in a loop while this one opens the index repeatedly: no open may fail."""
    path = tmp_path / "s"
    commit(IndexStore(path), "seed")
    child = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; sys.path.insert(0, sys.argv[2])\n"
        "from test_readers import commit\nfrom ragkit.store.store import IndexStore\n"
        "end = time.time() + float(sys.argv[3])\ni = 0\n"
        "while time.time() < end:\n    commit(IndexStore(sys.argv[1]), f't{i}', n=200); i += 1\n"
        "print(i)\n"), str(path), str(__import__("pathlib").Path(__file__).parent), "6"],
        stdout=subprocess.PIPE, text=True)
    opens = failures = 0
    try:
        while child.poll() is None:
            reader = IndexStore(path)
            try:
                with reader.reading():
                    reader.verify(HASH)
                    BM25Retriever().load(reader.retriever_dir())
            except Exception:  # noqa: BLE001 - counted, asserted below
                failures += 1
            opens += 1
    finally:
        out, _ = child.communicate(timeout=60)
    assert int(out.strip()) >= 2, "the writer committed too rarely for a race"
    assert opens >= 20 and failures == 0


def test_open_cleans_a_killed_writers_leftovers_and_reports_them(registry, tmp_path):
    store_dir = tmp_path / "store"
    pipeline = make_pipeline(registry, store_dir, retriever="bm25")
    run_index_phase(pipeline, corpus(tag="leftovers"))
    current = IndexStore(store_dir).current_version()
    (store_dir / ".v000009-deadbeef.tmp" / "retriever").mkdir(parents=True)  # killed mid-write
    (store_dir / "v000008-0badf00d").mkdir()  # an orphan version (killed before clean-up)
    (store_dir / f".{CURRENT}.tmp-123").write_text("{")
    (store_dir / "journal").mkdir()
    (store_dir / "journal" / "0123456789abcdef.jsonl").write_text("{}\n" * 1000)  # other chunk settings
    report = make_pipeline(registry, store_dir, retriever="bm25").open_index()
    assert sorted(report.cleaned) == sorted([".v000009-deadbeef.tmp", "v000008-0badf00d", f".{CURRENT}.tmp-123",
                                            "journal/0123456789abcdef.jsonl"])
    assert versions(IndexStore(store_dir)) == [current]
    assert not (store_dir / "journal").exists()
    from ragkit.indexing import describe

    assert "removed leftovers" in describe(report)
    assert open_existing_index(make_pipeline(registry, store_dir, retriever="bm25")).chunks_


def test_open_never_cleans_while_a_writer_holds_the_lock(registry, tmp_path):
    from ragkit.store.atomic import exclusive_lock

    store_dir = tmp_path / "store"
    run_index_phase(make_pipeline(registry, store_dir, retriever="bm25"), corpus(tag="writer-lock"))
    (store_dir / ".v000009-deadbeef.tmp").mkdir()
    with exclusive_lock(store_dir / ".lock"):
        assert IndexStore(store_dir).clean_leftovers() == []
    assert (store_dir / ".v000009-deadbeef.tmp").is_dir()
    time.sleep(0)
