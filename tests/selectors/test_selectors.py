"""top_k and token_budget selectors."""

from __future__ import annotations

import pytest

from ragkit.errors import ConfigError
from ragkit.selectors.token_budget import TokenBudgetSelector
from ragkit.selectors.top_k import TopKSelector
from ragkit.text.tokenizers import get_tokenizer
from ragkit.types import Chunk, Document, Query, ScoredChunk

Q = Query.from_text("q")


def ranked(token_counts, metadata=None):
    return [ScoredChunk(Chunk(f"c{i}", "d", f"text {i}", 0, 1, n, metadata or {}), 1.0 / (i + 1), "test")
            for i, n in enumerate(token_counts)]


def ids(selected):
    return [s.chunk.id for s in selected]


def test_top_k():
    cands = ranked([5] * 7)
    assert ids(TopKSelector(k=3).select(Q, cands)) == ["c0", "c1", "c2"]
    assert ids(TopKSelector(k=10).select(Q, cands)) == [f"c{i}" for i in range(7)]
    assert TopKSelector().select(Q, []) == []


@pytest.mark.parametrize(("counts", "budget", "expected"), [
    ([400, 500, 300], 1000, ["c0", "c1"]),         # 400 + 500 = 900; + 300 = 1200 > 1000
    ([400, 600, 10], 1000, ["c0", "c1"]),          # exactly 1000 is allowed; 1010 is not
    ([400, 700, 100], 1000, ["c0"]),               # stops at the first chunk that does not fit (a prefix)
    ([1500, 10], 1000, ["c0"]),                    # at least one chunk, even when it alone exceeds B
    ([100] * 12, 1000, [f"c{i}" for i in range(10)]),
    ([], 1000, []),
])
def test_token_budget(counts, budget, expected):
    assert ids(TokenBudgetSelector(budget=budget).select(Q, ranked(counts))) == expected


def test_token_budget_recounts_with_another_tokenizer():
    doc = Document.from_text("Tokenization counts differ between tokenizers, naturally. " * 3)
    chunk = Chunk.from_span(doc, 0, len(doc.text), token_count=1)  # stored minilm count (deliberately wrong)
    selector = TokenBudgetSelector(budget=1000, tokenizer="cl100k")
    assert selector.tokens(chunk) == get_tokenizer("cl100k").count(doc.text)
    assert TokenBudgetSelector(budget=1000).tokens(chunk) == 1  # same tokenizer: the stored count is used
    tagged = chunk.with_metadata(tokenizer="cl100k")
    assert selector.tokens(tagged) == 1


def test_validation_through_config():
    from ragkit.config.load import load_config

    with pytest.raises(ConfigError, match=r"query.selector.budget: .*greater than 0 \(got -5\)"):
        load_config({"query": {"selector": {"type": "token_budget", "budget": -5}}})
    with pytest.raises(ConfigError, match=r"query.selector.k: .*greater than 0 \(got 0\)"):
        load_config({"query": {"selector": {"type": "top_k", "k": 0}}})
