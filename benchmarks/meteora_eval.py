"""METEORA evaluation: context prioritisation, poisoning defences and cost (issue 17).

Reads ``benchmarks/meteora_eval.yaml``; builds each question's (possibly poisoned) gold document from the
shared data and ``datasets/poisoned_evidence/instances.jsonl``; chunks it; then per question:

- ``meteora`` (scope document: all chunks of the document), then ``verifier`` and
  ``perplexity_filter`` on METEORA's selection (the paper's chain);
- ``top_k`` over the MiniLM cosine ranking with k = METEORA's mean selected count on the corpus
  (the paper's rule), ``token_budget`` (B = 1,000) over the same ranking, and ``corag`` (when the config
  has a ``corag`` selector: MCTS over the ranking's head under the same budget, MiniLM ``embedding``
  scorer by default, so no LLM call).

Evidence precision/recall per document: a chunk is relevant when it overlaps a gold span;
P = relevant selected / selected, R = gold spans overlapped by a selected chunk / gold spans.
Poisoning: a chunk is poisoned when it overlaps the injected passage; flag P/R/F1 of each defence
over the chunks it was given (no defence flags nothing); "reaches" = a poisoned chunk is among the
chunks left for the generator. Cost per question: LLM requests (fresh + cached), fresh prompt and
completion tokens, latency. Writes ``results.json`` (rows and tables) and prints Markdown tables.

    python benchmarks/meteora_eval.py --out benchmarks/artifacts/meteora
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from ragkit.backends import build_backend
from ragkit.context import QueryContext
from ragkit.datasets.poisoned import load_sources, poisoned_instance, read_records
from ragkit.registry import default_registry
from ragkit.selectors.corag import CoragSelector
from ragkit.selectors.meteora import MeteoraSelector
from ragkit.selectors.perplexity_filter import PerplexityFilterSelector
from ragkit.selectors.token_budget import TokenBudgetSelector
from ragkit.selectors.top_k import TopKSelector
from ragkit.selectors.verifier import VerifierSelector
from ragkit.types import Query, ScoredChunk
from ragkit.usage import usage_scope

ROOT = Path(__file__).resolve().parents[1]


def overlaps(chunk: Any, start: int, end: int) -> bool:
    return chunk.start < end and start < chunk.end


def evidence_pr(selected: list[Any], gold: list[tuple[int, int]]) -> tuple[float, float]:
    if not selected:
        return 0.0, 0.0
    relevant = sum(1 for c in selected if any(overlaps(c, s, e) for s, e in gold))
    found = sum(1 for s, e in gold if any(overlaps(c, s, e) for c in selected))
    return relevant / len(selected), found / len(gold) if gold else 0.0


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def usage_row(kept: list[Any], u: Any, trace: Any) -> dict[str, Any]:
    return {"ids": [s.chunk.id for s in kept], "llm_requests": u.llm_calls + u.cached_calls,
            "fresh_calls": u.llm_calls, "prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
            "seconds": u.wall_time_s, "flags": [f["chunk_id"] for f in trace.get("flags", [])],
            "flag_types": [f["type"] for f in trace.get("flags", [])]}


def pick(records: list[dict[str, Any]], corpora: list[str], n_poisoned: int, n_clean: int) -> list[dict[str, Any]]:
    out = []
    for corpus in corpora:
        rows = sorted((r for r in records if r["corpus"] == corpus), key=lambda r: r["question_id"])
        out += [r for r in rows if r["kind"]][:n_poisoned] + [r for r in rows if not r["kind"]][:n_clean]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--config", default=str(ROOT / "benchmarks" / "meteora_eval.yaml"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks/artifacts/meteora"))
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--per-corpus", type=int, default=None, help="override subset: N poisoned + N clean")
    parser.add_argument("--fake", action="store_true", help="fake LLM and embedder (a smoke run of the plumbing)")
    args = parser.parse_args()
    cfg = yaml.safe_load(Path(args.config).read_text())
    if args.fake:
        cfg["llm"], cfg["embedder"] = {"type": "fake"}, {"type": "fake"}
    n_p = args.per_corpus or cfg["subset"]["poisoned"]
    n_c = args.per_corpus or cfg["subset"]["clean"]
    started = time.perf_counter()
    load_start = os.getloadavg()

    llm = build_backend("llm", cfg["llm"], None, cache_mode="read_write")
    emb = build_backend("embedder", cfg["embedder"], None, cache_mode="read_write")
    chunk_spec = dict(cfg["chunker"])
    chunker = default_registry().get("chunker", chunk_spec.pop("type"))(**chunk_spec)
    sel_cfg = cfg["selectors"]
    meteora = MeteoraSelector(llm=llm, embedder=emb, **sel_cfg["meteora"])
    verifier = VerifierSelector(llm=llm, **sel_cfg["verifier"])
    ppl_filter = PerplexityFilterSelector(llm=llm, **sel_cfg["perplexity_filter"])

    records = read_records(ROOT / "datasets/poisoned_evidence/instances.jsonl")
    sources = dict(load_sources(args.data_root))
    chosen = pick(records, cfg["corpora"], n_p, n_c)
    rows: list[dict[str, Any]] = []
    for number, record in enumerate(chosen, 1):
        ds = sources[record["dataset"]]
        q = next(x for x in ds.questions if x.id == record["question_id"])
        if record["kind"]:
            doc, q, poison = poisoned_instance(ds, record)
        else:
            doc, poison = ds.document(q.gold_spans[0].doc_id), None
        gold = [(s.start, s.end) for s in q.gold_spans if s.doc_id == doc.id]
        chunks = chunker.chunk(doc)
        ctx = QueryContext(chunks, embedder=emb)
        query = Query.from_text(q.text, id=q.id)
        qv = np.asarray(emb.embed_query(q.text), dtype=np.float64)
        cv = np.asarray(emb.embed_documents([c.text for c in chunks]), dtype=np.float64)
        sims = cv @ qv / (np.linalg.norm(cv, axis=1) * np.linalg.norm(qv) + 1e-12)
        ranked = [ScoredChunk(chunks[i], float(sims[i]), "minilm") for i in np.argsort(-sims, kind="stable")]
        row: dict[str, Any] = {"id": record["id"], "corpus": record["corpus"], "kind": record["kind"],
                               "chunks": len(chunks), "gold": gold, "poison": poison, "ranked": [s.chunk.id for s in ranked]}
        with usage_scope() as u:
            selected = meteora.select(query, ranked[:20], ctx)
        row["meteora"] = usage_row(selected, u, meteora.trace())
        row["meteora"]["rationales"] = len(meteora.trace().get("rationales", []))
        row["meteora"]["fallback"] = meteora.trace().get("fallback")
        row["poisoned_ids"] = [c.id for c in chunks if poison and overlaps(c, *poison)]
        row["_by_id"] = {c.id: c for c in chunks}
        row["_ctx"], row["_query"], row["_selected"] = ctx, query, selected
        rows.append(row)
        print(f"[{number}/{len(chosen)}] {record['id']} kind={record['kind']} chunks={len(chunks)} "
              f"meteora={len(selected)} {time.perf_counter() - started:.0f}s", flush=True)

    # top_k (k = METEORA's mean per corpus) and token_budget over the MiniLM ranking; then the defences
    # on METEORA's selection (the paper's chain) and on top_k's (a set the poison reaches more often)
    k_of = {c: max(1, round(statistics.mean(len(r["meteora"]["ids"]) for r in rows if r["corpus"] == c)))
            for c in cfg["corpora"] if any(r["corpus"] == c for r in rows)}
    budget = TokenBudgetSelector(**sel_cfg["token_budget"])
    corag = CoragSelector(**sel_cfg["corag"]) if "corag" in sel_cfg else None
    for number, row in enumerate(rows, 1):
        ranked = [ScoredChunk(row["_by_id"][i], 0.0) for i in row["ranked"]]
        top = TopKSelector(k=k_of[row["corpus"]]).select(row["_query"], ranked)
        row["top_k"] = {"ids": [s.chunk.id for s in top]}
        row["token_budget"] = {"ids": [s.chunk.id for s in budget.select(row["_query"], ranked)]}
        if corag is not None:
            with usage_scope() as u:
                picked = corag.select(row["_query"], ranked, row["_ctx"])
            trace = corag.trace()
            row["corag"] = {**usage_row(picked, u, trace), "scorer_calls": trace.get("scorer_calls")}
        for base, given in (("meteora", row["_selected"]), ("top_k", top)):
            if base not in cfg.get("defence_inputs", ["meteora", "top_k"]):
                continue
            for name, defence in (("verifier", verifier), ("perplexity_filter", ppl_filter)):
                with usage_scope() as u:
                    kept = defence.select(row["_query"], given, row["_ctx"])
                row[f"{base}+{name}"] = usage_row(kept, u, defence.trace())
                if name == "verifier":
                    row[f"{base}+{name}"].update({k: defence.trace()[k] for k in (
                        "calls_naive", "backend_calls", "calls_saved", "summaries_reused", "contradiction_skipped")})
        print(f"[defences {number}/{len(rows)}] {row['id']} {time.perf_counter() - started:.0f}s", flush=True)

    # ---------------------------------------------------------------- tables
    def chunks_of(row: dict[str, Any], ids: list[str]) -> list[Any]:
        return [row["_by_id"][i] for i in ids]

    prior = {}
    bases = [b for b in ("meteora", "top_k") if b in cfg.get("defence_inputs", ["meteora", "top_k"])]
    compared = ("meteora", "top_k", "token_budget", *(["corag"] if "corag" in sel_cfg else []))
    for name in (*compared, *[f"{b}+verifier" for b in bases]):
        per = defaultdict(list)
        for row in rows:
            p, r = evidence_pr(chunks_of(row, row[name]["ids"]), row["gold"])
            per[row["corpus"]].append((p, r, len(row[name]["ids"])))
            per["all"].append((p, r, len(row[name]["ids"])))
        prior[name] = {c: {"precision": statistics.mean(x[0] for x in v), "recall": statistics.mean(x[1] for x in v),
                           "selected": statistics.mean(x[2] for x in v), "n": len(v)} for c, v in per.items()}

    poisoning: dict[str, dict[str, Any]] = {}
    for base in ("meteora", "top_k"):
        for name in ("none", "verifier", "perplexity_filter") if base in bases else ("none",):
            for kind in ("all", "answer_swap", "injection"):
                tp = fp = fn = reach = given = n = 0
                for row in rows:
                    if kind != "all" and row["kind"] != kind:
                        continue
                    n += 1
                    checked = set(row[base]["ids"])
                    flagged = set() if name == "none" else set(row[f"{base}+{name}"]["flags"])
                    bad = set(row["poisoned_ids"]) & checked
                    tp += len(flagged & bad)
                    fp += len(flagged - bad)
                    fn += len(bad - flagged)
                    given += bool(bad)
                    kept = checked if name == "none" else set(row[f"{base}+{name}"]["ids"])
                    reach += bool(set(row["poisoned_ids"]) & kept)
                p, r, f = prf(tp, fp, fn)
                poisoning[f"{base} → {name} / {kind}"] = {
                    "precision": p, "recall": r, "f1": f, "tp": tp, "fp": fp, "fn": fn, "questions": n,
                    "poison_in_selection": given, "reaches_generator": reach}

    cost = {}
    for name in ("meteora", *[f"{b}+{d}" for b in bases for d in ("verifier", "perplexity_filter")]):
        vals = [row[name] for row in rows]
        cost[name] = {"llm_requests": statistics.mean(v["llm_requests"] for v in vals),
                      "prompt_tokens": statistics.mean(v["prompt_tokens"] for v in vals),
                      "completion_tokens": statistics.mean(v["completion_tokens"] for v in vals),
                      "p50_s": statistics.median(v["seconds"] for v in vals)}
        if "verifier" in name:
            cost[name].update({k: statistics.mean(row[name][k] for row in rows)
                               for k in ("calls_naive", "backend_calls", "calls_saved")})

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for row in rows:
        for key in ("_by_id", "_ctx", "_query", "_selected", "ranked"):
            row.pop(key)
    result = {"config": cfg, "subset": {"poisoned": n_p, "clean": n_c, "questions": len(rows)}, "k_top_k": k_of,
              "prioritisation": prior, "poisoning": poisoning, "cost": cost, "rows": rows,
              "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                          "load_start": load_start, "load_end": os.getloadavg()},
              "wall_s": time.perf_counter() - started, "llm_cache": getattr(llm, "stats", lambda: {})()}
    (out / "results.json").write_text(json.dumps(result, indent=1, default=str))
    print(render(result))


def render(result: dict[str, Any]) -> str:
    """Markdown tables from a results.json mapping."""
    lines = ["| selector | corpus | selected | precision | recall |", "|---|---|---|---|---|"]
    for name, per in result["prioritisation"].items():
        for corpus, v in per.items():
            lines.append(f"| {name} | {corpus} | {v['selected']:.1f} | {v['precision']:.2f} | {v['recall']:.2f} |")
    lines += ["", "| defence / kind | flag P | flag R | F1 | poisoned in selection | reaches generator | questions |",
              "|---|---|---|---|---|---|---|"]
    for key, v in result["poisoning"].items():
        lines.append(f"| {key} | {v['precision']:.2f} | {v['recall']:.2f} | {v['f1']:.2f} | {v['poison_in_selection']} "
                     f"| {v['reaches_generator']} | {v['questions']} |")
    lines += ["", "| stage | LLM requests / q | prompt tokens / q | completion tokens / q | p50 s / q "
              "| backend calls / q (naive) |", "|---|---|---|---|---|---|"]
    for name, v in result["cost"].items():
        calls = f"{v['backend_calls']:.1f} ({v['calls_naive']:.1f})" if "calls_naive" in v else "-"
        lines.append(f"| {name} | {v['llm_requests']:.1f} | {v['prompt_tokens']:.0f} | {v['completion_tokens']:.0f} "
                     f"| {v['p50_s']:.1f} | {calls} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
