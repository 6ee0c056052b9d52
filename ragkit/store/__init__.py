"""Persistence only: the atomic, versioned index store (:class:`ragkit.store.store.IndexStore`).

The index phase that fills it lives in :mod:`ragkit.indexing`.
"""

from __future__ import annotations

from ragkit.store.store import IndexStore

__all__ = ["IndexStore"]
