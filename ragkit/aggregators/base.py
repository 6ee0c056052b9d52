"""The aggregator contract: ``aggregate(query, selected) -> Answer``."""

from __future__ import annotations

from collections.abc import Sequence

from ragkit.stage import Component
from ragkit.types import Answer, Query, ScoredChunk


class Aggregator(Component):
    def aggregate(self, query: Query, selected: Sequence[ScoredChunk]) -> Answer:
        raise NotImplementedError
