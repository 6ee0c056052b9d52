"""The index phase: chunk → (enrich) → (tree) → embed + index → persist, incrementally and resumably.

The pipeline owns this phase; it hands :func:`run_index_phase` its stages explicitly
(:class:`IndexStages`) together with the store, the runtime and an **engine**, which decides where
the work runs (``local``: this process; other engines register under the ``engine`` kind).

- The store lives at ``index.store`` (relative paths are taken from the pipeline's base directory)
  or, when that is ``null``, at ``RAGKIT_HOME/indexes/<index hash>``. ``index.store: ":memory:"``
  keeps the index in memory only (nothing persisted; every run indexes afresh).
- An unchanged corpus (same document fingerprints) is loaded from the store: no chunking, no
  embedding. A changed corpus chunks only new or changed documents (records of the others come
  from the store), drops removed ones, and re-indexes all chunks (unchanged texts hit the
  embedding cache).
- Chunk results are journalled per document as they are produced, and cached in
  ``RAGKIT_HOME/cache.sqlite`` by (chunking configuration, document fingerprint), so an interrupted
  run resumes where it stopped and another index that shares the chunker re-chunks nothing.
- Document metadata (except ``headings``) is copied into each chunk's metadata where the chunk has
  no such key, so filters can select by document fields (``source``, dates, ...).
- With ``index.tree`` set, one :class:`~ragkit.types.DocTree` per document is built after chunking
  and persisted with the index; query stages read it through the query context.

Config hashing lives here too: :func:`index_config` (what determines the index, so its hash names and
verifies the store) and :func:`chunking_hash` (what determines chunk records).

Example:
    >>> from ragkit import Pipeline, Document
    >>> pipe = Pipeline.from_config({
    ...     "backends": {"llm": {"default": {"type": "fake"}}, "embeddings": {"default": {"type": "fake"}}},
    ...     "index": {"chunker": {"type": "sentence", "max_tokens": 6}, "retriever": {"type": "bm25"},
    ...               "store": ":memory:"}})
    >>> report = pipe.index([Document.from_text("Paris is in France. Rome is in Italy.")])
    >>> report.documents, report.chunks, report.reused
    (1, 2, False)
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragkit.errors import IndexStoreError, StageError
from ragkit.paths import indexes_dir
from ragkit.progress import progress
from ragkit.stage import Component, call_stage, collaborator_params, nested_stage_params, source_fingerprint
from ragkit.store.store import MEMORY, IndexStore
from ragkit.text.token_ids import TokenIds
from ragkit.text.token_ids import using as using_token_ids
from ragkit.types import Chunk, DocTree, Document, Usage, sha256_hex
from ragkit.usage import UsageBook

INDEX_SECTIONS = ("chunker", "enrichers", "embedder", "retriever")
BATCH_DOCUMENTS = 16
BATCH_CHUNKS = 512
#: Below this many characters of documents to chunk, chunking stays in this process (a pool costs more).
PARALLEL_MIN_CHARS = 2_000_000
#: Journal and chunk-cache writes are grouped: one fsync / one SQLite transaction per this many seconds.
FLUSH_SECONDS = 2.0
BACKEND_KIND_BY_SECTION = {"llm": "llm", "embeddings": "embedder"}


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
    trees: int = 0
    #: Leftovers of a killed run removed when the store was opened (temp dirs, orphan versions, stale journals).
    cleaned: list[str] = field(default_factory=list)
    #: Chunks whose enrichment failed (``metadata["enrichment_failed"]``); never cached, retried by the next run.
    chunks_without_metadata: int = 0
    #: Texts the embedder took the chunker's token ids for instead of tokenising them (:mod:`ragkit.text.token_ids`).
    token_ids_used: int = 0
    #: What the engine measured, when it measures anything (``ray``: ``embed_actor_busy_s``, ``embed_wall_s``).
    engine_stats: dict[str, float] = field(default_factory=dict)


# --------------------------------------------------------------------------- config hashing
def index_config(config: Mapping[str, Any], registry: Any) -> dict[str, Any]:
    """The part of ``config`` that determines the index (its hash names and verifies the store)."""
    index = {k: config["index"][k] for k in INDEX_SECTIONS}
    if config["index"].get("tree"):
        index["tree"] = config["index"]["tree"]  # only when set, so indexes without trees keep their hash
    used: dict[str, dict[str, Any]] = {"llm": {}, "embeddings": {}}

    def note(section: str, ref: Any) -> None:
        if isinstance(ref, str):
            used[section][ref] = config["backends"][section][ref]

    note("embeddings", index["embedder"])
    code: dict[str, str] = {}

    def fingerprint(kind: str, spec: Any) -> None:
        if isinstance(spec, Mapping) and isinstance(spec.get("type"), str):
            digest = source_fingerprint(registry.get(kind, spec["type"]))
            if digest is not None:
                code[f"{kind}:{spec['type']}"] = digest

    stages = [("chunker", index["chunker"]), ("retriever", index["retriever"]),
              *[("enricher", s) for s in index["enrichers"]]]
    if index.get("tree"):
        stages.append(("tree", index["tree"]))
    def walk(kind: str, spec: Mapping[str, Any]) -> None:
        cls = registry.get(kind, spec["type"])
        fingerprint(kind, spec)
        for param, ref_kind in collaborator_params(cls).items():
            note("llm" if ref_kind == "llm" else "embeddings", spec.get(param))
        for param, nested_kind in nested_stage_params(cls).items():  # e.g. the cluster tree's base builder
            nested = spec.get(param)
            if isinstance(nested, Mapping) and isinstance(nested.get("type"), str):
                walk(nested_kind, nested)

    for kind, spec in stages:
        walk(kind, spec)
    if isinstance(index["embedder"], Mapping):
        fingerprint("embedder", index["embedder"])
    for section, specs in used.items():
        for spec in specs.values():
            fingerprint(BACKEND_KIND_BY_SECTION[section], spec)
    out: dict[str, Any] = {"index": index, "backends": used}
    if code:  # plugin stages only: ragkit's own are covered by its version (see source_fingerprint)
        out["code"] = code
    return out


def index_hash(config: Mapping[str, Any], registry: Any) -> str:
    """Short hash of :func:`index_config` (names the default store directory)."""
    return sha256_hex(index_config(config, registry))[:16]


def chunking_hash(config: Mapping[str, Any], registry: Any) -> str:
    """Hash of everything that determines chunk records: chunker, enrichers, their backends, ragkit version, and the source of plugin stages among them."""
    from ragkit import __version__

    specs = [("chunker", config["index"]["chunker"]), *[("enricher", s) for s in config["index"]["enrichers"]]]
    backends: dict[str, dict[str, Any]] = {"llm": {}, "embeddings": {}}
    for kind, spec in specs:
        cls = registry.get(kind, spec["type"])
        for param, ref_kind in collaborator_params(cls).items():
            ref = spec.get(param)
            section = "llm" if ref_kind == "llm" else "embeddings"
            if isinstance(ref, str) and ref in config["backends"][section]:
                backends[section][ref] = config["backends"][section][ref]
    code = {k: v for k, v in index_config(config, registry).get("code", {}).items()
            if k.startswith(("chunker:", "enricher:", "llm:", "embedder:"))}
    if code:  # plugin stages (ragkit's own are covered by its version)
        return sha256_hex("chunks", __version__, [s for _, s in specs], backends, code)[:16]
    return sha256_hex("chunks", __version__, [s for _, s in specs], backends)[:16]


def corpus_key(corpus: Any, base_dir: str | Path) -> str | None:
    """Identity of a corpus: its resolved path patterns (absolute) or its dataset and subset.

    ``None`` when the corpus is unknown (no ``corpus`` section, or in-memory documents), so nothing is
    keyed or verified by it.

    Example:
        >>> corpus_key({"paths": ["docs/*.md"]}, "/a") == corpus_key({"paths": ["/a/docs/*.md"]}, "/b")
        True
        >>> corpus_key({"paths": ["docs/*.md"]}, "/a") == corpus_key({"paths": ["docs/*.md"]}, "/b")
        False
        >>> corpus_key({}, "/a") is None
        True
    """
    if isinstance(corpus, Mapping):
        if corpus.get("dataset"):
            return sha256_hex("dataset", corpus["dataset"], sorted(corpus.get("subset") or []))[:12]
        paths = corpus.get("paths")
    else:
        paths = corpus
    if not paths:
        return None
    if isinstance(paths, (str, Path)):
        paths = [paths]
    resolved = []
    for item in paths:
        if not isinstance(item, (str, Path)):
            return None  # Documents given in memory: no stable identity
        path = Path(str(item)).expanduser()
        resolved.append(str(path if path.is_absolute() else Path(base_dir).resolve() / path))
    return sha256_hex("paths", sorted(resolved))[:12]


def store_location(configured: Any, base_dir: str | Path, hash_: str, corpus: str | None = None) -> IndexStore | None:
    """The index store for ``index.store`` (``None`` for ``":memory:"``).

    The default location (``index.store: null``) is keyed by the index settings and, when known, the
    corpus, so two projects with equal settings but different documents never share a store.
    """
    if configured == MEMORY:
        return None
    if configured is None:
        return IndexStore(indexes_dir() / (f"{hash_}-{corpus}" if corpus else hash_))
    path = Path(str(configured)).expanduser()
    if not path.is_absolute():
        path = Path(base_dir) / path
    return IndexStore(path)


def fingerprint(doc: Document) -> str:
    """Identity of a document's chunk records: its id (text hash) and its metadata."""
    return sha256_hex(doc.id, doc.to_dict()["metadata"])[:32]


