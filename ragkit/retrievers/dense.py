"""Dense retrieval over FAISS: exact inner product by default, HNSW or IVF for large indexes.

Vectors come from the configured embedding view (``ragkit.retrievers.views``; ``content`` embeds the
chunk text) and are L2-normalised, so inner product is cosine similarity. Filters are applied
before top-k: the exact index searches only the allowed ids (``faiss.IDSelectorBatch``); HNSW and IVF
search with the same selector and, should the approximate search find fewer than ``k`` allowed
vectors, fall back to an exact scan of the allowed ones, so a filtered query always returns
``min(k, matching chunks)`` results. Equal scores (byte-identical chunks embed to identical vectors)
come back in chunk position order: the search widens until the tie group at the k-th score is
complete, then ties are ordered by document order and start offset.

Saved state: ``vectors.npy`` (float32, the canonical data), ``faiss.index`` (HNSW/IVF only; the
exact index is rebuilt from the vectors in milliseconds), ``view.json`` and ``dense.json``.

Example:
    >>> from ragkit.testing.fakes import FakeEmbedder
    >>> from ragkit.types import Document, Chunk
    >>> doc = Document.from_text("red apples. green pears.")
    >>> chunks = [Chunk.from_span(doc, 0, 11, 2), Chunk.from_span(doc, 12, 24, 2)]
    >>> r = DenseRetriever(embedder=FakeEmbedder(dimension=16)).index(chunks)
    >>> r.retrieve("green pears", k=1)[0].chunk.text
    'green pears.'
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from ragkit._lazy import require
from ragkit.errors import ConfigError, IndexStoreError
from ragkit.retrievers.base import Retriever, top_k_indices
from ragkit.retrievers.views import EmbeddingView, ViewName, make_view
from ragkit.stage import EmbedderRef
from ragkit.store.atomic import atomic_open, atomic_write_json, atomic_write_npy, read_json, read_npy
from ragkit.types import Chunk, Query

INDEX_TYPES = ("flat", "hnsw", "ivf")


class DenseRetriever(Retriever):
    """FAISS inner-product search over embedding-view vectors.

    Parameters:
        embedder: the embedding backend (the pipeline injects ``index.embedder``).
        view: embedding view name (``content``); ``view_options`` are passed to it.
        index_type: ``flat`` (exact, default), ``hnsw`` (graph; ``hnsw_m``, ``ef_construction``,
            ``ef_search``) or ``ivf`` (inverted lists; ``ivf_nlist`` (default ``4·sqrt(n)``), ``ivf_nprobe``).

    Example:
        >>> from ragkit.testing.fakes import FakeEmbedder
        >>> DenseRetriever(embedder=FakeEmbedder(), index_type="hnsw").index([]).retrieve("x")
        []
    """

    source: ClassVar[str] = "dense"
    query_time_params: ClassVar[frozenset[str]] = frozenset({"ef_search", "ivf_nprobe"})

    def __init__(
        self,
        *,
        embedder: EmbedderRef = "default",
        view: ViewName = "content",
        view_options: dict[str, Any] | None = None,
        index_type: Literal["flat", "hnsw", "ivf"] = "flat",
        hnsw_m: Annotated[int, Field(ge=4, le=256)] = 32,
        ef_construction: Annotated[int, Field(gt=0)] = 200,
        ef_search: Annotated[int, Field(gt=0)] = 128,
        ivf_nlist: Annotated[int, Field(gt=0)] | None = None,
        ivf_nprobe: Annotated[int, Field(gt=0)] = 16,
    ) -> None:
        if index_type not in INDEX_TYPES:
            raise ConfigError(f"dense index_type: got {index_type!r}; allowed: {', '.join(INDEX_TYPES)}")
        self.embedder = embedder
        self.view = view
        self.view_options = view_options
        self.index_type = index_type
        self.hnsw_m = hnsw_m
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.ivf_nlist = ivf_nlist
        self.ivf_nprobe = ivf_nprobe
        make_view(view, view_options)  # unknown names and bad options fail here (the registry says "Did you mean ...?")

    def _load(self) -> None:
        self.faiss_ = require("faiss", "retrieval", "dense retrieval")
        self.view_: EmbeddingView = make_view(self.view, self.view_options)
        if isinstance(self.embedder, str):
            raise ConfigError(
                f"DenseRetriever(embedder={self.embedder!r}): pass an embedder instance in Python "
                "(e.g. SentenceTransformerEmbedder()); names are resolved only inside a Pipeline"
            )

    # ------------------------------------------------------------------ indexing
    def _index(self, chunks: list[Chunk]) -> None:
        self.view_.fit(chunks)
        if not chunks:
            self._set_vectors(np.zeros((0, 0), dtype=np.float32))
            return
        vectors = self.view_.embed_chunks(chunks, self.embedder)
        if vectors.shape[0] != len(chunks):
            raise ConfigError(f"view {self.view!r} returned {vectors.shape[0]} vectors for {len(chunks)} chunks")
        self._set_vectors(vectors)

    def _set_vectors(self, vectors: np.ndarray, index: Any = None) -> None:
        self.vectors_ = np.ascontiguousarray(vectors, dtype=np.float32)
        self.index_ = index if index is not None else self._build_index(self.vectors_)

    def _build_index(self, vectors: np.ndarray) -> Any:
        faiss = self.faiss_
        n = vectors.shape[0]
        if n == 0:
            return None
        d = vectors.shape[1]
        if self.index_type == "hnsw":
            index = faiss.IndexHNSWFlat(d, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = self.ef_construction
        elif self.index_type == "ivf":
            nlist = self.nlist_for(n)
            quantizer = faiss.IndexFlatIP(d)
            index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
            index.train(vectors)
        else:
            index = faiss.IndexFlatIP(d)
        index.add(vectors)
        return index

    def nlist_for(self, n: int) -> int:
        """IVF list count: ``ivf_nlist`` or ``4·sqrt(n)``, at most ``n / 39`` (FAISS wants 39 points per list)."""
        wanted = self.ivf_nlist or max(1, int(4 * math.sqrt(n)))
        return max(1, min(wanted, n // 39))

    # ------------------------------------------------------------------ querying
    def query_vector(self, query: Query) -> np.ndarray:
        return self.view_.embed_query(query, self.embedder).astype(np.float32).reshape(1, -1)

    def _search_params(self, k: int, selector: Any) -> Any:
        faiss = self.faiss_
        if self.index_type == "hnsw":
            return faiss.SearchParametersHNSW(sel=selector, efSearch=max(self.ef_search, k))
        if self.index_type == "ivf":
            return faiss.SearchParametersIVF(sel=selector, nprobe=self.ivf_nprobe)
        return faiss.SearchParameters(sel=selector) if selector is not None else None

    def _retrieve(self, query: Query, k: int, mask: np.ndarray | None) -> list[tuple[int, float]]:
        if self.index_ is None:
            return []
        q = self.query_vector(query)
        if q.shape[1] != self.vectors_.shape[1]:
            raise IndexStoreError(
                f"query vector has {q.shape[1]} dimensions but the index holds {self.vectors_.shape[1]}: the "
                "embedder differs from the one that built the index; rebuild the index (--rebuild)"
            )
        n = self.vectors_.shape[0]
        allowed_ids = np.flatnonzero(mask).astype(np.int64) if mask is not None else None
        allowed = n if allowed_ids is None else len(allowed_ids)
        wanted = min(k, allowed)
        selector = self.faiss_.IDSelectorBatch(allowed_ids) if allowed_ids is not None else None
        # FAISS returns equal scores in no defined order and may cut a group of ties at k: fetch one more
        # and widen until the last hit scores below the k-th, then order ties by chunk position.
        fetch = min(allowed, wanted + 1)
        hits = self._search(q, fetch, selector)
        while len(hits) == fetch and fetch < allowed and hits[-1][1] >= hits[wanted - 1][1]:
            fetch = min(allowed, 2 * fetch)
            hits = self._search(q, fetch, selector)
        ties = self.tie_ranks()
        hits = sorted(hits, key=lambda h: (-h[1], ties[h[0]]))[:wanted]
        if len(hits) < wanted:  # approximate search came up short: exact scan of the allowed vectors
            candidates = allowed_ids if allowed_ids is not None else np.arange(n)
            exact = self.vectors_[candidates] @ q[0]
            order = top_k_indices(exact, wanted, ties=ties[candidates])
            hits = [(int(candidates[j]), float(exact[j])) for j in order]
        return hits

    def _search(self, q: np.ndarray, k: int, selector: Any) -> list[tuple[int, float]]:
        """FAISS's top ``k`` as ``(chunk position, score)`` pairs (missing results dropped)."""
        params = self._search_params(k, selector)
        scores, ids = self.index_.search(q, k, params=params) if params is not None else self.index_.search(q, k)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]

    # ------------------------------------------------------------------ persistence
    def _save_state(self, directory: Path) -> None:
        atomic_write_npy(directory / "vectors.npy", self.vectors_)
        self.view_.save(directory)
        if self.index_ is not None and self.index_type != "flat":
            data = self.faiss_.serialize_index(self.index_)
            with atomic_open(directory / "faiss.index", "wb") as handle:
                handle.write(np.asarray(data).tobytes())
        atomic_write_json(directory / "dense.json", {
            "index_type": self.index_type, "dimension": int(self.vectors_.shape[1]) if self.vectors_.size else 0,
            "count": int(self.vectors_.shape[0]), "view": self.view,
            "embedder": str(getattr(self.embedder, "identity", type(self.embedder).__name__)),
        })

    def _load_state(self, directory: Path, chunks: list[Chunk]) -> None:
        self.view_.load(directory)
        try:
            vectors = read_npy(directory / "vectors.npy")
            meta = read_json(directory / "dense.json")
        except (OSError, ValueError) as exc:
            raise IndexStoreError(f"{directory}: dense state unreadable ({exc}); rebuild the index (--rebuild)") from exc
        if vectors.shape[0] != len(chunks) and not (len(chunks) == 0 and vectors.size == 0):
            raise IndexStoreError(f"{directory}: {vectors.shape[0]} vectors for {len(chunks)} chunks; "
                                  "rebuild the index (--rebuild)")
        index = None
        faiss_path = directory / "faiss.index"
        if meta.get("index_type") != "flat" and faiss_path.exists() and len(chunks):
            blob = np.frombuffer(faiss_path.read_bytes(), dtype=np.uint8)
            index = self.faiss_.deserialize_index(blob)
        self._set_vectors(vectors, index)
