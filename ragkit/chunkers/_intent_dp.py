"""IDC objective: boundary heuristics, the DP wiring and the post-processing of its groups.

The exact dynamic programme itself lives in :mod:`ragkit.chunkers._segment`; this module builds the
IDC score table from the (profile-resolved) parameters, adds the reference code's boundary costs,
and merges or splits the resulting groups of units.

Example:
    >>> import numpy as np
    >>> units = np.eye(2)[[0, 0, 1, 1]]
    >>> seg, beta = segment(units, np.eye(2), [3, 3, 3, 3], max_sentences=4, length_weight=0.0,
    ...                     length_penalty="paper", target_sentences=None, coherence_weight=0.0,
    ...                     min_sentences=1, boundary_penalty=1.2, max_tokens=12)
    >>> seg.segments, beta
    (((0, 2), (2, 4)), 1.2)
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from ragkit.chunkers._segment import (
    Segmentation,
    apply_constraints,
    calibrate_boundary_penalty,
    idc_table,
    optimal_segmentation,
)

_REFERRING = re.compile(
    r"^(it|its|this|these|those|they|them|their|such|therefore|however|thus|hence|moreover|furthermore|"
    r"also|he|she|his|her)\b",
    re.IGNORECASE,
)
_LIST_ITEM = re.compile(r"^\s*([-*•+]|\d+[.)])\s")
_BLOCK_LINE = re.compile(r"^\s*(\||```|~~~|    \S)", re.MULTILINE)
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*$")


def boundary_costs(text: str, units: Sequence[tuple[int, int]], vectors: np.ndarray) -> np.ndarray:
    """The code profile's per-boundary costs (negative = a good place to cut), by unit start.

    Cheaper at paragraph breaks, headings, sentence ends and similarity valleys (< 0.7); dearer
    before referring words, between a colon line and a list, and inside code or table blocks.

    Example:
        >>> text = "Cats purr.\\n\\nIt is soft."
        >>> boundary_costs(text, [(0, 10), (12, 23)], np.eye(2)).round(2).tolist()
        [0.0, -0.3]
    """
    n = len(units)
    costs = np.zeros(n)
    hat = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    adjacent = np.einsum("ij,ij->i", hat[:-1], hat[1:]) if n > 1 else np.zeros(0)
    for i in range(1, n):
        prev = text[units[i - 1][0] : units[i - 1][1]]
        cur = text[units[i][0] : units[i][1]]
        gap = text[units[i - 1][1] : units[i][0]]
        cost = 0.0
        if "\n\n" in gap or "\n\r\n" in gap:
            cost -= 0.3
        if cur.lstrip().startswith("#") or prev.lstrip().startswith("#"):
            cost -= 0.3
        cost += -0.1 if _SENTENCE_END.search(prev.rstrip()) else 0.2
        if adjacent[i - 1] < 0.7:
            cost -= 0.2
        if _REFERRING.match(cur.lstrip()):
            cost += 0.3
        if prev.rstrip().endswith(":") and _LIST_ITEM.match(cur):
            cost += 0.5
        if _BLOCK_LINE.search(prev) and _BLOCK_LINE.search(cur):
            cost += 0.3
        costs[i] = cost
    return costs


def segment(
    unit_vectors: np.ndarray, intent_vectors: np.ndarray, unit_tokens: Sequence[int], *,
    max_sentences: int, length_weight: float, length_penalty: str, target_sentences: float | None,
    coherence_weight: float, min_sentences: int, boundary_penalty: float | None, max_tokens: int,
    calibrate_to: int | None = None, boundary_costs: np.ndarray | None = None,
) -> tuple[Segmentation, float]:
    """The exact optimum of the IDC objective; returns the segmentation and the β it used.

    ``boundary_penalty`` is β; with ``calibrate_to`` set (a mean chunk size in tokens) β is instead
    calibrated per document to reach it.
    """
    table = idc_table(
        unit_vectors, intent_vectors, int(max_sentences),
        length_weight=float(length_weight), length_penalty=length_penalty, target_len=target_sentences,
        coherence_weight=float(coherence_weight),
    )
    table = apply_constraints(table, unit_tokens=unit_tokens, max_tokens=max_tokens, min_len=int(min_sentences))
    if calibrate_to is not None:
        beta, segmentation = calibrate_boundary_penalty(table, unit_tokens, calibrate_to, boundary_costs=boundary_costs)
        return segmentation, beta
    beta = float(boundary_penalty)  # type: ignore[arg-type]
    return optimal_segmentation(table, boundary_penalty=beta, boundary_costs=boundary_costs), beta


def best_intent_scores(group: Sequence[int], unit_vectors: np.ndarray, intent_vectors: np.ndarray) -> np.ndarray:
    """Cosine of the group's mean unit vector with every intent.

    Example:
        >>> best_intent_scores([0, 1], np.eye(2), np.eye(2)).round(3).tolist()
        [0.707, 0.707]
    """
    mean = unit_vectors[list(group)].sum(axis=0)
    norm = float(np.linalg.norm(mean))
    q = intent_vectors / np.maximum(np.linalg.norm(intent_vectors, axis=1, keepdims=True), 1e-12)
    return (q @ mean) / norm if norm > 0 else np.zeros(q.shape[0])


def merge_short(groups: list[list[int]], unit_vectors: np.ndarray, intent_vectors: np.ndarray,
                unit_tokens: Sequence[int], *, min_sentences: int, max_tokens: int) -> list[list[int]]:
    """Merge adjacent groups where one has fewer than ``min_sentences`` units and both share a best intent.

    Example:
        >>> merge_short([[0], [1], [2]], np.eye(2)[[0, 0, 1]], np.eye(2), [1, 1, 1], min_sentences=2, max_tokens=9)
        [[0, 1], [2]]
    """
    if min_sentences <= 0 or len(groups) < 2:
        return groups
    out = [groups[0]]
    for group in groups[1:]:
        prev = out[-1]
        short = min(len(prev), len(group)) < min_sentences
        fits = sum(unit_tokens[i] for i in prev + group) <= max_tokens
        if short and fits:
            same = int(np.argmax(best_intent_scores(prev, unit_vectors, intent_vectors))) == int(
                np.argmax(best_intent_scores(group, unit_vectors, intent_vectors)))
            if same:
                out[-1] = prev + group
                continue
        out.append(group)
    return out


def split_long(text: str, groups: list[list[int]], units: Sequence[tuple[int, int]], unit_tokens: Sequence[int],
               over_tokens: int | None) -> list[list[int]]:
    """Split groups above ``over_tokens`` at a paragraph break (else the middle), recursively; ``None``: off.

    Example:
        >>> split_long("a. b. c. d.", [[0, 1, 2, 3]], [(0, 2), (3, 5), (6, 8), (9, 11)], [2, 2, 2, 2], 5)
        [[0, 1], [2, 3]]
    """
    if over_tokens is None:
        return groups
    out: list[list[int]] = []
    pending = list(reversed(groups))
    while pending:
        group = pending.pop()
        if len(group) < 2 or sum(unit_tokens[i] for i in group) <= over_tokens:
            out.append(group)
            continue
        cum = np.cumsum([unit_tokens[i] for i in group])
        half = cum[-1] / 2.0
        cuts = list(range(1, len(group)))
        paragraph = [c for c in cuts if "\n\n" in text[units[group[c - 1]][1] : units[group[c]][0]]]
        pool = paragraph or cuts
        cut = min(pool, key=lambda c: (abs(cum[c - 1] - half), c))
        pending.extend([group[cut:], group[:cut]])
    return out