# --------------------------------------------------------------------------- stages and engines
@dataclass
class IndexStages:
    """The index-phase stages, built by the pipeline and handed over explicitly."""

    chunker: Any
    retriever: Any
    enrichers: Sequence[Any] = ()
    tree_builder: Any = None
    chunker_type: str = "?"
    enricher_types: Sequence[str] = ()
    tree_type: str = "?"
    retriever_type: str = "?"

    def chunk_batch(self, docs: list[Document], usage: UsageBook) -> list[list[Chunk]]:
        """Chunk and enrich a batch of documents (one list of chunks per document, in order)."""
        with usage.timed("index.chunker"):
            results = chunk_with(self.chunker, self.chunker_type, docs)
        return self.finish_batch(docs, results, usage)

    def finish_batch(self, docs: list[Document], results: list[list[Chunk]], usage: UsageBook) -> list[list[Chunk]]:
        """The steps after the chunker for one batch: document metadata into chunks, then the enrichers."""
        if len(results) != len(docs):
            raise StageError("index.chunker", self.chunker_type,
                             f"chunk_many returned {len(results)} results for {len(docs)} documents")
        results = [_with_document_metadata(d, r) for d, r in zip(docs, results)]
        if self.enrichers and any(results):
            flat = [c for r in results for c in r]
            by_id = {d.id: d for d in docs}
            for enricher, type_name in zip(self.enrichers, self.enricher_types):
                with usage.timed("index.enrichers"):
                    enriched = call_stage("index.enrichers", type_name,
                                          lambda e=enricher, f=flat: list(e.enrich(f, by_id)))
                if len(enriched) != len(flat):
                    raise StageError("index.enrichers", type_name, f"enrich returned {len(enriched)} chunks for "
                                                                   f"{len(flat)}; enrichers must keep every chunk")
                flat = _mark_failed(enricher, type_name, enriched)
            position = 0
            regrouped = []
            for r in results:
                regrouped.append(flat[position:position + len(r)])
                position += len(r)
            results = regrouped
        return results


