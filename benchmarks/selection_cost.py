"""What CORAG's search costs: the authors' cost profile against ragkit's levers, one at a time, same picks.

Every profile runs the same search (METHODS.md §3.3, same profile, seed and hyper-parameters) over the
same retrieved candidates with the same scorer and the same loaded model; they differ only in cost
switches, each adding one lever to the previous:

- **authors** (``prune=False, batch=False, cache_scores=False``): the CARROT code's cost: every unused
  chunk becomes a child and is scored, over-budget ones included, one scorer pass per child;
- **paper**: + ``prune`` (only children that fit are created and scored, as the paper describes);
- **batched**: + ``batch`` (one scorer call per expansion), the backend's prefix reuse off;
- **prefix**: + the transformers backend's shared-prefix KV reuse (all children of an expansion
  extend the same parent text, which runs once);
- **optimised**: + ``cache_scores`` (scores cached by question and ordered chunk ids on the selector:
  a second search of the same question re-scores nothing it has seen). The ragkit defaults.

Two scenarios: ``single`` (one search per question) and ``grid`` (a (c, iterations) grid per
question, as the configuration agent's label search runs it; the cache lives across the grid).
**Scored tokens are LM tokens actually run through the model** (the backend's recorded prompt
tokens: a reused prefix counts once); ``comb_tokens`` is the MiniLM size of the scored combinations.
Reported per profile: agreement of the picked combination with the authors' profile, scorer calls,
scored texts, LM tokens, wall time, and ratios against the authors' profile. The backend is used
**without** the LLM call cache, so every profile pays for every pass it makes. Candidates: ragkit's
own docs chunked by the recursive chunker and retrieved by BM25 for the quickstart questions.

CPU, SmolLM2-135M (packaged) as query_likelihood's LM::

    python benchmarks/selection_cost.py --scorer smollm2 --questions 4 --k 10 --budget 1000 --iterations 10

Fast, deterministic (FakeLLM log-probabilities through the same scorer code; no prefix reuse)::

    python benchmarks/selection_cost.py --scorer fake --questions 5 --k 12 --budget 600 --iterations 10

GPU, a larger model shape with random weights through ragkit's own backend (costs and agreement are
what is measured; random weights make the scores meaningless but deterministic). The candidates are
retrieved once on a machine with the full install and carried as JSON; the tokenizer is SmolLM2's::

    python benchmarks/selection_cost.py --save-candidates cands.json --questions 5 --k 10 --chunk-tokens 200
    python benchmarks/selection_cost.py --candidates cands.json --shape qwen2-0.5b --device cuda \
        --tokenizer DIR_WITH_tokenizer.json --k 10 --budget 1000 --iterations 10

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

PROFILES: dict[str, dict[str, Any]] = {
    "authors": {"prune": False, "batch": False, "cache_scores": False, "prefix_reuse": False},
    "paper": {"prune": True, "batch": False, "cache_scores": False, "prefix_reuse": False},
    "batched": {"prune": True, "batch": True, "cache_scores": False, "prefix_reuse": False},
    "prefix": {"prune": True, "batch": True, "cache_scores": False, "prefix_reuse": True},
    "optimised": {"prune": True, "batch": True, "cache_scores": True, "prefix_reuse": True},
}
METRICS = ("scorer_calls", "scored_texts", "comb_tokens", "lm_tokens", "seconds")


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


def save_candidates(items: list[tuple[Query, list[Any]]], path: str) -> None:
    rows = [{"question": q.text, "candidates": [{"chunk": s.chunk.to_dict(), "score": s.score, "source": s.source}
                                                for s in cands]} for q, cands in items]
    Path(path).write_text(json.dumps(rows), encoding="utf-8")


def load_candidates(path: str, n_questions: int, k: int) -> list[tuple[Query, list[Any]]]:
    from ragkit.types import Chunk, ScoredChunk

    rows = json.loads(Path(path).read_text(encoding="utf-8"))[:n_questions]
    return [(Query.from_text(r["question"]),
             [ScoredChunk(Chunk.from_dict(c["chunk"]), c["score"], c["source"]) for c in r["candidates"][:k]])
            for r in rows]


def shaped_llm(shape_name: str, device: str, tokenizer_dir: str) -> Any:
    """A random-weight model of a published shape (benchmarks/llm_scoring.py) with SmolLM2's tokenizer."""
    import torch
    from llm_scoring import SHAPES
    from transformers import (
        LlamaConfig,
        LlamaForCausalLM,
        PreTrainedTokenizerFast,
        Qwen2Config,
        Qwen2ForCausalLM,
    )

    from ragkit.llm.transformers_backend import TransformersLLM

    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(Path(tokenizer_dir) / "tokenizer.json"))
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or "<|endoftext|>"
    shape = dict(SHAPES[shape_name])
    config_cls, model_cls = ((Qwen2Config, Qwen2ForCausalLM) if shape.pop("architecture") == "qwen2"
                             else (LlamaConfig, LlamaForCausalLM))
    shape["vocab_size"] = len(tokenizer)  # the carried tokenizer's vocabulary, not the shape's own
    torch.manual_seed(0)
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    with torch.device(device):
        model = model_cls(config_cls(**shape)).to(dtype)
    return TransformersLLM.from_objects(model, tokenizer, model=f"{shape_name}-random")


