"""The index phase: chunk → (enrich) → embed + index → persist, incrementally and resumably.

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

Example:
    >>> from ragkit import Pipeline, Document
    >>> pipe = Pipeline.from_config({
    ...     "backends": {"llm": {"default": {"type": "fake"}}, "embeddings": {"default": {"type": "fake"}}},
    ...     "index": {"chunker": {"type": "sentence", "max_tokens": 32}, "retriever": {"type": "bm25"},
    ...               "store": ":memory:"}})
    >>> report = run_index_phase(pipe, [Document.from_text("Paris is in France. Rome is in Italy.")])
    >>> report.documents, report.reused
    (1, False)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ragkit.cache import default_cache
from ragkit.errors import IndexStoreError, StageError
from ragkit.paths import indexes_dir
from ragkit.stage import collaborator_params
from ragkit.store.store import MEMORY, IndexStore
from ragkit.types import Chunk, Document, Usage, sha256_hex

BATCH_DOCUMENTS = 16
BATCH_CHUNKS = 512


def store_for(pipeline: Any) -> IndexStore | None:
    """The pipeline's index store (``None`` for ``index.store: ":memory:"``)."""
    configured = pipeline.config["index"].get("store")
    if configured == MEMORY:
        return None
    if configured is None:
        return IndexStore(indexes_dir() / pipeline.index_hash())
    path = Path(str(configured)).expanduser()
    if not path.is_absolute():
        path = Path(pipeline.base_dir) / path
    return IndexStore(path)


def chunking_hash(pipeline: Any) -> str:
    """Hash of everything that determines chunk records: chunker, enrichers, their backends, ragkit version,
    and the source of plugin stages among them."""
    from ragkit import __version__

    config = pipeline.config
    specs = [("chunker", config["index"]["chunker"]), *[("enricher", s) for s in config["index"]["enrichers"]]]
    backends: dict[str, dict[str, Any]] = {"llm": {}, "embeddings": {}}
    for kind, spec in specs:
        cls = pipeline.registry.get(kind, spec["type"])
        for param, ref_kind in collaborator_params(cls).items():
            ref = spec.get(param)
            section = "llm" if ref_kind == "llm" else "embeddings"
            if isinstance(ref, str) and ref in config["backends"][section]:
                backends[section][ref] = config["backends"][section][ref]
    code = {k: v for k, v in pipeline.index_config().get("code", {}).items() if not k.startswith("retriever:")}
    if code:  # plugin stages (ragkit's own are covered by its version)
        return sha256_hex("chunks", __version__, [s for _, s in specs], backends, code)[:16]
    return sha256_hex("chunks", __version__, [s for _, s in specs], backends)[:16]


def fingerprint(doc: Document) -> str:
    """Identity of a document's chunk records: its id (text hash) and its metadata."""
    return sha256_hex(doc.id, doc.to_dict()["metadata"])[:32]


def _with_document_metadata(doc: Document, chunks: Sequence[Chunk]) -> list[Chunk]:
    extra = {k: v for k, v in doc.metadata.items() if k != "headings"}
    if not extra:
        return list(chunks)
    out = []
    for chunk in chunks:
        missing = {k: v for k, v in extra.items() if k not in chunk.metadata}
        out.append(chunk.with_metadata(**missing) if missing else chunk)
    return out


def _dedupe(docs: Sequence[Document]) -> list[Document]:
    seen: dict[str, Document] = {}
    for doc in docs:
        if not isinstance(doc, Document):
            raise TypeError(f"run_index_phase expects Document objects, got {type(doc).__name__}: {doc!r:.80}")
        seen.setdefault(doc.id, doc)
    return list(seen.values())


