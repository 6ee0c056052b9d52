"""``scorer`` reranker: re-rank candidates by any scorer, so the same models rerank and select.

``query.reranker: {type: scorer, scorer: {type: query_likelihood}}`` scores every candidate's text
with the scorer (one batched call) and sorts best first (ties keep the input order); ``top_n`` keeps
only the best ``n``. ``scorer`` is a scorer type name, a ``{type: ..., **params}`` mapping or a scorer
instance. A spec's ``embedder: default`` / ``llm: default`` means the canonical default backend until
the pipeline injects nested stage specs (see :mod:`ragkit.scorers._build`).

Example:
    >>> from ragkit.scorers.embedding import EmbeddingScorer
    >>> from ragkit.testing.fakes import FakeEmbedder
    >>> from ragkit.types import Chunk, Document, Query, ScoredChunk
    >>> doc = Document.from_text("red apples. green pears.")
    >>> cands = [ScoredChunk(Chunk.from_span(doc, 0, 11, 2), 9.0), ScoredChunk(Chunk.from_span(doc, 12, 24, 2), 1.0)]
    >>> rr = ScorerReranker(scorer=EmbeddingScorer(embedder=FakeEmbedder(dimension=16)))
    >>> top = rr.rerank(Query.from_text("green pears"), cands)
    >>> top[0].chunk.text, top[0].source
    ('green pears.', 'rerank:scorer:embedding')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import numpy as np
from pydantic import Field

from ragkit.rerankers.base import Reranker
from ragkit.scorers._build import UsesBackends, build_scorer, check_scorer_spec, scorer_type
from ragkit.stage import ScorerRef
from ragkit.types import Query, ScoredChunk


class ScorerReranker(UsesBackends, Reranker):
    """Re-rank by ``scorer.score(query, [chunk texts])``, best first (``top_n`` of them when set).

    Example:
        >>> ScorerReranker(scorer={"type": "embedding"}, top_n=5).top_n
        5
    """

    def __init__(self, *, scorer: ScorerRef = "embedding", top_n: Annotated[int, Field(gt=0)] | None = None) -> None:
        check_scorer_spec(scorer, "reranker.scorer.scorer")
        self.scorer = scorer
        self.top_n = top_n

    def _load(self) -> None:
        self.scorer_ = build_scorer(self.scorer, runtime=self.runtime_, path="query.reranker.scorer")

    def rerank(self, query: Query, scored: Sequence[ScoredChunk]) -> list[ScoredChunk]:
        """``scored`` re-ordered by the scorer, best first."""
        if not scored:
            return []
        self.warm_up()
        values = np.asarray(self.scorer_.score(query, [s.chunk.text for s in scored]), dtype=np.float64).reshape(-1)
        if len(values) != len(scored):
            raise ValueError(f"scorer {scorer_type(self.scorer)!r} returned {len(values)} scores for {len(scored)} texts")
        order = np.lexsort((np.arange(len(values)), -values))
        if self.top_n is not None:
            order = order[: self.top_n]
        source = f"rerank:scorer:{scorer_type(self.scorer)}"
        return [ScoredChunk(scored[i].chunk, float(values[i]), source) for i in order]
