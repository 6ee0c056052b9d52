"""A failed LLM enrichment is never cached as a result (issue 13.5).

It used to be stored as empty metadata in the chunk cache and the journal, so every later run (even
``--rebuild``) reused it silently. Now failed chunks are tagged ``metadata["enrichment_failed"]``,
the run reports how many chunks lack metadata, and the next run (plain or ``--rebuild``) retries them.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import ClassVar

import pytest

from ragkit.indexing import describe
from ragkit.llm.base import Completion, GenerationRequest
from ragkit.pipeline import Pipeline
from ragkit.registry import Registry
from ragkit.testing import FakeLLM
from ragkit.types import Document


class FlakyLLM(FakeLLM):
    """The shipped fake, answering garbage while ``broken`` is set (a server having a bad day)."""

    broken: ClassVar[bool] = True

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        if type(self).broken:
            return [Completion("<html>oops</html>", 3, 3, "stop") for _ in requests]
        return super().generate(requests)


@pytest.fixture
def registry() -> Registry:
    FlakyLLM.broken = True
    reg = Registry()
    reg.add("llm", "flaky", FlakyLLM)
    return reg


def pipeline(registry: Registry, store) -> Pipeline:
    return Pipeline.from_config({
        "backends": {"llm": {"default": {"type": "flaky"}}, "embeddings": {"default": {"type": "fake"}}},
        "index": {"store": str(store), "chunker": {"type": "paragraph", "max_tokens": 32},
                  "enrichers": [{"type": "llm_metadata", "profile": "compact", "max_retries": 0}],
                  "retriever": {"type": "bm25"}},
    }, registry=registry)


def docs(tag: str) -> list[Document]:
    return [Document.from_text(f"Paragraph {i} about oil changes ({tag}).\n\nSecond paragraph {i} about filters.",
                               metadata={"source_id": f"d{i}.md"}) for i in range(3)]


def run(registry, store, rebuild=False):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pipeline(registry, store).index_documents(docs(store.parent.name), rebuild=rebuild)


@pytest.mark.parametrize("rebuild", [False, True])
def test_failed_enrichment_is_reported_not_cached_and_retried(registry, tmp_path, rebuild):
    first = run(registry, tmp_path / "s")
    assert first.chunks == 3 and first.chunks_without_metadata == 3
    assert "3 chunk(s) lack metadata" in describe(first)
    chunks = pipeline(registry, tmp_path / "s").retrieve("oil", k=3)
    assert all(h.chunk.metadata["enrichment_failed"] == ["llm_metadata"] for h in chunks)  # kept, marked, filterable
    FlakyLLM.broken = False  # the server recovers
    second = run(registry, tmp_path / "s", rebuild=rebuild)
    assert second.chunks == 3 and second.chunks_without_metadata == 0 and not second.reused
    assert second.documents_processed == 3, "failed results must not come back from the journal or the chunk cache"
    third = run(registry, tmp_path / "s")
    assert third.reused and third.chunks_without_metadata == 0
    hits = pipeline(registry, tmp_path / "s").retrieve("oil", k=3)
    assert all(h.chunk.metadata["llm"] and "enrichment_failed" not in h.chunk.metadata for h in hits)
