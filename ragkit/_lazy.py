"""Optional dependencies: import them where they are used, with an error naming the extra."""

from __future__ import annotations

import importlib
from types import ModuleType

from ragkit.errors import MissingDependencyError


def require(module: str, extra: str | None, purpose: str = "") -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming ``pip install 'ragkit[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(module.split(".")[0], extra, purpose) from exc
