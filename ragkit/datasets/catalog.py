"""The catalogue of datasets: built-in names, :func:`load_dataset` and experiment ``dataset`` entries.

Built-in datasets (one format module each) are listed in :data:`DATASETS`; any other name is a
folder in the generic format under the data root (or a path to one).

Example:
    >>> sorted(DATASETS)
    ['chroma_chunking_eval', 'hipporag_multihop', 'leval_longdoc', 'qasper_sample']
    >>> DATASETS["hipporag_multihop"].subsets
    ('hotpotqa', 'musique')
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from ragkit.datasets.chroma import CHROMA_CORPORA, load_chroma
from ragkit.datasets.generic import load_generic
from ragkit.datasets.hipporag import HIPPORAG_SUBSETS, load_hipporag
from ragkit.datasets.leval import LEVAL_TASKS, load_leval
from ragkit.datasets.qasper import load_qasper
from ragkit.datasets.records import EvalDataset
from ragkit.datasets.root import resolve_data_root
from ragkit.errors import DatasetError

__all__ = ["DATASETS", "BuiltinDataset", "Loader", "dataset_spec", "load_dataset"]

#: A format loader: ``(data root, subsets or None) -> EvalDataset``.
Loader = Callable[[Path, Sequence[str] | None], EvalDataset]


class BuiltinDataset(NamedTuple):
    """A built-in dataset: its loader, its subsets (empty: any subset the data has) and a one-line description."""

    loader: Loader
    subsets: tuple[str, ...]
    description: str


#: Built-in datasets by name (a ``(loader, subsets, description)`` tuple each).
DATASETS: dict[str, BuiltinDataset] = {
    "chroma_chunking_eval": BuiltinDataset(load_chroma, CHROMA_CORPORA,
                                           "Chroma's chunking benchmark: 5 corpora, gold char spans"),
    "hipporag_multihop": BuiltinDataset(load_hipporag, HIPPORAG_SUBSETS,
                                        "HotpotQA + MuSiQue multi-hop, supporting evidence"),
    "qasper_sample": BuiltinDataset(load_qasper, (), "Qasper papers as Markdown, evidence paragraphs"),
    "leval_longdoc": BuiltinDataset(load_leval, LEVAL_TASKS, "L-Eval long documents, verbatim answer spans"),
}


def _as_list(subset: str | Iterable[str] | None) -> list[str] | None:
    if subset is None:
        return None
    if isinstance(subset, str):
        return [s.strip() for s in subset.split(",") if s.strip()]
    return list(subset)


def load_dataset(name: str, data_root: str | Path | None = None, subset: str | Iterable[str] | None = None, *,
                 config_data_root: str | Path | None = None, limit: int | None = None) -> EvalDataset:
    """Load a built-in dataset by name, or a generic-format folder ``<data root>/<name>`` (or a path).

    Args:
        name: ``chroma_chunking_eval``, ``hipporag_multihop``, ``qasper_sample``, ``leval_longdoc``, or the
            name of a generic-format folder under the data root (a path to such a folder also works).
        data_root: explicit root (``--data-root``); see :func:`resolve_data_root` for the precedence.
        subset: corpora / subsets to keep (``"hotpotqa"``, ``["chatlogs", "wikitexts"]``, ``"a,b"``).
        config_data_root: the config's ``data_root`` (third in the precedence).
        limit: keep at most this many questions per corpus (file order).

    Raises:
        DatasetError: unknown name, missing root or files, malformed data.

    Example:
        >>> import json, tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "mine").mkdir()
        >>> _ = (root / "mine" / "documents.jsonl").write_text(json.dumps({"id": "a", "text": "Oslo is cold."}))
        >>> _ = (root / "mine" / "questions.jsonl").write_text(json.dumps({"question": "Cold?", "gold_passages": ["a"]}))
        >>> ds = load_dataset("mine", data_root=root)
        >>> ds.name, len(ds.documents), ds.questions[0].gold_passages
        ('mine', 1, ('a',))

        With the shared data in place, ``load_dataset("hipporag_multihop", subset="musique")`` gives the
        80 MuSiQue questions (``metadata["pooled"]`` is ``False``: one index per subset).
    """
    subsets = _as_list(subset)
    if name in DATASETS:
        root = resolve_data_root(data_root, config_data_root)
        dataset = DATASETS[name].loader(root, subsets)
    else:
        candidate = Path(name).expanduser()
        if not (candidate.is_dir() and (candidate / "questions.jsonl").is_file()):
            root = resolve_data_root(data_root, config_data_root)
            candidate = root / name
        if not (candidate / "questions.jsonl").is_file():
            raise DatasetError(
                f"unknown dataset {name!r}: not a built-in ({', '.join(DATASETS)}) and no generic-format folder "
                f"with questions.jsonl at {str(candidate)!r}. Put your data there (see datasets/README.md) or "
                "fix the name."
            )
        dataset = load_generic(candidate)
        if subsets:
            dataset = dataset.select(corpora=subsets)
    dataset.metadata.setdefault("subset", subsets)
    if limit is not None:
        dataset = dataset.select(limit=limit)
    return dataset


def dataset_spec(spec: str | Mapping[str, Any]) -> dict[str, Any]:
    """Normalise an experiment's ``dataset`` entry to ``{name, subset, limit}``.

    Raises:
        DatasetError: not a name or a mapping with ``name``, or unknown keys.

    Example:
        >>> dataset_spec({"name": "hipporag_multihop", "subset": "hotpotqa,musique"})
        {'name': 'hipporag_multihop', 'subset': ['hotpotqa', 'musique'], 'limit': None}
    """
    if isinstance(spec, str):
        return {"name": spec, "subset": None, "limit": None}
    if not isinstance(spec, Mapping) or "name" not in spec:
        raise DatasetError(f"dataset: expected a name or a mapping {{name, subset}}, got {spec!r}")
    unknown = set(spec) - {"name", "subset", "limit"}
    if unknown:
        raise DatasetError(f"dataset: unknown keys {sorted(unknown)}; allowed: name, subset, limit")
    return {"name": spec["name"], "subset": _as_list(spec.get("subset")), "limit": spec.get("limit")}
