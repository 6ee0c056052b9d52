"""Pack blank-line-separated paragraphs into chunks of at most ``max_tokens`` tokens."""

from __future__ import annotations

from ragkit.chunkers._split import (
    BLANK_LINE,
    CascadePacker,
    PackingChunker,
    RegexCuts,
    SentenceCuts,
)
from ragkit.types import Chunk, Document


class ParagraphChunker(PackingChunker):
    """Greedily pack consecutive paragraphs (blocks separated by blank lines) up to ``target_tokens``.

    ``target_tokens`` defaults to ``max_tokens``. A paragraph longer than ``max_tokens`` is split
    into packed sentences, then words. ``overlap_tokens`` carries trailing paragraphs (at most that
    many tokens) into the next chunk.

    Example:
        >>> from ragkit.types import Document
        >>> doc = Document.from_text("First paragraph.\\n\\nSecond one.\\n\\nA third, longer paragraph here.")
        >>> [c.text for c in ParagraphChunker(max_tokens=8).chunk(doc)]
        ['First paragraph.\\n\\nSecond one.', 'A third, longer paragraph here.']
    """

    def _chunk(self, doc: Document) -> list[Chunk]:
        view = self._view(doc)
        packer = CascadePacker(
            view,
            [RegexCuts(BLANK_LINE, "paragraphs"), SentenceCuts(self.splitter)],
            max_tokens=self.max_tokens,
            target_tokens=self.target_tokens,
            overlap_tokens=self.overlap_tokens,
        )
        return self._finalize(doc, view, packer.split())
