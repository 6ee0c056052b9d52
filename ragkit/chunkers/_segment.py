"""Exact optimal segmentation by dynamic programming, shared by the ``intent`` and ``cluster`` chunkers.

A *segmentation* of ``n`` units (sentences, small text pieces) cuts them into consecutive half-open
ranges ``[s, e)``. Its score is the sum of per-segment scores minus a penalty ``β`` for every segment
after the first (``β·(k − 1)`` for ``k`` segments) and an optional cost for each place a segment
starts. :func:`optimal_segmentation` returns the exact maximum over all segmentations whose segments
are at most ``L`` units long (and, optionally, at most ``max_tokens`` tokens):

    f(0) = 0
    f(e) = max over ℓ = 1..min(L, e) of f(e − ℓ) + score(e − ℓ, ℓ) − β·[e − ℓ > 0] − cost[e − ℓ]

Segment scores come as a table ``table[s, ℓ − 1]`` = score of the segment ``[s, s + ℓ)`` (``-inf``
where the segment is not allowed). The table builders here fill all ``O(n·L)`` entries with numpy,
one vectorised step per segment length: the band of the Gram matrix (``v_a·v_{a+d}``, ``d < L``, by
blocked matrix products) gives every segment's squared summed norm by an ``O(n)`` update per length,
and running window sums of the ``n × M`` unit–intent dot products (``S_ℓ[s] = S_{ℓ−1}[s] +
x[s + ℓ − 1]``, a prefix-sum recurrence that never subtracts large prefix totals and so keeps full
precision) give every segment's dot products with the intents. Only the ``n`` steps of the
recurrence itself run in Python, each a numpy operation over the ``≤ L`` candidates ending at ``e``.

Scores:
    - :func:`idc_table`: Intent-Driven Chunking (METHODS.md §5). ``R(C) = max_q cos(mean(C), q)``
      minus a length penalty (paper: ``λ·|C|²``; the authors' code: target-relative ``linear`` or
      ``quadratic``), plus an optional coherence term (mean pairwise cosine of the segment's units).
    - :func:`cluster_table`: within-segment similarity ``Σ_{a≠b∈C} (cos(v_a, v_b) − μ)``, computed
      exactly as ``‖Σ v̂‖² − |C| − μ·|C|(|C| − 1)`` from unit-normalised vectors; ``μ`` defaults to the
      document's mean pairwise cosine, so only pairs more similar than average reward grouping.

Ties: values within ``TIE_TOL`` (relative) of the best are ties; among them the recurrence takes the
**longest last segment** (the earliest start), so the same input always gives the same cut.

Example:
    >>> import numpy as np
    >>> units = np.array([[1, 0], [1, 0], [1, 0], [0, 1], [0, 1], [0, 1]], dtype=float)
    >>> intents = np.eye(2)
    >>> table = idc_table(units, intents, max_len=6, length_weight=0.0005)
    >>> optimal_segmentation(table, boundary_penalty=1.2).segments  # β near R: chunks follow intents
    ((0, 3), (3, 6))
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

TIE_TOL = 1e-9
"""Relative tolerance under which two candidate values count as tied."""

LengthPenalty = Literal["paper", "linear", "quadratic"]


@dataclass(frozen=True)
class Segmentation:
    """An optimal segmentation: half-open unit ranges in order, and the objective value they reach.

    Example:
        >>> seg = Segmentation(segments=((0, 2), (2, 5)), score=1.5)
        >>> seg.starts, seg.lengths
        ((0, 2), (2, 3))
    """

    segments: tuple[tuple[int, int], ...]
    score: float

    @property
    def starts(self) -> tuple[int, ...]:
        """Start unit of each segment."""
        return tuple(s for s, _ in self.segments)

    @property
    def lengths(self) -> tuple[int, ...]:
        """Length (in units) of each segment."""
        return tuple(e - s for s, e in self.segments)

    def __len__(self) -> int:
        return len(self.segments)


# --------------------------------------------------------------------------------------------------
# Constraints


def max_units_within(unit_tokens: Sequence[int] | np.ndarray, max_tokens: int) -> int:
    """The longest run of consecutive units whose token counts sum to at most ``max_tokens`` (≥ 1).

    Example:
        >>> max_units_within([5, 5, 1, 1, 20], 11)
        3
    """
    tokens = np.asarray(unit_tokens, dtype=np.int64)
    if tokens.size == 0:
        return 1
    prefix = np.concatenate([[0], np.cumsum(tokens)])
    # For each end e, the earliest start s with prefix[e] - prefix[s] <= max_tokens.
    starts = np.searchsorted(prefix, prefix[1:] - max_tokens, side="left")
    return max(1, int((np.arange(1, tokens.size + 1) - starts).max()))


def token_mask(unit_tokens: Sequence[int] | np.ndarray, max_len: int, max_tokens: int | None) -> np.ndarray:
    """Boolean table ``ok[s, ℓ − 1]``: segment ``[s, s + ℓ)`` fits in the document and in ``max_tokens``.

    Example:
        >>> token_mask([3, 3, 3], max_len=2, max_tokens=5).tolist()
        [[True, False], [True, False], [True, False]]
    """
    tokens = np.asarray(unit_tokens, dtype=np.int64)
    n = tokens.size
    starts = np.arange(n)[:, None]
    lengths = np.arange(1, max_len + 1)[None, :]
    ends = starts + lengths
    ok = ends <= n
    if max_tokens is not None:
        prefix = np.concatenate([[0], np.cumsum(tokens)])
        sums = prefix[np.minimum(ends, n)] - prefix[starts]
        ok &= sums <= max_tokens
    return ok


def apply_constraints(
    table: np.ndarray,
    *,
    unit_tokens: Sequence[int] | np.ndarray | None = None,
    max_tokens: int | None = None,
    min_len: int = 1,
    short_penalty: float = 1e6,
) -> np.ndarray:
    """Return a copy of ``table`` with forbidden segments set to ``-inf`` and short ones penalised.

    Segments over ``max_tokens`` (or past the end) become ``-inf``: a hard constraint. Segments
    shorter than ``min_len`` units lose ``short_penalty``: large enough that the optimum uses as few
    of them as the other constraints allow, yet finite so that a document which cannot be cut into
    ``min_len``-unit pieces (too short, or tokens too dense) still gets its best segmentation.

    Example:
        >>> t = apply_constraints(np.zeros((3, 2)), unit_tokens=[1, 1, 1], max_tokens=10, min_len=2)
        >>> t[:, 0].tolist(), float(t[2, 1])
        ([-1000000.0, -1000000.0, -1000000.0], -inf)
    """
    table = np.array(table, dtype=np.float64, copy=True)
    n, max_len = table.shape
    tokens = np.zeros(n, dtype=np.int64) if unit_tokens is None else np.asarray(unit_tokens, dtype=np.int64)
    if tokens.shape != (n,):
        raise ValueError(f"unit_tokens has {tokens.size} entries for a table of {n} units")
    ok = token_mask(tokens, max_len, max_tokens)
    table[~ok] = -np.inf
    if min_len > 1:
        short = min(min_len - 1, max_len)
        table[:, :short] -= short_penalty
    return table


# --------------------------------------------------------------------------------------------------
# The recurrence


def _by_end(table: np.ndarray, start_cost: np.ndarray) -> np.ndarray:
    """Re-index ``table`` (by start) to ``by_end[e − 1, ℓ − 1]`` and subtract each start's cost."""
    n, max_len = table.shape
    adjusted = table - start_cost[:, None]
    ends = np.arange(1, n + 1)[:, None]
    lengths = np.arange(1, max_len + 1)[None, :]
    starts = ends - lengths
    valid = starts >= 0
    by_end = np.full((n, max_len), -np.inf)
    rows, cols = np.nonzero(valid)
    by_end[rows, cols] = adjusted[starts[rows, cols], cols]
    return by_end


