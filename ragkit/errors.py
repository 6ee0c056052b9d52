"""The ragkit exception hierarchy.

Every error ragkit raises on purpose derives from :class:`RagkitError`. Messages follow one
template: what was wrong, the value received, what is allowed, and how to fix it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from difflib import get_close_matches

_SECRET_NAME = re.compile(r"(?i)(api[_-]?key|access[_-]?token|auth[_-]?token|secret|password|authorization)")
_SECRET_ASSIGNMENT = re.compile(
    r"(?i)\b((?:api[_-]?key|access[_-]?token|auth[_-]?token|secret|password|authorization)['\"]?\s*[:=]\s*['\"]?)"
    r"(?:bearer\s+)?([^\s'\",}]+)")
_KEY_LIKE = re.compile(r"\b(sk|pk|rk)-[A-Za-z0-9_\-]{6,}")


def is_secret_name(name: str) -> bool:
    """Whether a parameter or key called ``name`` holds a secret (its value is never echoed).

    Example:
        >>> is_secret_name("api_key"), is_secret_name("api_key_env"), is_secret_name("model")
        (True, False, False)
    """
    return bool(_SECRET_NAME.search(name)) and not name.lower().endswith(("_env", "_var"))


def redact(text: str) -> str:
    """``text`` with secret values masked: ``api_key: ...``/``password=...`` assignments and ``sk-...`` keys.

    Example:
        >>> redact("api_key: sk-abc123456789 and token sk-zzzzzzzz1")
        'api_key: *** and token sk-***'
    """
    text = _SECRET_ASSIGNMENT.sub(lambda m: m.group(1) + "***", text)
    return _KEY_LIKE.sub(lambda m: m.group(1) + "-***", text)


class RagkitError(Exception):
    """Root of every ragkit error."""

    exit_code = 1


class RagkitWarning(UserWarning):
    """Root of ragkit's warnings (the CLI prints them as one ``warning: ...`` line)."""


class ViewWarning(RagkitWarning):
    """A retrieval view has nothing to work with (e.g. no metadata under its key) and falls back."""


class ConfigError(RagkitError, ValueError):
    """A configuration (YAML, ``--set`` override or stage parameter) is invalid.

    ``problems`` holds every problem found, each as ``(dotted_path, message, line)``.
    """

    exit_code = 2

    def __init__(self, message: str, problems: Sequence[tuple[str, str, int | None]] = ()) -> None:
        super().__init__(message)
        self.problems = list(problems)


class UnsafeConfigError(ConfigError):
    """Safe mode (``--safe`` / ``RAGKIT_SAFE=1``) refuses a setting of the config.

    A path outside the config's folder and ``RAGKIT_HOME``, a non-loopback endpoint that is not allowed,
    or a setting that runs code the config brings (:mod:`ragkit.config.safety`). ``problems`` lists each
    one as ``(dotted_path, message, line)``.
    """


class UnknownComponentError(ConfigError, LookupError):
    """A stage or backend ``type`` is not registered."""

    def __init__(self, kind: str, name: str, available: Sequence[str], path: str | None = None) -> None:
        self.kind, self.name, self.available = kind, name, sorted(available)
        close = get_close_matches(name, self.available, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        where = f"{path}: " if path else ""
        message = (
            f"{where}unknown {kind} type {name!r}.{hint} Registered {kind} types: "
            f"{', '.join(self.available) or '(none)'}. Run `ragkit components --kind {kind}` to list them."
        )
        super().__init__(message, [(path or kind, message, None)])


class RegistrationError(RagkitError):
    """A class cannot be registered as a stage (missing method, *args, name clash, ...)."""


class MissingDependencyError(RagkitError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""

    exit_code = 3

    def __init__(self, package: str, extra: str | None, purpose: str = "") -> None:
        self.package, self.extra = package, extra
        what = f" (needed for {purpose})" if purpose else ""
        fix = f"pip install 'ragkit[{extra}]'" if extra else f"pip install {package}"
        super().__init__(f"Python package {package!r} is not installed{what}. Install it with: {fix}")


class CapabilityError(ConfigError):
    """A stage needs a backend capability that the configured backend does not provide."""


class StageError(RagkitError):
    """A stage failed at run time; wraps the original exception with the stage's slot and type."""

    def __init__(self, stage: str, type_name: str, cause: BaseException | str) -> None:
        self.stage, self.type_name = stage, type_name
        super().__init__(f"stage {stage} ({type_name}) failed: {cause}")


class BackendError(RagkitError):
    """An LLM or embedding backend failed (unreachable server, timeout, bad response)."""

    def __init__(self, backend: str, message: str, retriable: bool = False) -> None:
        self.backend, self.retriable = backend, retriable
        super().__init__(f"backend {backend}: {message}")


class BackendTimeoutError(BackendError):
    """A backend call exceeded its timeout."""


class StructuredOutputError(BackendError):
    """Model output did not validate against the requested JSON schema, even after retries."""

    def __init__(self, backend: str, message: str, raw: str) -> None:
        self.raw = raw
        super().__init__(backend, f"{message}; raw output: {raw[:500]!r}")


class DocumentError(RagkitError, ValueError):
    """A document cannot be loaded or processed (bad encoding, too large, unreadable)."""


class IndexStoreError(RagkitError):
    """A persisted index is missing, corrupt or built from a different index configuration."""


class DatasetError(RagkitError):
    """An evaluation dataset is missing or malformed."""
