"""Chunk records on disk: one JSON object per line, written atomically (used by retrievers and the store)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from ragkit.errors import IndexStoreError
from ragkit.store.atomic import atomic_open
from ragkit.types import Chunk

CHUNKS_FILE = "chunks.jsonl"


def write_chunks(path: str | Path, chunks: Iterable[Chunk]) -> None:
    """Write chunks as JSON lines (atomically)."""
    with atomic_open(path, "w") as handle:
        for chunk in chunks:
            handle.write(json.dumps(chunk.to_dict(), ensure_ascii=False, default=str))
            handle.write("\n")


def read_chunks(path: str | Path) -> list[Chunk]:
    """Read chunks written by :func:`write_chunks`; a malformed line raises :class:`IndexStoreError`."""
    chunks = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                chunks.append(Chunk.from_dict(json.loads(line)))
            except (ValueError, KeyError, TypeError) as exc:
                raise IndexStoreError(
                    f"{path}, line {number}: not a chunk record ({exc}); the index is damaged. "
                    "Rebuild it with `ragkit index CONFIG --rebuild`."
                ) from exc
    return chunks
