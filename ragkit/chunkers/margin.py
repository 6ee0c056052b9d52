"""Meta-Chunking, Margin Sampling Chunking: a split-or-keep question per sentence boundary.

The algorithm (METHODS.md §1.5): walk the sentences left to right. At each boundary ask the model
whether the next sentence should be split off (answer ``1``) or kept with what precedes it (answer
``2``); read both answers' probabilities at the next position in one forward pass and take the
margin ``p("2") - p("1")`` (keep minus split). Keep when the margin exceeds θ; θ starts at 0 and,
once 5 margins have been seen, is the mean of the last 5 (so decision k uses margins up to k-1).

Two context modes: ``chunk`` (the left side is the whole current chunk; the authors' tool) and
``sentence`` (the left side is the previous sentence only; the authors' ``prob_onlytwo``). In
sentence mode every prompt is independent of the decisions, so all boundaries are scored in large
batches and the running threshold is applied afterwards. In chunk mode a prompt depends on where
the current chunk starts, so the prompts of different documents are batched together, and within a
document ``lookahead > 1`` also scores the prompts of the next boundaries for every chunk start the
rule can still reach (speculation; the decisions are identical, only work is traded for latency).

Scoring goes through the LLM layer's ``next_token_probs`` capability.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from ragkit.chunkers._diagnostics import record
from ragkit.chunkers._merge import LengthUnit, finish_spans
from ragkit.chunkers._units import sentence_spans
from ragkit.chunkers.base import Chunker, resolve_llm
from ragkit.errors import CapabilityError
from ragkit.llm.base import NEXT_TOKEN_PROBS, GenerationRequest
from ragkit.llm.prompts import PromptTemplate
from ragkit.stage import LLMRef, validate_params
from ragkit.text.sentences import SentenceSplitter
from ragkit.text.tokenizers import TokenizerName
from ragkit.types import Chunk, Document

#: The question, in our words after the authors' English prompt (same structure: the joined text,
#: its two parts, option 1 = split, option 2 = keep, answer with the number). Its ``name@version``
#: travels with every request (and so into the LLM cache key): bump the version when editing it.
MARGIN_PROMPT = PromptTemplate(
    name="meta-chunking-margin",
    version=1,
    system="You are a helpful assistant.",
    text=(
        "This is a text chunking task, and you are an expert in text analysis. Looking at the logical "
        "structure and the meaning of the text below, pick one of two options.\n"
        '1. Split "{joined}" into the two parts "{left}" and "{right}";\n'
        '2. Keep "{joined}" together as it is;\n'
        "Answer 1 or 2."
    ),
)
PROMPT_VERSION = MARGIN_PROMPT.key
SPLIT, KEEP = "1", "2"
#: What the margin chunker hands to :func:`ragkit.chunkers._diagnostics.record` per sentence.
MARGIN_LABEL = 'margin p("keep") - p("split") joining the previous sentence'


def margin_prompt(left: str, right: str, joined: str) -> GenerationRequest:
    """The chat request asking whether ``right`` should be split from ``left`` (answer 1) or kept (2).

    Example:
        >>> req = margin_prompt("It rains.", "Take a coat.", "It rains. Take a coat.")
        >>> req.messages[0]["content"], req.template_version
        ('You are a helpful assistant.', 'meta-chunking-margin@1')
    """
    return MARGIN_PROMPT.request(joined=joined, left=left, right=right, max_tokens=1)


class RunningThreshold:
    """θ for margin sampling: ``initial`` until ``window`` margins are seen, then their running mean.

    Example:
        >>> rt = RunningThreshold()
        >>> [rt.decide(m) for m in (0.1, -0.2, 0.3, 0.4, 0.5)]  # θ = 0 for the first five
        [True, False, True, True, True]
        >>> round(rt.threshold, 6)  # mean of margins 1-5, used by decision 6
        0.22
    """

    def __init__(self, initial: float = 0.0, window: int = 5) -> None:
        self.threshold = float(initial)
        self.window = window
        self.margins: list[float] = []

    def decide(self, margin: float) -> bool:
        """``True`` = keep (margin > θ), then update θ with this margin."""
        keep = margin > self.threshold
        self.margins.append(float(margin))
        if len(self.margins) >= self.window:
            self.threshold = float(np.mean(self.margins[-self.window:]))
        return keep


def decide_all(margins: Sequence[float], initial: float = 0.0, window: int = 5) -> list[bool]:
    """Keep/split decisions for a sequence of margins with the running threshold (``True`` = keep)."""
    rt = RunningThreshold(initial, window)
    return [rt.decide(m) for m in margins]


def groups_from_decisions(n: int, keeps: Sequence[bool]) -> list[tuple[int, int]]:
    """Inclusive sentence ranges: ``keeps[i-1]`` says whether sentence ``i`` joins the chunk before it.

    Example:
        >>> groups_from_decisions(5, [True, False, True, True])
        [(0, 1), (2, 4)]
    """
    if n <= 0:
        return []
    if len(keeps) != n - 1:
        raise ValueError(f"{n} sentences need {n - 1} decisions, got {len(keeps)}")
    groups, first = [], 0
    for i, keep in enumerate(keeps, start=1):
        if not keep:
            groups.append((first, i - 1))
            first = i
    groups.append((first, n - 1))
    return groups


def _tail(text: str, limit: int) -> str:
    """The last ``limit`` characters of ``text``, starting at a word boundary when cut."""
    if len(text) <= limit:
        return text
    cut = text[-limit:]
    space = cut.find(" ")
    return cut[space + 1:] if 0 <= space < len(cut) // 2 else cut


def _head(text: str, limit: int) -> str:
    """The first ``limit`` characters of ``text``, ending at a word boundary when cut."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return cut[:space] if space > len(cut) // 2 else cut


