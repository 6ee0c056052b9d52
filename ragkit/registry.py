"""One registry of components, scoped by kind.

``chunker: {type: recursive}`` in YAML looks up ``("chunker", "recursive")``. Built-ins are declared
as import strings (``ragkit._builtins``) and imported on first use, so ``ragkit components`` lists
everything without importing torch. Third-party packages register through the entry-point group
``ragkit.components`` (entry-point name ``"kind:name"``, value ``"module:Class"``).

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
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from typing import Any, TypeVar

from ragkit._builtins import BUILTINS, KINDS, REQUIRED_METHODS
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
    """Registration-time checks: required methods exist and ``__init__`` takes no ``*args``."""
    if kind not in REQUIRED_METHODS:
        raise RegistrationError(f"cannot register {name!r}: unknown kind {kind!r}; kinds are {', '.join(KINDS)}")
    missing = [m for m in REQUIRED_METHODS[kind] if not callable(getattr(cls, m, None))]
    if missing:
        raise RegistrationError(
            f"{cls.__qualname__} cannot be registered as {kind} {name!r}: it lacks {', '.join(missing)}(). "
            f"Implement {' and '.join(REQUIRED_METHODS[kind])} (or subclass the {kind} base class)."
        )
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
        self._entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        self._entry_points_loaded = not entry_points
        if builtins:
            for kind, table in BUILTINS.items():
                for name, (target, extra, description) in table.items():
                    self._entries[kind][name] = Entry(kind, name, target, extra, description)

    def add(self, kind: str, name: str, target: str | type, extra: str | None = None, description: str = "") -> None:
        """Register ``target`` (a class or an import string) as ``kind`` ``name``."""
        if kind not in self._entries:
            raise RegistrationError(f"unknown kind {kind!r}; kinds are {', '.join(KINDS)}")
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

    def entries(self, kind: str | None = None) -> Iterator[Entry]:
        self._load_entry_points()
        for k in ([kind] if kind else KINDS):
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
            raise RegistrationError(f"unknown kind {kind!r}; kinds are {', '.join(KINDS)}")


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
