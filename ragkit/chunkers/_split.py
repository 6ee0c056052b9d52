"""The token-space engine behind the baseline chunkers: cascade splitting, packing, exact caps.

A document is tokenised once (:class:`TokenView`); every candidate piece is then measured by
subtracting token indices, never by re-encoding. A *level* proposes cut positions inside a span
(headings, blank lines, lines, sentences, words, tokens). :class:`CascadePacker` splits a span at
the first level that has cuts, packs consecutive pieces greedily up to the target, and recurses into
pieces above the hard cap with the next level. :func:`finalize` trims the spans, verifies token
counts with the real tokenizer wherever the cut is not provably exact (inside a word, or any cut for
a BPE tokenizer), splits anything still above the cap, and builds the chunks.

Example:
    >>> from ragkit.text.tokenizers import get_tokenizer
    >>> from ragkit.types import Document
    >>> doc = Document.from_text("One. Two two.\\n\\nThree three three. Four.")
    >>> view = TokenView(doc.text, get_tokenizer("minilm"))
    >>> spans = CascadePacker(view, [RegexCuts(BLANK_LINE), SentenceCuts(), WordCuts()], max_tokens=6).split()
    >>> [c.text for c in finalize(doc, view, spans, max_tokens=6)]
    ['One. Two two.', 'Three three three. Four.']
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any

import numpy as np
from pydantic import Field

from ragkit.chunkers._chars import trim_span
from ragkit.chunkers.base import Chunker
from ragkit.errors import ConfigError, DocumentError
from ragkit.stage import collaborator_params, validate_params
from ragkit.text import token_ids
from ragkit.text.sentences import SentenceSplitter, split_sentences
from ragkit.text.tokenizers import Tokenizer, TokenizerName, get_tokenizer
from ragkit.types import Chunk, Document

BLANK_LINE = re.compile(r"\n[ \t\r\f\v]*\n\s*")
LINE = re.compile(r"\n\s*")

Span = tuple[int, int]


class TokenView:
    """A text tokenised once, with token-index arithmetic for counting any span.

    ``count(s, e)`` is the number of tokens starting in ``[s, e)``; it equals the real token count
    of ``text[s:e]`` whenever both ends are clean cuts (:meth:`clean`).
    """

    def __init__(self, text: str, tokenizer: Tokenizer) -> None:
        self.text = text
        self.tokenizer = tokenizer
        # ids only inside the index phase, where they are handed to the embedder (see finalize)
        wanted = token_ids.active() is not None and bool(getattr(tokenizer, "fingerprint", None))
        spans = tokenizer.spans(text, with_ids=True) if wanted else tokenizer.spans(text)
        self.spans = spans
        self.starts = spans.starts
        self.ends = spans.ends
        self.exact = spans.exact
        n = len(spans)
        self.cuttable = np.ones(n, dtype=bool)
        if n > 1:
            self.cuttable[1:] = spans.starts[1:] >= spans.ends[:-1]
        if spans.exact:
            self.word_cut = spans.cut_ok & self.cuttable
        else:
            # BPE: a word starts at a token that begins with (or right after) whitespace.
            word = np.zeros(n, dtype=bool)
            for i, s in enumerate(spans.starts.tolist()):
                word[i] = s == 0 or text[s].isspace() or text[s - 1].isspace()
            self.word_cut = word & self.cuttable

    def __len__(self) -> int:
        return len(self.spans)

    def index(self, positions: Any) -> Any:
        return self.spans.index(positions)

    def count(self, start: int, end: int) -> int:
        return self.spans.count(start, end)

    def clean(self, positions: Any) -> Any:
        return self.spans.clean(positions)

    def real_count(self, start: int, end: int) -> int:
        return self.tokenizer.count(self.text[start:end])

    def token_cuts(self, start: int, end: int, *, words_only: bool) -> np.ndarray:
        """Positions strictly inside ``(start, end)`` where a cut falls between two tokens."""
        i0, i1 = int(self.index(start)), int(self.index(end))
        if i1 - i0 < 2:
            return np.zeros(0, dtype=np.int64)
        allowed = (self.word_cut if words_only else self.cuttable)[i0 + 1:i1]
        positions = self.starts[i0 + 1:i1][allowed]
        return positions[(positions > start) & (positions < end)]


class Cuts:
    """A level of the cascade: cut positions strictly inside ``(start, end)``."""

    name = "cuts"

    def cuts(self, view: TokenView, start: int, end: int) -> np.ndarray:
        raise NotImplementedError


class FixedCuts(Cuts):
    """Cut positions computed once for the whole document (e.g. heading starts)."""

    def __init__(self, positions: Sequence[int] | np.ndarray, name: str = "fixed") -> None:
        self.positions = np.unique(np.asarray(positions, dtype=np.int64))
        self.name = name

    def cuts(self, view: TokenView, start: int, end: int) -> np.ndarray:
        lo = np.searchsorted(self.positions, start, side="right")
        hi = np.searchsorted(self.positions, end, side="left")
        return self.positions[lo:hi]


class RegexCuts(Cuts):
    """Cut at the end of every match of ``pattern`` (computed once per document, lazily)."""

    def __init__(self, pattern: re.Pattern[str], name: str = "regex") -> None:
        self.pattern = pattern
        self.name = name
        self._text: str | None = None
        self._positions = np.zeros(0, dtype=np.int64)

    def cuts(self, view: TokenView, start: int, end: int) -> np.ndarray:
        if self._text is not view.text:
            self._text = view.text
            self._positions = np.fromiter((m.end() for m in self.pattern.finditer(view.text)), dtype=np.int64)
        lo = np.searchsorted(self._positions, start, side="right")
        hi = np.searchsorted(self._positions, end, side="left")
        return self._positions[lo:hi]


class SentenceCuts(Cuts):
    """Cut between sentences (the splitter runs only on the spans that need it)."""

    name = "sentences"

    def __init__(self, splitter: str = "nupunkt") -> None:
        self.splitter = splitter

    def cuts(self, view: TokenView, start: int, end: int) -> np.ndarray:
        spans = split_sentences(view.text[start:end], self.splitter)
        return np.asarray([start + s for s, _e in spans[1:]], dtype=np.int64)


class WordCuts(Cuts):
    """Cut between words (token boundaries where the count stays exact)."""

    name = "words"

    def cuts(self, view: TokenView, start: int, end: int) -> np.ndarray:
        return view.token_cuts(start, end, words_only=True)


class TokenCuts(Cuts):
    """Cut between any two tokens (inside words too; counts are then verified)."""

    name = "tokens"

    def cuts(self, view: TokenView, start: int, end: int) -> np.ndarray:
        return view.token_cuts(start, end, words_only=False)


class CascadePacker:
    """Split a span down the cascade into pieces within the cap, then pack them greedily.

    A span above ``max_tokens`` is cut at the first level that has cuts inside it; each resulting
    piece above the cap is cut with the next level, and so on. The pieces (in document order) are
    then packed: consecutive pieces join while the chunk stays within ``target_tokens`` (default
    ``max_tokens``); a piece larger than the target but within the cap stays alone. Packing runs
    over all pieces, so a short paragraph next to a long one that had to be split shares a chunk with
    its first (or last) sentences. With ``overlap_tokens``, a new chunk starts with the trailing
    pieces of the previous one whose total is at most ``overlap_tokens``.
    """

    def __init__(
        self,
        view: TokenView,
        levels: Sequence[Cuts],
        *,
        max_tokens: int,
        target_tokens: int | None = None,
        overlap_tokens: int = 0,
    ) -> None:
        self.view = view
        self.levels = [*levels, WordCuts(), TokenCuts()]
        self.max_tokens = max_tokens
        self.target = min(target_tokens or max_tokens, max_tokens)
        self.overlap = overlap_tokens

    def split(self, start: int = 0, end: int | None = None) -> list[Span]:
        """Packed spans covering ``[start, end)`` (untrimmed; :func:`finalize` trims and verifies)."""
        end = len(self.view.text) if end is None else end
        bounds, counts = self.pieces(start, end)
        return self.pack(bounds, counts)

    def pieces(self, start: int, end: int) -> tuple[list[int], list[int]]:
        """The cascade's pieces of ``[start, end)``: boundaries and token counts (each within the cap).

        The span itself is split when it exceeds the target; a piece below it only when it exceeds the cap.
        """
        bounds: list[int] = [start]
        counts: list[int] = []
        self._pieces(start, end, 0, bounds, counts, self.target)
        return bounds, counts

    def _pieces(self, start: int, end: int, level: int, bounds: list[int], counts: list[int], limit: int) -> None:
        view = self.view
        total = view.count(start, end)
        if total <= limit:
            bounds.append(end)
            counts.append(total)
            return
        cuts = np.zeros(0, dtype=np.int64)
        while level < len(self.levels):
            cuts = self.levels[level].cuts(view, start, end)
            if cuts.size:
                break
            level += 1
        if not cuts.size:  # a single token above the cap; finalize reports it
            bounds.append(end)
            counts.append(total)
            return
        sub = np.concatenate(([start], cuts, [end]))
        sub_counts = np.diff(view.index(sub)).tolist()
        positions = sub.tolist()
        for k, count in enumerate(sub_counts):
            if count > self.max_tokens:
                self._pieces(positions[k], positions[k + 1], level + 1, bounds, counts, self.max_tokens)
            else:
                bounds.append(positions[k + 1])
                counts.append(count)

    def pack(self, bounds: Sequence[int], counts: Sequence[int]) -> list[Span]:
        """Greedy packing of pieces ``[bounds[k], bounds[k+1])`` with ``counts[k]`` tokens."""
        out: list[Span] = []
        target, overlap = self.target, self.overlap
        first = -1  # first piece of the running chunk
        total = 0
        for k, count in enumerate(counts):
            if first < 0:
                first, total = k, count
            elif total + count <= target:
                total += count
            else:
                out.append((bounds[first], bounds[k]))
                new_first, carried = k, 0
                if overlap:
                    j = k - 1
                    while j > first and carried + counts[j] <= overlap and carried + counts[j] + count <= target:
                        carried += counts[j]
                        j -= 1
                    new_first = j + 1
                first, total = new_first, carried + count
        if first >= 0:
            out.append((bounds[first], bounds[len(counts)]))
        return out


def finalize(doc: Document, view: TokenView, spans: Sequence[Span], max_tokens: int) -> list[Chunk]:
    """Chunks for ``spans``: trimmed, exact token counts, every chunk within ``max_tokens``.

    Counts come from token arithmetic where both ends are clean cuts and from the real tokenizer
    (batched) elsewhere; a span still above the cap is split at the longest prefix that fits,
    preferring word boundaries.
    """
    text = doc.text
    trimmed = [trim_span(text, s, e) for s, e in spans]
    trimmed = [(s, e) for s, e in trimmed if e > s]
    if not trimmed:
        return []
    arr = np.asarray(trimmed, dtype=np.int64)
    counts = (view.index(arr[:, 1]) - view.index(arr[:, 0])).astype(np.int64)
    exact = view.clean(arr[:, 0]) & view.clean(arr[:, 1])
    unverified = np.flatnonzero(~exact).tolist()
    if unverified:
        real = view.tokenizer.count_many([text[trimmed[i][0]:trimmed[i][1]] for i in unverified])
        counts[unverified] = real
    chunks: list[Chunk] = []
    for (s, e), count in zip(trimmed, counts.tolist()):
        if count <= max_tokens:
            chunks.append(Chunk.from_span(doc, s, e, token_count=count))
        else:
            for a, b, n in _repair(view, s, e, max_tokens):
                chunks.append(Chunk.from_span(doc, a, b, token_count=n))
    if token_ids.active() is not None:
        _hand_over_ids(view, arr, exact, chunks)
    return chunks


def _hand_over_ids(view: TokenView, spans: np.ndarray, exact: np.ndarray, chunks: list[Chunk]) -> None:
    """Give the embedder the ids of every chunk cut at clean positions (its ids are a slice of the document's).

    Between two clean cuts a WordPiece encoding of the substring equals the document's tokens in that
    range (:class:`~ragkit.text.tokenizers.TokenSpans`); chunks with an unclean end are left to the
    embedder to tokenise.
    """
    ids = view.spans.ids
    fingerprint = view.tokenizer.fingerprint
    if ids is None or not fingerprint:
        return
    clean = {(int(a), int(b)) for (a, b), ok in zip(spans.tolist(), exact.tolist()) if ok}
    if not clean:
        return
    bounds = np.asarray([(c.start, c.end) for c in chunks], dtype=np.int64)
    first, last = view.index(bounds[:, 0]), view.index(bounds[:, 1])
    for chunk, i, j in zip(chunks, first.tolist(), last.tolist()):
        if (chunk.start, chunk.end) in clean and j - i == chunk.token_count:
            token_ids.record(fingerprint, chunk.text, ids[i:j])


def _repair(view: TokenView, start: int, end: int, max_tokens: int) -> list[tuple[int, int, int]]:
    """Split ``[start, end)`` into trimmed spans of at most ``max_tokens`` real tokens."""
    text = view.text
    out: list[tuple[int, int, int]] = []
    while start < end:
        count = view.real_count(start, end)
        if count <= max_tokens:
            out.append((start, end, count))
            break
        # Prefer a word boundary unless it wastes more than half the budget.
        cut = _longest_fitting_prefix(view, start, view.token_cuts(start, end, words_only=True), max_tokens)
        if cut is None or cut[1] * 2 < max_tokens:
            inner = _longest_fitting_prefix(view, start, view.token_cuts(start, end, words_only=False), max_tokens)
            if inner is not None and (cut is None or inner[1] > cut[1]):
                cut = inner
        if cut is None:
            snippet = text[start:min(end, start + 40)]
            raise DocumentError(
                f"cannot cut the text at offset {start} ({snippet!r}) into pieces of at most max_tokens={max_tokens} "
                f"tokens: its smallest unit already has more. Raise max_tokens."
            )
        position, n, cut_end = cut
        out.append((start, cut_end, n))
        start, end = trim_span(text, position, end)
    return out


def _longest_fitting_prefix(
    view: TokenView, start: int, candidates: np.ndarray, max_tokens: int
) -> tuple[int, int, int] | None:
    """``(cut position, real count, trimmed end)`` of the longest prefix within the cap (binary search)."""
    text = view.text
    lo, hi = 0, len(candidates) - 1
    best = None
    while lo <= hi:
        mid = (lo + hi) // 2
        position = int(candidates[mid])
        s, e = trim_span(text, start, position)
        n = view.real_count(s, e) if e > s else 0
        if e > s and n <= max_tokens:
            best = (position, n, e)
            lo = mid + 1
        elif e <= s:
            lo = mid + 1
        else:
            hi = mid - 1
    return best


def check_params(stage: Any, *, max_tokens: int, target_tokens: int | None = None, overlap_tokens: int = 0) -> None:
    """Validate a chunker's parameters against its annotations, plus the cross-parameter rules."""
    cls = type(stage)
    refs = collaborator_params(cls)
    params = {k: v for k, v in stage.get_params().items() if k not in refs}
    validate_params(cls, params, "chunker")
    name = cls.__name__
    if target_tokens is not None and target_tokens > max_tokens:
        raise ConfigError(
            f"{name}: target_tokens ({target_tokens}) must not exceed max_tokens ({max_tokens}); lower "
            "target_tokens or raise max_tokens",
            [("target_tokens", f"{target_tokens} > max_tokens {max_tokens}", None)],
        )
    if overlap_tokens >= min(target_tokens or max_tokens, max_tokens):
        raise ConfigError(
            f"{name}: overlap_tokens ({overlap_tokens}) must be smaller than the chunk size "
            f"({target_tokens or max_tokens}); lower overlap_tokens",
            [("overlap_tokens", f"{overlap_tokens} >= chunk size", None)],
        )


class TokenizedChunker(Chunker):
    """Base of the baseline chunkers: loads the tokenizer in ``warm_up`` and tokenises each document once."""

    tokenizer: str

    def _load(self) -> None:
        self._tok = get_tokenizer(self.tokenizer)

    def _view(self, doc: Document) -> TokenView:
        return TokenView(doc.text, self._tok)

    def _finalize(self, doc: Document, view: TokenView, spans: Sequence[Span]) -> list[Chunk]:
        return finalize(doc, view, spans, self.max_tokens)  # type: ignore[attr-defined]


class PackingChunker(TokenizedChunker):
    """Shared constructor of the chunkers that pack pieces (sentence, paragraph, recursive, structure).

    Parameters: ``max_tokens`` (hard cap), ``target_tokens`` (pack up to this; default ``max_tokens``),
    ``overlap_tokens`` (trailing pieces repeated in the next chunk), ``splitter`` (sentence splitter),
    ``tokenizer`` (``minilm`` or ``cl100k``).
    """

    def __init__(
        self,
        *,
        max_tokens: Annotated[int, Field(gt=0)] = 256,
        target_tokens: Annotated[int, Field(gt=0)] | None = None,
        overlap_tokens: Annotated[int, Field(ge=0)] = 0,
        splitter: SentenceSplitter = "nupunkt",
        tokenizer: TokenizerName = "minilm",
    ) -> None:
        self.max_tokens = max_tokens
        self.target_tokens = target_tokens
        self.overlap_tokens = overlap_tokens
        self.splitter = splitter
        self.tokenizer = tokenizer
        check_params(self, max_tokens=max_tokens, target_tokens=target_tokens, overlap_tokens=overlap_tokens)