def chunk_with(chunker: Any, chunker_type: str, docs: list[Document]) -> list[list[Chunk]]:
    """The chunker's results for ``docs`` (``chunk_many`` when it has one), errors wrapped as stage errors."""
    if hasattr(chunker, "chunk_many"):
        return call_stage("index.chunker", chunker_type, lambda: list(chunker.chunk_many(docs)))
    return [call_stage("index.chunker", chunker_type, lambda d=d: list(chunker.chunk(d))) for d in docs]


@dataclass
class ChunkBatch:
    """What the index phase hands an engine to chunk one batch: ``chunk_batch(docs)`` chunks and enriches.

    Engines that run the chunker elsewhere (other processes, other machines) call :meth:`chunk` there
    with :attr:`chunker` and :meth:`finish` here: the enrichers and their backends stay in this process.
    :attr:`portable` says whether the chunker may run elsewhere (it uses no model backend).
    :attr:`token_ids` collects the token ids the chunker hands over for the embedder
    (:mod:`ragkit.text.token_ids`); an engine that chunks elsewhere may merge them in or leave it empty
    (the embedder then tokenises).
    """

    stages: IndexStages
    usage: UsageBook
    token_ids: TokenIds | None = None

    def __call__(self, docs: list[Document]) -> list[list[Chunk]]:
        if self.token_ids is None:
            return self.stages.chunk_batch(docs, self.usage)
        with using_token_ids(self.token_ids):
            return self.stages.chunk_batch(docs, self.usage)

    @property
    def chunker(self) -> Any:
        return self.stages.chunker

    @property
    def chunker_type(self) -> str:
        return self.stages.chunker_type

    @property
    def portable(self) -> bool:
        return not collaborator_params(type(self.stages.chunker)) and not nested_stage_params(type(self.stages.chunker))

    def finish(self, docs: list[Document], results: list[list[Chunk]]) -> list[list[Chunk]]:
        return self.stages.finish_batch(docs, results, self.usage)


