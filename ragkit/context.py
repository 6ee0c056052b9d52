"""The read-only view of the index that query stages may ask for: :class:`QueryContext`.

A selector or aggregator that needs more than its inputs declares it in the class attribute
``needs_context`` (a set of :data:`CONTEXT_NEEDS`); the pipeline then calls
``select(query, candidates, context=ctx)`` / ``aggregate(query, selected, context=ctx)``. Stages that
declare nothing are called without a context, so plain two-argument stages keep working.

- ``"chunks"``: :meth:`QueryContext.chunks_of` (a document's chunks in document order) and
  :meth:`QueryContext.neighbors`;
- ``"trees"``: :meth:`QueryContext.document_tree` (needs ``index.tree`` in the config; ``ragkit
  validate`` rejects the stage otherwise);
- ``"embedder"``: the pipeline's embedder (cached);
- ``"tokenizer"``: :meth:`QueryContext.count_tokens` with the configured tokenizer.

Example:
    >>> from ragkit.types import Chunk, Document
    >>> doc = Document.from_text("One. Two. Three.")
    >>> chunks = [Chunk.from_span(doc, s, e, 1) for s, e in [(10, 16), (0, 4), (5, 9)]]
    >>> ctx = QueryContext(chunks)
    >>> [c.text for c in ctx.chunks_of(doc.id)]
    ['One.', 'Two.', 'Three.']
    >>> [c.text for c in ctx.neighbors(chunks[1].id, window=1)]
    ['One.', 'Two.']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ragkit.errors import RagkitError
from ragkit.types import Chunk, DocTree, Usage

#: What a query stage may declare in ``needs_context``.
CONTEXT_NEEDS = frozenset({"chunks", "trees", "embedder", "tokenizer"})


class ContextError(RagkitError):
    """A query stage asked the context for something this index cannot provide."""


def context_needs(stage: Any) -> frozenset[str]:
    """The context needs a stage (instance or class) declares; unknown names are an error."""
    needs = frozenset(getattr(stage, "needs_context", ()) or ())
    unknown = needs - CONTEXT_NEEDS
    if unknown:
        name = stage.__name__ if isinstance(stage, type) else type(stage).__name__
        raise ContextError(f"{name}.needs_context names {sorted(unknown)}; allowed: {sorted(CONTEXT_NEEDS)}")
    return needs


class QueryContext:
    """Read-only access to the indexed chunks, document trees, embedder and tokenizer for one query."""

    def __init__(self, chunks: Sequence[Chunk] = (), *, trees: Mapping[str, DocTree] | None = None,
                 embedder: Any = None, count_tokens: Callable[[str], int] | None = None,
                 usage: Usage | None = None) -> None:
        self._chunks = chunks
        self._trees = trees
        self._embedder = embedder
        self._count_tokens = count_tokens
        self.usage = usage if usage is not None else Usage()
        self._by_doc: dict[str, list[Chunk]] | None = None
        self._position: dict[str, tuple[str, int]] | None = None

    def _index(self) -> None:
        if self._by_doc is not None:
            return
        by_doc: dict[str, list[Chunk]] = {}
        for chunk in self._chunks:
            by_doc.setdefault(chunk.doc_id, []).append(chunk)
        position: dict[str, tuple[str, int]] = {}
        for doc_id, chunks in by_doc.items():
            chunks.sort(key=lambda c: (c.start, c.end))
            for i, chunk in enumerate(chunks):
                position[chunk.id] = (doc_id, i)
        self._by_doc, self._position = by_doc, position

    def chunks_of(self, doc_id: str) -> list[Chunk]:
        """The indexed chunks of document ``doc_id`` in document order (empty if it has none)."""
        self._index()
        assert self._by_doc is not None
        return list(self._by_doc.get(doc_id, ()))

    def neighbors(self, chunk_id: str, window: int = 1) -> list[Chunk]:
        """The chunk and up to ``window`` chunks on each side of it in its document, in document order."""
        self._index()
        assert self._by_doc is not None and self._position is not None
        if chunk_id not in self._position:
            raise ContextError(f"chunk {chunk_id!r} is not in this index; neighbours exist only for indexed chunks")
        doc_id, i = self._position[chunk_id]
        chunks = self._by_doc[doc_id]
        return chunks[max(0, i - window): i + window + 1]

    def document_tree(self, doc_id: str) -> DocTree | None:
        """The document's tree, ``None`` if the builder made none for it.

        Raises :class:`ContextError` when the index was built without ``index.tree``.
        """
        if self._trees is None:
            raise ContextError("this index has no document trees; set index.tree (e.g. {type: headings}) and "
                               "re-index to use a tree-based stage")
        return self._trees.get(doc_id)

    @property
    def has_trees(self) -> bool:
        return self._trees is not None

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            raise ContextError("this pipeline has no embedder in its query context")
        return self._embedder

    def count_tokens(self, text: str) -> int:
        """``text``'s length in the configured tokenizer (default ``minilm``)."""
        if self._count_tokens is None:
            from ragkit.text.tokenizers import get_tokenizer

            self._count_tokens = get_tokenizer("minilm").count
        return int(self._count_tokens(text))
