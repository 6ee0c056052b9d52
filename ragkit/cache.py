"""A persistent key-value cache in SQLite (``RAGKIT_HOME/cache.sqlite``), safe under concurrent writers.

Embeddings (keyed by model identity + text hash) and LLM calls (keyed by backend identity + full
request + prompt-template version) live here, in separate namespaces. Modes: ``read_write``
(default), ``read_only`` (reproducible reruns: read hits, never write), ``off``.

Example:
    >>> import tempfile, pathlib
    >>> store = CacheStore(pathlib.Path(tempfile.mkdtemp()) / "c.sqlite")
    >>> store.put_many("demo", {"k": b"v"})
    >>> store.get_many("demo", ["k", "missing"])
    {'k': b'v'}
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal

from ragkit.errors import ConfigError
from ragkit.paths import cache_path

CacheMode = Literal["read_write", "read_only", "off"]
CACHE_MODES = ("read_write", "read_only", "off")
_SQLITE_MAX_VARS = 900


class CacheStore:
    """Namespaced bytes-to-bytes store. One connection per thread; WAL journal; busy timeout 60 s."""

    def __init__(self, path: str | Path | None = None, mode: CacheMode = "read_write") -> None:
        if mode not in CACHE_MODES:
            raise ConfigError(f"cache.mode: got {mode!r}; allowed: {', '.join(CACHE_MODES)}")
        self.path = Path(path) if path is not None else cache_path()
        self.mode = mode
        self._local = threading.local()
        self._initialised = False
        self._init_lock = threading.Lock()

    @property
    def readable(self) -> bool:
        return self.mode != "off"

    @property
    def writable(self) -> bool:
        return self.mode == "read_write"

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            conn.execute("PRAGMA busy_timeout=60000")
            with self._init_lock:
                if not self._initialised:
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.execute(
                        "CREATE TABLE IF NOT EXISTS entries (namespace TEXT NOT NULL, key TEXT NOT NULL, "
                        "value BLOB NOT NULL, PRIMARY KEY (namespace, key)) WITHOUT ROWID"
                    )
                    self._initialised = True
            self._local.conn = conn
        return conn

    def get_many(self, namespace: str, keys: Iterable[str]) -> dict[str, bytes]:
        """The cached values among ``keys`` (missing keys are absent from the result)."""
        keys = list(dict.fromkeys(keys))
        if not self.readable or not keys:
            return {}
        if not self.path.exists():
            return {}
        conn = self._connection()
        found: dict[str, bytes] = {}
        for i in range(0, len(keys), _SQLITE_MAX_VARS):
            batch = keys[i : i + _SQLITE_MAX_VARS]
            marks = ",".join("?" * len(batch))
            rows = conn.execute(
                f"SELECT key, value FROM entries WHERE namespace = ? AND key IN ({marks})", [namespace, *batch]
            )
            found.update({k: bytes(v) for k, v in rows})
        return found

    def get(self, namespace: str, key: str) -> bytes | None:
        return self.get_many(namespace, [key]).get(key)

    def put_many(self, namespace: str, items: Mapping[str, bytes]) -> None:
        """Store ``items`` (no-op unless the mode is ``read_write``)."""
        if not self.writable or not items:
            return
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "INSERT OR REPLACE INTO entries (namespace, key, value) VALUES (?, ?, ?)",
                [(namespace, k, sqlite3.Binary(v)) for k, v in items.items()],
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def put(self, namespace: str, key: str, value: bytes) -> None:
        self.put_many(namespace, {key: value})

    def count(self, namespace: str | None = None) -> int:
        if not self.path.exists():
            return 0
        conn = self._connection()
        if namespace is None:
            return conn.execute("SELECT COUNT(*) FROM entries").fetchone()[0]
        return conn.execute("SELECT COUNT(*) FROM entries WHERE namespace = ?", [namespace]).fetchone()[0]


_STORES: dict[tuple[str, str], CacheStore] = {}


def default_cache(mode: CacheMode | None = None) -> CacheStore:
    """The store at ``RAGKIT_HOME/cache.sqlite`` opened in ``mode`` (default ``read_write``; a pipeline passes its runtime's ``cache.mode``). One connection pool per (path, mode), re-read if ``RAGKIT_HOME`` changes."""
    mode = mode or "read_write"
    key = (str(cache_path()), mode)
    if key not in _STORES:
        _STORES[key] = CacheStore(cache_path(), mode)
    return _STORES[key]
