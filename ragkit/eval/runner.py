"""``ragkit eval``: variants side by side on one dataset, under named protocols, resumable.

An *experiment* names a dataset, a ``base`` pipeline config, the ``protocols`` to score with and
the ``variants`` to compare (each a name plus ``--set``-style overrides; optionally a ``grid``)::

    name: chroma-chunkers
    dataset: chroma_chunking_eval           # or {name, subset, limit}
    base: {index: {retriever: {type: dense}}, ...}   # a pipeline config (mapping or a path)
    protocols: [chroma, budget]             # or {budget: {budget: 1000, candidates: 100}}
    match: {target_tokens: 200, tolerance: 0.1}      # chunk-size matching (false: off)
    variants:
      - {name: token, set: {index.chunker: {type: token, max_tokens: 200}}}
      - {name: sentence, set: ["index.chunker.type=sentence", "index.chunker.max_tokens=250"]}
    grid: {index.chunker.max_tokens: [128, 256]}     # optional: every variant × every combination

Each variant runs its full index phase (chunk → embed → index) into its own store under
``RAGKIT_HOME/indexes/eval/``; stores, chunk outputs (cached by chunker config and document
fingerprint in ``ragkit.cache``) and LLM/embedding calls are reused across variants and runs, so
swapping question sets re-chunks and re-embeds nothing. Results are written per variant as they
complete (``variants/*.json`` in the output directory); a rerun skips finished variants.

Protocols (ARCHITECTURE.md, *Evaluation*):

* ``chroma``: one collection pooled over the dataset's corpora, fixed k = 5, Chroma's arithmetic
  (:func:`ragkit.eval.metrics.chroma_span_scores`);
* ``budget``: candidates (default 100) through the ``token_budget`` selector (default B = 1000),
  span arithmetic on unions, plus evidence coverage and answer-in-context where the data has them;
* ``evidence``: hit@k, recall@k, all-gold-within-k, MRR and nDCG for ``k`` in a list (multi-hop);
* ``answer``: the full query phase (selector + aggregator/LLM) scored by EM / token F1 (needs an LLM).

Example:
    >>> exp = load_experiment({"dataset": "chroma_chunking_eval", "protocols": ["chroma"],
    ...                        "variants": [{"name": "tok", "set": {"index.chunker": {"type": "token"}}}]})
    >>> [v.name for v in exp.variants], list(exp.protocols)
    (['tok'], ['chroma'])
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import math
import os
import platform
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ragkit.errors import ConfigError, DatasetError
from ragkit.eval import metrics as M
from ragkit.eval.datasets import DATA_ENV, EvalDataset, EvalQuestion, Span, dataset_spec, load_dataset
from ragkit.types import Chunk, ScoredChunk, sha256_hex

PROTOCOLS: dict[str, dict[str, Any]] = {
    "chroma": {"k": 5},
    "budget": {"budget": 1000, "candidates": 100},
    "evidence": {"k": [1, 2, 5, 10], "rule": None},
    "answer": {},
}
PROTOCOL_PARAMS: dict[str, set[str]] = {"chroma": set(), "budget": {"budget", "candidates"},
                                        "evidence": {"k", "rule"}, "answer": set()}
DEFAULT_MATCH = {"target_tokens": 200, "tolerance": 0.10}
RESULT_FORMAT = 1

#: Defaults every evaluation base config starts from: no LLM is built unless a protocol needs one.
EVAL_BASE_DEFAULTS: dict[str, Any] = {"backends": {"llm": {"default": {"type": "fake"}}}}


# ---------------------------------------------------------------------------------------------- experiment
@dataclass
class Variant:
    """One configuration to evaluate: a name and the overrides that turn ``base`` into it."""

    name: str
    overrides: list[tuple[str, Any]] = field(default_factory=list)
    config: str | None = None  # a whole pipeline config replacing ``base`` (path)


@dataclass
class Experiment:
    """A parsed experiment file (see the module docstring)."""

    name: str
    datasets: list[dict[str, Any]]
    base: dict[str, Any]
    protocols: dict[str, dict[str, Any]]
    variants: list[Variant]
    match: dict[str, float] | None = field(default_factory=lambda: dict(DEFAULT_MATCH))
    data_root: str | None = None
    source: Path | None = None
    overrides: list[tuple[str, Any]] = field(default_factory=list)

    def variant_config(self, variant: Variant) -> dict[str, Any]:
        """The raw pipeline config of ``variant`` (base or its own file, its overrides, then ``--set``)."""
        from ragkit.config.load import apply_overrides

        base = _read_config(variant.config, self.source) if variant.config else self.base
        config = _deep_merge(EVAL_BASE_DEFAULTS, base)
        return apply_overrides(config, [*variant.overrides, *self.overrides])


def _deep_merge(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(a))
    for key, value in b.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read_config(ref: str | Mapping[str, Any] | None, source: Path | None) -> dict[str, Any]:
    if ref is None:
        return {}
    if isinstance(ref, Mapping):
        return copy.deepcopy(dict(ref))
    from ragkit.config.yaml_lines import load_yaml_file

    path = Path(ref).expanduser()
    if not path.is_absolute() and source is not None and not path.exists():
        path = source.parent / path
    if not path.is_file():
        raise ConfigError(f"base: config file {str(ref)!r} does not exist (looked next to the experiment file too); "
                          "give a pipeline config path or an inline mapping")
    data, _lines = load_yaml_file(path)
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: a pipeline config must be a mapping")
    return dict(data)


def _parse_set(items: Any, where: str) -> list[tuple[str, Any]]:
    from ragkit.config.load import parse_override

    if items is None:
        return []
    if isinstance(items, Mapping):
        return [(str(k), v) for k, v in items.items()]
    if isinstance(items, str):
        items = [items]
    if not isinstance(items, list):
        raise ConfigError(f"{where}: expected a mapping of dotted keys to values or a list of 'key=value' strings, "
                          f"got {items!r}")
    out = []
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"{where}: each override must be a 'key=value' string, got {item!r}")
        out.append(parse_override(item))
    return out


def parse_grid(items: Sequence[str] | Mapping[str, Any] | None) -> dict[str, list[Any]]:
    """``["index.chunker.max_tokens=128,256"]`` or ``{key: [values]}`` → ``{key: [values]}``.

    Example:
        >>> parse_grid(["index.chunker.max_tokens=128,256", "query.selector.k=5"])
        {'index.chunker.max_tokens': [128, 256], 'query.selector.k': [5]}
    """
    import yaml

    if not items:
        return {}
    if isinstance(items, Mapping):
        grid = {}
        for key, values in items.items():
            grid[str(key)] = list(values) if isinstance(values, (list, tuple)) else [values]
        return grid
    grid = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--grid {item!r}: expected KEY=V1,V2,... e.g. index.chunker.max_tokens=128,256,512")
        key, _, raw = item.partition("=")
        try:
            values = [yaml.safe_load(v) for v in raw.split(",") if v.strip()]
        except yaml.YAMLError as exc:
            raise ConfigError(f"--grid {item!r}: a value is not valid YAML ({exc})") from None
        if not values:
            raise ConfigError(f"--grid {item!r}: no values after '='")
        grid[key.strip()] = values
    return grid


def _expand_grid(variants: list[Variant], grid: Mapping[str, list[Any]]) -> list[Variant]:
    if not grid:
        return variants
    keys = list(grid)
    out = []
    for variant in variants:
        for combo in itertools.product(*(grid[k] for k in keys)):
            label = ",".join(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in zip(keys, combo))
            name = f"{variant.name}@{label}" if variant.name else label
            out.append(Variant(name, [*variant.overrides, *zip(keys, combo)], variant.config))
    return out


def _protocols(spec: Any) -> dict[str, dict[str, Any]]:
    if spec is None:
        spec = ["chroma", "budget"]
    if isinstance(spec, str):
        spec = [spec]
    if isinstance(spec, list):
        spec = {name: {} for name in spec}
    if not isinstance(spec, Mapping) or not spec:
        raise ConfigError(f"protocols: expected a list of names or a mapping name → parameters, got {spec!r}; "
                          f"protocols are {', '.join(PROTOCOLS)}")
    out = {}
    for name, params in spec.items():
        if name not in PROTOCOLS:
            raise ConfigError(f"protocols.{name}: unknown protocol {name!r}; allowed: {', '.join(PROTOCOLS)}")
        params = dict(params or {})
        unknown = set(params) - PROTOCOL_PARAMS[name]
        if unknown:
            allowed = ", ".join(sorted(PROTOCOL_PARAMS[name])) or "none (chroma's k = 5 is fixed)"
            raise ConfigError(f"protocols.{name}: unknown parameters {sorted(unknown)}; allowed: {allowed}")
        merged = {**PROTOCOLS[name], **params}
        if name == "evidence":
            ks = merged["k"] if isinstance(merged["k"], list) else [merged["k"]]
            if not ks or not all(isinstance(k, int) and k > 0 for k in ks):
                raise ConfigError(f"protocols.evidence.k: expected positive integers, got {merged['k']!r}")
            merged["k"] = sorted(set(ks))
            if merged["rule"] not in (None, "contain", "overlap"):
                raise ConfigError(f"protocols.evidence.rule: got {merged['rule']!r}; allowed: contain, overlap")
        if name == "budget":
            for key in ("budget", "candidates"):
                if not isinstance(merged[key], int) or merged[key] <= 0:
                    raise ConfigError(f"protocols.budget.{key}: expected a positive integer, got {merged[key]!r}")
        out[str(name)] = merged
    return out


def _match(spec: Any) -> dict[str, float] | None:
    if spec is False or spec is None:
        return None if spec is False else dict(DEFAULT_MATCH)
    if not isinstance(spec, Mapping) or set(spec) - {"target_tokens", "tolerance"}:
        raise ConfigError(f"match: expected {{target_tokens, tolerance}} or false, got {spec!r}")
    merged = {**DEFAULT_MATCH, **spec}
    if merged["target_tokens"] <= 0 or not 0 <= merged["tolerance"] < 1:
        raise ConfigError(f"match: target_tokens must be > 0 and tolerance in [0, 1), got {dict(spec)!r}")
    return {"target_tokens": float(merged["target_tokens"]), "tolerance": float(merged["tolerance"])}


EXPERIMENT_KEYS = {"name", "dataset", "data_root", "base", "protocols", "variants", "grid", "match", "description"}
PIPELINE_KEYS = {"version", "backends", "cache", "corpus", "index", "query", "output"}


def load_experiment(source: str | Path | Mapping[str, Any], *, grid: Sequence[str] = (), overrides: Sequence[str] = (),
                    name: str | None = None) -> Experiment:
    """Parse and check an experiment (a YAML path or a mapping); every variant's config is validated.

    A plain pipeline config is accepted too: its ``corpus.dataset`` is the dataset and it is the one
    variant (``--grid`` then makes the comparison).

    Raises:
        ConfigError: unknown keys, bad protocols, overrides or variant configs (all named by path).
    """
    from ragkit.config.load import load_config
    from ragkit.config.yaml_lines import load_yaml_file

    path: Path | None = None
    if isinstance(source, Mapping):
        data = copy.deepcopy(dict(source))
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"experiment file {str(path)!r} does not exist; give a YAML experiment "
                              "(dataset, base, protocols, variants) such as configs/eval/chroma-chunkers.yaml")
        data, _lines = load_yaml_file(path)
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path}: an experiment must be a YAML mapping")
        data = dict(data)
    if "dataset" not in data and set(data) <= PIPELINE_KEYS | {"data_root"}:
        dataset = (data.get("corpus") or {}).get("dataset")
        if not dataset:
            raise ConfigError(f"{path or '<config>'}: a pipeline config evaluated directly needs corpus.dataset")
        data = {"dataset": {"name": dataset, "subset": data["corpus"].get("subset")}, "base": data,
                "data_root": data.get("data_root"), "variants": [{"name": (path.stem if path else "config")}]}
    unknown = set(data) - EXPERIMENT_KEYS
    if unknown:
        raise ConfigError(f"experiment: unknown keys {sorted(unknown)}; allowed: {', '.join(sorted(EXPERIMENT_KEYS))}")
    if "dataset" not in data:
        raise ConfigError("experiment: 'dataset' is required (e.g. dataset: chroma_chunking_eval)")
    raw_sets = data["dataset"] if isinstance(data["dataset"], list) else [data["dataset"]]
    try:
        datasets = [dataset_spec(d) for d in raw_sets]
    except DatasetError as exc:
        raise ConfigError(str(exc)) from exc
    base = _read_config(data.get("base"), path)
    base.pop("corpus", None)  # the dataset provides the corpus
    variants = []
    for i, item in enumerate(data.get("variants") or [{"name": "base"}]):
        if not isinstance(item, Mapping) or "name" not in item:
            raise ConfigError(f"variants.{i}: expected a mapping with a 'name' (and 'set' overrides), got {item!r}")
        extra = set(item) - {"name", "set", "config"}
        if extra:
            raise ConfigError(f"variants.{i}: unknown keys {sorted(extra)}; allowed: name, set, config")
        variants.append(Variant(str(item["name"]), _parse_set(item.get("set"), f"variants.{i}.set"), item.get("config")))
    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ConfigError(f"variants: names must be unique, got {names}")
    variants = _expand_grid(variants, {**parse_grid(data.get("grid")), **parse_grid(list(grid))})
    experiment = Experiment(
        name=name or str(data.get("name") or (path.stem if path else "experiment")),
        datasets=datasets, base=base, protocols=_protocols(data.get("protocols")), variants=variants,
        match=_match(data.get("match", dict(DEFAULT_MATCH))), data_root=data.get("data_root") or base.get("data_root"),
        source=path, overrides=_parse_set(list(overrides), "--set"),
    )
    for variant in experiment.variants:
        try:
            load_config(experiment.variant_config(variant))
        except ConfigError as exc:
            raise ConfigError(f"variant {variant.name!r}: {exc}", getattr(exc, "problems", [])) from exc
    return experiment


# ---------------------------------------------------------------------------------------------- running
@dataclass
class EvalResult:
    """What :func:`run_experiment` produced: per-variant records, the output directory, the tables."""

    experiment: Experiment
    records: list[dict[str, Any]]
    output_dir: Path
    tables: dict[str, str]
    datasets: dict[str, dict[str, Any]]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text).strip("_")[:80] or "variant"


def _spans(scored: Sequence[ScoredChunk]) -> list[tuple[str, int, int]]:
    return [(s.chunk.doc_id, s.chunk.start, s.chunk.end) for s in scored]


def _agg(values: Sequence[float]) -> dict[str, float]:
    mean, std = M.mean_std(list(values))
    return {"mean": mean, "std": std, "n": len(values)}


def _n_relevant(chunks_by_doc: Mapping[str, list[Chunk]], gold: Sequence[Span]) -> int:
    relevant = set()
    for doc_id, start, end in gold:
        for chunk in chunks_by_doc.get(doc_id, ()):
            if chunk.start < end and start < chunk.end:
                relevant.add(chunk.id)
    return len(relevant)


class _Scorer:
    """Scores one indexed variant on one dataset partition under the experiment's protocols."""

    def __init__(self, pipe: Any, dataset: EvalDataset, protocols: Mapping[str, Mapping[str, Any]],
                 chunks: Sequence[Chunk], desc: str) -> None:
        self.pipe = pipe
        self.dataset = dataset
        self.protocols = protocols
        self.desc = desc
        self.source_of = {d.id: str(d.metadata.get("source_id")) for d in dataset.documents}
        self.chunks_by_doc: dict[str, list[Chunk]] = defaultdict(list)
        for chunk in chunks:
            self.chunks_by_doc[chunk.doc_id].append(chunk)

    def run(self) -> dict[str, Any]:
        from ragkit.usage import usage_scope

        needs = max([p.get("candidates", 0) for n, p in self.protocols.items() if n == "budget"]
                    + [max(p["k"]) for n, p in self.protocols.items() if n == "evidence"]
                    + [p["k"] for n, p in self.protocols.items() if n == "chroma"] + [1])
        per_q: dict[str, list[dict[str, Any]]] = defaultdict(list)
        latencies: list[float] = []
        budget_selector = None
        if "budget" in self.protocols:
            from ragkit.registry import default_registry

            budget_selector = default_registry().get("selector", "token_budget")(budget=self.protocols["budget"]["budget"])
        # Untimed first pass: query embeddings are computed in one batch (or read from the cache) here,
        # so the timed pass measures retrieval + selection the same way for every variant.
        with usage_scope() as query_usage:
            _warm_query_embeddings(self.pipe, [q.to_query() for q in self.dataset.questions])
            for q in tqdm(self.dataset.questions, desc=self.desc, unit="q", leave=False, disable=None):
                query = q.to_query()
                t0 = time.perf_counter()
                ranked = self.pipe.retrieve(query, k=needs)
                latencies.append(time.perf_counter() - t0)
                for name, params in self.protocols.items():
                    if name == "chroma":
                        per_q[name].append(self._chroma(q, ranked[: params["k"]]))
                    elif name == "budget":
                        t0 = time.perf_counter()
                        selected = budget_selector.select(query, ranked[: params["candidates"]])
                        latencies[-1] += time.perf_counter() - t0
                        per_q[name].append(self._budget(q, selected))
                    elif name == "evidence":
                        per_q[name].append(self._evidence(q, ranked, params))
                    elif name == "answer":
                        per_q[name].append(self._answer(q, query))
        out: dict[str, Any] = {name: self._summarise(name, rows) for name, rows in per_q.items()}
        out["_query"] = {"latency_p50_ms": M.percentile(latencies, 50) * 1000,
                         "latency_p95_ms": M.percentile(latencies, 95) * 1000,
                         "usage": query_usage.to_dict(), "questions": len(self.dataset.questions)}
        return out

    # ---------------------------------------------------------------- per question
    def _chroma(self, q: EvalQuestion, top: Sequence[ScoredChunk]) -> dict[str, Any]:
        if not q.gold_spans:
            return {"corpus": q.corpus, "skip": True}
        theirs = M.chroma_span_scores(_spans(top), q.gold_spans)
        ours = M.span_scores(_spans(top), q.gold_spans)
        return {"corpus": q.corpus, "recall": theirs.recall, "precision": theirs.precision, "iou": theirs.iou,
                "union_recall": ours.recall, "union_precision": ours.precision, "union_iou": ours.iou}

    def _budget(self, q: EvalQuestion, selected: Sequence[ScoredChunk]) -> dict[str, Any]:
        row: dict[str, Any] = {"corpus": q.corpus, "selected_chunks": len(selected),
                               "selected_tokens": sum(s.chunk.token_count for s in selected)}
        if q.gold_spans:
            s = M.span_scores(_spans(selected), q.gold_spans)
            ranks = M.covered_ranks(_spans(selected), q.gold_spans, self.dataset.hit_rule)  # type: ignore[arg-type]
            row.update(recall=s.recall, precision=s.precision, iou=s.iou,
                       evidence_recall=M.recall_at_k(ranks, len(selected)),
                       all_gold=M.all_within_k(ranks, len(selected)))
        if q.answers:
            context = "\n\n".join(s.chunk.text for s in selected)
            row["answer_in_context"] = M.answer_in_context(context, q.answers)
        return row

    def _evidence(self, q: EvalQuestion, ranked: Sequence[ScoredChunk], params: Mapping[str, Any]) -> dict[str, Any]:
        if not q.gold_spans:
            return {"corpus": q.corpus, "skip": True}
        rule = params.get("rule") or self.dataset.hit_rule
        spans = _spans(ranked)
        ranks = M.covered_ranks(spans, q.gold_spans, rule)
        relevance = M.chunk_relevance(spans, q.gold_spans)
        n_rel = _n_relevant(self.chunks_by_doc, q.gold_spans)
        kmax = max(params["k"])
        row: dict[str, Any] = {"corpus": q.corpus, "mrr": M.mrr(ranks, kmax), f"ndcg@{kmax}":
                               M.ndcg_at_k(relevance, kmax, n_rel)}
        passages = M.passage_ranks([self.source_of.get(s.chunk.doc_id, "") for s in ranked],
                                   list(q.gold_passages)) if q.gold_passages else []
        for k in params["k"]:
            row[f"hit@{k}"] = M.hit_at_k(ranks, k)
            row[f"recall@{k}"] = M.recall_at_k(ranks, k)
            row[f"all@{k}"] = M.all_within_k(ranks, k)
            if passages:
                row[f"passage_recall@{k}"] = M.recall_at_k(passages, k)
            if q.answers:
                row[f"answer_in_context@{k}"] = M.answer_in_context("\n\n".join(s.chunk.text for s in ranked[:k]),
                                                                    q.answers)
        return row

    def _answer(self, q: EvalQuestion, query: Any) -> dict[str, Any]:
        answer = self.pipe.query(query)
        context = "\n\n".join(s.chunk.text for s in answer.chunks)
        row = {"corpus": q.corpus, "llm_calls": answer.usage.llm_calls,
               "prompt_tokens": answer.usage.prompt_tokens, "completion_tokens": answer.usage.completion_tokens}
        if q.answers:
            row.update(em=M.exact_match(answer.text, q.answers), f1=M.token_f1(answer.text, q.answers),
                       answer_in_context=M.answer_in_context(context, q.answers))
        return row

    # ---------------------------------------------------------------- aggregation
    @staticmethod
    def _summarise(name: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
        scored = [r for r in rows if not r.get("skip")]
        keys = sorted({k for r in scored for k, v in r.items() if isinstance(v, (int, float)) and k != "corpus"})
        overall = {k: _agg([r[k] for r in scored if k in r]) for k in keys}
        per_corpus: dict[str, dict[str, Any]] = {}
        for corpus in dict.fromkeys(r["corpus"] for r in scored):
            sub = [r for r in scored if r["corpus"] == corpus]
            per_corpus[corpus] = {k: _agg([r[k] for r in sub if k in r]) for k in keys}
        return {"questions": len(rows), "scored": len(scored), "skipped_without_gold": len(rows) - len(scored),
                "overall": overall, "per_corpus": per_corpus}


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


def _index_variant(config: Mapping[str, Any], dataset: EvalDataset, part: str, rebuild: bool) -> tuple[Any, dict[str, Any]]:
    """Build (or reuse) the variant's index on ``dataset``; return the pipeline and the index cost."""
    from ragkit.paths import indexes_dir
    from ragkit.pipeline import Pipeline

    probe = Pipeline.from_config(config)
    store = indexes_dir() / "eval" / f"{_slug(dataset.name)}-{_slug(part)}-{dataset.documents_fingerprint()[:10]}-{probe.index_hash()}"
    pipe = Pipeline.from_config(config, [("index.store", str(store))])
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
                mean_chars=sizes.mean_chars, max_tokens=max(tokens, default=0))
    return pipe, cost


