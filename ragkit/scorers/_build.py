"""How scorers get their collaborators, and how a nested ``scorer:`` spec becomes a scorer.

Two jobs, shared by the scorers, the ``corag`` selector and the ``scorer`` reranker:

- :func:`resolve_collaborator`: a scorer's ``llm`` / ``embedder`` parameter is an instance (what a
  pipeline injects), ``"default"`` (the canonical default backend, built and wrapped by
  :mod:`ragkit.backends`), or an inline ``{type: ...}`` mapping (built by the same policy).
- :func:`build_scorer`: a stage that takes a scorer (``corag``'s ``scorer``, the reranker's
  ``scorer``) accepts an instance, a type name (``"embedding"``) or a spec mapping
  (``{type: embedding}``). Until the pipeline builds nested stage specs itself, the stage builds the
  scorer here, with the registry and cache mode the pipeline hands it through ``bind_runtime``.

Example:
    >>> from ragkit.testing.fakes import FakeEmbedder
    >>> scorer = build_scorer({"type": "embedding"}, embedder=FakeEmbedder(dimension=8))
    >>> type(scorer).__name__, type(scorer.embedder).__name__
    ('EmbeddingScorer', 'FakeEmbedder')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ragkit.errors import ConfigError
from ragkit.stage import collaborator_params, validate_params


class UsesBackends:
    """Mixin: remember the pipeline's runtime (registry, cache mode) to build collaborators with it."""

    runtime_: Any = None

    def bind_runtime(self, runtime: Any) -> None:
        """Called by the pipeline after construction; collaborators built later use this runtime."""
        self.runtime_ = runtime

    def _llm_with(self, capability: str, stage: str, hint: str) -> Any:
        """The resolved ``llm`` collaborator, or a CapabilityError when it lacks ``capability``."""
        from ragkit.errors import CapabilityError

        llm = self._resolve(getattr(self, "llm"), "llm")  # noqa: B009 - mixin: the stage defines llm
        supports = getattr(llm, "supports", None)
        if callable(supports) and not supports(capability):
            raise CapabilityError(f"{stage} needs an LLM with {capability!r}; "
                                  f"{getattr(llm, 'name', type(llm).__name__)} lacks it ({hint})")
        return llm

    def _resolve(self, ref: Any, kind: str) -> Any:
        runtime = self.runtime_
        return resolve_collaborator(ref, kind, registry=getattr(runtime, "registry", None),
                                    cache_mode=getattr(runtime, "cache_mode", None))


def resolve_collaborator(ref: Any, kind: str, *, registry: Any = None, cache_mode: Any = None) -> Any:
    """The backend for ``ref`` (``kind`` is ``"llm"`` or ``"embedder"``).

    An instance comes back unchanged; an inline mapping is built and wrapped; ``"default"`` is the
    canonical default (packaged SmolLM2 / MiniLM). Any other name needs a pipeline config.
    """
    from ragkit.backends import build_backend, default_spec, resolve_backend

    if isinstance(ref, Mapping):
        if not isinstance(ref.get("type"), str):
            raise ConfigError(f"{kind}={dict(ref)!r}: an inline backend needs a 'type' key")
        return build_backend(kind, ref, registry, cache_mode=cache_mode)
    if not isinstance(ref, str):
        return ref
    if ref == "default" and (registry is not None or cache_mode is not None):
        return build_backend(kind, default_spec(kind), registry, cache_mode=cache_mode)  # type: ignore[arg-type]
    return resolve_backend(ref, kind)  # type: ignore[arg-type]


def scorer_type(spec: Any) -> str:
    """The type name of a scorer given as a name, a spec mapping or an instance (for traces and errors)."""
    if isinstance(spec, str):
        return spec
    if isinstance(spec, Mapping):
        return str(spec.get("type", "?"))
    from ragkit._builtins import BUILTINS

    path = f"{type(spec).__module__}:{type(spec).__qualname__}"
    for name, (target, _extra, _description) in BUILTINS["scorer"].items():
        if target == path:
            return name  # an instance the pipeline built from a spec keeps its registered name
    return type(spec).__name__


def check_scorer_spec(spec: Any, path: str) -> None:
    """Cheap shape check done in constructors (no imports): a name, a ``{type: ...}`` mapping or a scorer."""
    if isinstance(spec, str) and spec:
        return
    if isinstance(spec, Mapping) and isinstance(spec.get("type"), str):
        return
    if callable(getattr(spec, "score", None)):
        return
    raise ConfigError(f"{path}: expected a scorer type name, a {{type: ...}} mapping or a scorer instance, got {spec!r}",
                      [(path, f"expected a scorer spec, got {spec!r}", None)])


def build_scorer(spec: Any, *, runtime: Any = None, embedder: Any = None, llm: Any = None,
                 path: str = "scorer") -> Any:
    """A scorer instance from an instance, a type name or a ``{type: ..., **params}`` mapping.

    ``runtime`` (what the pipeline hands a stage through ``bind_runtime``) gives the registry and
    cache mode; without one the default registry is used (through :func:`ragkit.backends.build_backend`).
    ``embedder`` / ``llm``, when given, replace a collaborator the spec leaves at ``"default"`` (a
    selector passes the pipeline's embedder from its query context). Parameters are validated
    against the scorer's signature; errors name ``path``.
    """
    from ragkit.backends import build_backend

    check_scorer_spec(spec, path)
    if not isinstance(spec, (str, Mapping)):
        return spec
    spec = {"type": spec} if isinstance(spec, str) else dict(spec)
    registry = getattr(runtime, "registry", None)
    params = {k: v for k, v in spec.items() if k != "type"}
    # the class through the one construction policy (registry lookup + build); scorer constructors
    # only store parameters, so building one with defaults to learn its class costs nothing
    cls = type(build_backend("scorer", {"type": spec["type"]}, registry))
    refs = collaborator_params(cls)
    validate_params(cls, {k: v for k, v in params.items() if k not in refs}, path)
    scorer = cls(**params)
    for name, kind in refs.items():
        override = embedder if kind == "embedder" else llm
        if override is not None and getattr(scorer, name, None) == "default":
            setattr(scorer, name, override)  # a fresh instance: what the pipeline would have injected
    bind = getattr(scorer, "bind_runtime", None)
    if callable(bind) and runtime is not None:
        bind(runtime)
    return scorer