_WORKER_CHUNKER: list[Any] = []


def _chunk_worker_init(chunker: Any, chunker_type: str) -> None:
    _WORKER_CHUNKER[:] = [chunker, chunker_type]


def _chunk_worker(docs: list[dict[str, Any]]) -> tuple[list[list[dict[str, Any]]], dict[str, Any]]:
    # records travel as plain dicts (their frozen metadata mappings do not pickle), token ids beside them
    table = TokenIds()
    with using_token_ids(table):
        results = chunk_with(_WORKER_CHUNKER[0], _WORKER_CHUNKER[1], [Document.from_dict(d) for d in docs])
    return [[c.to_dict() for c in chunks] for chunks in results], table.export()


def available_cores() -> int:
    """CPU cores this process may run on (its affinity where the OS reports one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover (macOS, Windows)
        return os.cpu_count() or 1


def _mark_failed(enricher: Any, type_name: str, chunks: list[Chunk]) -> list[Chunk]:
    """Tag the chunks the enricher's last report lists as failed with ``metadata["enrichment_failed"]``."""
    report = getattr(enricher, "last_report_", None)
    failed = set(getattr(report, "invalid_ids", None) or ())
    if not failed:
        return chunks
    return [c.with_metadata(enrichment_failed=[*c.metadata.get("enrichment_failed", []), type_name])
            if c.id in failed else c for c in chunks]


def _complete(chunks: Sequence[Chunk]) -> bool:
    """Whether every enrichment of these chunks succeeded (only complete results are cached or reused)."""
    return not any("enrichment_failed" in c.metadata for c in chunks)


