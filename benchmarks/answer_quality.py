"""Do SmolLM2-135M's answers end on their own, and do they loop? Old vs new generation defaults, one run.

Answers the quickstart questions (``configs/quickstart.yaml`` + ``configs/quickstart-questions.jsonl``)
and a multihop subset (``hotpotqa-dev-first20``: the first 20 HotpotQA questions of the
``hipporag_multihop`` dev split, the dataset of ``configs/eval/multihop.yaml``, in file order, indexed
with the quickstart's retrieval and aggregator settings) through the real pipeline, on CPU, under:

- ``old``: the behaviour before per-model defaults (``generation_defaults: none``,
  ``max_new_tokens: 256``, ``loop_guard: false``);
- ``new``: the defaults as shipped (the model's stop tokens, repetition penalty and answer budget;
  the stuff aggregator's loop guard on);
- ``new-unguarded``: ``new`` with the loop guard off. Its generation settings equal ``new``'s, so
  every answer must come from the LLM cache (it shows what the guard removed, for free);
- ``penalty-1.2``: ``new`` with SmolLM2's previous repetition penalty (1.2 instead of 1.3).

Per setting and question set it prints: the share of answers that end on their own (the backend's
``finish_reason`` is ``stop``: EOS, end-of-turn token or stop sequence, not the token cap; goal
>= 90 %), the share with a loop (``ragkit.text.repetition.has_loop``: a word 4-gram repeated >= 3
times, or a repeated sentence, in the answer as returned; goal 0), answers cut by the loop guard,
for the multihop questions the share whose text contains one of the gold answers (case-insensitive; a
faithfulness proxy: the penalty must not push answers off the evidence), the mean completion tokens,
and the seconds spent answering.

Cache safety is checked, not assumed: the run uses a fresh LLM cache (a temporary ``RAGKIT_HOME``
whose ``models`` and ``indexes`` link to the real ones), ``old`` fills it, and ``new`` must then
make one backend call per question with 0 cache hits (the settings are part of every cache key);
``new-unguarded`` must make 0 calls.

    OMP_NUM_THREADS=1 python benchmarks/answer_quality.py [--multihop 20] [--threads 1] [--out FILE.json]

Needs ``RAGKIT_DATA`` (or ``ragkit datasets download hipporag_multihop``) and the prepared SmolLM2.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "configs" / "quickstart.yaml"
QUESTIONS = REPO / "configs" / "quickstart-questions.jsonl"
SUBSET = "hotpotqa-dev-first20"

SETTINGS: dict[str, list[str]] = {
    "old": ["backends.llm.default.generation_defaults=none", "query.aggregator.max_new_tokens=256",
            "query.aggregator.loop_guard=false"],
    "new": [],
    "new-unguarded": ["query.aggregator.loop_guard=false"],
    # the previous SmolLM2 default (1.2): 88 % ended on their own, below the 90 % goal
    "penalty-1.2": ["backends.llm.default.repetition_penalty=1.2"],
}


def fresh_home() -> Path:
    """A temporary RAGKIT_HOME with an empty cache; models and indexes link to the real ones."""
    from ragkit.paths import ragkit_home

    real = ragkit_home()
    home = Path(tempfile.mkdtemp(prefix="ragkit-answers-"))
    # removed at exit; rmtree unlinks the two links without following them
    atexit.register(shutil.rmtree, home, True)
    for name in ("models", "indexes"):
        (real / name).mkdir(parents=True, exist_ok=True)
        (home / name).symlink_to(real / name)
    return home


def answer_all(pipe: Any, questions: list[str]) -> tuple[list[Any], float]:
    start = time.perf_counter()
    answers = [pipe.query(q) for q in questions]
    return answers, time.perf_counter() - start


def summarise(answers: list[Any], seconds: float, gold: list[list[str]] | None = None) -> dict[str, Any]:
    """Shares of answers that end on their own / loop / contain a gold answer string (``gold``: per answer)."""
    from ragkit.text.repetition import has_loop

    n = len(answers)
    own = sum(a.trace.get("finish_reason") == "stop" for a in answers)
    loops = sum(has_loop(a.text) for a in answers)
    cut = sum(bool(a.trace.get("loop_guard", {}).get("cut")) for a in answers)
    tokens = [int(a.trace.get("completion_tokens", 0)) for a in answers]
    contains = None
    if gold is not None:
        contains = sum(any(g.lower() in a.text.lower() for g in golds) for a, golds in zip(answers, gold)) / n
    return {"n": n, "own_end": own / n, "loops": loops / n, "guard_cut": cut, "mean_tokens": sum(tokens) / n,
            "max_tokens": max(tokens), "seconds": seconds, "contains_gold": contains}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--multihop", type=int, default=20, help="HotpotQA dev questions (first N; default 20)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--out", type=Path, default=None, help="write every answer and the table as JSON")
    args = parser.parse_args()

    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    os.environ["RAGKIT_HOME"] = str(fresh_home())
    import torch

    torch.set_num_threads(args.threads)
    import yaml

    from ragkit import Pipeline
    from ragkit.datasets import load_dataset
    from ragkit.llm.generation import model_generation_defaults

    total_start = time.perf_counter()
    quick_questions = [json.loads(line)["question"] for line in QUESTIONS.read_text().splitlines() if line.strip()]
    dataset = load_dataset("hipporag_multihop", subset="hotpotqa")
    multihop = dataset.questions[: args.multihop]
    base = yaml.safe_load(QUICKSTART.read_text())
    base["corpus"] = {"paths": []}
    base["query"]["questions"] = None

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch threads {args.threads}, "
          f"load average {os.getloadavg()[0]:.1f} at start; Python {platform.python_version()}")
    print("model: SmolLM2-135M-Instruct (smollm2-135m-instruct, transformers, CPU fp32, greedy)")
    print(f"new defaults: {model_generation_defaults('smollm2-135m-instruct').to_dict()}")
    print(f"questions: quickstart {len(quick_questions)}, multihop {SUBSET} {len(multihop)} "
          f"(dataset split {dataset.metadata.get('split')})", flush=True)

    results: dict[str, dict[str, Any]] = {}
    records: list[dict[str, Any]] = []
    for name, overrides in SETTINGS.items():
        quick = Pipeline.from_yaml(QUICKSTART, overrides=overrides)
        quick.index()
        hop = Pipeline.from_config(base, overrides=overrides)
        hop.index_documents(dataset.documents)
        q_answers, q_s = answer_all(quick, quick_questions)
        m_answers, m_s = answer_all(hop, [q.text for q in multihop])
        stats = [p.backend("llm", "default").stats() for p in (quick, hop)]
        calls = sum(s["backend_requests"] for s in stats)
        hits = sum(s["cache_hits"] for s in stats)
        gold = [list(q.answers) for q in multihop]
        results[name] = {"quickstart": summarise(q_answers, q_s), "multihop": summarise(m_answers, m_s, gold),
                         "all": summarise(q_answers + m_answers, q_s + m_s), "backend_requests": calls,
                         "cache_hits": hits}
        for set_name, qs, answers in (("quickstart", quick_questions, q_answers),
                                      ("multihop", [q.text for q in multihop], m_answers)):
            for question, answer in zip(qs, answers):
                records.append({"setting": name, "set": set_name, "question": question, "answer": answer.text,
                                "finish_reason": answer.trace.get("finish_reason"),
                                "completion_tokens": answer.trace.get("completion_tokens"),
                                "loop_guard": answer.trace.get("loop_guard")})
        print(f"{name}: done in {q_s + m_s:.0f} s (backend requests {calls}, cache hits {hits})", flush=True)

    n = len(quick_questions) + len(multihop)
    if results["new"]["cache_hits"] != 0 or results["new"]["backend_requests"] != n:
        sys.exit(f"cache safety violated: 'new' got {results['new']['cache_hits']} cache hits and made "
                 f"{results['new']['backend_requests']} backend requests for {n} questions after 'old' filled the cache")
    if results["new-unguarded"]["backend_requests"] != 0:
        sys.exit("'new-unguarded' has new's generation settings, so it must be answered from the cache")

    print()
    print("| setting | questions | n | end on their own | loops | cut by guard | contains gold | mean tokens | "
          "max tokens | s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, row in results.items():
        for set_name in ("quickstart", "multihop", "all"):
            r = row[set_name]
            seconds = f"{r['seconds']:.0f}" if name != "new-unguarded" else f"{r['seconds']:.1f} (cache)"
            gold = "–" if r["contains_gold"] is None else f"{r['contains_gold']:.0%}"
            print(f"| {name} | {set_name} | {r['n']} | {r['own_end']:.0%} | {r['loops']:.0%} | {r['guard_cut']} | "
                  f"{gold} | {r['mean_tokens']:.0f} | {r['max_tokens']} | {seconds} |")
    print(f"\ncache: new made {results['new']['backend_requests']} backend requests with "
          f"{results['new']['cache_hits']} cache hits after old; new-unguarded {results['new-unguarded']['cache_hits']} "
          f"hits, 0 requests")
    print(f"total wall time {time.perf_counter() - total_start:.0f} s; load average at end {os.getloadavg()[0]:.1f}")
    if args.out:
        args.out.write_text(json.dumps({"results": results, "answers": records}, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
