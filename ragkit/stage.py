"""What every component shares: parameters from the constructor signature, lazy ``warm_up``.

The constructor discipline (scikit-learn's): keyword-only parameters with defaults, each stored
unmodified on a same-named attribute; no I/O. Models, clients and indexes load in ``warm_up()``,
which is idempotent and triggered by the first call. ``get_params()`` is derived from the signature.

Collaborators (an LLM backend, an embedder) are parameters annotated with :data:`LLMRef` or
:data:`EmbedderRef`. In YAML they are a backend name (``llm: default``) or an inline mapping
(``llm: {type: fake}``); the pipeline builder resolves them and injects the instance.
"""

from __future__ import annotations

import inspect
import threading
import typing
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from pydantic import ConfigDict, ValidationError, create_model

from ragkit.errors import ConfigError, is_secret_name


class Ref:
    """Marks a constructor parameter as a reference to a backend of ``kind`` (``llm`` or ``embedder``)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __repr__(self) -> str:
        return f"Ref({self.kind!r})"


LLMRef = Annotated[Any, Ref("llm")]
EmbedderRef = Annotated[Any, Ref("embedder")]


class StageRef:
    """Marks a constructor parameter as a nested stage of ``kind`` (e.g. ``corag``'s ``scorer``).

    In YAML it is a type name (``scorer: embedding``) or a spec (``scorer: {type: llm_yes, llm: big}``);
    config validation checks it like any stage (at ``<path>.<param>``) and normalises it to a full spec,
    and the pipeline builds it (injecting the config's backends) before calling the constructor.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __repr__(self) -> str:
        return f"StageRef({self.kind!r})"


ScorerRef = Annotated[Any, StageRef("scorer")]
T = TypeVar("T")


def _signature_params(cls: type) -> list[inspect.Parameter]:
    if cls.__init__ is object.__init__:
        return []
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    return [p for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def param_names(cls: type) -> list[str]:
    """The constructor parameter names of ``cls``, in signature order."""
    return [p.name for p in _signature_params(cls)]


def collaborator_params(cls: type) -> dict[str, str]:
    """``{parameter name: backend kind}`` for the parameters annotated as backend references."""
    hints = typing.get_type_hints(cls.__init__, include_extras=True) if cls.__init__ is not object.__init__ else {}
    refs = {}
    for name, hint in hints.items():
        for meta in getattr(hint, "__metadata__", ()):
            if isinstance(meta, Ref):
                refs[name] = meta.kind
    return refs


def nested_stage_params(cls: type) -> dict[str, str]:
    """``{parameter name: stage kind}`` for the parameters annotated as nested stages (:class:`StageRef`)."""
    hints = typing.get_type_hints(cls.__init__, include_extras=True) if cls.__init__ is not object.__init__ else {}
    nested = {}
    for name, hint in hints.items():
        for meta in getattr(hint, "__metadata__", ()):
            if isinstance(meta, StageRef):
                nested[name] = meta.kind
    return nested


_PARAM_MODELS: dict[type, Any] = {}
_PARAM_MODELS_LOCK = threading.Lock()


def param_model(cls: type) -> Any:
    """A pydantic model of ``cls``'s constructor parameters (unknown keys are errors)."""
    with _PARAM_MODELS_LOCK:
        if cls not in _PARAM_MODELS:
            hints = typing.get_type_hints(cls.__init__, include_extras=True) if cls.__init__ is not object.__init__ else {}
            refs = {**collaborator_params(cls), **nested_stage_params(cls)}
            fields: dict[str, Any] = {}
            for p in _signature_params(cls):
                annotation = Any if p.name in refs else hints.get(p.name, Any)
                default = ... if p.default is inspect.Parameter.empty else p.default
                fields[p.name] = (annotation, default)
            _PARAM_MODELS[cls] = create_model(
                f"{cls.__name__}Params",
                __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=True),
                **fields,
            )
        return _PARAM_MODELS[cls]


class _Redacted:
    def __repr__(self) -> str:
        return "*** (redacted; keep keys in an environment variable and name that variable in the config)"


def validation_problems(error: ValidationError, prefix: str) -> list[tuple[str, str]]:
    """Turn a pydantic error into ``(dotted path, message)`` pairs that echo the bad value."""
    problems = []
    for item in error.errors():
        path = ".".join([prefix, *(str(p) for p in item["loc"])]) if item["loc"] else prefix
        value = item.get("input")
        if item["loc"] and is_secret_name(str(item["loc"][-1])) and value is not None:
            value = _Redacted()
        if item["type"] == "extra_forbidden":
            message = f"unknown parameter (value {value!r})"
        elif item["type"] == "missing":
            message = "required parameter is missing"
        else:
            message = f"{item['msg']} (got {value!r})"
        problems.append((path, message))
    return problems


def validate_params(cls: type, params: dict[str, Any], path: str) -> dict[str, Any]:
    """Validate ``params`` against ``cls``'s signature; return the normalised full parameter dict."""
    model = param_model(cls)
    try:
        validated = model(**params)
    except ValidationError as exc:
        problems = validation_problems(exc, path)
        allowed = ", ".join(param_names(cls))
        lines = "; ".join(f"{p}: {m}" for p, m in problems)
        raise ConfigError(
            f"{lines}. {cls.__name__} accepts: {allowed}", [(p, m, None) for p, m in problems]
        ) from None
    return {name: getattr(validated, name) for name in model.model_fields}


class Component:
    """Base of every stage and backend: ``get_params`` from the signature and an idempotent ``warm_up``."""

    _warm_lock: threading.Lock | None = None

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters, read from same-named attributes."""
        return {name: getattr(self, name) for name in param_names(type(self))}

    def warm_up(self) -> None:
        """Load models, clients or indexes once; later calls do nothing."""
        if self.__dict__.get("_warmed"):
            return
        lock = self.__dict__.setdefault("_warm_lock_instance", threading.Lock())
        with lock:
            if not self.__dict__.get("_warmed"):
                self._load()
                self.__dict__["_warmed"] = True

    def _load(self) -> None:
        """Subclasses load heavy state here (called once by :meth:`warm_up`)."""

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items() if not isinstance(v, Component))
        return f"{type(self).__name__}({shown})"


_FINGERPRINTS: dict[tuple[str, float], str] = {}


def source_fingerprint(cls: type) -> str | None:
    """Hash of the file defining a stage class from outside ragkit; ``None`` for ragkit's own stages.

    Index hashes and the chunk cache are keyed by config and ragkit's version, which covers ragkit's
    own stages but not a plugin's code: this fingerprint makes an edited plugin stage re-chunk and
    re-index instead of being served records its previous code produced.
    """
    module = getattr(cls, "__module__", "") or ""
    if module == "ragkit" or module.startswith("ragkit."):
        return None
    try:
        path = inspect.getsourcefile(cls)
    except (TypeError, OSError):  # e.g. a module loaded from a file but not put in sys.modules
        code = next((f.__code__ for f in vars(cls).values() if hasattr(f, "__code__")), None)
        path = code.co_filename if code is not None else None
    if not path:
        return None
    try:
        import os

        key = (path, os.path.getmtime(path))
        if key not in _FINGERPRINTS:
            import hashlib

            with open(path, "rb") as handle:
                _FINGERPRINTS[key] = hashlib.sha256(handle.read()).hexdigest()[:16]
        return _FINGERPRINTS[key]
    except OSError:
        return None


def call_stage(slot: str, type_name: str, fn: Callable[[], T]) -> T:
    """Run ``fn`` for the stage in ``slot``; an unexpected exception becomes a :class:`StageError` naming it.

    ragkit's own errors (already specific) pass through unchanged.

    Example:
        >>> call_stage("query.selector", "top_k", lambda: 3)
        3
        >>> call_stage("query.selector", "top_k", lambda: 1 / 0)
        Traceback (most recent call last):
        ...
        ragkit.errors.StageError: stage query.selector (top_k) failed: ZeroDivisionError: division by zero
    """
    from ragkit.errors import RagkitError, StageError

    try:
        return fn()
    except RagkitError:
        raise
    except Exception as exc:
        raise StageError(slot, type_name, f"{type(exc).__name__}: {exc}") from exc
