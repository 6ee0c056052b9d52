"""The index store: reuse without work, incremental updates, resume, verification, tamper detection."""

from __future__ import annotations

import json

import numpy as np
import pytest
from store_helpers import CountingLineChunker, corpus, make_pipeline, open_existing_index, run_index_phase

from ragkit.errors import IndexStoreError, StageError
from ragkit.paths import indexes_dir
from ragkit.store.store import CURRENT, IndexStore


def total_embedding_calls(report) -> int:
    return sum(u.embedding_calls for u in report.usage.values())


def test_reindex_of_unchanged_corpus_does_no_work(registry, tmp_path):
    docs = corpus()
    first = run_index_phase(make_pipeline(registry, tmp_path / "s"), docs)
    assert (first.reused, first.documents_processed, first.chunks) == (False, 6, 12)
    assert total_embedding_calls(first) == 1 and CountingLineChunker.calls == 6
    CountingLineChunker.calls = 0
    pipe = make_pipeline(registry, tmp_path / "s")
    second = run_index_phase(pipe, docs)
    assert second.reused and second.chunks == 12 and second.documents_processed == 0
    assert CountingLineChunker.calls == 0, "an unchanged corpus must not be chunked again"
    assert total_embedding_calls(second) == 0 and pipe.run_usage().embedding_calls == 0
    hits = pipe.retrieve("topic1", k=3)
    assert all("topic1" in h.chunk.text for h in hits[:2])  # docs 1 and 4; hybrid fills k with dense neighbours


def test_changed_corpus_chunks_only_changed_documents(registry, tmp_path):
    docs = corpus()
    run_index_phase(make_pipeline(registry, tmp_path / "s", cache="off"), docs)
    CountingLineChunker.calls = 0
    changed = docs[:2] + [docs[2].__class__.from_text("document 2 rewritten\nnow about zebras\n",
                                                      metadata=dict(docs[2].metadata))] + docs[4:]
    changed.append(docs[0].__class__.from_text("a new document\nabout giraffes\n", metadata={"source_id": "new.md"}))
    pipe = make_pipeline(registry, tmp_path / "s", cache="off")
    report = run_index_phase(pipe, changed)  # doc 2 changed, doc 3 removed, one added
    assert (report.documents, report.documents_processed, report.documents_removed) == (6, 2, 2)
    assert CountingLineChunker.calls == 2
    texts = [c.text for c in pipe.retriever.chunks_]
    assert "now about zebras" in texts and "about giraffes" in texts
    assert not any(t.startswith("document 3") for t in texts) and not any(t.startswith("document 2 first") for t in texts)
    assert pipe.retrieve("zebras", k=1)[0].chunk.metadata["source_id"] == "doc2.md"
    reopened = make_pipeline(registry, tmp_path / "s", cache="off")
    assert [c.id for c in open_existing_index(reopened).chunks_] == [c.id for c in pipe.retriever.chunks_]


def test_metadata_change_rechunks_that_document(registry, tmp_path):
    docs = corpus(3)
    run_index_phase(make_pipeline(registry, tmp_path / "s", cache="off"), docs)
    CountingLineChunker.calls = 0
    edited = [docs[0], docs[1], docs[2].__class__(docs[2].id, docs[2].text, {**docs[2].metadata, "year": 1999})]
    pipe = make_pipeline(registry, tmp_path / "s", cache="off")
    report = run_index_phase(pipe, edited)
    assert report.documents_processed == 1 and CountingLineChunker.calls == 1
    assert pipe.retrieve("document", k=10, filter={"year": 1999})


def test_interrupted_run_resumes_from_the_journal(registry, tmp_path):
    docs = [d for i in range(4) for d in corpus(6, tag=f"t{i}")][:20]
    CountingLineChunker.fail_at = 18  # the first batch of 16 documents is journalled, then a crash
    with pytest.raises(StageError, match="index.chunker .*simulated crash"):
        run_index_phase(make_pipeline(registry, tmp_path / "s", cache="off"), docs)
    store = IndexStore(tmp_path / "s")
    assert not store.exists()
    journals = list((tmp_path / "s" / "journal").glob("*.jsonl"))
    assert len(journals) == 1 and len(journals[0].read_text().splitlines()) == 16
    CountingLineChunker.fail_at, CountingLineChunker.calls = None, 0
    report = run_index_phase(make_pipeline(registry, tmp_path / "s", cache="off"), docs)
    assert CountingLineChunker.calls == 4 and report.documents_processed == 4 and report.chunks == 40
    assert not (tmp_path / "s" / "journal").exists(), "a committed run clears its journal"


