"""The index phase on a Ray cluster (``engine: {type: ray}`` / ``--engine ray``), and the eval fan-out.

Same stages, same store, same results as the ``local`` engine; only where the work runs changes:

- **chunk (+ enrich)**: Ray Data over the documents to chunk (those the store, the resume journal and the
  chunk cache do not already hold: :func:`ragkit.indexing.run_index_phase` decides that, as for
  ``local``), in batches of ``batch_documents``, on a pool of CPU workers (``num_cpus`` of them, default
  all the cluster's CPUs). Each worker rebuilds the pipeline's index stages from the config once and
  calls the same :meth:`~ragkit.indexing.IndexStages.chunk_batch` as ``local``. Results stream back in
  document order, so the driver journals and caches them as they arrive (a killed run resumes).
- **embed**: the retriever indexes on the driver as usual (BM25 state, the view's fitting, FAISS), but
  the texts its embedding view hands to the embedder are embedded by Ray Data on a pool of
  ``embed_actors`` actors (one GPU each when the cluster has GPUs; texts sorted by length so batches
  pad little; ``batch_size`` texts per actor call, default 4× the embedder's own ``batch_size``).
  The embedding cache still applies: only texts it misses travel.
- **commit**: one commit into the same atomic store (:mod:`ragkit.store`) the ``local`` engine writes,
  from the driver: a killed driver leaves the previous index loadable.

Failed worker batches are retried by Ray (``max_retries``). Usage (chunker/enricher LLM calls, embedding
calls and texts) is summed over the workers into the pipeline's usage book. Ray's own progress bars go
to stderr. Workers need ragkit, the config's files and the packaged models where ``RAGKIT_HOME`` points
on each node; the store is written by the driver, so point ``index.store`` at a shared filesystem path
when other machines read the index.

Example:
    >>> engine = RayEngine(num_cpus=2, embed_actors=1)      # no Ray started until the index phase runs
    >>> engine.num_cpus, engine.embed_actors, engine.address is None
    (2, 1, True)
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from pydantic import Field

from ragkit._lazy import require
from ragkit.errors import ConfigError
from ragkit.stage import Component
from ragkit.types import Chunk, Document, Usage
from ragkit.usage import UsageBook, record_usage

#: Ray's retries of a failed worker batch (task or actor task) before the run fails.
MAX_RETRIES = 3
#: Texts per embedder-actor call on a GPU when ``batch_size`` is not set: the embedder's own GPU path cuts
#: them into batches of 2,048 and tokenises ahead, so fewer, larger Ray blocks keep the device busier.
GPU_CALL_TEXTS = 8192


def init_ray(address: str | None = None, num_cpus: int | None = None,
             runtime_env: Mapping[str, Any] | None = None) -> Any:
    """Import Ray (extra ``ray``) and connect: to ``address`` (``auto``, ``ray://host:port``) or a local cluster.

    An already initialised Ray (e.g. a test fixture's, or a previous call's) is reused as it is.
    ``num_cpus`` sizes a local cluster only; a cluster reached by address has its own resources.
    """
    ray = require("ray", "ray", "the ray index engine (--engine ray)")
    require("ray.data", "ray", "the ray index engine (Ray Data)")
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "logging_level": "ERROR"}
        if address:
            kwargs["address"] = address
        elif num_cpus:
            kwargs["num_cpus"] = num_cpus
        if runtime_env:
            kwargs["runtime_env"] = dict(runtime_env)
        ray.init(**kwargs)
    return ray


def _data_context(ray: Any) -> None:
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True  # results come back in document / text order


class _ChunkWorker:
    """A Ray Data actor: the pipeline's index stages, rebuilt once from the config, chunking batches."""

    def __init__(self, config: Mapping[str, Any], base_dir: str, data_root: str | None) -> None:
        from ragkit.pipeline import Pipeline

        worker_config = dict(config)
        worker_config["engine"] = {"type": "local"}
        self.pipeline = Pipeline(worker_config, name="ray-worker", base_dir=base_dir, data_root=data_root)
        self.stages = self.pipeline.index_stages()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        docs = [Document.from_dict(json.loads(str(s))) for s in batch["doc"]]
        book = UsageBook()
        results = self.stages.chunk_batch(docs, book)
        usage = {slot: u.to_dict() for slot, u in book.slots.items()}
        rows = [json.dumps([c.to_dict() for c in chunks], ensure_ascii=False, default=str) for chunks in results]
        usages = [json.dumps(usage) if i == 0 else "" for i in range(len(docs))]
        return {"pos": np.asarray(batch["pos"]), "chunks": np.asarray(rows, dtype=object),
                "usage": np.asarray(usages, dtype=object)}


class _EmbedWorker:
    """A Ray Data actor holding one embedder (on its GPU when it was given one)."""

    def __init__(self, cls: type, params: Mapping[str, Any]) -> None:
        params = dict(params)
        if "show_progress" in params:
            params["show_progress"] = False
        self.embedder = cls(**params)
        warm_up = getattr(self.embedder, "warm_up", None)
        if callable(warm_up):  # load the model when the actor starts, not inside its first batch
            warm_up()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        texts = [str(t) for t in batch["text"]]
        start = time.perf_counter()
        vectors = np.asarray(self.embedder.embed_documents(texts), dtype=np.float32)
        busy = np.zeros(len(texts), dtype=np.float64)
        busy[:1] = time.perf_counter() - start  # the call's time, carried by its first row
        return {"pos": np.asarray(batch["pos"]), "vector": vectors, "busy_s": busy}


class _RayEmbedder:
    """Stands in for an embedder during ``retriever.index``: its texts are embedded on the Ray actor pool."""

    def __init__(self, inner: Any, engine: RayEngine) -> None:
        self.inner = inner
        self.engine = engine

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in {"inner", "engine"}:
            raise AttributeError(name)
        return getattr(self.inner, name)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.asarray(self.inner.embed_documents(texts), dtype=np.float32)
        return self.engine.embed(self.inner, texts)


class RayEngine(Component):
    """Runs the index phase on Ray: chunking on CPU workers, embedding on an actor pool, one commit.

    Args:
        address: the cluster (``auto``, ``ray://host:10001``); ``None`` starts a local Ray (or reuses
            the one already initialised in this process).
        num_cpus: CPU workers that chunk (and the size of a local cluster); default: the cluster's CPUs.
        embed_actors: embedder actors (one GPU each when the cluster has GPUs).
        num_gpus: GPUs per embedder actor; ``None``: 1 when the cluster has GPUs, else 0.
        batch_documents: documents per chunking task.
        batch_size: texts per embedder actor call; ``None``: 4× the embedder's ``batch_size`` (or 256).
        runtime_env: Ray runtime environment for a cluster (``working_dir``, ``py_modules``, ``env_vars``).

    Example:
        >>> RayEngine(address="auto", batch_documents=8).batch_documents
        8
    """

    def __init__(
        self,
        *,
        address: str | None = None,
        num_cpus: Annotated[int, Field(gt=0)] | None = None,
        embed_actors: Annotated[int, Field(gt=0)] = 1,
        num_gpus: Annotated[float, Field(ge=0)] | None = None,
        batch_documents: Annotated[int, Field(gt=0)] = 16,
        batch_size: Annotated[int, Field(gt=0)] | None = None,
        runtime_env: dict[str, Any] | None = None,
    ) -> None:
        for name, value in (("num_cpus", num_cpus), ("embed_actors", embed_actors), ("batch_documents", batch_documents),
                            ("batch_size", batch_size)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"engine.{name}: got {value!r}; give a positive integer (or leave it out)")
        if num_gpus is not None and (not isinstance(num_gpus, (int, float)) or num_gpus < 0):
            raise ConfigError(f"engine.num_gpus: got {num_gpus!r}; give a number ≥ 0 (or leave it out for auto)")
        self.address = address
        self.num_cpus = num_cpus
        self.embed_actors = embed_actors
        self.num_gpus = num_gpus
        self.batch_documents = batch_documents
        self.batch_size = batch_size
        self.runtime_env = runtime_env
        self._pipeline: dict[str, Any] | None = None
        self._book: UsageBook | None = None
        #: What the last embedding on the actor pool measured: ``embed_wall_s`` (driver, start to last
        #: vector), ``embed_actor_busy_s`` (summed time inside the actors' embed calls), ``embed_calls``.
        self.stats: dict[str, float] = {}

    # ------------------------------------------------------------------ wiring
    def bind_pipeline(self, pipeline: Any) -> None:
        """Remember what workers need to rebuild the index stages (the pipeline calls this)."""
        self._pipeline = {"config": pipeline.to_config(), "base_dir": str(Path(pipeline.base_dir).resolve()),
                          "data_root": None if pipeline.data_root is None else str(pipeline.data_root)}
        self._book = pipeline.usage_book

    def _ray(self) -> Any:
        ray = init_ray(self.address, self.num_cpus, self.runtime_env)
        _data_context(ray)
        return ray

    def _cpus(self, ray: Any) -> int:
        return self.num_cpus or max(1, int(ray.cluster_resources().get("CPU", 1)))

    # ------------------------------------------------------------------ engine contract
    def chunk_documents(self, docs: Sequence[Document],
                        chunk_batch: Callable[[list[Document]], list[list[Chunk]]]
                        ) -> Iterator[tuple[list[Document], list[list[Chunk]]]]:
        """Chunk ``docs`` on Ray workers; yield ``(documents, chunks per document)`` in document order.

        Workers rebuild the stages from the config :meth:`bind_pipeline` stored; an engine used outside
        a pipeline has no config, so it calls ``chunk_batch`` in this process instead.
        """
        docs = list(docs)
        if not docs:
            return
        if self._pipeline is None:  # no config to rebuild the stages from: chunk here, batch by batch
            for start in range(0, len(docs), self.batch_documents):
                batch = docs[start:start + self.batch_documents]
                yield batch, chunk_batch(batch)
            return
        ray = self._ray()
        workers = min(self._cpus(ray), math.ceil(len(docs) / self.batch_documents))
        items = [{"pos": i, "doc": json.dumps(d.to_dict(), ensure_ascii=False, default=str)} for i, d in enumerate(docs)]
        ds = ray.data.from_items(items, override_num_blocks=max(1, math.ceil(len(docs) / self.batch_documents)))
        ds = ds.map_batches(_ChunkWorker, fn_constructor_kwargs=self._pipeline, batch_size=self.batch_documents,
                            batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=1)
        usage: dict[str, Usage] = {}
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            positions = [int(p) for p in batch["pos"]]
            results = [[Chunk.from_dict(c) for c in json.loads(str(s))] for s in batch["chunks"]]
            for blob in batch["usage"]:
                for slot, values in (json.loads(str(blob)) if blob else {}).items():
                    usage[slot] = usage.get(slot, Usage()) + Usage(**values)
            yield [docs[p] for p in positions], results
        book = getattr(chunk_batch, "usage", None)  # the run's usage book when the phase hands it over
        book = book if isinstance(book, UsageBook) else self._book
        if book is not None:
            for slot, total in usage.items():
                book.add(slot, total)

    def build_index(self, retriever: Any, chunks: list[Chunk]) -> None:
        """``retriever.index(chunks)`` on the driver, with the embedder's work sent to the Ray actor pool."""
        cached = getattr(retriever, "embedder", None)
        inner = getattr(cached, "inner", None) if cached is not None else None
        if inner is None or not callable(getattr(inner, "embed_documents", None)):
            retriever.index(chunks)  # nothing to embed (bm25) or an embedder outside the cache wrapper
            return
        cached.inner = _RayEmbedder(inner, self)
        try:
            retriever.index(chunks)
        finally:
            cached.inner = inner

    # ------------------------------------------------------------------ embedding on the actor pool
    def embed(self, embedder: Any, texts: list[str]) -> np.ndarray:
        """Embed ``texts`` with copies of ``embedder`` on Ray actors; rows in the order of ``texts``."""
        ray = self._ray()
        gpus = self.num_gpus
        if gpus is None:
            gpus = 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
        cpus = 1 if gpus else max(1, self._cpus(ray) // self.embed_actors)
        size = self.batch_size or 4 * int(getattr(embedder, "batch_size", 64) or 64)
        if gpus and not self.batch_size:
            size = max(size, GPU_CALL_TEXTS)
        started = time.perf_counter()
        order = sorted(range(len(texts)), key=lambda i: (len(texts[i]), i))
        blocks = max(1, math.ceil(len(texts) / size))
        ds = ray.data.from_items([{"pos": i, "text": texts[i]} for i in order], override_num_blocks=blocks)
        ds = ds.map_batches(_EmbedWorker, fn_constructor_kwargs={"cls": type(embedder), "params": embedder.get_params()},
                            batch_size=size, batch_format="numpy", num_cpus=cpus, num_gpus=gpus,
                            compute=ray.data.ActorPoolStrategy(size=min(self.embed_actors, blocks)))
        out: np.ndarray | None = None
        calls, busy = 0, 0.0
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            vectors = np.asarray(batch["vector"], dtype=np.float32)
            if out is None:
                out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
            out[np.asarray(batch["pos"], dtype=np.int64)] = vectors
            busy += float(np.sum(batch["busy_s"]))
            calls += 1
        record_usage(embedding_calls=calls, embedded_texts=len(texts))
        self.stats = {"embed_wall_s": time.perf_counter() - started, "embed_actor_busy_s": busy,
                      "embed_calls": float(calls), "embed_texts": float(len(texts))}
        assert out is not None
        return out


def map_tasks(fn: Callable[..., Any], calls: Sequence[tuple[Any, ...]], *, address: str | None = None,
              num_cpus: int | None = None, runtime_env: Mapping[str, Any] | None = None,
              desc: str = "ray tasks") -> list[Any]:
    """``[fn(*args) for args in calls]`` as Ray tasks (one CPU each, retried on failure), results in order.

    ``fn`` must be importable by the workers (a module-level function). Progress goes to stderr.
    """
    if not calls:
        return []
    from tqdm.auto import tqdm

    ray = init_ray(address, num_cpus, runtime_env)
    remote = ray.remote(num_cpus=1, max_retries=MAX_RETRIES)(fn)
    refs = [remote.remote(*args) for args in calls]
    pending = list(refs)
    with tqdm(total=len(refs), desc=desc, unit="task", file=sys.stderr, disable=None) as bar:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            bar.update(len(done))
    return ray.get(refs)
