"""The persisted index store: one directory per index, written atomically, verified on load.

Layout::

    <store>/
      CURRENT                      # {"version": "v000002-1a2b3c4d", ...}, replaced atomically
      v000002-1a2b3c4d/            # the committed index (read-only once written)
        manifest.json              # ragkit version, index hash + config, counts, sha256 of every file
        documents.json             # per-document records in index order: id, fingerprint, chunk count
        retriever/                 # retriever.save(): retriever.json, chunks.jsonl, BM25 arrays, vectors, FAISS
      journal/<chunking-hash>.jsonl  # per-document chunk results of an unfinished run (for resume)
      .lock                        # writers hold an exclusive lock while committing
      .readers                     # readers hold a shared lock while loading a version

A commit writes a new version into a temporary directory, fsyncs every file, renames the directory
into place, then replaces ``CURRENT`` (temp file + fsync + ``os.replace``). A process killed at any
point leaves ``CURRENT`` naming a complete version: the previous index stays loadable.

Readers load inside :meth:`IndexStore.reading`: a shared lock on ``.readers`` and the version named
by ``CURRENT`` pinned for the whole load, so a reader never mixes two versions and never sees its
version deleted. A commit removes superseded versions only when it can take that lock exclusively
(no reader is loading); otherwise they stay until a later commit or open. Leftovers of a killed
writer (temporary directories, superseded versions, resume journals of other settings) are removed
by the next commit and by :meth:`IndexStore.clean_leftovers`, which opening an index calls.

Example:
    >>> import tempfile
    >>> store = IndexStore(tempfile.mkdtemp())
    >>> store.exists()
    False
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ragkit.errors import IndexStoreError
from ragkit.store.atomic import (
    atomic_write_json,
    exclusive_lock,
    fsync_dir,
    read_json,
    sha256_file,
    shared_lock,
    try_exclusive_lock,
)
from ragkit.store.chunks import CHUNKS_FILE, read_chunks
from ragkit.types import Chunk, sha256_hex

FORMAT = "ragkit-index"
FORMAT_VERSION = 1
CURRENT = "CURRENT"
MANIFEST = "manifest.json"
DOCUMENTS = "documents.json"
TREES = "trees.json"
RETRIEVER_DIR = "retriever"
JOURNAL_DIR = "journal"
READERS = ".readers"
WRITER_LOCK = ".lock"
MEMORY = ":memory:"
#: Written when ragkit creates a store folder; ragkit writes into, cleans or rebuilds only folders that carry it.
MARKER = ".ragkit-store"
_VERSION_RE = re.compile(r"^v(\d{6,})-[0-9a-f]{8}$")


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(dirpath)


def _rebuild_hint() -> str:
    return "Rebuild it with `ragkit index CONFIG --rebuild` (or pipeline.index(rebuild=True))."


class IndexStore:
    """A directory holding committed index versions, a ``CURRENT`` pointer and a resume journal.

    Example:
        >>> import tempfile
        >>> from ragkit.retrievers.bm25 import BM25Retriever
        >>> from ragkit.types import Document, Chunk
        >>> doc = Document.from_text("hello world")
        >>> r = BM25Retriever().index([Chunk.from_span(doc, 0, 11, 2)])
        >>> store = IndexStore(tempfile.mkdtemp())
        >>> config = {"index": {"retriever": {"type": "bm25"}}}
        >>> h = sha256_hex(config)[:16]
        >>> _ = store.commit(r, [{"id": doc.id, "fingerprint": "f", "chunks": 1}], config, h)
        >>> store.verify(h)["counts"]
        {'documents': 1, 'chunks': 1}
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._pin = threading.local()

    def __repr__(self) -> str:
        return f"IndexStore({str(self.path)!r})"

    # ------------------------------------------------------------------ reading
    def exists(self) -> bool:
        return (self.path / CURRENT).is_file()

    @contextlib.contextmanager
    def reading(self) -> Iterator[str]:
        """Load one version consistently: a shared reader lock, and ``CURRENT`` pinned for the block.

        Every read inside the block (manifest, documents, retriever files) comes from the version
        ``CURRENT`` named when the block began; a concurrent commit does not delete it meanwhile.

        Example:
            >>> import tempfile
            >>> store = IndexStore(tempfile.mkdtemp())
            >>> with store.reading():
            ...     store.exists()
            False
        """
        if getattr(self._pin, "version", None) is not None:
            yield self._pin.version
            return
        if not self.path.is_dir():
            yield ""
            return
        with shared_lock(self.path / READERS):
            version = self.current_version() if self.exists() else None
            self._pin.version = version
            try:
                yield version or ""
            finally:
                self._pin.version = None

    def current_version(self) -> str:
        pinned = getattr(self._pin, "version", None)
        if pinned is not None:
            return pinned
        pointer = self.path / CURRENT
        try:
            version = read_json(pointer)["version"]
        except FileNotFoundError as exc:
            raise IndexStoreError(f"no index at {self.path} (no {CURRENT} file). Build it first with "
                                  "`ragkit index CONFIG` or pipeline.index().") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise IndexStoreError(f"{pointer} is damaged ({exc}). {_rebuild_hint()}") from exc
        if not isinstance(version, str) or not _VERSION_RE.match(version):
            raise IndexStoreError(f"{pointer} names an invalid version {version!r}. {_rebuild_hint()}")
        return version

    def current_dir(self) -> Path:
        directory = self.path / self.current_version()
        if not directory.is_dir():
            replaced = False
            if getattr(self._pin, "version", None) is not None:
                with contextlib.suppress(OSError, ValueError, AttributeError):
                    replaced = read_json(self.path / CURRENT).get("version") != directory.name
            if replaced:
                raise IndexStoreError(
                    f"index store {self.path}: version {directory.name} was replaced by another process while "
                    "it was being read (a concurrent `ragkit index`); the store is fine, open it again")
            raise IndexStoreError(f"{self.path / CURRENT} points to {directory.name}, which is missing. {_rebuild_hint()}")
        return directory

    def manifest(self) -> dict[str, Any]:
        path = self.current_dir() / MANIFEST
        try:
            return read_json(path)
        except (OSError, ValueError) as exc:
            raise IndexStoreError(f"{path} is missing or unreadable ({exc}). {_rebuild_hint()}") from exc

    def verify(self, index_hash: str | None = None, checksums: bool = True) -> dict[str, Any]:
        """Check the manifest, the expected index hash and every file's sha256; return the manifest.

        Raises :class:`IndexStoreError` saying what differs and how to fix it.
        """
        manifest = self.manifest()
        directory = self.current_dir()
        if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
            raise IndexStoreError(
                f"{directory / MANIFEST}: format {manifest.get('format')!r} v{manifest.get('format_version')!r} is "
                f"not {FORMAT!r} v{FORMAT_VERSION} (written by ragkit {manifest.get('ragkit_version')}). {_rebuild_hint()}"
            )
        recorded = manifest.get("index_hash")
        if sha256_hex(manifest.get("index_config"))[:16] != recorded:
            raise IndexStoreError(
                f"{directory / MANIFEST}: the recorded index configuration does not hash to the recorded index hash "
                f"{recorded!r}; the manifest was modified. {_rebuild_hint()}"
            )
        if index_hash is not None and recorded != index_hash:
            raise IndexStoreError(
                f"index store {self.path} was built from a different index configuration (stored hash {recorded}, "
                f"this config {index_hash}). Changed index settings (chunker, enrichers, embedder, retriever, "
                "or the source of a plugin stage among them) need a new index: run with --rebuild to replace it, or set index.store to another directory "
                "(null uses a per-configuration directory under RAGKIT_HOME/indexes)."
            )
        if checksums:
            for rel, expected in sorted(manifest.get("files", {}).items()):
                path = directory / rel
                if not path.is_file():
                    raise IndexStoreError(f"index store {self.path}: file {rel} listed in {MANIFEST} is missing; the "
                                          f"index is damaged. {_rebuild_hint()}")
                found = sha256_file(path)
                if found != expected:
                    raise IndexStoreError(
                        f"index store {self.path}: file {rel} does not match its checksum in {MANIFEST} (expected "
                        f"sha256 {expected[:12]}…, found {found[:12]}…); the index was modified or damaged. {_rebuild_hint()}"
                    )
        return manifest

    def read_documents(self) -> list[dict[str, Any]]:
        path = self.current_dir() / DOCUMENTS
        try:
            return read_json(path)
        except (OSError, ValueError) as exc:
            raise IndexStoreError(f"{path} is missing or unreadable ({exc}). {_rebuild_hint()}") from exc

    def read_trees(self) -> list[dict[str, Any]]:
        """The document-tree records of the current version (empty when the index has none)."""
        path = self.current_dir() / TREES
        if not path.is_file():
            return []
        try:
            return read_json(path)
        except (OSError, ValueError) as exc:
            raise IndexStoreError(f"{path} is unreadable ({exc}). {_rebuild_hint()}") from exc

    def read_chunks(self) -> list[Chunk]:
        return read_chunks(self.current_dir() / RETRIEVER_DIR / CHUNKS_FILE)

    def chunks_by_document(self) -> dict[str, list[Chunk]]:
        """The committed chunks grouped by document fingerprint (records from ``documents.json``)."""
        documents = self.read_documents()
        chunks = self.read_chunks()
        if sum(d["chunks"] for d in documents) != len(chunks):
            raise IndexStoreError(f"index store {self.path}: {DOCUMENTS} accounts for "
                                  f"{sum(d['chunks'] for d in documents)} chunks but {CHUNKS_FILE} holds "
                                  f"{len(chunks)}. {_rebuild_hint()}")
        grouped: dict[str, list[Chunk]] = {}
        position = 0
        for record in documents:
            grouped[record["fingerprint"]] = chunks[position:position + record["chunks"]]
            position += record["chunks"]
        return grouped

    def retriever_dir(self) -> Path:
        return self.current_dir() / RETRIEVER_DIR

    # ------------------------------------------------------------------ ownership
    def claim(self) -> None:
        """Make sure this folder is ragkit's before anything is written or deleted in it.

        A missing or empty folder is created and marked (``.ragkit-store``: format and version); a
        folder holding a store written before markers existed (a ``CURRENT`` pointing at a ragkit
        manifest) is adopted and marked; any other non-empty folder is refused, so nothing of the
        user's is overwritten or deleted.
        """
        marker = self.path / MARKER
        if marker.is_file():
            return
        if self.path.exists() and not self.path.is_dir():
            raise IndexStoreError(f"index.store {str(self.path)!r} is a file, not a folder; give a folder path "
                                  "(ragkit creates it) or null for one under RAGKIT_HOME/indexes")
        entries = [e.name for e in self.path.iterdir()] if self.path.is_dir() else []
        if entries and not self._legacy_store():
            shown = ", ".join(sorted(entries)[:5]) + (", ..." if len(entries) > 5 else "")
            raise IndexStoreError(
                f"index.store {str(self.path)!r} is a non-empty folder that ragkit did not create (no {MARKER} "
                f"marker; it holds {shown}). ragkit never writes into or cleans such a folder: set index.store "
                "to a new or empty folder (or null for one under RAGKIT_HOME/indexes)")
        self.path.mkdir(parents=True, exist_ok=True)
        from ragkit import __version__

        atomic_write_json(marker, {"format": FORMAT, "format_version": FORMAT_VERSION, "created_by": "ragkit",
                                   "ragkit_version": __version__})

    def _legacy_store(self) -> bool:
        try:
            return self.manifest().get("format") == FORMAT
        except (IndexStoreError, OSError, ValueError):
            return False

    # ------------------------------------------------------------------ writing
    def _versions(self) -> list[tuple[int, str]]:
        if not self.path.is_dir():
            return []
        found = []
        for entry in self.path.iterdir():
            match = _VERSION_RE.match(entry.name)
            if match and entry.is_dir():
                found.append((int(match.group(1)), entry.name))
        return sorted(found)

    def commit(self, retriever: Any, documents: Sequence[Mapping[str, Any]], index_config: Mapping[str, Any],
               index_hash: str, extra: Mapping[str, Any] | None = None,
               trees: Sequence[Mapping[str, Any]] | None = None) -> Path:
        """Write ``retriever``, the document records (and document trees) as a new version and make it current."""
        from ragkit import __version__

        self.claim()
        with exclusive_lock(self.path / WRITER_LOCK):
            versions = self._versions()
            sequence = (versions[-1][0] + 1) if versions else 1
            name = f"v{sequence:06d}-{uuid.uuid4().hex[:8]}"
            tmp = self.path / f".{name}.tmp"
            tmp.mkdir()
            try:
                retriever.save(tmp / RETRIEVER_DIR)
                atomic_write_json(tmp / DOCUMENTS, list(documents), indent=None, fsync=False)
                if trees is not None:
                    atomic_write_json(tmp / TREES, list(trees), indent=None, fsync=False)
                files = {
                    p.relative_to(tmp).as_posix(): sha256_file(p)
                    for p in sorted(tmp.rglob("*")) if p.is_file()
                }
                manifest = {
                    "format": FORMAT,
                    "format_version": FORMAT_VERSION,
                    "ragkit_version": __version__,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "index_hash": index_hash,
                    "index_config": json.loads(json.dumps(index_config, default=str)),
                    "counts": {"documents": len(documents), "chunks": sum(int(d["chunks"]) for d in documents)},
                    "retriever": type(retriever).__name__,
                    **(dict(extra) if extra else {}),
                    "files": files,
                }
                atomic_write_json(tmp / MANIFEST, manifest, fsync=False)
                _fsync_tree(tmp)
                os.rename(tmp, self.path / name)
                fsync_dir(self.path)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            atomic_write_json(self.path / CURRENT, {"version": name, "index_hash": index_hash,
                                                    "committed": manifest["created"]})
            self._cleanup(keep=name)
        return self.path / name

    def _cleanup(self, keep: str, journals_kept: Sequence[str] | None = None) -> list[str]:
        """Remove what ragkit left behind here (call with the writer lock held); return the names removed.

        Temporary directories and ``CURRENT`` temp files of dead writers always go; versions other than
        ``keep`` only while no reader holds the reader lock; resume journals except ``journals_kept``
        (``None``: all of them).
        """
        removed: list[str] = []
        with try_exclusive_lock(self.path / READERS) as no_readers:
            for entry in sorted(self.path.iterdir()):
                stale_version = no_readers and _VERSION_RE.match(entry.name) and entry.name != keep
                stale_tmp = entry.name.startswith(".v") and entry.name.endswith(".tmp")
                if entry.is_dir() and (stale_version or stale_tmp):
                    shutil.rmtree(entry, ignore_errors=True)
                    removed.append(entry.name)
                elif entry.is_file() and entry.name.startswith(f".{CURRENT}.tmp-"):
                    with contextlib.suppress(OSError):
                        entry.unlink()
                        removed.append(entry.name)
        journal_dir = self.path / JOURNAL_DIR
        if journal_dir.is_dir():
            for entry in sorted(journal_dir.iterdir()):
                if journals_kept is not None and entry.name in journals_kept:
                    continue
                if entry.is_file() and entry.suffix == ".jsonl":
                    with contextlib.suppress(OSError):
                        entry.unlink()
                        removed.append(f"{JOURNAL_DIR}/{entry.name}")
            with contextlib.suppress(OSError):
                journal_dir.rmdir()
        return removed

    def clean_leftovers(self, chunking_hash: str | None = None) -> list[str]:
        """Remove a killed writer's leftovers now (only in a marked store, only when no writer is active).

        Removes temporary version directories, versions that ``CURRENT`` does not name (unless a
        reader is loading), and resume journals of other chunk settings than ``chunking_hash`` (its own
        journal is kept: the next ``ragkit index`` resumes from it). Returns the names removed.

        Example:
            >>> import tempfile, pathlib
            >>> store = IndexStore(tempfile.mkdtemp())
            >>> store.clean_leftovers()
            []
        """
        if not (self.path / MARKER).is_file() or not self.exists():
            return []
        try:
            with try_exclusive_lock(self.path / WRITER_LOCK) as no_writer:
                if not no_writer:
                    return []
                keep = self.current_version()
                if not (self.path / keep).is_dir():
                    return []
                journal_dir = self.path / JOURNAL_DIR
                kept = ([f"{chunking_hash}.jsonl"] if chunking_hash else
                        [e.name for e in journal_dir.iterdir()] if journal_dir.is_dir() else [])
                return self._cleanup(keep, journals_kept=kept)
        except OSError:  # a read-only store: nothing to clean
            return []

    def journal(self, chunking_hash: str) -> ChunkJournal:
        """The resume journal for ``chunking_hash`` (claims the folder first: see :meth:`claim`)."""
        self.claim()
        return ChunkJournal(self.path / JOURNAL_DIR / f"{chunking_hash}.jsonl")


