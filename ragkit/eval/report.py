"""Evaluation reports: one Markdown table per protocol and dataset partition, ``results.md``, ``results.json`` and plots.

Every table is printed and written under a line ``protocol: NAME`` (ARCHITECTURE.md, *Evaluation*;
``protocol: chroma (positions: exact)`` says where the chunks were placed), then ``dataset: NAME``;
chunk sizes show the achieved mean ± std, with ⚠ on variants outside the experiment's ``match``.
Metric cells are ``mean [low, high]``: the mean over questions and its 95 % bootstrap interval
(records without intervals show mean ± std). With a ``baseline``, each protocol gets a second table
of paired tests (Δ against the baseline in percentage points, its interval, and p). Variants whose
corpora hold byte-identical chunks are listed below the tables.

Example:
    >>> print(markdown_table(["variant", "IoU %"], [["token", "5.1 ± 3.0"]]))
    | variant | IoU %     |
    |---------|-----------|
    | token   | 5.1 ± 3.0 |
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ragkit.eval.experiment import Experiment


def slug(text: str) -> str:
    """A name safe in file names (letters, digits, ``._=-``; at most 80 characters).

    Example:
        >>> slug("token@max_tokens=128, overlap")
        'token_max_tokens=128_overlap'
    """
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text).strip("_")[:80] or "variant"


def _pct(stat: Mapping[str, Any] | None, std: bool = True, digits: int = 1, scale: float = 100.0) -> str:
    """A metric cell: ``mean [low, high]`` (95 % bootstrap interval) when the stat has ``ci``, else mean ± std."""
    if not stat or stat.get("n", 0) == 0:
        return "–"
    text = f"{scale * stat['mean']:.{digits}f}"
    if stat.get("ci") is not None:
        low, high = stat["ci"]
        return f"{text} [{scale * low:.{digits}f}, {scale * high:.{digits}f}]"
    return f"{text} ± {scale * stat['std']:.{digits}f}" if std else text


#: The metrics each protocol's paired table tests against the baseline (those a record has).
PAIRED_METRICS = {"chroma": ["recall", "precision", "iou", "precision_omega"],
                  "budget": ["recall", "precision", "iou", "all_gold"], "answer": ["em", "f1"]}
_LABELS = {"iou": "IoU", "precision_omega": "precision Ω", "all_gold": "all-gold", "em": "EM", "f1": "F1"}


def protocol_line(name: str, params: Mapping[str, Any] | None = None) -> str:
    """The line above each table: ``protocol: NAME``, with where ``chroma`` placed the chunks.

    Example:
        >>> protocol_line("chroma", {"k": 5, "positions": "reference"}), protocol_line("budget", {"budget": 1000})
        ('protocol: chroma (positions: reference)', 'protocol: budget')
    """
    if name == "chroma":
        return f"protocol: chroma (positions: {(params or {}).get('positions', 'exact')})"
    return f"protocol: {name}"


def paired_metrics(protocol: str, params: Mapping[str, Any]) -> list[str]:
    """The metrics tested against the baseline for ``protocol`` (evidence: recall, all-gold at the largest k, MRR).

    Example:
        >>> paired_metrics("evidence", {"k": [2, 5]})
        ['recall@5', 'all@5', 'mrr']
    """
    if protocol == "evidence":
        kmax = max(params["k"])
        return [f"recall@{kmax}", f"all@{kmax}", "mrr"]
    return list(PAIRED_METRICS.get(protocol, []))


def paired_results(exp: Experiment, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Paired tests of every variant against ``exp.baseline``, per protocol and partition (empty without one).

    Returns ``{"<protocol> <dataset label>": {variant: {metric: PairedTest dict}}}``; metric values
    are fractions (the tables print percentage points).
    """
    from ragkit.eval.protocols import paired_against

    if not exp.baseline:
        return {}
    out: dict[str, Any] = {}
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for r in records:
        groups[(r["dataset"], r["partition"])].append(r)
    for name, params in exp.protocols.items():
        metrics = paired_metrics(name, params)
        for (ds, part), rows in groups.items():
            base = next((r for r in rows if r["variant"] == exp.baseline), None)
            if base is None or name not in base["protocols"] or not metrics:
                continue
            label = ds if part == "all" else f"{ds}/{part}"
            out[f"{name} {label}"] = {
                r["variant"]: paired_against(r["protocols"][name], base["protocols"][name], metrics, exp.bootstrap)
                for r in rows if r["variant"] != exp.baseline and name in r["protocols"]}
    return out


