"""Embedding views that use LLM-generated chunk metadata (METHODS.md §6.2, arXiv 2512.05411).

Chunks carry metadata from the ``llm_metadata`` enricher under ``metadata["llm"]`` (and, optionally,
a situating sentence from ``context_prefix`` under ``metadata["context"]``). These views turn it into
vectors; ``chunk.text`` is never changed and chunk-size limits apply to the text alone — the
metadata is added only here, when embedding.

- ``prefix_fusion`` (the study's prefix fusion): embed ``"<prefix> " + text``, the prefix being
  bracket tags such as ``[Intent:How-To] [Procedural] [Entities:Acme|Bolt] [Q:HowDoIResetIt]``
  (:func:`format_prefix`). The query gets a prefix in the same format from a pluggable,
  heuristic builder (``query_prefix``: ``generic`` by default, ``none``, or your own via
  :func:`register_query_prefix`; the prefix formatting and the builders live in
  :mod:`ragkit.retrievers.metadata_prefix`); the default uses generic intent and content-type cues and the
  entities/keywords seen in the index's metadata (learned by ``fit`` and persisted).
- ``tfidf_weighted`` (the study's TF-IDF weighting, as evaluated): ``v = normalise(0.7 ·
  normalise(embed(text)) + 0.3 · normalise(t))`` where ``t`` is the TF-IDF vector of the chunk's
  keyword string (unigrams + bigrams, English stop words, at most 384 features), zero-padded or
  truncated to the dense dimension. Note that this *adds TF-IDF weights onto unrelated dense
  dimensions*; it is implemented because it is what the study measured. The query mixes its dense
  vector with the TF-IDF vector of its content words (stop words removed, length > 3).
  **Deviation from the authors' code, on purpose:** their retriever re-fits the vectorizer at query
  time on the first 100 chunks, so query and index TF-IDF dimensions do not match; here one
  vectorizer is fitted on all indexed chunks (``fit``), persisted with the index (``state()``:
  vocabulary and idf) and reused for every query.
- ``tfidf_concat`` (**ragkit's own variant, not from the study**): the aligned version,
  ``[sqrt(0.7) · normalise(dense), sqrt(0.3) · normalise(t)]`` concatenated (dimension ``d + F``), so
  the inner product is exactly ``0.7 · cos(dense) + 0.3 · cos(tfidf)``. Rows have norm at most 1
  (less when a chunk has no metadata terms, which then scores 0 on the TF-IDF part).

Chunks without metadata (an enricher that gave up on them, or no enricher) still embed: no prefix,
a zero TF-IDF part.

Example:
    >>> from ragkit.testing.fakes import FakeEmbedder
    >>> from ragkit.types import Document, Chunk
    >>> doc = Document.from_text("Drain the oil, then replace the filter.")
    >>> meta = {"llm": {"content_type": "Procedural", "intent": "How-To", "keywords": ["oil", "filter"],
    ...                 "question": "How do I change the oil?"}}
    >>> chunk = Chunk.from_span(doc, 0, 39, 9, meta)
    >>> view = PrefixFusionView()
    >>> view.chunk_texts([chunk])[0]
    '[Intent:How-To] [Procedural] [Keywords:oil|filter] [Q:HowDoIChangeTheOil] Drain the oil, then replace the filter.'
    >>> tfidf = TfidfWeightedView()
    >>> tfidf.fit([chunk])
    >>> tfidf.embed_chunks([chunk], FakeEmbedder(dimension=16)).shape
    (1, 16)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from ragkit.errors import ConfigError, ViewWarning
from ragkit.retrievers.metadata_prefix import (  # noqa: F401  (re-exported)
    DEFAULT_GROUP_ORDER,
    FIELD_ALIASES,
    QUERY_PREFIX_BUILDERS,
    SKIPPED_BY_DEFAULT,
    QueryPrefixBuilder,
    QueryVocabulary,
    camel_case,
    content_words,
    format_prefix,
    generic_query_metadata,
    no_query_metadata,
    prefix_groups,
    register_query_prefix,
    stop_words,
)
from ragkit.retrievers.views import EmbeddingView, l2_normalise
from ragkit.text import token_ids
from ragkit.types import Chunk, Query


def _metadata_records(chunks: Sequence[Chunk], key: str) -> list[Mapping[str, Any]]:
    return [m if isinstance(m := c.metadata.get(key), Mapping) else {} for c in chunks]


def _warn_if_empty(view: str, key: str, records: Sequence[Mapping[str, Any]]) -> None:
    if records and not any(records):
        warnings.warn(
            f"view {view!r}: none of the {len(records)} chunks has metadata under {key!r}, so it behaves like "
            f"'content'; add the llm_metadata enricher (index.enrichers: [{{type: llm_metadata}}]) or set "
            f"view_options.key", ViewWarning, stacklevel=3)


# ---------------------------------------------------------------------------------------------------
# views

class PrefixFusionView(EmbeddingView):
    """``prefix_fusion``: embed ``"<metadata prefix> " + chunk.text``; the query gets a prefix in the same format.

    Options (``index.retriever.view_options``):
        key: metadata key of the LLM fields (``llm``).
        context_key: metadata key of ``context_prefix`` output (``context``); ``null`` to ignore it.
        fields: which fields make tags, in order (default: every field but long ones such as summary,
            in the study's order: intent, service, content type, category, code, ..., question).
        query_prefix: name of the query-side builder (``generic``, ``none``, or registered).
        max_prefix_chars: tags are dropped from the end to keep the tag part this short.
        max_items: list fields show at most this many items.
        question_chars: the CamelCase ``[Q:...]`` tag is cut to this many characters (the study: 50).
        context_chars: the situating line is clipped to this many characters.

    Example:
        >>> view = PrefixFusionView(query_prefix="none")
        >>> view.query_text(Query.from_text("how do I reset it?"))
        'how do I reset it?'
    """

    name: ClassVar[str] = "prefix_fusion"

    def __init__(self, *, key: str = "llm", context_key: str | None = "context", fields: Sequence[str] | None = None,
                 query_prefix: str = "generic", max_prefix_chars: int = 200, max_items: int = 3,
                 question_chars: int = 50, context_chars: int = 200) -> None:
        if query_prefix not in QUERY_PREFIX_BUILDERS:
            raise ConfigError(f"view prefix_fusion: query_prefix {query_prefix!r} is not registered; available: "
                              f"{', '.join(sorted(QUERY_PREFIX_BUILDERS))} (add one with register_query_prefix)")
        for name, value, low in (("max_prefix_chars", max_prefix_chars, 0), ("max_items", max_items, 1),
                                 ("question_chars", question_chars, 1), ("context_chars", context_chars, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"view prefix_fusion: {name} must be an integer >= {low}, got {value!r}")
        if fields is not None and (isinstance(fields, str) or not all(isinstance(f, str) for f in fields)):
            raise ConfigError(f"view prefix_fusion: fields must be a list of field names, got {fields!r}")
        self.key = key
        self.context_key = context_key
        self.fields = list(fields) if fields is not None else None
        self.query_prefix = query_prefix
        self.max_prefix_chars = max_prefix_chars
        self.max_items = max_items
        self.question_chars = question_chars
        self.context_chars = context_chars
        self.options = {"key": key, "context_key": context_key, "fields": self.fields, "query_prefix": query_prefix,
                        "max_prefix_chars": max_prefix_chars, "max_items": max_items,
                        "question_chars": question_chars, "context_chars": context_chars}
        self.vocabulary_ = QueryVocabulary()

    def _format(self, metadata: Mapping[str, Any] | None, context: Mapping[str, Any] | None) -> str:
        return format_prefix(metadata, context, fields=self.fields, max_chars=self.max_prefix_chars,
                             max_items=self.max_items, question_chars=self.question_chars,
                             context_chars=self.context_chars)

    def prefix(self, chunk: Chunk) -> str:
        """The prefix of one chunk (``""`` without metadata)."""
        context = chunk.metadata.get(self.context_key) if self.context_key else None
        return self._format(chunk.metadata.get(self.key), context if isinstance(context, Mapping) else None)

    def fit(self, chunks: Sequence[Chunk]) -> None:
        records = _metadata_records(chunks, self.key)
        _warn_if_empty(self.name, self.key, records)
        self.vocabulary_ = QueryVocabulary.from_metadata(records)

    def chunk_texts(self, chunks: Sequence[Chunk]) -> list[str]:
        # inside the index phase, each prefixed text is declared as prefix + " " + chunk text, so an
        # embedder holding the chunker's ids for the chunk text tokenises only the prefix
        ids = token_ids.active()
        out = []
        for chunk in chunks:
            prefix = self.prefix(chunk)
            text = f"{prefix} {chunk.text}" if prefix else chunk.text
            if prefix and ids is not None:
                ids.add_joined(text, prefix, chunk.text)
            out.append(text)
        return out

    def query_metadata(self, query: Query) -> Mapping[str, Any]:
        return QUERY_PREFIX_BUILDERS[self.query_prefix](query.text, self.vocabulary_)

    def query_text(self, query: Query) -> str:
        prefix = self._format(self.query_metadata(query), None)
        return f"{prefix} {query.text}" if prefix else query.text

    def state(self) -> dict[str, Any]:
        return {"vocabulary": self.vocabulary_.state()}

    def set_state(self, state: Mapping[str, Any]) -> None:
        self.vocabulary_ = QueryVocabulary.from_state(state.get("vocabulary") or {})


#: Metadata fields whose text goes into the TF-IDF keyword string (the study's list, plus ``topic``).
TFIDF_FIELDS: tuple[str, ...] = (
    "keywords", "entities", "topic", "primary_category", "category", "secondary_categories",
    "mentioned_services", "mentioned_tools",
)
#: Question-like fields: only their content words go in.
TFIDF_QUESTION_FIELDS: tuple[str, ...] = ("potential_questions", "question", "questions", "common_queries")


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _strings(v)]
    return []


def keyword_string(metadata: Mapping[str, Any] | None, fields: Sequence[str] | None = None) -> str:
    """The text TF-IDF sees for one chunk (METHODS §6.2): keywords + entities + categories + services + content words of the potential questions + ``tf_idf_keywords``.

    ``tf_idf_keywords`` is the study's derived field ``dedup(keywords + entities + services)[:15]``;
    when the metadata has none it is derived the same way, so those terms count twice, as they did in
    the study. ``fields`` replaces the field list (question-like names still give content words only).

    Example:
        >>> keyword_string({"keywords": ["oil", "filter"], "entities": ["Acme"], "question": "How to drain oil?"})
        'oil filter Acme drain oil filter Acme'
    """
    if not isinstance(metadata, Mapping) or not metadata:
        return ""
    wanted = list(fields) if fields is not None else [*TFIDF_FIELDS, *TFIDF_QUESTION_FIELDS]
    parts: list[str] = []
    for name in wanted:
        if name not in metadata:
            continue
        values = _strings(metadata[name])
        if name in TFIDF_QUESTION_FIELDS:
            parts.extend(w for v in values for w in content_words(v))
        else:
            parts.extend(values)
    derived = metadata.get("tf_idf_keywords")
    if derived is None and fields is None:
        seen: dict[str, None] = {}
        for name in ("keywords", "entities", "mentioned_services"):
            for v in _strings(metadata.get(name)):
                seen.setdefault(v, None)
        derived = list(seen)[:15]
    parts.extend(_strings(derived))
    return " ".join(" ".join(p.split()) for p in parts if p.strip())


class TfidfWeightedView(EmbeddingView):
    """``tfidf_weighted``: the study's mix ``normalise(0.7·dense + 0.3·pad_or_truncate(tfidf))``.

    One ``TfidfVectorizer`` (``ngram_range``, English stop words, ``max_features``) is fitted on the
    keyword strings of all indexed chunks in :meth:`fit` and reused for every query; its vocabulary
    and idf weights are the view's persisted state.

    Options: ``key`` (``llm``), ``dense_weight`` (0.7), ``tfidf_weight`` (0.3), ``max_features``
    (384), ``ngram_range`` ([1, 2]), ``fields`` (keyword-string fields, see :func:`keyword_string`).

    Example:
        >>> view = TfidfWeightedView(dense_weight=0.5, tfidf_weight=0.5)
        >>> view.options["ngram_range"]
        [1, 2]
    """

    name: ClassVar[str] = "tfidf_weighted"

    def __init__(self, *, key: str = "llm", dense_weight: float = 0.7, tfidf_weight: float = 0.3,
                 max_features: int = 384, ngram_range: Sequence[int] = (1, 2),
                 fields: Sequence[str] | None = None) -> None:
        for name, value in (("dense_weight", dense_weight), ("tfidf_weight", tfidf_weight)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or not math.isfinite(value):
                raise ConfigError(f"view {self.name}: {name} must be a number >= 0, got {value!r}")
        if dense_weight + tfidf_weight <= 0:
            raise ConfigError(f"view {self.name}: dense_weight + tfidf_weight must be > 0, got {dense_weight} + {tfidf_weight}")
        if isinstance(max_features, bool) or not isinstance(max_features, int) or max_features < 1:
            raise ConfigError(f"view {self.name}: max_features must be a positive integer, got {max_features!r}")
        grams = list(ngram_range)
        if len(grams) != 2 or not all(isinstance(g, int) and g >= 1 for g in grams) or grams[0] > grams[1]:
            raise ConfigError(f"view {self.name}: ngram_range must be [min, max] with 1 <= min <= max, got {ngram_range!r}")
        if fields is not None and (isinstance(fields, str) or not all(isinstance(f, str) for f in fields)):
            raise ConfigError(f"view {self.name}: fields must be a list of field names, got {fields!r}")
        self.key = key
        self.dense_weight = float(dense_weight)
        self.tfidf_weight = float(tfidf_weight)
        self.max_features = max_features
        self.ngram_range = grams
        self.fields = list(fields) if fields is not None else None
        self.options = {"key": key, "dense_weight": self.dense_weight, "tfidf_weight": self.tfidf_weight,
                        "max_features": max_features, "ngram_range": grams, "fields": self.fields}
        self.vocabulary_: list[str] = []
        self.idf_: np.ndarray = np.zeros(0)
        self.fit_count_ = 0
        self._vectorizer: Any = None

    # ------------------------------------------------------------------ TF-IDF
    def _new_vectorizer(self, vocabulary: Mapping[str, int] | None = None) -> Any:
        from sklearn.feature_extraction.text import TfidfVectorizer

        return TfidfVectorizer(ngram_range=tuple(self.ngram_range), stop_words="english",
                               max_features=None if vocabulary is not None else self.max_features,
                               vocabulary=vocabulary)

    def fit(self, chunks: Sequence[Chunk]) -> None:
        """Fit the one vectorizer on all chunks' keyword strings (an empty vocabulary gives a zero TF-IDF part)."""
        records = _metadata_records(chunks, self.key)
        _warn_if_empty(self.name, self.key, records)
        texts = [keyword_string(m, self.fields) for m in records]
        self.fit_count_ += 1
        vectorizer = self._new_vectorizer()
        try:
            vectorizer.fit(texts)
        except ValueError:  # empty vocabulary: no chunk has usable metadata terms
            self._set(vocabulary=[], idf=np.zeros(0))
            return
        vocab = sorted(vectorizer.vocabulary_.items(), key=lambda kv: kv[1])
        self._set([term for term, _ in vocab], np.asarray(vectorizer.idf_, dtype=np.float64))

    def _set(self, vocabulary: list[str], idf: np.ndarray) -> None:
        self.vocabulary_ = list(vocabulary)
        self.idf_ = np.asarray(idf, dtype=np.float64)
        self._vectorizer = None
        if self.vocabulary_:
            vectorizer = self._new_vectorizer({t: i for i, t in enumerate(self.vocabulary_)})
            vectorizer.idf_ = self.idf_
            self._vectorizer = vectorizer

    @property
    def n_features(self) -> int:
        return len(self.vocabulary_)

    def tfidf(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised TF-IDF rows (``len(texts) × n_features``) from the fitted vectorizer (never refitted)."""
        if self._vectorizer is None:
            return np.zeros((len(texts), 0), dtype=np.float32)
        return np.asarray(self._vectorizer.transform(list(texts)).toarray(), dtype=np.float32)

    def chunk_tfidf(self, chunks: Sequence[Chunk]) -> np.ndarray:
        return self.tfidf([keyword_string(m, self.fields) for m in _metadata_records(chunks, self.key)])

    def query_tfidf(self, query: Query) -> np.ndarray:
        """The query's TF-IDF row: its content words (stop words removed, length > 3), same vectorizer."""
        return self.tfidf([" ".join(content_words(query.text))])[0]

    @staticmethod
    def pad_or_truncate(rows: np.ndarray, dimension: int) -> np.ndarray:
        """Zero-pad or cut the columns of ``rows`` to ``dimension`` (the study's alignment-free fit).

        Example:
            >>> TfidfWeightedView.pad_or_truncate(np.ones((1, 2)), 4).tolist()
            [[1.0, 1.0, 0.0, 0.0]]
        """
        rows = np.atleast_2d(np.asarray(rows, dtype=np.float32))
        if rows.shape[1] >= dimension:
            return rows[:, :dimension]
        return np.hstack([rows, np.zeros((rows.shape[0], dimension - rows.shape[1]), dtype=np.float32)])

    def mix(self, dense: np.ndarray, tfidf: np.ndarray) -> np.ndarray:
        """``normalise(w_d · normalise(dense) + w_t · normalise(pad_or_truncate(tfidf, d)))`` per row."""
        dense = l2_normalise(np.atleast_2d(dense))
        t = l2_normalise(self.pad_or_truncate(tfidf, dense.shape[1]))
        return l2_normalise(self.dense_weight * dense + self.tfidf_weight * t)

    # ------------------------------------------------------------------ the view interface
    def embed_chunks(self, chunks: Sequence[Chunk], embedder: Any) -> np.ndarray:
        if not chunks:
            return np.zeros((0, 0), dtype=np.float32)
        dense = np.asarray(embedder.embed_documents([c.text for c in chunks]), dtype=np.float32)
        return self.mix(dense, self.chunk_tfidf(chunks))

    def embed_query(self, query: Query, embedder: Any) -> np.ndarray:
        dense = np.asarray(embedder.embed_query(query.text), dtype=np.float32).reshape(1, -1)
        return self.mix(dense, self.query_tfidf(query).reshape(1, -1))[0]

    def state(self) -> dict[str, Any]:
        return {"vocabulary": list(self.vocabulary_), "idf": [float(x) for x in self.idf_]}

    def set_state(self, state: Mapping[str, Any]) -> None:
        vocabulary = list(state.get("vocabulary") or [])
        idf = np.asarray(state.get("idf") or [], dtype=np.float64)
        if len(vocabulary) != len(idf):
            raise ConfigError(f"view {self.name}: saved state has {len(vocabulary)} terms but {len(idf)} idf weights; "
                              "rebuild the index (--rebuild)")
        self._set(vocabulary, idf)


class TfidfConcatView(TfidfWeightedView):
    """``tfidf_concat`` (**ragkit's own variant**, not the study's): aligned concatenation ``[sqrt(w_d)·normalise(dense), sqrt(w_t)·normalise(tfidf)]``, so that the inner product of a query and a chunk is exactly ``w_d·cos(dense) + w_t·cos(tfidf)``. Dimension ``d + n_features``.

    Example:
        >>> view = TfidfConcatView()
        >>> [round(float(x), 3) for x in view.concat(np.array([[1.0, 0.0]]), np.array([[0.0, 2.0, 0.0]]))[0]]
        [0.837, 0.0, 0.0, 0.548, 0.0]
    """

    name: ClassVar[str] = "tfidf_concat"

    def concat(self, dense: np.ndarray, tfidf: np.ndarray) -> np.ndarray:
        dense = l2_normalise(np.atleast_2d(dense))
        t = l2_normalise(np.atleast_2d(np.asarray(tfidf, dtype=np.float32)))
        return np.hstack([math.sqrt(self.dense_weight) * dense, math.sqrt(self.tfidf_weight) * t]).astype(np.float32)

    def embed_chunks(self, chunks: Sequence[Chunk], embedder: Any) -> np.ndarray:
        if not chunks:
            return np.zeros((0, 0), dtype=np.float32)
        dense = np.asarray(embedder.embed_documents([c.text for c in chunks]), dtype=np.float32)
        return self.concat(dense, self.chunk_tfidf(chunks))

    def embed_query(self, query: Query, embedder: Any) -> np.ndarray:
        dense = np.asarray(embedder.embed_query(query.text), dtype=np.float32).reshape(1, -1)
        return self.concat(dense, self.query_tfidf(query).reshape(1, -1))[0]
