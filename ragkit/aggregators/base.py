"""The aggregator contract: ``aggregate(query, selected, context=None) -> Answer``.

An aggregator that needs the index (document trees, a document's chunks) declares it in
``needs_context`` and receives a :class:`~ragkit.context.QueryContext`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from ragkit.stage import Component
from ragkit.types import Answer, Query, ScoredChunk


class Aggregator(Component):
    """Base class for aggregators."""

    needs_context: ClassVar[frozenset[str]] = frozenset()

    def aggregate(self, query: Query, selected: Sequence[ScoredChunk], context: Any = None) -> Answer:
        raise NotImplementedError(f"{type(self).__name__} must implement aggregate(query, selected, context=None)")
