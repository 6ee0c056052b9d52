"""A persistent vector cache around any embedder (the embedding twin of ``CachedLLM``).

Vectors live in ``RAGKIT_HOME/cache.sqlite`` under the namespace ``emb:<sha256(identity)[:16]>`` with
key ``sha256(text)`` and float32 bytes as value, so repeated texts (a re-run, another index sharing
the embedder, a query asked twice) never reach the model. Only misses are passed to the inner
embedder, which records ``embedding_calls`` usage itself; a fully cached call records nothing.
The cache follows the pipeline's ``cache.mode`` (``read_write`` / ``read_only`` / ``off``); an inner
embedder configured with ``cache: false`` is never cached.

Example:
    >>> from ragkit.testing import FakeEmbedder
    >>> emb = CachedEmbedder(inner=FakeEmbedder(dimension=8), mode="off")
    >>> emb.embed_documents(["a", "b"]).shape, emb.embed_query("a").shape
    ((2, 8), (8,))
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from ragkit.cache import CacheMode, CacheStore, default_cache
from ragkit.embeddings.base import Embedder
from ragkit.errors import DocumentError


def text_key(text: str) -> str:
    """Cache key of a text: hex sha256 of its UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def embedding_namespace(identity: str) -> str:
    """The cache namespace of an embedder identity."""
    return "emb:" + hashlib.sha256(str(identity).encode("utf-8")).hexdigest()[:16]


class CachedEmbedder(Embedder):
    """Serve repeated texts from the persistent cache; pass misses to ``inner`` in one call."""

    def __init__(self, *, inner: Any, store: CacheStore | None = None, mode: CacheMode | None = None) -> None:
        self.inner = inner
        self.store = store
        self.mode = mode
        self.cache_hits = 0
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in {"inner", "_lock"}:
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"CachedEmbedder({self.inner!r})"

    @property
    def identity(self) -> str:
        return self.inner.identity

    @property
    def namespace(self) -> str:
        return embedding_namespace(self.identity)

    def warm_up(self) -> None:
        self.inner.warm_up()

    def get_dimension(self) -> int:
        return int(self.inner.get_dimension())

    def _cache(self) -> CacheStore | None:
        if getattr(self.inner, "cache", True) is False:
            return None
        return self.store if self.store is not None else default_cache(self.mode)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts`` → ``(len(texts), d)`` float32; cache hits never reach the inner embedder."""
        texts = list(texts)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise DocumentError(f"embed_documents: item {i} is a {type(text).__name__} ({text!r:.60}), not a str")
        store = self._cache()
        if not texts or store is None:
            return np.asarray(self.inner.embed_documents(texts), dtype=np.float32)
        keys = [text_key(t) for t in texts]
        unique: dict[str, str] = dict(zip(keys, texts))
        namespace = self.namespace
        found: dict[str, np.ndarray] = {}
        if store.readable:
            for key, blob in store.get_many(namespace, unique).items():
                found[key] = np.frombuffer(blob, dtype=np.float32)
        with self._lock:
            self.cache_hits += len(found)
        missing = [k for k in unique if k not in found]
        if missing:
            vectors = np.asarray(self.inner.embed_documents([unique[k] for k in missing]), dtype=np.float32)
            for key, vector in zip(missing, vectors):
                found[key] = vector
            if store.writable:
                store.put_many(namespace, {k: v.astype(np.float32).tobytes() for k, v in zip(missing, vectors)})
        return np.stack([found[k] for k in keys]).astype(np.float32, copy=False)

    def embed_query(self, text: str) -> np.ndarray:
        """Embed one query (same cache as documents)."""
        return self.embed_documents([text])[0]


def wrap_embedder(embedder: Any, *, store: CacheStore | None = None, mode: CacheMode | None = None) -> Any:
    """Wrap ``embedder`` in :class:`CachedEmbedder` (already-wrapped ones and non-embedders come back unchanged)."""
    if isinstance(embedder, CachedEmbedder) or not callable(getattr(embedder, "embed_documents", None)):
        return embedder
    return CachedEmbedder(inner=embedder, store=store, mode=mode)
