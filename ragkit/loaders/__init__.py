"""Load a corpus into :class:`~ragkit.types.Document` objects.

Loaders know files only: ``load_corpus(spec)`` accepts any iterable of paths, directories, globs and
``Document`` objects (passed through). Turning a config's ``corpus`` section (``{"paths": [...]}`` or
``{"dataset": name, "subset": [...]}``) into documents is :mod:`ragkit.corpus`; this package never
imports :mod:`ragkit.datasets` or :mod:`ragkit.eval`. Formats by suffix:

- ``.txt`` (and unknown suffixes named explicitly): plain text, no headings;
- ``.md``/``.markdown``: Markdown; ATX ``#``/setext headings and WikiText ``= = Title = =`` lines are
  recorded in ``metadata["headings"]`` as ``(start, end, level, title)``;
- ``.html``/``.htm``: the extracted text (**offsets index the extracted text, not the markup**), with
  H1-H6 as heading spans and ``<title>`` in ``metadata["title"]``;
- ``.jsonl``: one document per line, ``{"id", "text", "metadata"}`` (``id`` → ``metadata["source_id"]``).

Text files decode as UTF-8; other encodings fall back (UTF-16/32 by byte-order mark, cp1252, latin-1)
with a :class:`LoaderWarning` naming the file, never dropped. Newlines are normalised as Python's text
mode does, so a document's text equals ``Path(f).read_text(encoding="utf-8")`` and offsets index it.
Empty and whitespace-only files are skipped with a warning. Files above ``max_bytes`` (64 MiB by
default; ``corpus: {max_bytes: N}`` in a config) raise :class:`~ragkit.errors.DocumentError`. Every document has ``metadata["path"]`` and
``metadata["source_id"]`` (the path relative to ``base_dir`` when inside it).

Example:
    >>> from ragkit.types import Document
    >>> docs = load_corpus([Document.from_text("Already loaded.")])
    >>> docs[0].text
    'Already loaded.'
"""

from __future__ import annotations

import glob as globlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ragkit.errors import DocumentError
from ragkit.loaders.files import DEFAULT_MAX_BYTES, LoaderWarning
from ragkit.loaders.formats import LOADERS, load_text
from ragkit.types import Document

__all__ = ["DEFAULT_MAX_BYTES", "LOADERS", "LoaderWarning", "corpus_files", "load_corpus", "load_path"]

_GLOB_CHARS = set("*?[")
_PROGRESS_MIN_FILES = 50


