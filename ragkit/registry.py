"""One registry of components, scoped by kind.

``chunker: {type: recursive}`` in YAML looks up ``("chunker", "recursive")``. Built-ins are declared
as import strings (``ragkit._builtins``) and imported on first use, so ``ragkit components`` lists
everything without importing torch. Third-party packages register through the entry-point group
``ragkit.components`` (entry-point name ``"kind:name"``, value ``"module:Class"``).

Besides stages and backends the same registry holds the *plug-in kinds* stages look up by name
(:data:`~ragkit._builtins.PLUGIN_KINDS`): ``view`` (embedding views of the dense/hybrid retrievers),
``query_prefix`` (query-side builders of the ``prefix_fusion`` view) and ``loader`` (file loaders by
suffix). They get the same checks and the same "unknown ... Did you mean ...?" errors;
``entries()`` walks the stage kinds unless ``plugins=True``. :class:`KindMapping` gives one kind a
dict interface (``VIEWS``, ``QUERY_PREFIX_BUILDERS``, ``LOADERS`` are such live views).

Example:
    >>> from ragkit.registry import Registry, default_registry
    >>> reg = default_registry()
    >>> "recursive" in reg.names("chunker")
    True
    >>> fresh = Registry(builtins=False)
    >>> @fresh.register("chunker", "mine")
    ... class MyChunker:
    ...     def chunk(self, doc): return []
    >>> fresh.get("chunker", "mine") is MyChunker
    True
    >>> reg.get("view", "contents")
    Traceback (most recent call last):
    ...
    ragkit.errors.UnknownComponentError: unknown view type 'contents'. Did you mean 'content'? Registered view types: content, prefix_fusion, tfidf_concat, tfidf_weighted. Run `ragkit components --kind view` to list them.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from typing import Any, TypeVar

from ragkit._builtins import ALL_KINDS, BUILTINS, KINDS, PLUGIN_REQUIRED_METHODS, REQUIRED_METHODS
from ragkit.errors import MissingDependencyError, RegistrationError, UnknownComponentError

ENTRY_POINT_GROUP = "ragkit.components"
T = TypeVar("T", bound=type)


@dataclass
class Entry:
    """One registered component: where it lives, what extra it needs, what it does."""

    kind: str
    name: str
    target: str | type
    extra: str | None = None
    description: str = ""

    @property
    def import_path(self) -> str:
        if isinstance(self.target, str):
            return self.target
        return f"{self.target.__module__}:{self.target.__qualname__}"

    def load(self) -> type:
        if not isinstance(self.target, str):
            return self.target
        module_name, _, attr = self.target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except MissingDependencyError:
            raise
        except ImportError as exc:
            missing = getattr(exc, "name", None) or str(exc)
            if missing == "ragkit" or missing.startswith("ragkit."):
                raise RegistrationError(
                    f"{self.kind} {self.name!r} points to {self.target}, but module {missing!r} cannot be "
                    f"imported ({exc}); the installation is incomplete: reinstall ragkit"
                ) from exc
            raise MissingDependencyError(missing, self.extra, f"{self.kind} {self.name!r}") from exc
        cls = getattr(module, attr)
        check_component_class(self.kind, self.name, cls)
        self.target = cls
        return cls


def check_component_class(kind: str, name: str, cls: type) -> None:
    """Registration-time checks: required methods exist and ``__init__`` takes no ``*args``.

    Plug-in kinds that are functions (``query_prefix``, ``loader``) only need to be callable.
    """
    required = {**REQUIRED_METHODS, **PLUGIN_REQUIRED_METHODS}
    if kind not in required:
        raise RegistrationError(f"cannot register {name!r}: unknown kind {kind!r}; kinds are {', '.join(ALL_KINDS)}")
    missing = [m for m in required[kind] if not callable(getattr(cls, m, None))]
    if missing:
        what = getattr(cls, "__qualname__", repr(cls))
        raise RegistrationError(
            f"{what} cannot be registered as {kind} {name!r}: it lacks {', '.join(missing)}(). "
            f"Implement {' and '.join(required[kind])} (or subclass the {kind} base class)."
        )
    if not inspect.isclass(cls):
        return
    init = cls.__init__
    if init is not object.__init__:
        for param in inspect.signature(init).parameters.values():
            if param.kind is inspect.Parameter.VAR_POSITIONAL:
                raise RegistrationError(
                    f"{cls.__qualname__}.__init__ takes *{param.name}; stage parameters must be keywords "
                    "so configs can name them"
                )


class Registry:
    """Components by ``(kind, name)``. Build a fresh one per test with ``Registry()``."""

    def __init__(self, builtins: bool = True, entry_points: bool = True) -> None:
        self._entries: dict[str, dict[str, Entry]] = {kind: {} for kind in ALL_KINDS}
        self._entry_points_loaded = not entry_points
        if builtins:
            for kind, table in BUILTINS.items():
                for name, (target, extra, description) in table.items():
                    self._entries[kind][name] = Entry(kind, name, target, extra, description)

    def add(self, kind: str, name: str, target: str | type, extra: str | None = None, description: str = "") -> None:
        """Register ``target`` (a class or an import string) as ``kind`` ``name``."""
        self._check_kind(kind)
        if not isinstance(target, str):
            check_component_class(kind, name, target)
            if not description:
                description = (inspect.getdoc(target) or "").split("\n", 1)[0]
        existing = self._entries[kind].get(name)
        if existing is not None:
            if existing.target is target or existing.import_path == Entry(kind, name, target).import_path:
                return
            raise RegistrationError(
                f"{kind} {name!r} is already registered to {existing.import_path}; choose another name"
            )
        self._entries[kind][name] = Entry(kind, name, target, extra, description)

    def register(self, kind: str, name: str, extra: str | None = None) -> Callable[[T], T]:
        """Class decorator: ``@registry.register("chunker", "mine")``."""

        def decorate(cls: T) -> T:
            self.add(kind, name, cls, extra)
            return cls

        return decorate

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in importlib_metadata.entry_points(group=ENTRY_POINT_GROUP):
            kind, sep, name = ep.name.partition(":")
            if not sep:
                raise RegistrationError(
                    f"entry point {ep.name!r} in group {ENTRY_POINT_GROUP!r} must be named 'kind:name'"
                )
            self.add(kind, name, ep.value, None, f"third-party ({ep.value})")

    def remove(self, kind: str, name: str) -> None:
        """Forget ``kind`` ``name`` (no error when it is not registered); for tests and plug-in reloads."""
        self._check_kind(kind)
        self._entries[kind].pop(name, None)

    def entries(self, kind: str | None = None, *, plugins: bool = False) -> Iterator[Entry]:
        """Entries of ``kind``; all stage/backend kinds when ``None`` (plus plug-in kinds with ``plugins``)."""
        self._load_entry_points()
        if kind:
            self._check_kind(kind)
        for k in ([kind] if kind else (ALL_KINDS if plugins else KINDS)):
            yield from sorted(self._entries[k].values(), key=lambda e: e.name)

    def names(self, kind: str) -> list[str]:
        self._check_kind(kind)
        return [e.name for e in self.entries(kind)]

    def entry(self, kind: str, name: str, path: str | None = None) -> Entry:
        self._check_kind(kind)
        self._load_entry_points()
        try:
            return self._entries[kind][name]
        except KeyError:
            raise UnknownComponentError(kind, name, self._entries[kind], path) from None

    def get(self, kind: str, name: str, path: str | None = None) -> type:
        """The class registered as ``kind`` ``name`` (imported on first use)."""
        return self.entry(kind, name, path).load()

    def create(self, kind: str, name: str, **params: Any) -> Any:
        return self.get(kind, name)(**params)

    def _check_kind(self, kind: str) -> None:
        if kind not in self._entries:
            raise RegistrationError(f"unknown kind {kind!r}; kinds are {', '.join(ALL_KINDS)}")


_DEFAULT: Registry | None = None


def default_registry() -> Registry:
    """The process-wide registry used when none is passed explicitly."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Registry()
    return _DEFAULT


