"""Meta-Chunking, PPL Chunking: boundaries after local minima of per-sentence perplexity.

The algorithm (METHODS.md §1.3-§1.4, §1.6): split the document into sentences; score every token
with a causal LM conditioned on all preceding text; average the negative log-likelihood over each
sentence (the document's first token has no prediction and is skipped); a sentence that is a local
minimum of that sequence ends its chunk. Optionally merge the resulting meta-chunks greedily up to
a target length. The pure pieces (:func:`sentence_nll`, :func:`find_minima`,
:func:`assemble_groups`, :class:`DynamicThreshold`) need no model and are tested with fakes.

Scoring goes through the LLM layer's ``token_logprobs`` capability, so it runs on ``transformers``,
``llama_cpp`` and any OpenAI-compatible server returning prompt logprobs. The backend owns the
windowing; this module maps tokens back to sentences and decides boundaries.
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Annotated, ClassVar, Literal

import numpy as np
from pydantic import Field

from ragkit.chunkers._diagnostics import record
from ragkit.chunkers._merge import LengthUnit, finish_spans
from ragkit.chunkers._units import sentence_spans
from ragkit.chunkers.base import Chunker, resolve_llm
from ragkit.errors import CapabilityError
from ragkit.llm.base import TOKEN_LOGPROBS
from ragkit.stage import LLMRef, validate_params
from ragkit.text.sentences import SentenceSplitter
from ragkit.text.tokenizers import TokenizerName
from ragkit.types import Chunk, Document

MinimaRule = Literal["either", "both"]

#: A backend call takes the documents gathered so far once they hold this many characters (~32k
#: tokens, several full windows), so the next documents' CPU work overlaps the model's.
GROUP_CHARS = 1 << 17

#: ``max_context`` asked for on the single-pass path: "all preceding tokens". Backends cap it at what
#: the model supports (``TransformersLLM``: ``max_position_embeddings - 1``), so a document longer than
#: the model's context is still scored, in windows of that size.
FULL_CONTEXT = 1 << 30

#: What the perplexity chunker hands to :func:`ragkit.chunkers._diagnostics.record` per sentence.
PERPLEXITY_LABEL = "mean NLL per sentence (nats); a local minimum ends a chunk"


# --------------------------------------------------------------------------- pure algorithm pieces
def sentence_nll(token_logprobs: Sequence[np.ndarray]) -> np.ndarray:
    """Mean negative log-likelihood (nats) of each sentence from its tokens' log-probabilities.

    ``token_logprobs[i]`` holds the log-probabilities of sentence ``i``'s tokens, each conditioned on
    all preceding text (the ``token_logprobs`` contract). The first token of the whole document has no
    prediction and is skipped (METHODS.md §1.3): sentence 0 averages over its tokens ``1..L0-1``, every
    later sentence over all its tokens. The value is the mean NLL (log-perplexity), not ``exp`` of it.
    A sentence with no scored token (e.g. a one-token first sentence) gets ``nan``, which never takes
    part in a boundary (as ``mean`` of an empty tensor does in the authors' code). Any other ``nan``
    log-probability a backend returns is ignored in the mean.

    Example:
        >>> sentence_nll([np.array([np.nan, -1.0, -3.0]), np.array([-0.5, -1.5])]).tolist()
        [2.0, 1.0]
    """
    n = len(token_logprobs)
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    lengths = np.fromiter((len(lp) for lp in token_logprobs), dtype=np.int64, count=n)
    flat = -np.concatenate([np.asarray(lp, dtype=np.float64).reshape(-1) for lp in token_logprobs])
    if flat.size:
        flat[0] = np.nan  # the document's first token: no prediction
    valid = ~np.isnan(flat)
    values = np.where(valid, flat, 0.0)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    nonempty = lengths > 0
    sums = np.zeros(n)
    counts = np.zeros(n)
    if flat.size:
        idx = starts[nonempty]
        sums[nonempty] = np.add.reduceat(values, idx)
        counts[nonempty] = np.add.reduceat(valid.astype(np.float64), idx)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _drops(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``d_L = v[i-1] - v[i]`` and ``d_R = v[i+1] - v[i]`` for ``i = 1..n-2``."""
    mid = values[1:-1]
    return values[:-2] - mid, values[2:] - mid


def _minimum_drop(left: float, mid: float, right: float, threshold: float, rule: MinimaRule) -> float | None:
    """Scalar form of the boundary test: the recorded drop when ``mid`` is a minimum, else ``None``."""
    d_left, d_right = left - mid, right - mid
    if rule == "either":
        if d_left > 0 and d_right > 0 and (d_left >= threshold or d_right >= threshold):
            return min(d_left, d_right)
        if d_left > 0 and d_right == 0 and d_left >= threshold:
            return d_left
        return None
    if d_left > threshold and d_right > threshold:
        return min(d_left, d_right)
    return None


def minimum_drops(values: np.ndarray, threshold: float, rule: MinimaRule = "either") -> list[tuple[int, float]]:
    """Local minima of ``values`` as ``(index, recorded drop)`` pairs; see :func:`find_minima`.

    The recorded drop is what the authors' dynamic-threshold variant stores: the smaller side drop
    for a strict minimum, ``d_L`` for a right plateau.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size < 3:
        return []
    d_left, d_right = _drops(v)
    with np.errstate(invalid="ignore"):
        if rule == "either":
            strict = (d_left > 0) & (d_right > 0) & ((d_left >= threshold) | (d_right >= threshold))
            plateau = (d_left > 0) & (d_right == 0) & (d_left >= threshold)
        elif rule == "both":
            strict = (d_left > threshold) & (d_right > threshold)
            plateau = np.zeros_like(strict)
        else:
            raise ValueError(f"unknown minima_rule {rule!r}; allowed: either, both")
    hits = np.flatnonzero(strict | plateau)
    recorded = np.where(strict, np.minimum(d_left, d_right), d_left)
    return [(int(i) + 1, float(recorded[i])) for i in hits]


def find_minima(values: Sequence[float] | np.ndarray, threshold: float = 0.0, rule: MinimaRule = "either") -> list[int]:
    """Indices ``i`` (``1 <= i <= n-2``) of the sentences after which a chunk ends.

    With ``d_L = v[i-1] - v[i]`` and ``d_R = v[i+1] - v[i]``:

    - ``rule="either"`` (default; the authors' code, which produced the published numbers): a strict
      local minimum (``d_L > 0`` and ``d_R > 0``) whose *larger* side drop reaches ``threshold``
      (``d_L >= θ or d_R >= θ``), or a right plateau (``d_L > 0``, ``d_R == 0``) with ``d_L >= θ``.
      A left plateau (``d_L == 0``) and equal neighbours are never boundaries.
    - ``rule="both"`` (the paper's formula): both drops strictly above the threshold,
      ``min(d_L, d_R) > θ``; no plateau case.

    With θ = 0 the two coincide except at ties. The first and last sentence are never boundaries, so
    ``n <= 2`` gives none; ``nan`` values never make a boundary.

    Example:
        >>> find_minima([3.0, 1.0, 3.0, 2.9, 3.5], threshold=0.5)
        [1, 3]
        >>> find_minima([3.0, 1.0, 3.0, 2.9, 3.5], threshold=0.5, rule="both")
        [1]
    """
    return [i for i, _ in minimum_drops(np.asarray(values, dtype=np.float64), threshold, rule)]


class DynamicThreshold:
    """The authors' dynamic-threshold variant (METHODS.md §1.4), state shared across documents.

    Minima are detected with the current θ; each detected minimum records its drop (the smaller
    side for a strict minimum, ``d_L`` for a plateau). Once at least ``warmup`` drops are recorded,
    θ becomes the **minimum** of all recorded drops (the authors' variable is named ``avg`` but holds
    a min), updated after every sentence, so θ can change in the middle of a document.

    Example:
        >>> dyn = DynamicThreshold(threshold=0.0, warmup=2)
        >>> dyn.find([3.0, 1.0, 3.0, 2.0, 2.5])
        [1, 3]
        >>> dyn.threshold
        0.5
    """

    def __init__(self, threshold: float = 0.0, warmup: int = 100, rule: MinimaRule = "either") -> None:
        self.initial_threshold = threshold
        self.warmup = warmup
        self.rule = rule
        self.reset()

    def reset(self) -> None:
        """Forget every recorded drop and return to the initial θ."""
        self.threshold = float(self.initial_threshold)
        self.drops: list[float] = []
        self._min_drop = math.inf

    def find(self, values: Sequence[float] | np.ndarray) -> list[int]:
        """Minima of one document, updating θ sentence by sentence."""
        v = [float(x) for x in values]
        minima: list[int] = []
        for i in range(1, len(v) - 1):
            drop = _minimum_drop(v[i - 1], v[i], v[i + 1], self.threshold, self.rule)
            if drop is not None:
                minima.append(i)
                self.drops.append(drop)
                self._min_drop = min(self._min_drop, drop)
            if len(self.drops) >= self.warmup:
                self.threshold = self._min_drop
        return minima


def assemble_groups(n: int, minima: Sequence[int], overlap: bool = False) -> list[tuple[int, int]]:
    """Inclusive sentence-index ranges of the chunks: each minimum sentence **ends** its chunk.

    With minima ``m1 < m2 < ...``: ``[0..m1], [m1+1..m2], ..., [m_last+1..n-1]``; no minima gives one
    chunk. ``overlap=True`` is the authors' overlap ("chongdie") variant: the minimum sentence also
    starts the next chunk, ``[0..m1], [m1..m2], ..., [m_last..n-1]``.

    Example:
        >>> assemble_groups(6, [1, 3])
        [(0, 1), (2, 3), (4, 5)]
        >>> assemble_groups(6, [1, 3], overlap=True)
        [(0, 1), (1, 3), (3, 5)]
    """
    if n <= 0:
        return []
    groups, first = [], 0
    for m in minima:
        if not first <= m < n - 1:
            raise ValueError(f"minimum {m} out of order or out of range for {n} sentences")
        groups.append((first, m))
        first = m if overlap else m + 1
    groups.append((first, n - 1))
    return groups


def split_into_sentences(text: str, splitter: str = "nupunkt") -> list[tuple[int, int]]:
    """Sentence spans of ``text`` (see :func:`ragkit.chunkers._units.sentence_spans`).

    Example:
        >>> split_into_sentences("It rains. Take a coat.", "regex")
        [(0, 9), (10, 22)]
    """
    return sentence_spans(text, splitter)


# --------------------------------------------------------------------------- the stage
class PerplexityChunker(Chunker):
    """Meta-Chunking PPL Chunking: chunks end at local minima of per-sentence perplexity.

    Parameters:
        llm: backend with ``token_logprobs`` (name in a config, or an instance).
        threshold: θ in nats of mean-NLL difference (default 0, as in the authors' scripts).
        minima_rule: ``either`` = the authors' code rule (default; larger side drop ≥ θ, plus the
            right-plateau case); ``both`` = the paper's formula (both drops > θ). See :func:`find_minima`.
        dynamic_threshold: the authors' dynamic-θ variant (:class:`DynamicThreshold`); its state lives
            on this instance and carries over from document to document in processing order, so a
            document's chunks depend on the documents chunked before it (chunk caches keyed by
            configuration and document, such as ``ragkit eval``'s, do not see that history).
        dynamic_warmup: number of recorded minima before the dynamic θ takes over (authors: 100).
        boundary_overlap: the authors' overlap variant: the minimum sentence ends its chunk *and*
            starts the next one.
        splitter: sentence splitter (``nupunkt``, the offline default, or ``regex``).
        single_pass_max_words: documents with more whitespace-separated words than this are scored on
            the windowed path (authors: 4096); ``0`` always windows; ``None`` never does.
        max_context_tokens: on the windowed path every token is conditioned on at most this many
            preceding tokens, with correct positions (the backend windows, capped at the model's
            context). Default 8192: with the backend's default stride of half a window every token
            then sees 4k-8k tokens, close to the authors' 4.9k-9k (4096-token windows over a KV cache
            capped at 9,000 tokens).
        target_length: when set, the dynamic merge packs meta-chunks greedily up to this length in
            ``length_unit`` (the paper's "comb." rows = θ 0 then merge); ``None`` keeps meta-chunks.
        length_unit: ``tokens`` (configured tokenizer), ``words`` (authors, English) or ``characters``.
        max_tokens: hard cap in tokens of ``tokenizer``; longer meta-chunks are split at sentence, then
            token boundaries. ``None`` disables it (the authors had no cap).
        tokenizer: tokenizer for ``token_count``, the cap and the ``tokens`` unit (default ``minilm``).
        batch_documents: documents per ``token_logprobs_batch`` call in :meth:`chunk_many`.
        show_progress: tqdm bar over documents in :meth:`chunk_many` (``None``: only on a terminal).

    Intentional deviations from the authors' code (METHODS.md §1.11), all kept out of the scores:

    - Chunk text is the verbatim source span from the first sentence's start to the last sentence's
      end (original whitespace kept); the authors joined stripped sentences with no separator.
    - Sentences come from ``splitter`` with offsets (default ``nupunkt``, the Punkt algorithm with a
      bundled model; the authors used NLTK's Punkt ``sent_tokenize``, whose data cannot be installed offline).
    - Sentences above 512 words are not truncated (the authors cut them to 256/512 words + "...",
      losing text); what the LM sees is bounded by the backend's windowing instead.
    - Long documents: the authors process 4096-token windows with a KV cache, prefix each window
      with a space token and evict old cache entries beyond ``max_txt_size`` *without re-basing
      positions* (RoPE positions become inconsistent). Here every token is conditioned on at most
      ``max_context_tokens`` preceding tokens with correct positions, no space tokens are inserted,
      and the single-pass path is identical to the authors' for short documents.
    - Tokens are scored without a BOS token, as in the authors' code; the ``token_logprobs``
      contract has no option to add one.
    - ``max_tokens`` (a hard cap) is a ragkit addition; the merge never emits an empty chunk and adds
      no leading space.

    Example:
        >>> from ragkit.testing import FakeLLM
        >>> chunker = PerplexityChunker(llm=FakeLLM(), max_tokens=64)
        >>> doc = Document.from_text("The sky is blue. Grass is green. I like tea. Tea is warm. Cats purr.")
        >>> chunks = chunker.chunk(doc)
        >>> all(doc.text[c.start:c.end] == c.text for c in chunks)
        True
    """

    requires: ClassVar[dict[str, frozenset[str]]] = {"llm": frozenset({TOKEN_LOGPROBS})}

    def __init__(
        self,
        *,
        llm: LLMRef = "default",
        threshold: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0,
        minima_rule: MinimaRule = "either",
        dynamic_threshold: bool = False,
        dynamic_warmup: Annotated[int, Field(gt=0)] = 100,
        boundary_overlap: bool = False,
        splitter: SentenceSplitter = "nupunkt",
        single_pass_max_words: Annotated[int, Field(ge=0)] | None = 4096,
        max_context_tokens: Annotated[int, Field(gt=0)] = 8192,
        target_length: Annotated[int, Field(gt=0)] | None = None,
        length_unit: LengthUnit = "tokens",
        max_tokens: Annotated[int, Field(gt=0)] | None = 256,
        tokenizer: TokenizerName = "minilm",
        batch_documents: Annotated[int, Field(gt=0)] = 16,
        show_progress: bool | None = None,
    ) -> None:
        self.llm = llm
        self.threshold = threshold
        self.minima_rule = minima_rule
        self.dynamic_threshold = dynamic_threshold
        self.dynamic_warmup = dynamic_warmup
        self.boundary_overlap = boundary_overlap
        self.splitter = splitter
        self.single_pass_max_words = single_pass_max_words
        self.max_context_tokens = max_context_tokens
        self.target_length = target_length
        self.length_unit = length_unit
        self.max_tokens = max_tokens
        self.tokenizer = tokenizer
        self.batch_documents = batch_documents
        self.show_progress = show_progress
        validate_params(type(self), {k: v for k, v in self.get_params().items() if k != "llm"}, "chunker.perplexity")
        self._dynamic = DynamicThreshold(threshold, dynamic_warmup, minima_rule)

    # ----------------------------------------------------------------- loading
    def _load(self) -> None:
        from ragkit.text.tokenizers import get_tokenizer

        self._llm = resolve_llm(self.llm, TOKEN_LOGPROBS)
        self._tokenizer = get_tokenizer(self.tokenizer)

    def reset_dynamic_threshold(self) -> None:
        """Start the dynamic-threshold variant afresh (θ back to ``threshold``, no recorded drops)."""
        self._dynamic.reset()

    # ----------------------------------------------------------------- steps
    def sentences(self, text: str) -> list[tuple[int, int]]:
        """Sentence spans ``(start, end)`` of ``text`` (no surrounding whitespace, in order)."""
        return split_into_sentences(text, self.splitter)

    def context_for(self, text: str) -> int:
        """``max_context`` passed to the backend: :data:`FULL_CONTEXT` (single pass) or ``max_context_tokens``."""
        if self.single_pass_max_words is None or len(text.split()) <= self.single_pass_max_words:
            return FULL_CONTEXT
        return self.max_context_tokens

    def boundaries(self, nll: np.ndarray) -> list[int]:
        """Minimum sentences (chunk ends) for one document's per-sentence NLL sequence."""
        if self.dynamic_threshold:
            return self._dynamic.find(nll)
        return find_minima(nll, self.threshold, self.minima_rule)

    def _score_group(self, docs: Sequence[Document], sentences: Sequence[Sequence[tuple[int, int]]],
                     indices: list[int], max_context: int) -> dict[int, np.ndarray]:
        """One backend call for the documents ``indices``: their per-sentence mean NLL."""
        segments = [[docs[i].text[s:e] for s, e in sentences[i]] for i in indices]
        if len(indices) == 1:
            results = [self._llm.token_logprobs(segments[0], max_context)]
        else:
            results = self._llm.token_logprobs_batch(segments, max_context)
        out = {}
        for i, logprobs in zip(indices, results):
            if len(logprobs) != len(sentences[i]):
                raise CapabilityError(
                    f"{type(self._llm).__name__}.token_logprobs returned {len(logprobs)} segments for "
                    f"{len(sentences[i])} sentences; the backend breaks the token_logprobs contract"
                )
            out[i] = sentence_nll(logprobs)
        return out

    def scored(self, docs: Sequence[Document]) -> Iterator[tuple[int, list[tuple[int, int]], np.ndarray]]:
        """``(index, sentence spans, per-sentence mean NLL)`` for each document, in document order.

        Documents needing the same ``max_context`` are scored together, up to ``batch_documents``
        (or about :data:`GROUP_CHARS` characters) per backend call. The calls run one after another in
        a worker thread while this thread splits the next documents and the caller finishes the
        scored ones, so CPU work overlaps the model. Usage is recorded in the caller's scopes.
        """
        self.warm_up()
        sentences: list[list[tuple[int, int]]] = [[] for _ in docs]
        future_of: dict[int, Future] = {}
        pending: dict[int, list[int]] = {}
        pending_chars: dict[int, int] = {}
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ragkit-ppl")

        def submit(context: int) -> None:
            indices = pending.pop(context)
            pending_chars.pop(context)
            run = contextvars.copy_context().run  # usage scopes follow the call into the worker
            future = pool.submit(run, self._score_group, docs, sentences, indices, context)
            for i in indices:
                future_of[i] = future

        try:
            for i, doc in enumerate(docs):
                sentences[i] = self.sentences(doc.text)
                if len(sentences[i]) <= 2:  # no sentence can be a boundary: skip the model entirely
                    continue
                context = self.context_for(doc.text)
                pending.setdefault(context, []).append(i)
                pending_chars[context] = pending_chars.get(context, 0) + len(doc.text)
                if len(pending[context]) >= self.batch_documents or pending_chars[context] >= GROUP_CHARS:
                    submit(context)
            for context in list(pending):
                submit(context)
            with self._progress(len(docs), "perplexity chunking", "doc") as bar:
                for i in range(len(docs)):
                    nll = future_of[i].result()[i] if i in future_of else np.full(len(sentences[i]), np.nan)
                    yield i, sentences[i], nll
                    bar.update(1)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def score(self, docs: Sequence[Document]) -> list[np.ndarray]:
        """Per-sentence mean NLL (nats) of each document (see :meth:`scored`)."""
        return [nll for _, _, nll in self.scored(docs)]

    def spans_from_scores(self, doc: Document, sentences: Sequence[tuple[int, int]], nll: np.ndarray) -> list[Chunk]:
        """Boundary rule, chunk assembly, cap and merge for one scored document."""
        self.warm_up()
        minima = self.boundaries(nll)
        groups = assemble_groups(len(sentences), minima, self.boundary_overlap)
        spans = [(sentences[a][0], sentences[b][1]) for a, b in groups]
        spans, counts = finish_spans(
            doc.text, spans, sentences, self._tokenizer,
            max_tokens=self.max_tokens, target_length=self.target_length, length_unit=self.length_unit,
        )
        return [Chunk.from_span(doc, s, e, token_count=c) for (s, e), c in zip(spans, counts)]

    # ----------------------------------------------------------------- chunker API
    def _chunk(self, doc: Document) -> list[Chunk]:
        return self._chunk_batch([doc])[0]

    def _chunk_batch(self, docs: Sequence[Document]) -> list[list[Chunk]]:
        """Score the documents together (``batch_documents`` per backend call), then cut each.

        The base's ``chunk_many`` calls this, so results equal ``[chunk(d) for d in docs]``; with
        ``dynamic_threshold`` the documents update θ in the order given.
        """
        out = []
        for i, sents, nll in self.scored(docs):
            record(docs[i].id, "perplexity", sents, nll, PERPLEXITY_LABEL)  # kept only inside recording()
            out.append(self.spans_from_scores(docs[i], sents, nll))
        return out
