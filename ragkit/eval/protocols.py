"""Evaluation protocols: how each one turns a question's retrieved chunks into metric inputs.

Each protocol scores one question at a time into a *row* (a flat mapping of numbers plus the
question's ``corpus``); :func:`summarise` turns a protocol's rows into mean ± std with a seeded 95 %
bootstrap interval, overall and per corpus, and keeps the per-question values for paired tests. Gold is always on documents (``(doc_id, start, end)`` spans), never on chunks, so every
chunker is scored against the same gold.

* ``chroma``: the top k = 5 of one collection pooled over the corpora, Chroma's arithmetic
  (:func:`ragkit.eval.metrics.chroma_span_scores`) and precision Ω
  (:func:`ragkit.eval.metrics.chroma_precision_omega`), with the union arithmetic alongside. Option
  ``positions``: ``exact`` (default) scores each chunk at its own offsets; ``reference`` places it as
  Chroma's code does (:func:`ragkit.eval.metrics.reference_position`: string search, first
  occurrence, trailing '.' dropped), which reproduces Chroma's printed numbers but credits a
  retrieved later copy of a duplicated passage with the first copy's gold;
* ``budget``: candidates (default 100) through the ``token_budget`` selector (default B = 1000),
  span arithmetic on unions, plus evidence coverage and answer-in-context where the data has them;
* ``evidence``: hit@k, recall@k, all-gold-within-k, MRR and nDCG for ``k`` in a list (multi-hop);
* ``answer``: the full query phase (selector + aggregator/LLM) scored by EM / token F1 (needs an LLM).

Example:
    >>> from ragkit.datasets import EvalQuestion, Span
    >>> from ragkit.types import Chunk, Document, ScoredChunk
    >>> doc = Document.from_text("Alpha beta. Gamma delta.")
    >>> ranked = [ScoredChunk(Chunk.from_span(doc, 0, 11, 3), 1.0), ScoredChunk(Chunk.from_span(doc, 12, 24, 3), 0.5)]
    >>> q = EvalQuestion("q1", "Which letters?", gold_spans=(Span(doc.id, 12, 24),))
    >>> row = chroma_row(q, ranked)
    >>> row["recall"], round(row["precision"], 2)  # Chroma's precision: 12 gold of 11 + 12 retrieved characters
    (1.0, 0.52)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import ragkit.eval.metrics as M
from ragkit.datasets import EvalQuestion, Span
from ragkit.errors import ConfigError
from ragkit.types import Answer, Chunk, ScoredChunk

#: Every protocol with its default parameters.
PROTOCOLS: dict[str, dict[str, Any]] = {
    "chroma": {"k": 5, "positions": "exact"},
    "budget": {"budget": 1000, "candidates": 100},
    "evidence": {"k": [1, 2, 5, 10], "rule": None},
    "answer": {},
}
#: Uncertainty settings (an experiment's ``bootstrap:`` overrides them): bootstrap resamples for the
#: 95 % intervals, sign-flip permutations for paired p-values, and the seed both start from.
BOOTSTRAP: dict[str, Any] = {"resamples": 2000, "permutations": 10000, "seed": 0, "confidence": 0.95}
#: How the ``chroma`` protocol places retrieved chunks: their own offsets, or as Chroma's code does.
CHROMA_POSITIONS = ("exact", "reference")
#: The parameters an experiment may set per protocol (chroma's k = 5 is fixed).
PROTOCOL_PARAMS: dict[str, set[str]] = {"chroma": {"positions"}, "budget": {"budget", "candidates"},
                                        "evidence": {"k", "rule"}, "answer": set()}


def parse_protocols(spec: Any) -> dict[str, dict[str, Any]]:
    """An experiment's ``protocols`` (names, or name → parameters) with defaults filled in and checked.

    ``None`` means ``[chroma, budget]``.

    Raises:
        ConfigError: an unknown protocol or parameter, or a value out of range (named by path).

    Example:
        >>> parse_protocols(["chroma", "budget"])
        {'chroma': {'k': 5, 'positions': 'exact'}, 'budget': {'budget': 1000, 'candidates': 100}}
        >>> parse_protocols({"chroma": {"positions": "reference"}})["chroma"]
        {'k': 5, 'positions': 'reference'}
        >>> parse_protocols(parse_protocols(["chroma"])) == parse_protocols(["chroma"])
        True
        >>> parse_protocols({"evidence": {"k": [5, 2, 5]}})
        {'evidence': {'k': [2, 5], 'rule': None}}
    """
    if spec is None:
        spec = ["chroma", "budget"]
    if isinstance(spec, str):
        spec = [spec]
    if isinstance(spec, list):
        spec = {name: {} for name in spec}
    if not isinstance(spec, Mapping) or not spec:
        raise ConfigError(f"protocols: expected a list of names or a mapping name → parameters, got {spec!r}; "
                          f"protocols are {', '.join(PROTOCOLS)}")
    out = {}
    for name, params in spec.items():
        if name not in PROTOCOLS:
            raise ConfigError(f"protocols.{name}: unknown protocol {name!r}; allowed: {', '.join(PROTOCOLS)}")
        params = dict(params or {})
        if name == "chroma" and params.get("k") == PROTOCOLS["chroma"]["k"]:
            params.pop("k")  # the fixed value itself is fine: parsing a parsed spec gives it back
        unknown = set(params) - PROTOCOL_PARAMS[name]
        if unknown:
            allowed = ", ".join(sorted(PROTOCOL_PARAMS[name])) or "none"
            fixed = " (chroma's k = 5 is fixed)" if name == "chroma" and "k" in unknown else ""
            raise ConfigError(f"protocols.{name}: unknown parameters {sorted(unknown)}; allowed: {allowed}{fixed}")
        merged = {**PROTOCOLS[name], **params}
        if name == "evidence":
            ks = merged["k"] if isinstance(merged["k"], list) else [merged["k"]]
            if not ks or not all(isinstance(k, int) and k > 0 for k in ks):
                raise ConfigError(f"protocols.evidence.k: expected positive integers, got {merged['k']!r}")
            merged["k"] = sorted(set(ks))
            if merged["rule"] not in (None, "contain", "overlap"):
                raise ConfigError(f"protocols.evidence.rule: got {merged['rule']!r}; allowed: contain, overlap")
        if name == "chroma" and merged["positions"] not in CHROMA_POSITIONS:
            raise ConfigError(f"protocols.chroma.positions: got {merged['positions']!r}; allowed: "
                              f"{', '.join(CHROMA_POSITIONS)} (exact: the chunk's own offsets; reference: "
                              "located by string search as Chroma's code does)")
        if name == "budget":
            for key in ("budget", "candidates"):
                if not isinstance(merged[key], int) or merged[key] <= 0:
                    raise ConfigError(f"protocols.budget.{key}: expected a positive integer, got {merged[key]!r}")
        out[str(name)] = merged
    return out


def candidates_needed(protocols: Mapping[str, Mapping[str, Any]]) -> int:
    """How many ranked chunks to retrieve per question so every protocol has what it reads.

    Example:
        >>> candidates_needed(parse_protocols(["chroma", "budget"]))
        100
        >>> candidates_needed(parse_protocols({"chroma": {}, "evidence": {"k": [1, 10]}}))
        10
    """
    return max([p.get("candidates", 0) for n, p in protocols.items() if n == "budget"]
               + [max(p["k"]) for n, p in protocols.items() if n == "evidence"]
               + [p["k"] for n, p in protocols.items() if n == "chroma"] + [1])


def spans(scored: Sequence[ScoredChunk]) -> list[tuple[str, int, int]]:
    """The ``(doc_id, start, end)`` spans of ranked or selected chunks, in order.

    Example:
        >>> from ragkit.types import Chunk, Document
        >>> doc = Document.from_text("Alpha beta.")
        >>> [s[1:] for s in spans([ScoredChunk(Chunk.from_span(doc, 6, 11, 2), 0.9)])]
        [(6, 11)]
    """
    return [(s.chunk.doc_id, s.chunk.start, s.chunk.end) for s in scored]


def count_relevant(chunks_by_doc: Mapping[str, Sequence[Chunk]], gold: Sequence[Span]) -> int:
    """How many of the index's chunks overlap a gold span (the ideal ranking's length for nDCG).

    Example:
        >>> from ragkit.types import Chunk, Document
        >>> doc = Document.from_text("Alpha beta. Gamma delta.")
        >>> chunks = [Chunk.from_span(doc, 0, 11, 3), Chunk.from_span(doc, 12, 24, 3)]
        >>> count_relevant({doc.id: chunks}, [Span(doc.id, 5, 15)])
        2
    """
    relevant = set()
    for doc_id, start, end in gold:
        for chunk in chunks_by_doc.get(doc_id, ()):
            if chunk.start < end and start < chunk.end:
                relevant.add(chunk.id)
    return len(relevant)


class ChunkPositions:
    """Where the ``chroma`` protocol places chunks: ``exact`` offsets, or ``reference`` (Chroma's search).

    ``texts`` maps document ids to their text (needed for ``reference``); located spans are cached
    per chunk.

    Example:
        >>> from ragkit.types import Chunk, Document
        >>> doc = Document.from_text("Rates rose. Rates rose.")
        >>> second = Chunk.from_span(doc, 12, 23, 3)
        >>> ChunkPositions().span(second)[1:], ChunkPositions("reference", {doc.id: doc.text}).span(second)[1:]
        ((12, 23), (0, 10))
    """

    def __init__(self, mode: str = "exact", texts: Mapping[str, str] | None = None) -> None:
        if mode not in CHROMA_POSITIONS:
            raise ConfigError(f"protocols.chroma.positions: got {mode!r}; allowed: {', '.join(CHROMA_POSITIONS)}")
        if mode == "reference" and texts is None:
            raise ValueError("ChunkPositions('reference') needs the documents' texts (texts={doc_id: text})")
        self.mode = mode
        self.texts = texts or {}
        self._located: dict[str, tuple[str, int, int]] = {}

    def span(self, chunk: Chunk) -> tuple[str, int, int]:
        """The ``(doc_id, start, end)`` the protocol scores ``chunk`` at."""
        if self.mode == "exact":
            return (chunk.doc_id, chunk.start, chunk.end)
        located = self._located.get(chunk.id)
        if located is None:
            start, end = M.reference_position(self.texts[chunk.doc_id], chunk.text, chunk.start, chunk.end)
            located = self._located[chunk.id] = (chunk.doc_id, start, end)
        return located

    def spans(self, scored: Sequence[ScoredChunk]) -> list[tuple[str, int, int]]:
        """:meth:`span` of each ranked chunk, in order."""
        return [self.span(s.chunk) for s in scored]

    def index_spans(self, chunks_by_doc: Mapping[str, Sequence[Chunk]]) -> dict[str, list[tuple[str, int, int]]]:
        """Every chunk of the index placed, by document (what precision Ω reads)."""
        return {doc_id: [self.span(c) for c in chunks] for doc_id, chunks in chunks_by_doc.items()}


def chroma_row(q: EvalQuestion, top: Sequence[ScoredChunk], positions: ChunkPositions | None = None,
               index_spans: Mapping[str, Sequence[tuple[str, int, int]]] | None = None) -> dict[str, Any]:
    """Protocol ``chroma`` for one question: Chroma's arithmetic on ``top`` (their k = 5), unions alongside.

    ``positions`` places the chunks (default: exact offsets); with ``index_spans`` (every chunk of
    the index placed the same way, by document) the row has Chroma's precision Ω too. A question
    without gold spans is marked ``skip``.

    Example:
        >>> from ragkit.datasets import EvalQuestion, Span
        >>> from ragkit.types import Chunk, Document
        >>> doc = Document.from_text("Rates rose. Rates rose.")
        >>> first, second = Chunk.from_span(doc, 0, 11, 3), Chunk.from_span(doc, 12, 23, 3)
        >>> q = EvalQuestion("q", "?", gold_spans=(Span(doc.id, 0, 10),))
        >>> chroma_row(q, [ScoredChunk(second, 1.0)])["recall"]  # exact: the later copy holds no gold
        0.0
        >>> where = ChunkPositions("reference", {doc.id: doc.text})
        >>> row = chroma_row(q, [ScoredChunk(second, 1.0)], where, where.index_spans({doc.id: [first, second]}))
        >>> row["recall"], row["precision_omega"]  # Chroma's code places it on the first copy
        (1.0, 1.0)
        >>> chroma_row(EvalQuestion("q", "?"), [])
        {'corpus': '', 'skip': True}
    """
    if not q.gold_spans:
        return {"corpus": q.corpus, "skip": True}
    placed = positions.spans(top) if positions is not None else spans(top)
    theirs = M.chroma_span_scores(placed, q.gold_spans)
    ours = M.span_scores(placed, q.gold_spans)
    row = {"corpus": q.corpus, "recall": theirs.recall, "precision": theirs.precision, "iou": theirs.iou,
           "union_recall": ours.recall, "union_precision": ours.precision, "union_iou": ours.iou}
    if index_spans is not None:
        gold_docs = dict.fromkeys(s.doc_id for s in q.gold_spans)
        row["precision_omega"] = M.chroma_precision_omega(
            [span for doc_id in gold_docs for span in index_spans.get(doc_id, ())], q.gold_spans)
    return row


def budget_row(q: EvalQuestion, selected: Sequence[ScoredChunk], hit_rule: str) -> dict[str, Any]:
    """Protocol ``budget`` for one question: what the ``token_budget`` selector kept, union arithmetic.

    Example:
        >>> from ragkit.datasets import EvalQuestion, Span
        >>> from ragkit.types import Chunk, Document
        >>> doc = Document.from_text("Ada wrote the first program.")
        >>> selected = [ScoredChunk(Chunk.from_span(doc, 0, 28, 6), 1.0)]
        >>> q = EvalQuestion("q", "Who wrote it?", answers=("Ada",), gold_spans=(Span(doc.id, 0, 3),))
        >>> row = budget_row(q, selected, "contain")
        >>> row["selected_tokens"], row["recall"], row["all_gold"], row["answer_in_context"]
        (6, 1.0, 1.0, 1.0)
    """
    row: dict[str, Any] = {"corpus": q.corpus, "selected_chunks": len(selected),
                           "selected_tokens": sum(s.chunk.token_count for s in selected)}
    if q.gold_spans:
        s = M.span_scores(spans(selected), q.gold_spans)
        ranks = M.covered_ranks(spans(selected), q.gold_spans, hit_rule)  # type: ignore[arg-type]
        row.update(recall=s.recall, precision=s.precision, iou=s.iou,
                   evidence_recall=M.recall_at_k(ranks, len(selected)),
                   all_gold=M.all_within_k(ranks, len(selected)))
    if q.answers:
        context = "\n\n".join(s.chunk.text for s in selected)
        row["answer_in_context"] = M.answer_in_context(context, q.answers)
    return row


def evidence_row(q: EvalQuestion, ranked: Sequence[ScoredChunk], params: Mapping[str, Any], hit_rule: str,
                 chunks_by_doc: Mapping[str, Sequence[Chunk]], source_of: Mapping[str, str]) -> dict[str, Any]:
    """Protocol ``evidence`` for one question: hit/recall/all-gold at each k, MRR and nDCG at the largest k.

    ``params["rule"]`` (when set) overrides the dataset's ``hit_rule``; ``source_of`` maps document
    ids to their ``source_id`` for passage-level recall.

    Example:
        >>> from ragkit.datasets import EvalQuestion, Span
        >>> from ragkit.types import Chunk, Document
        >>> doc = Document.from_text("Alpha beta. Gamma delta.")
        >>> chunks = [Chunk.from_span(doc, 0, 11, 3), Chunk.from_span(doc, 12, 24, 3)]
        >>> ranked = [ScoredChunk(chunks[0], 1.0), ScoredChunk(chunks[1], 0.5)]
        >>> q = EvalQuestion("q", "?", gold_spans=(Span(doc.id, 12, 24),))
        >>> row = evidence_row(q, ranked, {"k": [1, 2], "rule": None}, "contain", {doc.id: chunks}, {})
        >>> row["hit@1"], row["hit@2"], row["mrr"]
        (0.0, 1.0, 0.5)
    """
    if not q.gold_spans:
        return {"corpus": q.corpus, "skip": True}
    rule = params.get("rule") or hit_rule
    ranked_spans = spans(ranked)
    ranks = M.covered_ranks(ranked_spans, q.gold_spans, rule)
    relevance = M.chunk_relevance(ranked_spans, q.gold_spans)
    n_rel = count_relevant(chunks_by_doc, q.gold_spans)
    kmax = max(params["k"])
    row: dict[str, Any] = {"corpus": q.corpus, "mrr": M.mrr(ranks, kmax), f"ndcg@{kmax}":
                           M.ndcg_at_k(relevance, kmax, n_rel)}
    passages = M.passage_ranks([source_of.get(s.chunk.doc_id, "") for s in ranked],
                               list(q.gold_passages)) if q.gold_passages else []
    for k in params["k"]:
        row[f"hit@{k}"] = M.hit_at_k(ranks, k)
        row[f"recall@{k}"] = M.recall_at_k(ranks, k)
        row[f"all@{k}"] = M.all_within_k(ranks, k)
        if passages:
            row[f"passage_recall@{k}"] = M.recall_at_k(passages, k)
        if q.answers:
            row[f"answer_in_context@{k}"] = M.answer_in_context("\n\n".join(s.chunk.text for s in ranked[:k]),
                                                                q.answers)
    return row


def answer_row(q: EvalQuestion, answer: Answer) -> dict[str, Any]:
    """Protocol ``answer`` for one question: the generated answer's EM / token F1 and its LLM usage.

    Example:
        >>> from ragkit.datasets import EvalQuestion
        >>> row = answer_row(EvalQuestion("q", "Who?", answers=("Ada Lovelace",)), Answer("Ada Lovelace"))
        >>> row["em"], row["f1"], row["llm_calls"]
        (1.0, 1.0, 0)
    """
    context = "\n\n".join(s.chunk.text for s in answer.chunks)
    row = {"corpus": q.corpus, "llm_calls": answer.usage.llm_calls,
           "prompt_tokens": answer.usage.prompt_tokens, "completion_tokens": answer.usage.completion_tokens}
    # requests including cache hits (what a cold run makes) and the question's wall time
    row.update(llm_requests=answer.usage.llm_calls + answer.usage.cached_calls, wall_s=answer.usage.wall_time_s)
    tree = answer.trace.get("tree") if isinstance(answer.trace, Mapping) else None
    if isinstance(tree, Mapping):  # tree aggregators: nodes visited and failed
        row.update(tree_nodes=tree.get("nodes", 0), tree_failed=tree.get("failed", 0))
    if q.answers:
        row.update(em=M.exact_match(answer.text, q.answers), f1=M.token_f1(answer.text, q.answers),
                   answer_in_context=M.answer_in_context(context, q.answers))
    return row


def aggregate(values: Sequence[float]) -> dict[str, float]:
    """Mean, std and count of a metric over questions.

    Example:
        >>> aggregate([0.0, 1.0])
        {'mean': 0.5, 'std': 0.5, 'n': 2}
    """
    mean, std = M.mean_std(list(values))
    return {"mean": mean, "std": std, "n": len(values)}


def summarise(rows: Sequence[Mapping[str, Any]], bootstrap: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A protocol's per-question rows as mean ± std and a 95 % bootstrap interval, overall and per corpus.

    Each metric gets ``mean``, ``std``, ``n`` and ``ci`` (``[low, high]``: a percentile bootstrap over
    questions, seeded, so re-runs are bit-identical; settings from ``bootstrap``, default
    :data:`BOOTSTRAP`). Skipped rows are counted apart. ``per_question`` keeps the scored rows
    column-wise (``question`` ids where the rows carry them) for paired tests against a baseline.

    Example:
        >>> rows = [{"corpus": "a", "iou": 0.2}, {"corpus": "b", "iou": 0.4}, {"corpus": "b", "skip": True}]
        >>> summary = summarise(rows)
        >>> summary["scored"], summary["skipped_without_gold"], summary["overall"]["iou"]["n"]
        (2, 1, 2)
        >>> sorted(summary["per_corpus"]), summary["per_question"]["iou"]
        (['a', 'b'], [0.2, 0.4])
        >>> low, high = summary["overall"]["iou"]["ci"]
        >>> 0.2 <= low <= high <= 0.4
        True
    """
    opts = {**BOOTSTRAP, **(bootstrap or {})}

    def stat(values: list[float]) -> dict[str, Any]:
        out: dict[str, Any] = aggregate(values)
        low, high = M.bootstrap_ci(values, resamples=opts["resamples"], seed=opts["seed"],
                                   confidence=opts["confidence"])
        out["ci"] = [low, high]
        return out

    scored = [r for r in rows if not r.get("skip")]
    keys = sorted({k for r in scored for k, v in r.items() if isinstance(v, (int, float)) and k != "corpus"})
    overall = {k: stat([r[k] for r in scored if k in r]) for k in keys}
    per_corpus: dict[str, dict[str, Any]] = {}
    for corpus in dict.fromkeys(r["corpus"] for r in scored):
        sub = [r for r in scored if r["corpus"] == corpus]
        per_corpus[corpus] = {k: stat([r[k] for r in sub if k in r]) for k in keys}
    per_question: dict[str, list[Any]] = {"question": [r.get("question") for r in scored],
                                          "corpus": [r["corpus"] for r in scored]}
    per_question.update({k: [r.get(k) for r in scored] for k in keys})
    return {"questions": len(rows), "scored": len(scored), "skipped_without_gold": len(rows) - len(scored),
            "overall": overall, "per_corpus": per_corpus, "per_question": per_question}


def paired_against(summary: Mapping[str, Any], baseline: Mapping[str, Any], metrics: Sequence[str],
                   bootstrap: Mapping[str, Any] | None = None) -> dict[str, dict[str, float]]:
    """Paired tests of a variant's summary against the baseline's, per metric, on their common questions.

    Questions are matched by id (``per_question["question"]``; by position when ids are missing).
    Returns ``{metric: PairedTest.to_dict()}`` (Δ = variant − baseline) for the metrics both have.

    Example:
        >>> a = summarise([{"corpus": "c", "question": f"q{i}", "iou": 0.5 + (i % 2) / 10} for i in range(40)])
        >>> b = summarise([{"corpus": "c", "question": f"q{i}", "iou": 0.5} for i in range(40)])
        >>> test = paired_against(a, b, ["iou"])["iou"]
        >>> round(test["delta"], 4), test["n"], test["p"] < 0.01
        (0.05, 40, True)
    """
    opts = {**BOOTSTRAP, **(bootstrap or {})}
    mine, theirs = summary.get("per_question") or {}, baseline.get("per_question") or {}
    ids_a, ids_b = mine.get("question") or [], theirs.get("question") or []
    if ids_a and ids_b and all(i is not None for i in ids_a) and all(i is not None for i in ids_b):
        where = {qid: i for i, qid in enumerate(ids_b)}
        pairs = [(i, where[qid]) for i, qid in enumerate(ids_a) if qid in where]
    else:
        pairs = [(i, i) for i in range(min(len(ids_a), len(ids_b)))]
    out = {}
    for metric in metrics:
        if metric not in mine or metric not in theirs:
            continue
        kept = [(mine[metric][i], theirs[metric][j]) for i, j in pairs
                if mine[metric][i] is not None and theirs[metric][j] is not None]
        test = M.paired_test([x for x, _ in kept], [y for _, y in kept], resamples=opts["resamples"],
                             permutations=opts["permutations"], seed=opts["seed"], confidence=opts["confidence"])
        out[metric] = test.to_dict()
    return out


def chunks_by_document(chunks: Sequence[Chunk]) -> dict[str, list[Chunk]]:
    """The index's chunks grouped by ``doc_id`` (in index order).

    Example:
        >>> from ragkit.types import Chunk, Document
        >>> doc = Document.from_text("Alpha beta.")
        >>> [len(v) for v in chunks_by_document([Chunk.from_span(doc, 0, 5, 1), Chunk.from_span(doc, 6, 11, 1)]).values()]
        [2]
    """
    grouped: dict[str, list[Chunk]] = defaultdict(list)
    for chunk in chunks:
        grouped[chunk.doc_id].append(chunk)
    return grouped
