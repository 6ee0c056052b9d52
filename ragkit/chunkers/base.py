"""The chunker contract: ``chunk(doc) -> list[Chunk]`` with exact offsets and a hard token cap.

Subclasses implement :meth:`Chunker._chunk`; :meth:`Chunker.chunk` handles empty documents and
applies the shared post-step that sets ``metadata["heading_path"]`` from the document's headings.
Every chunk satisfies ``doc.text[chunk.start:chunk.end] == chunk.text``.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import replace

from ragkit.stage import Component
from ragkit.types import Chunk, Document


def heading_path_at(headings: Sequence[tuple[int, int, int, str]], position: int) -> list[str]:
    """Titles of the headings enclosing ``position`` (outermost first)."""
    path: list[tuple[int, str]] = []
    for start, _end, level, title in headings:
        if start > position:
            break
        while path and path[-1][0] >= level:
            path.pop()
        path.append((level, title))
    return [title for _level, title in path]


def add_heading_paths(doc: Document, chunks: Iterable[Chunk]) -> list[Chunk]:
    """The shared post-step: set ``metadata["heading_path"]`` on every chunk (idempotent)."""
    headings = sorted(doc.headings)
    out = []
    for chunk in chunks:
        if "heading_path" in chunk.metadata:
            out.append(chunk)
            continue
        # A chunk that starts with a heading line belongs under that heading.
        out.append(chunk.with_metadata(heading_path=heading_path_at(headings, chunk.start)))
    return out


def spans_to_chunks(doc: Document, spans: Sequence[tuple[int, int]], counts: Sequence[int]) -> list[Chunk]:
    """Chunks for ``spans`` (empty or whitespace-only spans dropped)."""
    chunks = []
    for (start, end), count in zip(spans, counts):
        if end > start and doc.text[start:end].strip():
            chunks.append(Chunk.from_span(doc, start, end, token_count=count))
    return chunks


def trim_span(text: str, start: int, end: int) -> tuple[int, int]:
    """Shrink ``[start, end)`` to exclude leading and trailing whitespace."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def position_index(sorted_positions: Sequence[int], position: int) -> int:
    return bisect.bisect_right(sorted_positions, position)


class Chunker(Component):
    """Base class: implement ``_chunk(doc)``; ``chunk`` adds the heading path and handles empty input.

    Example:
        >>> from ragkit.chunkers.token import TokenChunker
        >>> chunks = TokenChunker(max_tokens=8).chunk(Document.from_text("one two three " * 10))
        >>> all(c.token_count <= 8 for c in chunks)
        True
    """

    def chunk(self, doc: Document) -> list[Chunk]:
        """Cut ``doc`` into chunks whose text is ``doc.text[start:end]``."""
        if not doc.text.strip():
            return []
        self.warm_up()
        chunks = self._chunk(doc)
        return add_heading_paths(doc, chunks)

    def _chunk(self, doc: Document) -> list[Chunk]:
        raise NotImplementedError(f"{type(self).__name__} must implement _chunk(doc)")

    def chunk_many(self, docs: Iterable[Document]) -> list[list[Chunk]]:
        """Chunk several documents (subclasses may batch model calls across them)."""
        return [self.chunk(doc) for doc in docs]

    def __call__(self, doc: Document | str) -> list[Chunk]:
        if isinstance(doc, str):
            doc = Document.from_text(doc)
        return self.chunk(doc)


def renumber(chunks: Sequence[Chunk], **metadata: object) -> list[Chunk]:
    """Attach extra metadata to every chunk (returns copies)."""
    return [replace(c, metadata={**c.metadata, **metadata}) for c in chunks]