def _variant_key(config: Mapping[str, Any], dataset: EvalDataset, protocols: Mapping[str, Any]) -> str:
    from ragkit import __version__

    return sha256_hex(RESULT_FORMAT, __version__, config, dataset.fingerprint(), protocols)[:20]


def _machine() -> dict[str, Any]:
    return {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine()}


def run_experiment(experiment: Experiment | str | Path | Mapping[str, Any], *, out: str | Path | None = None,
                   data_root: str | Path | None = None, limit: int | None = None, force: bool = False,
                   rebuild: bool = False, only: Sequence[str] = (), echo: Callable[[str], None] | None = print,
                   plots: bool = True) -> EvalResult:
    """Run every variant of ``experiment`` and write ``results.json``, ``results.md`` and plots into ``out``.

    Args:
        experiment: an :class:`Experiment` or what :func:`load_experiment` accepts.
        out: output directory (default ``runs/eval/<experiment name>``).
        data_root: the ``--data-root`` (beats ``$RAGKIT_DATA`` and the experiment's ``data_root``).
        limit: at most this many questions per corpus (quick runs; results are keyed by it).
        force: recompute variants whose results already exist in ``out``.
        rebuild: rebuild indexes instead of reusing stored ones (caches still apply).
        only: run only the variants with these names.
        echo: where tables go (``print``; ``None`` for silence).
        plots: write matplotlib plots.
    """
    exp = experiment if isinstance(experiment, Experiment) else load_experiment(experiment)
    with _data_root_for_stages(data_root):
        return _run_experiment(exp, out=out, data_root=data_root, limit=limit, force=force, rebuild=rebuild,
                               only=only, echo=echo, plots=plots)