def _delta_cell(test: Mapping[str, float] | None, scale: float) -> list[str]:
    if not test:
        return ["–", "–"]
    delta, low, high = (scale * test[k] for k in ("delta", "ci_low", "ci_high"))
    return [f"{delta:+.2f} [{low:+.2f}, {high:+.2f}]", f"{test['p']:.4f}"]


def render_paired(exp: Experiment, paired: Mapping[str, Any]) -> dict[str, str]:
    """One table per protocol and partition: Δ vs the baseline (percentage points, 95 % CI) and p per metric.

    Keyed ``"<protocol> <dataset label> vs <baseline>"`` (the protocol name first, like
    :func:`render_tables`' keys).

    Example:
        >>> from ragkit.eval.experiment import load_experiment
        >>> exp = load_experiment({"dataset": "chroma_chunking_eval", "protocols": ["chroma"], "baseline": "a",
        ...                        "variants": [{"name": "a"}, {"name": "b"}]})
        >>> test = {"delta": 0.012, "ci_low": -0.003, "ci_high": 0.027, "p": 0.1234, "n": 377}
        >>> print(render_paired(exp, {"chroma ds": {"b": {"recall": test}}})["chroma ds vs a"])  # doctest: +ELLIPSIS
        dataset: ds — paired vs baseline a (Δ = variant − baseline, percentage points [95 % CI]; p: sign-flip ...)
        | variant | Δ recall             | p      |
        |---------|----------------------|--------|
        | b       | +1.20 [-0.30, +2.70] | 0.1234 |
    """
    tables = {}
    for key, per_variant in paired.items():
        name, label = key.split(" ", 1)
        metrics = [m for m in paired_metrics(name, exp.protocols.get(name, {}))
                   if any(m in tests for tests in per_variant.values())]
        scale = 100.0  # fractions → percentage points (MRR: ×100)
        header = ["variant"]
        for m in metrics:
            header += [f"Δ {_LABELS.get(m, m)}" + (" (×100)" if m == "mrr" else ""), "p"]
        body = [[variant, *[c for m in metrics for c in _delta_cell(tests.get(m), scale)]]
                for variant, tests in per_variant.items()]
        title = (f"dataset: {label} — paired vs baseline {exp.baseline} (Δ = variant − baseline, percentage points "
                 f"[95 % CI]; p: sign-flip permutation, {exp.bootstrap['permutations']})")
        tables[f"{key} vs {exp.baseline}"] = title + "\n" + markdown_table(header, body)
    return tables


