"""Sections from the document's headings; recursive splitting inside sections above the cap."""

from __future__ import annotations

from ragkit.chunkers._split import (
    BLANK_LINE,
    LINE,
    CascadePacker,
    PackingChunker,
    RegexCuts,
    SentenceCuts,
    Span,
)
from ragkit.chunkers.base import heading_path_at
from ragkit.text.headings import find_headings
from ragkit.types import Chunk, Document

Heading = tuple[int, int, int, str]


class StructureChunker(PackingChunker):
    """One chunk per section of the heading tree, splitting only sections that do not fit.

    Headings come from ``metadata["headings"]`` (Markdown ``#``/setext, WikiText ``= = X = =`` and
    HTML ``h1``-``h6`` from the loaders); a document without that key has Markdown and WikiText
    heading lines detected from its text. A section runs from its heading to the next heading of the
    same or a higher level, so it includes its subsections. A section within ``target_tokens``
    (default ``max_tokens``) becomes one chunk; a larger one is cut into its own text (heading and
    body up to the first subsection) and its subsections, each handled the same way. Text that is
    still too large is split recursively (blank lines, lines, sentences, words) and packed up to the
    target. A heading with no body of its own stays with what follows it. Sections are never merged
    across headings, so each chunk's ``heading_path`` names the section it comes from.

    Example:
        >>> from ragkit.types import Document
        >>> text = " = Film = \\n Intro .\\n = = Plot = = \\n A story .\\n = = Cast = = \\n Actors ."
        >>> chunks = StructureChunker(max_tokens=12).chunk(Document.from_text(text))
        >>> [(c.text, c.metadata["heading_path"]) for c in chunks]  # doctest: +NORMALIZE_WHITESPACE
        [('= Film = \\n Intro .', ['Film']), ('= = Plot = = \\n A story .', ['Film', 'Plot']),
         ('= = Cast = = \\n Actors .', ['Film', 'Cast'])]
    """

    def _chunk(self, doc: Document) -> list[Chunk]:
        text = doc.text
        detected = "headings" not in doc.metadata
        headings = sorted(find_headings(text) if detected else doc.headings)
        view = self._view(doc)
        packer = CascadePacker(
            view,
            [RegexCuts(BLANK_LINE, "paragraphs"), RegexCuts(LINE, "lines"), SentenceCuts(self.splitter)],
            max_tokens=self.max_tokens,
            target_tokens=self.target_tokens,
            overlap_tokens=self.overlap_tokens,
        )
        spans: list[Span] = []
        first = headings[0][0] if headings else len(text)
        if first > 0:
            spans.extend(packer.split(0, first))
        _sections(packer, headings, 0, len(headings), len(text), spans)
        chunks = self._finalize(doc, view, spans)
        if detected and headings:
            # The shared post-step only knows metadata["headings"]; use the detected ones here.
            chunks = [c.with_metadata(heading_path=heading_path_at(headings, c.start)) for c in chunks]
        return chunks


def _sections(packer: CascadePacker, headings: list[Heading], lo: int, hi: int, end: int, out: list[Span]) -> None:
    """Emit the sections headed by ``headings[lo:hi]`` (siblings and their descendants) up to ``end``."""
    view = packer.view
    i = lo
    while i < hi:
        start, _hend, level, _title = headings[i]
        j = i + 1  # the section of heading i holds headings[i+1:j] (deeper levels)
        while j < hi and headings[j][2] > level:
            j += 1
        section_end = headings[j][0] if j < hi else end
        if view.count(start, section_end) <= packer.target or j == i + 1:
            out.extend(packer.split(start, section_end))
        else:
            body_end = headings[i + 1][0]
            if view.text[headings[i][1]:body_end].strip():
                out.extend(packer.split(start, body_end))
                _sections(packer, headings, i + 1, j, section_end, out)
            else:
                # A heading without body text travels with its first subsection.
                child_start, child_end, child_level, child_title = headings[i + 1]
                merged = [*headings[:i + 1], (start, child_end, child_level, child_title), *headings[i + 2:]]
                _sections(packer, merged, i + 1, j, section_end, out)
        i = j
