"""Heading detection in plain text: Markdown ATX and setext headings, WikiText ``= = Title = =`` lines.

Each heading is ``(start, end, level, title)``: ``text[start:end]`` is the heading line without its
surrounding whitespace, ``level`` is 1 for the top level, ``title`` the heading text. This is the
shape loaders store in ``Document.metadata["headings"]``.

Example:
    >>> text = "# Intro\\nHello.\\n = = History = = \\nOld."
    >>> find_headings(text)
    [(0, 7, 1, 'Intro'), (16, 31, 2, 'History')]
"""

from __future__ import annotations

import re

Heading = tuple[int, int, int, str]

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(={3,}|-{3,})[ \t]*$")
_WIKI_OPEN = re.compile(r"=(?:[ \t]?=)*(?=[ \t])")
_WIKI_CLOSE = re.compile(r"(?<=[ \t])=(?:[ \t]?=)*$")
_NOT_SETEXT_TEXT = re.compile(r"^\s*$|^ {4}|^ {0,3}(?:[-*+>|#]|\d+[.)])\s")


def find_headings(text: str, *, atx: bool = True, setext: bool = True, wikitext: bool = True) -> list[Heading]:
    """Headings of ``text`` in order (lines inside fenced code blocks are ignored).

    Setext underlines need at least three ``=`` or ``-`` under a non-blank paragraph line, so a stray
    ``=`` or a ``---`` rule after a list item is not taken for a heading.
    """
    headings: list[Heading] = []
    fence: str | None = None
    previous: tuple[int, int, str] | None = None  # the previous line, if it could carry a setext underline
    position = 0
    for line in text.splitlines(keepends=True):
        start = position
        position += len(line)
        body = line.rstrip("\r\n")
        fence_match = _FENCE.match(body)
        if fence is not None:
            if fence_match and fence_match.group(1)[0] == fence[0] and len(fence_match.group(1)) >= len(fence):
                fence = None
            previous = None
            continue
        if fence_match:
            fence = fence_match.group(1)
            previous = None
            continue
        if atx and "#" in body[:4]:
            match = _ATX.match(body)
            if match and (match.group(2) or "").strip():
                title = match.group(2).strip()
                headings.append((*_trimmed(text, start, start + len(body)), len(match.group(1)), title))
                previous = None
                continue
        if wikitext and "=" in body:
            found = _wikitext_heading(body)
            if found is not None:
                headings.append((*_trimmed(text, start, start + len(body)), *found))
                previous = None
                continue
        if setext and previous is not None and _SETEXT.match(body):
            p_start, p_end, p_title = previous
            level = 1 if body.strip()[0] == "=" else 2
            headings.append((p_start, _trimmed(text, start, start + len(body))[1], level, p_title))
            previous = None
            continue
        if setext and not _NOT_SETEXT_TEXT.match(body):
            a, b = _trimmed(text, start, start + len(body))
            previous = (a, b, text[a:b]) if b > a else None
        else:
            previous = None
    return headings


def _wikitext_heading(line: str) -> tuple[int, str] | None:
    """``(level, title)`` for a WikiText heading line (``= = Title = =`` or ``== Title ==``)."""
    stripped = line.strip(" \t")
    if not (stripped.startswith("=") and stripped.endswith("=")):
        return None
    opening = _WIKI_OPEN.match(stripped)
    closing = _WIKI_CLOSE.search(stripped)
    if opening is None or closing is None or closing.start() <= opening.end():
        return None
    level = opening.group(0).count("=")
    if closing.group(0).count("=") != level:
        return None
    title = stripped[opening.end():closing.start()].strip()
    return (level, title) if title else None


def _trimmed(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end
