"""Deterministic ties: equal scores come back in chunk position order (document order, then start).

Byte-identical chunks embed to identical vectors and get identical BM25 scores, so which copy a
retriever returns is decided by the tie order alone. Every retriever must return them first copy
first, whatever order the chunks were indexed in and whatever order FAISS returns ties in.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from ragkit.retrievers.base import position_ranks, top_k_indices
from ragkit.retrievers.bm25 import BM25Retriever
from ragkit.retrievers.dense import DenseRetriever
from ragkit.retrievers.hybrid import HybridRetriever
from ragkit.testing.fakes import FakeEmbedder
from ragkit.types import Chunk, Document, Query

PASSAGE = "Net revenue grew by twelve percent in fiscal 2019."
FILLER = ["Cats purr softly at night.", "The river floods every spring.", "Bees make honey in summer."]


def _corpus() -> tuple[list[Chunk], list[tuple[str, int]]]:
    """Two documents, each holding the same passage several times, plus unrelated filler chunks."""
    chunks, copies = [], []
    for d in range(2):
        parts = [FILLER[d], PASSAGE, FILLER[2], PASSAGE, PASSAGE] if d == 0 else [PASSAGE, FILLER[0], PASSAGE]
        doc = Document.from_text(" ".join(parts) + f" doc{d}")
        cursor = 0
        for part in parts:
            chunk = Chunk.from_span(doc, cursor, cursor + len(part), 8)
            assert chunk.text == part
            chunks.append(chunk)
            if part == PASSAGE:
                copies.append((chunk.doc_id, chunk.start))
            cursor += len(part) + 1
    return chunks, copies  # copies in position order: doc 0 by start, then doc 1 by start


def _retrievers() -> list[object]:
    return [BM25Retriever(), DenseRetriever(embedder=FakeEmbedder(dimension=32)),
            DenseRetriever(embedder=FakeEmbedder(dimension=32), index_type="hnsw"),
            HybridRetriever(embedder=FakeEmbedder(dimension=32)),
            HybridRetriever(embedder=FakeEmbedder(dimension=32), fusion="weighted")]


@pytest.mark.parametrize("shuffle_seed", [None, 1, 2, 3])
@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_byte_identical_chunks_come_back_in_position_order(shuffle_seed: int | None, k: int) -> None:
    chunks, copies = _corpus()
    indexed = list(chunks)
    if shuffle_seed is not None:  # index order ≠ position order: the tie order must not depend on it
        random.Random(shuffle_seed).shuffle(indexed)
    doc_order = list(dict.fromkeys(c.doc_id for c in indexed))  # documents in the order they were indexed
    copies = sorted(copies, key=lambda c: (doc_order.index(c[0]), c[1]))
    for retriever in _retrievers():
        hits = retriever.index(indexed).retrieve(PASSAGE, k=k)
        got = [(h.chunk.doc_id, h.chunk.start) for h in hits if h.chunk.text == PASSAGE]
        if not isinstance(retriever, HybridRetriever):  # fused scores follow the (tie-ordered) ranks
            assert len({h.score for h in hits[: len(got)]}) == 1, type(retriever).__name__  # a real tie
        assert got == copies[:k], (type(retriever).__name__, shuffle_seed, k)
        again = retriever.retrieve(PASSAGE, k=k)
        assert [h.chunk.id for h in again] == [h.chunk.id for h in hits]


def test_ties_survive_save_and_load(tmp_path) -> None:
    chunks, copies = _corpus()
    shuffled = list(chunks)
    random.Random(7).shuffle(shuffled)
    for i, retriever in enumerate(_retrievers()):
        retriever.index(shuffled).save(tmp_path / str(i))
        loaded = type(retriever)(**retriever.get_params()).load(tmp_path / str(i))
        hits = loaded.retrieve(PASSAGE, k=3)
        doc_order = list(dict.fromkeys(c.doc_id for c in shuffled))
        expected = sorted(copies, key=lambda c: (doc_order.index(c[0]), c[1]))[:3]
        assert [(h.chunk.doc_id, h.chunk.start) for h in hits] == expected, type(retriever).__name__


def test_filtered_dense_ties_and_tie_group_wider_than_k() -> None:
    doc = Document.from_text(" ".join([PASSAGE] * 40))
    step = len(PASSAGE) + 1
    chunks = [Chunk.from_span(doc, i * step, i * step + len(PASSAGE), 8) for i in range(40)]
    reversed_index = chunks[::-1]
    r = DenseRetriever(embedder=FakeEmbedder(dimension=16)).index(reversed_index)
    assert [h.chunk.start for h in r.retrieve(PASSAGE, k=7)] == [c.start for c in chunks[:7]]
    keep = {c.start for c in chunks[10:20]}
    mask = np.array([c.start in keep for c in reversed_index])  # a filter applied before top-k
    for index_type in ("flat", "hnsw"):
        r = DenseRetriever(embedder=FakeEmbedder(dimension=16), index_type=index_type).index(reversed_index)
        got = [reversed_index[i].start for i, _ in r._retrieve(Query.from_text(PASSAGE), 3, mask)]
        assert got == [c.start for c in chunks[10:13]], index_type


def test_position_ranks_and_top_k_ties() -> None:
    chunks, _ = _corpus()
    assert position_ranks(chunks).tolist() == list(range(len(chunks)))  # built in position order
    # reversed: the second document now comes first (document order = order first indexed), then by start
    assert position_ranks(chunks[::-1]).tolist() == [2, 1, 0, 7, 6, 5, 4, 3]
    scores = np.array([1.0, 2.0, 2.0, 2.0, 0.5])
    assert top_k_indices(scores, 2, ties=np.array([4, 3, 0, 1, 2])).tolist() == [2, 3]
    assert top_k_indices(scores, 2, mask=np.array([1, 1, 0, 1, 1], dtype=bool),
                         ties=np.array([4, 3, 0, 1, 2])).tolist() == [3, 1]
