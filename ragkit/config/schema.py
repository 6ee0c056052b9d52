"""The pydantic schema of a ragkit config file (the shape in ARCHITECTURE.md's *Contracts*).

Stage sections (``index.chunker``, ``query.selector``, ...) are mappings with a ``type`` and the
stage's parameters flat beside it; they are checked against the registered class's constructor in
:mod:`ragkit.config.load`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

StageSpec = dict[str, Any]


def _default_llm_backends() -> dict[str, StageSpec]:
    return {"default": {"type": "transformers", "model": "smollm2-135m-instruct"}}


def _default_embedding_backends() -> dict[str, StageSpec]:
    return {"default": {"type": "sentence_transformers", "model": "minilm"}}


class _Strict(BaseModel):
    """Unknown keys are errors."""
    model_config = ConfigDict(extra="forbid")


def _clean_path(value: Any) -> Any:
    """A path string that can be printed and encoded: no lone surrogates, no NUL characters."""
    for item in value if isinstance(value, list) else [value]:
        if not isinstance(item, str):
            continue
        if "\x00" in item:
            raise ValueError(f"path {item!r} contains a NUL character, which no file system accepts; remove it")
        try:
            item.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"path {item!r} contains {item[exc.start]!r} at position {exc.start}, a lone surrogate that is not "
                "valid Unicode (and cannot be printed or written as UTF-8); use a UTF-8 path") from None
    return value


class BackendsConfig(_Strict):
    """``backends``: named LLM and embedding backends."""
    llm: dict[str, StageSpec] = Field(default_factory=_default_llm_backends)
    embeddings: dict[str, StageSpec] = Field(default_factory=_default_embedding_backends)


class CacheConfig(_Strict):
    """``cache``: the call and vector cache mode."""
    mode: Literal["read_write", "read_only", "off"] = "read_write"

    @field_validator("mode", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare `off` (in a file or in --set cache.mode=off) as the boolean false
        return "off" if value is False else value


class CorpusConfig(_Strict):
    """``corpus``: files (``paths``) or a dataset."""
    paths: list[str] | None = None
    dataset: str | None = None
    subset: list[str] | None = None
    max_bytes: int | None = Field(default=None, gt=0)  # per-file limit for paths (default 64 MiB)

    _paths_clean = field_validator("paths")(classmethod(lambda cls, v: _clean_path(v)))

    @model_validator(mode="after")
    def _one_source(self) -> CorpusConfig:
        if self.paths is not None and self.dataset is not None:
            raise ValueError("give either corpus.paths or corpus.dataset, not both")
        return self


class IndexConfig(_Strict):
    """``index``: everything that determines the index."""
    store: str | None = None
    chunker: StageSpec = Field(default_factory=lambda: {"type": "recursive", "max_tokens": 256, "overlap_tokens": 0})
    enrichers: list[StageSpec] = Field(default_factory=list)
    embedder: str | StageSpec = "default"
    retriever: StageSpec = Field(default_factory=lambda: {"type": "hybrid", "view": "content"})
    tree: StageSpec | None = None  # a tree builder ({type: headings, ...}); null: no document trees

    _store_clean = field_validator("store")(classmethod(lambda cls, v: _clean_path(v)))


class RetrieveConfig(_Strict):
    """``query.retrieve``: candidates per question and the metadata filter."""
    k: int = Field(default=20, gt=0)
    filter: dict[str, Any] | None = None


class QueryConfig(_Strict):
    """``query``: questions and the query-phase stages."""
    questions: str | None = None
    _questions_clean = field_validator("questions")(classmethod(lambda cls, v: _clean_path(v)))
    retrieve: RetrieveConfig = Field(default_factory=RetrieveConfig)
    reranker: StageSpec | None = None
    selector: StageSpec | list[StageSpec] = Field(default_factory=lambda: {"type": "top_k", "k": 5})  # one or a chain
    aggregator: StageSpec | None = Field(  # null: retrieval only (the answer is the selected chunks; no LLM)
        default_factory=lambda: {"type": "stuff", "llm": "default", "max_context_tokens": 1536}
    )


class OutputConfig(_Strict):
    """``output``: where runs write."""
    dir: str | None = None

    _dir_clean = field_validator("dir")(classmethod(lambda cls, v: _clean_path(v)))


class EngineConfig(BaseModel):
    """How the index phase is executed (``local`` in this process; more engines register under kind ``engine``)."""

    model_config = ConfigDict(extra="allow")
    type: str = "local"


class RagkitConfig(_Strict):
    """A whole ragkit config file."""
    version: Literal[1] = 1
    data_root: str | None = None
    backends: BackendsConfig = Field(default_factory=BackendsConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    corpus: CorpusConfig = Field(default_factory=CorpusConfig)
    index: IndexConfig = Field(default_factory=IndexConfig)
    query: QueryConfig = Field(default_factory=QueryConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)

# Stage slots: (dotted path, registry kind). Lists and backend tables are expanded by the loader;
# ``query.selector`` may be one spec or a list (a chain).
STAGE_SLOTS: tuple[tuple[str, str], ...] = (
    ("index.chunker", "chunker"),
    ("index.retriever", "retriever"),
    ("index.tree", "tree"),
    ("query.reranker", "reranker"),
    ("query.selector", "selector"),
    ("query.aggregator", "aggregator"),
)
