"""What a pipeline owns besides its stages: the registry, the cache store and the data root.

A :class:`Runtime` replaces process-wide settings: two pipelines with different ``cache.mode``
values in one process each keep their own mode, and a ``--data-root`` given to one pipeline never
leaks into another (nothing is written to ``os.environ``).

Example:
    >>> rt = Runtime(cache_mode="off")
    >>> rt.cache().readable, rt.cache_mode
    (False, 'off')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragkit.cache import CACHE_MODES, CacheMode, CacheStore, default_cache
from ragkit.errors import ConfigError
from ragkit.registry import Registry, default_registry


@dataclass
class Runtime:
    """The pipeline's collaborators that are not stages.

    ``data_root`` is the explicit data root (``--data-root``); :meth:`resolved_data_root` applies the
    documented precedence (explicit > ``$RAGKIT_DATA`` > config ``data_root`` > default).
    """

    registry: Registry = field(default_factory=default_registry)
    cache_mode: CacheMode = "read_write"
    data_root: str | Path | None = None
    config_data_root: str | Path | None = None

    def __post_init__(self) -> None:
        if self.cache_mode not in CACHE_MODES:
            raise ConfigError(f"cache.mode: got {self.cache_mode!r}; allowed: {', '.join(CACHE_MODES)}")

    def cache(self) -> CacheStore:
        """The cache store (``RAGKIT_HOME/cache.sqlite``) opened in this runtime's mode."""
        return default_cache(self.cache_mode)

    def resolved_data_root(self) -> Path:
        """Where datasets are read from, by the one documented precedence."""
        from ragkit.datasets import resolve_data_root

        return Path(resolve_data_root(self.data_root, self.config_data_root))

    def describe(self) -> dict[str, Any]:
        return {"cache_mode": self.cache_mode, "data_root": None if self.data_root is None else str(self.data_root)}
