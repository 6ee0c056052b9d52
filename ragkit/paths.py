"""Where ragkit keeps models, caches and indexes (``RAGKIT_HOME``, default ``~/.cache/ragkit``)."""

from __future__ import annotations

import os
from pathlib import Path


def ragkit_home() -> Path:
    """The root of ragkit's state: ``$RAGKIT_HOME`` or ``~/.cache/ragkit``."""
    return Path(os.environ.get("RAGKIT_HOME") or Path.home() / ".cache" / "ragkit").expanduser()


def models_dir() -> Path:
    """Prepared local models: ``RAGKIT_HOME/models``."""
    return ragkit_home() / "models"


def indexes_dir() -> Path:
    """Index stores by index hash: ``RAGKIT_HOME/indexes``."""
    return ragkit_home() / "indexes"


def wheels_dir() -> Path:
    """Locally built wheels (llama.cpp): ``RAGKIT_HOME/wheels``."""
    return ragkit_home() / "wheels"


def cache_path() -> Path:
    """The call and vector cache: ``RAGKIT_HOME/cache.sqlite``."""
    return ragkit_home() / "cache.sqlite"
