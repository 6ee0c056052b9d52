"""Request and response bodies of ``ragkit serve`` (pydantic; they make the OpenAPI schema at ``/docs``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QueryRequest(_Body):
    """``POST /query``: one question through the configured query phase."""

    question: str = Field(min_length=1, max_length=20_000, description="The question.")
    k: int | None = Field(default=None, ge=1, le=10_000, description="Candidates to retrieve (default: the config's).")
    filter: dict[str, Any] | None = Field(
        default=None, description="Metadata filter {key: value | [values] | {gte, lte, gt, lt, in, exists}}.")


class CitedChunk(BaseModel):
    """A chunk given to the generator, with its exact offsets into its document."""

    id: str
    doc_id: str
    start: int
    end: int
    score: float
    source: str
    text: str
    metadata: dict[str, Any]


class QueryResponse(BaseModel):
    """The answer, the cited chunks in prompt order, the usage of this request and the stage trace."""

    answer: str
    chunks: list[CitedChunk]
    rationale: str | None = None
    usage: dict[str, Any]
    trace: dict[str, Any]
    index_version: int


class ChunkRequest(_Body):
    """``POST /chunk``: cut one text with a chunker (the config's backends serve LLM/embedding chunkers)."""

    text: str = Field(min_length=1, max_length=5_000_000, description="The text to chunk.")
    chunker: str | dict[str, Any] = Field(
        default="recursive", description="A chunker type (GET /components) or a spec {type: ..., params}.")
    params: dict[str, Any] = Field(default_factory=dict, description="Chunker parameters (max_tokens, ...).")
    detect_headings: bool = Field(default=True, description="Find Markdown/WikiText headings (heading_path).")


class ChunkOut(BaseModel):
    """One chunk: ``text == request.text[start:end]``."""

    id: str
    doc_id: str
    start: int
    end: int
    text: str
    token_count: int
    metadata: dict[str, Any]


class ChunkResponse(BaseModel):
    """The chunks in document order."""

    chunker: dict[str, Any]
    chunks: list[ChunkOut]


class DocumentIn(_Body):
    """A document to index; ``id`` (optional) is kept as ``metadata.source_id``."""

    text: str = Field(min_length=1, description="The document text.")
    id: str | None = Field(default=None, description="Your id for the document.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Metadata (filterable at query time).")


class IndexRequest(_Body):
    """``POST /index``: these documents become the served corpus (the index phase runs incrementally)."""

    documents: list[DocumentIn] = Field(min_length=1, max_length=100_000)
    rebuild: bool = Field(default=False, description="Ignore the stored index and rebuild it.")


class IndexResponse(BaseModel):
    """What the index phase did; ``index_version`` is the version queries now read."""

    documents: int
    chunks: int
    reused: bool
    seconds: float
    store: str | None
    index_version: int


class Health(BaseModel):
    """``GET /healthz``."""

    status: str
    config: str
    index_version: int
    documents: int | None
    chunks: int | None
    store: str | None
    indexing: bool
