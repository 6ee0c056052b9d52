"""Hybrid retrieval: fusion arithmetic by hand, the retriever equals fusing its parts, filters, persistence."""

from __future__ import annotations

import pytest

from ragkit.errors import ConfigError
from ragkit.retrievers.hybrid import HybridRetriever, rrf_fuse, weighted_fuse
from ragkit.testing.fakes import FakeEmbedder
from ragkit.types import Chunk, Document, Query


def test_rrf_by_hand():
    fused = rrf_fuse([[1, 2, 3], [3, 1, 4]], [1.0, 1.0], 60)
    # 1: 1/61 + 1/62 = 0.032523; 3: 1/63 + 1/61 = 0.032266; 2: 1/62 = 0.016129; 4: 1/63 = 0.015873
    assert [i for i, _ in fused] == [1, 3, 2, 4]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[1][1] == pytest.approx(1 / 63 + 1 / 61)
    # weights change the order: 3: 1/63 + 3/61 = 0.065053 > 1: 1/61 + 3/62 = 0.064780 > 4: 3/63 > 2: 1/62
    assert [i for i, _ in rrf_fuse([[1, 2, 3], [3, 1, 4]], [1.0, 3.0], 60)] == [3, 1, 4, 2]
    # a tie (same score, same best rank) falls back to the lower id
    assert [i for i, _ in rrf_fuse([[2, 1], [1, 2]], [1.0, 1.0], 60)] == [1, 2]


def test_weighted_by_hand():
    lexical = [(1, 10.0), (2, 5.0), (3, 0.0)]    # min-max: 1 → 1.0, 2 → 0.5, 3 → 0.0
    semantic = [(3, 0.9), (4, 0.5), (1, 0.1)]    # min-max: 3 → 1.0, 4 → 0.5, 1 → 0.0
    fused = weighted_fuse([lexical, semantic], [1.0, 1.0])
    assert fused == [(1, 1.0), (3, 1.0), (2, 0.5), (4, 0.5)]  # ties by best rank, then id
    assert weighted_fuse([lexical, semantic], [1.0, 2.0]) == [(3, 2.0), (1, 1.0), (4, 1.0), (2, 0.5)]
    assert weighted_fuse([[(7, 0.3), (8, 0.3)], []], [1.0, 1.0]) == [(7, 1.0), (8, 1.0)]  # all equal → 1


TEXTS = [
    "BM25 ranks documents by term frequency and inverse document frequency.",
    "Reciprocal rank fusion merges ranked lists from several retrievers.",
    "FAISS searches dense vectors with exact or approximate indexes.",
    "The quick brown fox jumps over the lazy dog.",
    "Term frequency saturation is controlled by the k1 parameter.",
    "Dense retrieval embeds queries and passages in one vector space.",
]


def chunks():
    out = []
    for i, text in enumerate(TEXTS):
        doc = Document.from_text(text)
        out.append(Chunk.from_span(doc, 0, len(text), len(text.split()), {"n": i, "even": i % 2 == 0}))
    return out


@pytest.mark.parametrize("fusion", ["rrf", "weighted"])
def test_retriever_fuses_its_parts(fusion):
    r = HybridRetriever(embedder=FakeEmbedder(dimension=32), fusion=fusion, fetch_k=4,
                        bm25_weight=1.0, dense_weight=0.5).index(chunks())
    query = Query.from_text("term frequency in dense vectors")
    lexical = r.bm25_._retrieve(query, 4, None)
    semantic = r.dense_._retrieve(query, 4, None)
    if fusion == "rrf":
        expected = rrf_fuse([[i for i, _ in lexical], [i for i, _ in semantic]], [1.0, 0.5], 60)
    else:
        expected = weighted_fuse([lexical, semantic], [1.0, 0.5])
    hits = r.retrieve(query, k=3)
    assert [(h.chunk.metadata["n"], pytest.approx(h.score)) for h in hits] == [(i, s) for i, s in expected[:3]]
    assert all(h.source == "hybrid" for h in hits)


def test_hybrid_filters_and_real_minilm(minilm):
    r = HybridRetriever(embedder=minilm).index(chunks())
    top = r.retrieve("how are ranked lists combined?", k=2)
    assert top[0].chunk.metadata["n"] == 1
    hits = r.retrieve("term frequency", k=3, filter={"even": False})
    assert len(hits) == 3 and all(not h.chunk.metadata["even"] for h in hits)


def test_save_load(tmp_path):
    emb = FakeEmbedder(dimension=32)
    r = HybridRetriever(embedder=emb, bm25={"engine": "rank_bm25", "stopwords": "en"},
                        dense={"index_type": "hnsw"}).index(chunks())
    r.save(tmp_path / "h")
    assert (tmp_path / "h" / "bm25" / "bm25_terms.npy").exists()
    assert (tmp_path / "h" / "dense" / "faiss.index").exists()
    assert len((tmp_path / "h" / "chunks.jsonl").read_text().splitlines()) == len(TEXTS)  # stored once
    loaded = HybridRetriever(embedder=emb, bm25={"engine": "rank_bm25", "stopwords": "en"},
                             dense={"index_type": "hnsw"}, fusion="weighted").load(tmp_path / "h")
    r_weighted = HybridRetriever(embedder=emb, bm25={"engine": "rank_bm25", "stopwords": "en"},
                                 dense={"index_type": "hnsw"}, fusion="weighted").index(chunks())
    q = "dense vectors and fusion"
    assert [h.chunk.id for h in loaded.retrieve(q, k=4)] == [h.chunk.id for h in r_weighted.retrieve(q, k=4)]


def test_config_errors():
    with pytest.raises(ConfigError, match=r"index.retriever.dense.view: give view at the top level"):
        HybridRetriever(embedder=FakeEmbedder(), dense={"view": "content"})
    with pytest.raises(ConfigError, match=r"index.retriever.bm25.k1: .*greater than or equal to 0 \(got -1\)"):
        HybridRetriever(embedder=FakeEmbedder(), bm25={"k1": -1})
    with pytest.raises(ConfigError, match=r"index.retriever.dense.index_typ: unknown parameter"):
        HybridRetriever(embedder=FakeEmbedder(), dense={"index_typ": "hnsw"})