def optimal_segmentation(
    table: np.ndarray,
    *,
    boundary_penalty: float = 0.0,
    boundary_costs: Sequence[float] | np.ndarray | None = None,
    tie_tol: float = TIE_TOL,
) -> Segmentation:
    """The exact best segmentation for a table of segment scores (see the module docstring).

    Args:
        table: ``(n, L)`` array, ``table[s, ℓ − 1]`` = score of units ``[s, s + ℓ)``; ``-inf`` forbids
            a segment. Build it with :func:`idc_table` / :func:`cluster_table` and
            :func:`apply_constraints`.
        boundary_penalty: ``β``, subtracted once for every segment after the first.
        boundary_costs: optional length-``n`` array; ``boundary_costs[s]`` is subtracted when a
            segment starts at ``s > 0`` (``boundary_costs[0]`` is ignored). Negative costs reward a cut.
        tie_tol: relative tolerance for ties; ties go to the longest last segment.

    Returns:
        The :class:`Segmentation` and its objective value.

    Raises:
        ValueError: the table is empty or malformed, or no segmentation satisfies the constraints.

    Example:
        >>> table = np.array([[1.0, 3.0], [1.0, -np.inf]])
        >>> optimal_segmentation(table).segments
        ((0, 2),)
        >>> optimal_segmentation(table, boundary_penalty=-2.0).segments
        ((0, 1), (1, 2))
    """
    table = np.asarray(table, dtype=np.float64)
    if table.ndim != 2 or table.shape[0] == 0 or table.shape[1] == 0:
        raise ValueError(f"segment table must be a non-empty (n, L) array, got shape {table.shape}")
    if np.isnan(table).any():
        raise ValueError("segment table contains NaN; use -inf for forbidden segments")
    n, max_len = table.shape
    start_cost = np.full(n, float(boundary_penalty))
    if boundary_costs is not None:
        costs = np.asarray(boundary_costs, dtype=np.float64)
        if costs.shape != (n,):
            raise ValueError(f"boundary_costs must have one entry per unit ({n}), got shape {costs.shape}")
        start_cost = start_cost + costs
    start_cost[0] = 0.0
    # Columns reversed: for end e the candidates then run by ascending start (longest segment first).
    by_start = np.ascontiguousarray(_by_end(table, start_cost)[:, ::-1])

    f = np.empty(n + 1)
    f[0] = 0.0
    choice = np.zeros(n + 1, dtype=np.int64)
    neg_inf = -np.inf
    for e in range(1, n + 1):
        m = max_len if e >= max_len else e
        # candidate k: start e - m + k, length m - k
        cand = f[e - m : e] + by_start[e - 1, max_len - m :]
        best = cand.max()
        if best == neg_inf:
            f[e] = neg_inf
            continue
        k = int((cand >= best - tie_tol * max(1.0, abs(best))).argmax())  # first tie = longest segment
        f[e] = cand[k]
        choice[e] = m - k
    if f[n] == -np.inf:
        raise ValueError(
            f"no segmentation of {n} units satisfies the constraints (max {max_len} units per segment and "
            "the token cap); a single unit may already exceed max_tokens"
        )
    segments = []
    e = n
    while e > 0:
        s = e - int(choice[e])
        segments.append((s, e))
        e = s
    return Segmentation(segments=tuple(reversed(segments)), score=float(f[n]))


