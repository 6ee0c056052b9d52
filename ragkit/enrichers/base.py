"""The enricher contract: ``enrich(chunks, docs) -> list[Chunk]``; enrichers add to metadata only."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ragkit.stage import Component
from ragkit.types import Chunk, Document


class Enricher(Component):
    """Base class for enrichers: ``enrich(chunks, docs)`` adds metadata and keeps every chunk."""
    def enrich(self, chunks: Sequence[Chunk], docs: Mapping[str, Document]) -> list[Chunk]:
        """Return the chunks (same order, same text and offsets) with metadata added.

        ``docs`` maps ``doc_id`` to the source document.
        """
        raise NotImplementedError
