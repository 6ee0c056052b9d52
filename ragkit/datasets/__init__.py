"""Evaluation datasets: documents, questions and gold evidence, loaded the same way every time.

Four shared sets are built in (``chroma_chunking_eval``, ``hipporag_multihop``, ``qasper_sample``,
``leval_longdoc``), one format module each; anything else is read in the generic format
(``datasets/README.md``). Gold evidence is always expressed on *documents* (character spans
``(doc_id, start, end)`` and passage ids = document ``source_id``), never on chunks, so every chunker
is scored against the same gold.

Layout: :mod:`~ragkit.datasets.records` (the records), :mod:`~ragkit.datasets.root` (the data-root
precedence, the only copy), :mod:`~ragkit.datasets.catalog` (built-in names and
:func:`load_dataset`), :mod:`~ragkit.datasets.files` (reading files), and the formats
:mod:`~ragkit.datasets.chroma`, :mod:`~ragkit.datasets.hipporag`, :mod:`~ragkit.datasets.qasper`,
:mod:`~ragkit.datasets.leval`, :mod:`~ragkit.datasets.generic`. Turning a config's ``corpus`` section
into documents and questions is :mod:`ragkit.corpus`.

Data root precedence: explicit ``data_root`` (``--data-root``) > ``$RAGKIT_DATA`` > the config's
``data_root`` > ``RAGKIT_HOME/datasets``. :func:`download` (``ragkit datasets download NAME``) fetches a
built-in benchmark's pinned upstream files there (:mod:`~ragkit.datasets.remote`), like
``sklearn.datasets.fetch_*``; :func:`load_dataset` then reads them (``split: full``, every question)
as well as the dev layout of a development checkout (``split: dev``).

Example:
    >>> import json, tempfile
    >>> from pathlib import Path
    >>> root = Path(tempfile.mkdtemp())
    >>> (root / "toy").mkdir()
    >>> _ = (root / "toy" / "documents.jsonl").write_text(json.dumps({"id": "a", "text": "BM25 ranks words."}))
    >>> _ = (root / "toy" / "questions.jsonl").write_text(json.dumps(
    ...     {"id": "q1", "question": "What ranks words?", "gold_spans": [{"doc": "a", "text": "BM25"}]}))
    >>> ds = load_dataset("toy", data_root=root)
    >>> q = ds.questions[0]
    >>> ds.document(q.gold_spans[0].doc_id).text[q.gold_spans[0].start:q.gold_spans[0].end]
    'BM25'
"""

from ragkit.datasets.catalog import DATASETS, BuiltinDataset, Loader, dataset_spec, load_dataset
from ragkit.datasets.chroma import CHROMA_CORPORA, load_chroma
from ragkit.datasets.files import document_from_file
from ragkit.datasets.generic import load_generic
from ragkit.datasets.hipporag import HIPPORAG_SUBSETS, load_hipporag
from ragkit.datasets.leval import LEVAL_TASKS, load_leval
from ragkit.datasets.qasper import load_qasper, render_qasper_paper
from ragkit.datasets.records import HIT_RULES, EvalDataset, EvalQuestion, Span
from ragkit.datasets.remote import MIRROR_ENV, SOURCES, DatasetSource, RemoteFile, download, is_present
from ragkit.datasets.root import DATA_ENV, default_data_root, resolve_data_root

__all__ = [
    "CHROMA_CORPORA", "DATASETS", "DATA_ENV", "HIPPORAG_SUBSETS", "HIT_RULES", "LEVAL_TASKS", "MIRROR_ENV",
    "SOURCES", "BuiltinDataset", "DatasetSource", "EvalDataset", "EvalQuestion", "Loader", "RemoteFile", "Span",
    "dataset_spec", "default_data_root", "document_from_file", "download", "is_present", "load_chroma",
    "load_dataset", "load_generic", "load_hipporag", "load_leval", "load_qasper", "render_qasper_paper",
    "resolve_data_root",
]
