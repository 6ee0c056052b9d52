"""Reading dataset files: required files, JSON, JSONL and corpus files, with errors that say what is wrong.

Shared by the format modules; corpus files go through :mod:`ragkit.loaders` so a dataset document has
the same text, id and headings as ``ragkit chunk FILE`` gives for that file.

Example:
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "rows.jsonl"
    >>> _ = path.write_text('{"id": 1}\\n\\n{"id": 2}\\n', encoding="utf-8")
    >>> read_jsonl(path)
    [{'id': 1}, {'id': 2}]
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from ragkit.errors import DatasetError
from ragkit.loaders import load_corpus
from ragkit.types import Document

__all__ = ["DEV_NAMES", "document_from_file", "full_or_dev", "read_json", "read_jsonl", "require"]

#: Upstream file name -> the dev-subset file of a development checkout (same format, fewer questions).
DEV_NAMES = {
    "questions_df.csv": "questions_dev.csv",
    "hotpotqa_train.json": "hotpotqa_train.dev.json",
    "musique_train.json": "musique_train.dev.json",
    "legal_contract_qa.jsonl": "legal_contract_qa.dev.jsonl",
    "natural_question.jsonl": "natural_question.dev.jsonl",
    "scientific_qa.jsonl": "scientific_qa.dev.jsonl",
    "qasper-original-sample.json": "qasper_sample.dev.json",
}


def full_or_dev(folder: Path, upstream: str) -> tuple[Path, str]:
    """The upstream file ``folder/upstream`` and split ``"full"``, else its dev subset and ``"dev"``.

    ``ragkit datasets download`` writes the upstream layout (every question); a development checkout
    holds the dev layout (:data:`DEV_NAMES`). Neither present is a :class:`~ragkit.errors.DatasetError`.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / "questions_dev.csv").write_text("question\\n")
        >>> full_or_dev(folder, "questions_df.csv")[1]
        'dev'
    """
    if (folder / upstream).is_file():
        return folder / upstream, "full"
    dev = DEV_NAMES[upstream]
    if (folder / dev).is_file():
        return folder / dev, "dev"
    raise DatasetError(
        f"dataset file {str(folder / upstream)!r} (or its dev subset {dev!r}) is missing; the dataset folder looks "
        f"incomplete. Run `ragkit datasets download {folder.name} --root {folder.parent}` or place the file there."
    )


def require(path: Path) -> Path:
    """``path`` if it is a file, else a :class:`~ragkit.errors.DatasetError` (the dataset looks incomplete)."""
    if not path.is_file():
        raise DatasetError(f"dataset file {str(path)!r} is missing; the dataset folder looks incomplete "
                           "(datasets/README.md lists each dataset's files; `ragkit datasets download NAME` fetches them)")
    return path


def read_json(path: Path) -> Any:
    """The JSON value in ``path`` (which must exist)."""
    try:
        return json.loads(require(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc}); the file may be truncated") from exc


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of ``path``, one per non-blank line (which must exist)."""
    rows = []
    for lineno, line in enumerate(require(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{lineno}: not a JSON object per line ({exc}); fix or remove the line") from exc
        if not isinstance(row, dict):
            raise DatasetError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
        rows.append(row)
    return rows


def document_from_file(path: Path, source_id: str, **meta: Any) -> Document:
    """A corpus file loaded by ``ragkit.loaders`` (same text, id and headings), with stable evaluation metadata.

    The machine-specific ``path`` is dropped and ``source_id`` replaced by the dataset's own name for
    the file, so chunk caches keyed by document fingerprints hold across data roots and machines.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "one.md"
        >>> _ = path.write_text("# One\\n\\nHello.\\n", encoding="utf-8")
        >>> doc = document_from_file(path, "one", corpus="toy")
        >>> doc.metadata["source_id"], doc.metadata["corpus"], "path" in doc.metadata
        ('one', 'toy', False)
    """
    loaded = load_corpus([path])
    if len(loaded) != 1:
        raise DatasetError(f"corpus file {str(path)!r} is empty or unreadable; the dataset looks damaged")
    doc = loaded[0]
    kept = {k: v for k, v in doc.metadata.items() if k not in ("path", "source_id")}
    return replace(doc, metadata={**kept, "source_id": source_id, **meta})