def load_corpus(
    spec: Any,
    base_dir: str | Path | None = None,
    data_root: str | Path | None = None,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> list[Document]:
    """Documents for ``spec`` (see the module docstring), in a stable order.

    Args:
        spec: a path/glob, a ``Document``, or an iterable of those (a config ``corpus`` mapping is
            :func:`ragkit.corpus.documents_from_spec`'s job).
        base_dir: where relative paths and globs are resolved (default: the working directory).
        data_root: unused (kept so positional callers keep working); datasets are :mod:`ragkit.corpus`'s.
        max_bytes: refuse files larger than this.

    Raises:
        DocumentError: a path does not exist, a glob matches nothing, a file is too large or malformed.

    Example:
        >>> import tempfile
        >>> base = Path(tempfile.mkdtemp())
        >>> _ = (base / "notes.txt").write_text("Plain text.\\n", encoding="utf-8")
        >>> [(d.metadata["source_id"], d.text) for d in load_corpus(["*.txt"], base_dir=base)]
        [('notes.txt', 'Plain text.\\n')]
    """
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    if isinstance(spec, Mapping):
        raise DocumentError(
            f"load_corpus takes paths, globs or Documents, not a corpus mapping ({dict(spec)!r:.120}); turn a config's "
            "corpus section into documents with ragkit.corpus.documents_from_spec(spec, base_dir=...)")
    items: list[Any] = [spec] if isinstance(spec, (str, os.PathLike, Document)) else list(spec)
    docs: list[Document] = []
    seen: set[Path] = set()
    order: list[tuple[str, Any]] = []  # keep Documents and files in the order given
    for item in items:
        if isinstance(item, Document):
            order.append(("doc", item))
            continue
        if not isinstance(item, (str, os.PathLike)):
            raise DocumentError(
                f"cannot load {item!r} ({type(item).__name__}); give paths, directories, globs or Document objects"
            )
        for path, explicit in _expand(str(item), base):
            key = path.resolve()
            if key in seen:
                continue
            seen.add(key)
            order.append(("file", (path, explicit)))
    n_files = sum(1 for kind, _ in order if kind == "file")
    bar = tqdm(total=n_files, desc="loading", unit="file", disable=n_files < _PROGRESS_MIN_FILES)
    with bar:
        for kind, value in order:
            if kind == "doc":
                docs.append(value)
                continue
            path, explicit = value
            docs.extend(load_path(path, base_dir=base, max_bytes=max_bytes, explicit=explicit))
            bar.update(1)
    return docs


def load_path(
    path: str | Path, base_dir: str | Path | None = None, *, max_bytes: int = DEFAULT_MAX_BYTES, explicit: bool = True
) -> list[Document]:
    """Documents of one file, by its suffix (unknown suffixes load as plain text).

    ``explicit=False`` (files found by walking a directory) skips unknown suffixes instead.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "page.md"
        >>> _ = path.write_text("# Title\\n\\nBody.\\n", encoding="utf-8")
        >>> load_path(path, base_dir=path.parent)[0].metadata["headings"]
        [(0, 7, 1, 'Title')]
    """
    path = Path(path)
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    if not path.is_file():
        raise DocumentError(f"corpus path {str(path)!r} is not a file")
    loader = LOADERS.get(path.suffix.lower(), load_text if explicit else None)
    if loader is None:
        return []
    return loader(path, _source_id(path, base), max_bytes)


def corpus_files(item: str, base: str | Path) -> list[Path]:
    """The files one corpus entry (a path, folder or glob, relative to ``base``) reaches, as :func:`load_corpus` sees them.

    Used by safe mode (:mod:`ragkit.config.safety`) to check where symbolic links inside a corpus lead.

    Raises:
        DocumentError: the path does not exist, the glob matches nothing, the folder holds no loadable file.

    Example:
        >>> import tempfile
        >>> base = Path(tempfile.mkdtemp())
        >>> _ = (base / "a.md").write_text("A", encoding="utf-8")
        >>> [p.name for p in corpus_files("*.md", base)]
        ['a.md']
    """
    return [path for path, _explicit in _expand(str(item), Path(base))]


def _expand(item: str, base: Path) -> list[tuple[Path, bool]]:
    """Files for one path, directory or glob; ``explicit`` marks files the user named directly."""
    expanded = os.path.expanduser(item)
    if _GLOB_CHARS & set(expanded):
        root = None if os.path.isabs(expanded) else str(base)
        matches = sorted(globlib.glob(expanded, root_dir=root, recursive=True))
        if not matches:
            raise DocumentError(f"corpus glob {item!r} matched no files (relative to {base}); check the pattern")
        out: list[tuple[Path, bool]] = []
        for match in matches:
            path = Path(match) if os.path.isabs(match) else Path(os.path.normpath(base / match))
            if _dangling(path):
                continue
            out.extend(_walk(path) if path.is_dir() else [(path, True)])
        return out
    path = Path(expanded)
    if not path.is_absolute():
        path = Path(os.path.normpath(base / path))
    if path.is_dir():
        found = _walk(path)
        if not found:
            raise DocumentError(
                f"corpus directory {item!r} holds no loadable files (suffixes: {', '.join(sorted(LOADERS))}); "
                "name files with other suffixes explicitly to load them as plain text"
            )
        return found
    if not path.exists():
        raise DocumentError(f"corpus path {item!r} does not exist (looked for {path}); check the path or base_dir")
    return [(path, True)]


def _walk(directory: Path) -> list[tuple[Path, bool]]:
    """Files under ``directory`` with a known suffix, sorted, skipping hidden files and folders."""
    out = []
    for root, dirs, names in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if not name.startswith(".") and Path(name).suffix.lower() in LOADERS and not _dangling(Path(root) / name):
                out.append((Path(root) / name, False))
    return out


def _dangling(path: Path) -> bool:
    """Whether ``path`` is a symbolic link to itself (a loop) or to nothing; warns that it is skipped."""
    if not path.is_symlink() or path.exists():
        return False
    import warnings

    try:
        path.resolve(strict=True)
        why = "points to nothing"
    except RuntimeError:
        why = "points to itself (a loop)"
    except OSError as exc:
        why = "points to itself (a loop)" if getattr(exc, "errno", None) == 40 else "points to nothing"
    warnings.warn(f"{path}: a symbolic link that {why}; skipped", LoaderWarning, stacklevel=4)
    return True


def _source_id(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return path.as_posix()
