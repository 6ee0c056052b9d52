"""The pipeline: named slots, run in a fixed order.

Index phase: ``load → chunk → (enrich) → embed → index → persist``.
Query phase: ``retrieve → (rerank) → select → aggregate → Answer``.

Example:
    >>> from ragkit import Pipeline
    >>> pipe = Pipeline.from_config({
    ...     "backends": {"llm": {"default": {"type": "fake"}}, "embeddings": {"default": {"type": "fake"}}},
    ...     "index": {"chunker": {"type": "sentence", "max_tokens": 32}, "retriever": {"type": "bm25"},
    ...               "store": None},
    ... })
    >>> report = pipe.index([Document.from_text("Paris is in France. Rome is in Italy.")])
    >>> pipe.query("Where is Rome?").chunks[0].chunk.text
    'Rome is in Italy.'
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ragkit.cache import set_default_cache_mode
from ragkit.config.load import BACKEND_KIND_BY_SECTION, load_config
from ragkit.errors import RagkitError, StageError
from ragkit.registry import Registry, default_registry
from ragkit.stage import collaborator_params, source_fingerprint
from ragkit.types import Answer, Document, Query, ScoredChunk, Usage, sha256_hex  # noqa: F401
from ragkit.usage import usage_scope

INDEX_SECTIONS = ("chunker", "enrichers", "embedder", "retriever")


@dataclass
class IndexReport:
    """What an index run did."""

    documents: int = 0
    chunks: int = 0
    documents_processed: int = 0
    documents_removed: int = 0
    reused: bool = False
    store: str | None = None
    usage: dict[str, Usage] = field(default_factory=dict)
    seconds: float = 0.0


class Pipeline:
    """A configured RAG pipeline. Build it with :meth:`from_yaml` or :meth:`from_config`."""

    def __init__(self, config: Mapping[str, Any], registry: Registry | None = None, *, name: str = "config",
                 base_dir: str | Path | None = None) -> None:
        self.config = copy.deepcopy(dict(config))
        self.registry = registry or default_registry()
        self.name = name
        self.base_dir = Path(base_dir) if base_dir is not None else Path.cwd()
        self._backends: dict[tuple[str, str], Any] = {}
        self._stages: dict[str, Any] = {}
        self.retriever_: Any = None
        self.stage_usage: dict[str, Usage] = {}
        self.data_root: str | Path | None = None  # explicit data root (``--data-root``), beats $RAGKIT_DATA
        set_default_cache_mode(self.config["cache"]["mode"])

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_yaml(cls, path: str | Path, overrides: Sequence[str] = (), registry: Registry | None = None) -> Pipeline:
        """Load a YAML config (``overrides`` are ``--set``-style ``"a.b=value"`` strings)."""
        config = load_config(path, overrides, registry)
        return cls(config, registry, name=Path(path).stem)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], overrides: Sequence[str] = (),
                    registry: Registry | None = None, name: str = "config") -> Pipeline:
        """Build from a (possibly partial) config mapping; defaults are filled in."""
        return cls(load_config(config, overrides, registry), registry, name=name)

    def to_config(self) -> dict[str, Any]:
        """The normalised config: ``from_config(p.to_config()).to_config() == p.to_config()``."""
        return copy.deepcopy(self.config)

    def backend(self, section: str, ref: Any) -> Any:
        """The backend instance for a reference: a name under ``backends.<section>``, an inline spec, or an instance."""
        kind = BACKEND_KIND_BY_SECTION[section]
        if isinstance(ref, str):
            key = (section, ref)
            if key not in self._backends:
                spec = self.config["backends"][section][ref]
                self._backends[key] = self._build(kind, spec)
            return self._backends[key]
        if isinstance(ref, Mapping):
            key = (section, sha256_hex(ref))
            if key not in self._backends:
                self._backends[key] = self._build(kind, ref)
            return self._backends[key]
        return ref

    def _build(self, kind: str, spec: Mapping[str, Any], **inject: Any) -> Any:
        cls = self.registry.get(kind, spec["type"])
        params = {k: v for k, v in spec.items() if k != "type"}
        for name, ref_kind in collaborator_params(cls).items():
            if name in params:
                section = "llm" if ref_kind == "llm" else "embeddings"
                params[name] = self.backend(section, params[name])
        for name, value in inject.items():
            if name in params or name in collaborator_params(cls):
                params[name] = value
        instance = cls(**params)
        return _wrap_llm(instance) if kind == "llm" else instance  # cache, usage, structured-output retries

    def _stage(self, slot: str) -> Any:
        if slot not in self._stages:
            section, key = slot.split(".")
            spec = self.config[section][key]
            kind = {"chunker": "chunker", "retriever": "retriever", "reranker": "reranker",
                    "selector": "selector", "aggregator": "aggregator"}[key]
            if spec is None:
                self._stages[slot] = None
            elif key == "retriever":
                embedder = self.backend("embeddings", self.config["index"]["embedder"])
                explicit = spec.get("embedder") if isinstance(spec, Mapping) else None
                inject = {} if explicit not in (None, "default") else {"embedder": embedder}
                self._stages[slot] = self._build(kind, spec, **inject)
            else:
                self._stages[slot] = self._build(kind, spec)
        return self._stages[slot]

    @property
    def chunker(self) -> Any:
        return self._stage("index.chunker")

    @property
    def enrichers(self) -> list[Any]:
        if "index.enrichers" not in self._stages:
            self._stages["index.enrichers"] = [self._build("enricher", s) for s in self.config["index"]["enrichers"]]
        return self._stages["index.enrichers"]

    @property
    def embedder(self) -> Any:
        return self.backend("embeddings", self.config["index"]["embedder"])

    @property
    def retriever(self) -> Any:
        return self.retriever_ if self.retriever_ is not None else self._stage("index.retriever")

    @property
    def reranker(self) -> Any:
        return self._stage("query.reranker")

    @property
    def selector(self) -> Any:
        return self._stage("query.selector")

    @property
    def aggregator(self) -> Any:
        return self._stage("query.aggregator")

    # ----------------------------------------------------------------- index phase
    def index_config(self) -> dict[str, Any]:
        """The part of the config that determines the index (its hash names and verifies the store)."""
        index = {k: self.config["index"][k] for k in INDEX_SECTIONS}
        used: dict[str, dict[str, Any]] = {"llm": {}, "embeddings": {}}

        def note(section: str, ref: Any) -> None:
            if isinstance(ref, str):
                used[section][ref] = self.config["backends"][section][ref]

        note("embeddings", index["embedder"])
        code: dict[str, str] = {}

        def fingerprint(kind: str, spec: Any) -> None:
            if isinstance(spec, Mapping) and isinstance(spec.get("type"), str):
                digest = source_fingerprint(self.registry.get(kind, spec["type"]))
                if digest is not None:
                    code[f"{kind}:{spec['type']}"] = digest

        for kind, spec in [("chunker", index["chunker"]), ("retriever", index["retriever"]),
                           *[("enricher", s) for s in index["enrichers"]]]:
            cls = self.registry.get(kind, spec["type"])
            fingerprint(kind, spec)
            for param, ref_kind in collaborator_params(cls).items():
                note("llm" if ref_kind == "llm" else "embeddings", spec.get(param))
        if isinstance(index["embedder"], Mapping):
            fingerprint("embedder", index["embedder"])
        for section, specs in used.items():
            for spec in specs.values():
                fingerprint(BACKEND_KIND_BY_SECTION[section], spec)
        config = {"index": index, "backends": used}
        if code:  # plugin stages only: ragkit's own are covered by its version (see source_fingerprint)
            config["code"] = code
        return config

    def index_hash(self) -> str:
        return sha256_hex(self.index_config())[:16]

    def load_documents(self, sources: Iterable[str | Path | Document] | None = None) -> list[Document]:
        """Documents from ``sources`` (paths, globs, Documents) or from the config's corpus section."""
        from ragkit.loaders import load_corpus

        spec = self.config["corpus"] if sources is None else sources
        data_root = None
        if isinstance(spec, Mapping) and spec.get("dataset"):
            from ragkit.eval.datasets import resolve_data_root

            # precedence: explicit (self.data_root, e.g. --data-root) > $RAGKIT_DATA > config data_root > default
            data_root = resolve_data_root(self.data_root, self.config.get("data_root"))
        return load_corpus(spec, base_dir=self.base_dir, data_root=data_root)

    def index(self, sources: Iterable[str | Path | Document] | None = None, *, rebuild: bool = False) -> IndexReport:
        """Run the index phase: load, chunk, enrich, embed, index and persist (incrementally)."""
        from ragkit.store.indexer import run_index_phase

        start = time.perf_counter()
        with self._timed("index.load"):
            docs = self.load_documents(sources)
        report = run_index_phase(self, docs, rebuild=rebuild)
        report.seconds = time.perf_counter() - start
        return report

    # ----------------------------------------------------------------- query phase
    def retrieve(self, query: Query | str, k: int | None = None, filter: Mapping[str, Any] | None = None) -> list[ScoredChunk]:
        query = _as_query(query)
        self._require_index()
        k = k or self.config["query"]["retrieve"]["k"]
        filter = filter if filter is not None else self.config["query"]["retrieve"]["filter"]
        with self._timed("query.retrieve"):
            return self._run("query.retrieve", lambda: self.retriever.retrieve(query, k=k, filter=filter))

    def query(self, query: Query | str, *, filter: Mapping[str, Any] | None = None, k: int | None = None) -> Answer:
        """Answer one question: retrieve → (rerank) → select → aggregate."""
        query = _as_query(query)
        trace: dict[str, Any] = {}
        with usage_scope() as total:
            t0 = time.perf_counter()
            candidates = self.retrieve(query, k=k, filter=filter)
            trace["retrieve_s"] = time.perf_counter() - t0
            trace["candidates"] = len(candidates)
            if self.reranker is not None:
                t0 = time.perf_counter()
                with self._timed("query.reranker"):
                    candidates = self._run("query.reranker", lambda: self.reranker.rerank(query, candidates))
                trace["rerank_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            with self._timed("query.selector"):
                selected = self._run("query.selector", lambda: self.selector.select(query, candidates))
            trace["select_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            with self._timed("query.aggregator"):
                answer = self._run("query.aggregator", lambda: self.aggregator.aggregate(query, selected))
            trace["aggregate_s"] = time.perf_counter() - t0
        return replace(answer, usage=total, trace={**answer.trace, **trace})

    # ----------------------------------------------------------------- helpers
    def _require_index(self) -> None:
        if self.retriever_ is None:
            from ragkit.store.indexer import open_existing_index

            self.retriever_ = open_existing_index(self)

    def _timed(self, slot: str) -> Any:
        pipeline = self

        class _Scope:
            def __enter__(self) -> Usage:
                self._cm = usage_scope()
                self.usage = self._cm.__enter__()
                return self.usage

            def __exit__(self, *exc: Any) -> None:
                self._cm.__exit__(*exc)
                pipeline.stage_usage[slot] = pipeline.stage_usage.get(slot, Usage()) + self.usage

        return _Scope()

    def _run(self, slot: str, fn: Any) -> Any:
        try:
            return fn()
        except RagkitError:
            raise
        except Exception as exc:
            section, _, key = slot.partition(".")
            spec = self.config.get(section, {}).get(key) if section in ("index", "query") else None
            type_name = spec.get("type", "?") if isinstance(spec, Mapping) else key
            raise StageError(slot, type_name, f"{type(exc).__name__}: {exc}") from exc

    def run_usage(self) -> Usage:
        total = Usage()
        for usage in self.stage_usage.values():
            total = total + usage
        return total


def _wrap_llm(backend: Any) -> Any:
    from ragkit.llm.cached import wrap_llm

    return wrap_llm(backend)


def _as_query(query: Query | str) -> Query:
    return query if isinstance(query, Query) else Query.from_text(query)
