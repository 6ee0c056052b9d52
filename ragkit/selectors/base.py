"""The selector contract: ``select(query, candidates, context=None) -> list[ScoredChunk]``.

A selector returns a subset of ``candidates`` (in the order it wants them given to the generator).
Selectors chain: ``query.selector`` may be a list (``[top_k, verifier]``), each link seeing the
previous link's output. A selector that needs the index (a document's other chunks, trees, the
embedder) declares it in ``needs_context`` and receives a :class:`~ragkit.context.QueryContext`.
A selector may fill ``last_trace`` (a JSON-serialisable mapping) for ``Answer.trace``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from ragkit.stage import Component
from ragkit.types import Query, ScoredChunk


class Selector(Component):
    """Base class for selectors."""

    needs_context: ClassVar[frozenset[str]] = frozenset()

    def select(self, query: Query, candidates: Sequence[ScoredChunk], context: Any = None) -> list[ScoredChunk]:
        raise NotImplementedError(f"{type(self).__name__} must implement select(query, candidates, context=None)")

    def trace(self) -> Mapping[str, Any]:
        """What the last :meth:`select` call did, for ``Answer.trace`` (empty by default)."""
        return {}
