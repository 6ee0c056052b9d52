"""The selector contract: ``select(query, candidates) -> list[ScoredChunk]``, a subset of the candidates."""

from __future__ import annotations

from collections.abc import Sequence

from ragkit.stage import Component
from ragkit.types import Query, ScoredChunk


class Selector(Component):
    def select(self, query: Query, candidates: Sequence[ScoredChunk]) -> list[ScoredChunk]:
        raise NotImplementedError
