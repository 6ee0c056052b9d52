"""Dense retrieval: real MiniLM neighbours, FAISS index types, filters before top-k, persistence, views."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

from ragkit.errors import ConfigError, IndexStoreError
from ragkit.retrievers.dense import DenseRetriever
from ragkit.retrievers.views import VIEWS, ContentView, register_view
from ragkit.testing.fakes import FakeEmbedder
from ragkit.types import Chunk, Document

TEXTS = [
    "The Eiffel Tower is a wrought-iron lattice tower in Paris, France.",
    "Tokyo is the capital city of Japan and its largest metropolis.",
    "Photosynthesis converts sunlight into chemical energy in green plants.",
    "The stock market fell sharply on Monday as investors sold shares.",
    "Mix butter, sugar and chocolate chips to bake soft cookies.",
    "The Colosseum is an ancient amphitheatre in the centre of Rome.",
]
# hand-checked: each query paraphrases exactly one text
QUERIES = {
    "Which landmark in the French capital is made of iron?": 0,
    "What is the biggest city in Japan?": 1,
    "How do plants turn light into energy?": 2,
    "Share prices dropped at the start of the week": 3,
    "baking sweet biscuits": 4,
    "ancient Roman arena": 5,
}


def make_chunks(texts, groups=None):
    out = []
    for i, text in enumerate(texts):
        doc = Document.from_text(text)
        out.append(Chunk.from_span(doc, 0, len(text), len(text.split()),
                                   {"n": i, "group": groups[i] if groups else "all"}))
    return out


@pytest.mark.parametrize("index_type", ["flat", "hnsw", "ivf"])
def test_minilm_neighbours(minilm, index_type):
    r = DenseRetriever(embedder=minilm, index_type=index_type).index(make_chunks(TEXTS))
    for query, expected in QUERIES.items():
        hits = r.retrieve(query, k=3)
        assert hits[0].chunk.metadata["n"] == expected, query
        assert hits[0].source == "dense"
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert -1.0 <= hits[-1].score <= hits[0].score <= 1.0 + 1e-5


def test_filter_before_top_k_exact(minilm):
    groups = ["a", "b", "a", "b", "a", "b"]
    r = DenseRetriever(embedder=minilm).index(make_chunks(TEXTS, groups))
    hits = r.retrieve("Which landmark in the French capital is made of iron?", k=3, filter={"group": "b"})
    assert len(hits) == 3 and {h.chunk.metadata["group"] for h in hits} == {"b"}
    assert r.retrieve("anything", k=3, filter={"group": "c"}) == []
    assert len(r.retrieve("anything", k=50)) == len(TEXTS)


@pytest.mark.parametrize("index_type", ["flat", "hnsw", "ivf"])
def test_selective_filters_still_return_k(index_type):
    texts = [f"document number {i} about topic {i % 17} and theme {i % 5}" for i in range(600)]
    groups = ["rare" if i % 120 == 7 else "common" for i in range(len(texts))]  # 5 rare chunks
    r = DenseRetriever(embedder=FakeEmbedder(dimension=32), index_type=index_type, ef_search=16,
                       ivf_nprobe=1).index(make_chunks(texts, groups))
    hits = r.retrieve("topic 3 theme 1", k=5, filter={"group": "rare"})
    assert sorted(h.chunk.metadata["n"] for h in hits) == [7, 127, 247, 367, 487]
    exact = DenseRetriever(embedder=FakeEmbedder(dimension=32)).index(make_chunks(texts, groups))
    expected = [h.chunk.id for h in exact.retrieve("topic 3 theme 1", k=5, filter={"group": "rare"})]
    assert [h.chunk.id for h in hits] == expected  # the fallback is exact over the allowed set


@pytest.mark.parametrize("index_type", ["flat", "hnsw", "ivf"])
def test_save_load_round_trip(tmp_path, index_type):
    emb = FakeEmbedder(dimension=16)
    texts = [f"text {i} word{i % 9}" for i in range(400)]
    r = DenseRetriever(embedder=emb, index_type=index_type).index(make_chunks(texts))
    r.save(tmp_path / "d")
    assert (tmp_path / "d" / "faiss.index").exists() == (index_type != "flat")
    loaded = DenseRetriever(embedder=emb, index_type=index_type, ef_search=64).load(tmp_path / "d")
    for q in ["word3 text", "text 17", "word8"]:
        assert [h.chunk.id for h in loaded.retrieve(q, k=5)] == [h.chunk.id for h in r.retrieve(q, k=5)]
    np.testing.assert_array_equal(loaded.vectors_, r.vectors_)
    with pytest.raises(IndexStoreError, match="index_type: saved"):
        DenseRetriever(embedder=emb, index_type="flat" if index_type != "flat" else "hnsw").load(tmp_path / "d")
    wrong_dim = DenseRetriever(embedder=FakeEmbedder(dimension=8), index_type=index_type).load(tmp_path / "d")
    with pytest.raises(IndexStoreError, match="query vector has 8 dimensions but the index holds 16"):
        wrong_dim.retrieve("text", k=2)


class ShoutView(ContentView):
    """A test view with learned state: embeds upper-cased text and remembers the corpus size."""

    name: ClassVar[str] = "shout"

    def __init__(self, *, suffix: str = "!") -> None:
        self.options = {"suffix": suffix}
        self.seen = 0

    def fit(self, chunks):
        self.seen = len(chunks)

    def chunk_texts(self, chunks):
        return [c.text.upper() + self.options["suffix"] for c in chunks]

    def state(self):
        return {"seen": self.seen}

    def set_state(self, state):
        self.seen = state["seen"]


def test_views_plug_in_and_persist(tmp_path):
    register_view("shout", ShoutView)
    try:
        emb = FakeEmbedder(dimension=16)
        r = DenseRetriever(embedder=emb, view="shout", view_options={"suffix": "?"}).index(make_chunks(TEXTS))
        assert r.view_.seen == len(TEXTS)
        expected = emb.embed_documents([TEXTS[0].upper() + "?"])[0]
        np.testing.assert_allclose(r.vectors_[0], expected, rtol=1e-6)
        r.save(tmp_path / "v")
        loaded = DenseRetriever(embedder=emb, view="shout", view_options={"suffix": "?"}).load(tmp_path / "v")
        assert loaded.view_.seen == len(TEXTS)
        with pytest.raises(IndexStoreError, match="view: saved 'shout' vs configured 'content'"):
            DenseRetriever(embedder=emb).load(tmp_path / "v")
        with pytest.raises(IndexStoreError, match=r"view_options: saved \{'suffix': '\?'\} vs configured \{'suffix': '.'\}"):
            DenseRetriever(embedder=emb, view="shout", view_options={"suffix": "."}).load(tmp_path / "v")
    finally:
        VIEWS.pop("shout", None)


def test_unknown_view_and_string_embedder():
    with pytest.raises(ConfigError, match="unknown view type 'tfidf_magic'.* Registered view types: content"):
        DenseRetriever(embedder=FakeEmbedder(), view="tfidf_magic")
    with pytest.raises(ConfigError, match="pass an embedder instance"):
        DenseRetriever().index(make_chunks(TEXTS))
    with pytest.raises(ConfigError, match="takes no options"):
        DenseRetriever(embedder=FakeEmbedder(), view_options={"x": 1}).index(make_chunks(TEXTS))
