"""The persisted index store (``IndexStore``) and the index phase (``run_index_phase``)."""

from ragkit.store.store import IndexStore

__all__ = ["IndexStore"]