def test_torn_journal_line_is_ignored(registry, tmp_path):
    store = IndexStore(tmp_path / "s")
    journal = store.journal("h")
    journal.append([("fp1", [])])
    with open(journal.path, "a", encoding="utf-8") as handle:
        handle.write('{"fingerprint": "fp2", "chun')  # killed mid-write
    journal.append([("fp3", [])])
    assert sorted(journal.load()) == ["fp1", "fp3"]


def test_chunk_cache_is_shared_between_indexes(registry, tmp_path):
    docs = corpus()
    run_index_phase(make_pipeline(registry, tmp_path / "a", retriever="hybrid"), docs)
    CountingLineChunker.calls = 0
    report = run_index_phase(make_pipeline(registry, tmp_path / "b", retriever="bm25"), docs)
    assert not report.reused and report.documents_processed == 0 and CountingLineChunker.calls == 0
    assert report.chunks == 12


def test_default_location_and_memory_store(registry, tmp_path):
    pipe = make_pipeline(registry, None)
    report = run_index_phase(pipe, corpus())
    assert report.store == str(indexes_dir() / pipe.index_hash())
    assert IndexStore(report.store).verify(pipe.index_hash())["counts"] == {"documents": 6, "chunks": 12}
    memory = make_pipeline(registry, ":memory:")
    report = run_index_phase(memory, corpus())
    assert report.store is None and memory.retrieve("topic2", k=2)
    with pytest.raises(IndexStoreError, match="':memory:'"):
        open_existing_index(make_pipeline(registry, ":memory:"))


def test_missing_index_message(registry, tmp_path):
    with pytest.raises(IndexStoreError, match=r"no index at .* Build it first with `ragkit index CONFIG`"):
        open_existing_index(make_pipeline(registry, tmp_path / "nothing"))


def _current(path):
    return IndexStore(path).current_dir()


def test_checksum_tamper_is_detected(registry, tmp_path):
    docs = corpus()
    run_index_phase(make_pipeline(registry, tmp_path / "s"), docs)
    vectors = _current(tmp_path / "s") / "retriever" / "dense" / "vectors.npy"
    data = bytearray(vectors.read_bytes())
    data[-5] ^= 0xFF  # flip bits in one float
    vectors.write_bytes(bytes(data))
    with pytest.raises(IndexStoreError, match=r"file retriever/dense/vectors.npy does not match its checksum"):
        run_index_phase(make_pipeline(registry, tmp_path / "s"), docs)
    with pytest.raises(IndexStoreError, match="--rebuild"):
        open_existing_index(make_pipeline(registry, tmp_path / "s"))
    chunks_file = _current(tmp_path / "s") / "retriever" / "chunks.jsonl"
    report = run_index_phase(make_pipeline(registry, tmp_path / "s"), docs, rebuild=True)
    assert not report.reused and report.chunks == 12
    assert not chunks_file.exists(), "the damaged version is replaced"
    assert open_existing_index(make_pipeline(registry, tmp_path / "s")).retrieve("topic0", k=2)


def test_deleted_file_and_edited_manifest_are_detected(registry, tmp_path):
    docs = corpus()
    run_index_phase(make_pipeline(registry, tmp_path / "s"), docs)
    current = _current(tmp_path / "s")
    (current / "retriever" / "bm25" / "bm25_terms.npy").unlink()
    with pytest.raises(IndexStoreError, match=r"file retriever/bm25/bm25_terms.npy listed in manifest.json is missing"):
        open_existing_index(make_pipeline(registry, tmp_path / "s"))
    run_index_phase(make_pipeline(registry, tmp_path / "s"), docs, rebuild=True)
    manifest_path = _current(tmp_path / "s") / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["index_config"]["index"]["chunker"]["max_tokens"] = 999
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(IndexStoreError, match="the manifest was modified"):
        open_existing_index(make_pipeline(registry, tmp_path / "s"))