def segmentation_score(
    table: np.ndarray,
    segments: Sequence[tuple[int, int]],
    *,
    boundary_penalty: float = 0.0,
    boundary_costs: Sequence[float] | np.ndarray | None = None,
) -> float:
    """The objective value of a given segmentation under the same table and penalties.

    Example:
        >>> segmentation_score(np.ones((4, 2)), [(0, 2), (2, 4)], boundary_penalty=0.5)
        1.5
    """
    table = np.asarray(table, dtype=np.float64)
    costs = None if boundary_costs is None else np.asarray(boundary_costs, dtype=np.float64)
    total = 0.0
    for s, e in segments:
        total += float(table[s, e - s - 1])
        if s > 0:
            total -= boundary_penalty + (0.0 if costs is None else float(costs[s]))
    return total


def calibrate_boundary_penalty(
    table: np.ndarray,
    unit_tokens: Sequence[int] | np.ndarray,
    target_tokens: float,
    *,
    boundary_costs: Sequence[float] | np.ndarray | None = None,
    iterations: int = 40,
    tolerance: float = 0.01,
) -> tuple[float, Segmentation]:
    """Find ``β`` whose optimal segmentation has a mean segment size closest to ``target_tokens``.

    The number of segments of the optimum never increases with ``β`` (exchange argument on
    ``max_S A(S) − β·k(S)``), so a bisection on ``β`` reaches the segment count nearest to
    ``total tokens / target_tokens`` that any ``β`` can give. Each step is one run of the recurrence
    on the same table (the table is built once). The search stops once the segment count is within
    ``tolerance`` (relative) of the wanted count.

    Returns:
        ``(β, segmentation)``.

    Example:
        >>> table = apply_constraints(-np.arange(1.0, 9.0)[None, :] ** 2 * np.ones((8, 1)))
        >>> beta, seg = calibrate_boundary_penalty(table, [10] * 8, target_tokens=20)
        >>> seg.lengths
        (2, 2, 2, 2)
    """
    tokens = np.asarray(unit_tokens, dtype=np.float64)
    total = float(tokens.sum())
    want = max(1.0, total / max(float(target_tokens), 1e-9))
    finite = np.abs(table[np.isfinite(table)])
    finite = finite[finite < 1e5]  # leave out min-length penalties (apply_constraints' short_penalty)
    span = 3.0 * (float(finite.max()) if finite.size else 1.0) + 1.0
    if boundary_costs is not None:
        span += 2.0 * float(np.abs(np.asarray(boundary_costs, dtype=np.float64)).max())
    lo, hi = -span, span

    def run(beta: float) -> Segmentation:
        return optimal_segmentation(table, boundary_penalty=beta, boundary_costs=boundary_costs)

    best_beta, best_seg = hi, run(hi)
    if len(best_seg) >= want:
        return best_beta, best_seg
    low_seg = run(lo)
    if len(low_seg) <= want:
        return lo, low_seg
    if abs(len(low_seg) - want) < abs(len(best_seg) - want):
        best_beta, best_seg = lo, low_seg
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        seg = run(mid)
        if abs(len(seg) - want) < abs(len(best_seg) - want):
            best_beta, best_seg = mid, seg
        if len(seg) > want:
            lo = mid
        elif len(seg) < want:
            hi = mid
        else:
            break
        if abs(len(best_seg) - want) <= max(0.5, tolerance * want):
            break
    return best_beta, best_seg


