"""Metric functions against hand-computed values (overlaps, other documents, empty inputs)."""

from __future__ import annotations

import doctest
import math

import pytest

from ragkit.eval import metrics as m
from ragkit.eval.metrics import (
    all_within_k,
    answer_in_context,
    chroma_span_scores,
    chunk_relevance,
    cost_summary,
    covered_ranks,
    evidence_scores,
    exact_match,
    hit_at_k,
    mean_std,
    merge_ranges,
    mrr,
    ndcg_at_k,
    normalize_answer,
    passage_ranks,
    percentile,
    recall_at_k,
    span_scores,
    token_f1,
)


def test_doctests() -> None:
    assert doctest.testmod(m, optionflags=doctest.ELLIPSIS).failed == 0


# ------------------------------------------------------------------------------------- our arithmetic
def test_union_scores_single_chunk_inside_gold() -> None:
    s = span_scores([("d", 10, 20)], [("d", 0, 40)])
    assert (s.covered, s.gold_chars, s.retrieved_chars) == (10, 40, 10)
    assert s.recall == 0.25 and s.precision == 1.0 and s.iou == 0.25


def test_union_scores_overlapping_chunks_count_once() -> None:
    # chunks [0,30) and [20,50) overlap on 10 chars; gold [25,45) and [40,60) overlap on 5 chars.
    s = span_scores([("d", 0, 30), ("d", 20, 50)], [("d", 25, 45), ("d", 40, 60)])
    # R = [0,50) 50 chars, G = [25,60) 35 chars, R∩G = [25,50) 25 chars, R∪G = 60 chars
    assert (s.covered, s.retrieved_chars, s.gold_chars) == (25, 50, 35)
    assert s.recall == pytest.approx(25 / 35)
    assert s.precision == pytest.approx(25 / 50)
    assert s.iou == pytest.approx(25 / 60)


def test_union_scores_other_document_counts_in_precision_only() -> None:
    s = span_scores([("d", 0, 10), ("e", 0, 10)], [("d", 0, 10)])
    assert s.recall == 1.0 and s.precision == 0.5 and s.iou == 0.5


def test_union_scores_empty_retrieval_and_empty_gold() -> None:
    empty = span_scores([], [("d", 0, 10)])
    assert (empty.recall, empty.precision, empty.iou) == (0.0, 0.0, 0.0)
    no_gold = span_scores([("d", 0, 10)], [])
    assert (no_gold.recall, no_gold.precision, no_gold.iou) == (0.0, 0.0, 0.0)
    assert span_scores([], []).iou == 0.0


def test_union_scores_touching_chunks_make_a_contiguous_range() -> None:
    s = span_scores([("d", 0, 5), ("d", 5, 10)], [("d", 3, 8)])
    assert s.retrieved_chars == 10 and s.covered == 5 and s.iou == 0.5


# ------------------------------------------------------------------------------------- Chroma's arithmetic
def test_chroma_overlapping_chunks_counted_twice_in_precision() -> None:
    s = chroma_span_scores([("d", 0, 30), ("d", 20, 50)], [("d", 25, 45)])
    # numerator: union of [25,30) and [25,45) = 20; precision denominator 30 + 30 = 60
    assert (s.covered, s.retrieved_chars, s.gold_chars) == (20, 60, 20)
    assert s.recall == 1.0
    assert s.precision == pytest.approx(20 / 60)
    assert s.iou == pytest.approx(20 / 60)  # nothing of the reference left unused


def test_chroma_other_corpus_and_unused_reference() -> None:
    # reference [100,200); chunk [150,250) covers half; a chunk from another corpus counts in the denominator
    s = chroma_span_scores([("d", 150, 250), ("other", 0, 40)], [("d", 100, 200)])
    assert s.covered == 50
    assert s.recall == pytest.approx(0.5)
    assert s.precision == pytest.approx(50 / 140)
    assert s.iou == pytest.approx(50 / (140 + 50))


