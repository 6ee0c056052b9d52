"""Recursive splitting down a separator cascade, packing pieces up to the token cap."""

from __future__ import annotations

from ragkit.chunkers._split import (
    BLANK_LINE,
    LINE,
    CascadePacker,
    FixedCuts,
    PackingChunker,
    RegexCuts,
    SentenceCuts,
)
from ragkit.text.headings import find_headings
from ragkit.types import Chunk, Document


class RecursiveChunker(PackingChunker):
    """Split at the coarsest separator that works, pack the pieces, recurse into pieces above the cap.

    The cascade: headings (the document's ``metadata["headings"]``, else Markdown/WikiText heading
    lines found in the text), blank lines, line breaks, sentences, words, and token boundaries inside
    a word as the last resort. At each level consecutive pieces are packed greedily while the chunk
    stays within ``target_tokens`` (default ``max_tokens``); a piece above ``max_tokens`` is split at
    the next level. ``overlap_tokens`` carries trailing pieces (at most that many tokens) into the
    next chunk, as LangChain's ``chunk_overlap`` does. Every chunk has at most ``max_tokens`` tokens.

    Example:
        >>> from ragkit.types import Document
        >>> doc = Document.from_text("# Title\\n\\nIntro text here.\\n\\n## Part\\n\\nMore text.")
        >>> [c.text for c in RecursiveChunker(max_tokens=8).chunk(doc)]
        ['# Title\\n\\nIntro text here.', '## Part\\n\\nMore text.']
    """

    def _chunk(self, doc: Document) -> list[Chunk]:
        view = self._view(doc)
        headings = doc.headings if "headings" in doc.metadata else find_headings(doc.text)
        packer = CascadePacker(
            view,
            [
                FixedCuts([h[0] for h in headings], "headings"),
                RegexCuts(BLANK_LINE, "paragraphs"),
                RegexCuts(LINE, "lines"),
                SentenceCuts(self.splitter),
            ],
            max_tokens=self.max_tokens,
            target_tokens=self.target_tokens,
            overlap_tokens=self.overlap_tokens,
        )
        return self._finalize(doc, view, packer.split())
