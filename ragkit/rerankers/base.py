"""The reranker contract: ``rerank(query, scored) -> list[ScoredChunk]`` (best first)."""

from __future__ import annotations

from collections.abc import Sequence

from ragkit.stage import Component
from ragkit.types import Query, ScoredChunk


class Reranker(Component):
    """Base class for rerankers: ``rerank(query, scored)`` returns the candidates re-ordered, best first."""
    def rerank(self, query: Query, scored: Sequence[ScoredChunk]) -> list[ScoredChunk]:
        raise NotImplementedError