class ChunkJournal:
    """Append-only JSONL of per-document chunk results, so an interrupted index run resumes.

    Each line is ``{"fingerprint": ..., "chunks": [chunk dicts]}``; a torn last line (killed while
    writing) is ignored on reading.

    Example:
        >>> import tempfile, pathlib
        >>> j = ChunkJournal(pathlib.Path(tempfile.mkdtemp()) / "j.jsonl")
        >>> j.append([("fp1", [])])
        >>> j.load()
        {'fp1': []}
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, list[Chunk]]:
        if not self.path.exists():
            return {}
        found: dict[str, list[Chunk]] = {}
        with open(self.path, encoding="utf-8") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                    found[record["fingerprint"]] = [Chunk.from_dict(c) for c in record["chunks"]]
                except (ValueError, KeyError, TypeError):
                    continue  # torn or foreign line: that document is simply re-chunked
        return found

    def append(self, records: Iterable[tuple[str, Sequence[Chunk]]]) -> None:
        lines = [json.dumps({"fingerprint": fp, "chunks": [c.to_dict() for c in chunks]}, ensure_ascii=False,
                            default=str) for fp, chunks in records]
        if not lines:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        torn = False
        if self.path.exists() and self.path.stat().st_size:
            with open(self.path, "rb") as handle:
                handle.seek(-1, os.SEEK_END)
                torn = handle.read(1) != b"\n"
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(("\n" if torn else "") + "\n".join(lines) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
