"""``embedding`` reranker: re-score candidates by cosine similarity of query and chunk embeddings.

Useful after BM25 (or a hybrid with few dense candidates) when no cross-encoder is available
offline (see OFFLINE.md): the bi-encoder judges every candidate directly. Chunk embeddings come
from the embedder's cache when the index was built with the same model, so reranking costs one
query embedding. ``top_n`` keeps only the best ``n`` after reranking (all by default).

Example:
    >>> from ragkit.testing.fakes import FakeEmbedder
    >>> from ragkit.types import Document, Chunk, Query, ScoredChunk
    >>> doc = Document.from_text("red apples. green pears.")
    >>> cands = [ScoredChunk(Chunk.from_span(doc, 0, 11, 2), 9.0), ScoredChunk(Chunk.from_span(doc, 12, 24, 2), 1.0)]
    >>> top = EmbeddingReranker(embedder=FakeEmbedder(dimension=16)).rerank(Query.from_text("green pears"), cands)
    >>> top[0].chunk.text, top[0].source
    ('green pears.', 'rerank:embedding')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import numpy as np
from pydantic import Field

from ragkit.errors import ConfigError
from ragkit.rerankers.base import Reranker
from ragkit.stage import EmbedderRef
from ragkit.types import Query, ScoredChunk


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


class EmbeddingReranker(Reranker):
    """Re-rank candidates by ``cos(embed_query(q), embed_documents(chunk.text))`` (ties keep input order).

    Example:
        >>> from ragkit.testing.fakes import FakeEmbedder
        >>> EmbeddingReranker(embedder=FakeEmbedder(), top_n=3).top_n
        3
    """

    def __init__(self, *, embedder: EmbedderRef = "default",
                 top_n: Annotated[int, Field(gt=0)] | None = None) -> None:
        self.embedder = embedder
        self.top_n = top_n

    def _load(self) -> None:
        if isinstance(self.embedder, str):
            raise ConfigError(f"EmbeddingReranker(embedder={self.embedder!r}): pass an embedder instance in Python; "
                              "names are resolved only inside a Pipeline")

    def rerank(self, query: Query, scored: Sequence[ScoredChunk]) -> list[ScoredChunk]:
        """``scored`` re-ordered by embedding cosine, best first (``top_n`` of them when set)."""
        self.warm_up()
        if not scored:
            return []
        q = _unit(np.asarray(self.embedder.embed_query(query.text), dtype=np.float32).reshape(-1))
        docs = _unit(np.asarray(self.embedder.embed_documents([s.chunk.text for s in scored]), dtype=np.float32))
        sims = docs @ q
        order = np.lexsort((np.arange(len(sims)), -sims))
        if self.top_n is not None:
            order = order[: self.top_n]
        return [ScoredChunk(scored[i].chunk, float(sims[i]), "rerank:embedding") for i in order]
