"""BM25 retrieval with two interchangeable engines, ``bm25s`` (vectorised) and ``rank_bm25`` (reference).

Both engines see the same tokens (lower-cased ``\\w+`` words, optional stop words removed) and compute
the same formula, Okapi BM25 with Lucene's non-negative IDF::

    score(q, d) = sum over distinct query terms t of
                  idf(t) * tf(t, d) * (k1 + 1) / (tf(t, d) + k1 * (1 - b + b * |d| / avgdl))
    idf(t)      = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))

(rank-bm25's own ``BM25Okapi`` floors negative IDFs with an epsilon and bm25s's ``robertson`` clamps
them to zero; neither floor is needed with this IDF, which is positive for every term, so the two
engines agree up to float rounding.) Query terms are deduplicated; chunks without any query term
are not returned (as in Lucene), so fewer than ``k`` results means fewer than ``k`` chunks match.
``engine: auto`` picks ``bm25s`` (the faster; see ``benchmarks/RESULTS.md``) when installed.

Example:
    >>> from ragkit.types import Document, Chunk
    >>> doc = Document.from_text("the cat sat. the dog ran. a cat and a dog.")
    >>> chunks = [Chunk.from_span(doc, s, e, 3) for s, e in [(0, 12), (13, 25), (26, 42)]]
    >>> r = BM25Retriever(stopwords="en").index(chunks)
    >>> [s.chunk.text for s in r.retrieve("cat", k=5)]
    ['the cat sat.', 'a cat and a dog.']
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import Field
from tqdm.auto import tqdm

from ragkit._lazy import require
from ragkit.errors import ConfigError, IndexStoreError
from ragkit.retrievers._stopwords import ENGLISH
from ragkit.retrievers.base import Retriever, top_k_indices
from ragkit.store.atomic import atomic_write_json, atomic_write_npy, read_json, read_npy
from ragkit.types import Chunk, Query

ENGINES = ("bm25s", "rank_bm25")
_WORD = re.compile(r"\w+", re.UNICODE)


def idf(df: float, n_docs: float) -> float:
    """Lucene's non-negative BM25 IDF: ``ln(1 + (N - df + 0.5) / (df + 0.5))``."""
    return math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))


class Tokenizer:
    """The tokenizer both engines share: lower-cased ``\\w+`` words, optional stop words removed.

    Example:
        >>> Tokenizer(stopwords="en")("The Cats, the DOGS!")
        ['cats', 'dogs']
    """

    def __init__(self, stopwords: str | Sequence[str] | None = None) -> None:
        if stopwords is None:
            self.stopwords: frozenset[str] = frozenset()
        elif stopwords == "en":
            self.stopwords = ENGLISH
        elif isinstance(stopwords, str):
            raise ConfigError(f"bm25 stopwords: got {stopwords!r}; allowed: null, 'en', or a list of words")
        else:
            self.stopwords = frozenset(w.lower() for w in stopwords)

    def __call__(self, text: str) -> list[str]:
        words = _WORD.findall(text.lower())
        if self.stopwords:
            return [w for w in words if w not in self.stopwords]
        return words


class _RankBM25Engine:
    """rank-bm25's Okapi scorer with its IDF replaced by :func:`idf` (same formula as bm25s here)."""

    def __init__(self, docs: list[list[int]], k1: float, b: float) -> None:
        rank_bm25 = require("rank_bm25", "retrieval", "the rank_bm25 BM25 engine")

        class _LuceneIdfOkapi(rank_bm25.BM25Okapi):
            def _calc_idf(self, nd: dict[Any, int]) -> None:
                self.idf = {word: idf(freq, self.corpus_size) for word, freq in nd.items()}
                self.average_idf = sum(self.idf.values()) / max(len(self.idf), 1)

        self.model = _LuceneIdfOkapi(docs, k1=k1, b=b)

    def scores(self, term_ids: list[int]) -> np.ndarray:
        return np.asarray(self.model.get_scores(term_ids), dtype=np.float64)


