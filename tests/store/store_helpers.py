"""Helpers for index-store tests: a counting chunker, a small corpus, pipelines over fake backends."""

from __future__ import annotations

import re
from typing import ClassVar

from ragkit.chunkers.base import Chunker
from ragkit.pipeline import Pipeline
from ragkit.types import Chunk, Document


class CountingLineChunker(Chunker):
    """One chunk per non-empty line; counts calls and can be told to fail (to simulate a crash)."""

    calls: ClassVar[int] = 0
    fail_at: ClassVar[int | None] = None

    def __init__(self, *, max_tokens: int = 64) -> None:
        self.max_tokens = max_tokens

    def _chunk(self, doc: Document) -> list[Chunk]:
        type(self).calls += 1
        if type(self).fail_at is not None and type(self).calls >= type(self).fail_at:
            raise RuntimeError(f"simulated crash on chunker call {type(self).calls}")
        return [Chunk.from_span(doc, m.start(), m.end(), len(m.group().split()))
                for m in re.finditer(r"[^\n]+", doc.text)]


def corpus(n: int = 6, tag: str = "") -> list[Document]:
    return [Document.from_text(f"document {i} first line {tag}\nsecond line about topic{i % 3} {tag}\n",
                               metadata={"source_id": f"doc{i}.md", "year": 2020 + i})
            for i in range(n)]


def make_pipeline(registry, store, *, retriever="hybrid", cache="read_write", max_tokens=64) -> Pipeline:
    return Pipeline.from_config({
        "backends": {"llm": {"default": {"type": "fake"}}, "embeddings": {"default": {"type": "fake"}}},
        "cache": {"mode": cache},
        "index": {"store": None if store is None else str(store), "chunker": {"type": "lines", "max_tokens": max_tokens},
                  "retriever": {"type": retriever}},
        "query": {"selector": {"type": "top_k", "k": 3}},
    }, registry=registry)


def run_index_phase(pipeline, docs, rebuild: bool = False):
    """The pipeline's index phase on loaded documents (returns the IndexReport)."""
    return pipeline.index_documents(docs, rebuild=rebuild)


def open_existing_index(pipeline):
    """Open the pipeline's persisted index and return its retriever."""
    pipeline.open_index()
    return pipeline.retriever_
