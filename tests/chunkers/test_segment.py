"""The shared segmentation DP: exact against brute force, constraints, ties, calibration."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ragkit.chunkers._segment import (
    apply_constraints,
    calibrate_boundary_penalty,
    cluster_table,
    idc_table,
    max_units_within,
    mean_pairwise_similarity,
    optimal_segmentation,
    segmentation_score,
    token_mask,
)

# ---------------------------------------------------------------------------------------------
# Independent reference implementations (straight from the definitions, no shared code)


def all_segmentations(n: int):
    """Every way to cut n units into consecutive non-empty segments."""
    for mask in range(2 ** (n - 1)):
        cuts = [i for i in range(1, n) if mask >> (i - 1) & 1]
        bounds = [0, *cuts, n]
        yield [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]


def feasible(seg, max_len, tokens=None, max_tokens=None) -> bool:
    for s, e in seg:
        if e - s > max_len:
            return False
        if max_tokens is not None and sum(tokens[s:e]) > max_tokens:
            return False
    return True


def cosine(a, b) -> float:
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(x * x for x in b))
    if na == 0 or nb == 0:
        return 0.0
    return sum(x * y for x, y in zip(a, b)) / (na * nb)


def idc_objective(seg, units, intents, lam, beta) -> float:
    """U(S) = Σ max_q cos(mean(C), q) − λ Σ |C|² − β (k − 1), from the paper's definition."""
    total = 0.0
    for s, e in seg:
        rows = units[s:e]
        mean = [sum(r[d] for r in rows) / len(rows) for d in range(len(rows[0]))]
        total += max(cosine(mean, q) for q in intents) - lam * (e - s) ** 2
    return total - beta * (len(seg) - 1)


def cluster_objective(seg, units, mu, beta) -> float:
    """Σ over segments of Σ_{a≠b} (cos(v_a, v_b) − μ) − β (k − 1), with explicit pair loops."""
    total = 0.0
    for s, e in seg:
        for a in range(s, e):
            for b in range(s, e):
                if a != b:
                    total += cosine(units[a], units[b]) - mu
    return total - beta * (len(seg) - 1)


def brute_force(n, objective, max_len, tokens=None, max_tokens=None):
    best_val, best = -math.inf, None
    for seg in all_segmentations(n):
        if feasible(seg, max_len, tokens, max_tokens):
            val = objective(seg)
            if val > best_val:
                best_val, best = val, seg
    return best_val, best


# ---------------------------------------------------------------------------------------------
# Hypothesis strategies: small integer-valued vectors keep sums exact (zero sums are exactly zero).


@st.composite
def instances(draw, with_intents: bool = True):
    n = draw(st.integers(1, 10))
    dim = draw(st.integers(1, 4))
    cell = st.integers(-3, 3).map(float)
    units = [[draw(cell) for _ in range(dim)] for _ in range(n)]
    intents = []
    if with_intents:
        m = draw(st.integers(1, 4))
        intents = [[draw(cell) for _ in range(dim)] for _ in range(m)]
        if all(not any(q) for q in intents):
            intents[0][0] = 1.0
    max_len = draw(st.integers(1, n))
    tokens = [draw(st.integers(1, 6)) for _ in range(n)]
    max_tokens = draw(st.one_of(st.none(), st.integers(6, 20)))
    beta = draw(st.sampled_from([-1.0, 0.0, 0.3, 0.9, 1.2, 2.5]))
    return n, units, intents, max_len, tokens, max_tokens, beta


@settings(max_examples=300, deadline=None)
@given(instances(), st.sampled_from([0.0, 0.0005, 0.01, 0.2]))
def test_idc_dp_equals_brute_force(inst, lam):
    n, units, intents, max_len, tokens, max_tokens, beta = inst
    table = idc_table(np.array(units), np.array(intents), max_len, length_weight=lam)
    table = apply_constraints(table, unit_tokens=tokens, max_tokens=max_tokens)
    seg = optimal_segmentation(table, boundary_penalty=beta)

    def objective(s):
        return idc_objective(s, units, intents, lam, beta)

    best_val, _ = brute_force(n, objective, max_len, tokens, max_tokens)
    assert feasible(seg.segments, max_len, tokens, max_tokens)
    assert seg.score == pytest.approx(best_val, abs=1e-7)
    assert objective(list(seg.segments)) == pytest.approx(best_val, abs=1e-7)


