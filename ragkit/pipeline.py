"""The pipeline: named slots, run in a fixed order.

Index phase: ``load → chunk → (enrich) → (tree) → embed → index → persist`` (:mod:`ragkit.indexing`).
Query phase: ``retrieve → (rerank) → select (one selector or a chain) → aggregate → Answer``.

The pipeline builds every stage from its config, injects the collaborators each one declares
(LLM and embedding backends, wrapped by the one backend policy in :mod:`ragkit.backends`), and
owns a :class:`~ragkit.runtime.Runtime` (registry, cache mode, data root) instead of process-wide
settings. ``Answer.trace`` records what each query stage did (``trace["stages"]``, one entry per slot
and per selector link).

Example:
    >>> from ragkit import Pipeline
    >>> pipe = Pipeline.from_config({
    ...     "backends": {"llm": {"default": {"type": "fake"}}, "embeddings": {"default": {"type": "fake"}}},
    ...     "index": {"chunker": {"type": "sentence", "max_tokens": 6}, "retriever": {"type": "bm25"},
    ...               "store": ":memory:"},
    ... })
    >>> report = pipe.index([Document.from_text("Paris is in France. Rome is in Italy.")])
    >>> pipe.query("Where is Rome?").chunks[0].chunk.text
    'Rome is in Italy.'
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ragkit import indexing
from ragkit.backends import build_backend
from ragkit.config.load import BACKEND_KIND_BY_SECTION, load_config
from ragkit.context import QueryContext, context_needs
from ragkit.indexing import IndexReport, IndexStages  # noqa: F401  (IndexReport: public name)
from ragkit.registry import Registry, default_registry
from ragkit.runtime import Runtime
from ragkit.stage import call_stage, collaborator_params, nested_stage_params
from ragkit.types import Answer, Chunk, Document, Query, ScoredChunk, Usage, sha256_hex  # noqa: F401
from ragkit.usage import UsageBook, usage_scope

INDEX_SECTIONS = indexing.INDEX_SECTIONS
STAGE_KIND = {"chunker": "chunker", "retriever": "retriever", "tree": "tree", "reranker": "reranker",
              "selector": "selector", "aggregator": "aggregator"}


class Pipeline:
    """A configured RAG pipeline. Build it with :meth:`from_yaml` or :meth:`from_config`."""

    def __init__(self, config: Mapping[str, Any], registry: Registry | None = None, *, name: str = "config",
                 base_dir: str | Path | None = None, data_root: str | Path | None = None) -> None:
        self.config = copy.deepcopy(dict(config))
        self.registry = registry or default_registry()
        self.name = name
        self.base_dir = Path(base_dir) if base_dir is not None else Path.cwd()
        self.runtime = Runtime(registry=self.registry, cache_mode=self.config["cache"]["mode"], data_root=data_root,
                               config_data_root=self.config.get("data_root"))
        self._backends: dict[tuple[str, str], Any] = {}
        self._stages: dict[str, Any] = {}
        self.retriever_: Any = None
        self.trees_: dict[str, Any] | None = None
        self.usage_book = UsageBook()

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

    def fork(self, config: Mapping[str, Any] | None = None) -> Pipeline:
        """A pipeline with its own stages and index that shares this one's loaded backends.

        ``config`` (normalised, e.g. from :func:`ragkit.config.load.load_config`) defaults to this
        pipeline's; backends are shared only when its ``backends`` section is the same. ``ragkit serve``
        indexes into a fork while readers keep querying the committed pipeline.

        Example:
            >>> pipe = Pipeline.from_config({"backends": {"embeddings": {"default": {"type": "fake"}}}})
            >>> twin = pipe.fork()
            >>> twin.embedder is pipe.embedder, twin.retriever is pipe.retriever
            (True, False)
        """
        twin = Pipeline(self.config if config is None else config, self.registry, name=self.name,
                        base_dir=self.base_dir, data_root=self.runtime.data_root)
        if twin.config["backends"] == self.config["backends"]:
            twin._backends = self._backends
        return twin

    def to_config(self) -> dict[str, Any]:
        """The normalised config: ``from_config(p.to_config()).to_config() == p.to_config()``."""
        return copy.deepcopy(self.config)

    @property
    def data_root(self) -> str | Path | None:
        """The explicit data root (``--data-root``); it beats ``$RAGKIT_DATA`` and the config's ``data_root``."""
        return self.runtime.data_root

    @data_root.setter
    def data_root(self, value: str | Path | None) -> None:
        self.runtime.data_root = value

    @property
    def stage_usage(self) -> dict[str, Usage]:
        """Usage per slot over this pipeline's life."""
        return self.usage_book.slots

    def backend(self, section: str, ref: Any) -> Any:
        """The backend instance for a reference: a name under ``backends.<section>``, an inline spec, or an instance."""
        kind = BACKEND_KIND_BY_SECTION[section]
        if isinstance(ref, str):
            key = (section, ref)
            if key not in self._backends:
                self._backends[key] = self._build(kind, self.config["backends"][section][ref])
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
                params[name] = self.backend("llm" if ref_kind == "llm" else "embeddings", params[name])
        for name, stage_kind in nested_stage_params(cls).items():
            value = params.get(name)
            if isinstance(value, str):
                value = {"type": value}
            if isinstance(value, Mapping):
                params[name] = self._build(stage_kind, value)  # nested stages get the config's backends too
        for name, value in inject.items():
            if name in params or name in collaborator_params(cls):
                params[name] = value
        if kind in ("llm", "embedder"):
            return build_backend(kind, {"type": spec["type"]}, self.registry, cache_mode=self.runtime.cache_mode,
                                 **params)
        instance = cls(**params)
        bind = getattr(instance, "bind_runtime", None)
        if callable(bind):
            bind(self.runtime)
        return instance

    def _stage(self, slot: str) -> Any:
        if slot not in self._stages:
            section, key = slot.split(".")
            spec = self.config[section].get(key)
            kind = STAGE_KIND[key]
            if spec is None:
                self._stages[slot] = None
            elif key == "retriever":
                embedder = self.backend("embeddings", self.config["index"]["embedder"])
                explicit = spec.get("embedder") if isinstance(spec, Mapping) else None
                inject = {} if explicit not in (None, "default") else {"embedder": embedder}
                self._stages[slot] = self._build(kind, spec, **inject)
            elif isinstance(spec, list):
                self._stages[slot] = [self._build(kind, link) for link in spec]
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
    def tree_builder(self) -> Any:
        return self._stage("index.tree")

    @property
    def reranker(self) -> Any:
        return self._stage("query.reranker")

    @property
    def selectors(self) -> list[Any]:
        """The selector chain (one element for a single selector)."""
        chain = self._stage("query.selector")
        return list(chain) if isinstance(chain, list) else [chain]

    @property
    def selector(self) -> Any:
        """The selector (the first link of a chain)."""
        return self.selectors[0]

    @property
    def aggregator(self) -> Any:
        return self._stage("query.aggregator")

    # ----------------------------------------------------------------- index phase
    def index_config(self) -> dict[str, Any]:
        """The part of the config that determines the index (its hash names and verifies the store)."""
        return indexing.index_config(self.config, self.registry)

    def index_hash(self) -> str:
        return indexing.index_hash(self.config, self.registry)

    def chunking_hash(self) -> str:
        return indexing.chunking_hash(self.config, self.registry)

    def corpus_key(self, sources: Any = None) -> str | None:
        """Identity of the corpus being indexed (``sources`` when given, else the config's ``corpus``)."""
        return indexing.corpus_key(self.config["corpus"] if sources is None else sources, self.base_dir)

    def index_store(self, sources: Any = None) -> Any:
        """The :class:`~ragkit.store.store.IndexStore` of this config (``None`` for ``":memory:"``)."""
        return indexing.store_location(self.config["index"].get("store"), self.base_dir, self.index_hash(),
                                       self.corpus_key(sources))

    def index_stages(self) -> IndexStages:
        """The index-phase stages, built, for :func:`ragkit.indexing.run_index_phase`."""
        index = self.config["index"]
        return IndexStages(
            chunker=self.chunker, retriever=self._stage("index.retriever"), enrichers=self.enrichers,
            tree_builder=self.tree_builder, chunker_type=index["chunker"]["type"],
            enricher_types=[s["type"] for s in index["enrichers"]],
            tree_type=(index.get("tree") or {}).get("type", "?"), retriever_type=index["retriever"]["type"])

    def index_plan(self, sources: Any = None) -> indexing.IndexPlan:
        return indexing.IndexPlan(store=self.index_store(sources), index_hash=self.index_hash(),
                                  index_config=self.index_config(), chunking_hash=self.chunking_hash(),
                                  corpus_key=self.corpus_key(sources))

    def engine(self) -> Any:
        """The index engine of ``engine:`` in the config (``local`` by default)."""
        spec = dict(self.config.get("engine") or {"type": "local"})
        cls = self.registry.get("engine", spec.pop("type"), path="engine.type")
        engine = cls(**spec)
        bind = getattr(engine, "bind_pipeline", None)  # engines that rebuild stages elsewhere (ray) need the config
        if callable(bind):
            bind(self)
        return engine

    def load_documents(self, sources: Iterable[str | Path | Document] | None = None) -> list[Document]:
        """Documents from ``sources`` (paths, globs, Documents) or from the config's corpus section."""
        from ragkit.corpus import documents_from_spec

        spec = self.config["corpus"] if sources is None else sources
        return documents_from_spec(spec, base_dir=self.base_dir, data_root=self.runtime.data_root,
                                   config_data_root=self.runtime.config_data_root)

    def index(self, sources: Iterable[str | Path | Document] | None = None, *, rebuild: bool = False) -> IndexReport:
        """Run the index phase: load, chunk, enrich, (tree,) embed, index and persist (incrementally)."""
        start = time.perf_counter()
        with self.usage_book.timed("index.load"):
            docs = self.load_documents(sources)
        return self.index_documents(docs, rebuild=rebuild, started=start, sources=sources)

    def index_documents(self, docs: Sequence[Document], *, rebuild: bool = False,
                        started: float | None = None, sources: Any = None) -> IndexReport:
        """Run the index phase on already-loaded documents (``sources``: where they came from, if not the config's corpus)."""
        start = time.perf_counter() if started is None else started
        plan = self.index_plan(sources)
        result = indexing.run_index_phase(self.index_stages(), docs, plan, cache=self.runtime.cache(),
                                          engine=self.engine(), usage=self.usage_book, rebuild=rebuild)
        self.retriever_, self.trees_ = result.retriever, result.trees
        result.report.seconds = time.perf_counter() - start
        return result.report

    def open_index(self) -> IndexReport:
        """Load the persisted index of this config (verified); raises if there is none."""
        result = indexing.open_index(self.index_stages(), self.index_plan(), usage=self.usage_book)
        self.retriever_, self.trees_ = result.retriever, result.trees
        return result.report

    # ----------------------------------------------------------------- query phase
    def retrieve(self, query: Query | str, k: int | None = None, filter: Mapping[str, Any] | None = None) -> list[ScoredChunk]:
        query = _as_query(query)
        self._require_index()
        k = k or self.config["query"]["retrieve"]["k"]
        filter = filter if filter is not None else self.config["query"]["retrieve"]["filter"]
        with self.usage_book.timed("query.retrieve"):
            return self._call("query.retrieve", lambda: self.retriever.retrieve(query, k=k, filter=filter))

    def query_context(self, usage: Usage | None = None) -> QueryContext:
        """The read-only index view given to query stages that declare ``needs_context``."""
        self._require_index()
        return QueryContext(self.retriever.chunks_ or [], trees=self.trees_, embedder=self.embedder, usage=usage)

    def select(self, query: Query | str, *, filter: Mapping[str, Any] | None = None,
               k: int | None = None) -> list[ScoredChunk]:
        """The query phase without aggregation: retrieve → (rerank) → select (chain).

        What retriever adapters (LangChain, LlamaIndex) return: the chunks the aggregator would be given,
        in order, so selectors such as ``corag`` or ``meteora`` apply.

        Example:
            >>> pipe = Pipeline.from_config({
            ...     "backends": {"llm": {"default": {"type": "fake"}}, "embeddings": {"default": {"type": "fake"}}},
            ...     "index": {"chunker": {"type": "sentence", "max_tokens": 6}, "retriever": {"type": "bm25"},
            ...               "store": ":memory:"}, "query": {"selector": {"type": "top_k", "k": 1}}})
            >>> _ = pipe.index([Document.from_text("Paris is in France. Rome is in Italy.")])
            >>> [s.chunk.text for s in pipe.select("Where is Rome?")]
            ['Rome is in Italy.']
        """
        query = _as_query(query)
        with usage_scope() as total:
            selected, _ = self._select(query, k, filter, total, {}, [])
        return selected

    def _select(self, query: Query, k: int | None, filter: Mapping[str, Any] | None, total: Usage,
                trace: dict[str, Any], stages: list[dict[str, Any]]) -> tuple[list[ScoredChunk], Any]:
        """Retrieve, rerank and run the selector chain; returns the selected chunks and a context factory."""
        context: QueryContext | None = None

        def context_for(stage: Any) -> dict[str, Any]:
            nonlocal context
            if not context_needs(stage):
                return {}
            if context is None:
                context = self.query_context(total)
            return {"context": context}

        t0 = time.perf_counter()
        candidates = self.retrieve(query, k=k, filter=filter)
        trace["retrieve_s"] = time.perf_counter() - t0
        trace["candidates"] = len(candidates)
        stages.append({"slot": "query.retrieve", "ids": [s.chunk.id for s in candidates],
                       "seconds": trace["retrieve_s"]})
        if self.reranker is not None:
            t0 = time.perf_counter()
            with self.usage_book.timed("query.reranker"):
                candidates = self._call("query.reranker", lambda: self.reranker.rerank(query, candidates))
            trace["rerank_s"] = time.perf_counter() - t0
            stages.append({"slot": "query.reranker", "ids": [s.chunk.id for s in candidates],
                           "seconds": trace["rerank_s"]})
        t0 = time.perf_counter()
        selected = candidates
        chain = self.selectors
        for position, selector in enumerate(chain):
            slot = "query.selector" if len(chain) == 1 else f"query.selector.{position}"
            link_start = time.perf_counter()
            with self.usage_book.timed("query.selector"):
                previous = selected
                selected = self._call(slot, lambda s=selector, p=previous: s.select(query, p, **context_for(s)))
            entry: dict[str, Any] = {"slot": slot, "type": self._type_of(slot), "ids": [s.chunk.id for s in selected],
                                     "seconds": time.perf_counter() - link_start}
            details = selector.trace() if callable(getattr(selector, "trace", None)) else {}
            if details:
                entry["details"] = dict(details)
            stages.append(entry)
        trace["select_s"] = time.perf_counter() - t0
        return list(selected), context_for

    def query(self, query: Query | str, *, filter: Mapping[str, Any] | None = None, k: int | None = None) -> Answer:
        """Answer one question: retrieve → (rerank) → select (chain) → aggregate.

        With ``query.aggregator: null`` (retrieval only) the answer lists the selected chunks with their
        sources, offsets and scores (:func:`retrieval_only_answer`); no LLM is built or loaded.
        """
        query = _as_query(query)
        trace: dict[str, Any] = {}
        stages: list[dict[str, Any]] = []
        with usage_scope() as total:
            selected, context_for = self._select(query, k, filter, total, trace, stages)
            t0 = time.perf_counter()
            aggregator = self.aggregator
            if aggregator is None:  # retrieval only (query.aggregator: null): no LLM is built or called
                answer = retrieval_only_answer(selected)
            else:
                with self.usage_book.timed("query.aggregator"):
                    answer = self._call("query.aggregator",
                                        lambda: aggregator.aggregate(query, selected, **context_for(aggregator)))
            trace["aggregate_s"] = time.perf_counter() - t0
            stages.append({"slot": "query.aggregator", "ids": [s.chunk.id for s in answer.chunks],
                           "seconds": trace["aggregate_s"]})
        return replace(answer, usage=total, trace={**answer.trace, **trace, "stages": stages})

    # ----------------------------------------------------------------- helpers
    def _require_index(self) -> None:
        if self.retriever_ is None:
            self.open_index()

    def _type_of(self, slot: str) -> str:
        parts = slot.split(".")
        section, key = parts[0], parts[1] if len(parts) > 1 else ""
        spec = self.config.get(section, {}).get(key) if section in ("index", "query") else None
        if isinstance(spec, list):
            spec = spec[int(parts[2])] if len(parts) > 2 else (spec[0] if spec else None)
        return spec.get("type", "?") if isinstance(spec, Mapping) else key

    def _call(self, slot: str, fn: Any) -> Any:
        return call_stage(slot, self._type_of(slot), fn)

    def _timed(self, slot: str) -> Any:
        """Collect the usage recorded inside the block under ``slot``."""
        return self.usage_book.timed(slot)

    def run_usage(self) -> Usage:
        return self.usage_book.total()


def _as_query(query: Query | str) -> Query:
    return query if isinstance(query, Query) else Query.from_text(query)


def retrieval_only_answer(selected: Sequence[ScoredChunk]) -> Answer:
    """The answer of a retrieval-only pipeline: one line per selected chunk (source, offsets, score).

    Example:
        >>> doc = Document.from_text("Stores are written atomically.", source_id="docs/store.md")
        >>> print(retrieval_only_answer([ScoredChunk(Chunk.from_span(doc, 0, 30, 6, doc.metadata), 0.5)]).text)
        [1] docs/store.md:0-30 score=0.5000
    """
    lines = []
    for rank, scored in enumerate(selected, 1):
        meta = scored.chunk.metadata
        source = meta.get("source_id") or meta.get("path") or scored.chunk.doc_id[:12]
        lines.append(f"[{rank}] {source}:{scored.chunk.start}-{scored.chunk.end} score={scored.score:.4f}")
    return Answer("\n".join(lines), chunks=tuple(selected), trace={"retrieval_only": True})
