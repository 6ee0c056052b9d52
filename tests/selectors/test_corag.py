"""corag: the MCTS search of METHODS.md §3.3 with fake, table-driven scorers (deterministic)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ragkit.config.load import load_config
from ragkit.context import QueryContext
from ragkit.errors import ConfigError, UnknownComponentError
from ragkit.selectors._mcts import SearchConfig, brute_force, search, ucb
from ragkit.selectors.corag import SEPARATOR, CoragSelector
from ragkit.selectors.token_budget import TokenBudgetSelector
from ragkit.types import Chunk, Document, Query, ScoredChunk

Q = Query.from_text("which chunks answer this?")


class TableScorer:
    """Scores a concatenation by the ordered tuple of candidate numbers it contains."""

    def __init__(self, table, default=0.0):
        self.table = table if callable(table) else (lambda seq, t=table: t.get(seq, default))
        self.calls: list[list[str]] = []

    def score(self, query, texts):
        self.calls.append(list(texts))
        return np.array([self.table(tuple(int(p[1:]) for p in t.split(SEPARATOR))) for t in texts])


def cands(costs):
    return [ScoredChunk(Chunk(f"id{i}", "d", f"c{i}", 0, 2, n), 1.0 / (i + 1), "test") for i, n in enumerate(costs)]


def picked(selected):
    return tuple(int(s.chunk.id[2:]) for s in selected)


# ------------------------------------------------------------------------------------------ UCB
def test_ucb_arithmetic():
    value = ucb(3.0, 2, 8, 50, c=2.0, lambda_=0.5, budget=100)
    assert value == pytest.approx(3.0 / 2 + 2.0 * math.sqrt(math.log(8) / 2) - 0.5 * 50 / 100)
    assert ucb(1.0, 1, 1, 10, c=5.0, lambda_=1.0, budget=100) == pytest.approx(0.9)  # ln 1 = 0: no exploration
    assert ucb(1.0, 4, 0, 0, c=5.0, lambda_=0.0, budget=1) == pytest.approx(0.25)   # unvisited parent: no log(0)


def test_selection_follows_max_ucb_with_cost_term():
    # two singles with equal reward; the cheaper one wins through -lambda*cost/B
    scorer = TableScorer({(0,): 0.5, (1,): 0.5})
    config = SearchConfig(budget=10, iterations=2, c=0.0, lambda_=1.0)
    result = search([8, 2], lambda seqs: scorer.score(Q, [SEPARATOR.join(f"c{i}" for i in s) for s in seqs]), config)
    second_expansion = [seq for seq in (n.seq for n in result.root.walk()) if len(seq) == 2]
    assert second_expansion == [(1, 0)]  # the cheap node (1,) was selected and expanded


# ------------------------------------------------------------------------------------------ expansion
def test_expansion_creates_all_in_budget_children_in_order_in_one_call():
    scorer = TableScorer({})
    sel = CoragSelector(budget=3, iterations=1, scorer=scorer, seed=None)
    sel.select(Q, cands([1, 1, 1, 5]))
    assert scorer.calls == [["c0", "c1", "c2"]]  # (3,) costs 5 > 3: never created, never scored
    trace = sel.trace()
    assert trace["nodes_expanded"] == 1 and trace["scorer_calls"] == 1 and trace["scored_texts"] == 3

    unpruned = TableScorer({})
    sel = CoragSelector(budget=3, iterations=1, scorer=unpruned, prune=False, batch=False)
    sel.select(Q, cands([1, 1, 1, 5]))
    assert unpruned.calls == [["c0"], ["c1"], ["c2"], ["c3"]]  # the authors' cost: one pass per child, all children


def test_children_extend_the_parent_sequence_with_unused_chunks():
    result = search([1, 1, 1], lambda seqs: [float(len(s)) for s in seqs],
                    SearchConfig(budget=3, iterations=3, c=0.0, lambda_=0.0))
    for node in result.root.walk():
        for child in node.children:
            assert child.seq[:-1] == node.seq and child.seq[-1] not in node.seq
    assert [ch.seq for ch in result.root.children] == [(0,), (1,), (2,)]


# ------------------------------------------------------------------------------------------ backprop
TABLE = {(0,): 0.2, (1,): 0.8, (2,): 0.5, (1, 0): 0.3, (1, 2): 0.9}


@pytest.mark.parametrize(("backprop", "root", "node1"), [
    ("best_child", (0.8 + 0.9, 2), (0.8 + 0.9, 2)),                       # only the best new child goes up
    ("all_children", (0.2 + 0.8 + 0.5 + 0.3 + 0.9, 5), (0.8 + 0.3 + 0.9, 3)),  # every new child goes up
])
def test_backprop_variants(backprop, root, node1):
    result = search([1, 1, 1], lambda seqs: [TABLE.get(s, 0.0) for s in seqs],
                    SearchConfig(budget=3, iterations=2, c=1.0, lambda_=0.0, backprop=backprop))
    nodes = {n.seq: n for n in result.root.walk()}
    assert (nodes[()].value, nodes[()].visits) == pytest.approx(root)
    assert (nodes[(1,)].value, nodes[(1,)].visits) == pytest.approx(node1)
    assert (nodes[(1, 2)].value, nodes[(1, 2)].visits) == (pytest.approx(0.9), 1)
    assert nodes[(1,)].own == pytest.approx(0.8)


# ------------------------------------------------------------------------------------------ the paper's instances
MOTIVATING = {(0,): 0.9, (1,): 0.5, (2,): 0.5, (0, 1): 0.6, (1, 0): 0.6, (0, 2): 0.55, (2, 0): 0.55,
              (1, 2): 1.0, (2, 1): 1.0}


@pytest.mark.parametrize("profile", ["paper", "code"])
def test_motivating_example_best_pair_beats_best_single(profile):
    candidates = cands([100, 100, 100])
    sel = CoragSelector(budget=200, iterations=30, c=1.0, lambda_=0.0, profile=profile, scorer=TableScorer(MOTIVATING))
    assert set(picked(sel.select(Q, candidates))) == {1, 2}     # {χ2, χ3}, although χ1 is best alone
    greedy = TokenBudgetSelector(budget=200).select(Q, candidates)
    assert set(picked(greedy)) == {0, 1}                          # greedy rank-order filling takes χ1


@pytest.mark.parametrize("profile", ["paper", "code"])
def test_non_monotonic_answer_is_shallower_than_the_budget_allows(profile):
    table = lambda seq: 0.9 if seq == (0,) else (0.3 if len(seq) == 1 else 0.4)  # noqa: E731
    sel = CoragSelector(budget=300, iterations=50, c=1.0, lambda_=0.0, profile=profile, scorer=TableScorer(table))
    assert picked(sel.select(Q, cands([100, 100, 100, 100]))) == (0,)  # three chunks would fit; one is best
    assert sel.trace()["best_tokens"] == 100


def test_average_and_own_final_pick_differ_as_documented():
    # χ0 scores 1.0 alone but its only in-budget extension scores 0.0, so its average reward is 0.5;
    # χ1 fills the budget alone with 0.8. Paper (avg) picks χ1, code (own) picks χ0.
    table = {(0,): 1.0, (1,): 0.8, (2,): 0.1, (0, 2): 0.0, (2, 0): 0.0}
    costs = [1, 3, 1]
    paper = CoragSelector(budget=3, iterations=20, c=1.0, lambda_=0.0, scorer=TableScorer(table, default=0.0))
    code = CoragSelector(budget=3, iterations=20, c=1.0, lambda_=0.0, scorer=TableScorer(table, default=0.0),
                         final_select="own")
    assert picked(paper.select(Q, cands(costs))) == (1,)
    assert picked(code.select(Q, cands(costs))) == (0,)
    assert paper.trace()["avg_score"] == pytest.approx(0.8)
    assert code.trace()["own_score"] == pytest.approx(1.0) and code.trace()["avg_score"] == pytest.approx(0.5)


def test_profiles_and_overrides():
    assert (CoragSelector().resolved_backprop, CoragSelector().resolved_final_select) == ("best_child", "avg")
    code = CoragSelector(profile="code")
    assert (code.resolved_backprop, code.resolved_final_select) == ("all_children", "own")
    mixed = CoragSelector(profile="code", backprop="best_child")
    assert (mixed.resolved_backprop, mixed.resolved_final_select) == ("best_child", "own")


# ------------------------------------------------------------------------------------------ the budget is hard
def table_from_seed(seed, levels=None):
    """A non-additive table: an independent pseudo-random score per ordered combination."""
    def score(seq):
        rng = np.random.default_rng([seed, *seq, 97])
        return float(rng.integers(levels)) if levels else float(rng.random())
    return score


profiles = st.sampled_from([("paper", None, None), ("code", None, None), ("paper", "all_children", "own"),
                            ("code", "best_child", "avg")])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(costs=st.lists(st.integers(1, 6), min_size=0, max_size=7), budget=st.integers(1, 15),
       seed=st.integers(0, 10_000), iterations=st.integers(1, 40), profile=profiles, prune=st.booleans())
def test_budget_is_never_exceeded(costs, budget, seed, iterations, profile, prune):
    name, backprop, final = profile
    sel = CoragSelector(budget=budget, iterations=iterations, c=1.4, lambda_=0.5, profile=name, backprop=backprop,
                        final_select=final, prune=prune, scorer=TableScorer(table_from_seed(seed)))
    selected = sel.select(Q, cands(costs))
    assert sum(s.chunk.token_count for s in selected) <= budget
    assert len({s.chunk.id for s in selected}) == len(selected)
    fits_alone = any(c <= budget for c in costs)
    assert bool(selected) == fits_alone                  # empty only when no candidate fits at all
    json.dumps(sel.trace())                              # Answer.trace is JSON


def test_nothing_fits_returns_nothing():
    sel = CoragSelector(budget=10, scorer=TableScorer({}))
    assert sel.select(Q, cands([11, 50])) == []
    assert sel.trace()["best_path"] == [] and sel.trace()["scorer_calls"] == 0
    assert sel.select(Q, []) == []


def test_budget_counts_the_contexts_tokenizer_when_given():
    doc = Document.from_text("alpha beta gamma delta. epsilon zeta.")
    chunks = [Chunk.from_span(doc, 0, 23, token_count=1), Chunk.from_span(doc, 24, 37, token_count=1)]
    candidates = [ScoredChunk(c, 1.0) for c in chunks]
    ctx = QueryContext(chunks, count_tokens=lambda text: len(text.split()) * 10)  # 40 and 20 "tokens"
    class Longer:  # more text scores higher
        def score(self, query, texts):
            return np.array([float(len(t)) for t in texts])

    sel = CoragSelector(budget=50, iterations=10, scorer=Longer(), profile="code")
    assert len(sel.select(Q, candidates)) == 2                  # stored counts: 1 + 1 fits
    sel = CoragSelector(budget=50, iterations=10, scorer=Longer(), profile="code")
    assert len(sel.select(Q, candidates, context=ctx)) == 1     # the tokenizer's 40 + 20 > 50
    assert sel.trace()["best_tokens"] <= 50


# ------------------------------------------------------------------------------------------ brute force
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(costs=st.lists(st.integers(1, 4), min_size=1, max_size=5), budget=st.integers(1, 12),
       seed=st.integers(0, 100_000), backprop=st.sampled_from(["best_child", "all_children"]),
       levels=st.sampled_from([None, 3]), prune=st.booleans())
def test_equals_brute_force_enumeration_for_small_k(costs, budget, seed, backprop, levels, prune):
    score = table_from_seed(seed, levels)  # levels=3 gives many ties
    best_seq, best_value = brute_force(costs, score, budget)
    sel = CoragSelector(budget=budget, iterations=1000, c=1.4, lambda_=0.3, backprop=backprop, final_select="own",
                        prune=prune, scorer=TableScorer(score))
    selected = sel.select(Q, cands(costs))
    trace = sel.trace()
    assert trace["stopped"] == "exhausted"          # the whole in-budget tree was explored
    if not best_seq:
        assert selected == []
        return
    assert score(picked(selected)) == pytest.approx(best_value)
    assert trace["own_score"] == pytest.approx(best_value)
    if levels is None:                                # no ties: the very same ordered combination
        assert picked(selected) == best_seq


# ------------------------------------------------------------------------------------------ cost savings
def test_scores_are_cached_by_question_and_ordered_ids():
    scorer = TableScorer(table_from_seed(3))
    sel = CoragSelector(budget=6, iterations=15, scorer=scorer)
    first = sel.select(Q, cands([2, 2, 2, 2]))
    calls = sel.trace()["scorer_calls"]
    assert calls > 0
    second = sel.select(Q, cands([2, 2, 2, 2]))
    assert second == first and sel.trace()["scorer_calls"] == 0 and sel.trace()["cache_hits"] > 0
    other = Query.from_text("another question")
    sel.select(other, cands([2, 2, 2, 2]))
    assert sel.trace()["scorer_calls"] > 0             # the key includes the question


@settings(max_examples=30, deadline=None)
@given(costs=st.lists(st.integers(1, 5), min_size=1, max_size=7), budget=st.integers(1, 12),
       seed=st.integers(0, 1000), iterations=st.integers(1, 30), profile=st.sampled_from(["paper", "code"]))
def test_optimised_and_authors_cost_profiles_pick_the_same(costs, budget, seed, iterations, profile):
    score = table_from_seed(seed)
    fast = CoragSelector(budget=budget, iterations=iterations, profile=profile, scorer=TableScorer(score))
    slow = CoragSelector(budget=budget, iterations=iterations, profile=profile, scorer=TableScorer(score),
                         prune=False, cache_scores=False, batch=False)
    assert picked(fast.select(Q, cands(costs))) == picked(slow.select(Q, cands(costs)))
    assert fast.trace()["scored_tokens"] <= slow.trace()["scored_tokens"]
    assert fast.trace()["scorer_calls"] <= slow.trace()["scorer_calls"]


def test_max_candidates_limits_the_search():
    scorer = TableScorer(lambda seq: 1.0 if 5 in seq else 0.0)
    sel = CoragSelector(budget=10, iterations=50, max_candidates=3, scorer=scorer)
    assert 5 not in picked(sel.select(Q, cands([1] * 8)))
    assert sel.trace()["candidates"] == 3


def test_seed_makes_tie_breaking_reproducible():
    def run(seed):
        sel = CoragSelector(budget=4, iterations=8, seed=seed, scorer=TableScorer(lambda seq: 1.0))
        sel.select(Q, cands([1, 1, 1, 1]))
        return sel.trace()["best_path"], sel.trace()["nodes"]
    assert run(7) == run(7)
    assert run(None) == run(None)


# ------------------------------------------------------------------------------------------ config and errors
def _config(selector):
    return {"backends": {"llm": {"default": {"type": "fake"}}, "embeddings": {"default": {"type": "fake"}}},
            "index": {"chunker": {"type": "sentence", "max_tokens": 24}, "retriever": {"type": "bm25"},
                      "store": ":memory:"},
            "query": {"selector": selector}}


def test_validation_rejects_a_zero_budget_naming_the_path():
    with pytest.raises(ConfigError, match=r"query\.selector\.0\.budget"):
        load_config(_config([{"type": "corag", "budget": 0}]))


def test_unknown_scorer_or_bad_scorer_params_fail_when_the_scorer_is_built():
    with pytest.raises(UnknownComponentError, match="nope"):
        CoragSelector(scorer={"type": "nope"}).select(Q, cands([1]))
    with pytest.raises(ConfigError, match="query.selector.scorer"):
        CoragSelector(scorer={"type": "embedding", "bogus": 1}).select(Q, cands([1]))
    with pytest.raises(ConfigError, match="scorer"):
        CoragSelector(scorer=3)


def test_to_config_round_trip_keeps_the_nested_scorer_spec():
    cfg = load_config(_config({"type": "corag", "budget": 300, "scorer": {"type": "embedding"}}))
    selector = cfg["query"]["selector"]
    assert selector["scorer"] == {"type": "embedding", "embedder": "default"} and selector["c"] == 2.4 and selector["lambda_"] == 0.1
    assert load_config(cfg)["query"]["selector"] == selector


# ------------------------------------------------------------------------------------------ end to end
def test_pipeline_end_to_end_with_fake_backends_records_search_statistics():
    from ragkit import Pipeline

    docs = [Document.from_text("Paris is the capital of France. The Eiffel Tower is in Paris. "
                               "Rome is the capital of Italy. The Colosseum is in Rome. "
                               "Tokyo is the capital of Japan. Sushi is popular in Tokyo.")]
    pipe = Pipeline.from_config(_config([{"type": "corag", "budget": 60, "iterations": 8,
                                          "scorer": {"type": "embedding"}}]))
    pipe.index(docs)
    answer = pipe.query("What is the capital of Italy?")
    stage = next(s for s in answer.trace["stages"] if s["slot"] == "query.selector")
    details = stage["details"]
    # (stage["type"] reads "selector" for a one-link chain: pipeline._type_of, reported to the lead)
    assert details["scorer"] == "embedding" and details["iterations"] >= 1 and details["scorer_calls"] >= 1
    assert details["best_path"] == stage["ids"] == [s.chunk.id for s in answer.chunks]
    assert details["best_tokens"] <= 60 and details["own_score"] is not None
    for key in ("nodes_expanded", "scored_tokens", "avg_score", "cache_hits"):
        assert key in details
    json.dumps(answer.trace)
    # the nested scorer got the pipeline's (fake) embedder through the query context
    scorer = pipe.selector.scorer_for()
    assert "Fake" in type(getattr(scorer.embedder, "inner", scorer.embedder)).__name__


# ------------------------------------------------------------------------------------------ ragkit validate
_VALIDATE = """backends:
  llm: {default: {type: openai, model: gpt-4o-mini, base_url: "http://127.0.0.1:9/v1"}}
  embeddings: {default: {type: fake}}
