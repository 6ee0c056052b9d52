"""One ``typing.Protocol`` per stage kind: the contracts of ARCHITECTURE.md as types.

The base classes (``ragkit.chunkers.base.Chunker`` and friends) implement these and add batch
forms and shared plumbing; a third-party stage only needs the methods below (the registry checks
them when the class is registered), so duck-typed classes work as well as subclasses.

Example:
    >>> from ragkit.selectors.top_k import TopKSelector
    >>> isinstance(TopKSelector(k=2), Selector)
    True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np

    from ragkit.context import QueryContext
    from ragkit.types import Answer, Chunk, DocTree, Document, Query, ScoredChunk


@runtime_checkable
class Chunker(Protocol):
    """Cuts one document into chunks whose text is verbatim ``doc.text[start:end]``."""
    def chunk(self, doc: Document) -> list[Chunk]: ...


@runtime_checkable
class Enricher(Protocol):
    """Adds metadata to chunks (never changes their text), keeping every chunk."""
    def enrich(self, chunks: Sequence[Chunk], docs: Mapping[str, Document]) -> list[Chunk]: ...


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 row vectors."""
    def embed_documents(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


@runtime_checkable
class Retriever(Protocol):
    """Indexes chunks and returns the best-scoring ones for a query, filters applied before top-k."""
    def index(self, chunks: Sequence[Chunk]) -> Any: ...

    def retrieve(self, query: Query | str, k: int = 10, filter: Mapping[str, Any] | None = None) -> list[ScoredChunk]: ...


@runtime_checkable
class Reranker(Protocol):
    """Re-orders retrieved candidates, best first."""
    def rerank(self, query: Query, scored: Sequence[ScoredChunk]) -> list[ScoredChunk]: ...


@runtime_checkable
class Selector(Protocol):
    """Chooses which candidates reach the generator (a subset, in prompt order)."""
    def select(self, query: Query, candidates: Sequence[ScoredChunk],
               context: QueryContext | None = None) -> list[ScoredChunk]: ...


@runtime_checkable
class Aggregator(Protocol):
    """Turns the selected chunks into an :class:`~ragkit.types.Answer`."""
    def aggregate(self, query: Query, selected: Sequence[ScoredChunk],
                  context: QueryContext | None = None) -> Answer: ...


@runtime_checkable
class Scorer(Protocol):
    """Scores many texts against one query in one batched call (higher is better)."""
    def score(self, query: Query, texts: Sequence[str]) -> np.ndarray: ...


@runtime_checkable
class TreeBuilder(Protocol):
    """Builds one document tree whose leaves are verbatim spans of the document."""
    def build(self, doc: Document, chunks: Sequence[Chunk]) -> DocTree: ...


@runtime_checkable
class LLM(Protocol):
    """Generates completions for a batch of requests."""
    def generate(self, requests: Sequence[Any]) -> list[Any]: ...


PROTOCOL_BY_KIND: dict[str, type] = {
    "chunker": Chunker, "enricher": Enricher, "embedder": Embedder, "retriever": Retriever,
    "reranker": Reranker, "selector": Selector, "aggregator": Aggregator, "scorer": Scorer,
    "tree": TreeBuilder, "llm": LLM,
}