class LocalEngine(Component):
    """Runs the index phase on this machine: documents in batches, one ``retriever.index`` call.

    An engine has two jobs: :meth:`chunk_documents` (map document batches to chunk records, yielding
    each batch's results as they complete so the caller journals them) and :meth:`build_index`
    (embed and index all chunks). A distributed engine implements the same two methods.

    Chunking runs in ``workers`` processes (``None``: one per available core) when the chunker uses
    no model backend, more than one core is available and the documents to chunk hold at least
    ``parallel_min_chars`` characters; otherwise in this process. Results come back in document
    order and are identical to in-process chunking (chunk ids are content hashes); enrichers always
    run in this process.

    Example:
        >>> engine = LocalEngine(workers=1)
        >>> [len(b) for b, _ in engine.chunk_documents([Document.from_text("a b")], lambda ds: [[] for _ in ds])]
        [1]
    """

    def __init__(self, *, batch_documents: int = BATCH_DOCUMENTS, batch_chars: int = BATCH_CHUNKS * 1000,
                 workers: int | None = None, parallel_min_chars: int = PARALLEL_MIN_CHARS) -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"LocalEngine workers: got {workers}; give a positive number of processes or None "
                             "(one per available core)")
        self.batch_documents = batch_documents
        self.batch_chars = batch_chars
        self.workers = workers
        self.parallel_min_chars = parallel_min_chars

    def batches(self, docs: Sequence[Document]) -> Iterator[list[Document]]:
        """``docs`` cut into batches of at most ``batch_documents`` documents / ``batch_chars`` characters."""
        batch: list[Document] = []
        size = 0
        for position, doc in enumerate(docs):
            batch.append(doc)
            size += len(doc.text)
            if len(batch) >= self.batch_documents or size >= self.batch_chars or position == len(docs) - 1:
                yield batch
                batch, size = [], 0

    def processes_for(self, docs: Sequence[Document], chunk_batch: Any) -> int:
        """How many chunking processes this run uses (1: in this process)."""
        workers = self.workers if self.workers is not None else available_cores()
        if workers <= 1 or not getattr(chunk_batch, "portable", False):
            return 1
        if sum(len(d.text) for d in docs) < self.parallel_min_chars:
            return 1
        return workers

    def chunk_documents(self, docs: Sequence[Document],
                        chunk_batch: Callable[[list[Document]], list[list[Chunk]]]
                        ) -> Iterator[tuple[list[Document], list[list[Chunk]]]]:
        workers = self.processes_for(docs, chunk_batch)
        if workers <= 1:
            for batch in self.batches(docs):
                yield batch, chunk_batch(batch)
            return
        yield from self._chunk_in_processes(list(self.batches(docs)), chunk_batch, workers)

    def _chunk_in_processes(self, batches: list[list[Document]], chunk_batch: Any,
                            workers: int) -> Iterator[tuple[list[Document], list[list[Chunk]]]]:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # fork shares the loaded chunker without pickling it or re-importing anything; the workers run only
        # the chunker (no GPU, no backend clients), so threads of this process (tqdm's monitor, torch's pools)
        # are not touched there. Where fork does not exist, spawn pickles the chunker.
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        chunker = chunk_batch.chunker
        if hasattr(chunker, "warm_up") and method == "fork":
            chunker.warm_up()  # load its tokenizer once, before the fork
        context = multiprocessing.get_context(method)
        with ProcessPoolExecutor(max_workers=min(workers, len(batches)), mp_context=context,
                                 initializer=_chunk_worker_init, initargs=(chunker, chunk_batch.chunker_type)) as pool:
            results_in_order = pool.map(_chunk_worker, [[d.to_dict() for d in b] for b in batches])
            ids = getattr(chunk_batch, "token_ids", None)
            for batch in batches:
                with chunk_batch.usage.timed("index.chunker"):  # the wait for this batch's chunks
                    records, exported = next(results_in_order)
                    results = [[Chunk.from_dict(c) for c in chunks] for chunks in records]
                    if ids is not None:
                        ids.merge(exported)
                yield batch, chunk_batch.finish(batch, results)

    def build_index(self, retriever: Any, chunks: list[Chunk]) -> None:
        retriever.index(chunks)


def _with_document_metadata(doc: Document, chunks: Sequence[Chunk]) -> list[Chunk]:
    extra = {k: v for k, v in doc.metadata.items() if k != "headings"}
    if not extra:
        return list(chunks)
    out = []
    for chunk in chunks:
        missing = {k: v for k, v in extra.items() if k not in chunk.metadata}
        out.append(chunk.with_metadata(**missing) if missing else chunk)
    return out


