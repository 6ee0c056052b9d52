"""The data root: where evaluation datasets are read from, chosen by one precedence rule.

Precedence (docs/ARCHITECTURE.md, Config): the explicit root (``--data-root``) > ``$RAGKIT_DATA`` >
the config's ``data_root`` > ``RAGKIT_HOME/datasets`` (where ``ragkit datasets download`` puts them). This module
is the only place that applies it; it reads the environment and never writes it.

Example:
    >>> import tempfile
    >>> root = tempfile.mkdtemp()
    >>> resolve_data_root(root) == Path(root)
    True
"""

from __future__ import annotations

import os
from pathlib import Path

from ragkit.errors import DatasetError
from ragkit.paths import ragkit_home

__all__ = ["DATA_ENV", "dataset_dir", "default_data_root", "resolve_data_root"]

#: Environment variable naming the data root (second in the precedence order).
DATA_ENV = "RAGKIT_DATA"


def default_data_root() -> Path:
    """The last rule of the precedence: ``RAGKIT_HOME/datasets``, where ``ragkit datasets download`` writes.

    Example:
        >>> default_data_root().name
        'datasets'
    """
    return ragkit_home() / "datasets"


def resolve_data_root(explicit: str | Path | None = None, config_value: str | Path | None = None) -> Path:
    """The data root: ``explicit`` > ``$RAGKIT_DATA`` > ``config_value`` > ``RAGKIT_HOME/datasets``.

    Empty values count as not given. ``~`` is expanded. The environment is only read.

    Args:
        explicit: the root given on the command line (``--data-root``) or by a Python caller.
        config_value: the config's top-level ``data_root``.

    Returns:
        The chosen directory (relative roots stay relative to the working directory).

    Raises:
        DatasetError: the chosen root is not a directory (the message says which rule chose it); a
            missing higher-precedence root is an error, it does not fall through to the next rule.

    Example:
        >>> import tempfile
        >>> explicit, configured = tempfile.mkdtemp(), tempfile.mkdtemp()
        >>> resolve_data_root(explicit, configured) == Path(explicit)
        True
    """
    for value, how in ((explicit, "--data-root"), (os.environ.get(DATA_ENV), f"${DATA_ENV}"),
                       (config_value, "the config's data_root"),
                       (default_data_root(), "the default RAGKIT_HOME/datasets")):
        if value:
            root = Path(value).expanduser()
            if not root.is_dir() and how.startswith("the default"):
                raise DatasetError(
                    f"no evaluation data yet: the default data root {str(root)!r} does not exist. Download a "
                    "benchmark with `ragkit datasets download NAME` (`ragkit datasets list` shows them), or point "
                    f"--data-root / ${DATA_ENV} / the config's data_root at a folder holding the datasets."
                )
            if not root.is_dir():
                raise DatasetError(
                    f"data root {str(root)!r} (from {how}) does not exist or is not a directory "
                    f"(working directory: {Path.cwd()}). Evaluation data is expected there, one folder per "
                    f"dataset (e.g. {root / 'chroma_chunking_eval'}). Point --data-root or ${DATA_ENV} at the "
                    "folder holding the datasets, or fetch them with `ragkit datasets download NAME --root DIR`."
                )
            return root
    raise AssertionError("unreachable")  # pragma: no cover


def dataset_dir(root: Path, folder: str) -> Path:
    """The folder ``root / folder`` of one dataset, or a :class:`~ragkit.errors.DatasetError` saying how to fix it.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "mine").mkdir()
        >>> dataset_dir(root, "mine") == root / "mine"
        True
    """
    path = root / folder
    if not path.is_dir():
        raise DatasetError(
            f"dataset folder {str(path)!r} is missing under the data root {str(root)!r}. Run `ragkit datasets "
            f"download {folder} --root {root}`, copy or link the dataset there, or point --data-root / "
            f"${DATA_ENV} at the folder that contains {folder!r}."
        )
    return path
