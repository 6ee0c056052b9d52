"""Shared span utilities for the Meta-Chunking chunkers: dynamic merge and the hard token cap.

Both work on character spans ``(start, end)`` of one document and never produce empty spans, so
chunk text stays verbatim (``doc.text[start:end]``).

- :func:`merge_spans` is the *dynamic merge* of Meta-Chunking (METHODS.md §1.6): greedy left to right,
  a piece joins the running chunk while the summed length stays within ``target``; otherwise the
  running chunk is emitted and the piece starts a new one. Lengths are in ``tokens``, ``words``
  (whitespace-separated, the authors' English unit) or ``characters`` (the authors' Chinese unit).
- :func:`cap_spans` splits every span above ``max_tokens`` at sentence boundaries first and at token
  boundaries inside a sentence that is itself too long.

Example:
    >>> text = "One two. Three four five. Six."
    >>> pieces = [(0, 8), (9, 25), (26, 30)]
    >>> lengths = measure_spans(text, pieces, "words")
    >>> lengths
    [2, 3, 1]
    >>> merge_spans(pieces, lengths, target=5)
    [(0, 25), (26, 30)]
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from typing import Literal, Protocol

import numpy as np

LengthUnit = Literal["tokens", "words", "characters"]
LENGTH_UNITS: tuple[str, ...] = ("tokens", "words", "characters")


class TokenCounter(Protocol):
    """What the cap and the ``tokens`` unit need from a tokenizer (``ragkit.text.tokenizers``)."""

    def count(self, text: str) -> int: ...

    def count_many(self, texts: Sequence[str]) -> list[int]: ...

    def offsets(self, text: str) -> list[tuple[int, int]]: ...


def measure_spans(
    text: str, spans: Sequence[tuple[int, int]], unit: LengthUnit, tokenizer: TokenCounter | None = None
) -> list[int]:
    """Length of each ``text[start:end]`` in ``unit`` (``tokens`` needs ``tokenizer``; batched)."""
    pieces = [text[s:e] for s, e in spans]
    if unit == "characters":
        return [len(p) for p in pieces]
    if unit == "words":
        return [len(p.split()) for p in pieces]
    if unit == "tokens":
        if tokenizer is None:
            raise ValueError("measure_spans(unit='tokens') needs a tokenizer")
        return list(tokenizer.count_many(pieces)) if pieces else []
    raise ValueError(f"unknown length unit {unit!r}; allowed: {', '.join(LENGTH_UNITS)}")


class SpanCounter:
    """Token counts of spans of one text, from a single tokenisation of the whole text.

    When the tokenizer offers exact token spans (``tokenizer.spans(text)``, the MiniLM WordPiece
    tokenizer does), a span's count is the number of tokens starting inside it, which is exact when
    both ends are clean cuts (between sentences they are); spans with an unclean end, and tokenizers
    without exact spans, are counted by re-tokenising their text with ``count_many``.

    Example:
        >>> from ragkit.text.tokenizers import get_tokenizer
        >>> text = "Hello tokenization! Bye now."
        >>> SpanCounter(text, get_tokenizer("minilm"))([(0, 19), (20, 28), (0, 28)])
        [4, 3, 7]
    """

    def __init__(self, text: str, tokenizer: TokenCounter) -> None:
        self.text = text
        self.tokenizer = tokenizer
        spans = getattr(tokenizer, "spans", None)
        token_spans = spans(text) if spans is not None and text else None
        self._spans = token_spans if token_spans is not None and token_spans.exact else None

    def __call__(self, spans: Sequence[tuple[int, int]]) -> list[int]:
        if not spans:
            return []
        if self._spans is None:
            return measure_spans(self.text, spans, "tokens", self.tokenizer)
        starts = np.fromiter((s for s, _ in spans), dtype=np.int64, count=len(spans))
        ends = np.fromiter((e for _, e in spans), dtype=np.int64, count=len(spans))
        counts = (self._spans.index(ends) - self._spans.index(starts)).astype(np.int64)
        unclean = np.flatnonzero(~(self._spans.clean(starts) & self._spans.clean(ends)))
        if unclean.size:
            fixed = self.tokenizer.count_many([self.text[spans[i][0]:spans[i][1]] for i in unclean.tolist()])
            counts[unclean] = fixed
        return counts.tolist()


def merge_spans(
    spans: Sequence[tuple[int, int]],
    lengths: Sequence[int],
    target: int,
    *,
    token_counts: Sequence[int] | None = None,
    max_tokens: int | None = None,
) -> list[tuple[int, int]]:
    """Greedy dynamic merge of ordered ``spans`` up to ``target`` (summed ``lengths``).

    A piece is appended to the running chunk when ``running + length <= target`` (and, when
    ``max_tokens`` is given, ``running_tokens + token_count <= max_tokens``); otherwise the running
    chunk is emitted and the piece starts the next one. The merged span runs from the first piece's
    start to the last piece's end, so the original text between pieces is kept verbatim.

    Deviations from the authors' merge (METHODS.md §1.6), both intentional: no empty chunk is ever
    emitted (theirs emits ``""`` when the very first piece already exceeds the target) and no
    leading space is added (chunks are verbatim spans). A piece longer than ``target`` becomes a chunk
    of its own, as in theirs. Lengths are additive over pieces; where pieces overlap (the overlap
    variant) the shared sentence is counted twice, which only makes merged chunks shorter.
    """
    if target <= 0:
        raise ValueError(f"merge target must be a positive length; got {target}")
    if len(lengths) != len(spans):
        raise ValueError(f"{len(spans)} spans but {len(lengths)} lengths")
    if token_counts is not None and len(token_counts) != len(spans):
        raise ValueError(f"{len(spans)} spans but {len(token_counts)} token counts")
    merged: list[tuple[int, int]] = []
    start = end = -1
    running = running_tokens = 0
    for index, ((s, e), length) in enumerate(zip(spans, lengths)):
        if e <= s:
            continue
        tokens = token_counts[index] if token_counts is not None else 0
        if start < 0:
            start, end, running, running_tokens = s, e, length, tokens
            continue
        fits = running + length <= target
        if fits and max_tokens is not None and token_counts is not None:
            fits = running_tokens + tokens <= max_tokens
        if fits:
            end = max(end, e)
            running += length
            running_tokens += tokens
        else:
            merged.append((start, end))
            start, end, running, running_tokens = s, e, length, tokens
    if start >= 0:
        merged.append((start, end))
    return merged


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def split_at_tokens(text: str, start: int, end: int, max_tokens: int, tokenizer: TokenCounter) -> list[tuple[int, int]]:
    """Split ``text[start:end]`` into spans of at most ``max_tokens`` tokens, cutting at token boundaries.

    Cuts prefer a token that begins a new word (preceded by a gap in the offsets), so WordPiece
    continuations are not orphaned; each piece is re-counted and shrunk until it fits.
    """
    if max_tokens <= 0:
        raise ValueError(f"max_tokens must be positive; got {max_tokens}")
    piece = text[start:end]
    offsets = [(start + a, start + b) for a, b in tokenizer.offsets(piece) if b > a]
    if not offsets:
        return [(start, end)] if piece.strip() else []
    out: list[tuple[int, int]] = []
    i = 0
    while i < len(offsets):
        j = min(i + max_tokens, len(offsets))  # exclusive token index
        if j < len(offsets):
            # back off to a word start (a gap before token j) when one exists after token i
            k = j
            while k > i and offsets[k][0] == offsets[k - 1][1]:
                k -= 1
            if k > i:
                j = k
        while True:
            s, e = offsets[i][0], offsets[j - 1][1]
            if j - i <= 1 or tokenizer.count(text[s:e]) <= max_tokens:
                break
            j -= 1
        s, e = _trim(text, s, e)
        if e > s:
            out.append((s, e))
        i = j
    return out


def cap_spans(
    text: str,
    spans: Sequence[tuple[int, int]],
    sentences: Sequence[tuple[int, int]],
    max_tokens: int,
    tokenizer: TokenCounter,
    counts: Sequence[int] | None = None,
    counter: Callable[[Sequence[tuple[int, int]]], list[int]] | None = None,
) -> tuple[list[tuple[int, int]], list[int]]:
    """Enforce the hard cap: every returned span has at most ``max_tokens`` tokens.

    A span above the cap is re-packed greedily from the sentences it contains (``sentences`` are the
    document's sentence spans, sorted); a sentence above the cap is cut at token boundaries with
    :func:`split_at_tokens`. Spans within the cap are returned unchanged. Returns the spans and their
    token counts (``counts`` may pass the counts of ``spans`` when already known). Counting goes
    through ``counter`` (default: :class:`SpanCounter`), batched over all spans.
    """
    if counter is None:
        counter = SpanCounter(text, tokenizer)
    if counts is None:
        counts = counter(spans)
    over = [k for k, c in enumerate(counts) if c > max_tokens]
    if not over:
        return list(spans), list(counts)
    sentence_starts = [s for s, _ in sentences]
    inner: dict[int, list[tuple[int, int]]] = {}
    for k in over:
        start, end = spans[k]
        lo = bisect.bisect_left(sentence_starts, start)
        hi = bisect.bisect_left(sentence_starts, end)
        parts = [(max(s, start), min(e, end)) for s, e in sentences[lo:hi] if min(e, end) > max(s, start)]
        inner[k] = parts or [(start, end)]
    flat = [p for k in over for p in inner[k]]
    flat_counts = dict(zip(flat, counter(flat)))
    packed: dict[int, tuple[list[tuple[int, int]], list[tuple[int, int]]]] = {}
    for k in over:
        pieces: list[tuple[int, int]] = []
        piece_counts: list[int] = []
        for s, e in inner[k]:
            if flat_counts[(s, e)] <= max_tokens:
                pieces.append((s, e))
                piece_counts.append(flat_counts[(s, e)])
            else:
                cut = split_at_tokens(text, s, e, max_tokens, tokenizer)
                pieces.extend(cut)
                piece_counts.extend(counter(cut))
        packed[k] = (merge_spans(pieces, piece_counts, max_tokens), pieces)
    all_packed = [p for k in over for p in packed[k][0]]
    packed_counts = dict(zip(all_packed, counter(all_packed)))
    out_spans: list[tuple[int, int]] = []
    out_counts: list[int] = []
    over_set = set(over)
    for k, (span, count) in enumerate(zip(spans, counts)):
        if k not in over_set:
            out_spans.append(span)
            out_counts.append(count)
            continue
        merged, pieces = packed[k]
        for s, e in merged:
            c = packed_counts[(s, e)]
            if c <= max_tokens:
                out_spans.append((s, e))
                out_counts.append(c)
            else:  # additive counts under-estimated a joined span: fall back to its pieces
                sub = [p for p in pieces if p[0] >= s and p[1] <= e]
                out_spans.extend(sub)
                out_counts.extend(counter(sub))
    return out_spans, out_counts


def finish_spans(
    text: str,
    spans: Sequence[tuple[int, int]],
    sentences: Sequence[tuple[int, int]],
    tokenizer: TokenCounter,
    *,
    max_tokens: int | None,
    target_length: int | None,
    length_unit: LengthUnit,
) -> tuple[list[tuple[int, int]], list[int]]:
    """The shared tail of both Meta-Chunking chunkers: hard cap, optional dynamic merge, token counts.

    The cap is applied to the meta-chunks first (so merge only ever packs pieces within the cap),
    then the merge packs them up to ``target_length`` in ``length_unit`` without crossing
    ``max_tokens``; a final check re-splits any merged span whose real token count exceeds the cap.
    Returns non-empty, whitespace-trimmed spans and their token counts.
    """
    trimmed = [_trim(text, s, e) for s, e in spans]
    spans = [(s, e) for s, e in trimmed if e > s]
    counter = SpanCounter(text, tokenizer)
    counts: list[int] | None = None
    if max_tokens is not None:
        spans, counts = cap_spans(text, spans, sentences, max_tokens, tokenizer, counter=counter)
    if target_length is not None:
        if length_unit == "tokens":
            lengths = counts if counts is not None else counter(spans)
            token_counts = lengths
        else:
            lengths = measure_spans(text, spans, length_unit)
            token_counts = counts
        spans = merge_spans(spans, lengths, target_length, token_counts=token_counts, max_tokens=max_tokens)
        counts = None
    if counts is None:
        counts = counter(spans)
    if max_tokens is not None and any(c > max_tokens for c in counts):
        spans, counts = cap_spans(text, spans, sentences, max_tokens, tokenizer, counts, counter)
    return spans, counts