def _source_name(doc: Document, position: int) -> str:
    meta = doc.metadata
    return str(meta.get("source_id") or meta.get("path") or meta.get("source") or meta.get("id") or f"#{position}")


def _dedupe(docs: Sequence[Document]) -> list[Document]:
    """One document per distinct text; identical texts are merged, every source listed in ``metadata["sources"]``.

    The first document keeps its id and metadata; when others share its text, ``sources`` lists the
    source of each (first one included) and ``merged_metadata`` the metadata of the others, so a
    filter ``{sources: b.md}`` finds the text under any of its sources. A warning says how many merged.

    Example:
        >>> import warnings
        >>> a, b = Document.from_text("same", source_id="a.md"), Document.from_text("same", source_id="b.md")
        >>> with warnings.catch_warnings():
        ...     warnings.simplefilter("ignore")
        ...     merged = _dedupe([a, b])
        >>> len(merged), merged[0].metadata["sources"]
        (1, ['a.md', 'b.md'])
    """
    seen: dict[str, list[tuple[int, Document]]] = {}
    for position, doc in enumerate(docs):
        if not isinstance(doc, Document):
            raise TypeError(f"the index phase expects Document objects, got {type(doc).__name__}: {doc!r:.80}")
        seen.setdefault(doc.id, []).append((position, doc))
    out: list[Document] = []
    merged = 0
    for group in seen.values():
        first = group[0][1]
        if len(group) > 1:
            merged += len(group) - 1
            sources = list(dict.fromkeys(_source_name(d, p) for p, d in group))
            others = [{k: v for k, v in d.metadata.items() if k != "headings"} for _p, d in group[1:]]
            first = Document(id=first.id, text=first.text,
                             metadata={**first.metadata, "sources": sources, "merged_metadata": others})
        out.append(first)
    if merged:
        import warnings

        from ragkit.errors import RagkitWarning

        warnings.warn(f"{merged} document(s) have exactly the same text as another and were indexed once; every "
                      "source is listed in the chunks' metadata 'sources' (filter with {sources: NAME})",
                      RagkitWarning, stacklevel=3)
    return out


# --------------------------------------------------------------------------- the phase
@dataclass
class IndexPlan:
    """Where and under which hashes the phase writes (computed by the pipeline from its config)."""

    store: IndexStore | None
    index_hash: str
    index_config: Mapping[str, Any]
    chunking_hash: str
    corpus_key: str | None = None


@dataclass
class IndexResult:
    """The phase's outputs: the ready retriever, the document trees (when built) and the report."""

    retriever: Any
    trees: dict[str, DocTree] | None
    report: IndexReport


