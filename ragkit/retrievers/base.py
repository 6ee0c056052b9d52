"""The retriever contract: ``index(chunks) -> self`` then ``retrieve(query, k, filter) -> list[ScoredChunk]``.

Retrievers are fit-like (scikit-learn's ``fit``): ``index`` replaces any previous state, keeps the
chunks in ``chunks_`` and returns ``self``. Filters (``ragkit.retrievers.filters``) are applied
before top-k. Ties are deterministic in every retriever: equal scores are ordered by chunk position
(document order, then start offset; :func:`position_ranks`), so byte-identical chunks come back
first copy first and a re-run returns the same list. ``save(dir)`` / ``load(dir)`` persist the state as arrays and JSON (never pickles);
the index store calls them. A saved directory holds ``retriever.json`` (type, parameters, counts),
``chunks.jsonl`` (the indexed chunks, in index order) and the retriever's own state files.

Example:
    >>> from ragkit.retrievers.bm25 import BM25Retriever
    >>> from ragkit.types import Document, Chunk
    >>> doc = Document.from_text("cats purr. dogs bark.")
    >>> chunks = [Chunk.from_span(doc, 0, 10, 2), Chunk.from_span(doc, 11, 21, 2)]
    >>> BM25Retriever().index(chunks).retrieve("dogs", k=1)[0].chunk.text
    'dogs bark.'
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ragkit.errors import ConfigError, IndexStoreError, RagkitError
from ragkit.retrievers.filters import filter_mask
from ragkit.stage import Component
from ragkit.store.atomic import atomic_write_json, read_json
from ragkit.store.chunks import CHUNKS_FILE, read_chunks, write_chunks  # noqa: F401  (re-exported)
from ragkit.types import Chunk, Query, ScoredChunk, sha256_hex

RETRIEVER_FILE = "retriever.json"
STATE_FORMAT = 1


def as_query(query: Query | str) -> Query:
    """Accept a :class:`Query` or plain text."""
    return query if isinstance(query, Query) else Query.from_text(query)


def position_ranks(chunks: Sequence[Chunk]) -> np.ndarray:
    """Each chunk's rank in *chunk position* order: document order, then ``start``, then ``end``.

    Document order is the order in which documents first appear in ``chunks`` (the order they were
    indexed). Retrievers break score ties by this rank, so equal scores (byte-identical chunks,
    duplicated passages) always come back first copy first, whatever the index returns.

    Example:
        >>> from ragkit.types import Document
        >>> a, b = Document.from_text("x y x y"), Document.from_text("z")
        >>> chunks = [Chunk.from_span(a, 4, 7, 1), Chunk.from_span(b, 0, 1, 1), Chunk.from_span(a, 0, 3, 1)]
        >>> position_ranks(chunks).tolist()  # a's chunks first (a appears first), by start; then b
        [1, 2, 0]
    """
    doc_order: dict[str, int] = {}
    for chunk in chunks:
        doc_order.setdefault(chunk.doc_id, len(doc_order))
    keys = sorted(range(len(chunks)), key=lambda i: (doc_order[chunks[i].doc_id], chunks[i].start, chunks[i].end, i))
    ranks = np.empty(len(chunks), dtype=np.int64)
    ranks[keys] = np.arange(len(chunks), dtype=np.int64)
    return ranks


def top_k_indices(scores: np.ndarray, k: int, mask: np.ndarray | None = None,
                  positive_only: bool = False, ties: np.ndarray | None = None) -> np.ndarray:
    """Indices of the ``k`` best scores, restricted to ``mask``; equal scores ordered by ``ties``.

    ``ties`` gives each index its tie-break rank (retrievers pass :func:`position_ranks`, chunk
    position order); without it ties go lower index first. Masked-out entries never count towards
    ``k``: the result has ``min(k, allowed)`` entries.

    Example:
        >>> top_k_indices(np.array([0.5, 0.9, 0.5, 0.5]), 2).tolist()
        [1, 0]
        >>> top_k_indices(np.array([0.5, 0.9, 0.5, 0.5]), 2, ties=np.array([3, 0, 2, 1])).tolist()
        [1, 3]
    """
    scores = np.asarray(scores, dtype=np.float64)
    allowed = np.ones(len(scores), dtype=bool) if mask is None else mask.copy()
    if positive_only:
        allowed &= scores > 0
    candidates = np.flatnonzero(allowed)
    if k <= 0 or len(candidates) == 0:
        return np.zeros(0, dtype=np.int64)
    values = scores[candidates]
    if len(candidates) > k:
        part = np.argpartition(-values, k - 1)[:k]
        # include every tie with the k-th value so the tie-break below is by index, not by partition luck
        kth = values[part].min()
        part = np.flatnonzero(values >= kth)
        candidates, values = candidates[part], values[part]
    tie_keys = candidates if ties is None else np.asarray(ties)[candidates]
    order = np.lexsort((candidates, tie_keys, -values))[:k]
    return candidates[order].astype(np.int64)


def check_k(k: Any) -> int:
    """``k`` as a positive int, or a :class:`ConfigError` saying what was given."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k <= 0:
        raise ConfigError(f"retrieve(k={k!r}): k must be a positive integer, e.g. k=10")
    return int(k)


