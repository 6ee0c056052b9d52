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

from ragkit._lazy import import_bm25s, require
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


def score_matrix(terms: np.ndarray, offsets: np.ndarray, vocab_size: int, k1: float,
                 b: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The BM25 score of every (term, document) pair, vectorised, as a CSC matrix by term.

    ``terms`` holds every document's term ids back to back, ``offsets`` where each document starts
    (``len(docs) + 1`` entries). Returns ``(data, indices, indptr)``: for term ``t`` the documents
    ``indices[indptr[t]:indptr[t + 1]]`` (ascending) score ``data[...]`` (bm25s's layout). Uses
    scipy's O(nnz) sparse conversions when available, else numpy sorting.
    """
    n_docs = len(offsets) - 1
    lengths = np.diff(offsets).astype(np.float64)
    avgdl = lengths.mean() if n_docs else 0.0
    try:
        from scipy import sparse
    except ImportError:
        sparse = None
    if sparse is not None:
        # copies: scipy sorts index arrays in place, and ``terms``/``offsets`` are the retriever's state
        counts = sparse.csr_matrix((np.ones(len(terms), dtype=np.float64), terms.copy(), offsets.copy()),
                                   shape=(n_docs, vocab_size))
        counts.sum_duplicates()  # term frequencies; one entry per (document, term)
        tf, words = counts.data, counts.indices
        docs = np.repeat(np.arange(n_docs), np.diff(counts.indptr))
    else:
        doc_of = np.repeat(np.arange(n_docs, dtype=np.int64), np.diff(offsets))
        pairs, tf = np.unique(doc_of * vocab_size + terms.astype(np.int64), return_counts=True)
        docs, words = pairs // vocab_size, pairs % vocab_size
    df = np.bincount(words, minlength=vocab_size).astype(np.float64)
    inverse = np.log1p((n_docs - df + 0.5) / (df + 0.5))
    values = inverse[words] * tf * (k1 + 1) / (tf + k1 * (1 - b + b * lengths[docs] / avgdl))
    if sparse is not None:
        by_term = sparse.csr_matrix((values, words, counts.indptr), shape=(n_docs, vocab_size)).tocsc()
        data, indices = by_term.data, by_term.indices
    else:
        order = np.argsort(words.astype(np.int64) * n_docs + docs)
        data, indices = values[order], docs[order]
    indptr = np.zeros(vocab_size + 1, dtype=np.int64)
    np.cumsum(df.astype(np.int64), out=indptr[1:])
    return data.astype(np.float32), indices.astype(np.int32), indptr


class _RankBM25Engine:
    """rank-bm25's Okapi scorer with its IDF replaced by :func:`idf` (the reference implementation)."""

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
    """bm25s's sparse score matrix and scorer, with ATIRE's ``(k1 + 1)`` numerator and Lucene's IDF.

    The matrix is filled by :func:`score_matrix` (vectorised); bm25s's own builder loops over
    documents in Python and is several times slower at 100k chunks (``build_native`` keeps it for
    the benchmark). Scoring is bm25s's ``get_scores_from_ids``.
    """

    FILES = ("bm25s_data.npy", "bm25s_indices.npy", "bm25s_indptr.npy")

    def __init__(self, model: Any) -> None:
        self.model = model

    @staticmethod
    def _new(k1: float, b: float) -> Any:
        bm25s = import_bm25s()
        return bm25s.BM25(k1=k1, b=b, method="atire", idf_method="lucene")

    @classmethod
    def build(cls, terms: np.ndarray, offsets: np.ndarray, vocab_size: int, k1: float, b: float) -> _BM25SEngine:
        model = cls._new(k1, b)
        data, indices, indptr = score_matrix(terms, offsets, vocab_size, k1, b)
        model.scores = {"data": data, "indices": indices, "indptr": indptr, "num_docs": len(offsets) - 1}
        model.nonoccurrence_array = None
        return cls(model)

    @classmethod
    def build_native(cls, docs: list[list[int]], vocab_size: int, k1: float, b: float) -> _BM25SEngine:
        """bm25s's own index builder (same matrix, Python loop per document)."""
        model = cls._new(k1, b)
        model.index((docs, {str(i): i for i in range(vocab_size)}), create_empty_token=False, show_progress=False)
        return cls(model)

    @classmethod
    def load(cls, directory: Path, n_docs: int, k1: float, b: float) -> _BM25SEngine:
        model = cls._new(k1, b)
        model.load_scores(str(directory), *cls.FILES, num_docs=n_docs, mmap=False, allow_pickle=False)
        model.nonoccurrence_array = None
        return cls(model)

    def save(self, directory: Path) -> None:
        for name, key in zip(self.FILES, ("data", "indices", "indptr")):
            atomic_write_npy(directory / name, self.model.scores[key])

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
                import_bm25s()
            except ImportError:
                require("rank_bm25", "retrieval", "BM25 retrieval")
                return "rank_bm25"
            return "bm25s"
        if engine == "bm25s":
            import_bm25s()
        else:
            require(engine, "retrieval", f"the {engine} BM25 engine")
        return engine

    # ------------------------------------------------------------------ indexing
    def _index(self, chunks: list[Chunk]) -> None:
        vocab: dict[str, int] = {}
        lengths = np.zeros(len(chunks), dtype=np.int64)
        flat: list[int] = []
        for i, chunk in enumerate(tqdm(chunks, desc="bm25: tokenising", unit="chunk",
                                       disable=self._no_bars(len(chunks)))):
            ids = [vocab.setdefault(word, len(vocab)) for word in self.tokenizer_(chunk.text)]
            flat.extend(ids)
            lengths[i] = len(ids)
        self.vocab_ = vocab
        self.terms_ = np.asarray(flat, dtype=np.int32)
        self.offsets_ = np.zeros(len(chunks) + 1, dtype=np.int64)
        np.cumsum(lengths, out=self.offsets_[1:])
        self._build_engine()

    def doc_terms(self) -> list[list[int]]:
        """Each chunk's term ids (materialised from the flat arrays; rank-bm25 needs lists)."""
        flat = self.terms_.tolist()
        bounds = self.offsets_.tolist()
        return [flat[bounds[i]:bounds[i + 1]] for i in range(len(bounds) - 1)]

    def _build_engine(self) -> None:
        self.engine_ = None
        if len(self.offsets_) <= 1 or len(self.terms_) == 0:
            return  # nothing to score: every query returns []
        if self.engine_name_ == "bm25s":
            self.engine_ = _BM25SEngine.build(self.terms_, self.offsets_, len(self.vocab_), self.k1, self.b)
        else:
            self.engine_ = _RankBM25Engine(self.doc_terms(), self.k1, self.b)

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
            return np.zeros(len(self.offsets_) - 1, dtype=np.float64)
        return self.engine_.scores(terms)

    def _retrieve(self, query: Query, k: int, mask: np.ndarray | None) -> list[tuple[int, float]]:
        scores = self.scores(query)
        top = top_k_indices(scores, k, mask, positive_only=True, ties=self.tie_ranks())
        return [(int(i), float(scores[i])) for i in top]

    # ------------------------------------------------------------------ persistence
    def _save_state(self, directory: Path) -> None:
        terms = [""] * len(self.vocab_)
        for word, i in self.vocab_.items():
            terms[i] = word
        atomic_write_json(directory / "bm25_vocab.json", terms, indent=None)
        atomic_write_npy(directory / "bm25_terms.npy", self.terms_)
        atomic_write_npy(directory / "bm25_offsets.npy", self.offsets_)
        atomic_write_json(directory / "bm25.json", {"engine": self.engine_name_, "k1": self.k1, "b": self.b,
                                                    "tokenizer": "lowercase \\w+", "idf": "lucene",
                                                    "stopwords": self.stopwords})
        if isinstance(self.engine_, _BM25SEngine):
            self.engine_.save(directory)

    def _load_state(self, directory: Path, chunks: list[Chunk]) -> None:
        try:
            terms = read_json(directory / "bm25_vocab.json")
            self.terms_ = read_npy(directory / "bm25_terms.npy")
            self.offsets_ = read_npy(directory / "bm25_offsets.npy")
            meta = read_json(directory / "bm25.json")
        except (OSError, ValueError) as exc:
            raise IndexStoreError(f"{directory}: BM25 state unreadable ({exc}); rebuild the index (--rebuild)") from exc
        if len(self.offsets_) != len(chunks) + 1:
            raise IndexStoreError(f"{directory}: BM25 state covers {len(self.offsets_) - 1} chunks, chunks.jsonl has "
                                  f"{len(chunks)}; rebuild the index (--rebuild)")
        self.vocab_ = {word: i for i, word in enumerate(terms)}
        saved_matrix = all((directory / name).is_file() for name in _BM25SEngine.FILES)
        if self.engine_name_ == "bm25s" and meta.get("engine") == "bm25s" and saved_matrix:
            self.engine_ = _BM25SEngine.load(directory, len(chunks), self.k1, self.b)
        else:
            self._build_engine()
