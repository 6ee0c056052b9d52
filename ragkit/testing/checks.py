"""Conformance checks every registered component must pass (usable by plug-in authors).

Example:
    >>> from ragkit.testing.checks import build_with_fakes
    >>> chunker = build_with_fakes("chunker", "token", max_tokens=16)
    >>> type(chunker).__name__
    'TokenChunker'
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ragkit.registry import Registry, default_registry
from ragkit.stage import collaborator_params, param_names, validate_params
from ragkit.testing.fakes import FakeEmbedder, FakeLLM


def fake_collaborator(kind: str) -> Any:
    """A deterministic stand-in for a collaborator of ``kind`` (``llm`` or ``embedder``)."""
    return FakeLLM() if kind == "llm" else FakeEmbedder(dimension=32)


def build_with_fakes(kind: str, name: str, registry: Registry | None = None, **params: Any) -> Any:
    """Construct component ``kind``/``name`` with fake LLM/embedder collaborators and ``params``."""
    registry = registry or default_registry()
    cls = registry.get(kind, name)
    for param, ref_kind in collaborator_params(cls).items():
        if param not in params or isinstance(params[param], str):
            params[param] = fake_collaborator(ref_kind)
    return cls(**params)


def normalised_params(kind: str, name: str, registry: Registry | None = None, **params: Any) -> dict[str, Any]:
    """The full, validated parameter dict of a component (what ``to_config`` would write)."""
    cls = (registry or default_registry()).get(kind, name)
    refs = collaborator_params(cls)
    plain = {k: v for k, v in params.items() if k not in refs}
    return {k: v for k, v in validate_params(cls, plain, f"{kind}.{name}").items() if k not in refs}


class NetworkBlocked(RuntimeError):
    """Raised when code under a :func:`no_network` block opens a socket."""


@contextmanager
def no_network() -> Iterator[None]:
    """Fail any socket connection made inside the block (constructors must do no I/O)."""
    original = socket.socket.connect

    def refuse(self: socket.socket, address: Any) -> None:
        raise NetworkBlocked(f"network access attempted: {address!r}")

    socket.socket.connect = refuse  # type: ignore[method-assign]
    try:
        yield
    finally:
        socket.socket.connect = original  # type: ignore[method-assign]


def stored_params_match(component: Any) -> list[str]:
    """Names of constructor parameters not stored on a same-named attribute."""
    return [p for p in param_names(type(component)) if not hasattr(component, p)]
