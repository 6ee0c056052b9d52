"""The embedding reranker with the real MiniLM: it re-orders by query/chunk cosine."""

from __future__ import annotations

import numpy as np
import pytest

from ragkit.errors import ConfigError
from ragkit.rerankers.embedding import EmbeddingReranker
from ragkit.testing.fakes import FakeEmbedder
from ragkit.types import Chunk, Document, Query, ScoredChunk

TEXTS = ["Quarterly earnings rose by eight percent.", "The cat slept on the warm windowsill.",
         "Kittens love to nap in the sun.", "Interest rates were left unchanged."]


def candidates():
    out = []
    for i, text in enumerate(TEXTS):
        doc = Document.from_text(text)
        out.append(ScoredChunk(Chunk.from_span(doc, 0, len(text), 6), 10.0 - i, "bm25"))
    return out


def test_reorders_by_cosine_with_minilm(minilm):
    reranker = EmbeddingReranker(embedder=minilm, top_n=3)
    out = reranker.rerank(Query.from_text("where do cats like to sleep?"), candidates())
    assert len(out) == 3
    assert {out[0].chunk.text, out[1].chunk.text} == {TEXTS[1], TEXTS[2]}
    assert all(s.source == "rerank:embedding" for s in out)
    assert [s.score for s in out] == sorted((s.score for s in out), reverse=True)


def test_scores_are_cosines():
    emb = FakeEmbedder(dimension=16)
    out = EmbeddingReranker(embedder=emb).rerank(Query.from_text("cat sun"), candidates())
    q = emb.embed_query("cat sun")
    for s in out:
        assert s.score == pytest.approx(float(emb.embed_documents([s.chunk.text])[0] @ q), rel=1e-5)
    assert sorted(s.chunk.id for s in out) == sorted(c.chunk.id for c in candidates())
    assert EmbeddingReranker(embedder=emb).rerank(Query.from_text("x"), []) == []
    assert np.isfinite([s.score for s in out]).all()


def test_string_embedder_outside_pipeline():
    with pytest.raises(ConfigError, match="pass an embedder instance"):
        EmbeddingReranker().rerank(Query.from_text("x"), candidates())
