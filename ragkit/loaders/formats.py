"""One loader per file format. Each returns the documents of one file (possibly none).

Loaders are registered in the one registry as kind ``loader``, named by file suffix, so
``ragkit components --kind loader`` lists them and plug-ins add formats without editing this file.

Example:
    >>> sorted(LOADERS)[:3]
    ['.htm', '.html', '.jsonl']
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ragkit.errors import ConfigError, DocumentError, RegistrationError
from ragkit.loaders.files import LoaderWarning, decode, read_bytes, read_text
from ragkit.loaders.html import html_to_text
from ragkit.registry import KindMapping
from ragkit.text.headings import find_headings
from ragkit.types import Document

FileLoader = Callable[[Path, str, int], list[Document]]


def _base_metadata(path: Path, source_id: str, fmt: str) -> dict[str, Any]:
    return {"path": str(path), "source_id": source_id, "format": fmt}


def _skip_if_blank(text: str, path: Path) -> bool:
    if text.strip():
        return False
    what = "empty" if not text else "whitespace-only"
    warnings.warn(f"{path}: file is {what}; skipped (it would give no chunks)", LoaderWarning, stacklevel=4)
    return True


def _skip_if_binary(path: Path) -> bool:
    """Warn and skip a file whose first 64 KiB hold a NUL byte or are mostly control characters (not text)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(65536)
    except OSError:
        return False
    if not head or head.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff", b"\xef\xbb\xbf")):
        return False  # empty, or a byte-order mark: UTF-8/16/32 text
    if b"\x00" in head:
        what = "binary (it holds NUL bytes)"
    else:
        controls = sum(1 for b in head if b < 32 and b not in (9, 10, 12, 13, 27))
        if controls / len(head) <= 0.1:
            return False
        what = f"binary ({controls / len(head):.0%} control bytes)"
    warnings.warn(f"{path}: file is {what}, not text; skipped (name it with its real suffix, or convert it to text)",
                  LoaderWarning, stacklevel=4)
    return True


def load_text(path: Path, source_id: str, max_bytes: int) -> list[Document]:
    """A plain-text file: one document, no headings (the structure chunker detects them itself); binary files are skipped."""
    if _skip_if_binary(path):
        return []
    text = read_text(path, max_bytes)
    if _skip_if_blank(text, path):
        return []
    return [Document.from_text(text, _base_metadata(path, source_id, "text"))]


def load_markdown(path: Path, source_id: str, max_bytes: int) -> list[Document]:
    """A Markdown file: one document; ATX/setext and WikiText heading lines go to ``metadata["headings"]``."""
    if _skip_if_binary(path):
        return []
    text = read_text(path, max_bytes)
    if _skip_if_blank(text, path):
        return []
    meta = _base_metadata(path, source_id, "markdown")
    meta["headings"] = find_headings(text)
    return [Document.from_text(text, meta)]


def load_html(path: Path, source_id: str, max_bytes: int) -> list[Document]:
    """An HTML file: one document of the extracted text (offsets index that text, not the markup)."""
    markup = read_text(path, max_bytes, sniff_html=True)
    text, headings, title = html_to_text(markup)
    if _skip_if_blank(text, path):
        return []
    meta = _base_metadata(path, source_id, "html")
    meta["headings"] = headings
    if title:
        meta["title"] = title
    return [Document.from_text(text, meta)]


def load_jsonl(path: Path, source_id: str, max_bytes: int) -> list[Document]:
    """A JSON Lines file: one document per line ``{"text": ..., "id": ..., "metadata": {...}}``.

    ``id`` (optional) goes to ``metadata["source_id"]`` (default ``"<file>:<line>"``); ``metadata``
    (optional) must be an object. Blank lines are skipped.
    """
    content = decode(read_bytes(path, max_bytes), path)
    docs: list[Document] = []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DocumentError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno}); each line must be "
                                'one JSON object like {"id": "a", "text": "..."}') from exc
        if not isinstance(record, Mapping):
            raise DocumentError(f"{where}: expected a JSON object, got {type(record).__name__}; each line must be "
                                'one object like {"id": "a", "text": "..."}')
        text = record.get("text")
        if not isinstance(text, str):
            raise DocumentError(f"{where}: field 'text' must be a string, got {text!r:.80}; add a \"text\" field "
                                f"(keys present: {', '.join(map(str, record)) or 'none'})")
        extra = record.get("metadata") or {}
        if not isinstance(extra, Mapping):
            raise DocumentError(f"{where}: field 'metadata' must be an object, got {type(extra).__name__}")
        if not text.strip():
            warnings.warn(f"{where}: empty text; line skipped", LoaderWarning, stacklevel=3)
            continue
        meta = {**_base_metadata(path, f"{source_id}:{number}", "jsonl"), "line": number, **extra}
        if record.get("id") is not None:
            meta["source_id"] = str(record["id"])
        docs.append(Document.from_text(text, meta))
    return docs


#: File suffix → loader, a live mapping over the registry's ``loader`` kind (names are suffixes such
#: as ``.md``; register more with ``register("loader", ".org")`` on a function
#: ``(path, source_id, max_bytes) -> list[Document]``). Other suffixes load as plain text when named
#: explicitly and are skipped when found while walking a directory.
LOADERS: KindMapping = KindMapping("loader")


def register_loader(suffix: str, loader: FileLoader) -> None:
    """Load files ending in ``suffix`` (e.g. ``".org"``) with ``loader`` (registry kind ``loader``).

    Example:
        >>> register_loader(".notes", load_text)
        >>> LOADERS[".notes"] is load_text, ".md" in LOADERS
        (True, True)
        >>> del LOADERS[".notes"]
    """
    if not suffix.startswith("."):
        raise ConfigError(f"loader suffix must start with '.', got {suffix!r}")
    try:
        LOADERS[suffix.lower()] = loader
    except RegistrationError as exc:
        raise ConfigError(str(exc)) from exc
