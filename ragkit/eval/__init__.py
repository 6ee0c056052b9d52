"""Evaluation: datasets with gold evidence, pure metrics, and ``ragkit eval`` experiments.

Example:
    >>> from ragkit.eval import span_scores
    >>> span_scores([("d", 0, 10)], [("d", 5, 15)]).iou
    0.3333333333333333

``ragkit.eval.datasets.load_dataset`` loads the shared datasets and the generic format;
``ragkit.eval.runner.run_experiment`` runs an experiment file (what ``ragkit eval`` calls).
"""

from ragkit.eval.datasets import EvalDataset, EvalQuestion, Span, load_dataset, resolve_data_root
from ragkit.eval.metrics import (
    answer_in_context,
    chroma_span_scores,
    evidence_scores,
    exact_match,
    span_scores,
    token_f1,
)

__all__ = [
    "EvalDataset", "EvalQuestion", "Span", "answer_in_context", "chroma_span_scores", "evidence_scores",
    "exact_match", "load_dataset", "resolve_data_root", "span_scores", "token_f1",
]
