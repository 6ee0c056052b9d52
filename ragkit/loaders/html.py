"""HTML to text with heading spans, using the standard library's ``html.parser``.

Offsets of documents loaded from HTML index the **extracted text** (``Document.text``), not the raw
markup. Extraction keeps what a reader sees: block elements (``p``, ``div``, ``li``, ``tr``, headings,
...) start new lines or paragraphs, runs of whitespace collapse to one space outside ``<pre>``,
character references are decoded, and ``script``/``style``/``head`` content is dropped (the
``<title>`` goes to ``metadata["title"]``). ``h1``-``h6`` become ``(start, end, level, title)``
heading spans in ``metadata["headings"]``.

Example:
    >>> text, headings, title = html_to_text("<h1>Intro</h1><p>Hello <b>world</b>.</p>")
    >>> text, headings
    ('Intro\\n\\nHello world.', [(0, 5, 1, 'Intro')])
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_SKIP = {"script", "style", "noscript", "template", "head", "svg", "math"}
_PARAGRAPH = {
    "p", "div", "section", "article", "header", "footer", "main", "nav", "aside", "blockquote", "pre",
    "ul", "ol", "dl", "table", "figure", "form", "fieldset", "address", "details", "summary", "hr",
    "h1", "h2", "h3", "h4", "h5", "h6",
}
_LINE = {"br", "li", "tr", "dt", "dd", "figcaption", "caption", "option"}
_CELL = {"td", "th"}
_VOID = {"br", "hr", "img", "input", "meta", "link", "area", "base", "col", "embed", "source", "track", "wbr"}
_SPACES = re.compile(r"\s+")


class _Extractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.length = 0
        self.pending_break = ""  # newlines owed before the next text
        self.pending_sep = ""  # " " or " | " owed before the next text on the same line
        self.skip_depth = 0
        self.pre_depth = 0
        self.in_title = False
        self.title_parts: list[str] = []
        self.open_heading: list[int] | None = None  # [level, start offset or -1]
        self.headings: list[tuple[int, int, int]] = []
        self.cells_in_row = 0

    def _emit(self, text: str) -> None:
        if not text:
            return
        if self.length:
            owed = self.pending_break or self.pending_sep
            if owed:
                self.parts.append(owed)
                self.length += len(owed)
        self.pending_break = ""
        self.pending_sep = ""
        if self.open_heading is not None and self.open_heading[1] < 0:
            self.open_heading[1] = self.length
        self.parts.append(text)
        self.length += len(text)

    def _break(self, newlines: str) -> None:
        if len(newlines) > len(self.pending_break):
            self.pending_break = newlines
        self.pending_sep = ""

    def _space(self, sep: str = " ") -> None:
        if self.length and not self.pending_break and len(sep) > len(self.pending_sep):
            self.pending_sep = sep

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self.in_title = True
        if tag in _SKIP:
            self.skip_depth += 1
            return
        if self.skip_depth:
            return
        if tag == "pre":
            self.pre_depth += 1
        if tag in _PARAGRAPH:
            self._break("\n\n")
        elif tag in _LINE:
            self._break("\n")
        if tag == "tr":
            self.cells_in_row = 0
        elif tag in _CELL:
            if self.cells_in_row:
                self._space(" | ")
            self.cells_in_row += 1
        if len(tag) == 2 and tag[0] == "h" and tag[1] in "123456":
            self.open_heading = [int(tag[1]), -1]

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
        if tag in _SKIP:
            self.skip_depth = max(0, self.skip_depth - 1)
            return
        if self.skip_depth:
            return
        if tag == "pre":
            self.pre_depth = max(0, self.pre_depth - 1)
        if len(tag) == 2 and tag[0] == "h" and tag[1] in "123456" and self.open_heading is not None:
            level, start = self.open_heading
            self.open_heading = None
            if 0 <= start < self.length:
                self.headings.append((start, self.length, level))
        if tag in _PARAGRAPH:
            self._break("\n\n")
        elif tag in _LINE and tag != "br":
            self._break("\n")

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title_parts.append(data)
        if self.skip_depth or not data:
            return
        if self.pre_depth:
            self._emit(data.lstrip("\n") if (self.length == 0 or self.pending_break) else data)
            return
        text = _SPACES.sub(" ", data).strip()
        if data[0].isspace():
            self._space()
        if text:
            self._emit(text)
            if data[-1].isspace():
                self._space()


def html_to_text(markup: str) -> tuple[str, list[tuple[int, int, int, str]], str | None]:
    """``(text, headings, title)`` extracted from ``markup`` (see the module docstring)."""
    parser = _Extractor()
    parser.feed(markup)
    parser.close()
    text = "".join(parser.parts)
    title = _SPACES.sub(" ", "".join(parser.title_parts)).strip() or None
    headings = []
    for start, end, level in parser.headings:
        heading_title = _SPACES.sub(" ", text[start:end]).strip()
        if heading_title:
            headings.append((start, end, level, heading_title))
    return text, headings, title