class _StageUsage:
    """Accumulates the per-slot usage of this run for the report (the pipeline keeps its own totals)."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline
        self.totals: dict[str, Usage] = {}

    def timed(self, slot: str) -> Any:
        outer = self

        class _Scope:
            def __enter__(self) -> Usage:
                self._inner = outer.pipeline._timed(slot)
                self.usage = self._inner.__enter__()
                return self.usage

            def __exit__(self, *exc: Any) -> None:
                self._inner.__exit__(*exc)
                outer.totals[slot] = outer.totals.get(slot, Usage()) + self.usage

        return _Scope()


def _chunk_batch(pipeline: Any, docs: list[Document], usage: _StageUsage) -> list[list[Chunk]]:
    chunker = pipeline.chunker
    with usage.timed("index.chunker"):
        if hasattr(chunker, "chunk_many"):
            results = pipeline._run("index.chunker", lambda: list(chunker.chunk_many(docs)))
        else:
            results = [pipeline._run("index.chunker", lambda d=d: list(chunker.chunk(d))) for d in docs]
    if len(results) != len(docs):
        raise StageError("index.chunker", pipeline.config["index"]["chunker"]["type"],
                         f"chunk_many returned {len(results)} results for {len(docs)} documents")
    results = [_with_document_metadata(d, r) for d, r in zip(docs, results)]
    enrichers = pipeline.enrichers
    if enrichers and any(results):
        flat = [c for r in results for c in r]
        by_id = {d.id: d for d in docs}
        for position, enricher in enumerate(enrichers):
            type_name = pipeline.config["index"]["enrichers"][position]["type"]
            with usage.timed("index.enrichers"):
                enriched = pipeline._run("index.enrichers", lambda e=enricher, f=flat: list(e.enrich(f, by_id)))
            if len(enriched) != len(flat):
                raise StageError("index.enrichers", type_name,
                                 f"enrich returned {len(enriched)} chunks for {len(flat)}; enrichers must keep every chunk")
            flat = enriched
        position = 0
        regrouped = []
        for r in results:
            regrouped.append(flat[position:position + len(r)])
            position += len(r)
        results = regrouped
    return results


def run_index_phase(pipeline: Any, docs: Sequence[Document], rebuild: bool = False) -> Any:
    """Index ``docs`` with ``pipeline``'s stages into its store; returns an :class:`~ragkit.pipeline.IndexReport`.

    ``rebuild=True`` ignores (and then replaces) the stored index and any resume journal; the
    chunk and embedding caches still apply (``cache.mode: off`` disables them).
    """
    from ragkit.pipeline import IndexReport

    docs = _dedupe(docs)
    store = store_for(pipeline)
    index_hash = pipeline.index_hash()
    retriever = pipeline._stage("index.retriever")
    usage = _StageUsage(pipeline)
    report = IndexReport(documents=len(docs), store=str(store.path) if store else None, usage=usage.totals)
    prints = {d.id: fingerprint(d) for d in docs}

    previous: dict[str, list[Chunk]] = {}
    stored_prints: list[str] = []
    if store is not None and store.exists() and not rebuild:
        with usage.timed("index.store"):
            store.verify(index_hash)
            stored_prints = [record["fingerprint"] for record in store.read_documents()]
        if sorted(stored_prints) == sorted(prints.values()):
            with usage.timed("index.store"):
                pipeline._run("index.retriever", lambda: retriever.load(store.retriever_dir()))
            pipeline.retriever_ = retriever
            report.reused = True
            report.chunks = len(retriever.chunks_ or [])
            return report
        with usage.timed("index.store"):
            previous = store.chunks_by_document()

    wanted = set(prints.values())
    report.documents_removed = len([fp for fp in stored_prints if fp not in wanted])
    journal = store.journal(chunking_hash(pipeline)) if store is not None else None
    if journal is not None and rebuild:
        journal.clear()
    done: dict[str, list[Chunk]] = {fp: c for fp, c in previous.items() if fp in wanted}
    if journal is not None:
        for fp, chunks in journal.load().items():
            if fp in wanted:
                done.setdefault(fp, chunks)
    todo = [d for d in docs if prints[d.id] not in done]

    cache = default_cache()
    namespace = f"chunks:{chunking_hash(pipeline)}"
    if todo and cache.readable:
        for fp, blob in cache.get_many(namespace, [prints[d.id] for d in todo]).items():
            try:
                done[fp] = [Chunk.from_dict(c) for c in json.loads(blob)]
            except (ValueError, KeyError, TypeError):
                continue
        cached = [d for d in todo if prints[d.id] in done]
        if journal is not None and cached:
            journal.append([(prints[d.id], done[prints[d.id]]) for d in cached])
        todo = [d for d in todo if prints[d.id] not in done]

    report.documents_processed = len(todo)
    if todo:
        with tqdm(total=len(todo), desc="chunking", unit="doc", disable=None if len(todo) > 1 else True) as bar:
            batch: list[Document] = []
            size = 0
            for position, doc in enumerate(todo):
                batch.append(doc)
                size += len(doc.text)
                if len(batch) >= BATCH_DOCUMENTS or size >= BATCH_CHUNKS * 1000 or position == len(todo) - 1:
                    results = _chunk_batch(pipeline, batch, usage)
                    records = [(prints[d.id], chunks) for d, chunks in zip(batch, results)]
                    for fp, chunks in records:
                        done[fp] = chunks
                    if journal is not None:
                        journal.append(records)
                    if cache.writable:
                        cache.put_many(namespace, {fp: json.dumps([c.to_dict() for c in chunks], ensure_ascii=False,
                                                                  default=str).encode("utf-8")
                                                   for fp, chunks in records})
                    bar.update(len(batch))
                    batch, size = [], 0

    all_chunks = [c for d in docs for c in done[prints[d.id]]]
    with usage.timed("index.retriever"):
        pipeline._run("index.retriever", lambda: retriever.index(all_chunks))
    if store is not None:
        documents = [{"id": d.id, "fingerprint": prints[d.id], "chunks": len(done[prints[d.id]]),
                      "source_id": d.metadata.get("source_id"), "source": d.metadata.get("source")}
                     for d in docs]
        with usage.timed("index.store"):
            pipeline._run("index.store", lambda: store.commit(retriever, documents, pipeline.index_config(), index_hash))
    pipeline.retriever_ = retriever
    report.chunks = len(all_chunks)
    return report


def open_existing_index(pipeline: Any) -> Any:
    """Load the pipeline's persisted index (verified) into its configured retriever and return it."""
    store = store_for(pipeline)
    if store is None:
        raise IndexStoreError("index.store is ':memory:', so there is no persisted index to open; "
                              "call pipeline.index(...) in this process first.")
    if not store.exists():
        raise IndexStoreError(
            f"no index at {store.path} for this configuration (index hash {pipeline.index_hash()}). Build it first "
            "with `ragkit index CONFIG` (or pipeline.index()); `ragkit run CONFIG` builds it too."
        )
    retriever = pipeline._stage("index.retriever")
    with pipeline._timed("index.store"):
        store.verify(pipeline.index_hash())
        pipeline._run("index.retriever", lambda: retriever.load(store.retriever_dir()))
    return retriever


def describe(report: Any) -> str:
    """One line summarising an index report (for CLI output and logs)."""
    what = "reused the stored index" if report.reused else (
        f"chunked {report.documents_processed} new or changed document(s), removed {report.documents_removed}")
    where = report.store or "memory"
    return f"index: {report.documents} documents, {report.chunks} chunks; {what}; store: {where}"

