"""Chunking on several cores (LocalEngine's process pool) gives the records of in-process chunking."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ragkit.chunkers.recursive import RecursiveChunker
from ragkit.indexing import ChunkBatch, IndexStages, LocalEngine
from ragkit.pipeline import Pipeline
from ragkit.types import Document
from ragkit.usage import UsageBook

CHROMA = Path(__file__).resolve().parents[2] / "datasets" / "chroma_chunking_eval"


def _documents() -> list[Document]:
    root = CHROMA if CHROMA.is_dir() else Path(os.environ.get("RAGKIT_DATA") or "-") / "chroma_chunking_eval"
    if not root.is_dir():
        pytest.skip("the Chroma chunking corpus is not available")
    docs = []
    for path in sorted(root.glob("*.md")):
        text = path.read_text(encoding="utf-8")
        docs += [Document.from_text(text[i:i + 20_000], metadata={"source_id": f"{path.name}:{i}"})
                 for i in range(0, min(len(text), 200_000), 20_000)]
    return docs


def _chunks(engine: LocalEngine, docs: list[Document]) -> list[dict]:
    stages = IndexStages(chunker=RecursiveChunker(max_tokens=128), retriever=None, chunker_type="recursive")
    batch = ChunkBatch(stages, UsageBook())
    out = []
    seen = []
    for done, results in engine.chunk_documents(docs, batch):
        seen += [d.id for d in done]
        out += [c.to_dict() for chunks in results for c in chunks]
    assert seen == [d.id for d in docs]  # every document once, in order
    return out


def test_process_pool_chunking_equals_in_process_chunking_on_real_documents():
    docs = _documents()
    parallel = LocalEngine(workers=2, parallel_min_chars=0, batch_documents=4)
    assert parallel.processes_for(docs, ChunkBatch(IndexStages(RecursiveChunker(), None), UsageBook())) == 2
    serial = _chunks(LocalEngine(workers=1), docs)
    assert len(serial) > 100
    assert _chunks(parallel, docs) == serial


def test_small_corpora_and_model_chunkers_stay_in_process():
    docs = [Document.from_text("a short document")]
    batch = ChunkBatch(IndexStages(RecursiveChunker(), None), UsageBook())
    assert LocalEngine(workers=4).processes_for(docs, batch) == 1  # below parallel_min_chars
    assert LocalEngine(workers=4, parallel_min_chars=0).processes_for(docs, lambda ds: [[] for _ in ds]) == 1
    with pytest.raises(ValueError, match="workers"):
        LocalEngine(workers=0)


def test_pipeline_index_with_two_chunking_processes_equals_one(tmp_path):
    docs = _documents()[:12]

    def index(workers: int):
        pipe = Pipeline.from_config({
            "backends": {"llm": {"default": {"type": "fake"}}, "embeddings": {"default": {"type": "fake"}}},
            "cache": {"mode": "off"},
            "engine": {"type": "local", "workers": workers, "parallel_min_chars": 0},
            "index": {"chunker": {"type": "recursive", "max_tokens": 128}, "retriever": {"type": "hybrid"},
                      "store": str(tmp_path / f"w{workers}")}})
        pipe.index(docs)
        return [c.id for c in pipe.retriever.chunks_], pipe.retrieve("inflation and interest rates")

    one, two = index(1), index(2)
    assert one[0] == two[0]
    assert [s.chunk.id for s in one[1]] == [s.chunk.id for s in two[1]]