@contextlib.contextmanager
def _data_root_for_stages(data_root: str | Path | None) -> Iterator[None]:
    """Let ``--data-root`` reach stages that load datasets themselves (e.g. ``intent``'s ``intents_dataset``).

    Such stages resolve the root through ``$RAGKIT_DATA``, which ``--data-root`` outranks anyway, so the
    variable is set for the run and restored afterwards.
    """
    if data_root is None:
        yield
        return
    previous = os.environ.get(DATA_ENV)
    os.environ[DATA_ENV] = str(data_root)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(DATA_ENV, None)
        else:
            os.environ[DATA_ENV] = previous


def _run_experiment(exp: Experiment, *, out: str | Path | None, data_root: str | Path | None, limit: int | None,
                    force: bool, rebuild: bool, only: Sequence[str], echo: Callable[[str], None] | None,
                    plots: bool) -> EvalResult:
    from ragkit.config.load import load_config
    from ragkit.store.atomic import atomic_write_json

    out_dir = Path(out) if out is not None else Path("runs") / "eval" / _slug(exp.name)
    (out_dir / "variants").mkdir(parents=True, exist_ok=True)
    variants = [v for v in exp.variants if not only or v.name in only]
    if only and not variants:
        raise ConfigError(f"--variant {list(only)}: no such variant; variants are {', '.join(v.name for v in exp.variants)}")
    records: list[dict[str, Any]] = []
    summaries: dict[str, dict[str, Any]] = {}
    for spec in exp.datasets:
        dataset = load_dataset(spec["name"], data_root=data_root, subset=spec["subset"],
                               config_data_root=exp.data_root, limit=limit or spec.get("limit"))
        summaries[dataset.name] = dataset.summary()
        partitions = dataset.partitions()
        jobs = [(v, part, sub) for v in variants for part, sub in partitions]
        for variant, part, sub in tqdm(jobs, desc=f"eval {exp.name}", unit="variant", disable=None):
            config = load_config(exp.variant_config(variant))
            key = _variant_key(config, sub, exp.protocols)
            path = out_dir / "variants" / f"{_slug(dataset.name)}--{_slug(part)}--{_slug(variant.name)}.json"
            if path.is_file() and not force:
                cached = json.loads(path.read_text(encoding="utf-8"))
                if cached.get("key") == key:
                    records.append(cached)
                    continue
            pipe, cost = _index_variant(config, sub, part, rebuild)
            scored = _Scorer(pipe, sub, exp.protocols, list(pipe.retriever.chunks_ or []),
                             f"{variant.name} [{part}]").run()
            query_info = scored.pop("_query")
            cost.update(latency_p50_ms=query_info["latency_p50_ms"], latency_p95_ms=query_info["latency_p95_ms"],
                        query_usage=query_info["usage"])
            record = {
                "key": key, "variant": variant.name, "dataset": dataset.name, "partition": part,
                "chunker": config["index"]["chunker"], "retriever": config["index"]["retriever"]["type"],
                "embedder": config["index"]["embedder"], "config": config, "cost": cost,
                "match": _match_status(cost["mean_tokens"], exp.match), "protocols": scored,
                "questions": len(sub.questions), "completed_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            }
            atomic_write_json(path, record)
            records.append(record)
    tables = render_tables(exp, records)
    if echo is not None:
        for title, table in tables.items():
            echo(f"protocol: {title.split(' ', 1)[0]}")
            echo(table)
            echo("")
    results = {"experiment": exp.name, "source": str(exp.source) if exp.source else None,
               "protocols": exp.protocols, "match": exp.match, "datasets": summaries, "limit": limit,
               "machine": _machine(), "records": records, "written_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    atomic_write_json(out_dir / "results.json", results)
    (out_dir / "results.md").write_text(render_markdown(exp, tables, summaries, limit), encoding="utf-8")
    if plots and records:
        write_plots(records, out_dir)
    return EvalResult(exp, records, out_dir, tables, summaries)


def _match_status(mean_tokens: float, match: Mapping[str, float] | None) -> dict[str, Any] | None:
    if not match:
        return None
    target, tol = match["target_tokens"], match["tolerance"]
    return {"target_tokens": target, "tolerance": tol, "ok": abs(mean_tokens - target) <= tol * target}


# ---------------------------------------------------------------------------------------------- reports
def _pct(stat: Mapping[str, float] | None, std: bool = True) -> str:
    if not stat or stat.get("n", 0) == 0:
        return "–"
    text = f"{100 * stat['mean']:.1f}"
    return f"{text} ± {100 * stat['std']:.1f}" if std else text


def _num(value: float, digits: int = 1) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
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
    """One Markdown table per (protocol, dataset partition), keyed ``"<protocol> <dataset>/<partition>"``."""
    tables: dict[str, str] = {}
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for r in records:
        groups[(r["dataset"], r["partition"])].append(r)
    for name, params in exp.protocols.items():
        for (ds, part), rows in groups.items():
            body = []
            if name == "chroma":
                header = ["variant", "chunker", "chunks", "tokens mean ± std", "recall %", "precision %", "IoU %",
                          "index s"]
                for r in rows:
                    p = r["protocols"]["chroma"]["overall"]
                    body.append([r["variant"], r["chunker"]["type"], *_size_cells(r), _pct(p.get("recall")),
                                 _pct(p.get("precision")), _pct(p.get("iou")), _num(r["cost"]["index_seconds"])])
            elif name == "budget":
                header = ["variant", "chunker", "chunks", "tokens mean ± std", "sel. chunks", "sel. tokens",
                          "recall %", "precision %", "IoU %", "all-gold %", "answer-in-ctx %", "p50 ms"]
                for r in rows:
                    p = r["protocols"]["budget"]["overall"]
                    body.append([r["variant"], r["chunker"]["type"], *_size_cells(r),
                                 _num(p.get("selected_chunks", {}).get("mean", float("nan"))),
                                 _num(p.get("selected_tokens", {}).get("mean", float("nan")), 0),
                                 _pct(p.get("recall")), _pct(p.get("precision")), _pct(p.get("iou")),
                                 _pct(p.get("all_gold"), std=False), _pct(p.get("answer_in_context"), std=False),
                                 _num(r["cost"]["latency_p50_ms"])])
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
                                 _num(p.get("mrr", {}).get("mean", float("nan")), 3),
                                 _num(p.get(f"ndcg@{kmax}", {}).get("mean", float("nan")), 3)])
            else:  # answer
                header = ["variant", "chunker", "chunks", "tokens mean ± std", "EM %", "F1 %", "answer-in-ctx %",
                          "LLM calls"]
                for r in rows:
                    p = r["protocols"]["answer"]["overall"]
                    body.append([r["variant"], r["chunker"]["type"], *_size_cells(r), _pct(p.get("em"), std=False),
                                 _pct(p.get("f1"), std=False), _pct(p.get("answer_in_context"), std=False),
                                 _num(r["cost"]["query_usage"].get("llm_calls", 0), 0)])
            label = ds if part == "all" else f"{ds}/{part}"
            tables[f"{name} {label}"] = f"dataset: {label}\n" + _table(header, body)
    return tables


