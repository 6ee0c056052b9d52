"""ragkit: retrieval-augmented generation whose edge is chunking and selection.

Heavy names are imported lazily so ``import ragkit`` stays fast and needs no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "Answer", "Chunk", "Document", "Pipeline", "Query", "Registry", "ScoredChunk", "Usage",
    "default_registry", "load_config", "register",
]

_LAZY = {
    "Pipeline": "ragkit.pipeline",
    "Answer": "ragkit.types",
    "Chunk": "ragkit.types",
    "Document": "ragkit.types",
    "Query": "ragkit.types",
    "ScoredChunk": "ragkit.types",
    "Usage": "ragkit.types",
    "Registry": "ragkit.registry",
    "default_registry": "ragkit.registry",
    "register": "ragkit.registry",
    "load_config": "ragkit.config.load",
}

if TYPE_CHECKING:
    from ragkit.config.load import load_config
    from ragkit.pipeline import Pipeline
    from ragkit.registry import Registry, default_registry, register
    from ragkit.types import Answer, Chunk, Document, Query, ScoredChunk, Usage


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ragkit' has no attribute {name!r}")