def register(kind: str, name: str, extra: str | None = None) -> Callable[[T], T]:
    """Register a user class in the default registry: ``@register("chunker", "my_chunker")``."""
    return default_registry().register(kind, name, extra)


def lookup(kind: str, name: str, path: str | None = None) -> Any:
    """The component registered as ``kind`` ``name`` in the default registry (imported on first use).

    How stage code finds a plug-in by name (a view, a query-prefix builder, a file loader); unknown
    names raise :class:`~ragkit.errors.UnknownComponentError` with the closest match.

    Example:
        >>> lookup("view", "content").__name__
        'ContentView'
    """
    return default_registry().get(kind, name, path)


class KindMapping(MutableMapping):
    """One kind of the default registry as a live ``{name: component}`` mapping.

    Reading loads the component; assigning registers it (same checks as :meth:`Registry.add`);
    deleting forgets it. Kept for code written against the old per-kind dicts (``VIEWS``,
    ``QUERY_PREFIX_BUILDERS``, ``LOADERS``).

    Example:
        >>> views = KindMapping("view")
        >>> "content" in views, "contents" in views
        (True, False)
        >>> views["content"].__name__
        'ContentView'
    """

    def __init__(self, kind: str, registry: Registry | None = None) -> None:
        self.kind = kind
        self._registry = registry

    @property
    def registry(self) -> Registry:
        return self._registry or default_registry()

    def __getitem__(self, name: str) -> Any:
        if name not in self:
            raise KeyError(name)
        return self.registry.get(self.kind, name)

    def __setitem__(self, name: str, target: Any) -> None:
        self.registry.add(self.kind, name, target)

    def __delitem__(self, name: str) -> None:
        if name not in self:
            raise KeyError(name)
        self.registry.remove(self.kind, name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.registry.names(self.kind)

    def __iter__(self) -> Iterator[str]:
        return iter(self.registry.names(self.kind))

    def __len__(self) -> int:
        return len(self.registry.names(self.kind))

    def __repr__(self) -> str:
        return f"KindMapping({self.kind!r}: {', '.join(self)})"