def duplicate_lines(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per variant whose chunks include byte-identical copies: copies beyond the first, per corpus.

    Example:
        >>> duplicate_lines([{"variant": "rec", "cost": {"duplicates": {"finance": {"copies": 176, "texts": 146}}}},
        ...                  {"variant": "tok", "cost": {"duplicates": {}}}])
        ['duplicate chunks (byte-identical; copies beyond the first, per corpus):', '- rec: finance 176 (146 texts)']
    """
    lines = []
    for r in records:
        dups = (r.get("cost") or {}).get("duplicates") or {}
        if dups:
            label = r["variant"] if r.get("partition", "all") == "all" else f"{r['variant']} [{r['partition']}]"
            lines.append(f"- {label}: " + ", ".join(f"{c or '(no corpus)'} {d['copies']} ({d['texts']} texts)"
                                                     for c, d in dups.items()))
    return ["duplicate chunks (byte-identical; copies beyond the first, per corpus):", *lines] if lines else []


def _num(value: float, digits: int = 1) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table with columns padded to their widest cell (see the module example)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in rows]
    return "\n".join([line, sep, *body])


def _size_cells(record: Mapping[str, Any]) -> list[str]:
    cost = record["cost"]
    flag = ""
    if record.get("match") is not None:
        flag = "" if record["match"]["ok"] else " ⚠"
    return [str(cost["chunks"]), f"{cost['mean_tokens']:.0f} ± {cost['std_tokens']:.0f}{flag}"]


def render_tables(exp: Experiment, records: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """One Markdown table per (protocol, dataset partition), keyed ``"<protocol> <dataset>/<partition>"``.

    Each table starts with a line ``dataset: NAME`` (``NAME/PARTITION`` for unpooled datasets). With
    a baseline, each table is followed by its paired table (:func:`render_paired`).

    Example:
        >>> from ragkit.eval.experiment import load_experiment
        >>> exp = load_experiment({"dataset": "chroma_chunking_eval", "protocols": ["chroma"]})
        >>> stat = {"mean": 0.5, "std": 0.1, "n": 4, "ci": [0.41, 0.6]}
        >>> record = {"variant": "base", "chunker": {"type": "recursive"}, "dataset": "chroma_chunking_eval",
        ...           "partition": "all", "match": {"ok": False},
        ...           "cost": {"chunks": 10, "mean_tokens": 150.0, "std_tokens": 20.0, "index_seconds": 1.25},
        ...           "protocols": {"chroma": {"overall": {"recall": stat, "precision": stat, "iou": stat}}}}
        >>> lines = render_tables(exp, [record])["chroma chroma_chunking_eval"].splitlines()
        >>> lines[0]
        'dataset: chroma_chunking_eval'
        >>> [cell.strip() for cell in lines[1].split("|")[5:9]]
        ['recall % [95% CI]', 'precision % [95% CI]', 'IoU % [95% CI]', 'precision Ω % [95% CI]']
        >>> [cell.strip() for cell in lines[3].split("|")[1:-1]]  # Ω missing from this record: –
        ['base', 'recursive', '10', '150 ± 20 ⚠', '50.00 [41.00, 60.00]', '50.00 [41.00, 60.00]', '50.00 [41.00, 60.00]', '–', '1.2']
    """
    tables: dict[str, str] = {}
    paired = render_paired(exp, paired_results(exp, records))
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for r in records:
        groups[(r["dataset"], r["partition"])].append(r)
    for name, params in exp.protocols.items():
        for (ds, part), rows in groups.items():
            body = []
            if name == "chroma":
                header = ["variant", "chunker", "chunks", "tokens mean ± std", "recall % [95% CI]",
                          "precision % [95% CI]", "IoU % [95% CI]", "precision Ω % [95% CI]", "index s"]
                for r in rows:
                    p = r["protocols"]["chroma"]["overall"]
                    body.append([r["variant"], r["chunker"]["type"], *_size_cells(r),
                                 *[_pct(p.get(m), digits=2) for m in ("recall", "precision", "iou", "precision_omega")],
                                 _num(r["cost"]["index_seconds"])])
            elif name == "budget":
                header = ["variant", "chunker", "chunks", "tokens mean ± std", "sel. chunks", "sel. tokens",
                          "recall % [95% CI]", "precision % [95% CI]", "IoU % [95% CI]", "all-gold % [95% CI]",
                          "answer-in-ctx % [95% CI]", "p50 ms"]
                for r in rows:
                    p = r["protocols"]["budget"]["overall"]
                    body.append([r["variant"], r["chunker"]["type"], *_size_cells(r),
                                 _num(p.get("selected_chunks", {}).get("mean", float("nan"))),
                                 _num(p.get("selected_tokens", {}).get("mean", float("nan")), 0),
                                 _pct(p.get("recall"), digits=2), _pct(p.get("precision"), digits=2),
                                 _pct(p.get("iou"), digits=2), _pct(p.get("all_gold"), std=False),
                                 _pct(p.get("answer_in_context"), std=False), _num(r["cost"]["latency_p50_ms"])])
            elif name == "evidence":
                ks = params["k"]
                kmax = max(ks)
                header = ["variant", "chunker", "chunks", "tokens mean ± std",
                          *[f"recall@{k} %" for k in ks], *[f"all@{k} %" for k in ks], "MRR", f"nDCG@{kmax}"]
                for r in rows:
                    p = r["protocols"]["evidence"]["overall"]
                    body.append([r["variant"], r["chunker"]["type"], *_size_cells(r),
                                 *[_pct(p.get(f"recall@{k}"), std=False) for k in ks],
                                 *[_pct(p.get(f"all@{k}"), std=False) for k in ks],
                                 _pct(p.get("mrr"), std=False, digits=3, scale=1.0),
                                 _pct(p.get(f"ndcg@{kmax}"), std=False, digits=3, scale=1.0)])
            else:  # answer
                header = ["variant", "chunker", "chunks", "tokens mean ± std", "EM %", "F1 %", "answer-in-ctx %",
                          "LLM calls"]
                for r in rows:
                    p = r["protocols"]["answer"]["overall"]
                    body.append([r["variant"], r["chunker"]["type"], *_size_cells(r), _pct(p.get("em"), std=False),
                                 _pct(p.get("f1"), std=False), _pct(p.get("answer_in_context"), std=False),
                                 _num(r["cost"]["query_usage"].get("llm_calls", 0), 0)])
            label = ds if part == "all" else f"{ds}/{part}"
            tables[f"{name} {label}"] = f"dataset: {label}\n" + markdown_table(header, body)
            if f"{name} {label} vs {exp.baseline}" in paired:
                key = f"{name} {label} vs {exp.baseline}"
                tables[key] = paired[key]
    return tables


def render_markdown(exp: Experiment, tables: Mapping[str, str], datasets: Mapping[str, Any], limit: int | None,
                    records: Sequence[Mapping[str, Any]] | None = None) -> str:
    """The Markdown report: what was run, then each table under its ``protocol: NAME`` line.

    Example:
        >>> from ragkit.eval.experiment import load_experiment
        >>> exp = load_experiment({"name": "demo", "dataset": "chroma_chunking_eval", "match": False})
        >>> datasets = {"chroma_chunking_eval": {"questions": 4, "questions_with_gold_spans": 4, "documents": 1,
        ...                                      "characters": 1200}}
        >>> print(render_markdown(exp, {"chroma chroma_chunking_eval": "dataset: ...\\n| table |"}, datasets, 4))
        # demo
        <BLANKLINE>
        - dataset `chroma_chunking_eval`: 4 questions (4 with gold spans), 1 documents, 1,200 characters
        - reduced run: at most 4 questions per corpus
        - cells are mean [95 % bootstrap interval] over questions (2000 resamples, seed 0); Chroma's arithmetic for `chroma` (chunks at exact positions), unions for `budget`
        <BLANKLINE>
        protocol: chroma (positions: exact)
        <BLANKLINE>
        dataset: ...
        | table |
        <BLANKLINE>
    """
    lines = [f"# {exp.name}", ""]
    for name, summary in datasets.items():
        excluded = summary.get("excluded") or {}
        lines.append(f"- dataset `{name}`: {summary['questions']} questions ({summary['questions_with_gold_spans']} "
                     f"with gold spans), {summary['documents']} documents, {summary['characters']:,} characters"
                     + (f", split: {summary['split']}" if summary.get("split") else "")
                     + (f"; excluded: {json.dumps(excluded)}" if excluded else ""))
    if limit:
        lines.append(f"- reduced run: at most {limit} questions per corpus")
    if exp.match:
        lines.append(f"- chunk sizes matched at {exp.match['target_tokens']:.0f} ± {100 * exp.match['tolerance']:.0f} % "
                     "MiniLM tokens; ⚠ marks variants outside")
    where = (exp.protocols.get("chroma") or {}).get("positions", "exact")
    where_text = ("exact" if where == "exact" else
                  "reference: placed by string search as Chroma's code does, first occurrence, trailing '.' dropped")
    lines.append(f"- cells are mean [{100 * exp.bootstrap['confidence']:.0f} % bootstrap interval] over questions "
                 f"({exp.bootstrap['resamples']} resamples, seed {exp.bootstrap['seed']}); Chroma's arithmetic for "
                 f"`chroma` (chunks at {where_text} positions), unions for `budget`")
    if exp.baseline:
        lines.append(f"- paired tables: each variant against `{exp.baseline}` on the same questions; Δ in percentage "
                     f"points with its bootstrap interval, p two-sided from {exp.bootstrap['permutations']} sign-flip "
                     "permutations")
    lines.append("")
    for title, table in tables.items():
        name = title.split(" ", 1)[0]
        lines += [protocol_line(name, exp.protocols.get(name)), "", table, ""]
    dups = duplicate_lines(records or [])
    if dups:
        lines += [*dups, ""]
    return "\n".join(lines)


def _plot_metrics(protocol: str, overall: Mapping[str, Any]) -> list[str]:
    if protocol == "evidence":
        ks = sorted(int(k.split("@")[1]) for k in overall if k.startswith("all@"))
        mid = ks[len(ks) // 2] if ks else None
        return [m for m in (f"all@{mid}", f"recall@{mid}", "mrr") if m in overall]
    wanted = {"chroma": ["iou", "recall", "precision"], "budget": ["iou", "recall", "all_gold"],
              "answer": ["f1", "em", "answer_in_context"]}.get(protocol, [])
    return [m for m in wanted if m in overall]


def write_plots(records: Sequence[Mapping[str, Any]], out_dir: Path) -> list[Path]:
    """Quality vs mean chunk size and quality vs cost: one PNG per protocol and partition, one row per metric.

    Returns the paths written (``<dataset>[-<partition>]-<protocol>.png`` in ``out_dir``).

    Example:
        >>> import tempfile
        >>> stat = {"mean": 0.5, "std": 0.1, "n": 4}
        >>> record = {"variant": "base", "dataset": "chroma_chunking_eval", "partition": "all",
        ...           "cost": {"mean_tokens": 150.0, "index_seconds": 1.25},
        ...           "protocols": {"chroma": {"overall": {"recall": stat, "precision": stat, "iou": stat}}}}
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     [p.name for p in write_plots([record], Path(tmp))]
        ['chroma_chunking_eval-chroma.png']
    """
    # The object API: no pyplot state and no backend switch, so notebooks keep their inline backend.
    from matplotlib.figure import Figure

    written = []
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for r in records:
        groups[(r["dataset"], r["partition"])].append(r)
    for (ds, part), rows in groups.items():
        label = slug(ds if part == "all" else f"{ds}-{part}")
        for protocol in rows[0]["protocols"]:
            metrics = _plot_metrics(protocol, rows[0]["protocols"][protocol]["overall"])
            if not metrics:
                continue
            fig = Figure(figsize=(11, 3.2 * len(metrics)))
            axes = fig.subplots(len(metrics), 2, squeeze=False)
            for row, metric in enumerate(metrics):
                for col, (xkey, xlabel) in enumerate((("mean_tokens", "mean chunk size (MiniLM tokens)"),
                                                       ("index_seconds", "index time (s, first build)"))):
                    ax = axes[row][col]
                    for i, r in enumerate(rows):
                        stat = r["protocols"][protocol]["overall"].get(metric)
                        if not stat:
                            continue
                        x, y = r["cost"][xkey], (stat["mean"] if metric == "mrr" else 100 * stat["mean"])
                        ax.scatter([x], [y], s=30, color=f"C{i % 10}")
                        ax.annotate(r["variant"], (x, y), fontsize=7, xytext=(4, 4 if i % 2 else -9),
                                    textcoords="offset points", color=f"C{i % 10}")
                    ax.set_xlabel(xlabel)
                    ax.set_ylabel(metric if metric == "mrr" else f"{metric} %")
                    ax.grid(alpha=0.3)
            fig.suptitle(f"protocol {protocol}: {ds}{'' if part == 'all' else '/' + part}")
            fig.tight_layout()
            path = out_dir / f"{label}-{protocol}.png"
            fig.savefig(path, dpi=100)
            written.append(path)
    return written


def protocol_sections(tables: Mapping[str, str], protocols: Mapping[str, Mapping[str, Any]] | None = None) -> list[str]:
    """The printed report: each table under its ``protocol: NAME`` line (:func:`protocol_line`), then a blank line.

    Example:
        >>> protocol_sections({"budget chroma_chunking_eval": "dataset: chroma_chunking_eval\\n| ... |"})
        ['protocol: budget', 'dataset: chroma_chunking_eval\\n| ... |', '']
        >>> protocol_sections({"chroma ds": "dataset: ds"}, {"chroma": {"k": 5, "positions": "reference"}})[0]
        'protocol: chroma (positions: reference)'
    """
    lines: list[str] = []
    for title, table in tables.items():
        name = title.split(" ", 1)[0]
        lines += [protocol_line(name, (protocols or {}).get(name)), table, ""]
    return lines


def machine_info() -> dict[str, Any]:
    """Where the results were computed (recorded in ``results.json``).

    Example:
        >>> sorted(machine_info())
        ['cpus', 'platform', 'processor', 'python']
    """
    return {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine()}


def write_report(out_dir: Path, exp: Experiment, records: Sequence[Mapping[str, Any]], tables: Mapping[str, str],
                 datasets: Mapping[str, Any], limit: int | None, plots: bool = True,
                 echo: Callable[[str], None] | None = None) -> None:
    """Print the tables (through ``echo``) and write ``results.json``, ``results.md`` and the plots.

    Example:
        >>> import tempfile
        >>> from ragkit.eval.experiment import load_experiment
        >>> exp = load_experiment({"name": "demo", "dataset": "chroma_chunking_eval"})
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     write_report(Path(tmp), exp, [], {}, {}, None, echo=print)
        ...     sorted(p.name for p in Path(tmp).iterdir())
        ['results.json', 'results.md']
    """
    from ragkit.store.atomic import atomic_write_json

    if echo is not None:
        for line in [*protocol_sections(tables, exp.protocols), *duplicate_lines(records)]:
            echo(line)
    results = {"experiment": exp.name, "source": str(exp.source) if exp.source else None,
               "protocols": exp.protocols, "match": exp.match, "datasets": dict(datasets), "limit": limit,
               "bootstrap": exp.bootstrap, "baseline": exp.baseline, "paired": paired_results(exp, records),
               "machine": machine_info(), "records": list(records), "written_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    atomic_write_json(out_dir / "results.json", results)
    (out_dir / "results.md").write_text(render_markdown(exp, tables, datasets, limit, records), encoding="utf-8")
    if plots and records:
        write_plots(records, out_dir)
