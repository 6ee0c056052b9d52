"""METEORA's Evidence Chunk Selection Engine (ECSE) as pure functions over vectors (METHODS.md §4.3).

Inputs are the chunks of one document (or one candidate pool) in document order, as rows of an
embedding matrix, and the rationale embeddings. Three sets are united, with no top-k anywhere:

1. **pairing** ``E_v``: for each rationale the chunk of highest cosine (:func:`pair`); several
   rationales may converge on one chunk (the paper and the packaged library); ``distinct=True`` is
   the experiment code's rule (each rationale takes the best chunk no earlier rationale took);
2. **pooling + elbow** ``E_g``: chunks ranked by cosine with the mean rationale vector, cut at the
   elbow of the sorted scores (:func:`elbow_cut`);
3. **expansion** ``E_w``: the ``window`` neighbours on each side of every chunk in ``E_v ∪ E_g``
   (:func:`expand`), clipped at the document's edges.

The union is returned in document order (ascending position).

Example:
    >>> import numpy as np
    >>> chunks = np.eye(6)                       # six orthogonal chunks
    >>> rationales = np.array([[0, 0, 1.0, 0, 0, 0], [0, 0, 0.9, 0.1, 0, 0]])
    >>> result = select_evidence(rationales, chunks, window=1)
    >>> result.paired, result.elbow, result.selected
    ([2, 2], [2], [1, 2, 3])
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

#: The elbow's z-score threshold (METHODS.md §4.5: the authors' code, both versions).
Z_THRESHOLD = 1.0


def _unit(matrix: np.ndarray) -> np.ndarray:
    matrix = np.atleast_2d(np.asarray(matrix, dtype=np.float64))
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return matrix / norms


def cosine_matrix(rationales: np.ndarray, chunks: np.ndarray) -> np.ndarray:
    """Cosine similarities, shape ``(len(rationales), len(chunks))``.

    Example:
        >>> cosine_matrix(np.array([[1.0, 0.0]]), np.array([[2.0, 0.0], [0.0, 3.0]])).tolist()
        [[1.0, 0.0]]
    """
    return _unit(rationales) @ _unit(chunks).T


def pair(rationales: np.ndarray, chunks: np.ndarray, distinct: bool = False) -> list[int]:
    """``E_v``: the best chunk (by cosine) for each rationale, in rationale order.

    With ``distinct=True`` each rationale takes its best chunk not taken by an earlier rationale
    (rationales beyond the number of chunks take nothing). Ties go to the earlier chunk.

    Example:
        >>> r = np.array([[1.0, 0.0], [1.0, 0.1]])
        >>> c = np.array([[1.0, 0.0], [0.0, 1.0]])
        >>> pair(r, c), pair(r, c, distinct=True)
        ([0, 0], [0, 1])
    """
    if len(chunks) == 0 or len(rationales) == 0:
        return []
    sims = cosine_matrix(rationales, chunks)
    if not distinct:
        return [int(np.argmax(row)) for row in sims]
    taken: list[int] = []
    for row in sims:
        order = np.argsort(-row, kind="stable")
        pick = next((int(j) for j in order if int(j) not in taken), None)
        if pick is not None:
            taken.append(pick)
    return taken


def pooled_ranking(rationales: np.ndarray, chunks: np.ndarray) -> tuple[list[int], np.ndarray]:
    """Chunk positions sorted by cosine with the mean rationale vector (best first), and those scores.

    The mean is of the unit rationale vectors; ties keep document order.

    Example:
        >>> order, scores = pooled_ranking(np.array([[1.0, 0.0], [1.0, 0.2]]), np.array([[0.0, 1.0], [1.0, 0.0]]))
        >>> order
        [1, 0]
    """
    if len(chunks) == 0:
        return [], np.zeros(0)
    centre = _unit(rationales).mean(axis=0, keepdims=True)
    scores = cosine_matrix(centre, chunks)[0]
    order = np.argsort(-scores, kind="stable")
    return [int(i) for i in order], scores[order]


def elbow_cut(scores: Sequence[float], z_threshold: float = Z_THRESHOLD) -> int:
    """How many of the descending ``scores`` to keep: ``k* + 1`` (METHODS.md §4.3 step 2).

    ``Δ_i = s_i − s_{i+1}``; ``z_i = (Δ_i − mean Δ) / std Δ`` (population std); ``k*`` is the first
    ``i`` with ``z_i > z_threshold``. When ``std Δ = 0`` or no gap passes, ``k* = argmax_i (Δ_{i+1} −
    Δ_i)`` (the second difference; the first on ties). With ``n ≤ 2`` scores all are kept.

    Example:
        >>> elbow_cut([0.9, 0.88, 0.86, 0.4, 0.38, 0.36])    # a clear drop after the third
        3
        >>> elbow_cut([0.5, 0.5, 0.5, 0.5])                   # constant: std 0, second difference
        1
        >>> elbow_cut([0.7, 0.2])                             # n <= 2: keep all
        2
    """
    s = np.asarray(list(scores), dtype=np.float64)
    n = len(s)
    if n <= 2:
        return n
    deltas = np.round(s[:-1] - s[1:], 12)  # equal gaps stay equal despite floating-point noise (std 0)
    std = float(deltas.std())  # population std (ddof = 0)
    if std > 0:
        z = (deltas - deltas.mean()) / std
        above = np.flatnonzero(z > z_threshold)
        if above.size:
            return int(above[0]) + 1
    second = deltas[1:] - deltas[:-1]
    return int(np.argmax(second)) + 1


def expand(positions: Iterable[int], n: int, window: int = 1) -> list[int]:
    """Every position within ``window`` of one of ``positions``, clipped to ``[0, n)``, ascending.

    Example:
        >>> expand([0, 4], n=5, window=1)
        [0, 1, 3, 4]
    """
    out: set[int] = set()
    for p in positions:
        out.update(range(max(0, p - window), min(n, p + window + 1)))
    return sorted(out)


@dataclass
class EvidenceSelection:
    """The three ECSE sets (positions in the input order) and their union in document order."""

    paired: list[int] = field(default_factory=list)
    elbow: list[int] = field(default_factory=list)
    expanded: list[int] = field(default_factory=list)
    selected: list[int] = field(default_factory=list)
    pooled_scores: list[float] = field(default_factory=list)

    def via(self, position: int) -> list[str]:
        """Which of the sets put ``position`` in the union (``pairing``, ``elbow``, ``expansion``)."""
        core = set(self.paired) | set(self.elbow)
        return ([name for name, group in (("pairing", self.paired), ("elbow", self.elbow)) if position in group]
                or (["expansion"] if position in self.expanded and position not in core else []))


def select_evidence(rationales: np.ndarray, chunks: np.ndarray, *, window: int = 1, distinct: bool = False,
                    z_threshold: float = Z_THRESHOLD) -> EvidenceSelection:
    """``E_v ∪ E_g ∪ E_w`` over ``chunks`` (rows in document order), returned in document order.

    Expansion here is by position in ``chunks``; the selector expands through the query context
    instead (the same neighbours when ``chunks`` is a whole document).
    """
    n = len(chunks)
    if n == 0:
        return EvidenceSelection()
    if len(rationales) == 0:
        return EvidenceSelection()
    paired = pair(rationales, chunks, distinct=distinct)
    order, scores = pooled_ranking(rationales, chunks)
    keep = elbow_cut(scores, z_threshold)
    elbow = sorted(order[:keep])
    core = sorted(set(paired) | set(elbow))
    expanded = expand(core, n, window) if window > 0 else list(core)
    return EvidenceSelection(paired=paired, elbow=elbow, expanded=[p for p in expanded if p not in core],
                             selected=sorted(set(expanded) | set(core)), pooled_scores=[float(v) for v in scores])
