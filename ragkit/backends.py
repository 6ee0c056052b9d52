"""The one backend policy: how LLM and embedding backends are built, defaulted and wrapped.

- **Build**: a spec ``{type: ..., **params}`` is looked up in the registry and constructed.
- **Wrap**: every LLM is wrapped in :class:`~ragkit.llm.cached.CachedLLM` (call cache, usage,
  structured-output retries) and every embedder in
  :class:`~ragkit.embeddings.cached.CachedEmbedder` (vector cache), whichever backend type it is.
- **Default**: ``"default"`` means the config's ``backends.<section>.default``; outside a pipeline
  (a stage used directly from Python) it means the canonical config's default (the packaged
  SmolLM2 / MiniLM), built and wrapped by the same code.

Stages never build backends themselves: inside a pipeline the builder injects instances, and a
stage used on its own calls :func:`resolve_backend` for a collaborator that is still a name.

Example:
    >>> from ragkit.testing import FakeLLM
    >>> llm = wrap_backend("llm", FakeLLM(), cache_mode="off")
    >>> type(llm).__name__, wrap_backend("llm", llm, cache_mode="off") is llm
    ('CachedLLM', True)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from ragkit.cache import CacheMode
from ragkit.errors import ConfigError

BackendKind = Literal["llm", "embedder"]
SECTION_BY_KIND: dict[str, str] = {"llm": "llm", "embedder": "embeddings"}


def default_spec(kind: BackendKind) -> dict[str, Any]:
    """The canonical config's default backend spec for ``kind`` (a copy)."""
    from ragkit.config.schema import BackendsConfig

    return dict(getattr(BackendsConfig(), SECTION_BY_KIND[kind])["default"])


def wrap_backend(kind: str, backend: Any, *, cache_mode: CacheMode | None = None) -> Any:
    """Wrap ``backend`` in its kind's cache wrapper (already-wrapped backends come back unchanged)."""
    if kind == "llm":
        from ragkit.llm.cached import wrap_llm

        return wrap_llm(backend, mode=cache_mode)
    if kind == "embedder":
        from ragkit.embeddings.cached import wrap_embedder

        return wrap_embedder(backend, mode=cache_mode)
    return backend


def build_backend(kind: str, spec: Mapping[str, Any], registry: Any = None, *,
                  cache_mode: CacheMode | None = None, **params: Any) -> Any:
    """Construct the backend ``spec`` describes (``params`` override its keys) and wrap it."""
    from ragkit.registry import default_registry

    registry = registry or default_registry()
    cls = registry.get(kind, spec["type"])
    values = {k: v for k, v in spec.items() if k != "type"}
    values.update(params)
    return wrap_backend(kind, cls(**values), cache_mode=cache_mode)


def resolve_backend(ref: Any, kind: BackendKind) -> Any:
    """A collaborator for a stage used outside a pipeline.

    An instance is returned as it is; ``"default"`` builds the canonical default backend (cached);
    any other name is an error, since only a pipeline config defines named backends.
    """
    if not isinstance(ref, str):
        return ref
    if ref != "default":
        raise ConfigError(
            f"{kind}={ref!r} names a backend, which only a pipeline config can resolve; pass a backend "
            f"instance or use {kind}='default' for the packaged local model"
        )
    return build_backend(kind, default_spec(kind))
