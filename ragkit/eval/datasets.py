"""Deprecated location, re-exports ragkit.datasets.

Import from :mod:`ragkit.datasets` (records, data root, formats, :func:`~ragkit.datasets.load_dataset`)
and :mod:`ragkit.corpus` (a config's ``corpus`` section as documents and questions) instead. This
module keeps old imports working until every caller has moved; it defines nothing of its own.

Example:
    >>> from ragkit.eval.datasets import load_dataset
    >>> import ragkit.datasets
    >>> load_dataset is ragkit.datasets.load_dataset
    True
"""

from ragkit.datasets import (
    CHROMA_CORPORA,
    DATA_ENV,
    DATASETS,
    DEFAULT_DATA_ROOT,
    HIPPORAG_SUBSETS,
    HIT_RULES,
    LEVAL_TASKS,
    EvalDataset,
    EvalQuestion,
    Loader,
    Span,
    dataset_spec,
    document_from_file,
    load_chroma,
    load_dataset,
    load_generic,
    load_hipporag,
    load_leval,
    load_qasper,
    render_qasper_paper,
    resolve_data_root,
)

__all__ = [
    "CHROMA_CORPORA", "DATASETS", "DATA_ENV", "DEFAULT_DATA_ROOT", "HIPPORAG_SUBSETS", "HIT_RULES", "LEVAL_TASKS",
    "EvalDataset", "EvalQuestion", "Loader", "Span", "dataset_spec", "document_from_file", "load_chroma",
    "load_dataset", "load_generic", "load_hipporag", "load_leval", "load_qasper", "render_qasper_paper",
    "resolve_data_root",
]
