"""Per-sentence scores that model-driven chunkers already compute, kept for whoever asks.

``perplexity`` computes a mean NLL per sentence and ``margin`` a keep-minus-split margin per sentence
boundary; both decide their boundaries from those numbers and then drop them. Inside
:func:`recording`, they also hand them to :func:`record`, keyed by document id, so a caller (the chunk
visualiser, :mod:`ragkit.viz`) can show *why* a chunk ends where it does. Outside :func:`recording`,
:func:`record` does nothing, and chunk output is the same either way. The sink lives in a context
variable, so concurrent callers each see only their own documents.

Example:
    >>> with recording() as scores:
    ...     record("doc-1", "perplexity", [(0, 5), (6, 9)], [float("nan"), 1.5], "mean NLL (nats)")
    >>> scores["doc-1"].values, scores["doc-1"].label
    ((None, 1.5), 'mean NLL (nats)')
    >>> record("doc-2", "margin", [(0, 1)], [0.0], "margin")  # not recording: ignored
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class SentenceScores:
    """One document's per-sentence scores from a chunker.

    Attributes:
        chunker: the chunker type (``perplexity`` or ``margin``).
        sentences: ``(start, end)`` character spans of the sentences the chunker scored.
        values: one score per sentence (``None`` where the chunker has none, e.g. ``nan``).
        label: what the score is, with its unit (shown in the visualiser's legend).
    """

    chunker: str
    sentences: tuple[tuple[int, int], ...]
    values: tuple[float | None, ...]
    label: str


_SINK: ContextVar[dict[str, SentenceScores] | None] = ContextVar("ragkit_chunk_diagnostics", default=None)


@contextmanager
def recording() -> Iterator[dict[str, SentenceScores]]:
    """Collect the per-sentence scores of the documents chunked inside the block (``{doc_id: scores}``)."""
    sink: dict[str, SentenceScores] = {}
    token = _SINK.set(sink)
    try:
        yield sink
    finally:
        _SINK.reset(token)


def record(doc_id: str, chunker: str, sentences: Sequence[tuple[int, int]], values: Sequence[float],
           label: str) -> None:
    """Hand one document's per-sentence scores to the active :func:`recording` (no-op without one)."""
    sink = _SINK.get()
    if sink is None:
        return
    clean = tuple(None if v is None or not math.isfinite(float(v)) else float(v) for v in values)
    sink[doc_id] = SentenceScores(chunker, tuple((int(s), int(e)) for s, e in sentences), clean, label)