def run_index_phase(stages: IndexStages, docs: Sequence[Document], plan: IndexPlan, *, cache: Any,
                    engine: Any = None, usage: UsageBook | None = None, rebuild: bool = False) -> IndexResult:
    """Index ``docs`` with ``stages`` into ``plan.store``; return the retriever, trees and report.

    ``rebuild=True`` ignores (and then replaces) the stored index and any resume journal; the
    chunk and embedding caches still apply (``cache.mode: off`` disables them).
    """
    engine = engine or LocalEngine()
    run_usage = UsageBook(parent=usage)
    docs = _dedupe(docs)
    store = plan.store
    retriever = stages.retriever
    report = IndexReport(documents=len(docs), store=str(store.path) if store else None, usage=run_usage.slots)
    prints = {d.id: fingerprint(d) for d in docs}

    previous: dict[str, list[Chunk]] = {}
    stored_prints: list[str] = []
    if store is not None and store.exists() and not rebuild:
        report.cleaned = store.clean_leftovers(plan.chunking_hash)
        with run_usage.timed("index.store"), store.reading():
            _verify(store, plan)
            stored_records = store.read_documents()
            stored_prints = [record["fingerprint"] for record in stored_records]
            complete = not any(record.get("metadata_missing") for record in stored_records)
            if complete and sorted(stored_prints) == sorted(prints.values()):
                call_stage("index.retriever", stages.retriever_type, lambda: retriever.load(store.retriever_dir()))
                trees = _read_trees(store) if stages.tree_builder is not None else None
                report.reused = True
                report.chunks = len(retriever.chunks_ or [])
                report.trees = len(trees or {})
                return IndexResult(retriever, trees, report)
            previous = store.chunks_by_document()

    wanted = set(prints.values())
    report.documents_removed = len([fp for fp in stored_prints if fp not in wanted])
    journal = store.journal(plan.chunking_hash) if store is not None else None
    if journal is not None and rebuild:
        journal.clear()
    done: dict[str, list[Chunk]] = {fp: c for fp, c in previous.items() if fp in wanted and _complete(c)}
    if journal is not None:
        for fp, chunks in journal.load().items():
            if fp in wanted and _complete(chunks):
                done.setdefault(fp, chunks)
    todo = [d for d in docs if prints[d.id] not in done]

    namespace = f"chunks:{plan.chunking_hash}"
    if todo and cache.readable:
        for fp, blob in cache.get_many(namespace, [prints[d.id] for d in todo]).items():
            try:
                cached_chunks = [Chunk.from_dict(c) for c in json.loads(blob)]
            except (ValueError, KeyError, TypeError):
                continue
            if _complete(cached_chunks):
                done[fp] = cached_chunks
        cached = [d for d in todo if prints[d.id] in done]
        if journal is not None and cached:
            journal.append([(prints[d.id], done[prints[d.id]]) for d in cached])
        todo = [d for d in todo if prints[d.id] not in done]

    report.documents_processed = len(todo)
    # the chunker's token ids, handed to the embedder below (never persisted, never part of a chunk)
    ids = TokenIds()
    if todo:
        unsaved: list[tuple[str, list[Chunk]]] = []

        def save() -> None:
            # one journal fsync and one cache transaction per FLUSH_SECONDS, not per batch
            with run_usage.timed("index.store"):
                if journal is not None:
                    journal.append(unsaved)
                if cache.writable:
                    cache.put_many(namespace, {fp: json.dumps([c.to_dict() for c in chunks], ensure_ascii=False,
                                                              default=str).encode("utf-8")
                                               for fp, chunks in unsaved})
            unsaved.clear()

        last_save = time.monotonic()
        try:
            with progress(len(todo), "chunking", "doc") as bar:
                for batch, results in engine.chunk_documents(todo, ChunkBatch(stages, run_usage, ids)):
                    records = [(prints[d.id], chunks) for d, chunks in zip(batch, results)]
                    for fp, chunks in records:
                        done[fp] = chunks
                    unsaved.extend(records)
                    if time.monotonic() - last_save >= FLUSH_SECONDS:
                        save()
                        last_save = time.monotonic()
                    bar.update(len(batch))
        finally:  # a failing stage still leaves every finished document in the journal (a kill loses <= FLUSH_SECONDS)
            if unsaved:
                save()

    trees: dict[str, DocTree] | None = None
    if stages.tree_builder is not None:
        trees = {}
        builder = stages.tree_builder
        with run_usage.timed("index.tree"):
            for doc in docs:
                chunks = done[prints[doc.id]]
                trees[doc.id] = call_stage("index.tree", stages.tree_type, lambda d=doc, c=chunks: builder.build(d, c))
        report.trees = len(trees)

    all_chunks = [c for d in docs for c in done[prints[d.id]]]
    with run_usage.timed("index.retriever"), using_token_ids(ids):
        call_stage("index.retriever", stages.retriever_type, lambda: engine.build_index(retriever, all_chunks))
    report.token_ids_used = ids.served
    report.engine_stats = dict(getattr(engine, "stats", None) or {})
    if store is not None:
        documents = [{"id": d.id, "fingerprint": prints[d.id], "chunks": len(done[prints[d.id]]),
                      "source_id": d.metadata.get("source_id"), "source": d.metadata.get("source"),
                      **({"metadata_missing": missing} if (missing := sum(
                          "enrichment_failed" in c.metadata for c in done[prints[d.id]])) else {})}
                     for d in docs]
        tree_records = [trees[d.id].to_dict() for d in docs] if trees is not None else None
        with run_usage.timed("index.store"):
            extra = {"corpus_key": plan.corpus_key} if plan.corpus_key else None
            call_stage("index.store", "store", lambda: store.commit(retriever, documents, plan.index_config,
                                                                      plan.index_hash, extra=extra, trees=tree_records))
    report.chunks = len(all_chunks)
    report.chunks_without_metadata = sum(not _complete([c]) for c in all_chunks)
    return IndexResult(retriever, trees, report)