class Retriever(Component):
    """Base class for retrievers. Subclasses implement ``_index``, ``_retrieve``, ``_save_state``, ``_load_state``.

    Example:
        >>> from ragkit.retrievers.bm25 import BM25Retriever
        >>> r = BM25Retriever()
        >>> r.index([]).retrieve("anything")
        []
    """

    #: ``ScoredChunk.source`` of results.
    source: ClassVar[str] = "retriever"
    #: Parameters that do not change the indexed state (may differ between save and load).
    query_time_params: ClassVar[frozenset[str]] = frozenset()
    _MASK_CACHE_SIZE: ClassVar[int] = 32

    chunks_: list[Chunk] | None = None

    # ------------------------------------------------------------------ public API
    def index(self, chunks: Sequence[Chunk]) -> Retriever:
        """Index ``chunks`` (replacing any previous state); returns ``self``."""
        chunks = list(chunks)
        self.warm_up()
        self._index(chunks)
        self.chunks_ = chunks
        self._masks: OrderedDict[str, np.ndarray | None] = OrderedDict()
        return self

    def retrieve(self, query: Query | str, k: int = 10, filter: Mapping[str, Any] | None = None) -> list[ScoredChunk]:
        """The ``k`` best chunks for ``query`` among those passing ``filter`` (applied before top-k)."""
        k = check_k(k)
        query = as_query(query)
        chunks = self._require_index()
        if not chunks:
            return []
        mask = self.mask(filter)
        if mask is not None and not mask.any():
            return []
        return [ScoredChunk(chunks[i], float(s), self.source) for i, s in self._retrieve(query, k, mask)]

    @property
    def is_indexed(self) -> bool:
        return self.chunks_ is not None

    def tie_ranks(self) -> np.ndarray:
        """:func:`position_ranks` of the indexed chunks (computed once per index): the tie-break order.

        Every retriever orders equal scores by chunk position (document order, then ``start``), so
        results are deterministic whatever order the underlying index returns ties in.
        """
        chunks = self._require_index()
        cached = self.__dict__.get("_tie_ranks")
        if cached is None or cached[0] is not chunks:
            cached = (chunks, position_ranks(chunks))
            self._tie_ranks = cached
        return cached[1]

    def mask(self, filter: Mapping[str, Any] | None) -> np.ndarray | None:
        """Boolean mask over ``chunks_`` for ``filter`` (memoised per instance for repeated filters)."""
        if not filter:
            return None
        chunks = self._require_index()
        key = sha256_hex(filter)
        cache = self.__dict__.setdefault("_masks", OrderedDict())
        if key in cache:
            cache.move_to_end(key)
            return cache[key]
        mask = filter_mask(filter, chunks)
        cache[key] = mask
        if len(cache) > self._MASK_CACHE_SIZE:
            cache.popitem(last=False)
        return mask

    def save(self, directory: str | Path) -> Path:
        """Write the indexed state to ``directory`` (created if needed); returns the directory."""
        chunks = self._require_index()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        write_chunks(directory / CHUNKS_FILE, chunks)
        self._save_state(directory)
        atomic_write_json(directory / RETRIEVER_FILE, {
            "type": type(self).__name__,
            "format": STATE_FORMAT,
            "params": self.persisted_params(),
            "chunks": len(chunks),
        })
        return directory

    def load(self, directory: str | Path) -> Retriever:
        """Restore the state written by :meth:`save`; returns ``self``.

        Raises :class:`IndexStoreError` when the directory holds another retriever type or one saved
        with different index-time parameters.
        """
        directory = Path(directory)
        meta_path = directory / RETRIEVER_FILE
        if not meta_path.exists():
            raise IndexStoreError(f"{directory}: no {RETRIEVER_FILE}; this is not a saved retriever. "
                                  "Build it with retriever.index(chunks) then retriever.save(dir).")
        meta = read_json(meta_path)
        self.check_saved(meta, directory)
        self.warm_up()
        chunks = read_chunks(directory / CHUNKS_FILE)
        if len(chunks) != meta.get("chunks"):
            raise IndexStoreError(f"{directory}: {CHUNKS_FILE} has {len(chunks)} chunks but {RETRIEVER_FILE} "
                                  f"says {meta.get('chunks')}; rebuild the index (--rebuild).")
        self._load_state(directory, chunks)
        self.chunks_ = chunks
        self._masks = OrderedDict()
        return self

    # ------------------------------------------------------------------ helpers for subclasses
    def persisted_params(self) -> dict[str, Any]:
        """Parameters recorded with the saved state (collaborators are left out)."""
        out = {}
        for name, value in self.get_params().items():
            if isinstance(value, Component) or name == "embedder":
                continue
            out[name] = json.loads(json.dumps(value, default=str))
        return out

    def check_saved(self, meta: Mapping[str, Any], directory: Path) -> None:
        if meta.get("type") != type(self).__name__:
            raise IndexStoreError(
                f"{directory} holds a saved {meta.get('type')!r}, not a {type(self).__name__}; "
                "configure the same retriever type that built it, or rebuild the index (--rebuild)."
            )
        if meta.get("format") != STATE_FORMAT:
            raise IndexStoreError(f"{directory}: saved state format {meta.get('format')!r} is not supported "
                                  f"(expected {STATE_FORMAT}); rebuild the index (--rebuild).")
        saved = meta.get("params", {})
        mine = self.persisted_params()
        differing = sorted(k for k in set(saved) | set(mine)
                           if k not in self.query_time_params and saved.get(k) != mine.get(k))
        if differing:
            detail = ", ".join(f"{k}: saved {saved.get(k)!r} vs configured {mine.get(k)!r}" for k in differing)
            raise IndexStoreError(
                f"{directory} was saved by a {type(self).__name__} with other index-time parameters ({detail}); "
                "configure the saved values or rebuild the index (--rebuild)."
            )

    def _require_index(self) -> list[Chunk]:
        if self.chunks_ is None:
            raise RagkitError(
                f"{type(self).__name__} has no index yet: call .index(chunks) or .load(directory) before .retrieve()"
            )
        return self.chunks_

    def _index(self, chunks: list[Chunk]) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement _index(chunks)")

    def _retrieve(self, query: Query, k: int, mask: np.ndarray | None) -> list[tuple[int, float]]:
        """``(chunk position, score)`` pairs, best first, at most ``k``, all inside ``mask``."""
        raise NotImplementedError(f"{type(self).__name__} must implement _retrieve(query, k, mask)")

    def _save_state(self, directory: Path) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement _save_state(directory)")

    def _load_state(self, directory: Path, chunks: list[Chunk]) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement _load_state(directory, chunks)")
