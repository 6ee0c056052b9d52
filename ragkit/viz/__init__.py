"""The chunk visualiser: one self-contained HTML page showing how chunkers cut a document.

:func:`render` runs one or more chunkers over a document and returns the page (inline CSS and
JavaScript, nothing fetched at view time): the document with every chunk's span coloured, one column
per chunker side by side, chunk starts that differ between columns marked, a tooltip with id,
offsets, token count, heading path and metadata (the matched intent for ``intent``), and for
``perplexity``/``margin`` a per-sentence score strip. Long documents are paged (``page_chars``
characters a page, all columns on the same range; ``#page=N`` in the URL opens page N).
:func:`render_columns` draws chunks computed elsewhere. ``ragkit viz FILE`` is the command-line form.

Document text travels as JSON inside a ``<script type="application/json">`` element (``<``, ``>``
and ``&`` escaped) and is put into the page with ``textContent``, so a document cannot inject markup.

The DOM, for tests and tools: every column is ``section.column[data-chunker]``; its text is
``div.doc`` whose children are ``span.chunk`` (``data-i``, ``data-id``, ``data-start``,
``data-end``; ``data-cont`` when the chunk began on an earlier page, ``data-overlap`` = characters it
shares with the chunk before, shown there; ``data-diff`` when no other column starts a chunk there)
and ``span.gap`` (text in no chunk), in document order; the text of ``div.doc`` is exactly the page's
slice of the document.

Example:
    >>> from ragkit.chunkers.sentence import SentenceChunker
    >>> page = render("One sentence. <b>Two</b> sentences.", {"sentence": SentenceChunker(max_tokens=4)})
    >>> page.startswith("<!DOCTYPE html>"), "<b>" in page, "\\\\u003cb\\\\u003eTwo" in page
    (True, False, True)
"""

from __future__ import annotations

import bisect
import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ragkit.chunkers._diagnostics import SentenceScores, recording
from ragkit.errors import ConfigError
from ragkit.types import Chunk, Document
from ragkit.viz._assets import CSS, JS

__all__ = ["Column", "collect", "page_ranges", "payload", "render", "render_columns"]

#: Characters per page: large enough to read, small enough that a page renders at once.
PAGE_CHARS = 20_000


@dataclass(frozen=True)
class Column:
    """One chunker's view of the document.

    Attributes:
        name: the column heading (a chunker spec such as ``recursive:max_tokens=128``).
        chunks: the chunks, each ``doc.text[start:end] == text``.
        scores: per-sentence scores the chunker computed (``perplexity``, ``margin``), else ``None``.
    """

    name: str
    chunks: tuple[Chunk, ...]
    scores: SentenceScores | None = None


def collect(document: Document, chunkers: Mapping[str, Any]) -> list[Column]:
    """Run every chunker over ``document``; keep the per-sentence scores the chunker computed.

    Example:
        >>> from ragkit.chunkers.sentence import SentenceChunker
        >>> doc = Document.from_text("It rains. Take a coat.")
        >>> [(c.name, [x.text for x in c.chunks], c.scores) for c in collect(doc, {"s": SentenceChunker(max_tokens=4)})]
        [('s', ['It rains.', 'Take a coat.'], None)]
    """
    columns = []
    for name, chunker in chunkers.items():
        with recording() as scores:
            chunks = chunker.chunk(document)
        columns.append(Column(name, tuple(sorted(chunks, key=lambda c: (c.start, c.end))), scores.get(document.id)))
    return columns