def test_config_hash_mismatch_needs_rebuild(registry, tmp_path):
    docs = corpus()
    run_index_phase(make_pipeline(registry, tmp_path / "s", max_tokens=64), docs)
    other = make_pipeline(registry, tmp_path / "s", max_tokens=32)
    with pytest.raises(IndexStoreError, match=r"built from a different index configuration \(stored hash \w+, this config \w+\)"):
        run_index_phase(other, docs)
    with pytest.raises(IndexStoreError, match="different index configuration"):
        open_existing_index(other)
    report = run_index_phase(other, docs, rebuild=True)
    assert not report.reused
    assert IndexStore(tmp_path / "s").verify(other.index_hash())


def test_store_layout_and_no_pickles(registry, tmp_path):
    pipe = make_pipeline(registry, tmp_path / "s")
    run_index_phase(pipe, corpus())
    root = tmp_path / "s"
    assert json.loads((root / CURRENT).read_text())["version"] == _current(root).name
    manifest = json.loads((_current(root) / "manifest.json").read_text())
    assert manifest["index_hash"] == pipe.index_hash() and manifest["index_config"] == pipe.index_config()
    assert manifest["ragkit_version"] and manifest["counts"] == {"documents": 6, "chunks": 12}
    files = {p.relative_to(_current(root)).as_posix() for p in _current(root).rglob("*") if p.is_file()}
    assert files - {"manifest.json"} == set(manifest["files"])
    for path in _current(root).rglob("*.npy"):
        np.load(path, allow_pickle=False)
    # re-committing replaces the version and removes the old one
    run_index_phase(make_pipeline(registry, tmp_path / "s"), corpus(), rebuild=True)
    assert len([p for p in root.iterdir() if p.name.startswith("v")]) == 1


def test_document_metadata_is_filterable(registry, tmp_path):
    pipe = make_pipeline(registry, tmp_path / "s")
    run_index_phase(pipe, corpus())
    hits = pipe.retrieve("document line", k=3, filter={"source_id": "doc4.md"})
    assert len(hits) == 2 and {h.chunk.metadata["year"] for h in hits} == {2024}
    assert all("headings" not in h.chunk.metadata for h in hits)


PLUGIN = '''
import re
from ragkit.chunkers.base import Chunker
from ragkit.types import Chunk


class PluginChunker(Chunker):
    def __init__(self, *, max_tokens: int = 64) -> None:
        self.max_tokens = max_tokens

    def _chunk(self, doc):
        return [Chunk.from_span(doc, m.start(), m.end(), len(m.group().split()))
                for m in re.finditer(PATTERN, doc.text)]
'''


