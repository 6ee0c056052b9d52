"""Crash-safe file writes: write to a temporary file, fsync, ``os.replace``, fsync the directory.

A reader never sees a half-written file: either the old content or the new. Used by the index
store, by retrievers' ``save`` and by ``ragkit run`` outputs.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> atomic_write_json(d / "a.json", {"x": 1})
    >>> read_json(d / "a.json")
    {'x': 1}
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

_CHUNK = 1 << 20


def fsync_dir(path: str | Path) -> None:
    """Flush a directory entry (so a rename inside it survives a power cut); no-op where unsupported."""
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    """The process umask (read without changing it where /proc allows; else set and restored at once)."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb", *, fsync: bool = True) -> Iterator[Any]:
    """Open a temporary sibling of ``path`` for writing; on success it replaces ``path`` atomically.

    If the block raises (or the process dies), ``path`` is untouched and the temporary file is
    removed (or left behind as ``.<name>.tmp-*``, which nothing reads).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    with contextlib.suppress(OSError):  # mkstemp creates 0600; files follow the umask like any other file
        os.fchmod(fd, 0o666 & ~_umask())
    encoding = None if "b" in mode else "utf-8"
    try:
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            if fsync:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
        if fsync:
            fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | Path, data: bytes, *, fsync: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically."""
    with atomic_open(path, "wb", fsync=fsync) as handle:
        handle.write(data)


def atomic_write_text(path: str | Path, text: str, *, fsync: bool = True) -> None:
    """Replace ``path`` with UTF-8 ``text`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"), fsync=fsync)


def atomic_write_json(path: str | Path, obj: Any, *, fsync: bool = True, indent: int | None = 2) -> None:
    """Replace ``path`` with ``obj`` as JSON (UTF-8, keys in insertion order) atomically."""
    atomic_write_text(path, json.dumps(obj, ensure_ascii=False, indent=indent, default=str) + "\n", fsync=fsync)


def atomic_write_npy(path: str | Path, array: np.ndarray, *, fsync: bool = True) -> None:
    """Replace ``path`` with ``array`` in ``.npy`` format (never pickled) atomically."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    atomic_write_bytes(path, buffer.getvalue(), fsync=fsync)


def read_json(path: str | Path) -> Any:
    """Read a JSON file (UTF-8)."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def read_npy(path: str | Path) -> np.ndarray:
    """Load a ``.npy`` array written by :func:`atomic_write_npy` (pickles refused)."""
    return np.load(path, allow_pickle=False)


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes (streamed)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while True:
            block = handle.read(_CHUNK)
            if not block:
                break
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def exclusive_lock(path: str | Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (created if absent) for the block.

    Serialises writers of one index store across processes; a no-op where ``fcntl`` is missing.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    with open(path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def shared_lock(path: str | Path) -> Iterator[None]:
    """Hold a shared advisory lock on ``path`` (created if absent) for the block (readers of a store).

    Many holders at once; :func:`try_exclusive_lock` fails while any holds it. A no-op without ``fcntl``.
    """
    path = Path(path)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield
        return
    try:
        handle = open(path, "a+b")
    except OSError:  # a read-only store: nobody can delete versions under us either
        yield
        return
    with handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def try_exclusive_lock(path: str | Path) -> Iterator[bool]:
    """Try to take an exclusive lock on ``path`` without waiting; yields whether it was taken."""
    path = Path(path)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - non-POSIX
        yield True
        return
    with open(path, "a+b") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
