"""The FastAPI application of ``ragkit serve`` (built by :func:`create_app`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ragkit._lazy import require
from ragkit.errors import ConfigError, DocumentError, RagkitError
from ragkit.serve.schemas import (
    ChunkRequest,
    ChunkResponse,
    Health,
    IndexRequest,
    IndexResponse,
    QueryRequest,
    QueryResponse,
)
from ragkit.serve.state import NoIndexError, ServeState, WriterBusyError
from ragkit.types import Document

require("fastapi", "serve", "ragkit serve")

from fastapi import FastAPI, Request  # noqa: E402
from fastapi.exceptions import RequestValidationError  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402


def _dotted(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc)


#: Config paths that name a request field: a chunker spec checked as ``index.chunker`` is ``body.chunker``.
_RENAMES = (("index.chunker", "body.chunker"), ("query.retrieve.filter", "body.filter"), ("query.retrieve.k", "body.k"),
            ("filter", "body.filter"))


def _config_error_response(exc: ConfigError) -> JSONResponse:
    problems = getattr(exc, "problems", None) or [("body", str(exc), None)]
    detail = []
    for path, message, _line in problems:
        path = str(path or "body")
        for old, new in _RENAMES:
            if path == old or path.startswith(old + "."):
                path = new + path[len(old):]
                break
        detail.append({"loc": path.split("."), "path": path, "msg": message, "type": "config_error"})
    return JSONResponse(status_code=422, content={"detail": detail})


def _request_policy(pipe: Any) -> Any:
    """The safe-mode policy in force at start-up (``--safe`` / ``RAGKIT_SAFE``), rooted at the config's folder.

    Request handlers may run in other threads or contexts, so they apply this captured policy explicitly.
    """
    from dataclasses import replace

    from ragkit.config.safety import active_policy

    policy = active_policy()
    if policy is not None and not policy.roots:
        policy = replace(policy, roots=(Path(pipe.base_dir),))
    return policy


def create_app(config: Any, *, overrides: Sequence[str] = (), concurrency: int = 4,
               data_root: str | Path | None = None) -> Any:
    """The ``ragkit serve`` application for a config; its models load and its stored index opens here, once.

    Args:
        config: a YAML path, a config mapping, or a :class:`~ragkit.pipeline.Pipeline`.
        overrides: ``--set``-style ``"a.b=value"`` strings (with a path or a mapping).
        concurrency: queries that run at the same time; the others wait their turn.
        data_root: the data root for dataset corpora (``--data-root``).

    Returns:
        A FastAPI app: ``POST /query``, ``POST /chunk``, ``POST /index``, ``GET /healthz``,
        ``GET /components``; OpenAPI docs at ``/docs``. Invalid requests get 422 with each problem's
        dotted ``path`` (``body.k``); 409 when there is no index yet or another ``/index`` runs.

    Example:
        >>> from fastapi.testclient import TestClient
        >>> app = create_app({
        ...     "backends": {"llm": {"default": {"type": "fake"}}, "embeddings": {"default": {"type": "fake"}}},
        ...     "index": {"chunker": {"type": "sentence", "max_tokens": 6}, "retriever": {"type": "bm25"},
        ...               "store": ":memory:"}})
        >>> client = TestClient(app)
        >>> client.post("/index", json={"documents": [{"text": "Paris is in France. Rome is in Italy."}]}).json()["chunks"]
        2
        >>> client.post("/query", json={"question": "Where is Rome?"}).json()["chunks"][0]["text"]
        'Rome is in Italy.'
        >>> client.post("/query", json={"question": "x", "k": 0}).json()["detail"][0]["path"]
        'body.k'
    """
    from ragkit.pipeline import Pipeline

    if isinstance(config, Pipeline):
        pipe = config
    elif isinstance(config, Mapping):
        pipe = Pipeline.from_config(config, overrides)
    else:
        pipe = Pipeline.from_yaml(config, overrides)
    if data_root is not None:
        pipe.data_root = data_root
    policy = _request_policy(pipe)
    state = ServeState(pipe, concurrency=concurrency).start()

    app = FastAPI(title="ragkit", summary=f"ragkit serve: {pipe.name}",
                  description="Chunk, index and query with one ragkit pipeline configuration.")
    app.state.ragkit = state

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [{**{k: v for k, v in err.items() if k in ("loc", "msg", "type")},
                   "path": _dotted(err.get("loc", ()))} for err in exc.errors()]
        return JSONResponse(status_code=422, content={"detail": detail})

    @app.exception_handler(ConfigError)
    async def _config(request: Request, exc: ConfigError) -> JSONResponse:
        return _config_error_response(exc)

    @app.exception_handler(NoIndexError)
    async def _no_index(request: Request, exc: NoIndexError) -> JSONResponse:
        return JSONResponse(status_code=409, content={"detail": str(exc)})

    @app.exception_handler(WriterBusyError)
    async def _busy(request: Request, exc: WriterBusyError) -> JSONResponse:
        return JSONResponse(status_code=409, content={"detail": str(exc)})

    @app.exception_handler(DocumentError)
    async def _document(request: Request, exc: DocumentError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": str(exc)})

    @app.exception_handler(RagkitError)
    async def _ragkit(request: Request, exc: RagkitError) -> JSONResponse:
        return JSONResponse(status_code=500, content={"detail": str(exc), "type": type(exc).__name__})

    @app.get("/healthz", response_model=Health)
    def healthz() -> Health:
        """Liveness, and which index version queries read."""
        report = state.report
        return Health(status="ok", config=state.pipeline.name, index_version=state.index_version,
                      documents=getattr(report, "documents", None), chunks=getattr(report, "chunks", None),
                      store=getattr(report, "store", None), indexing=state.indexing)

    @app.get("/components")
    def components(kind: str | None = None) -> list[dict[str, Any]]:
        """Every registered component (``ragkit components --format json``), optionally of one kind."""
        from ragkit._builtins import ALL_KINDS

        if kind is not None and kind not in ALL_KINDS:
            raise ConfigError(f"kind {kind!r} is not a component kind; kinds: {', '.join(ALL_KINDS)}",
                              [("kind", f"{kind!r} is not one of {', '.join(ALL_KINDS)}", None)])
        return [{"kind": e.kind, "name": e.name, "extra": e.extra, "description": e.description}
                for e in state.pipeline.registry.entries(kind, plugins=True)]

    @app.post("/query", response_model=QueryResponse)
    def query(body: QueryRequest) -> QueryResponse:
        """Answer a question: retrieve → (rerank) → select → aggregate on the committed index."""
        version = state.index_version
        data = state.query(body.question, k=body.k, filter=body.filter).to_dict()
        return QueryResponse(answer=data["text"], chunks=data["chunks"], rationale=data["rationale"],
                             usage=data["usage"], trace=data["trace"], index_version=version)

    @app.post("/chunk", response_model=ChunkResponse)
    def chunk(body: ChunkRequest) -> ChunkResponse:
        """Cut one text with a chunker; offsets index ``text``."""
        from ragkit.config.load import load_config
        from ragkit.config.safety import use_policy
        from ragkit.integrations import as_document

        spec = {"type": body.chunker} if isinstance(body.chunker, str) else dict(body.chunker)
        spec.update(body.params)
        served = state.pipeline
        with use_policy(policy):  # safe mode at start-up holds for request specs too (e.g. intents_path)
            config = load_config({**served.config, "index": {**served.config["index"], "chunker": spec}},
                                 registry=served.registry)  # a bad spec: ConfigError → 422 at body.chunker.<field>
        chunker = served.fork(config).chunker  # the config's backends, already loaded, serve model chunkers
        chunks = chunker.chunk(as_document(body.text, detect_headings=body.detect_headings))
        return ChunkResponse(chunker=config["index"]["chunker"], chunks=[c.to_dict() for c in chunks])

    @app.post("/index", response_model=IndexResponse)
    def index(body: IndexRequest) -> IndexResponse:
        """Index these documents (they become the served corpus); one writer at a time."""
        docs = [Document.from_text(d.text, d.metadata, source_id=d.id) for d in body.documents]
        report = state.index(docs, rebuild=body.rebuild)
        return IndexResponse(documents=report.documents, chunks=report.chunks, reused=bool(report.reused),
                             seconds=float(report.seconds or 0.0), store=report.store,
                             index_version=state.index_version)

    return app