corpus: {paths: ["README.md"]}
index: {chunker: {type: sentence, max_tokens: 64}, retriever: {type: bm25}}
query:
  selector: [{type: corag, budget: BUDGET, scorer: SCORER}]
"""


@pytest.mark.parametrize("budget, scorer, path, message", [
    ("0", "{type: embedding}", "query.selector.0.budget", "greater than 0"),
    ("500", "{type: bm25_scorer}", "query.selector.0.scorer.type", "unknown scorer type 'bm25_scorer'"),
    ("500", "{type: query_likelihood, llm: default}", "query.selector.0.scorer.llm",
     "query_likelihood needs capability 'token_logprobs'"),
])
def test_ragkit_validate_rejects_bad_corag_specs_naming_the_path(tmp_path, budget, scorer, path, message):
    from typer.testing import CliRunner

    from ragkit.cli import app

    config = tmp_path / "corag.yaml"
    config.write_text(_VALIDATE.replace("BUDGET", budget).replace("SCORER", scorer))
    result = CliRunner().invoke(app, ["validate", str(config)])
    assert result.exit_code == 2
    assert path in result.stderr and message in result.stderr and "(line 7)" in result.stderr


def test_ragkit_validate_accepts_a_scorer_whose_llm_has_the_capability(tmp_path):
    from typer.testing import CliRunner

    from ragkit.cli import app

    config = tmp_path / "corag.yaml"
    config.write_text(_VALIDATE.replace("BUDGET", "500").replace("SCORER", "{type: llm_yes, llm: default}"))
    result = CliRunner().invoke(app, ["validate", str(config)])
    assert result.exit_code == 0, result.stderr