# --------------------------------------------------------------------------------------------------
# Segment scores, vectorised per segment length


def window_sums(x: np.ndarray, max_len: int) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(ℓ, S_ℓ)`` for ``ℓ = 1..max_len`` where ``S_ℓ[s] = x[s] + … + x[s + ℓ − 1]``.

    Example:
        >>> [s.tolist() for _, s in window_sums(np.array([1.0, 2.0, 3.0]), 2)]
        [[1.0, 2.0, 3.0], [3.0, 5.0]]
    """
    n = x.shape[0]
    sums = np.array(x, dtype=np.float64, copy=True)
    for length in range(1, min(max_len, n) + 1):
        if length > 1:
            sums = sums[:-1] + x[length - 1 :]
        yield length, sums


def _unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def _check_vectors(name: str, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (rows = vectors), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def length_penalty_values(
    lengths: np.ndarray,
    *,
    length_weight: float,
    length_penalty: LengthPenalty = "paper",
    max_len: int = 1,
    target_len: float | None = None,
) -> np.ndarray:
    """The length penalty of segments of the given lengths (in units).

    - ``paper``: ``λ·ℓ²``;
    - ``linear`` (authors' code): ``λ·(max(0, ℓ − T) + 0.5·max(0, T − ℓ))``;
    - ``quadratic`` (authors' code): ``λ·(max(0, ℓ − L)² + 0.5·max(0, T − ℓ)²)``;

    with ``T = target_len`` (default ``max(5, L / 2)``, as in the authors' code).

    Example:
        >>> length_penalty_values(np.array([1, 2]), length_weight=0.5).tolist()
        [0.5, 2.0]
    """
    lengths = np.asarray(lengths, dtype=np.float64)
    if length_penalty == "paper":
        return length_weight * lengths**2
    target = float(target_len) if target_len is not None else max(5.0, max_len / 2.0)
    over_target = np.maximum(0.0, lengths - target)
    under = np.maximum(0.0, target - lengths)
    if length_penalty == "linear":
        return length_weight * (over_target + 0.5 * under)
    if length_penalty == "quadratic":
        over_max = np.maximum(0.0, lengths - max_len)
        return length_weight * (over_max**2 + 0.5 * under**2)
    raise ValueError(f"length_penalty must be 'paper', 'linear' or 'quadratic', got {length_penalty!r}")


def band_gram(x: np.ndarray, width: int, block: int = 64) -> np.ndarray:
    """``K[a, d] = x_a · x_{a+d}`` for ``d < width`` (0 past the end), by blocked matrix products.

    Each block of ``block`` rows is multiplied with the ``block + width − 1`` rows it can reach, so
    the work is ``O(n·(block + width)·D)`` in BLAS with ``n / block`` Python steps.

    Example:
        >>> band_gram(np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]]), 2).tolist()
        [[1.0, 1.0], [2.0, 2.0], [4.0, 0.0]]
    """
    n = x.shape[0]
    out = np.zeros((n, width))
    rows = np.arange(block)[:, None]
    cols = rows + np.arange(width)[None, :]
    for a in range(0, n, block):
        b = min(n, a + block)
        reach = min(n, b + width - 1)
        products = x[a:b] @ x[a:reach].T
        r, c = rows[: b - a], cols[: b - a]
        inside = c < reach - a
        out[a:b] = np.where(inside, products[r, np.minimum(c, reach - a - 1)], 0.0)
    return out


def segment_sq_norms(x: np.ndarray, max_len: int) -> np.ndarray:
    """``N[s, ℓ − 1] = ‖x_s + … + x_{s+ℓ−1}‖²`` for all segments (``-inf`` past the end), in ``O(n·L)``.

    From the band of the Gram matrix (:func:`band_gram`): adding unit ``e`` to a segment adds
    ``x_e·x_e + 2·Σ_d x_{e−d}·x_e`` over the ``ℓ − 1`` units before it. Only additions of terms,
    no differences of large prefix totals, so no cancellation.

    Example:
        >>> segment_sq_norms(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]]), 3)[0].tolist()
        [1.0, 2.0, 5.0]
    """
    n = x.shape[0]
    width = min(max_len, n)
    gram = band_gram(x, width)
    out = np.full((n, max_len), -np.inf)
    sq = gram[:, 0].copy()  # ℓ = 1, by start
    back = np.zeros(n)  # back[e] = Σ_{d=1}^{ℓ-1} x_{e-d}·x_e for the current ℓ, by end e
    out[:, 0] = sq
    for length in range(2, width + 1):
        back[length - 1 :] += gram[: n - length + 1, length - 1]
        sq = sq[:-1] + gram[length - 1 :, 0] + 2.0 * back[length - 1 :]
        out[: n - length + 1, length - 1] = sq
    return out


def idc_table(
    unit_vectors: np.ndarray,
    intent_vectors: np.ndarray,
    max_len: int,
    *,
    length_weight: float = 0.0005,
    length_penalty: LengthPenalty = "paper",
    target_len: float | None = None,
    coherence_weight: float = 0.0,
) -> np.ndarray:
    """IDC segment scores ``table[s, ℓ − 1]`` for every segment of at most ``max_len`` units.

    ``score = max_q cos(mean(v_s..v_{s+ℓ−1}), q) − penalty(ℓ) + w_coh·coherence``, where the
    coherence is the mean pairwise cosine of the segment's units (1 for a single unit). The cosine of
    the mean equals the cosine of the sum, ``(Σ v)·q̂ / ‖Σ v‖``: the numerators are running sums of
    the ``n × M`` matrix ``v·q̂``, the norms come from :func:`segment_sq_norms`, so the whole table
    costs ``O(n·(L·M + (64 + L)·D))``. A segment whose summed vector is zero has relevance 0.

    Example:
        >>> t = idc_table(np.eye(2), np.eye(2), max_len=2, length_weight=0.0)
        >>> np.round(t, 3).tolist()
        [[1.0, 0.707], [1.0, -inf]]
    """
    units = _check_vectors("unit_vectors", unit_vectors)
    intents = _check_vectors("intent_vectors", intent_vectors)
    if units.shape[1] != intents.shape[1]:
        raise ValueError(
            f"unit vectors have dimension {units.shape[1]} but intent vectors {intents.shape[1]}; "
            "embed both with the same embedder"
        )
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    n = units.shape[0]
    dots = units @ _unit_rows(intents).T  # (n, M): v_a · q̂
    sq_norms = segment_sq_norms(units, max_len)
    coherence_sq = None
    if coherence_weight:
        hat = _unit_rows(units)
        coherence_sq = sq_norms if np.allclose(hat, units, atol=1e-12) else segment_sq_norms(hat, max_len)
    table = np.full((n, max_len), -np.inf)
    for length, dot_sum in window_sums(dots, max_len):
        count = n - length + 1
        norms = np.sqrt(np.maximum(sq_norms[:count, length - 1], 0.0))[:, None]
        cos = np.divide(dot_sum, norms, out=np.zeros_like(dot_sum), where=norms > 1e-12)
        score = cos.max(axis=1)
        score -= length_penalty_values(
            np.array([length]), length_weight=length_weight, length_penalty=length_penalty,
            max_len=max_len, target_len=target_len,
        )[0]
        if coherence_sq is not None:
            if length == 1:
                coherence = np.ones(count)
            else:
                coherence = (coherence_sq[:count, length - 1] - length) / (length * (length - 1))
            score += coherence_weight * coherence
        table[:count, length - 1] = score
    return table


def mean_pairwise_similarity(unit_vectors: np.ndarray) -> float:
    """Mean cosine over all pairs ``a < b`` of rows, exactly, in ``O(n·D)`` (0 for a single row).

    Example:
        >>> mean_pairwise_similarity(np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
        0.3333333333333333
    """
    hat = _unit_rows(_check_vectors("unit_vectors", unit_vectors))
    n = hat.shape[0]
    if n < 2:
        return 0.0
    total = hat.sum(axis=0)
    self_sims = float(np.einsum("ij,ij->", hat, hat))
    return float((total @ total - self_sims) / (n * (n - 1)))


def cluster_table(unit_vectors: np.ndarray, max_len: int, *, offset: float | None = None) -> np.ndarray:
    """Within-segment similarity scores ``Σ_{a≠b ∈ C} (cos(v_a, v_b) − μ)`` for all segments.

    With unit-normalised ``v̂``: ``Σ_{a≠b} v̂_a·v̂_b = ‖Σ v̂‖² − Σ‖v̂‖²``, so each entry is
    ``‖Σ v̂‖² − z − μ·ℓ(ℓ − 1)`` (``z`` = number of non-zero rows), exact, with the squared norms
    from :func:`segment_sq_norms` (``O(n·(64 + L)·D)`` for the Gram band, then ``O(n·L)``).
    ``μ = offset`` or, if ``None``, the document's mean pairwise cosine (:func:`mean_pairwise_similarity`).
    A single-unit segment scores 0.

    Example:
        >>> t = cluster_table(np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]), 2, offset=0.5)
        >>> t.tolist()
        [[0.0, 1.0], [0.0, -1.0], [0.0, -inf]]
    """
    units = _check_vectors("unit_vectors", unit_vectors)
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    mu = mean_pairwise_similarity(units) if offset is None else float(offset)
    hat = _unit_rows(units)
    nonzero = (np.linalg.norm(hat, axis=1) > 0).astype(np.float64)
    n = hat.shape[0]
    sq_norms = segment_sq_norms(hat, max_len)
    table = np.full((n, max_len), -np.inf)
    for length, count in window_sums(nonzero[:, None], max_len):
        rows = n - length + 1
        table[:rows, length - 1] = sq_norms[:rows, length - 1] - count[:, 0] - mu * length * (length - 1)
    return table
