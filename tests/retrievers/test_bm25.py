"""BM25: scores against a hand computation, engine agreement, filters before top-k, persistence."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ragkit.errors import ConfigError, IndexStoreError, RagkitError
from ragkit.retrievers.bm25 import BM25Retriever, Tokenizer
from ragkit.testing.fakes import seeded_rng
from ragkit.types import Chunk, Document

TEXTS = ["The cat sat on the mat.", "The dog chased the cat!", "Dogs and cats.", "A bird."]


def make_chunks(texts, metadata=None):
    chunks = []
    for i, text in enumerate(texts):
        doc = Document.from_text(text)
        meta = metadata[i] if metadata else {"n": i}
        chunks.append(Chunk.from_span(doc, 0, len(text), len(text.split()), meta))
    return chunks


@pytest.mark.parametrize("engine", ["bm25s", "rank_bm25"])
def test_scores_match_hand_computation(engine):
    r = BM25Retriever(engine=engine).index(make_chunks(TEXTS))
    # N = 4 documents of 6, 5, 3, 2 tokens: avgdl = 16 / 4 = 4; k1 = 1.5, b = 0.75.
    # idf(cat) = ln(1 + (4 - 2 + 0.5) / (2 + 0.5)) = ln 2;  idf(mat) = ln(1 + 3.5 / 1.5) = ln(10 / 3)
    # d0 (|d| = 6): K = 1.5 * (0.25 + 0.75 * 6 / 4) = 2.0625; tf part = 1 * 2.5 / (1 + 2.0625)
    # d1 (|d| = 5): K = 1.5 * (0.25 + 0.75 * 5 / 4) = 1.78125; tf part = 2.5 / 2.78125
    # "cats", "dogs" are different words: d2 and d3 score 0.
    d0 = (math.log(2) + math.log(10 / 3)) * 2.5 / 3.0625
    d1 = math.log(2) * 2.5 / 2.78125
    assert d0 == pytest.approx(1.548670, abs=1e-6) and d1 == pytest.approx(0.623054, abs=1e-6)
    np.testing.assert_allclose(r.scores("cat mat"), [d0, d1, 0.0, 0.0], rtol=1e-6)
    # a repeated query term counts once
    np.testing.assert_allclose(r.scores("cat cat mat MAT"), r.scores("cat mat"), rtol=1e-12)
    hits = r.retrieve("cat mat", k=10)
    assert [h.chunk.text for h in hits] == [TEXTS[0], TEXTS[1]]  # chunks without a query term are not returned
    assert hits[0].score == pytest.approx(d0, rel=1e-6) and hits[0].source == "bm25"


def test_tokenizer_and_stopwords():
    assert Tokenizer()("The Cat's 2 hats, naïve!") == ["the", "cat", "s", "2", "hats", "naïve"]
    assert Tokenizer("en")("The cat and THE hat") == ["cat", "hat"]
    assert Tokenizer(["cat"])("the cat") == ["the"]
    r = BM25Retriever(stopwords="en").index(make_chunks(TEXTS))
    assert r.retrieve("the and", k=3) == []  # only stop words: nothing matches
    with pytest.raises(ConfigError, match="stopwords: got 'fr'"):
        Tokenizer("fr")


def _synthetic_corpus(n_docs: int, seed: str = "bm25-agree") -> tuple[list[Chunk], list[str]]:
    rng = seeded_rng(seed)
    vocab = [f"w{i}" for i in range(800)]
    weights = 1.0 / np.arange(1, len(vocab) + 1) ** 1.1  # Zipf-like
    weights /= weights.sum()
    texts = [" ".join(rng.choice(vocab, size=int(rng.integers(5, 60)), p=weights)) for _ in range(n_docs)]
    queries = [" ".join(rng.choice(vocab[:300], size=int(rng.integers(2, 6)))) for _ in range(60)]
    return make_chunks(texts), queries


def test_engines_agree():
    chunks, queries = _synthetic_corpus(2000)
    a = BM25Retriever(engine="bm25s").index(chunks)
    b = BM25Retriever(engine="rank_bm25").index(chunks)
    overlaps = []
    for q in queries:
        np.testing.assert_allclose(a.scores(q), b.scores(q), rtol=2e-5, atol=1e-6)
        top_a = {s.chunk.id for s in a.retrieve(q, k=10)}
        top_b = {s.chunk.id for s in b.retrieve(q, k=10)}
        overlaps.append(len(top_a & top_b) / max(len(top_a), 1))
    assert float(np.mean(overlaps)) >= 0.95


def test_auto_engine_is_bm25s():
    r = BM25Retriever().index(make_chunks(TEXTS))
    assert r.engine_name_ == "bm25s"


def test_filter_is_applied_before_top_k():
    texts = ["apple apple apple"] * 6 + ["apple pie"] * 3 + ["banana"]
    meta = [{"group": "a"}] * 6 + [{"group": "b"}] * 3 + [{"group": "b"}]
    r = BM25Retriever().index(make_chunks(texts, meta))
    unfiltered = r.retrieve("apple", k=3)
    assert all(h.chunk.metadata["group"] == "a" for h in unfiltered)
    filtered = r.retrieve("apple", k=3, filter={"group": "b"})
    assert len(filtered) == 3  # the three lower-scored "b" chunks, not a post-filtered empty list
    assert all(h.chunk.metadata["group"] == "b" and h.chunk.text == "apple pie" for h in filtered)
    assert r.retrieve("apple", k=3, filter={"group": "zzz"}) == []


@pytest.mark.parametrize("engine", ["bm25s", "rank_bm25"])
def test_save_and_load_round_trip(tmp_path, engine):
    chunks, queries = _synthetic_corpus(300, "bm25-save")
    r = BM25Retriever(engine=engine).index(chunks)
    r.save(tmp_path / "bm25")
    assert not list((tmp_path / "bm25").rglob("*.pkl"))
    for load_engine in ("bm25s", "rank_bm25"):
        loaded = BM25Retriever(engine=load_engine).load(tmp_path / "bm25")
        for q in queries[:10]:
            assert [(h.chunk.id, round(h.score, 4)) for h in loaded.retrieve(q, k=5)] == \
                   [(h.chunk.id, round(h.score, 4)) for h in r.retrieve(q, k=5)]
    with pytest.raises(IndexStoreError, match=r"other index-time parameters \(k1: saved 1.5 vs configured 1.2\)"):
        BM25Retriever(k1=1.2).load(tmp_path / "bm25")


def test_empty_and_errors(tmp_path):
    r = BM25Retriever().index([])
    assert r.retrieve("anything") == []
    punct = BM25Retriever().index(make_chunks(["...", "!!!"]))
    assert punct.retrieve("anything") == []
    with pytest.raises(RagkitError, match="has no index yet"):
        BM25Retriever().retrieve("x")
    with pytest.raises(ConfigError, match=r"k must be a positive integer"):
        BM25Retriever().index(make_chunks(TEXTS)).retrieve("cat", k=0)
    with pytest.raises(IndexStoreError, match="not a saved retriever"):
        BM25Retriever().load(tmp_path)
    with pytest.raises(ConfigError, match="bm25 engine: got 'lucene'"):
        BM25Retriever(engine="lucene")  # type: ignore[arg-type]


def test_ties_break_by_index():
    r = BM25Retriever().index(make_chunks(["same words"] * 5))
    assert [h.chunk.metadata["n"] for h in r.retrieve("words", k=3)] == [0, 1, 2]


def test_vectorised_matrix_equals_bm25s_native_builder():
    from ragkit.retrievers.bm25 import _BM25SEngine

    chunks, queries = _synthetic_corpus(500, "bm25-native")
    r = BM25Retriever(engine="bm25s").index(chunks)
    native = _BM25SEngine.build_native(r.doc_terms(), len(r.vocab_), r.k1, r.b)
    ours, theirs = r.engine_.model.scores, native.model.scores
    np.testing.assert_array_equal(ours["indptr"], theirs["indptr"])
    np.testing.assert_array_equal(ours["indices"], theirs["indices"])
    np.testing.assert_allclose(ours["data"], theirs["data"], rtol=1e-6)
    for q in queries[:10]:
        ids = r.term_ids(q)
        if ids:
            np.testing.assert_allclose(r.engine_.scores(ids), native.scores(ids), rtol=1e-6)


def test_score_matrix_numpy_fallback_matches_scipy(monkeypatch):
    import builtins

    from ragkit.retrievers.bm25 import score_matrix

    chunks, _ = _synthetic_corpus(300, "bm25-fallback")
    r = BM25Retriever().index(chunks)
    terms_before = r.terms_.copy()
    with_scipy = score_matrix(r.terms_, r.offsets_, len(r.vocab_), 1.5, 0.75)
    np.testing.assert_array_equal(r.terms_, terms_before)  # the retriever's state is not sorted in place
    real_import = builtins.__import__

    def no_scipy(name, *args, **kwargs):
        if name == "scipy":
            raise ImportError("scipy hidden for this test")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_scipy)
    without = score_matrix(r.terms_, r.offsets_, len(r.vocab_), 1.5, 0.75)
    np.testing.assert_array_equal(with_scipy[1], without[1])
    np.testing.assert_array_equal(with_scipy[2], without[2])
    np.testing.assert_allclose(with_scipy[0], without[0], rtol=1e-6)