@dataclass
class _DocState:
    """Chunk-mode progress of one document."""

    doc: Document
    sentences: list[tuple[int, int]]
    rule: RunningThreshold
    start: int = 0  # first sentence of the current chunk
    next: int = 1  # sentence whose boundary is decided next
    keeps: list[bool] = field(default_factory=list)
    decided: list[float] = field(default_factory=list)  # the margin behind each of ``keeps``
    margins: dict[tuple[int, int], float] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.next >= len(self.sentences)


class MarginChunker(Chunker):
    """Meta-Chunking Margin Sampling Chunking: keep/split decisions from p("2") - p("1").

    Parameters:
        llm: backend with ``next_token_probs`` (name in a config, or an instance).
        context: ``chunk`` (left side = the current chunk; the authors' default tool) or ``sentence``
            (left side = the previous sentence; fully batchable, much cheaper).
        initial_threshold: θ before ``threshold_window`` margins have been seen (authors: 0).
        threshold_window: θ is the mean of the last this-many margins (authors: 5).
        context_max_chars: each side of the question is cut to this many characters (the left side
            keeps its end, the right side its start); bounds the prompt in chunk mode.
        lookahead: chunk mode only: boundaries scored ahead per document, for every chunk start the
            rule can reach (``k`` boundaries cost ``k(k+1)/2`` prompts); 1 = no speculation. Use more
            on a GPU, where a batch costs about as much as one prompt.
        batch_prompts: prompts per ``next_token_probs`` call.
        splitter, target_length, length_unit, max_tokens, tokenizer, show_progress: as in
            :class:`~ragkit.chunkers.perplexity.PerplexityChunker`.

    Intentional deviations from the authors' code: chunk text is the verbatim source span (the
    authors joined sentences with a space, and the left side of the question is the verbatim span
    too); sentences come from ``splitter`` (authors: NLTK) and are not truncated at 512 words; the
    question's wording is ours (same structure and answers) and the chat template is the backend
    model's (authors: Qwen's); each side of the question is bounded by ``context_max_chars``
    (authors: unbounded); ``max_tokens`` and the merge behave as in ``perplexity``. The answers "1"
    and "2" must be single tokens of the model's vocabulary (the backend raises otherwise).

    Example:
        >>> from ragkit.testing import FakeLLM
        >>> chunker = MarginChunker(llm=FakeLLM(), context="sentence", max_tokens=64)
        >>> doc = Document.from_text("The sky is blue. Grass is green. I like tea. Tea is warm. Cats purr.")
        >>> chunks = chunker.chunk(doc)
        >>> all(doc.text[c.start:c.end] == c.text for c in chunks)
        True
    """

    requires: ClassVar[dict[str, frozenset[str]]] = {"llm": frozenset({NEXT_TOKEN_PROBS})}

    def __init__(
        self,
        *,
        llm: LLMRef = "default",
        context: Literal["chunk", "sentence"] = "chunk",
        initial_threshold: Annotated[float, Field(allow_inf_nan=False)] = 0.0,
        threshold_window: Annotated[int, Field(gt=0)] = 5,
        context_max_chars: Annotated[int, Field(gt=0)] = 2000,
        lookahead: Annotated[int, Field(gt=0, le=64)] = 1,
        batch_prompts: Annotated[int, Field(gt=0)] = 16,
        splitter: SentenceSplitter = "nupunkt",
        target_length: Annotated[int, Field(gt=0)] | None = None,
        length_unit: LengthUnit = "tokens",
        max_tokens: Annotated[int, Field(gt=0)] | None = 256,
        tokenizer: TokenizerName = "minilm",
        show_progress: bool | None = None,
    ) -> None:
        self.llm = llm
        self.context = context
        self.initial_threshold = initial_threshold
        self.threshold_window = threshold_window
        self.context_max_chars = context_max_chars
        self.lookahead = lookahead
        self.batch_prompts = batch_prompts
        self.splitter = splitter
        self.target_length = target_length
        self.length_unit = length_unit
        self.max_tokens = max_tokens
        self.tokenizer = tokenizer
        self.show_progress = show_progress
        validate_params(type(self), {k: v for k, v in self.get_params().items() if k != "llm"}, "chunker.margin")

    def _load(self) -> None:
        from ragkit.text.tokenizers import get_tokenizer

        self._llm = resolve_llm(self.llm, NEXT_TOKEN_PROBS)
        self._tokenizer = get_tokenizer(self.tokenizer)

    # ----------------------------------------------------------------- prompts and scores
    def prompt_for(self, doc: Document, sentences: Sequence[tuple[int, int]], start: int, i: int) -> GenerationRequest:
        """The question for sentence ``i`` joining the chunk that starts at sentence ``start``."""
        text = doc.text
        left = text[sentences[start][0]:sentences[i - 1][1]]
        right = text[sentences[i][0]:sentences[i][1]]
        joined = text[sentences[start][0]:sentences[i][1]]
        limit = self.context_max_chars
        if len(left) > limit or len(right) > limit:
            left, right = _tail(left, limit), _head(right, limit)
            gap = text[sentences[i - 1][1]:sentences[i][0]]
            joined = left + gap + right
        return margin_prompt(left, right, joined)

    def margins(self, prompts: Sequence[GenerationRequest]) -> np.ndarray:
        """``p(keep) - p(split)`` for each prompt, in calls of ``batch_prompts``."""
        out = np.zeros(len(prompts))
        for k in range(0, len(prompts), self.batch_prompts):
            batch = list(prompts[k: k + self.batch_prompts])
            probs = np.asarray(self._llm.next_token_probs(batch, [SPLIT, KEEP]), dtype=np.float64)
            if probs.shape != (len(batch), 2):
                raise CapabilityError(
                    f"{type(self._llm).__name__}.next_token_probs returned shape {probs.shape} for "
                    f"{len(batch)} prompts and 2 candidates; the backend breaks the next_token_probs contract"
                )
            out[k: k + len(batch)] = probs[:, 1] - probs[:, 0]
        return out

    def _bar(self, total: int) -> Any:
        return self._progress(total, f"margin chunking ({self.context})", "boundary")

    # ----------------------------------------------------------------- decisions
    def _decide_sentence_mode(self, docs: Sequence[Document],
                              sentences: Sequence[list[tuple[int, int]]]) -> list[tuple[list[bool], list[float]]]:
        prompts, owners = [], []
        for d, (doc, sents) in enumerate(zip(docs, sentences)):
            for i in range(1, len(sents)):
                prompts.append(self.prompt_for(doc, sents, i - 1, i))
                owners.append(d)
        scores = np.zeros(0)
        with self._bar(len(prompts)) as bar:
            parts = []
            step = self.batch_prompts * 8
            for k in range(0, len(prompts), step):
                parts.append(self.margins(prompts[k: k + step]))
                bar.update(len(parts[-1]))
            if parts:
                scores = np.concatenate(parts)
        out: list[tuple[list[bool], list[float]]] = []
        cursor = 0
        for sents in sentences:
            n = max(len(sents) - 1, 0)
            part = scores[cursor: cursor + n]
            out.append((decide_all(part, self.initial_threshold, self.threshold_window), part.tolist()))
            cursor += n
        return out

    def _needed(self, state: _DocState) -> list[tuple[int, int]]:
        """``(chunk start, boundary)`` pairs to score now for ``state``: the current one plus lookahead."""
        n = len(state.sentences)
        pairs = []
        for m in range(self.lookahead):
            i = state.next + m
            if i >= n:
                break
            for start in [state.start, *range(state.next, i)]:
                if (start, i) not in state.margins:
                    pairs.append((start, i))
        return pairs

    def _decide_chunk_mode(self, docs: Sequence[Document],
                           sentences: Sequence[list[tuple[int, int]]]) -> list[tuple[list[bool], list[float]]]:
        states = [_DocState(doc, sents, RunningThreshold(self.initial_threshold, self.threshold_window))
                  for doc, sents in zip(docs, sentences)]
        total = sum(max(len(s) - 1, 0) for s in sentences)
        with self._bar(total) as bar:
            while True:
                active = [s for s in states if not s.done]
                if not active:
                    break
                # the current question of every document first, then speculative ones, within one batch
                current = [(s, (s.start, s.next)) for s in active]
                extra = [(s, pair) for s in active for pair in self._needed(s) if pair != (s.start, s.next)]
                room = max(self.batch_prompts - len(current), 0)
                jobs = current + extra[:room]
                scores = self.margins([self.prompt_for(s.doc, s.sentences, a, i) for s, (a, i) in jobs])
                for (s, pair), score in zip(jobs, scores):
                    s.margins[pair] = float(score)
                for s in active:
                    before = s.next
                    while not s.done and (s.start, s.next) in s.margins:
                        margin = s.margins.pop((s.start, s.next))
                        keep = s.rule.decide(margin)
                        s.keeps.append(keep)
                        s.decided.append(margin)
                        if not keep:
                            s.start = s.next
                        s.next += 1
                    # speculative answers for chunk starts that can no longer occur are dropped
                    s.margins = {k: v for k, v in s.margins.items()
                                 if k[1] >= s.next and (k[0] == s.start or k[0] >= s.next)}
                    bar.update(s.next - before)
        return [(s.keeps, s.decided) for s in states]

    # ----------------------------------------------------------------- chunker API
    def _chunk_batch(self, docs: Sequence[Document]) -> list[list[Chunk]]:
        """Decide the boundaries of all documents together (their questions share batches), then cut."""
        sentences = [sentence_spans(doc.text, self.splitter) for doc in docs]
        decide = self._decide_sentence_mode if self.context == "sentence" else self._decide_chunk_mode
        decisions = decide(docs, sentences)
        out = []
        for doc, sents, (keeps, margins) in zip(docs, sentences, decisions):
            # sentence i's score is the margin of joining it to what precedes it; the first has none
            record(doc.id, "margin", sents, [math.nan, *margins], MARGIN_LABEL)
            groups = groups_from_decisions(len(sents), keeps)
            spans = [(sents[a][0], sents[b][1]) for a, b in groups]
            spans, counts = finish_spans(
                doc.text, spans, sents, self._tokenizer,
                max_tokens=self.max_tokens, target_length=self.target_length, length_unit=self.length_unit,
            )
            out.append([Chunk.from_span(doc, s, e, token_count=c) for (s, e), c in zip(spans, counts)])
        return out

    def _chunk(self, doc: Document) -> list[Chunk]:
        return self._chunk_batch([doc])[0]
