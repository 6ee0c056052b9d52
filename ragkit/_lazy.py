"""Optional dependencies: import them where they are used, with an error naming the extra."""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType

from ragkit.errors import MissingDependencyError


def require(module: str, extra: str | None, purpose: str = "") -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming ``pip install 'ragkit[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(module.split(".")[0], extra, purpose) from exc


#: JAX grabs most of a GPU's memory when its backend starts unless this is ``false``.
JAX_PREALLOCATE = "XLA_PYTHON_CLIENT_PREALLOCATE"


def no_jax_preallocation() -> None:
    """Keep JAX, which ``bm25s`` imports when installed, from reserving most of the GPU the embedder needs.

    JAX reads this setting only from the environment, when its GPU backend starts, so ragkit sets
    ``XLA_PYTHON_CLIENT_PREALLOCATE=false`` right before importing ``bm25s`` -- only when the variable
    is unset and JAX is not imported yet (a user's own setting and an already running JAX are left
    alone). This is the one environment write in ``ragkit/``; ``tests/architecture/test_layers.py``
    allows exactly this line.

    Example:
        >>> no_jax_preallocation()
        >>> JAX_PREALLOCATE in os.environ or "jax" in sys.modules
        True
    """
    if JAX_PREALLOCATE not in os.environ and "jax" not in sys.modules:
        os.environ[JAX_PREALLOCATE] = "false"


def import_bm25s(purpose: str = "the bm25s BM25 engine") -> ModuleType:
    """``bm25s`` with JAX's GPU preallocation off (see :func:`no_jax_preallocation`); the error names the extra."""
    no_jax_preallocation()
    return require("bm25s", "retrieval", purpose)