@settings(max_examples=300, deadline=None)
@given(instances(with_intents=False), st.one_of(st.none(), st.sampled_from([-0.5, 0.0, 0.2, 0.6])))
def test_cluster_dp_equals_brute_force(inst, offset):
    n, units, _, max_len, tokens, max_tokens, beta = inst
    table = cluster_table(np.array(units), max_len, offset=offset)
    table = apply_constraints(table, unit_tokens=tokens, max_tokens=max_tokens)
    seg = optimal_segmentation(table, boundary_penalty=beta)
    if offset is None:
        pairs = [(a, b) for a in range(n) for b in range(a + 1, n)]
        mu = sum(cosine(units[a], units[b]) for a, b in pairs) / len(pairs) if pairs else 0.0
    else:
        mu = offset

    def objective(s):
        return cluster_objective(s, units, mu, beta)

    best_val, _ = brute_force(n, objective, max_len, tokens, max_tokens)
    assert feasible(seg.segments, max_len, tokens, max_tokens)
    assert seg.score == pytest.approx(best_val, abs=1e-7)
    assert objective(list(seg.segments)) == pytest.approx(best_val, abs=1e-7)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_generic_table_dp_and_tie_rule_match_brute_force(data):
    """Integer tables make ties exact: the DP must pick the documented tie winner, not just any optimum."""
    n = data.draw(st.integers(1, 8))
    max_len = data.draw(st.integers(1, n))
    table = np.array([[float(data.draw(st.integers(-3, 3))) for _ in range(max_len)] for _ in range(n)])
    beta = float(data.draw(st.integers(-2, 2)))
    costs = np.array([float(data.draw(st.integers(-1, 1))) for _ in range(n)])
    min_len = data.draw(st.integers(1, 3))
    constrained = apply_constraints(table, min_len=min_len, short_penalty=100.0)
    seg = optimal_segmentation(constrained, boundary_penalty=beta, boundary_costs=costs)

    def objective(s):
        return segmentation_score(constrained, s, boundary_penalty=beta, boundary_costs=costs)

    scored = [(objective(s), s) for s in all_segmentations(n) if feasible(s, max_len)]
    best_val = max(v for v, _ in scored)
    optimal = [s for v, s in scored if v == best_val]
    # Documented rule: longest last segment, then longest second-to-last, ...
    expected = min(optimal, key=lambda s: [start for start, _ in reversed(s)])
    assert seg.score == best_val
    assert list(seg.segments) == expected


def test_float_vectors_match_brute_force():
    rng = np.random.default_rng(7)
    for _ in range(40):
        n, dim, m = int(rng.integers(2, 11)), int(rng.integers(2, 9)), int(rng.integers(1, 6))
        units, intents = rng.standard_normal((n, dim)), rng.standard_normal((m, dim))
        max_len, beta, lam = int(rng.integers(1, n + 1)), float(rng.uniform(0, 1.5)), 0.0005
        seg = optimal_segmentation(idc_table(units, intents, max_len, length_weight=lam), boundary_penalty=beta)
        u, q = units.tolist(), intents.tolist()
        val, _ = brute_force(n, lambda s, u=u, q=q, b=beta, lm=lam: idc_objective(s, u, q, lm, b), max_len)
        assert seg.score == pytest.approx(val, abs=1e-9)


# ---------------------------------------------------------------------------------------------
# Behaviour on hand-made instances (METHODS.md §5.6)

ONE_HOT = np.array([[1, 0], [1, 0], [1, 0], [0, 1], [0, 1], [0, 1]], dtype=float)


def test_one_hot_toy_gives_intent_aligned_chunks():
    table = idc_table(ONE_HOT, np.eye(2), max_len=6, length_weight=0.0005)
    assert optimal_segmentation(table, boundary_penalty=1.2).segments == ((0, 3), (3, 6))
    # Intents given in the other order change nothing.
    table = idc_table(ONE_HOT, np.eye(2)[::-1], max_len=6, length_weight=0.0005)
    assert optimal_segmentation(table, boundary_penalty=1.2).segments == ((0, 3), (3, 6))


def test_large_lambda_forces_singletons_and_large_beta_one_chunk():
    rng = np.random.default_rng(0)
    units, intents = rng.standard_normal((12, 8)), rng.standard_normal((3, 8))
    small = optimal_segmentation(idc_table(units, intents, 12, length_weight=50.0), boundary_penalty=0.0)
    assert small.lengths == (1,) * 12
    big = optimal_segmentation(idc_table(units, intents, 12, length_weight=0.0005), boundary_penalty=100.0)
    assert big.segments == ((0, 12),)
    capped = optimal_segmentation(idc_table(units, intents, 5, length_weight=0.0005), boundary_penalty=100.0)
    assert len(capped) == 3 and max(capped.lengths) <= 5  # ceil(12 / 5) chunks: as few as L allows


def test_max_len_and_token_cap_respected():
    rng = np.random.default_rng(1)
    units, intents = rng.standard_normal((40, 6)), rng.standard_normal((4, 6))
    tokens = rng.integers(1, 30, size=40)
    for max_len in (1, 3, 7):
        table = apply_constraints(idc_table(units, intents, max_len), unit_tokens=tokens, max_tokens=45)
        seg = optimal_segmentation(table, boundary_penalty=-1.0 if max_len == 1 else 2.0)
        assert max(seg.lengths) <= max_len
        assert all(tokens[s:e].sum() <= 45 for s, e in seg.segments)
        assert seg.segments[0][0] == 0 and seg.segments[-1][1] == 40
        assert all(a[1] == b[0] for a, b in zip(seg.segments, seg.segments[1:]))