class _BM25SEngine:
    """bm25s with ATIRE's term-frequency part (the ``(k1 + 1)`` numerator) and Lucene's IDF."""

    def __init__(self, model: Any) -> None:
        self.model = model

    @classmethod
    def build(cls, docs: list[list[int]], vocab_size: int, k1: float, b: float, show: bool | None) -> _BM25SEngine:
        bm25s = require("bm25s", "retrieval", "the bm25s BM25 engine")
        model = bm25s.BM25(k1=k1, b=b, method="atire", idf_method="lucene")
        vocab = {str(i): i for i in range(vocab_size)}  # string keys: bm25s saves its vocab as JSON
        model.index((docs, vocab), create_empty_token=False, show_progress=bool(show))
        return cls(model)

    @classmethod
    def load(cls, directory: Path) -> _BM25SEngine:
        bm25s = require("bm25s", "retrieval", "the bm25s BM25 engine")
        return cls(bm25s.BM25.load(str(directory), mmap=False, allow_pickle=False, show_progress=False))

    def save(self, directory: Path) -> None:
        self.model.save(str(directory), show_progress=False)

    def scores(self, term_ids: list[int]) -> np.ndarray:
        return np.asarray(self.model.get_scores_from_ids(term_ids), dtype=np.float64)


class BM25Retriever(Retriever):
    """Okapi BM25 (k1 1.5, b 0.75, Lucene IDF) over chunk text; filters mask scores before top-k.

    Parameters:
        engine: ``auto`` (``bm25s`` when installed, else ``rank_bm25``), ``bm25s`` or ``rank_bm25``.
        k1, b: BM25 saturation and length normalisation.
        stopwords: ``None`` (keep every word), ``"en"`` (a short English list) or a list of words.
        show_progress: progress bars on stderr (``None``: only on a terminal).

    Example:
        >>> from ragkit.types import Document, Chunk
        >>> doc = Document.from_text("alpha beta. beta gamma.")
        >>> r = BM25Retriever(engine="rank_bm25").index([Chunk.from_span(doc, 0, 11, 2), Chunk.from_span(doc, 12, 23, 2)])
        >>> r.retrieve("gamma", k=2)[0].chunk.text
        'beta gamma.'
    """

    source: ClassVar[str] = "bm25"
    query_time_params: ClassVar[frozenset[str]] = frozenset({"engine", "show_progress"})

    def __init__(
        self,
        *,
        engine: Literal["auto", "bm25s", "rank_bm25"] = "auto",
        k1: Annotated[float, Field(ge=0)] = 1.5,
        b: Annotated[float, Field(ge=0, le=1)] = 0.75,
        stopwords: Literal["en"] | list[str] | None = None,
        show_progress: bool | None = None,
    ) -> None:
        if engine not in ("auto", *ENGINES):
            raise ConfigError(f"bm25 engine: got {engine!r}; allowed: auto, {', '.join(ENGINES)}")
        self.engine = engine
        self.k1 = k1
        self.b = b
        self.stopwords = stopwords
        self.show_progress = show_progress

    # ------------------------------------------------------------------ loading
    def _load(self) -> None:
        self.tokenizer_ = Tokenizer(self.stopwords)
        self.engine_name_ = self.resolve_engine(self.engine)

    @staticmethod
    def resolve_engine(engine: str) -> str:
        """``auto`` → ``bm25s`` when importable, else ``rank_bm25``; explicit engines must be installed."""
        if engine == "auto":
            try:
                import bm25s  # noqa: F401
            except ImportError:
                require("rank_bm25", "retrieval", "BM25 retrieval")
                return "rank_bm25"
            return "bm25s"
        require(engine, "retrieval", f"the {engine} BM25 engine")
        return engine

    # ------------------------------------------------------------------ indexing
    def _index(self, chunks: list[Chunk]) -> None:
        vocab: dict[str, int] = {}
        docs: list[list[int]] = []
        for chunk in tqdm(chunks, desc="bm25: tokenising", unit="chunk", disable=self._no_bars(len(chunks))):
            docs.append([vocab.setdefault(word, len(vocab)) for word in self.tokenizer_(chunk.text)])
        self.vocab_ = vocab
        self.doc_terms_ = docs
        self._build_engine()

    def _build_engine(self) -> None:
        docs = self.doc_terms_
        self.engine_ = None
        if not docs or not any(docs):
            return  # nothing to score: every query returns []
        if self.engine_name_ == "bm25s":
            show = not self._no_bars(len(docs))
            self.engine_ = _BM25SEngine.build(docs, len(self.vocab_), self.k1, self.b, show)
        else:
            self.engine_ = _RankBM25Engine(docs, self.k1, self.b)

    def _no_bars(self, n: int) -> bool | None:
        if self.show_progress is None:
            return None if n >= 10_000 else True
        return not self.show_progress

    # ------------------------------------------------------------------ querying
    def term_ids(self, text: str) -> list[int]:
        """Distinct known query terms as vocabulary ids (query order)."""
        seen: dict[int, None] = {}
        for word in self.tokenizer_(text):
            term = self.vocab_.get(word)
            if term is not None:
                seen.setdefault(term, None)
        return list(seen)

    def scores(self, query: Query | str) -> np.ndarray:
        """BM25 score of every indexed chunk for ``query`` (zeros where no query term occurs)."""
        self._require_index()
        text = query.text if isinstance(query, Query) else query
        terms = self.term_ids(text)
        if self.engine_ is None or not terms:
            return np.zeros(len(self.doc_terms_), dtype=np.float64)
        return self.engine_.scores(terms)

    def _retrieve(self, query: Query, k: int, mask: np.ndarray | None) -> list[tuple[int, float]]:
        scores = self.scores(query)
        top = top_k_indices(scores, k, mask, positive_only=True)
        return [(int(i), float(scores[i])) for i in top]

    # ------------------------------------------------------------------ persistence
    def _save_state(self, directory: Path) -> None:
        lengths = np.fromiter((len(d) for d in self.doc_terms_), dtype=np.int64, count=len(self.doc_terms_))
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = np.fromiter((t for d in self.doc_terms_ for t in d), dtype=np.int32, count=int(offsets[-1]))
        terms = [None] * len(self.vocab_)
        for word, i in self.vocab_.items():
            terms[i] = word
        atomic_write_json(directory / "bm25_vocab.json", terms, indent=None)
        atomic_write_npy(directory / "bm25_terms.npy", flat)
        atomic_write_npy(directory / "bm25_offsets.npy", offsets)
        atomic_write_json(directory / "bm25.json", {"engine": self.engine_name_, "k1": self.k1, "b": self.b,
                                                    "tokenizer": "lowercase \\w+", "idf": "lucene",
                                                    "stopwords": self.stopwords})
        if isinstance(self.engine_, _BM25SEngine):
            self.engine_.save(directory / "bm25s")

    def _load_state(self, directory: Path, chunks: list[Chunk]) -> None:
        try:
            terms = read_json(directory / "bm25_vocab.json")
            flat = read_npy(directory / "bm25_terms.npy")
            offsets = read_npy(directory / "bm25_offsets.npy")
            meta = read_json(directory / "bm25.json")
        except (OSError, ValueError) as exc:
            raise IndexStoreError(f"{directory}: BM25 state unreadable ({exc}); rebuild the index (--rebuild)") from exc
        if len(offsets) != len(chunks) + 1:
            raise IndexStoreError(f"{directory}: BM25 state covers {len(offsets) - 1} chunks, chunks.jsonl has "
                                  f"{len(chunks)}; rebuild the index (--rebuild)")
        self.vocab_ = {word: i for i, word in enumerate(terms)}
        flat_list = flat.tolist()
        self.doc_terms_ = [flat_list[offsets[i]:offsets[i + 1]] for i in range(len(chunks))]
        saved_bm25s = directory / "bm25s"
        if self.engine_name_ == "bm25s" and meta.get("engine") == "bm25s" and saved_bm25s.is_dir():
            self.engine_ = _BM25SEngine.load(saved_bm25s)
        else:
            self._build_engine()