def plugin_registry(tmp_path, pattern: str, mtime: float):
    import importlib.util
    import os
    import sys

    from ragkit.registry import Registry

    path = tmp_path / "my_plugin.py"
    path.write_text(f"PATTERN = {pattern!r}\n" + PLUGIN, encoding="utf-8")
    os.utime(path, (mtime, mtime))
    spec = importlib.util.spec_from_file_location(f"my_plugin_{int(mtime)}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    registry = Registry()
    registry.add("chunker", "lines", module.PluginChunker)
    return registry


def test_editing_a_plugin_stage_rechunks_instead_of_serving_stale_records(tmp_path):
    docs = corpus()
    v1 = make_pipeline(plugin_registry(tmp_path, r"[^\n]+", 1_000_000), tmp_path / "s")
    first = run_index_phase(v1, docs)
    assert first.chunks == 12 and "chunker:lines" in v1.index_config()["code"]
    same = make_pipeline(plugin_registry(tmp_path, r"[^\n]+", 1_000_000), tmp_path / "s")
    assert same.index_hash() == v1.index_hash() and run_index_phase(same, docs).reused
    before = (v1.index_hash(), v1.chunking_hash())   # the fingerprint reads the file as it is on disk now
    registry = plugin_registry(tmp_path, r"[^\s]+", 2_000_000)              # one chunk per word now
    v2 = make_pipeline(registry, tmp_path / "s")
    assert v2.index_hash() != before[0] and v2.chunking_hash() != before[1]
    with pytest.raises(IndexStoreError, match="source of a plugin stage"):  # the explicit store refuses
        run_index_phase(v2, docs)
    second = run_index_phase(make_pipeline(registry, tmp_path / "s2"), docs)
    assert not second.reused and second.documents_processed == 6 and second.chunks > 12


def test_builtin_stages_add_no_code_fingerprint():
    from ragkit.pipeline import Pipeline

    pipe = Pipeline.from_config({"backends": {"llm": {"default": {"type": "fake"}},
                                              "embeddings": {"default": {"type": "fake"}}},
                                 "index": {"chunker": {"type": "recursive"}, "retriever": {"type": "bm25"}}})
    assert "code" not in pipe.index_config()


def test_a_folder_ragkit_did_not_create_is_never_written_or_cleaned(registry, tmp_path):
    """Issue 13 (1): index.store pointing at a user's folder used to delete its journal/ and vNNNNNN-xxxxxxxx
    entries; now the folder is refused, with or without --rebuild, and nothing in it changes."""
    user = tmp_path / "d"
    (user / "journal").mkdir(parents=True)
    (user / "journal" / "2024.txt").write_text("x")
    (user / "v000001-abcdef12").mkdir()
    (user / "v000001-abcdef12" / "keep.txt").write_text("mine")
    before = sorted(p.relative_to(user).as_posix() for p in user.rglob("*"))
    for rebuild in (False, True):
        with pytest.raises(IndexStoreError, match=r"non-empty folder that ragkit did not create .*\.ragkit-store"):
            run_index_phase(make_pipeline(registry, user), corpus(), rebuild=rebuild)
    assert sorted(p.relative_to(user).as_posix() for p in user.rglob("*")) == before
    assert (user / "journal" / "2024.txt").read_text() == "x"


def test_new_folders_are_marked_and_pre_marker_stores_are_adopted(registry, tmp_path):
    from ragkit.store.store import MARKER

    run_index_phase(make_pipeline(registry, tmp_path / "new"), corpus())
    marker = json.loads((tmp_path / "new" / MARKER).read_text())
    assert marker["format"] == "ragkit-index" and marker["created_by"] == "ragkit"
    (tmp_path / "new" / MARKER).unlink()  # a store written before markers existed
    report = run_index_phase(make_pipeline(registry, tmp_path / "new"), corpus(), rebuild=True)
    assert report.chunks == 12 and (tmp_path / "new" / MARKER).is_file()


def test_two_projects_with_equal_settings_never_answer_from_each_other(tmp_path, monkeypatch):
    """Issue 13 (2): the default store was keyed by the index settings only, so project B's index replaced
    project A's and A's queries cited B's files. Now the corpus is part of the key and verified on open."""
    from ragkit import Pipeline

    config = {"backends": {"llm": {"default": {"type": "fake"}}, "embeddings": {"default": {"type": "fake"}}},
              "corpus": {"paths": ["docs/*.md"]}, "index": {"retriever": {"type": "bm25"}}}
    for project, topic in (("a", "apples"), ("b", "bicycles")):
        (tmp_path / project / "docs").mkdir(parents=True)
        (tmp_path / project / "docs" / "note.md").write_text(f"# Notes\n\nThis project is about {topic}.\n")
    monkeypatch.chdir(tmp_path / "a")
    Pipeline.from_config(config).index()
    monkeypatch.chdir(tmp_path / "b")
    Pipeline.from_config(config).index()
    monkeypatch.chdir(tmp_path / "a")
    hit = Pipeline.from_config(config).retrieve("what is this project about", k=1)[0]
    assert "apples" in hit.chunk.text
    shared = {**config, "index": {**config["index"], "store": str(tmp_path / "shared")}}
    Pipeline.from_config(shared).index()  # project a's corpus into an explicit, shared store
    monkeypatch.chdir(tmp_path / "b")
    with pytest.raises(IndexStoreError, match="was built from another corpus"):
        Pipeline.from_config(shared).retrieve("what is this project about")