def page_ranges(text: str, page_chars: int = PAGE_CHARS) -> list[tuple[int, int]]:
    """``[start, end)`` of every page: about ``page_chars`` long, ending after a newline when one is near.

    A page ends at the first newline in ``[page_chars, 1.25 * page_chars)`` past its start (else at
    exactly ``page_chars``), so pages rarely cut a line. The ranges cover ``text`` in order.

    Example:
        >>> page_ranges("aaaa\\nbbbb\\ncc", page_chars=4)
        [(0, 5), (5, 10), (10, 12)]
        >>> page_ranges("")
        [(0, 0)]
    """
    if page_chars <= 0:
        raise ConfigError(f"page_chars must be positive, got {page_chars}; use e.g. {PAGE_CHARS}")
    pages, start = [], 0
    while start < len(text):
        end = start + page_chars
        if end >= len(text):
            end = len(text)
        else:
            newline = text.find("\n", end - 1, start + page_chars + page_chars // 4)
            end = newline + 1 if newline >= 0 else end
        pages.append((start, end))
        start = end
    return pages or [(0, 0)]


def _norm(text: str, position: int) -> int:
    """``position`` moved past whitespace: chunk starts that differ only by whitespace are one boundary."""
    while position < len(text) and text[position].isspace():
        position += 1
    return position


def _plain(value: Any) -> Any:
    """JSON-safe copy of chunk metadata (tuples as lists, unknown objects as ``str``)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def payload(document: Document, columns: Sequence[Column], page_chars: int = PAGE_CHARS) -> dict[str, Any]:
    """The data the page draws from: text, pages, and per column its chunks, page ranges and scores.

    ``columns[c]["pages"][p] = [lo, hi)``: the chunks (sorted by start) that page ``p`` may show.

    Example:
        >>> doc = Document.from_text("ab cd")
        >>> cols = [Column("x", (Chunk.from_span(doc, 0, 2, 1), Chunk.from_span(doc, 3, 5, 1)))]
        >>> data = payload(doc, cols, page_chars=3)
        >>> data["pages"], data["columns"][0]["pages"], data["columns"][0]["chunks"][1]["start"]
        ([[0, 3], [3, 5]], [[0, 1], [1, 2]], 3)
    """
    text = document.text
    pages = page_ranges(text, page_chars)
    starts_of = [{_norm(text, c.start) for c in col.chunks} for col in columns]
    out_columns = []
    for k, col in enumerate(columns):
        chunks = sorted(col.chunks, key=lambda c: (c.start, c.end))
        for c in chunks:
            if c.doc_id != document.id or text[c.start:c.end] != c.text:
                raise ConfigError(f"column {col.name!r}: chunk {c.id} [{c.start}, {c.end}) is not a span of document "
                                  f"{document.id}; pass the document the chunks were cut from")
        others = [s for j, s in enumerate(starts_of) if j != k]
        starts = [c.start for c in chunks]
        reach, top = [], -1  # running max of chunk ends: monotone, so a page's first chunk is a bisection
        for c in chunks:
            top = max(top, c.end)
            reach.append(top)
        ranges = [[bisect.bisect_right(reach, ps), bisect.bisect_left(starts, pe)] for ps, pe in pages]
        entries = []
        for c in chunks:
            entry = {"id": c.id, "start": c.start, "end": c.end, "tokens": c.token_count,
                     "heading_path": _plain(c.metadata.get("heading_path", [])),
                     "metadata": _plain({k2: v for k2, v in c.metadata.items() if k2 != "heading_path"})}
            if others and all(_norm(text, c.start) not in s for s in others):
                entry["diff"] = True
            intents = c.metadata.get("intents")
            if intents:
                entry["intent"] = str(intents[0] if isinstance(intents, (list, tuple)) else intents)
            entries.append(entry)
        scores = None
        if col.scores is not None:
            ends = {c.end for c in chunks}
            scores = {"label": col.scores.label,
                      "sentences": [[s, e, v, e in ends] for (s, e), v in zip(col.scores.sentences, col.scores.values)]}
        out_columns.append({"name": col.name, "chunks": entries, "pages": ranges, "scores": scores,
                            "differ": sum(1 for e in entries if e.get("diff"))})
    return {"doc_id": document.id, "text": text, "pages": [list(p) for p in pages], "columns": out_columns}


def _script_json(data: Any) -> str:
    """JSON that is safe inside ``<script>``: ``<``, ``>``, ``&`` and line separators as escapes."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    for raw, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(raw, esc)
    return text


def render_columns(document: Document, columns: Sequence[Column], *, title: str | None = None,
                   page_chars: int = PAGE_CHARS) -> str:
    """The HTML page for chunks computed elsewhere (see :func:`render`).

    Example:
        >>> doc = Document.from_text("x </script><script>alert(1)</script>")
        >>> page = render_columns(doc, [Column("all", (Chunk.from_span(doc, 0, len(doc.text), 9),))], title="<t>")
        >>> page.count("<script"), "<title>ragkit viz: &lt;t&gt;</title>" in page
        (2, True)
    """
    if not columns:
        raise ConfigError("the visualiser needs at least one column (chunker); pass one, e.g. {'recursive': chunker}")
    label = title if title is not None else document.metadata.get("source", document.id)
    data = payload(document, columns, page_chars)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>ragkit viz: {html.escape(str(label))}</title>"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">"
        f"<style>{CSS}</style></head><body>"
        f"<header><h1>{html.escape(str(label))}</h1><nav id=\"nav\"></nav></header>"
        "<main id=\"columns\"></main><div id=\"tip\" hidden></div>"
        f"<script type=\"application/json\" id=\"ragkit-viz-data\">{_script_json(data)}</script>"
        f"<script>{JS}</script></body></html>\n"
    )


def render(document: Document | str, chunkers: Mapping[str, Any] | Sequence[Any], *, title: str | None = None,
           page_chars: int = PAGE_CHARS) -> str:
    """Chunk ``document`` with each chunker and return the self-contained visualiser page.

    Args:
        document: a :class:`~ragkit.types.Document` or plain text.
        chunkers: ``{column name: chunker}``, or chunkers (named by class, numbered when repeated).
        title: the page heading (default: the document's ``source`` metadata, else its id).
        page_chars: characters per page (see :func:`page_ranges`).

    Returns:
        The HTML page as a string; write it to a file and open it in any browser, or show it in a
        notebook with ``IPython.display.HTML`` (an ``<iframe srcdoc=...>``).

    Example:
        >>> from ragkit.chunkers.sentence import SentenceChunker
        >>> from ragkit.chunkers.token import TokenChunker
        >>> page = render("It rains. Take a coat. " * 3, [SentenceChunker(max_tokens=8), TokenChunker(max_tokens=4)])
        >>> '"name":"SentenceChunker"' in page, '"name":"TokenChunker"' in page
        (True, True)
    """
    doc = Document.from_text(document) if isinstance(document, str) else document
    if not isinstance(chunkers, Mapping):
        named: dict[str, Any] = {}
        for chunker in chunkers:
            name = type(chunker).__name__
            named[name if name not in named else f"{name} #{sum(k.startswith(name) for k in named) + 1}"] = chunker
        chunkers = named
    return render_columns(doc, collect(doc, chunkers), title=title, page_chars=page_chars)
