"""The retriever contract: ``index(chunks)`` then ``retrieve(query, k, filter) -> list[ScoredChunk]``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ragkit.stage import Component
from ragkit.types import Chunk, Query, ScoredChunk


class Retriever(Component):
    """Base class for retrievers. Filters are applied before top-k (see ``ragkit.retrievers.filters``)."""

    def index(self, chunks: Sequence[Chunk]) -> Retriever:
        raise NotImplementedError

    def retrieve(self, query: Query | str, k: int = 10, filter: Mapping[str, Any] | None = None) -> list[ScoredChunk]:
        raise NotImplementedError