def _verify(store: IndexStore, plan: IndexPlan) -> None:
    """The store's checksums and index hash, and that it was built from this corpus (when both are known)."""
    manifest = store.verify(plan.index_hash)
    stored = manifest.get("corpus_key")
    if plan.corpus_key and stored and stored != plan.corpus_key:
        raise IndexStoreError(
            f"index store {store.path} was built from another corpus (corpus key {stored}, this config's "
            f"{plan.corpus_key}); answering from it would cite another project's documents. Index this corpus "
            "with `ragkit index CONFIG` (an explicit index.store needs --rebuild), or point index.store elsewhere.")


def _read_trees(store: IndexStore) -> dict[str, DocTree]:
    return {record["doc_id"]: DocTree.from_dict(record) for record in store.read_trees()}


def open_index(stages: IndexStages, plan: IndexPlan, usage: UsageBook | None = None) -> IndexResult:
    """Load the persisted index (verified) into ``stages.retriever``; trees too when a builder is configured."""
    store = plan.store
    if store is None:
        raise IndexStoreError("index.store is ':memory:', so there is no persisted index to open; "
                              "call pipeline.index(...) in this process first.")
    if not store.exists():
        raise IndexStoreError(
            f"no index at {store.path} for this configuration (index hash {plan.index_hash}). Build it first "
            "with `ragkit index CONFIG` (or pipeline.index()); `ragkit run CONFIG` builds it too."
        )
    book = UsageBook(parent=usage)
    retriever = stages.retriever
    cleaned = store.clean_leftovers(plan.chunking_hash)
    for attempt in (1, 2):
        # Readers pin one version under a shared lock; a commit racing the first open is retried once.
        with book.timed("index.store"), store.reading() as version:
            try:
                _verify(store, plan)
                call_stage("index.retriever", stages.retriever_type, lambda: retriever.load(store.retriever_dir()))
                trees = _read_trees(store) if stages.tree_builder is not None else None
                documents = len(store.read_documents())
                break
            except IndexStoreError:
                if attempt == 2 or not _replaced(store, version):
                    raise
    report = IndexReport(documents=documents, chunks=len(retriever.chunks_ or []), reused=True,
                         store=str(store.path), usage=book.slots, trees=len(trees or {}), cleaned=cleaned)
    return IndexResult(retriever, trees, report)


def _replaced(store: IndexStore, version: str) -> bool:
    """Whether another process committed a new version since ``version`` was pinned."""
    try:
        return IndexStore(store.path).current_version() != version
    except IndexStoreError:
        return False


def describe(report: IndexReport) -> str:
    """One line summarising an index report (for CLI output and logs)."""
    what = "reused the stored index" if report.reused else (
        f"chunked {report.documents_processed} new or changed document(s), removed {report.documents_removed}")
    where = report.store or "memory"
    cleaned = f"; removed leftovers of an interrupted run: {', '.join(report.cleaned)}" if report.cleaned else ""
    missing = (f"; {report.chunks_without_metadata} chunk(s) lack metadata (their enrichment failed; not cached, "
               "the next run retries them)" if report.chunks_without_metadata else "")
    return f"index: {report.documents} documents, {report.chunks} chunks; {what}; store: {where}{cleaned}{missing}"
