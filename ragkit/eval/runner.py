"""``ragkit eval``: variants side by side on one dataset, under named protocols, resumable.

This module orchestrates; the pieces live next to it: :mod:`ragkit.eval.experiment` (experiment
files, variants, grid, overrides), :mod:`ragkit.eval.protocols` (how each protocol scores a
question) and :mod:`ragkit.eval.report` (tables, ``results.md``, ``results.json``, plots).

Each variant runs its full index phase (chunk → embed → index) into its own store under
``RAGKIT_HOME/indexes/eval/``; stores, chunk outputs (cached by chunker config and document
fingerprint in ``ragkit.cache``) and LLM/embedding calls are reused across variants and runs, so
swapping question sets re-chunks and re-embeds nothing. Results are written per variant as they
complete (``variants/*.json`` in the output directory); a rerun skips finished variants.

Example:
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> tmp = tempfile.TemporaryDirectory()
    >>> data = Path(tmp.name) / "tiny"
    >>> data.mkdir()
    >>> _ = (data / "documents.jsonl").write_text(json.dumps({"id": "a", "text": "Ada wrote the first program."})
    ...                                          + "\\n" + json.dumps({"id": "b", "text": "Bees make honey."}) + "\\n")
    >>> _ = (data / "questions.jsonl").write_text(json.dumps({"question": "Who wrote the first program?",
    ...                                                       "answer": "Ada", "gold_passages": ["a"]}) + "\\n")
    >>> exp = {"dataset": str(data), "protocols": ["budget"], "match": False,
    ...        "base": {"index": {"retriever": {"type": "bm25"}}},
    ...        "variants": [{"name": "para", "set": {"index.chunker": {"type": "paragraph", "max_tokens": 64}}}]}
    >>> from unittest import mock
    >>> with mock.patch.dict("os.environ", {"RAGKIT_HOME": tmp.name}):  # indexes and caches go there
    ...     result = run_experiment(exp, out=Path(tmp.name) / "out", echo=None, plots=False)
    >>> record = result.records[0]
    >>> record["variant"], record["cost"]["chunks"], record["protocols"]["budget"]["overall"]["recall"]["mean"]
    ('para', 2, 1.0)
    >>> tmp.cleanup()
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ragkit.eval.metrics as M
import ragkit.eval.protocols as P
from ragkit.datasets import EvalDataset, load_dataset
from ragkit.errors import ConfigError
from ragkit.eval.experiment import (
    DEFAULT_MATCH,
    EVAL_BASE_DEFAULTS,
    Experiment,
    Variant,
    load_experiment,
    match_status,
    parse_grid,
)
from ragkit.eval.protocols import PROTOCOL_PARAMS, PROTOCOLS
from ragkit.eval.report import render_markdown, render_tables, slug, write_plots, write_report
from ragkit.progress import track
from ragkit.types import Chunk, sha256_hex

__all__ = [
    "DEFAULT_MATCH", "EVAL_BASE_DEFAULTS", "PROTOCOLS", "PROTOCOL_PARAMS", "EvalResult", "Experiment", "Variant",
    "duplicate_chunks", "load_experiment", "parse_grid", "render_markdown", "render_tables", "run_experiment", "score_variant",
    "write_plots",
]

#: Bumped when a result record's meaning changes, so stored variant results are recomputed.
RESULT_FORMAT = 2


@dataclass
class EvalResult:
    """What :func:`run_experiment` produced: per-variant records, the output directory, the tables."""

    experiment: Experiment
    records: list[dict[str, Any]]
    output_dir: Path
    tables: dict[str, str]
    datasets: dict[str, dict[str, Any]]


def run_experiment(experiment: Experiment | str | Path | Mapping[str, Any], *, out: str | Path | None = None,
                   data_root: str | Path | None = None, limit: int | None = None, force: bool = False,
                   rebuild: bool = False, only: Sequence[str] = (), echo: Callable[[str], None] | None = print,
                   plots: bool = True, engine: str = "local", address: str | None = None) -> EvalResult:
    """Run every variant of ``experiment`` and write ``results.json``, ``results.md`` and plots into ``out``.

    The module docstring has a runnable example on a two-document dataset.

    Args:
        experiment: an :class:`Experiment` or what :func:`load_experiment` accepts.
        out: output directory (default ``runs/eval/<experiment name>``).
        data_root: the ``--data-root`` (beats ``$RAGKIT_DATA`` and the experiment's ``data_root``); it
            reaches the datasets and every variant's pipeline (stages that load datasets themselves).
        limit: at most this many questions per corpus (quick runs; results are keyed by it).
        force: recompute variants whose results already exist in ``out``.
        rebuild: rebuild indexes instead of reusing stored ones (caches still apply).
        only: run only the variants with these names.
        echo: where tables go (``print``; ``None`` for silence).
        plots: write matplotlib plots.
        engine: ``local`` runs the variants one after another here; ``ray`` runs each variant's index
            phase and queries as a Ray task (extra ``ray``), results identical to the sequential run.
        address: the Ray cluster for ``engine="ray"`` (``auto``, ``ray://HOST:PORT``; default a local Ray).

    Raises:
        ConfigError: an invalid experiment, or ``only`` names no variant.
        DatasetError: the dataset is missing or malformed.
    """
    from ragkit.config.load import load_config
    from ragkit.store.atomic import atomic_write_json

    exp = experiment if isinstance(experiment, Experiment) else load_experiment(experiment)
    out_dir = Path(out) if out is not None else Path("runs") / "eval" / slug(exp.name)
    variants = [v for v in exp.variants if not only or v.name in only]
    if only and not variants:
        raise ConfigError(f"--variant {list(only)}: no such variant; variants are {', '.join(v.name for v in exp.variants)}")
    if engine not in ("local", "ray"):
        raise ConfigError(f"eval engine: got {engine!r}; allowed: local, ray")
    records: list[dict[str, Any]] = []
    summaries: dict[str, dict[str, Any]] = {}
    for spec in exp.datasets:
        dataset = load_dataset(spec["name"], data_root=data_root, subset=spec["subset"],
                               config_data_root=exp.data_root, limit=limit or spec.get("limit"))
        summaries[dataset.name] = dataset.summary()
        (out_dir / "variants").mkdir(parents=True, exist_ok=True)  # only once there is data: a failed run leaves no folder
        partitions = dataset.partitions()
        jobs = [(v, part, sub) for v in variants for part, sub in partitions]
        pending: list[tuple[int, Path, tuple[Any, ...]]] = []  # (position in records, result file, job arguments)
        for variant, part, sub in track(jobs, f"eval {exp.name}", "variant",  # variant i/n with an ETA
                                        show=False if engine == "ray" else None):
            config = load_config(exp.variant_config(variant))
            key = _variant_key(config, sub, exp.protocols, exp.bootstrap)
            path = out_dir / "variants" / f"{slug(dataset.name)}--{slug(part)}--{slug(variant.name)}.json"
            if path.is_file() and not force:
                cached = json.loads(path.read_text(encoding="utf-8"))
                if cached.get("key") == key:
                    records.append(cached)
                    continue
            args = (config, key, variant.name, dataset.name, part, sub, exp.protocols, exp.bootstrap, exp.match,
                    rebuild, data_root)
            if engine == "ray":
                records.append({})
                pending.append((len(records) - 1, path, args))
                continue
            record = evaluate_variant(*args)
            atomic_write_json(path, record)
            records.append(record)
        if pending:
            from ragkit.engines.ray import map_tasks

            results = map_tasks(evaluate_variant, [args for _, _, args in pending], address=address,
                                desc=f"eval {exp.name} (ray)")
            for (position, path, _), record in zip(pending, results):
                atomic_write_json(path, record)
                records[position] = record
    tables = render_tables(exp, records)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_report(out_dir, exp, records, tables, summaries, limit, plots=plots, echo=echo)
    return EvalResult(exp, records, out_dir, tables, summaries)


def evaluate_variant(config: Mapping[str, Any], key: str, variant: str, dataset_name: str, part: str,
                     sub: EvalDataset, protocols: Mapping[str, Mapping[str, Any]], bootstrap: Mapping[str, Any] | None,
                     match: Any, rebuild: bool, data_root: str | Path | None) -> dict[str, Any]:
    """One variant on one dataset partition: its index phase, then its questions; the result record.

    A module-level function so ``ragkit eval --engine ray`` can run it as a Ray task.
    """
    pipe, cost = _index_variant(config, sub, part, rebuild, data_root)
    scored = score_variant(pipe, sub, protocols, list(pipe.retriever.chunks_ or []),
                           f"{variant} [{part}]", bootstrap=bootstrap)
    query_info = scored.pop("_query")
    cost.update(latency_p50_ms=query_info["latency_p50_ms"], latency_p95_ms=query_info["latency_p95_ms"],
                query_usage=query_info["usage"])
    return {
        "key": key, "variant": variant, "dataset": dataset_name, "partition": part,
        "chunker": config["index"]["chunker"], "retriever": config["index"]["retriever"]["type"],
        "embedder": config["index"]["embedder"], "config": config, "cost": cost,
        "match": match_status(cost["mean_tokens"], match), "protocols": scored,
        "questions": len(sub.questions), "completed_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def score_variant(pipe: Any, dataset: EvalDataset, protocols: Mapping[str, Mapping[str, Any]],
                  chunks: Sequence[Chunk], desc: str = "", bootstrap: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Score one indexed variant on one dataset partition under ``protocols`` (see :mod:`ragkit.eval.protocols`).

    Each question is retrieved once (as many candidates as the protocols need); the ``budget``
    protocol runs the pipeline registry's ``token_budget`` selector over the ranked candidates and
    ``answer`` runs the full query phase; ``chroma`` places chunks by its ``positions`` option and
    adds precision Ω over all of ``chunks``. Returns one summary per protocol (with bootstrap
    intervals, settings ``bootstrap``) plus ``_query`` (retrieval + selection latency percentiles
    and the query phase's usage).
    """
    from ragkit.usage import usage_scope

    needs = P.candidates_needed(protocols)
    per_q: dict[str, list[dict[str, Any]]] = {}
    latencies: list[float] = []
    budget_selector = None
    if "budget" in protocols:
        budget_selector = pipe.registry.get("selector", "token_budget")(budget=protocols["budget"]["budget"])
    hit_rule = dataset.hit_rule
    chunks_by_doc = P.chunks_by_document(chunks)
    source_of = {d.id: str(d.metadata.get("source_id")) for d in dataset.documents}
    positions = index_spans = None
    if "chroma" in protocols:
        positions = P.ChunkPositions(protocols["chroma"].get("positions", "exact"),
                                     {d.id: d.text for d in dataset.documents})
        index_spans = positions.index_spans(chunks_by_doc)
    # Untimed first pass: query embeddings are computed in one batch (or read from the cache) here,
    # so the timed pass measures retrieval + selection the same way for every variant.
    with usage_scope() as query_usage:
        _warm_query_embeddings(pipe, [q.to_query() for q in dataset.questions])
        for q in track(dataset.questions, desc, "question"):
            query = q.to_query()
            t0 = time.perf_counter()
            ranked = pipe.retrieve(query, k=needs)
            latencies.append(time.perf_counter() - t0)
            for name, params in protocols.items():
                rows = per_q.setdefault(name, [])
                if name == "chroma":
                    rows.append(P.chroma_row(q, ranked[: params["k"]], positions, index_spans))
                elif name == "budget":
                    t0 = time.perf_counter()
                    selected = budget_selector.select(query, ranked[: params["candidates"]])
                    latencies[-1] += time.perf_counter() - t0
                    rows.append(P.budget_row(q, selected, hit_rule))
                elif name == "evidence":
                    rows.append(P.evidence_row(q, ranked, params, hit_rule, chunks_by_doc, source_of))
                elif name == "answer":
                    rows.append(P.answer_row(q, pipe.query(query)))
                rows[-1].setdefault("question", q.id)
    out: dict[str, Any] = {name: P.summarise(rows, bootstrap) for name, rows in per_q.items()}
    out["_query"] = {"latency_p50_ms": M.percentile(latencies, 50) * 1000,
                     "latency_p95_ms": M.percentile(latencies, 95) * 1000,
                     "usage": query_usage.to_dict(), "questions": len(dataset.questions)}
    return out


def _warm_query_embeddings(pipe: Any, queries: Sequence[Any]) -> None:
    """Embed all question texts in one batched call, so per-query ``embed_query`` calls hit the cache."""
    retriever = pipe.retriever
    dense = getattr(retriever, "dense_", retriever)  # hybrid keeps its dense part in ``dense_``
    view, embedder = getattr(dense, "view_", None), getattr(dense, "embedder", None)
    if view is None or embedder is None or not hasattr(embedder, "embed_documents") or not queries:
        return
    embedder.embed_documents([view.query_text(q) for q in queries])


def _index_cost_path(store: Path) -> Path:
    return store.parent / f"{store.name}.cost.json"


def _index_variant(config: Mapping[str, Any], dataset: EvalDataset, part: str, rebuild: bool,
                   data_root: str | Path | None = None) -> tuple[Any, dict[str, Any]]:
    """Build (or reuse) the variant's index on ``dataset``; return the pipeline and the index cost.

    ``data_root`` (``--data-root``) is set on the variant's pipeline, which hands it to stages that
    load datasets themselves (e.g. ``intent``'s ``intents_dataset``).
    """
    from ragkit.paths import indexes_dir
    from ragkit.pipeline import Pipeline

    probe = Pipeline.from_config(config)
    store = indexes_dir() / "eval" / f"{slug(dataset.name)}-{slug(part)}-{dataset.documents_fingerprint()[:10]}-{probe.index_hash()}"
    pipe = Pipeline.from_config(config, [("index.store", str(store))])
    pipe.data_root = data_root
    report = pipe.index(dataset.documents, rebuild=rebuild)
    chunks: list[Chunk] = list(pipe.retriever.chunks_ or [])
    cost_file = _index_cost_path(store)
    usage = {slot: u.to_dict() for slot, u in (report.usage or {}).items()}
    total = {k: sum(u.get(k, 0) for u in usage.values()) for k in ("llm_calls", "prompt_tokens", "completion_tokens",
                                                                   "embedding_calls", "embedded_texts", "cached_calls")}
    cost = {"index_seconds": report.seconds, "reused": bool(report.reused), "usage": total, "store": str(store),
            "documents_processed": report.documents_processed}
    if report.reused and cost_file.is_file():
        first = json.loads(cost_file.read_text(encoding="utf-8"))
        cost.update(index_seconds=first["index_seconds"], usage=first["usage"], built_at=first.get("built_at"),
                    reuse_seconds=report.seconds)
    elif not report.reused:
        cost["built_at"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        cost_file.write_text(json.dumps(cost, indent=2), encoding="utf-8")
    tokens = [c.token_count for c in chunks]
    sizes = M.cost_summary(tokens, index_seconds=cost["index_seconds"], char_counts=[len(c.text) for c in chunks],
                           usage=cost["usage"])
    cost.update(chunks=sizes.chunks, mean_tokens=sizes.mean_tokens, std_tokens=sizes.std_tokens,
                mean_chars=sizes.mean_chars, max_tokens=max(tokens, default=0),
                duplicates=duplicate_chunks(chunks, {d.id: str(d.metadata.get("corpus", "")) for d in dataset.documents}))
    return pipe, cost


def duplicate_chunks(chunks: Sequence[Chunk], corpus_of: Mapping[str, str]) -> dict[str, dict[str, int]]:
    """Byte-identical chunks per corpus: ``copies`` beyond the first of each text, and how many ``texts`` repeat.

    Duplicated passages (``finance.md`` repeats about 40 % of its text) give chunks with the same
    text, the same embedding and the same score: which copy is retrieved is then decided by the
    retriever's tie order (chunk position: the first copy), and only the copy at the gold's offsets
    scores under exact positions. Corpora without duplicates are left out.

    Example:
        >>> from ragkit.types import Document
        >>> doc = Document.from_text("ab ab ab cd")
        >>> chunks = [Chunk.from_span(doc, s, s + 2, 1) for s in (0, 3, 6, 9)]
        >>> duplicate_chunks(chunks, {doc.id: "toy"})
        {'toy': {'copies': 2, 'texts': 1}}
    """
    from collections import Counter

    counts: dict[str, Counter[str]] = {}
    for chunk in chunks:
        counts.setdefault(corpus_of.get(chunk.doc_id, ""), Counter())[chunk.text] += 1
    out = {}
    for corpus, texts in counts.items():
        repeated = [n for n in texts.values() if n > 1]
        if repeated:
            out[corpus] = {"copies": sum(n - 1 for n in repeated), "texts": len(repeated)}
    return out


def _variant_key(config: Mapping[str, Any], dataset: EvalDataset, protocols: Mapping[str, Any],
                 bootstrap: Mapping[str, Any] | None = None) -> str:
    from ragkit import __version__

    return sha256_hex(RESULT_FORMAT, __version__, config, dataset.fingerprint(), protocols, bootstrap)[:20]
