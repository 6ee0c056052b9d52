"""What ``ragkit serve`` holds: the committed pipeline, its index version, one writer at a time.

Readers take a reference to the committed pipeline and use it to the end of their request; ``/index``
builds into a fork of it (same loaded backends, its own stages and index) and commits by swapping the
reference, so a query never sees a half-built index. Queries run at most ``concurrency`` at a time
(``ragkit serve --concurrency``): local models (transformers) have no limit of their own, and the
OpenAI-compatible backend keeps its own ``concurrency`` inside each call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from ragkit.errors import IndexStoreError, RagkitError
from ragkit.stage import collaborator_params
from ragkit.types import Answer, Document


class WriterBusyError(RagkitError):
    """Another ``/index`` request is running (one writer at a time)."""


class NoIndexError(IndexStoreError):
    """No index is committed yet."""


class ServeState:
    """The served pipeline and its index version.

    Args:
        pipeline: the configured :class:`~ragkit.pipeline.Pipeline`.
        concurrency: queries run at the same time (the others wait their turn).

    Example:
        >>> from ragkit import Pipeline
        >>> pipe = Pipeline.from_config({
        ...     "backends": {"llm": {"default": {"type": "fake"}}, "embeddings": {"default": {"type": "fake"}}},
        ...     "index": {"chunker": {"type": "sentence", "max_tokens": 6}, "retriever": {"type": "bm25"},
        ...               "store": ":memory:"}})
        >>> state = ServeState(pipe).start()
        >>> state.index_version
        0
        >>> state.index([Document.from_text("Paris is in France. Rome is in Italy.")]).chunks
        2
        >>> state.query("Where is Rome?").chunks[0].chunk.text, state.index_version
        ('Rome is in Italy.', 1)
    """

    def __init__(self, pipeline: Any, *, concurrency: int = 4) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.pipeline = pipeline
        self.concurrency = concurrency
        self.index_version = 0
        self.report: Any = None
        self._writer = threading.Lock()
        self._slots = threading.BoundedSemaphore(concurrency)

    # ----------------------------------------------------------------- start-up
    def start(self) -> ServeState:
        """Build every stage, load the models once, and open the stored index when there is one."""
        pipe = self.pipeline
        warm(pipe)
        if pipe.config["index"].get("store") != ":memory:":
            try:
                self.report = pipe.open_index()
                self.index_version = 1
            except IndexStoreError:
                self.report = None  # nothing stored yet: POST /index (or `ragkit index CONFIG`) first
        return self

    # ----------------------------------------------------------------- readers
    def committed(self) -> Any:
        """The pipeline queries read (raises :class:`NoIndexError` before the first index)."""
        if self.index_version == 0:
            raise NoIndexError("no index is committed yet: POST /index with documents, or build it with "
                               "`ragkit index CONFIG` and restart `ragkit serve`")
        return self.pipeline

    def query(self, question: str, *, k: int | None = None, filter: Mapping[str, Any] | None = None) -> Answer:
        """Answer one question on the committed index (at most ``concurrency`` at a time)."""
        pipe = self.committed()
        with self._slots:
            return pipe.query(question, k=k, filter=filter)

    # ----------------------------------------------------------------- the writer
    @property
    def indexing(self) -> bool:
        return self._writer.locked()

    def index(self, docs: Sequence[Document], *, rebuild: bool = False) -> Any:
        """Run the index phase on ``docs`` in a fork and commit it; raises :class:`WriterBusyError` if one runs."""
        if not self._writer.acquire(blocking=False):
            raise WriterBusyError("another /index request is running (one writer at a time); retry when it "
                                  "finishes (GET /healthz shows indexing: true meanwhile)")
        try:
            start = time.perf_counter()
            fork = self.pipeline.fork()
            warm(fork)  # its stages are new objects (the backends, already loaded, are shared)
            report = fork.index_documents(list(docs), rebuild=rebuild, started=start)
            self.pipeline, self.report = fork, report  # commit: new readers see the new index
            self.index_version += 1
            return report
        finally:
            self._writer.release()


def warm(pipe: Any) -> None:
    """Build every stage of ``pipe`` and warm it and its backends up (each once), before any request."""
    stages = [pipe.chunker, *pipe.enrichers, pipe.retriever, pipe.reranker, *pipe.selectors, pipe.aggregator]
    warmed: set[int] = set()
    for stage in [pipe.embedder, *(s for s in stages if s is not None)]:
        for target in [stage, *(getattr(stage, name, None) for name in collaborator_params(type(stage)))]:
            if target is not None and id(target) not in warmed and callable(getattr(target, "warm_up", None)):
                warmed.add(id(target))
                target.warm_up()