def test_ties_are_stable_and_take_longest_last_segment():
    table = np.zeros((5, 2))
    first = optimal_segmentation(table)
    assert first.segments == ((0, 1), (1, 3), (3, 5))
    assert all(optimal_segmentation(table).segments == first.segments for _ in range(5))
    # Perturbations below the tolerance do not change the choice.
    jitter = np.random.default_rng(3).uniform(-1e-13, 1e-13, size=table.shape)
    assert optimal_segmentation(table + jitter).segments == first.segments


def test_min_len_avoids_short_segments_when_possible():
    table = np.zeros((7, 7))
    table[:, 0] = 5.0  # singletons look attractive
    seg = optimal_segmentation(apply_constraints(table, min_len=3))
    assert min(seg.lengths) >= 3
    # Too short a document to meet min_len: still segmented (soft fallback), not an error.
    assert optimal_segmentation(apply_constraints(np.zeros((2, 2)), min_len=3)).segments == ((0, 2),)


def test_boundary_costs_steer_cuts():
    table = apply_constraints(np.zeros((6, 3)))
    costs = np.zeros(6)
    costs[2] = -1.0  # reward a cut before unit 2
    costs[4] = -1.0
    seg = optimal_segmentation(table, boundary_penalty=0.5, boundary_costs=costs)
    assert seg.starts == (0, 2, 4)


def test_infeasible_and_malformed_inputs_raise_clear_errors():
    table = apply_constraints(np.zeros((3, 2)), unit_tokens=[1, 50, 1], max_tokens=10)
    with pytest.raises(ValueError, match="no segmentation of 3 units satisfies"):
        optimal_segmentation(table)
    with pytest.raises(ValueError, match="contains NaN"):
        optimal_segmentation(np.full((2, 2), np.nan))
    with pytest.raises(ValueError, match="non-empty"):
        optimal_segmentation(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="boundary_costs must have one entry per unit"):
        optimal_segmentation(np.zeros((3, 2)), boundary_costs=[0.0])
    with pytest.raises(ValueError, match="dimension 2 but intent vectors 3"):
        idc_table(np.ones((2, 2)), np.ones((1, 3)), 2)
    with pytest.raises(ValueError, match="NaN or infinite"):
        cluster_table(np.array([[np.nan, 1.0]]), 1)


def test_tables_match_direct_formulas():
    rng = np.random.default_rng(5)
    units, intents = rng.standard_normal((15, 7)), rng.standard_normal((5, 7))
    table = idc_table(units, intents, 6, length_weight=0.01, coherence_weight=0.3)
    ctable = cluster_table(units, 6, offset=0.1)
    for s, length in itertools.product(range(15), range(1, 7)):
        if s + length > 15:
            assert table[s, length - 1] == -np.inf and ctable[s, length - 1] == -np.inf
            continue
        rows = units[s : s + length]
        rel = max(cosine(rows.mean(0), q) for q in intents)
        pairs = [cosine(rows[a], rows[b]) for a in range(length) for b in range(length) if a != b]
        coh = 1.0 if length == 1 else sum(pairs) / len(pairs)
        assert table[s, length - 1] == pytest.approx(rel - 0.01 * length**2 + 0.3 * coh, abs=1e-10)
        assert ctable[s, length - 1] == pytest.approx(sum(p - 0.1 for p in pairs), abs=1e-10)
    pairs = [cosine(units[a], units[b]) for a in range(15) for b in range(a + 1, 15)]
    assert mean_pairwise_similarity(units) == pytest.approx(sum(pairs) / len(pairs), abs=1e-12)


def test_code_profile_length_penalties():
    units, intents = np.ones((10, 2)), np.array([[1.0, 0.0]])
    lin = idc_table(units, intents, 10, length_weight=0.1, length_penalty="linear", target_len=4)
    rel = cosine([1, 1], [1, 0])
    assert lin[0, 0] == pytest.approx(rel - 0.1 * 0.5 * 3)  # under target: half weight
    assert lin[0, 5] == pytest.approx(rel - 0.1 * 2)  # 6 > 4: full weight
    quad = idc_table(units, intents, 10, length_weight=0.1, length_penalty="quadratic", target_len=4)
    assert quad[0, 0] == pytest.approx(rel - 0.1 * 0.5 * 9)
    assert quad[0, 9] == pytest.approx(rel)  # never above L inside the DP


def test_calibration_hits_target_mean_size():
    rng = np.random.default_rng(11)
    units, intents = rng.standard_normal((300, 16)), rng.standard_normal((10, 16))
    tokens = rng.integers(10, 40, size=300)
    table = apply_constraints(idc_table(units, intents, 25), unit_tokens=tokens, max_tokens=400)
    for target in (60, 150, 250):
        beta, seg = calibrate_boundary_penalty(table, tokens, target)
        mean = tokens.sum() / len(seg)
        assert abs(mean - target) / target < 0.1, (target, mean, beta)
        assert seg.score == pytest.approx(segmentation_score(table, seg.segments, boundary_penalty=beta))


def test_token_helpers():
    assert max_units_within([5, 5, 1, 1, 20], 11) == 3
    assert max_units_within([], 10) == 1
    assert token_mask([3, 3, 3], 3, 6).tolist() == [[True, True, False], [True, True, False], [True, False, False]]
