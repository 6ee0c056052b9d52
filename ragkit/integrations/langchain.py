"""LangChain adapters: any ragkit chunker as a ``TextSplitter``, a ragkit pipeline as a ``BaseRetriever``.

Needs ``pip install 'ragkit[langchain]'`` (``langchain-core`` and ``langchain-text-splitters``);
importing this module without them raises :class:`~ragkit.errors.MissingDependencyError`.

Unlike LangChain's own splitters, whose ``start_index`` is found by searching the text again, the
offsets here are the chunker's: ``text[start_index:end_index] == page_content`` always, and
``chunk_id`` equals the id ragkit gives the chunk.

Example:
    >>> splitter = RagkitTextSplitter("sentence", max_tokens=6)
    >>> docs = splitter.create_documents(["# Title\\n\\nOne sentence. Another one."])
    >>> [(d.page_content, d.metadata["start_index"], d.metadata["heading_path"]) for d in docs]
    [('# Title\\n\\nOne sentence.', 0, ['Title']), ('Another one.', 23, ['Title'])]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ragkit._lazy import require
from ragkit.integrations import as_document, build_chunker, chunk_metadata, load_pipeline

require("langchain_core", "langchain", "the LangChain adapters")
require("langchain_text_splitters", "langchain", "the LangChain text splitter")

from langchain_core.callbacks import CallbackManagerForRetrieverRun  # noqa: E402
from langchain_core.documents import Document as LCDocument  # noqa: E402
from langchain_core.retrievers import BaseRetriever  # noqa: E402
from langchain_text_splitters import TextSplitter  # noqa: E402
from pydantic import ConfigDict  # noqa: E402

__all__ = ["RagkitRetriever", "RagkitTextSplitter"]


class RagkitTextSplitter(TextSplitter):
    """A LangChain ``TextSplitter`` that cuts with a ragkit chunker.

    Each output document's metadata holds the input document's metadata plus ``start_index`` and
    ``end_index`` (exact character offsets into the input text), ``chunk_id`` and ``doc_id`` (ragkit's
    ids), ``heading_path`` and ``token_count`` (ragkit's tokenizer), and any metadata the chunker adds.

    Args:
        chunker: a ragkit chunker instance, a type name (``ragkit components``) or a spec mapping.
        config: a ragkit config (path or mapping) whose backends LLM/embedding chunkers use.
        detect_headings: find Markdown/WikiText headings in the text (as ragkit's Markdown loader does)
            when the input metadata has no ``headings``; they give ``heading_path``.
        **params: chunker parameters (``max_tokens=200``, ``overlap_tokens=0``, ...).

    Example:
        >>> from langchain_core.documents import Document
        >>> splitter = RagkitTextSplitter({"type": "token", "max_tokens": 4})
        >>> out = splitter.split_documents([Document(page_content="one two three four five six", metadata={"src": "a"})])
        >>> [(d.page_content, d.metadata["start_index"], d.metadata["src"]) for d in out]
        [('one two three four', 0, 'a'), ('five six', 19, 'a')]
    """

    def __init__(self, chunker: Any = "recursive", *, config: str | Path | Mapping[str, Any] | None = None,
                 detect_headings: bool = True, **params: Any) -> None:
        super().__init__(add_start_index=False, strip_whitespace=False)
        self.chunker = build_chunker(chunker, params, config)
        self.detect_headings = detect_headings

    def _ragkit_chunks(self, text: str, metadata: Mapping[str, Any] | None = None) -> list[Any]:
        return self.chunker.chunk(as_document(text, metadata, detect_headings=self.detect_headings))

    def split_text(self, text: str) -> list[str]:
        """The chunk texts, verbatim spans of ``text`` in document order."""
        return [c.text for c in self._ragkit_chunks(text)]

    def create_documents(self, texts: list[str], metadatas: list[dict[Any, Any]] | None = None) -> list[LCDocument]:
        """One LangChain document per chunk, with ragkit's offsets, ids, heading path and token count."""
        metadatas = metadatas or [{}] * len(texts)
        out: list[LCDocument] = []
        for text, meta in zip(texts, metadatas, strict=True):
            headings = {"headings": meta["headings"]} if "headings" in meta else None
            for chunk in self._ragkit_chunks(text, headings):
                out.append(LCDocument(page_content=chunk.text, id=chunk.id,
                                      metadata={**dict(meta), **chunk_metadata(chunk)}))
        return out

    def split_documents(self, documents: Iterable[LCDocument]) -> list[LCDocument]:
        """Split LangChain documents; each output keeps its input's metadata."""
        documents = list(documents)
        return self.create_documents([d.page_content for d in documents], [dict(d.metadata) for d in documents])


class RagkitRetriever(BaseRetriever):
    """A LangChain retriever over a ragkit pipeline's query phase: retrieve → (rerank) → select.

    Returns the chunks the pipeline's aggregator would be given, in order (so ``corag``/``meteora``
    selector chains apply), as LangChain documents with :func:`~ragkit.integrations.chunk_metadata`
    (offsets, ids, heading path, token count, ``score``). The pipeline's index must exist (``pipe.index``
    or ``ragkit index``); it is opened on the first call.

    Args:
        pipeline: a :class:`~ragkit.pipeline.Pipeline`, a YAML path or a config mapping.
        k: candidates to retrieve (default: the config's ``query.retrieve.k``).
        filter: metadata filter (default: the config's ``query.retrieve.filter``).

    Example:
        >>> from ragkit import Pipeline
        >>> from ragkit.types import Document
        >>> pipe = Pipeline.from_config({
        ...     "backends": {"llm": {"default": {"type": "fake"}}, "embeddings": {"default": {"type": "fake"}}},
        ...     "index": {"chunker": {"type": "sentence", "max_tokens": 6}, "retriever": {"type": "bm25"},
        ...               "store": ":memory:"}, "query": {"selector": {"type": "top_k", "k": 1}}})
        >>> _ = pipe.index([Document.from_text("Paris is in France. Rome is in Italy.")])
        >>> [d.page_content for d in RagkitRetriever(pipeline=pipe).invoke("Where is Rome?")]
        ['Rome is in Italy.']
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    pipeline: Any
    k: int | None = None
    filter: dict[str, Any] | None = None

    def __init__(self, pipeline: Any, **kwargs: Any) -> None:
        super().__init__(pipeline=load_pipeline(pipeline), **kwargs)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[LCDocument]:
        selected = self.pipeline.select(query, k=self.k, filter=self.filter)
        return to_documents(selected)


def to_documents(scored: Sequence[Any]) -> list[LCDocument]:
    """LangChain documents for ragkit ``ScoredChunk`` s (order kept)."""
    return [LCDocument(page_content=s.chunk.text, id=s.chunk.id, metadata=chunk_metadata(s.chunk, s)) for s in scored]