def make_llm(kind: str, threads: int | None) -> Any:
    if kind == "fake":
        from ragkit.testing import FakeLLM

        return FakeLLM()
    from ragkit.llm.transformers_backend import TransformersLLM

    llm = TransformersLLM(model="smollm2-135m-instruct", device="cpu", num_threads=threads)
    llm.warm_up()
    return llm  # unwrapped: no call cache, so every profile pays for every pass


def run_profile(name: str, items: list[tuple[Query, list[Any]]], configs: list[dict[str, Any]], llm: Any,
                base: dict[str, Any]) -> dict[str, Any]:
    switches = dict(PROFILES[name])
    llm.prefix_reuse = switches.pop("prefix_reuse")  # the backend lever (an attribute of the loaded model)
    selector = CoragSelector(scorer=QueryLikelihoodScorer(llm=llm), **base, **switches)  # its cache lives on
    picks: list[list[str]] = []
    totals = {"scorer_calls": 0, "scored_texts": 0, "comb_tokens": 0, "lm_tokens": 0, "cache_hits": 0,
              "iterations": 0}
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
                    totals[key] += int(trace["scored_tokens" if key == "comb_tokens" else key])
    seconds = time.perf_counter() - start
    print(f"  {name}: {totals['lm_tokens']} LM tokens, {totals['scorer_calls']} calls, {seconds:.1f} s", file=sys.stderr,
          flush=True)
    return {"profile": name, "picks": picks, **totals, "backend_tokens": usage.prompt_tokens, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scorer", choices=["fake", "smollm2"], default="fake", help="ignored with --shape")
    parser.add_argument("--questions", type=int, default=5)
    parser.add_argument("--k", type=int, default=12, help="candidates searched (max_candidates)")
    parser.add_argument("--budget", type=int, default=600)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--chunk-tokens", type=int, default=120)
    parser.add_argument("--profile", choices=["paper", "code"], default="paper")
    parser.add_argument("--grid", default="1.5:5,2.4:5,1.5:10,2.4:10", help="c:iterations pairs for the grid scenario")
    parser.add_argument("--scenarios", default="single,grid")
    parser.add_argument("--profiles", default=",".join(PROFILES))
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (shared machines: 1)")
    parser.add_argument("--save-candidates", help="write the retrieved candidates to this JSON file and stop")
    parser.add_argument("--candidates", help="read candidates from a --save-candidates file (no retrieval)")
    parser.add_argument("--shape", help="a random-weight model shape from benchmarks/llm_scoring.py (e.g. qwen2-0.5b)")
    parser.add_argument("--device", default="cpu", help="device for --shape (cpu, cuda)")
    parser.add_argument("--tokenizer", help="folder with SmolLM2's tokenizer.json for --shape "
                                            "(default: the prepared model in RAGKIT_HOME)")
    args = parser.parse_args()

    questions = [json.loads(line)["question"] for line in
                 (REPO / "configs" / "quickstart-questions.jsonl").read_text().splitlines() if line.strip()]
    if args.candidates:
        items = load_candidates(args.candidates, args.questions, args.k)
    else:
        items = candidates_for(questions[: args.questions], args.k, args.chunk_tokens)
    if args.save_candidates:
        save_candidates(items, args.save_candidates)
        print(f"wrote {len(items)} questions' candidates to {args.save_candidates}")
        return
    if args.shape:
        from ragkit.paths import ragkit_home

        tokenizer_dir = args.tokenizer or str(ragkit_home() / "models" / "smollm2-135m-instruct")
        llm = shaped_llm(args.shape, args.device, tokenizer_dir)
        args.scorer = f"{args.shape} random weights, {args.device}"
    else:
        llm = make_llm(args.scorer, args.threads)
    base = {"budget": args.budget, "iterations": args.iterations, "max_candidates": args.k,
            "profile": args.profile, "seed": 0}
    grid = [{"c": float(c), "iterations": int(i)} for c, i in (p.split(":") for p in args.grid.split(","))]
    scenarios = {name: cfg for name, cfg in {"single": [{}], "grid": grid}.items() if name in args.scenarios.split(",")}
    names = [n for n in PROFILES if n in args.profiles.split(",")]

    rows = []
    for scenario, configs in scenarios.items():
        results = {name: run_profile(name, items, configs, llm, base) for name in names}
        ref = results[names[0]]
        for name in names:
            r = results[name]
            agree = sum(x == y for x, y in zip(ref["picks"], r["picks"])) / max(1, len(r["picks"]))
            row = {"scenario": scenario, "profile": name, "searches": len(r["picks"]), "agreement": agree,
                   "cache_hits": r["cache_hits"], "backend_tokens": r["backend_tokens"]}
            for key in METRICS:
                row[key] = r[key]
                row[f"ratio_{key}"] = (r[key] / ref[key]) if ref[key] else None
            rows.append(row)

    print(f"scorer: query_likelihood ({args.scorer}{'=SmolLM2-135M' if args.scorer == 'smollm2' else ''}); "
          f"{len(items)} questions, k={args.k}, budget={args.budget}, iterations={args.iterations}, "
          f"{'candidates from ' + args.candidates if args.candidates else f'chunks<={args.chunk_tokens} tokens'}, profile={args.profile}, grid={args.grid}; ratios vs {names[0]}")
    header = (f"{'scenario':8} {'profile':10} {'agree':>6} {'calls':>6} {'texts':>6} {'lm_tokens':>10} "
              f"{'ratio':>6} {'comb_tok':>9} {'seconds':>8} {'ratio':>6}")
    print(header)
    print("-" * len(header))
    for row in rows:
        print(f"{row['scenario']:8} {row['profile']:10} {row['agreement']:>6.0%} {row['scorer_calls']:>6d} "
              f"{row['scored_texts']:>6d} {row['lm_tokens']:>10d} {row['ratio_lm_tokens'] or 0:>6.3f} "
              f"{row['comb_tokens']:>9d} {row['seconds']:>8.1f} {row['ratio_seconds'] or 0:>6.3f}")
    info = {"machine": platform.machine(), "processor": platform.processor(), "python": platform.python_version(),
            "cpus": os.cpu_count(), "load_avg": os.getloadavg(), "scorer": args.scorer, "questions": len(items),
            "k": args.k, "budget": args.budget, "iterations": args.iterations, "chunk_tokens": args.chunk_tokens,
            "profile": args.profile, "threads": args.threads}
    print("RESULT " + json.dumps({**info, "rows": rows}))


if __name__ == "__main__":
    main()
