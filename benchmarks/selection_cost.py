"""What CORAG's search costs: the authors' cost profile against ragkit's optimised ``corag``, same picks.

Both run the same search (METHODS.md §3.3, same profile, seed and hyper-parameters) over the same
retrieved candidates with the same scorer; they differ only in cost switches:

- **authors** (``prune=False, cache_scores=False, batch=False``): every unused chunk becomes a child
  and is scored, over-budget ones included (the CARROT code never prunes by budget), one scorer
  pass per child, nothing remembered between searches;
- **optimised** (the defaults): children that cannot fit are never created, each expansion is one
  batched scorer call, scores are cached by (question, ordered chunk ids) on the selector.

Two scenarios per question: ``single`` (one search with the given settings) and ``grid`` (a small
grid of (c, iterations), as the configuration agent's label search runs it; the optimised selector
reuses its cache across the grid). Reported: agreement of the picked combination, scorer calls,
scored texts, scored tokens (MiniLM tokens of the scored combinations), LM tokens processed by the
backend (``--scorer smollm2``), wall time, and the ratios optimised / authors.

The backend is used **without** the LLM call cache, so both profiles pay for every pass they make.
Candidates: ragkit's own docs chunked by the recursive chunker and retrieved by BM25 for the
quickstart questions (no embedding model needed).

CPU, SmolLM2-135M (packaged) as query_likelihood's LM::

    python benchmarks/selection_cost.py --scorer smollm2 --questions 3 --k 6 --budget 400 --iterations 4

Fast, deterministic (FakeLLM log-probabilities through the same scorer code)::

    python benchmarks/selection_cost.py --scorer fake --questions 5 --k 12 --budget 600 --iterations 10

Prints a table and one ``RESULT {...}`` JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ragkit import Pipeline  # noqa: E402
from ragkit.scorers.query_likelihood import QueryLikelihoodScorer  # noqa: E402
from ragkit.selectors.corag import CoragSelector  # noqa: E402
from ragkit.types import Query  # noqa: E402
from ragkit.usage import usage_scope  # noqa: E402

AUTHORS = {"prune": False, "cache_scores": False, "batch": False}


def candidates_for(questions: list[str], k: int, max_tokens: int) -> list[tuple[Query, list[Any]]]:
    pipe = Pipeline.from_config({
        "backends": {"llm": {"default": {"type": "fake"}}, "embeddings": {"default": {"type": "fake"}}},
        "cache": {"mode": "off"},
        "index": {"chunker": {"type": "recursive", "max_tokens": max_tokens}, "retriever": {"type": "bm25"},
                  "store": ":memory:"},
    })
    pipe.base_dir = REPO
    pipe.index([str(REPO / "docs" / "**" / "*.md"), str(REPO / "README.md")])
    return [(Query.from_text(q), pipe.retrieve(q, k=k)) for q in questions]


def make_llm(kind: str) -> Any:
    if kind == "fake":
        from ragkit.testing import FakeLLM

        return FakeLLM()
    from ragkit.llm.transformers_backend import TransformersLLM

    llm = TransformersLLM(model="smollm2-135m-instruct", device="cpu")
    llm.warm_up()
    return llm  # unwrapped: no call cache, so both profiles pay for every pass


def run_profile(name: str, items: list[tuple[Query, list[Any]]], configs: list[dict[str, Any]], llm: Any,
                base: dict[str, Any]) -> dict[str, Any]:
    extra = AUTHORS if name == "authors" else {}
    selector = CoragSelector(scorer=QueryLikelihoodScorer(llm=llm), **base, **extra)  # one selector: its cache lives on
    picks: list[list[str]] = []
    totals = {"scorer_calls": 0, "scored_texts": 0, "scored_tokens": 0, "cache_hits": 0, "iterations": 0}
    start = time.perf_counter()
    with usage_scope() as usage:
        for query, cands in items:
            for config in configs:
                for key, value in config.items():
                    setattr(selector, key, value)
                picked = selector.select(query, cands)
                trace = selector.trace()
                picks.append([s.chunk.id for s in picked])
                for key in totals:
                    totals[key] += int(trace[key])
    return {"profile": name, "picks": picks, **totals, "lm_tokens": usage.prompt_tokens,
            "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scorer", choices=["fake", "smollm2"], default="fake")
    parser.add_argument("--questions", type=int, default=5)
    parser.add_argument("--k", type=int, default=12, help="candidates searched (max_candidates)")
    parser.add_argument("--budget", type=int, default=600)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--chunk-tokens", type=int, default=120)
    parser.add_argument("--profile", choices=["paper", "code"], default="paper")
    parser.add_argument("--grid", default="1.5:5,2.4:5,1.5:10,2.4:10", help="c:iterations pairs for the grid scenario")
    args = parser.parse_args()

    questions = [json.loads(line)["question"] for line in
                 (REPO / "configs" / "quickstart-questions.jsonl").read_text().splitlines() if line.strip()]
    items = candidates_for(questions[: args.questions], args.k, args.chunk_tokens)
    llm = make_llm(args.scorer)
    base = {"budget": args.budget, "iterations": args.iterations, "max_candidates": args.k,
            "profile": args.profile, "seed": 0}
    grid = [{"c": float(c), "iterations": int(i)} for c, i in (p.split(":") for p in args.grid.split(","))]
    scenarios = {"single": [{}], "grid": grid}

    rows = []
    for scenario, configs in scenarios.items():
        results = {name: run_profile(name, items, configs, llm, base) for name in ("authors", "optimised")}
        a, o = results["authors"], results["optimised"]
        agree = sum(x == y for x, y in zip(a["picks"], o["picks"])) / max(1, len(a["picks"]))
        row = {"scenario": scenario, "searches": len(a["picks"]), "agreement": agree}
        for key in ("scorer_calls", "scored_texts", "scored_tokens", "lm_tokens", "seconds"):
            row[f"authors_{key}"] = a[key]
            row[f"optimised_{key}"] = o[key]
            row[f"ratio_{key}"] = (o[key] / a[key]) if a[key] else None
        row["optimised_cache_hits"] = o["cache_hits"]
        rows.append(row)

    print(f"scorer: query_likelihood ({args.scorer}); {len(items)} questions, k={args.k}, budget={args.budget}, "
          f"iterations={args.iterations}, chunks<={args.chunk_tokens} tokens, profile={args.profile}, grid={args.grid}")
    header = f"{'scenario':8} {'searches':>8} {'agree':>6} | {'metric':13} {'authors':>10} {'optimised':>10} {'ratio':>7}"
    print(header)
    print("-" * len(header))
    for row in rows:
        first = True
        for key in ("scorer_calls", "scored_texts", "scored_tokens", "lm_tokens", "seconds"):
            lead = f"{row['scenario']:8} {row['searches']:>8} {row['agreement']:>6.0%}" if first else " " * 24
            ratio = row[f"ratio_{key}"]
            fmt = (lambda v: f"{v:10.2f}") if key == "seconds" else (lambda v: f"{v:10d}")
            print(f"{lead} | {key:13} {fmt(row[f'authors_{key}'])} {fmt(row[f'optimised_{key}'])} "
                  f"{'' if ratio is None else f'{ratio:7.3f}'}")
            first = False
    info = {"machine": platform.machine(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "scorer": args.scorer, "questions": len(items), "k": args.k, "budget": args.budget,
            "iterations": args.iterations, "chunk_tokens": args.chunk_tokens, "profile": args.profile}
    print("RESULT " + json.dumps({**info, "rows": rows}))


if __name__ == "__main__":
    main()
