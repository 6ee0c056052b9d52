"""Hybrid retrieval: BM25 and dense candidates fused by reciprocal rank or by weighted scores.

Both retrievers take the top ``max(k, fetch_k)`` chunks (the filter applied before their top-k),
then the lists are fused:

- ``rrf`` (default): ``score(c) = Σ_r w_r / (rrf_k + rank_r(c))`` with 1-based ranks, summed over the
  lists that contain ``c`` (Cormack et al. 2009; ``rrf_k`` 60).
- ``weighted``: each list's scores are min-max normalised to [0, 1] over its candidates (all equal →
  1), then ``score(c) = Σ_r w_r · norm_r(c)``; absent from a list counts 0.

Ties are broken by the best rank in either list, then by chunk position (document order, then
start offset), as in every retriever. ``w_bm25`` / ``w_dense`` are
``bm25_weight`` / ``dense_weight``. Options for the two parts go in ``bm25: {...}`` (engine, k1, b,
stopwords) and ``dense: {...}`` (index_type and its parameters); ``view`` is given at the top level.

Example:
    >>> from ragkit.testing.fakes import FakeEmbedder
    >>> from ragkit.types import Document, Chunk
    >>> doc = Document.from_text("red apples. green pears. red cars.")
    >>> chunks = [Chunk.from_span(doc, s, e, 2) for s, e in [(0, 11), (12, 24), (25, 34)]]
    >>> r = HybridRetriever(embedder=FakeEmbedder(dimension=16)).index(chunks)
    >>> r.retrieve("green pears", k=1)[0].chunk.text
    'green pears.'
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from ragkit.errors import ConfigError
from ragkit.retrievers.base import Retriever
from ragkit.retrievers.bm25 import BM25Retriever
from ragkit.retrievers.dense import DenseRetriever
from ragkit.retrievers.views import ViewName, make_view
from ragkit.stage import EmbedderRef, validate_params
from ragkit.types import Chunk, Query


def rrf_fuse(rankings: list[list[int]], weights: list[float], rrf_k: int,
             ties: Sequence[int] | None = None) -> list[tuple[int, float]]:
    """Reciprocal-rank fusion of ranked id lists; returns ``(id, score)`` best first.

    Equal fused scores go by best rank in either list, then by ``ties[id]`` (chunk position; the id
    itself when ``ties`` is None).

    Example:
        >>> rrf_fuse([[2, 1], [1, 2]], [1.0, 1.0], 60, ties=[0, 2, 1])
        [(2, 0.03252247488101534), (1, 0.03252247488101534)]
    """
    scores: dict[int, float] = {}
    best: dict[int, int] = {}
    for ranking, weight in zip(rankings, weights):
        for rank, item in enumerate(ranking, 1):
            scores[item] = scores.get(item, 0.0) + weight / (rrf_k + rank)
            best[item] = min(best.get(item, rank), rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], best[kv[0]], kv[0] if ties is None else ties[kv[0]]))


def weighted_fuse(results: list[list[tuple[int, float]]], weights: list[float],
                  ties: Sequence[int] | None = None) -> list[tuple[int, float]]:
    """Weighted sum of per-list min-max normalised scores; returns ``(id, score)`` best first.

    Ties as in :func:`rrf_fuse`: best rank in either list, then ``ties[id]`` (chunk position).
    """
    scores: dict[int, float] = {}
    best: dict[int, int] = {}
    for hits, weight in zip(results, weights):
        if not hits:
            continue
        values = np.array([s for _, s in hits], dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        for rank, (item, score) in enumerate(hits, 1):
            norm = 1.0 if high == low else (score - low) / (high - low)
            scores[item] = scores.get(item, 0.0) + weight * norm
            best[item] = min(best.get(item, rank), rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], best[kv[0]], kv[0] if ties is None else ties[kv[0]]))


class HybridRetriever(Retriever):
    """BM25 + dense retrieval with reciprocal-rank (``rrf``) or weighted score fusion.

    Example:
        >>> from ragkit.testing.fakes import FakeEmbedder
        >>> r = HybridRetriever(embedder=FakeEmbedder(), fusion="weighted", bm25={"stopwords": "en"})
        >>> r.fusion, r.bm25
        ('weighted', {'stopwords': 'en'})
    """

    source: ClassVar[str] = "hybrid"
    query_time_params: ClassVar[frozenset[str]] = frozenset(
        {"fusion", "rrf_k", "bm25_weight", "dense_weight", "fetch_k"})

    def __init__(
        self,
        *,
        embedder: EmbedderRef = "default",
        view: ViewName = "content",
        view_options: dict[str, Any] | None = None,
        fusion: Literal["rrf", "weighted"] = "rrf",
        rrf_k: Annotated[int, Field(gt=0)] = 60,
        bm25_weight: Annotated[float, Field(ge=0)] = 1.0,
        dense_weight: Annotated[float, Field(ge=0)] = 1.0,
        fetch_k: Annotated[int, Field(gt=0)] = 50,
        bm25: dict[str, Any] | None = None,
        dense: dict[str, Any] | None = None,
    ) -> None:
        if fusion not in ("rrf", "weighted"):
            raise ConfigError(f"hybrid fusion: got {fusion!r}; allowed: rrf, weighted")
        for name, options, forbidden in (("bm25", bm25, ()), ("dense", dense, ("view", "view_options", "embedder"))):
            clash = [key for key in (options or {}) if key in forbidden]
            if clash:
                raise ConfigError(f"index.retriever.{name}.{clash[0]}: give {clash[0]} at the top level of the "
                                  "hybrid retriever, not inside dense: {...}")
        self.embedder = embedder
        self.view = view
        self.view_options = view_options
        self.fusion = fusion
        self.rrf_k = rrf_k
        self.bm25_weight = bm25_weight
        self.dense_weight = dense_weight
        self.fetch_k = fetch_k
        self.bm25 = bm25
        self.dense = dense
        make_view(view, view_options)  # bad view names and options fail at validate time, not at index time
        validate_params(BM25Retriever, dict(bm25 or {}), "index.retriever.bm25")
        validate_params(DenseRetriever, {**(dense or {}), "view": view, "view_options": view_options},
                        "index.retriever.dense")

    def _load(self) -> None:
        self.bm25_ = BM25Retriever(**(self.bm25 or {}))
        self.dense_ = DenseRetriever(embedder=self.embedder, view=self.view, view_options=self.view_options,
                                     **(self.dense or {}))
        self.bm25_.warm_up()
        self.dense_.warm_up()

    def _index(self, chunks: list[Chunk]) -> None:
        # BM25 is built in a thread while the embedder runs (torch releases the GIL in its kernels)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ragkit-bm25") as pool:
            lexical = pool.submit(self.bm25_.index, chunks)
            self.dense_.index(chunks)
            lexical.result()

    def _retrieve(self, query: Query, k: int, mask: np.ndarray | None) -> list[tuple[int, float]]:
        fetch = max(k, self.fetch_k)
        lexical = self.bm25_._retrieve(query, fetch, mask)
        semantic = self.dense_._retrieve(query, fetch, mask)
        weights = [self.bm25_weight, self.dense_weight]
        ties = self.tie_ranks()
        if self.fusion == "rrf":
            fused = rrf_fuse([[i for i, _ in lexical], [i for i, _ in semantic]], weights, self.rrf_k, ties)
        else:
            fused = weighted_fuse([lexical, semantic], weights, ties)
        return fused[:k]

    def _save_state(self, directory: Path) -> None:
        for name, part in (("bm25", self.bm25_), ("dense", self.dense_)):
            sub = directory / name
            sub.mkdir(parents=True, exist_ok=True)
            part._save_state(sub)

    def _load_state(self, directory: Path, chunks: list[Chunk]) -> None:
        for name, part in (("bm25", self.bm25_), ("dense", self.dense_)):
            part._load_state(directory / name, chunks)
            part.chunks_ = chunks
