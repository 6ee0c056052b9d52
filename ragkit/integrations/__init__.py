"""Adapters that run ragkit inside other frameworks (optional extras, imported lazily).

- :mod:`ragkit.integrations.langchain` (``pip install 'ragkit[langchain]'``): ``RagkitTextSplitter``
  runs any ragkit chunker as a LangChain ``TextSplitter`` (exact ``start_index``, ragkit chunk id,
  heading path and token count in metadata); ``RagkitRetriever`` is a LangChain ``BaseRetriever`` over a
  pipeline's query phase (retrieve → rerank → select).
- :mod:`ragkit.integrations.llamaindex` (``pip install 'ragkit[llamaindex]'``): ``RagkitNodeParser``
  (prev/next/parent relationships, exact character offsets) and ``RagkitLlamaRetriever``.

Importing a submodule without its extra raises :class:`~ragkit.errors.MissingDependencyError` naming
the ``pip install`` line. The helpers here are shared by both adapters and need neither library.

Example:
    >>> chunker = build_chunker("sentence", {"max_tokens": 6})
    >>> doc = as_document("# Title\\n\\nOne sentence. Another one.")
    >>> [(c.text, c.metadata["heading_path"]) for c in chunker.chunk(doc)][-1]
    ('Another one.', ['Title'])
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ragkit.text.headings import find_headings
from ragkit.types import Chunk, Document, ScoredChunk, _plain

__all__ = ["as_document", "build_chunker", "chunk_metadata", "load_pipeline"]


def build_chunker(chunker: Any = "recursive", params: Mapping[str, Any] | None = None,
                  config: str | Path | Mapping[str, Any] | None = None) -> Any:
    """A ragkit chunker from an instance, a type name or a spec mapping (``{"type": ..., **params}``).

    Args:
        chunker: a chunker instance (returned as is), a registered type name (``ragkit components``),
            or a mapping with ``type`` and parameters.
        params: parameters added to a name or spec (``{"max_tokens": 200}``).
        config: a config (path or mapping) whose ``backends`` the chunker uses (LLM/embedding chunkers);
            default: the default local backends.

    Raises:
        ConfigError: unknown chunker type or invalid parameters (the message gives the dotted path).
    """
    if hasattr(chunker, "chunk") and not isinstance(chunker, (str, Mapping)):
        return chunker
    from ragkit.config.load import load_config
    from ragkit.pipeline import Pipeline

    spec = {"type": chunker} if isinstance(chunker, str) else dict(chunker)
    spec.update(params or {})
    base: dict[str, Any] = {}
    if config is not None:
        base = {"backends": load_config(config)["backends"]}
    return Pipeline.from_config({**base, "index": {"chunker": spec}}, name="chunk").chunker


def as_document(text: str, metadata: Mapping[str, Any] | None = None, *, detect_headings: bool = True) -> Document:
    """The ragkit :class:`~ragkit.types.Document` for a framework document's text.

    Its id is ``sha256(text)`` (as for every ragkit document), so chunk ids equal ragkit's own. Heading
    spans come from ``metadata["headings"]`` when present, else (``detect_headings``) from the text, as
    the Markdown loader finds them.
    """
    meta = dict(metadata or {})
    if "headings" not in meta and detect_headings:
        meta["headings"] = find_headings(text)
    return Document(id=Document.from_text(text).id, text=text, metadata=meta)


def chunk_metadata(chunk: Chunk, scored: ScoredChunk | None = None) -> dict[str, Any]:
    """Flat metadata describing a ragkit chunk: ids, exact offsets, heading path, token count (and score).

    Example:
        >>> doc = Document.from_text("Hello world.")
        >>> meta = chunk_metadata(Chunk.from_span(doc, 0, 5, token_count=1))
        >>> meta["start_index"], meta["end_index"], meta["token_count"]
        (0, 5, 1)
    """
    extra = {k: v for k, v in _plain(chunk.metadata).items() if k != "heading_path"}
    meta = {**extra, "chunk_id": chunk.id, "doc_id": chunk.doc_id, "start_index": chunk.start,
            "end_index": chunk.end, "token_count": chunk.token_count,
            "heading_path": list(chunk.metadata.get("heading_path", []))}
    if scored is not None:
        meta["score"] = float(scored.score)
        meta["score_source"] = scored.source
    return meta


def load_pipeline(pipeline: Any) -> Any:
    """A :class:`~ragkit.pipeline.Pipeline` from an instance, a YAML path or a config mapping."""
    from ragkit.pipeline import Pipeline

    if isinstance(pipeline, Pipeline):
        return pipeline
    if isinstance(pipeline, Mapping):
        return Pipeline.from_config(pipeline)
    return Pipeline.from_yaml(pipeline)
