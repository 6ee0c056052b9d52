"""Evaluation: datasets with gold evidence, pure metrics, and ``ragkit eval`` experiments.

* ``datasets``: the shared datasets and the generic format (``load_dataset``);
* ``metrics``: pure span, evidence and answer metrics;
* ``experiment``: experiment files, variants, grid expansion, overrides (``load_experiment``);
* ``protocols``: how ``chroma``, ``budget``, ``evidence`` and ``answer`` score a question;
* ``report``: tables, ``results.md``, ``results.json``, plots;
* ``runner``: runs an experiment's variants (``run_experiment``, what ``ragkit eval`` calls).

Example:
    >>> from ragkit.eval import span_scores
    >>> span_scores([("d", 0, 10)], [("d", 5, 15)]).iou
    0.3333333333333333
"""

from ragkit.datasets import EvalDataset, EvalQuestion, Span, load_dataset, resolve_data_root
from ragkit.eval.metrics import (
    answer_in_context,
    bootstrap_ci,
    chroma_precision_omega,
    chroma_span_scores,
    evidence_scores,
    exact_match,
    paired_test,
    reference_position,
    span_scores,
    token_f1,
)

__all__ = [
    "EvalDataset", "EvalQuestion", "Span", "answer_in_context", "bootstrap_ci", "chroma_precision_omega",
    "chroma_span_scores", "evidence_scores", "exact_match", "load_dataset", "paired_test", "reference_position",
    "resolve_data_root", "span_scores", "token_f1",
]
