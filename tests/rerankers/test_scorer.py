"""The scorer reranker: any scorer re-ranks candidates (nested spec or instance)."""

from __future__ import annotations

import numpy as np

from ragkit.rerankers.scorer import ScorerReranker
from ragkit.types import Chunk, Document, Query, ScoredChunk

DOC = Document.from_text("red apples. green pears. blue berries.")
CANDS = [ScoredChunk(Chunk.from_span(DOC, s, e, 2), score) for (s, e), score in
         [((0, 11), 9.0), ((12, 24), 5.0), ((25, 38), 1.0)]]


class ByLength:
    def __init__(self):
        self.calls = 0

    def score(self, query, texts):
        self.calls += 1
        return np.array([float(len(t)) for t in texts])


def test_reranks_best_first_in_one_scorer_call_and_keeps_ties_in_input_order():
    scorer = ByLength()
    out = ScorerReranker(scorer=scorer).rerank(Query.from_text("q"), CANDS)
    assert [s.chunk.text for s in out] == ["blue berries.", "green pears.", "red apples."]
    assert scorer.calls == 1 and out[0].score == 13.0 and out[0].source == "rerank:scorer:ByLength"

    class Constant:
        def score(self, query, texts):
            return np.zeros(len(texts))

    assert [s.chunk.id for s in ScorerReranker(scorer=Constant()).rerank(Query.from_text("q"), CANDS)] == [
        s.chunk.id for s in CANDS]
    assert ScorerReranker(scorer=scorer).rerank(Query.from_text("q"), []) == []


def test_top_n():
    out = ScorerReranker(scorer=ByLength(), top_n=1).rerank(Query.from_text("q"), CANDS)
    assert [s.chunk.text for s in out] == ["blue berries."]


def test_nested_spec_with_inline_embedder():
    rr = ScorerReranker(scorer={"type": "embedding", "embedder": {"type": "fake", "dimension": 32}})
    out = rr.rerank(Query.from_text("green pears"), CANDS)
    assert out[0].chunk.text == "green pears." and out[0].source == "rerank:scorer:embedding"


def test_in_a_pipeline():
    from ragkit import Pipeline

    pipe = Pipeline.from_config({
        "backends": {"llm": {"default": {"type": "fake"}}, "embeddings": {"default": {"type": "fake"}}},
        "index": {"chunker": {"type": "sentence", "max_tokens": 8}, "retriever": {"type": "bm25"}, "store": ":memory:"},
        "query": {"reranker": {"type": "scorer", "scorer": {"type": "query_likelihood", "llm": {"type": "fake"}}},
                  "selector": {"type": "top_k", "k": 2}},
    })
    pipe.index([DOC, Document.from_text("Pears are green or yellow. Apples are red.")])
    answer = pipe.query("Which pears are green?")
    stage = next(s for s in answer.trace["stages"] if s["slot"] == "query.reranker")
    assert stage["ids"][:2] == [s.chunk.id for s in answer.chunks]
    assert all(s.source == "rerank:scorer:query_likelihood" for s in answer.chunks)
