"""The character cap every capped chunker also holds: ``max_chars = tokenizer.max_chars(max_tokens)``.

A token cap alone does not bound text the tokenizer cannot represent: WordPiece maps a run of more
than 100 characters without spaces or punctuation (Thai, Lao, Khmer, base64, long URLs) to a single
``[UNK]``, so a 50,000-character Thai document "fits" in 64 tokens. The base class runs
:func:`bound_chars` on every chunker's output: a chunk longer than ``max_chars`` is cut into pieces
of at most ``max_chars`` characters (at the last whitespace, else the last punctuation mark, else
between two grapheme clusters), each piece is re-counted with the real tokenizer and cut further
while it exceeds ``max_tokens``. Offsets stay exact (pieces are spans of the document); chunks within
both caps are returned unchanged. :func:`warn_unknown` warns once per chunker when a document has
runs the tokenizer maps to ``[UNK]``.

Example:
    >>> from ragkit.text.tokenizers import get_tokenizer
    >>> from ragkit.types import Chunk, Document
    >>> doc = Document.from_text("\\u0e01" * 3000)
    >>> chunks = bound_chars(doc, [Chunk.from_span(doc, 0, 3000, 1)], max_tokens=64, tokenizer=get_tokenizer("minilm"))
    >>> [(len(c.text), c.token_count) for c in chunks]
    [(1280, 1), (1280, 1), (440, 1)]
"""

from __future__ import annotations

import unicodedata
import warnings
from collections.abc import Sequence

from ragkit.errors import DocumentError, RagkitWarning
from ragkit.text.tokenizers import Tokenizer
from ragkit.types import Chunk, Document


class UnrepresentableTextWarning(RagkitWarning):
    """The tokenizer maps part of a document to ``[UNK]`` (its meaning is lost to the embedder)."""


def trim_span(text: str, start: int, end: int) -> tuple[int, int]:
    """Shrink ``[start, end)`` to exclude leading and trailing whitespace."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _glued(text: str, position: int) -> bool:
    """Whether a cut right before ``position`` would split a grapheme cluster."""
    if position <= 0 or position >= len(text):
        return False
    nxt, prev = text[position], text[position - 1]
    return (unicodedata.combining(nxt) > 0 or unicodedata.category(nxt) in ("Mn", "Me", "Mc")
            or nxt in "\u200d\ufe0f\ufe0e" or prev == "\u200d" or "\U0001f3fb" <= nxt <= "\U0001f3ff"
            or ("\U0001f1e6" <= prev <= "\U0001f1ff" and "\U0001f1e6" <= nxt <= "\U0001f1ff"))


def _cut(text: str, start: int, end: int, limit: int) -> int:
    """A cut position in ``(start, start + limit]`` (whitespace, else punctuation, else a grapheme boundary)."""
    hi = min(end, start + limit)
    window = text[start:hi]
    lo = len(window) // 2
    for k in range(len(window) - 1, lo, -1):
        if window[k].isspace():
            return start + k
    for k in range(len(window) - 1, lo, -1):
        if unicodedata.category(window[k - 1])[0] == "P" and not _glued(text, start + k):
            return start + k
    position = hi
    while position > start + 1 and _glued(text, position):
        position -= 1
    if position <= start + 1 and _glued(text, position):  # one grapheme longer than the cap: cut after it
        position = hi
        while position < end and _glued(text, position):
            position += 1
    return position


def _pieces(text: str, start: int, end: int, max_chars: int, max_tokens: int, tok: Tokenizer) -> list[tuple[int, int, int]]:
    out: list[tuple[int, int, int]] = []
    todo = [(start, end)]
    while todo:
        s, e = todo.pop()
        s, e = trim_span(text, s, e)
        if e <= s:
            continue
        if e - s > max_chars:
            c = _cut(text, s, e, max_chars)
            todo.extend([(c, e), (s, c)])
            continue
        n = tok.count(text[s:e])
        if n <= max_tokens:
            out.append((s, e, n))
            continue
        c = _cut(text, s, e, max(1, (e - s) // 2))
        if c >= e or c <= s:
            raise DocumentError(
                f"cannot cut the text at offset {s} ({text[s:min(e, s + 40)]!r}) into pieces of at most "
                f"max_tokens={max_tokens} tokens: one character already has more. Raise max_tokens."
            )
        todo.extend([(c, e), (s, c)])
    return out


def bound_chars(doc: Document, chunks: Sequence[Chunk], *, max_tokens: int, tokenizer: Tokenizer) -> list[Chunk]:
    """``chunks`` with every chunk longer than ``tokenizer.max_chars(max_tokens)`` cut into exact sub-spans."""
    max_chars = tokenizer.max_chars(max_tokens)
    if all(len(c.text) <= max_chars for c in chunks):
        return list(chunks)
    out: list[Chunk] = []
    for chunk in chunks:
        if len(chunk.text) <= max_chars:
            out.append(chunk)
            continue
        for s, e, n in _pieces(doc.text, chunk.start, chunk.end, max_chars, max_tokens, tokenizer):
            out.append(Chunk.from_span(doc, s, e, n, metadata=chunk.metadata))
    out.sort(key=lambda c: (c.start, c.end))
    return out


def warn_unknown(doc: Document, tokenizer: Tokenizer, owner: object) -> None:
    """Warn (once per ``owner``) when ``tokenizer`` maps runs of ``doc`` to ``[UNK]``."""
    if getattr(owner, "_unknown_warned", False):
        return
    runs = tokenizer.unknown_runs(doc.text)
    if not runs:
        return
    try:
        owner._unknown_warned = True  # type: ignore[attr-defined]
    except AttributeError:  # pragma: no cover - slotted owners warn every time
        pass
    chars = sum(b - a for a, b in runs)
    source = doc.metadata.get("source_id") or doc.metadata.get("path") or doc.id
    warnings.warn(
        f"{source}: the {tokenizer.name!r} tokenizer maps {len(runs)} run(s) of text without spaces ({chars} characters, "
        f"first at offset {runs[0][0]}) to one [UNK] token each; chunks are still capped at "
        f"{type(owner).__name__}'s max_chars, but their meaning is lost to a WordPiece embedder. For Thai, Lao, Khmer "
        "and similar scripts use a multilingual embedder/tokenizer (e.g. tokenizer: cl100k). Warned once per chunker.",
        UnrepresentableTextWarning, stacklevel=4,
    )
