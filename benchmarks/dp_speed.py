"""DP speed: ragkit's vectorised segmentation DP against a direct triple loop of the same recurrence.

Instance: N = 5,000 sentence vectors, M = 40 intents, L = 20, D = 384 (MiniLM's size), random unit
vectors from a fixed seed; IDC paper objective with λ = 0.0005, β = 1.0. The reference implements

    f(j) = max_{j−L ≤ i < j} f(i) + max_m cos(mean(v_{i..j−1}), q_m) − λ (j − i)² − β·[i > 0]

with three nested Python loops (j, i, m), the segment mean from a numpy slice and the same tie
rule (longest last segment). Both run in this process; the script checks they return the same
segmentation and prints absolute times and the ratio. The cluster objective is timed as well.

Usage:
    python benchmarks/dp_speed.py            # full size (reference takes tens of seconds)
    python benchmarks/dp_speed.py --n 1000   # quicker
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
from tqdm import tqdm

from ragkit.chunkers._segment import (
    TIE_TOL,
    cluster_table,
    idc_table,
    optimal_segmentation,
)


def unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def triple_loop(units: np.ndarray, intents: np.ndarray, max_len: int, lam: float, beta: float):
    """The recurrence written directly: loops over end j, start i and intent m."""
    n = units.shape[0]
    q_hat = unit_rows(intents)
    f = [0.0] + [-np.inf] * n
    choice = [0] * (n + 1)
    for j in tqdm(range(1, n + 1), desc="triple loop", unit="end", mininterval=2.0):
        cands = []
        for i in range(max(0, j - max_len), j):
            mean = units[i:j].mean(axis=0)
            norm = float(np.sqrt(mean @ mean))
            rel = -np.inf
            for m in range(q_hat.shape[0]):
                cos = float(mean @ q_hat[m]) / norm if norm > 0 else 0.0
                rel = max(rel, cos)
            value = f[i] + rel - lam * (j - i) ** 2 - (beta if i > 0 else 0.0)
            cands.append((j - i, value))
        best = max(v for _, v in cands)
        length, value = max((ln, v) for ln, v in cands if v >= best - TIE_TOL * max(1.0, abs(best)))
        f[j], choice[j] = value, length
    segments, j = [], n
    while j > 0:
        segments.append((j - choice[j], j))
        j -= choice[j]
    return tuple(reversed(segments)), f[n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--m", type=int, default=40)
    parser.add_argument("--max-len", type=int, default=20)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    # Sentences drift through topics so the optimum is not trivial: a random walk over intent directions.
    intents = unit_rows(rng.standard_normal((args.m, args.dim)))
    topic = rng.integers(args.m, size=args.n // 10 + 1).repeat(10)[: args.n]
    units = unit_rows(0.6 * intents[topic] + rng.standard_normal((args.n, args.dim)) / np.sqrt(args.dim))
    lam, beta = 0.0005, 1.0

    print(f"machine: {platform.machine()} {platform.processor() or ''} cpus={os.cpu_count()} "
          f"python={platform.python_version()} numpy={np.__version__}")
    print(f"instance: N={args.n} M={args.m} L={args.max_len} D={args.dim} lambda={lam} beta={beta}")

    times_table, times_dp = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        table = idc_table(units, intents, args.max_len, length_weight=lam)
        t1 = time.perf_counter()
        fast = optimal_segmentation(table, boundary_penalty=beta)
        t2 = time.perf_counter()
        times_table.append(t1 - t0)
        times_dp.append(t2 - t1)
    fast_total = min(a + b for a, b in zip(times_table, times_dp))
    print(f"vectorised IDC: table {min(times_table) * 1e3:.1f} ms + recurrence {min(times_dp) * 1e3:.1f} ms "
          f"= {fast_total * 1e3:.1f} ms (best of {args.repeats}); {len(fast)} chunks")

    ctimes = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        optimal_segmentation(cluster_table(units, args.max_len), boundary_penalty=0.0)
        ctimes.append(time.perf_counter() - t0)
    print(f"vectorised cluster: {min(ctimes) * 1e3:.1f} ms (best of {args.repeats})")

    t0 = time.perf_counter()
    ref_segments, ref_score = triple_loop(units, intents, args.max_len, lam, beta)
    ref_time = time.perf_counter() - t0
    same = ref_segments == fast.segments and abs(ref_score - fast.score) <= 1e-6 * max(1.0, abs(ref_score))
    print(f"triple loop IDC: {ref_time:.2f} s")
    print(f"same segmentation and score: {same} (score {fast.score:.6f} vs {ref_score:.6f})")
    print(f"speed-up: {ref_time / fast_total:.0f}x")
    if not same:
        raise SystemExit("MISMATCH between the vectorised DP and the triple loop")


if __name__ == "__main__":
    main()
