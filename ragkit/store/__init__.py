"""The persisted index store (:class:`ragkit.store.store.IndexStore`) and the index phase
(:func:`ragkit.store.indexer.run_index_phase`). Names are imported lazily (no import cycles)."""

from __future__ import annotations

from typing import Any

__all__ = ["IndexStore", "open_existing_index", "run_index_phase"]


def __getattr__(name: str) -> Any:
    if name == "IndexStore":
        from ragkit.store.store import IndexStore

        return IndexStore
    if name in ("run_index_phase", "open_existing_index"):
        from ragkit.store import indexer

        return getattr(indexer, name)
    raise AttributeError(f"module 'ragkit.store' has no attribute {name!r}")
