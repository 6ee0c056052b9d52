"""Evaluation metrics as pure functions: spans, evidence, answers and cost.

Spans are ``(doc_id, start, end)`` triples (:class:`ragkit.datasets.Span` or plain tuples),
half-open character ranges. Two span arithmetics are provided:

* :func:`span_scores` (**ours**): retrieved and gold ranges are unions, so text covered by two
  overlapping chunks counts once. recall = |R∩G| / |G|, precision = |R∩G| / |R|, IoU = |R∩G| / |R∪G|.
* :func:`chroma_span_scores` reproduces the arithmetic of Chroma's published evaluation code
  (``chunking_evaluation``, ``BaseEvaluation._scores_from_dataset_and_retrievals``): the numerator is
  the union of chunk∩reference intersections (overlaps once), but the precision denominator is the
  plain **sum** of the retrieved chunks' lengths (overlapping chunks and chunks from other corpora
  counted in full, each time), the recall denominator is the sum of reference lengths, and the IoU
  denominator is that precision denominator plus the reference characters left uncovered. Any
  zero denominator gives 0.

Example:
    >>> gold = [("d", 10, 20)]
    >>> span_scores([("d", 0, 15), ("d", 5, 15)], gold).recall
    0.5
    >>> round(chroma_span_scores([("d", 0, 15), ("d", 5, 15)], gold).precision, 4)  # 5 / (15 + 10)
    0.2
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

Range = tuple[int, int]
SpanLike = tuple[str, int, int]
HitRule = Literal["contain", "overlap"]


# ---------------------------------------------------------------------------------------------- ranges
def merge_ranges(ranges: Iterable[Range]) -> list[Range]:
    """Union of half-open ranges, sorted; empty ranges dropped; touching ranges merged.

    Example:
        >>> merge_ranges([(5, 8), (0, 3), (2, 4), (8, 9), (7, 7)])
        [(0, 4), (5, 9)]
    """
    out: list[list[int]] = []
    for start, end in sorted(r for r in ranges if r[1] > r[0]):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(s, e) for s, e in out]


def ranges_length(ranges: Iterable[Range]) -> int:
    """Sum of lengths (no union: overlapping ranges count once each).

    Example:
        >>> ranges_length([(0, 4), (2, 6)])
        8
    """
    return sum(max(0, e - s) for s, e in ranges)


def intersect_merged(a: Sequence[Range], b: Sequence[Range]) -> list[Range]:
    """Intersection of two *merged* range lists.

    Example:
        >>> intersect_merged([(0, 5), (8, 12)], [(3, 10)])
        [(3, 5), (8, 10)]
    """
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start < end:
            out.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def subtract_merged(a: Sequence[Range], b: Sequence[Range]) -> list[Range]:
    """``a`` minus ``b`` for merged range lists.

    Example:
        >>> subtract_merged([(0, 10)], [(2, 3), (5, 7)])
        [(0, 2), (3, 5), (7, 10)]
    """
    out = []
    for start, end in a:
        cursor = start
        for s, e in b:
            if e <= cursor or s >= end:
                continue
            if s > cursor:
                out.append((cursor, s))
            cursor = max(cursor, e)
        if cursor < end:
            out.append((cursor, end))
    return out


def _by_doc(spans: Iterable[SpanLike]) -> dict[str, list[Range]]:
    grouped: dict[str, list[Range]] = defaultdict(list)
    for doc_id, start, end in spans:
        grouped[doc_id].append((int(start), int(end)))
    return {doc: merge_ranges(r) for doc, r in grouped.items()}


def _safe_div(a: float, b: float) -> float:
    return a / b if b else 0.0


# ---------------------------------------------------------------------------------------------- spans
@dataclass(frozen=True)
class SpanScores:
    """Recall, precision and IoU of one question (plus the character counts behind them)."""

    recall: float
    precision: float
    iou: float
    covered: int = 0
    gold_chars: int = 0
    retrieved_chars: int = 0

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def span_scores(retrieved: Sequence[SpanLike], gold: Sequence[SpanLike]) -> SpanScores:
    """Our span arithmetic: unions on both sides, overlaps counted once.

    Empty retrieval gives 0 for everything; empty gold gives recall 0 (no evidence to find), and
    precision/IoU 0 unless nothing was retrieved either.

    Example:
        >>> s = span_scores([("d", 0, 10), ("d", 5, 15), ("e", 0, 5)], [("d", 8, 20)])
        >>> s.covered, s.retrieved_chars, s.gold_chars  # R = [0,15)+[0,5) = 20 chars, G = 12 chars
        (7, 20, 12)
        >>> round(s.iou, 4)  # 7 / (20 + 12 - 7)
        0.28
    """
    r, g = _by_doc(retrieved), _by_doc(gold)
    covered = sum(ranges_length(intersect_merged(r[d], g[d])) for d in r.keys() & g.keys())
    r_len = sum(ranges_length(v) for v in r.values())
    g_len = sum(ranges_length(v) for v in g.values())
    return SpanScores(
        recall=_safe_div(covered, g_len),
        precision=_safe_div(covered, r_len),
        iou=_safe_div(covered, r_len + g_len - covered),
        covered=covered, gold_chars=g_len, retrieved_chars=r_len,
    )


def chroma_span_scores(retrieved: Sequence[SpanLike], gold: Sequence[SpanLike]) -> SpanScores:
    """Chroma's published arithmetic (see the module docstring); ``retrieved`` is the top-k list as ranked.

    * numerator: union of (chunk ∩ reference) over chunks of the question's document(s), counted once;
    * recall denominator: sum of the reference lengths;
    * precision denominator: sum of **all** retrieved chunk lengths (no union, any document);
    * IoU denominator: precision denominator + Σ over references of their characters not covered.

    Example:
        >>> s = chroma_span_scores([("d", 0, 10), ("d", 5, 15), ("e", 0, 5)], [("d", 8, 20)])
        >>> s.covered, s.retrieved_chars  # 10 + 10 + 5: the overlap and the other corpus count in full
        (7, 25)
        >>> round(s.precision, 4), round(s.iou, 4)  # 7/25, 7/(25 + 5 uncovered)
        (0.28, 0.2333)
    """
    gold_docs = {d for d, _, _ in gold}
    chunks_by_doc: dict[str, list[Range]] = defaultdict(list)
    for doc_id, start, end in retrieved:
        if doc_id in gold_docs:
            chunks_by_doc[doc_id].append((int(start), int(end)))
    intersections: dict[str, list[Range]] = defaultdict(list)
    for doc_id, start, end in gold:
        for cs, ce in chunks_by_doc.get(doc_id, ()):
            s, e = max(cs, start), min(ce, end)
            if s < e:
                intersections[doc_id].append((s, e))
    covered = sum(ranges_length(merge_ranges(v)) for v in intersections.values())
    recall_den = sum(end - start for _, start, end in gold)
    precision_den = sum(max(0, int(end) - int(start)) for _, start, end in retrieved)
    chunk_union = {d: merge_ranges(v) for d, v in chunks_by_doc.items()}
    unused = sum(ranges_length(subtract_merged([(start, end)], chunk_union.get(doc_id, [])))
                 for doc_id, start, end in gold)
    return SpanScores(
        recall=_safe_div(covered, recall_den),
        precision=_safe_div(covered, precision_den),
        iou=_safe_div(covered, precision_den + unused),
        covered=covered, gold_chars=recall_den, retrieved_chars=precision_den,
    )


def reference_position(document: str, text: str, start: int, end: int) -> Range:
    """Where Chroma's evaluation code places a chunk: string search, first occurrence, trailing '.' dropped.

    Chroma's code does not take offsets from the chunker: it drops one trailing ``.`` from the
    chunk text and takes the first occurrence of the rest in the corpus, so a chunk that repeats an
    earlier passage is placed at the earlier copy (and is one character shorter when it ended with
    a full stop). ``start``/``end`` are the chunk's exact offsets, kept when the text is not found
    (a ragkit chunk's text is always found: it is verbatim).

    Example:
        >>> doc = "Rates rose. Rates rose. Sales fell."
        >>> reference_position(doc, "Rates rose.", 12, 23)  # the second copy is placed on the first
        (0, 10)
        >>> reference_position(doc, "Sales fell", 24, 34)
        (24, 34)
    """
    target = text[:-1] if text.endswith(".") else text
    found = document.find(target)
    return (int(start), int(end)) if found < 0 else (found, found + len(target))


def chroma_precision_omega(chunks: Sequence[SpanLike], gold: Sequence[SpanLike]) -> float:
    """Chroma's precision Ω of one question: precision when *every* chunk touching the evidence is retrieved.

    ``chunks`` are all the chunks of the index (any order, any document); only those of the
    question's gold documents count. A chunk is relevant when its range meets a reference's range
    (as in Chroma's range intersection, ranges that only touch, ``max(starts) == min(ends)``, meet
    too). Ω = |∪ (relevant chunk ∩ reference)| / |∪ relevant chunks ∪ ∪ references| (the reference
    characters no chunk covers join the denominator); 0 when nothing meets a reference. It depends on
    the chunking only, not on retrieval: an upper bound on the precision a perfect retriever gets.

    Example:
        >>> chunks = [("d", 0, 10), ("d", 10, 20), ("d", 20, 30), ("e", 0, 50)]
        >>> chroma_precision_omega(chunks, [("d", 12, 16)])  # one relevant chunk: 4 / 10
        0.4
        >>> round(chroma_precision_omega(chunks, [("d", 5, 10)]), 4)  # [10, 20) touches: 5 / 20
        0.25
    """
    refs = _by_doc(gold)
    raw_refs: dict[str, list[Range]] = defaultdict(list)
    for doc_id, start, end in gold:
        raw_refs[doc_id].append((int(start), int(end)))
    relevant: dict[str, list[Range]] = defaultdict(list)
    hit = False
    for doc_id, start, end in chunks:
        for rs, re_ in raw_refs.get(doc_id, ()):
            if max(int(start), rs) <= min(int(end), re_):
                relevant[doc_id].append((int(start), int(end)))
                hit = True
                break
    if not hit:
        return 0.0
    union = {d: merge_ranges(relevant[d]) for d in relevant}
    covered = sum(ranges_length(intersect_merged(union[d], refs.get(d, []))) for d in union)
    denominator = sum(ranges_length(merge_ranges([*relevant.get(d, []), *refs.get(d, [])]))
                      for d in set(relevant) | set(refs))
    return _safe_div(covered, denominator)


# ---------------------------------------------------------------------------------------------- evidence
def covered_ranks(ranked: Sequence[SpanLike], gold: Sequence[SpanLike], rule: HitRule = "contain") -> list[int | None]:
    """For each gold span, the 1-based rank at which the retrieved chunks first cover it (None: never).

    ``rule="contain"``: covered when the union of the chunks ranked 1..r contains the whole gold span
    (a gold span split across two adjacent chunks is covered once both are in). ``rule="overlap"``:
    covered by the first chunk that shares at least one character with it.

    Example:
        >>> ranked = [("d", 0, 10), ("e", 0, 5), ("d", 10, 20)]
        >>> covered_ranks(ranked, [("d", 5, 15), ("e", 1, 2), ("f", 0, 1)])
        [3, 2, None]
        >>> covered_ranks(ranked, [("d", 5, 15)], rule="overlap")
        [1]
    """
    if rule not in ("contain", "overlap"):
        raise ValueError(f"hit rule must be 'contain' or 'overlap', got {rule!r}")
    ranks: list[int | None] = [None] * len(gold)
    seen: dict[str, list[Range]] = defaultdict(list)
    pending = set(range(len(gold)))
    for rank, (doc_id, start, end) in enumerate(ranked, 1):
        if not pending:
            break
        seen[doc_id] = merge_ranges([*seen[doc_id], (int(start), int(end))])
        for i in list(pending):
            g_doc, g_start, g_end = gold[i]
            if g_doc != doc_id:
                continue
            if rule == "overlap":
                hit = min(end, g_end) > max(start, g_start) or (g_end == g_start and start <= g_start < end)
            else:
                hit = any(s <= g_start and g_end <= e for s, e in seen[doc_id])
            if hit:
                ranks[i] = rank
                pending.discard(i)
    return ranks


def passage_ranks(ranked_ids: Sequence[str], gold_ids: Sequence[str]) -> list[int | None]:
    """For each gold passage id, the 1-based rank of its first retrieved chunk (None: never).

    Example:
        >>> passage_ranks(["a", "b", "a", "c"], ["c", "a", "z"])
        [4, 1, None]
    """
    first: dict[str, int] = {}
    for rank, pid in enumerate(ranked_ids, 1):
        first.setdefault(pid, rank)
    return [first.get(g) for g in gold_ids]


def recall_at_k(ranks: Sequence[int | None], k: int) -> float:
    """Share of gold items covered within the top ``k`` (0 when there is no gold).

    Example:
        >>> recall_at_k([1, 4, None], 3)
        0.3333333333333333
    """
    return _safe_div(sum(1 for r in ranks if r is not None and r <= k), len(ranks))


def hit_at_k(ranks: Sequence[int | None], k: int) -> float:
    """1.0 if any gold item is covered within the top ``k``.

    Example:
        >>> hit_at_k([None, 2], 2), hit_at_k([None, 2], 1)
        (1.0, 0.0)
    """
    return float(any(r is not None and r <= k for r in ranks))


def all_within_k(ranks: Sequence[int | None], k: int) -> float:
    """1.0 if every gold item is covered within the top ``k`` (multi-hop: all evidence found together).

    Example:
        >>> all_within_k([1, 3], 3), all_within_k([1, None], 10), all_within_k([], 5)
        (1.0, 0.0, 0.0)
    """
    return float(bool(ranks) and all(r is not None and r <= k for r in ranks))


def mrr(ranks: Sequence[int | None], k: int | None = None) -> float:
    """Reciprocal rank of the first covered gold item (0 if none, or none within ``k``).

    Example:
        >>> mrr([3, 2, None]), mrr([None]), mrr([3], k=2)
        (0.5, 0.0, 0.0)
    """
    hits = [r for r in ranks if r is not None and (k is None or r <= k)]
    return 1.0 / min(hits) if hits else 0.0


def ndcg_at_k(relevances: Sequence[float], k: int, ideal: Sequence[float] | int) -> float:
    """nDCG@k with gains ``relevances`` by rank and a log2(rank+1) discount.

    ``ideal`` is the list of all relevance values available (sorted descending for the ideal
    ranking), or, for binary relevance, the number of relevant items that exist.

    Example:
        >>> round(ndcg_at_k([0, 1, 1], 3, ideal=2), 4)  # (1/log2 3 + 1/2) / (1 + 1/log2 3)
        0.6934
        >>> ndcg_at_k([1, 0], 2, ideal=0)
        0.0
    """
    dcg = sum(rel / math.log2(i + 2) for i, rel in enumerate(relevances[:k]))
    ideal_gains = [1.0] * ideal if isinstance(ideal, int) else sorted(ideal, reverse=True)
    idcg = sum(rel / math.log2(i + 2) for i, rel in enumerate(ideal_gains[:k]))
    return _safe_div(dcg, idcg)


def chunk_relevance(ranked: Sequence[SpanLike], gold: Sequence[SpanLike]) -> list[float]:
    """Binary relevance by rank: 1.0 when the chunk shares at least one character with a gold span.

    Example:
        >>> chunk_relevance([("d", 0, 5), ("d", 5, 9), ("e", 0, 3)], [("d", 4, 6)])
        [1.0, 1.0, 0.0]
    """
    g = _by_doc(gold)
    return [float(any(min(e, ge) > max(s, gs) for gs, ge in g.get(d, ()))) for d, s, e in ranked]


@dataclass(frozen=True)
class EvidenceScores:
    """Evidence metrics of one question at cut-off ``k``."""

    k: int
    hit: float
    recall: float
    all_gold: float
    mrr: float
    ndcg: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def evidence_scores(ranked: Sequence[SpanLike], gold: Sequence[SpanLike], k: int, *, n_relevant: int | None = None,
                    rule: HitRule = "contain") -> EvidenceScores:
    """hit@k, recall@k, all-gold-within-k, MRR and nDCG@k of one ranked chunk list.

    ``n_relevant`` is how many chunks of the whole index overlap gold (for the ideal DCG); it
    defaults to the number of relevant chunks in ``ranked``.

    Example:
        >>> s = evidence_scores([("d", 0, 10), ("x", 0, 5), ("d", 20, 30)], [("d", 2, 8), ("d", 22, 25)], k=2)
        >>> s.hit, s.recall, s.all_gold, s.mrr
        (1.0, 0.5, 0.0, 1.0)
    """
    ranks = covered_ranks(ranked, gold, rule)
    rel = chunk_relevance(ranked, gold)
    ideal = int(sum(rel)) if n_relevant is None else n_relevant
    return EvidenceScores(k=k, hit=hit_at_k(ranks, k), recall=recall_at_k(ranks, k), all_gold=all_within_k(ranks, k),
                          mrr=mrr(ranks, k), ndcg=ndcg_at_k(rel, k, ideal))


# ---------------------------------------------------------------------------------------------- answers
_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower-case, drop punctuation and the articles a/an/the, squeeze whitespace.

    Example:
        >>> normalize_answer("The  Eiffel-Tower!")
        'eiffeltower'
    """
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals any normalised gold answer (0 without answers).

    Example:
        >>> exact_match("the Beatles", ["Beatles", "The Fab Four"])
        1.0
    """
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(a) for a in answers))


def token_f1(prediction: str, answers: Sequence[str]) -> float:
    """SQuAD token F1 of the prediction, maximised over the gold answers (0 without answers).

    Example:
        >>> round(token_f1("Paris France", ["Paris", "Lyon"]), 4)  # P = 1/2, R = 1 → 2/3
        0.6667
    """
    pred_tokens = normalize_answer(prediction).split()
    best = 0.0
    for answer in answers:
        gold_tokens = normalize_answer(answer).split()
        if not pred_tokens or not gold_tokens:
            best = max(best, float(pred_tokens == gold_tokens))
            continue
        common = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
        if common:
            precision, recall = common / len(pred_tokens), common / len(gold_tokens)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def answer_in_context(context: str, answers: Sequence[str]) -> float:
    """1.0 when any normalised answer occurs as a whole-token sequence in the normalised context.

    An LLM-free proxy for "the reader could have answered": yes/no answers are skipped (they are
    not strings to find).

    Example:
        >>> answer_in_context("It opened in 1889 in Paris.", ["1889"]), answer_in_context("x", ["yes"])
        (1.0, 0.0)
    """
    haystack = f" {normalize_answer(context)} "
    for answer in answers:
        needle = normalize_answer(answer)
        if needle and needle not in ("yes", "no", "unanswerable") and f" {needle} " in haystack:
            return 1.0
    return 0.0


# ---------------------------------------------------------------------------------------------- cost
def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population standard deviation (as ``numpy.std``); ``(0.0, 0.0)`` for no values.

    Example:
        >>> mean_std([1, 2, 3, 4])
        (2.5, 1.118033988749895)
    """
    if not values:
        return 0.0, 0.0
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0–100) with linear interpolation (numpy's default); 0.0 for no values.

    Example:
        >>> percentile([10, 20, 30, 40], 50), percentile([10, 20, 30, 40], 95)
        (25.0, 38.5)
    """
    if not values:
        return 0.0
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass
class CostSummary:
    """What a variant cost: chunks, sizes, time, calls.

    Example:
        >>> c = cost_summary([100, 300], index_seconds=2.0, latencies_s=[0.01, 0.03])
        >>> c.chunks, c.mean_tokens, c.std_tokens, round(c.latency_p50_ms, 1)
        (2, 200.0, 100.0, 20.0)
    """

    chunks: int
    mean_tokens: float
    std_tokens: float
    mean_chars: float
    index_seconds: float
    latency_p50_ms: float
    latency_p95_ms: float
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    embedding_calls: int = 0
    embedded_texts: int = 0

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def cost_summary(token_counts: Sequence[int], *, index_seconds: float = 0.0, latencies_s: Sequence[float] = (),
                 char_counts: Sequence[int] = (), usage: Mapping[str, float] | None = None) -> CostSummary:
    """Summarise chunk sizes, index time, query latency (p50/p95 in ms) and LLM/embedding usage."""
    mean_t, std_t = mean_std(list(token_counts))
    usage = usage or {}
    return CostSummary(
        chunks=len(token_counts), mean_tokens=mean_t, std_tokens=std_t,
        mean_chars=mean_std(list(char_counts))[0], index_seconds=index_seconds,
        latency_p50_ms=percentile(list(latencies_s), 50) * 1000, latency_p95_ms=percentile(list(latencies_s), 95) * 1000,
        llm_calls=int(usage.get("llm_calls", 0)), prompt_tokens=int(usage.get("prompt_tokens", 0)),
        completion_tokens=int(usage.get("completion_tokens", 0)),
        embedding_calls=int(usage.get("embedding_calls", 0)), embedded_texts=int(usage.get("embedded_texts", 0)),
    )


# ---------------------------------------------------------------------------------------------- uncertainty
def _resample_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """``resamples`` bootstrap draws of ``n`` question indices (with replacement), from one seeded generator."""
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def bootstrap_ci(values: Sequence[float], *, resamples: int = 2000, seed: int = 0,
                 confidence: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean over questions (seeded: re-runs are bit-identical).

    Questions are resampled with replacement ``resamples`` times; the interval is the
    ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of the resampled means (linear
    interpolation). ``(0.0, 0.0)`` for no values.

    Example:
        >>> lo, hi = bootstrap_ci([0.0, 1.0] * 50)
        >>> round(lo, 2), round(hi, 2)
        (0.4, 0.6)
        >>> bootstrap_ci([0.3, 0.9, 0.1], seed=7) == bootstrap_ci([0.3, 0.9, 0.1], seed=7)
        True
    """
    if len(values) == 0:
        return 0.0, 0.0
    data = np.asarray(values, dtype=np.float64)
    means = data[_resample_indices(len(data), resamples, seed)].mean(axis=1)
    alpha = (1.0 - confidence) / 2
    lo, hi = np.quantile(means, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


@dataclass(frozen=True)
class PairedTest:
    """A variant against the baseline on the same questions: mean difference, its interval, p-value."""

    delta: float
    ci_low: float
    ci_high: float
    p: float
    n: int

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def paired_test(values: Sequence[float], baseline: Sequence[float], *, resamples: int = 2000,
                permutations: int = 10000, seed: int = 0, confidence: float = 0.95) -> PairedTest:
    """Paired comparison over the same questions: Δ = mean(values − baseline), bootstrap CI, permutation p.

    The interval resamples questions (as :func:`bootstrap_ci` does for the per-question
    differences); p is two-sided, from a sign-flip permutation test (under "no difference" each
    question's difference is as likely negative as positive): p = (1 + #{|mean of flipped
    differences| ≥ |Δ|}) / (1 + permutations). Seeded: re-runs are bit-identical.

    Raises:
        ValueError: the two lists differ in length (they must be the same questions, in order).

    Example:
        >>> t = paired_test([0.6, 0.7, 0.8, 0.9] * 10, [0.5, 0.6, 0.7, 0.8] * 10)
        >>> round(t.delta, 4), t.p < 0.001
        (0.1, True)
        >>> paired_test([0.2, 0.4], [0.2, 0.4]).p
        1.0
    """
    a, b = np.asarray(values, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired_test: {len(a)} values against {len(b)} baseline values; pair the same questions")
    if len(a) == 0:
        return PairedTest(0.0, 0.0, 0.0, 1.0, 0)
    diff = a - b
    delta = float(diff.mean())
    lo, hi = bootstrap_ci(diff, resamples=resamples, seed=seed, confidence=confidence)
    signs = np.random.default_rng(seed + 1).integers(0, 2, size=(permutations, len(diff))) * 2 - 1
    flipped = np.abs((signs * diff).mean(axis=1))
    extreme = int(np.count_nonzero(flipped >= abs(delta) - 1e-12))
    return PairedTest(delta, lo, hi, (1 + extreme) / (1 + permutations), len(diff))