def render_markdown(exp: Experiment, tables: Mapping[str, str], datasets: Mapping[str, Any], limit: int | None) -> str:
    """The Markdown report: what was run, then each table under its ``protocol: NAME`` line."""
    lines = [f"# {exp.name}", ""]
    for name, summary in datasets.items():
        excluded = summary.get("excluded") or {}
        lines.append(f"- dataset `{name}`: {summary['questions']} questions ({summary['questions_with_gold_spans']} "
                     f"with gold spans), {summary['documents']} documents, {summary['characters']:,} characters"
                     + (f"; excluded: {json.dumps(excluded)}" if excluded else ""))
    if limit:
        lines.append(f"- reduced run: at most {limit} questions per corpus")
    if exp.match:
        lines.append(f"- chunk sizes matched at {exp.match['target_tokens']:.0f} ± {100 * exp.match['tolerance']:.0f} % "
                     "MiniLM tokens; ⚠ marks variants outside")
    lines.append("- percentages are mean ± std over questions; Chroma's arithmetic for `chroma`, unions for `budget`")
    lines.append("")
    for title, table in tables.items():
        lines += [f"protocol: {title.split(' ', 1)[0]}", "", table, ""]
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
    """Quality vs mean chunk size and quality vs cost: one PNG per protocol and partition, one row per metric."""
    # The object API: no pyplot state and no backend switch, so notebooks keep their inline backend.
    from matplotlib.figure import Figure

    written = []
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for r in records:
        groups[(r["dataset"], r["partition"])].append(r)
    for (ds, part), rows in groups.items():
        label = _slug(ds if part == "all" else f"{ds}-{part}")
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
