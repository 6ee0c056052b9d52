"""The config's ``corpus`` section turned into documents (and, for a dataset corpus, questions): the one place.

A corpus spec is one of:

- a mapping ``{paths: [...], max_bytes: N}``: files, directories and globs, resolved against
  ``base_dir`` (the config file's folder for a config) and loaded by :mod:`ragkit.loaders`;
- a mapping ``{dataset: NAME, subset: [...]}``: a dataset of :mod:`ragkit.datasets`, read from the
  data root chosen by :func:`ragkit.datasets.resolve_data_root`; it brings its own questions;
- a path, glob or :class:`~ragkit.types.Document`, or a list of those (Documents pass through).

``data_root`` is the explicit root (``--data-root``) and ``config_data_root`` the config's top-level
``data_root``; the precedence between them, ``$RAGKIT_DATA`` and the default is applied by
:func:`ragkit.datasets.resolve_data_root` only, and only when a dataset is named.

Example:
    >>> import tempfile
    >>> from pathlib import Path
    >>> base = Path(tempfile.mkdtemp())
    >>> _ = (base / "a.md").write_text("# A\\n\\nAlpha.\\n", encoding="utf-8")
    >>> corpus = corpus_from_spec({"paths": ["*.md"]}, base_dir=base)
    >>> [d.metadata["source_id"] for d in corpus.documents], corpus.questions
    (['a.md'], None)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragkit.datasets import EvalDataset, load_dataset
from ragkit.errors import DocumentError
from ragkit.loaders import DEFAULT_MAX_BYTES, load_corpus
from ragkit.types import Document, Query

__all__ = ["CORPUS_KEYS", "Corpus", "corpus_from_spec", "documents_from_spec", "questions_from_spec"]

#: The keys a corpus mapping may have (the config schema's ``corpus`` section).
CORPUS_KEYS = ("paths", "dataset", "subset", "max_bytes")


@dataclass(frozen=True)
class Corpus:
    """What a corpus spec gives: its documents, its questions (``None`` unless a dataset) and the dataset.

    Example:
        >>> Corpus(documents=[Document.from_text("x")]).questions is None
        True
    """

    documents: list[Document]
    questions: list[Query] | None = None
    dataset: EvalDataset | None = None


def corpus_from_spec(
    spec: Any,
    *,
    base_dir: str | Path | None = None,
    data_root: str | Path | None = None,
    config_data_root: str | Path | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Corpus:
    """Documents and questions of a corpus spec (see the module docstring), loading a dataset once.

    Args:
        spec: a corpus mapping (``paths`` + ``max_bytes``, or ``dataset`` + ``subset``), a path, glob or
            ``Document``, or a list of those.
        base_dir: where relative paths and globs are resolved (default: the working directory).
        data_root: the explicit data root (``--data-root``) for a dataset corpus.
        config_data_root: the config's ``data_root`` (below ``$RAGKIT_DATA`` in the precedence).
        max_bytes: refuse files larger than this (a mapping's ``max_bytes`` wins).

    Returns:
        A :class:`Corpus`; ``questions`` are the dataset's questions as :class:`~ragkit.types.Query`
        objects (same ids) for a dataset corpus, else ``None``.

    Raises:
        DocumentError: a malformed mapping (unknown keys, both or neither of ``paths`` and ``dataset``),
            a missing path, a glob that matches nothing, a file too large or malformed.
        DatasetError: the named dataset cannot be loaded (unknown name, missing data root or files).

    Example:
        >>> import json, tempfile
        >>> from pathlib import Path
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "toy").mkdir()
        >>> _ = (root / "toy" / "documents.jsonl").write_text(
        ...     json.dumps({"id": "a", "text": "Alpha.", "corpus": "x"}) + "\\n"
        ...     + json.dumps({"id": "b", "text": "Beta.", "corpus": "y"}) + "\\n")
        >>> _ = (root / "toy" / "questions.jsonl").write_text(
        ...     json.dumps({"id": "q1", "question": "First?", "corpus": "x", "gold_passages": ["a"]}) + "\\n"
        ...     + json.dumps({"id": "q2", "question": "Second?", "corpus": "y", "gold_passages": ["b"]}) + "\\n")
        >>> corpus = corpus_from_spec({"dataset": "toy", "subset": ["y"]}, data_root=root)
        >>> [d.text for d in corpus.documents], [q.id for q in corpus.questions]
        (['Beta.'], ['q2'])
    """
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    if not isinstance(spec, Mapping):
        return Corpus(documents=load_corpus(spec, base_dir=base, max_bytes=max_bytes))
    unknown = set(spec) - set(CORPUS_KEYS)
    if unknown:
        raise DocumentError(f"corpus has unknown keys {sorted(unknown)}; use 'paths' (and 'max_bytes'), or 'dataset' "
                            "with 'subset'")
    if spec.get("max_bytes") is not None:
        max_bytes = int(spec["max_bytes"])
    paths, name = spec.get("paths"), spec.get("dataset")
    if paths is not None and name is not None:
        raise DocumentError("corpus gives both 'paths' and 'dataset'; keep one of them")
    if name is not None:
        dataset = load_dataset(name, data_root=data_root, subset=spec.get("subset"),
                               config_data_root=config_data_root)
        return Corpus(documents=list(dataset.documents), questions=[q.to_query() for q in dataset.questions],
                      dataset=dataset)
    if paths is None:
        raise DocumentError("corpus has neither 'paths' nor 'dataset'; e.g. corpus: {paths: ['docs/**/*.md']}")
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    return Corpus(documents=load_corpus(list(paths), base_dir=base, max_bytes=max_bytes))


def documents_from_spec(
    spec: Any,
    *,
    base_dir: str | Path | None = None,
    data_root: str | Path | None = None,
    config_data_root: str | Path | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> list[Document]:
    """The documents of a corpus spec: :func:`corpus_from_spec` without the questions.

    Example:
        >>> docs = documents_from_spec([Document.from_text("Already loaded.")])
        >>> docs[0].text
        'Already loaded.'
    """
    return corpus_from_spec(spec, base_dir=base_dir, data_root=data_root, config_data_root=config_data_root,
                            max_bytes=max_bytes).documents


def questions_from_spec(
    spec: Any,
    *,
    data_root: str | Path | None = None,
    config_data_root: str | Path | None = None,
) -> list[Query] | None:
    """The questions a corpus spec brings: a dataset's questions (same ids), else ``None``; loads no files for paths.

    Example:
        >>> questions_from_spec({"paths": ["docs/**/*.md"]}) is None
        True
    """
    if not isinstance(spec, Mapping) or spec.get("dataset") is None:
        return None
    return corpus_from_spec(spec, data_root=data_root, config_data_root=config_data_root).questions
