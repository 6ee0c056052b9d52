"""Embedding views: how chunks (text + metadata) and queries become the vectors a dense index holds.

A view is chosen per index (``index.retriever.view``, options in ``view_options``) and persisted with
the store, so the query side always matches the index side. The dense and hybrid retrievers only
talk to this interface; a new view is one class registered as kind ``view`` in the one registry
(a line in ``ragkit/_builtins.py``, :func:`register_view` or ``@register("view", name)`` from user
code, or an entry point ``view:NAME``), never a change to ``dense.py``. Unknown names fail at
``ragkit validate`` time with the registry's "Did you mean ...?" message (see :data:`ViewName`).

The interface (override what differs from :class:`ContentView`):

- ``fit(chunks)``: learn corpus-level state before embedding (e.g. a TF-IDF vocabulary); default none.
- ``chunk_texts(chunks) -> list[str]``: the text given to the embedder per chunk (e.g. a metadata
  prefix + ``chunk.text``; ``chunk.text`` itself is never changed).
- ``embed_chunks(chunks, embedder) -> ndarray``: ``(n, d)`` float32, L2-normalised rows.
- ``embed_query(query, embedder) -> ndarray``: ``(d,)`` float32, L2-normalised.
- ``state() -> dict`` / ``set_state(dict)``: JSON-serialisable learned state, saved in ``view.json``.

Example:
    >>> from ragkit.testing.fakes import FakeEmbedder
    >>> from ragkit.types import Document, Chunk, Query
    >>> view = make_view("content")
    >>> doc = Document.from_text("red apples")
    >>> view.embed_chunks([Chunk.from_span(doc, 0, 10, 2)], FakeEmbedder(dimension=8)).shape
    (1, 8)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar

import numpy as np
from pydantic import AfterValidator

from ragkit.errors import ConfigError, IndexStoreError, RegistrationError
from ragkit.registry import KindMapping, lookup
from ragkit.store.atomic import atomic_write_json, read_json
from ragkit.types import Chunk, Query

VIEW_FILE = "view.json"

#: The registered views as a live ``{name: class}`` mapping over the registry's ``view`` kind
#: (built-ins: ``content``, ``prefix_fusion``, ``tfidf_weighted``, ``tfidf_concat``).
VIEWS: KindMapping = KindMapping("view")


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        norm = float(np.linalg.norm(vectors))
        return vectors / norm if norm > 0 else vectors
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return (vectors / norms).astype(np.float32)


class EmbeddingView:
    """Base class of embedding views; see the module docstring for the interface.

    Example:
        >>> class UpperView(EmbeddingView):
        ...     name = "upper"
        ...     def chunk_texts(self, chunks):
        ...         return [c.text.upper() for c in chunks]
        >>> register_view("upper", UpperView)
        >>> type(make_view("upper")).__name__
        'UpperView'
        >>> del VIEWS["upper"]
    """

    name: ClassVar[str] = ""

    def __init__(self, **options: Any) -> None:
        if options:
            raise ConfigError(f"view {self.name!r} takes no options, got {sorted(options)}; remove view_options")
        self.options: dict[str, Any] = {}

    def fit(self, chunks: Sequence[Chunk]) -> None:
        """Learn corpus-level state from all indexed chunks (called once per ``index``)."""

    def chunk_texts(self, chunks: Sequence[Chunk]) -> list[str]:
        return [c.text for c in chunks]

    def embed_chunks(self, chunks: Sequence[Chunk], embedder: Any) -> np.ndarray:
        texts = self.chunk_texts(chunks)
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return l2_normalise(embedder.embed_documents(texts))

    def query_text(self, query: Query) -> str:
        return query.text

    def embed_query(self, query: Query, embedder: Any) -> np.ndarray:
        return l2_normalise(np.asarray(embedder.embed_query(self.query_text(query))).reshape(-1))

    def state(self) -> dict[str, Any]:
        return {}

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state` returned."""

    # ------------------------------------------------------------------ persistence
    def save(self, directory: Path) -> None:
        atomic_write_json(directory / VIEW_FILE, {"name": self.name, "options": self.options, "state": self.state()})

    def load(self, directory: Path) -> None:
        path = directory / VIEW_FILE
        if not path.exists():
            raise IndexStoreError(f"{directory}: no {VIEW_FILE}; the dense index is incomplete, rebuild it (--rebuild)")
        saved = read_json(path)
        mine = json.loads(json.dumps(self.options, default=str))
        if saved.get("name") != self.name or saved.get("options") != mine:
            raise IndexStoreError(
                f"{directory} was indexed with view {saved.get('name')!r} (options {saved.get('options')!r}), "
                f"but the retriever is configured with view {self.name!r} (options {mine!r}); configure the "
                "saved view or rebuild the index (--rebuild)."
            )
        self.set_state(saved.get("state") or {})


class ContentView(EmbeddingView):
    """``content``: embed ``chunk.text`` as is, and the query text as is.

    Example:
        >>> ContentView().chunk_texts([])
        []
    """

    name: ClassVar[str] = "content"


def register_view(name: str, cls: type[EmbeddingView] | str) -> None:
    """Make ``cls`` (a class or ``"module:Class"``) available as ``view: name`` (registry kind ``view``).

    Example:
        >>> class LowerView(EmbeddingView):
        ...     def chunk_texts(self, chunks):
        ...         return [c.text.lower() for c in chunks]
        >>> register_view("lower_demo", LowerView)
        >>> "lower_demo" in view_names()
        True
        >>> del VIEWS["lower_demo"]
    """
    try:
        VIEWS[name] = cls
    except RegistrationError as exc:
        raise ConfigError(str(exc)) from exc


def view_names() -> list[str]:
    """Names of the registered views, sorted.

    Example:
        >>> view_names()[:2]
        ['content', 'prefix_fusion']
    """
    return sorted(VIEWS)


def view_class(name: str, path: str = "index.retriever.view") -> type[EmbeddingView]:
    """The view class registered as ``name`` (:class:`~ragkit.errors.UnknownComponentError` if none).

    Example:
        >>> view_class("content").__name__
        'ContentView'
    """
    return lookup("view", name, path)


def check_view_name(name: str) -> str:
    """``name`` when a view of that name is registered; else ``ValueError`` with the registry's message.

    Used as the pydantic validator of the retrievers' ``view`` parameter, so ``ragkit validate``
    reports an unknown view with the closest registered name.

    Example:
        >>> check_view_name("content")
        'content'
        >>> check_view_name("contents")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: unknown view type 'contents'. Did you mean 'content'? Registered view types: content, ...
    """
    from ragkit.errors import UnknownComponentError

    try:
        view_class(name, path="")
    except UnknownComponentError as exc:
        raise ValueError(str(exc)) from None
    return name


#: Type of a retriever's ``view`` parameter: a registered view name, checked when the config is validated.
ViewName = Annotated[str, AfterValidator(check_view_name)]


def make_view(name: str, options: Mapping[str, Any] | None = None) -> EmbeddingView:
    """Instantiate view ``name`` with ``options`` (``ConfigError`` for unknown names or options).

    Example:
        >>> make_view("content").name
        'content'
    """
    cls = view_class(name)
    try:
        view = cls(**dict(options or {}))
    except TypeError as exc:
        raise ConfigError(f"index.retriever.view_options: {exc} (view {name!r})") from exc
    if not view.name:
        view.name = name  # type: ignore[misc]
    return view