def test_chroma_overlapping_references_sum_without_union() -> None:
    # references [0,10) and [5,15) overlap; recall denominator is 10 + 10 (their code sums them)
    s = chroma_span_scores([("d", 0, 15)], [("d", 0, 10), ("d", 5, 15)])
    assert s.covered == 15 and s.gold_chars == 20
    assert s.recall == pytest.approx(15 / 20)
    assert s.precision == 1.0 and s.iou == 1.0


def test_chroma_uncovered_parts_of_each_reference_are_summed() -> None:
    # chunk covers [4,6); refs [0,10) and [5,15): unused = (10-2) + (10-1) = 17
    s = chroma_span_scores([("d", 4, 6)], [("d", 0, 10), ("d", 5, 15)])
    assert s.covered == 2
    assert s.iou == pytest.approx(2 / (2 + 17))


def test_chroma_empty_retrieval() -> None:
    s = chroma_span_scores([], [("d", 0, 10)])
    assert (s.recall, s.precision, s.iou) == (0.0, 0.0, 0.0)


def test_the_two_arithmetics_agree_without_overlaps_or_stray_chunks() -> None:
    retrieved, gold = [("d", 0, 10), ("d", 20, 30)], [("d", 5, 25)]
    ours, theirs = span_scores(retrieved, gold), chroma_span_scores(retrieved, gold)
    assert (ours.recall, ours.precision, ours.iou) == pytest.approx((theirs.recall, theirs.precision, theirs.iou))
    assert ours.iou == pytest.approx(10 / 30)


def test_merge_ranges() -> None:
    assert merge_ranges([]) == []
    assert merge_ranges([(3, 5), (0, 1), (1, 2), (4, 9)]) == [(0, 2), (3, 9)]


# ------------------------------------------------------------------------------------- evidence
def test_covered_ranks_contain_needs_whole_span_across_chunks() -> None:
    ranked = [("d", 0, 10), ("e", 0, 5), ("d", 10, 20), ("d", 50, 60)]
    gold = [("d", 5, 15), ("e", 1, 2), ("d", 55, 70)]
    assert covered_ranks(ranked, gold) == [3, 2, None]
    assert covered_ranks(ranked, gold, rule="overlap") == [1, 2, 4]
    assert covered_ranks([], gold) == [None, None, None]
    with pytest.raises(ValueError, match="hit rule"):
        covered_ranks(ranked, gold, rule="nearby")  # type: ignore[arg-type]


def test_rank_metrics() -> None:
    ranks = [2, None, 5]
    assert recall_at_k(ranks, 1) == 0.0
    assert recall_at_k(ranks, 2) == pytest.approx(1 / 3)
    assert recall_at_k(ranks, 5) == pytest.approx(2 / 3)
    assert hit_at_k(ranks, 1) == 0.0 and hit_at_k(ranks, 2) == 1.0
    assert all_within_k(ranks, 100) == 0.0
    assert all_within_k([2, 5], 5) == 1.0 and all_within_k([2, 5], 4) == 0.0
    assert mrr(ranks) == 0.5 and mrr([None]) == 0.0 and mrr([]) == 0.0
    assert recall_at_k([], 5) == 0.0 and hit_at_k([], 5) == 0.0 and all_within_k([], 5) == 0.0


def test_passage_ranks() -> None:
    assert passage_ranks(["p2", "p1", "p2"], ["p1", "p2", "p9"]) == [2, 1, None]
    assert passage_ranks([], ["p1"]) == [None]


def test_ndcg_hand_computed() -> None:
    # relevant at ranks 1 and 3, two relevant in the index: (1 + 1/2) / (1 + 1/log2(3))
    assert ndcg_at_k([1, 0, 1], 3, ideal=2) == pytest.approx(1.5 / (1 + 1 / math.log2(3)))
    assert ndcg_at_k([1, 1], 2, ideal=2) == pytest.approx(1.0)
    # graded gains: ideal order (3, 2) vs ranked (2, 3)
    assert ndcg_at_k([2, 3], 2, ideal=[2, 3]) == pytest.approx((2 + 3 / math.log2(3)) / (3 + 2 / math.log2(3)))
    assert ndcg_at_k([], 5, ideal=3) == 0.0
    assert ndcg_at_k([0, 1], 1, ideal=1) == 0.0


