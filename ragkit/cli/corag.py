"""``ragkit corag``: train CORAG's configuration agent, and measure selectors on evidence datasets.

Mounted by :mod:`ragkit.cli.application` as ``app.add_typer(corag_app, name="corag")``.

- ``ragkit corag train EXPERIMENT_OR_CONFIG``: for each training question of the experiment's
  dataset (``hipporag_multihop`` when it names it), run ``corag`` with every configuration of a
  grid (scorer × ``c`` × ``lambda_`` × ``iterations``; one selector per scorer, so its score cache
  serves the whole grid), reward each pick with the evidence metric (all gold inside the budget,
  then recall: :func:`ragkit.selectors.corag_agent.reward`), fit an MLP from the question's embedding
  to the best configuration, and save the artifact (JSON + npz, no pickle). The first ``--holdout``
  questions of each corpus are held out (the ones ``ragkit corag eval --limit`` measures) and the
  agent is reported on them against the best single fixed configuration chosen on the training part.
- ``ragkit corag eval EXPERIMENT``: each variant's query-phase selector (chain) over the same
  retrieved candidates per question; columns all-gold %, recall, precision, selected tokens, scorer
  calls, LM tokens, p50 selection latency. The table goes to stdout, ``results.json`` to ``--out``.

Example (shell):
    ragkit corag train configs/eval/selection.yaml --holdout 3 --train 6
    ragkit corag eval configs/eval/selection.yaml --limit 3
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from ragkit.cli.boundary import CommandGroup

corag_app = CommandGroup(
    help="CORAG selection: train the configuration agent, evaluate selectors on evidence datasets.",
    no_args_is_help=True,
)

DEFAULT_AGENT = Path("runs") / "corag-agent" / "agent.json"


# ---------------------------------------------------------------------- shared helpers
def _partitions(exp: Any, data_root: Path | None, limit: int | None, dataset: str | None) -> list[tuple[str, str, Any]]:
    """``(dataset name, partition, sub-dataset)`` for the experiment's datasets (only ``dataset`` when given)."""
    from ragkit.datasets import load_dataset
    from ragkit.errors import ConfigError

    specs = [s for s in exp.datasets if dataset is None or s["name"] == dataset]
    if not specs:
        raise ConfigError(f"--dataset {dataset!r}: the experiment's datasets are "
                          f"{', '.join(s['name'] for s in exp.datasets)}")
    out = []
    for spec in specs:
        ds = load_dataset(spec["name"], data_root=data_root, subset=spec["subset"], config_data_root=exp.data_root,
                          limit=limit or spec.get("limit"))
        out.extend((ds.name, part, sub) for part, sub in ds.partitions())
    return out


def _indexed(config: Mapping[str, Any], sub: Any, part: str, data_root: Path | None) -> Any:
    """The variant's pipeline over the partition's stored index (built once, shared by query-only variants)."""
    from ragkit.eval.runner import _index_variant

    pipe, _ = _index_variant(config, sub, part, False, data_root)
    return pipe


def run_chain(pipe: Any, query: Any, candidates: Sequence[Any]) -> tuple[list[Any], list[dict[str, Any]], float]:
    """The pipeline's selector chain over ``candidates`` (with a query context where a link needs one).

    Returns the selected chunks, each link's ``trace()`` and the seconds spent.
    """
    from ragkit.context import context_needs

    context = None
    selected = list(candidates)
    traces = []
    start = time.perf_counter()
    for selector in pipe.selectors:
        kwargs = {}
        if context_needs(selector):
            context = context or pipe.query_context()
            kwargs = {"context": context}
        selected = selector.select(query, selected, **kwargs)
        traces.append(dict(selector.trace()) if callable(getattr(selector, "trace", None)) else {})
    return selected, traces, time.perf_counter() - start


def selection_row(q: Any, selected: Sequence[Any], traces: Sequence[Mapping[str, Any]], seconds: float,
                  hit_rule: str) -> dict[str, Any]:
    """Evidence metrics of one selection (the ``budget`` protocol's arithmetic) plus scorer cost and latency."""
    from ragkit.eval.protocols import budget_row

    row = budget_row(q, selected, hit_rule)
    row["scorer_calls"] = sum(int(t.get("scorer_calls", 0)) for t in traces)
    row["lm_tokens"] = sum(int(t.get("lm_tokens", 0)) for t in traces)
    row["select_ms"] = seconds * 1000.0
    return row


