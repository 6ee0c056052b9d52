"""LlamaIndex adapters: any ragkit chunker as a ``NodeParser``, a ragkit pipeline as a retriever.

Needs ``pip install 'ragkit[llamaindex]'`` (``llama-index-core``); importing this module without it
raises :class:`~ragkit.errors.MissingDependencyError`.

Nodes carry the chunker's exact offsets (``start_char_idx``/``end_char_idx``, which LlamaIndex's own
post-processing would otherwise re-derive by searching the text), ragkit's chunk id as ``node_id``,
``PREVIOUS``/``NEXT`` relationships between neighbouring chunks of a document and ``SOURCE``/``PARENT``
pointing at the document.

Example:
    >>> from llama_index.core import Document
    >>> parser = RagkitNodeParser.from_chunker("sentence", max_tokens=6)
    >>> nodes = parser.get_nodes_from_documents([Document(text="# Title\\n\\nOne sentence. Another one.")])
    >>> [(n.text, n.start_char_idx, n.end_char_idx, n.metadata["heading_path"]) for n in nodes]
    [('# Title\\n\\nOne sentence.', 0, 22, ['Title']), ('Another one.', 23, 35, ['Title'])]
    >>> nodes[1].prev_node.node_id == nodes[0].node_id
    True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ragkit._lazy import require
from ragkit.integrations import as_document, build_chunker, chunk_metadata, load_pipeline

require("llama_index.core", "llamaindex", "the LlamaIndex adapters")

from llama_index.core.base.base_retriever import BaseRetriever  # noqa: E402
from llama_index.core.node_parser import NodeParser  # noqa: E402
from llama_index.core.schema import (  # noqa: E402
    BaseNode,
    MetadataMode,
    NodeRelationship,
    NodeWithScore,
    QueryBundle,
    RelatedNodeInfo,
    TextNode,
)
from llama_index.core.utils import get_tqdm_iterable  # noqa: E402
from pydantic import Field, PrivateAttr  # noqa: E402

__all__ = ["RagkitLlamaRetriever", "RagkitNodeParser"]

#: Metadata keys kept out of the text LlamaIndex embeds and shows the LLM (``heading_path`` stays in).
_HIDDEN_KEYS = ["chunk_id", "doc_id", "start_index", "end_index", "token_count", "score", "score_source", "headings"]


class RagkitNodeParser(NodeParser):
    """A LlamaIndex ``NodeParser`` that cuts each document (or node) with a ragkit chunker.

    Build it with :meth:`from_chunker`. Every node's ``node_id`` is ragkit's chunk id, its offsets are
    exact (``doc.text[start_char_idx:end_char_idx] == node.text``), and its metadata holds the input's
    metadata plus :func:`~ragkit.integrations.chunk_metadata` (ids, offsets, heading path, token count).

    Args:
        chunker_spec: the chunker as given (instance, type name or spec mapping); see :meth:`from_chunker`.
        detect_headings: find Markdown/WikiText headings in the text when the input metadata has no
            ``headings`` (they give ``heading_path``).
    """

    chunker_spec: Any = Field(default="recursive", description="ragkit chunker: instance, type name or spec.")
    detect_headings: bool = Field(default=True, description="Detect Markdown/WikiText headings in the text.")
    _chunker: Any = PrivateAttr(default=None)

    @classmethod
    def from_chunker(cls, chunker: Any = "recursive", *, config: str | Path | Mapping[str, Any] | None = None,
                     detect_headings: bool = True, include_metadata: bool = True, **params: Any) -> RagkitNodeParser:
        """Build a parser from a ragkit chunker instance, type name or spec, plus chunker ``params``.

        Args:
            chunker: a ragkit chunker instance, a type name (``ragkit components``) or a spec mapping.
            config: a ragkit config (path or mapping) whose backends LLM/embedding chunkers use.
            detect_headings: see the class.
            include_metadata: copy the document's metadata into its nodes (LlamaIndex's option).
            **params: chunker parameters (``max_tokens=200``, ...).
        """
        parser = cls(chunker_spec=chunker if isinstance(chunker, (str, Mapping)) else type(chunker).__name__,
                     detect_headings=detect_headings, include_metadata=include_metadata)
        parser._chunker = build_chunker(chunker, params, config)
        return parser

    @property
    def chunker(self) -> Any:
        """The ragkit chunker (built from ``chunker_spec`` on first use)."""
        if self._chunker is None:
            self._chunker = build_chunker(self.chunker_spec)
        return self._chunker

    def _parse_nodes(self, nodes: Sequence[BaseNode], show_progress: bool = False, **kwargs: Any) -> list[BaseNode]:
        out: list[BaseNode] = []
        for node in get_tqdm_iterable(nodes, show_progress, "Chunking with ragkit"):
            text = node.get_content(metadata_mode=MetadataMode.NONE)
            headings = {"headings": node.metadata["headings"]} if "headings" in node.metadata else None
            doc = as_document(text, headings, detect_headings=self.detect_headings)
            source = node.as_related_node_info()
            for chunk in self.chunker.chunk(doc):
                out.append(TextNode(
                    id_=chunk.id, text=chunk.text, start_char_idx=chunk.start, end_char_idx=chunk.end,
                    metadata=chunk_metadata(chunk),
                    excluded_embed_metadata_keys=list(_HIDDEN_KEYS), excluded_llm_metadata_keys=list(_HIDDEN_KEYS),
                    relationships={NodeRelationship.SOURCE: source, NodeRelationship.PARENT: source},
                ))
        return out

    def _postprocess_parsed_nodes(self, nodes: list[BaseNode], parent_doc_map: dict[str, Any]) -> list[BaseNode]:
        # LlamaIndex re-derives offsets by searching the text (wrong for repeated text); keep the chunker's.
        nodes = super()._postprocess_parsed_nodes(nodes, parent_doc_map)
        for node in nodes:
            if isinstance(node, TextNode):
                node.start_char_idx = node.metadata["start_index"]
                node.end_char_idx = node.metadata["end_index"]
        return nodes


class RagkitLlamaRetriever(BaseRetriever):
    """A LlamaIndex retriever over a ragkit pipeline's query phase: retrieve → (rerank) → select.

    Returns the pipeline's selected chunks in order as ``NodeWithScore`` (``node_id`` = ragkit chunk id,
    exact offsets, ``SOURCE`` = the ragkit document id). The pipeline's index must exist.

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
        >>> [n.node.text for n in RagkitLlamaRetriever(pipe).retrieve("Where is Rome?")]
        ['Rome is in Italy.']
    """

    def __init__(self, pipeline: Any, *, k: int | None = None, filter: Mapping[str, Any] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pipeline = load_pipeline(pipeline)
        self.k = k
        self.filter = dict(filter) if filter is not None else None

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        selected = self.pipeline.select(query_bundle.query_str, k=self.k, filter=self.filter)
        return [NodeWithScore(node=_node(s), score=float(s.score)) for s in selected]


def _node(scored: Any) -> TextNode:
    chunk = scored.chunk
    return TextNode(id_=chunk.id, text=chunk.text, start_char_idx=chunk.start, end_char_idx=chunk.end,
                    metadata=chunk_metadata(chunk, scored), excluded_embed_metadata_keys=list(_HIDDEN_KEYS),
                    excluded_llm_metadata_keys=list(_HIDDEN_KEYS),
                    relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=chunk.doc_id)})