def test_evidence_scores_multi_hop() -> None:
    ranked = [("d", 0, 100), ("x", 0, 50), ("e", 0, 80)]
    gold = [("d", 10, 20), ("e", 30, 40)]
    at1 = evidence_scores(ranked, gold, k=1)
    assert (at1.hit, at1.recall, at1.all_gold, at1.mrr) == (1.0, 0.5, 0.0, 1.0)
    assert at1.ndcg == 1.0  # one slot, filled by a relevant chunk (ideal DCG truncated at k)
    at3 = evidence_scores(ranked, gold, k=3)
    assert (at3.recall, at3.all_gold) == (1.0, 1.0)
    assert at3.ndcg == pytest.approx((1 + 0.5) / (1 + 1 / math.log2(3)))
    assert chunk_relevance(ranked, gold) == [1.0, 0.0, 1.0]
    empty = evidence_scores([], gold, k=5, n_relevant=2)
    assert (empty.hit, empty.recall, empty.all_gold, empty.mrr, empty.ndcg) == (0.0, 0.0, 0.0, 0.0, 0.0)


# ------------------------------------------------------------------------------------- answers
def test_squad_normalisation_em_f1() -> None:
    assert normalize_answer("  The Cat, a DOG and an owl. ") == "cat dog and owl"
    assert exact_match("the cat", ["Cat"]) == 1.0
    assert exact_match("cats", ["cat"]) == 0.0
    assert exact_match("anything", []) == 0.0
    # prediction "big red barn", gold "red barn door": common 2, P = 2/3, R = 2/3 → F1 2/3
    assert token_f1("big red barn", ["red barn door"]) == pytest.approx(2 / 3)
    # max over aliases
    assert token_f1("red barn", ["blue", "the red barn"]) == 1.0
    assert token_f1("", ["x"]) == 0.0 and token_f1("", [""]) == 1.0 and token_f1("x", []) == 0.0
    # repeated tokens are counted with multiplicity: pred "a a b" → tokens [b] after article removal
    assert token_f1("paris paris", ["paris"]) == pytest.approx(2 * 0.5 * 1 / 1.5)


def test_answer_in_context() -> None:
    ctx = "The tower, completed in 1889, stands in Paris."
    assert answer_in_context(ctx, ["1889"]) == 1.0
    assert answer_in_context(ctx, ["188"]) == 0.0  # whole tokens only
    assert answer_in_context(ctx, ["London", "paris"]) == 1.0
    assert answer_in_context(ctx, ["yes"]) == 0.0
    assert answer_in_context("", ["x"]) == 0.0 and answer_in_context(ctx, []) == 0.0


# ------------------------------------------------------------------------------------- cost
def test_cost_metrics() -> None:
    assert mean_std([]) == (0.0, 0.0)
    assert mean_std([2, 4, 4, 4, 5, 5, 7, 9]) == (5.0, 2.0)
    assert percentile([], 50) == 0.0
    assert percentile([5], 95) == 5.0
    assert percentile([1, 2, 3, 4, 5], 50) == 3.0
    assert percentile([1, 2, 3, 4, 5], 95) == pytest.approx(4.8)
    c = cost_summary([10, 30], index_seconds=1.5, latencies_s=[0.001, 0.002, 0.003], char_counts=[40, 80],
                     usage={"embedding_calls": 3, "embedded_texts": 12, "llm_calls": 1, "prompt_tokens": 7})
    assert (c.chunks, c.mean_tokens, c.std_tokens, c.mean_chars) == (2, 20.0, 10.0, 60.0)
    assert c.latency_p50_ms == pytest.approx(2.0) and c.latency_p95_ms == pytest.approx(2.9)
    assert (c.embedding_calls, c.embedded_texts, c.llm_calls, c.prompt_tokens) == (3, 12, 1, 7)
    assert cost_summary([]).chunks == 0