def _holdout(questions: Sequence[Any], n: int) -> tuple[list[Any], list[Any]]:
    """The first ``n`` questions (held out) and the rest, in dataset order."""
    return list(questions[:n]), list(questions[n:])


def _grid(scorers: str, cs: str, lambdas: str, iterations: str) -> list[dict[str, Any]]:
    out = []
    for scorer in [s.strip() for s in scorers.split(",") if s.strip()]:
        for c in [float(v) for v in cs.split(",")]:
            for lam in [float(v) for v in lambdas.split(",")]:
                for it in [int(v) for v in iterations.split(",")]:
                    out.append({"scorer": {"type": scorer}, "c": c, "lambda_": lam, "iterations": it})
    return out


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


# ---------------------------------------------------------------------- train
@corag_app.command("train")
def train_command(
    experiment: Annotated[Path, typer.Argument(help="Experiment YAML, or a pipeline config with corpus.dataset.",
                                               dir_okay=False)],
    out: Annotated[Path, typer.Option("--out", help="Artifact path (JSON; weights go next to it as .npz).")] = DEFAULT_AGENT,
    dataset: Annotated[str | None, typer.Option("--dataset", help="Train on this dataset of the experiment "
                                                                  "(default: hipporag_multihop if named, else the first).")] = None,
    holdout: Annotated[int, typer.Option("--holdout", min=1, help="First N questions per corpus: held out, reported on.")] = 3,
    train: Annotated[int, typer.Option("--train", min=2, help="The next N questions per corpus: training.")] = 6,
    scorers: Annotated[str, typer.Option("--scorers", help="Scorer types of the grid (comma-separated).")] = "embedding,query_likelihood",
    c: Annotated[str, typer.Option("--c", help="UCB exploration constants of the grid.")] = "0.5,2.4",
    lambdas: Annotated[str, typer.Option("--lambda", help="Cost weights of the grid.")] = "0.1",
    iterations: Annotated[str, typer.Option("--iterations", help="MCTS iterations of the grid.")] = "1,3",
    budget: Annotated[int, typer.Option("--budget", min=1, help="Token budget of every search.")] = 1000,
    max_candidates: Annotated[int, typer.Option("--max-candidates", min=1, help="Candidates searched.")] = 10,
    candidates: Annotated[int, typer.Option("--candidates", min=1, help="Candidates retrieved per question.")] = 30,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the MLP.")] = 0,
    data_root: Annotated[Path | None, typer.Option("--data-root", help="Datasets directory.")] = None,
) -> None:
    """Grid-search corag configurations per question, fit the configuration agent, save it, report held-out.

    \f
    Example:
        >>> from typer.testing import CliRunner
        >>> result = CliRunner().invoke(corag_app, ["train", "no-such-experiment.yaml"])
        >>> result.exit_code
        2
    """
    from ragkit.config.load import load_config
    from ragkit.eval.experiment import Variant
    from ragkit.eval.runner import load_experiment
    from ragkit.selectors.corag_agent import choose_labels, reward, train_agent

    exp = load_experiment(experiment)
    if dataset is None:
        names = [s["name"] for s in exp.datasets]
        dataset = "hipporag_multihop" if "hipporag_multihop" in names else names[0]
    grid = _grid(scorers, c, lambdas, iterations)
    scorer_types = list(dict.fromkeys(g["scorer"]["type"] for g in grid))
    base = exp.variant_config(Variant("base"))
    rows: list[dict[str, Any]] = []  # one per question: split, embedding, rewards per config, greedy reward
    started = time.perf_counter()
    for ds_name, part, sub in _partitions(exp, data_root, holdout + train, dataset):
        pipes = {}
        for scorer in scorer_types:
            config = json.loads(json.dumps(base))
            config.setdefault("query", {})["selector"] = [{
                "type": "corag", "budget": budget, "max_candidates": max_candidates, "scorer": {"type": scorer}}]
            pipes[scorer] = _indexed(load_config(config), sub, part, data_root)
        greedy_config = json.loads(json.dumps(base))
        greedy_config.setdefault("query", {})["selector"] = {"type": "token_budget", "budget": budget}
        greedy = _indexed(load_config(greedy_config), sub, part, data_root)
        held, rest = _holdout([q for q in sub.questions if q.gold_spans], holdout)
        embedder = greedy.embedder
        for split, questions in (("holdout", held), ("train", rest)):
            for q in questions:
                query = q.to_query()
                ranked = greedy.retrieve(query, k=candidates)
                sel, traces, secs = run_chain(greedy, query, ranked)
                row = {"id": q.id, "dataset": ds_name, "partition": part, "split": split,
                       "embedding": np.asarray(embedder.embed_query(q.text), dtype=np.float64),
                       "greedy": selection_row(q, sel, traces, secs, sub.hit_rule), "rewards": [], "rows": []}
                for g in grid:
                    selector = pipes[g["scorer"]["type"]].selectors[0]
                    selector.c, selector.lambda_, selector.iterations = g["c"], g["lambda_"], g["iterations"]
                    sel, traces, secs = run_chain(pipes[g["scorer"]["type"]], query, ranked)
                    metrics = selection_row(q, sel, traces, secs, sub.hit_rule)
                    row["rewards"].append(reward(metrics))
                    row["rows"].append(metrics)
                rows.append(row)
                typer.echo(f"[{time.perf_counter() - started:7.1f}s] {ds_name}/{part} {split} {q.id}: best reward "
                           f"{max(row['rewards']):.2f} (greedy {reward(row['greedy']):.2f})", err=True)
    train_rows = [r for r in rows if r["split"] == "train"]
    test_rows = [r for r in rows if r["split"] == "holdout"]
    if len(train_rows) < 2:
        from ragkit.errors import ConfigError

        raise ConfigError(f"corag train: only {len(train_rows)} training questions with gold; raise --train")
    labels, best_fixed = choose_labels(np.array([r["rewards"] for r in train_rows]))
    X = np.stack([r["embedding"] for r in train_rows])
    embedder_spec = load_config(base)["backends"]["embeddings"].get("default", {})

    def summary(rs: Sequence[Mapping[str, Any]], pick: Any) -> dict[str, float]:
        chosen = [r["rows"][pick(r)] if pick is not None else r["greedy"] for r in rs]
        return {"all_gold": _mean([m.get("all_gold", 0.0) for m in chosen]),
                "recall": _mean([m.get("recall", 0.0) for m in chosen]),
                "precision": _mean([m.get("precision", 0.0) for m in chosen]),
                "selected_tokens": _mean([m["selected_tokens"] for m in chosen]),
                "lm_tokens": _mean([m["lm_tokens"] for m in chosen]),
                "reward": _mean([reward(m) for m in chosen])}

    agent = train_agent(X, labels, grid, embedder={"model": embedder_spec.get("model"),
                                                   "type": embedder_spec.get("type")}, seed=seed)
    report = {
        "dataset": dataset, "grid": {"scorers": scorers, "c": c, "lambda_": lambdas, "iterations": iterations},
        "budget": budget, "max_candidates": max_candidates, "candidates": candidates,
        "train_questions": len(train_rows), "holdout_questions": len(test_rows),
        "label_counts": {str(k): labels.count(k) for k in sorted(set(labels))},
        "best_fixed": {"index": best_fixed, **grid[best_fixed]},
        "holdout": {
            "agent": summary(test_rows, lambda r: agent.predict_index(r["embedding"])),
            "best_fixed": summary(test_rows, lambda r: best_fixed),
            "oracle": summary(test_rows, lambda r: int(np.argmax(r["rewards"]))),
            "token_budget": summary(test_rows, None),
        },
        "train": {"agent": summary(train_rows, lambda r: agent.predict_index(r["embedding"])),
                  "best_fixed": summary(train_rows, lambda r: best_fixed)},
        "seconds": time.perf_counter() - started, "machine": platform.machine(), "trained_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    agent.report = report
    path = agent.save(out)
    typer.echo(f"grid: {len(grid)} configurations ({scorers} x c {c} x lambda {lambdas} x iterations {iterations}); "
               f"budget {budget}, {max_candidates} of {candidates} candidates searched")
    typer.echo(f"train: {len(train_rows)} questions, labels {report['label_counts']}; best fixed: #{best_fixed} "
               f"{json.dumps(grid[best_fixed])}")
    typer.echo(f"held out ({len(test_rows)} questions; first {holdout} per corpus of {dataset}):")
    typer.echo(f"{'selection':14} {'all-gold %':>10} {'recall %':>9} {'precision %':>11} {'sel. tokens':>11} {'LM tokens':>10}")
    for name, s in report["holdout"].items():
        typer.echo(f"{name:14} {100 * s['all_gold']:>10.1f} {100 * s['recall']:>9.1f} {100 * s['precision']:>11.1f} "
                   f"{s['selected_tokens']:>11.0f} {s['lm_tokens']:>10.0f}")
    typer.echo(f"output: {path}")


# ---------------------------------------------------------------------- eval
@corag_app.command("eval")
def eval_command(
    experiment: Annotated[Path, typer.Argument(help="Experiment YAML whose variants differ in query.selector.",
                                               dir_okay=False)],
    out: Annotated[Path | None, typer.Option("--out", help="Output directory (default runs/eval/<name>).")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="At most N questions per corpus.")] = None,
    variant: Annotated[list[str] | None, typer.Option("--variant", help="Run only this variant (repeatable).")] = None,
    data_root: Annotated[Path | None, typer.Option("--data-root", help="Datasets directory.")] = None,
) -> None:
    """Each variant's selector over the same retrieved candidates; evidence metrics, scorer cost, latency.

    \f
    Example:
        >>> from typer.testing import CliRunner
        >>> result = CliRunner().invoke(corag_app, ["eval", "no-such-experiment.yaml"])
        >>> result.exit_code
        2
    """
    from ragkit.config.load import load_config
    from ragkit.eval import metrics as M
    from ragkit.eval.runner import load_experiment
    from ragkit.store.atomic import atomic_write_json

    exp = load_experiment(experiment)
    variants = [v for v in exp.variants if not variant or v.name in variant]
    out_dir = out or Path("runs") / "eval" / exp.name
    out_dir.mkdir(parents=True, exist_ok=True)
    candidates = int(exp.base.get("query", {}).get("retrieve", {}).get("k", 30))
    results: list[dict[str, Any]] = []
    started = time.perf_counter()
    for ds_name, part, sub in _partitions(exp, data_root, limit, None):
        questions = [q for q in sub.questions if q.gold_spans]
        ranked_of: dict[str, list[Any]] = {}
        for v in variants:
            pipe = _indexed(load_config(exp.variant_config(v)), sub, part, data_root)
            rows = []
            for q in questions:
                query = q.to_query()
                if q.id not in ranked_of:
                    ranked_of[q.id] = pipe.retrieve(query, k=candidates)
                sel, traces, secs = run_chain(pipe, query, ranked_of[q.id])
                rows.append(selection_row(q, sel, traces, secs, sub.hit_rule))
            res = {"dataset": ds_name, "partition": part, "variant": v.name, "questions": len(rows),
                   "selector": load_config(exp.variant_config(v))["query"]["selector"],
                   **{k: _mean([r.get(k, 0.0) for r in rows]) for k in
                      ("all_gold", "recall", "precision", "evidence_recall", "selected_tokens", "scorer_calls",
                       "lm_tokens")},
                   "p50_ms": M.percentile([r["select_ms"] for r in rows], 50) if rows else float("nan")}
            results.append(res)
            typer.echo(f"[{time.perf_counter() - started:7.1f}s] {ds_name}/{part} {v.name}: all-gold "
                       f"{100 * res['all_gold']:.1f} % recall {100 * res['recall']:.1f} %", err=True)
            atomic_write_json(out_dir / "results.json", {"experiment": exp.name, "results": results,
                                                         "limit": limit, "machine": platform.machine()})
    typer.echo(f"candidates: {candidates} retrieved per question; selectors as each variant configures them")
    header = ["dataset", "variant", "n", "all-gold %", "recall %", "precision %", "sel. tokens", "scorer calls",
              "LM tokens", "p50 ms"]
    typer.echo("| " + " | ".join(header) + " |")
    typer.echo("|" + "|".join("---" for _ in header) + "|")
    for r in results:
        label = r["dataset"] if r["partition"] == "all" else f"{r['dataset']}/{r['partition']}"
        typer.echo(f"| {label} | {r['variant']} | {r['questions']} | {100 * r['all_gold']:.1f} | {100 * r['recall']:.1f} | "
                   f"{100 * r['precision']:.1f} | {r['selected_tokens']:.0f} | {r['scorer_calls']:.1f} | "
                   f"{r['lm_tokens']:.0f} | {r['p50_ms']:.0f} |")
    typer.echo(f"output: {out_dir}")
