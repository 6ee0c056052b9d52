"""``top_k``: the ``k`` best-ranked candidates, in rank order.

Example:
    >>> from ragkit.types import Chunk, Query, ScoredChunk
    >>> ranked = [ScoredChunk(Chunk(str(i), "d", "t", 0, 1, 1), 1.0 / (i + 1)) for i in range(4)]
    >>> [s.chunk.id for s in TopKSelector(k=2).select(Query.from_text("q"), ranked)]
    ['0', '1']
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import Field

from ragkit.selectors.base import Selector
from ragkit.types import Query, ScoredChunk


class TopKSelector(Selector):
    """Keep the first ``k`` candidates (candidates arrive ranked best first).

    Example:
        >>> TopKSelector(k=3).k
        3
    """

    def __init__(self, *, k: Annotated[int, Field(gt=0)] = 5) -> None:
        self.k = k

    def select(self, query: Query, candidates: Sequence[ScoredChunk], context: Any = None) -> list[ScoredChunk]:
        """The first ``k`` of ``candidates`` (all of them when there are fewer)."""
        return list(candidates[: self.k])
