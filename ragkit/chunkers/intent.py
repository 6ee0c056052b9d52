"""Intent-Driven Dynamic Chunking (IDC): chunk boundaries chosen so each chunk answers a likely question.

An LLM predicts the questions readers will ask of the document (its *intents*); sentences and
intents are embedded in one space; an exact dynamic programme then picks the boundaries that
maximise (METHODS.md §5.2)

    U(S) = Σ_C max_q cos(mean(C), q) − λ Σ_C |C|² − β (k − 1)

over segmentations into at most ``max_sentences`` sentences and ``max_tokens`` tokens per chunk
(:mod:`ragkit.chunkers._segment`). The authors' released code optimises a richer objective
(target-relative length penalty, minimum length, coherence, boundary heuristics); set
``profile="reference_code"`` for its defaults or switch single terms on.

The pieces live in private modules by job: :mod:`ragkit.chunkers._intent_sources` (prompt, parsing,
de-duplication, random and given intents), :mod:`ragkit.chunkers._intent_dp` (objective wiring,
boundary heuristics, post-processing) and :mod:`ragkit.chunkers._intent_profiles` (which value each
``None`` parameter takes); :meth:`IntentChunker.effective_params` shows the resolved values.

Example:
    >>> from ragkit.testing import FakeEmbedder, FakeLLM
    >>> from ragkit.types import Document
    >>> chunker = IntentChunker(llm=FakeLLM(), embedder=FakeEmbedder(), max_tokens=64)
    >>> doc = Document.from_text("Cats purr. Cats nap a lot. Dogs bark. Dogs fetch sticks.")
    >>> chunks = chunker.chunk(doc)
    >>> all(doc.text[c.start:c.end] == c.text for c in chunks), "intents" in chunks[0].metadata
    (True, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field

from ragkit.backends import resolve_backend
from ragkit.chunkers import _intent_dp as dp
from ragkit.chunkers._intent_profiles import (
    PROFILE_DEFAULTS,
    PROFILE_PARAMS,
    Profile,
    check_profile,
    profile_value,
)
from ragkit.chunkers._intent_sources import (
    INTENT_PROMPT,
    INTENT_SYSTEM,
    MAX_INTENT_CHARS,
    PROMPT_VERSION,
    TOKENS_FRAME,
    TOKENS_PER_INTENT,
    GivenIntents,
    adaptive_intent_count,
    dedup_intents,
    generate_intents,
    given_intents_for,
    intent_schema,
    load_given_intents,
    parse_intents,
    plan_windows,
    random_intents,
    window_requests,
)
from ragkit.chunkers._segment import Segmentation
from ragkit.chunkers._units import sentence_units
from ragkit.chunkers.base import Chunker, add_heading_paths
from ragkit.errors import ConfigError, DocumentError
from ragkit.llm.base import GenerationRequest
from ragkit.stage import EmbedderRef, LLMRef
from ragkit.types import Chunk, Document

__all__ = [
    "INTENT_PROMPT", "INTENT_SYSTEM", "MAX_INTENT_CHARS", "PROFILE_DEFAULTS", "PROMPT_VERSION", "TOKENS_FRAME",
    "TOKENS_PER_INTENT", "IntentChunker", "IntentRun", "IntentSource", "Profile", "adaptive_intent_count",
    "dedup_intents", "intent_schema", "parse_intents", "plan_windows", "resolve_backend",
]

IntentSource = Literal["llm", "random", "given"]


@dataclass
class IntentRun:
    """Everything IDC computed for one document (what :meth:`IntentChunker.analyse` returns).

    Attributes:
        units: character spans of the units (sentences, long ones split at tokens).
        unit_tokens: token count of each unit.
        generated: intents before de-duplication (LLM answers, random sentences or given ones).
        intents: intents kept after de-duplication (the ones the objective uses).
        segmentation: the optimal segmentation of the units.
        boundary_penalty: the β used (given, profile default or calibrated).
        chunks: the chunks, with ``metadata["intents"]``.
        windows: number of LLM windows (``llm`` source) and how many failed to parse.
    """

    units: list[tuple[int, int]]
    unit_tokens: list[int]
    generated: list[str]
    intents: list[str]
    segmentation: Segmentation | None
    boundary_penalty: float
    chunks: list[Chunk]
    windows: int = 0
    failed_windows: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class IntentChunker(Chunker):
    """IDC: LLM-predicted intents, sentence embeddings, boundaries by an exact DP (METHODS.md §5).

    Parameters:
        llm: backend that generates intents (``generate`` with a JSON schema); a config name or an
            instance. Only used with ``intent_source="llm"``.
        embedder: embeds sentences and intents (``embed_documents``, batched).
        profile: ``paper`` (default; λ·|C|², β per boundary, no extra terms) or ``reference_code``
            (the authors' CLI defaults: linear target-relative penalty λ = 0.1, β = 1.2, L = 20,
            min 3 sentences, coherence weight 0.3, boundary heuristics). Any parameter below left at
            ``None`` takes the profile's value.
        max_tokens: hard cap per chunk (a DP constraint), in ``tokenizer`` tokens (default 254: what
            MiniLM embeds without truncation).
        target_tokens: mean chunk size to calibrate β for, per document (see ``boundary_penalty``).
        max_sentences: ``L``, the most sentences per chunk (paper 15, code 20).
        length_weight: ``λ`` (paper 0.0005 on |C|² in sentences; code 0.1 on the deviation from target).
        length_penalty: ``paper`` (λ|C|²), ``linear`` or ``quadratic`` (the authors' target-relative forms).
        target_sentences: ``T`` of the target-relative penalties (default ``max(5, L / 2)``).
        boundary_penalty: ``β``, paid once per boundary. ``None`` with the paper profile (which tunes it per
            dataset) means: calibrate β per document so the mean chunk has ``target_tokens`` tokens
            (default ``max_tokens // 2``); the code profile uses its 1.2 unless ``target_tokens`` is set.
        min_sentences: chunks shorter than this are avoided where the constraints allow (code: 3).
        coherence_weight: weight of the mean pairwise cosine of a chunk's sentences (code: 0.3).
        boundary_heuristics: the code's boundary costs: cheaper cuts at paragraph breaks, headings,
            sentence ends and similarity valleys (< 0.7); dearer before referring words (it, this,
            however, ...), between a colon line and a list, and inside code or table blocks.
        intent_source: ``llm`` (generate), ``random`` (random sentences of the document: a control) or
            ``given`` (from ``intents``, ``intents_path`` or ``intents_dataset``: e.g. oracle questions).
        intents: given intents: one list for every document, or ``{source_id: [questions]}``.
        intents_path: a JSON file holding what ``intents`` would hold.
        intents_dataset: a dataset name (``ragkit.datasets``): each document gets the questions
            whose gold passage is its ``source_id`` (the *oracle* control in evaluations).
        window_chars: characters of document per intent-generation call (≤ 12,000, the authors' limit).
        intents_per_window: intents to request per window; ``None`` adapts to the window's sentence
            count (:func:`adaptive_intent_count`).
        max_intents_per_window: cap of the adaptive count.
        dedup_threshold: intents with cosine above this to an earlier kept one are dropped (paper 0.85).
        temperature, seed: generation settings (temperature 0 keeps answers cacheable and repeatable).
        merge_short_sentences: post-processing: merge adjacent chunks where one has fewer sentences
            than this and both have the same best intent (0 = off, the default).
        split_over_tokens: post-processing: split chunks above this many tokens at a paragraph break
            (else at the middle sentence), recursively (``None`` = off, the default).
        metadata_intents: best-matching intents kept in ``metadata["intents"]`` per chunk.
        splitter: sentence splitter (``nupunkt`` offline default).
        tokenizer: tokenizer for ``max_tokens`` and ``token_count`` (default ``minilm``).
        llm_batch_size: windows per ``generate`` call.
        show_progress: tqdm bar over intent windows (``None``: on a terminal, for more than one window).

    The constructor stores every parameter as given, so ``to_config()`` shows ``None`` for a
    profile-dependent parameter left unset; :meth:`effective_params` gives the values actually used.

    Intentional deviations: chunk text is the verbatim span from the first to the last sentence;
    β is calibrated per document by default (the paper tunes it per dataset); the hard token cap
    is a ragkit addition; intents are de-duplicated by cosine (paper), not by token overlap (code).

    Example:
        >>> from ragkit.testing import FakeEmbedder
        >>> chunker = IntentChunker(embedder=FakeEmbedder(), intent_source="given",
        ...                         intents=["Why do cats purr?", "What do dogs fetch?"], max_tokens=32)
        >>> doc = Document.from_text("Cats purr. Cats nap. Dogs bark. Dogs fetch sticks.")
        >>> [c.metadata["intents"][0] for c in chunker.chunk(doc)][:1]
        ['Why do cats purr?']
    """

    progress_desc = "IDC chunking"

    def __init__(
        self,
        *,
        llm: LLMRef = "default",
        embedder: EmbedderRef = "default",
        profile: Profile = "paper",
        max_tokens: Annotated[int, Field(gt=0)] = 254,
        target_tokens: Annotated[int, Field(gt=0)] | None = None,
        max_sentences: Annotated[int, Field(gt=0)] | None = None,
        length_weight: Annotated[float, Field(ge=0)] | None = None,
        length_penalty: Literal["paper", "linear", "quadratic"] | None = None,
        target_sentences: Annotated[float, Field(gt=0)] | None = None,
        boundary_penalty: float | None = None,
        min_sentences: Annotated[int, Field(gt=0)] | None = None,
        coherence_weight: float | None = None,
        boundary_heuristics: bool | None = None,
        intent_source: IntentSource = "llm",
        intents: list[str] | dict[str, list[str]] | None = None,
        intents_path: str | None = None,
        intents_dataset: str | None = None,
        window_chars: Annotated[int, Field(gt=0, le=12000)] = 12000,
        intents_per_window: Annotated[int, Field(gt=0)] | None = None,
        max_intents_per_window: Annotated[int, Field(gt=0)] = 12,
        dedup_threshold: Annotated[float, Field(ge=-1, le=1)] = 0.85,
        temperature: Annotated[float, Field(ge=0)] = 0.0,
        seed: int = 0,
        merge_short_sentences: Annotated[int, Field(ge=0)] = 0,
        split_over_tokens: Annotated[int, Field(gt=0)] | None = None,
        metadata_intents: Annotated[int, Field(gt=0)] = 1,
        splitter: Literal["nupunkt", "regex"] = "nupunkt",
        tokenizer: str = "minilm",
        llm_batch_size: Annotated[int, Field(gt=0)] = 4,
        show_progress: bool | None = None,
    ) -> None:
        self.llm = llm
        self.embedder = embedder
        self.profile = profile
        self.max_tokens = max_tokens
        self.target_tokens = target_tokens
        self.max_sentences = max_sentences
        self.length_weight = length_weight
        self.length_penalty = length_penalty
        self.target_sentences = target_sentences
        self.boundary_penalty = boundary_penalty
        self.min_sentences = min_sentences
        self.coherence_weight = coherence_weight
        self.boundary_heuristics = boundary_heuristics
        self.intent_source = intent_source
        self.intents = intents
        self.intents_path = intents_path
        self.intents_dataset = intents_dataset
        self.window_chars = window_chars
        self.intents_per_window = intents_per_window
        self.max_intents_per_window = max_intents_per_window
        self.dedup_threshold = dedup_threshold
        self.temperature = temperature
        self.seed = seed
        self.merge_short_sentences = merge_short_sentences
        self.split_over_tokens = split_over_tokens
        self.metadata_intents = metadata_intents
        self.splitter = splitter
        self.tokenizer = tokenizer
        self.llm_batch_size = llm_batch_size
        self.show_progress = show_progress
        check_profile(profile)
        given = [name for name, value in (("intents", intents), ("intents_path", intents_path),
                                          ("intents_dataset", intents_dataset)) if value is not None]
        if intent_source == "given" and len(given) != 1:
            raise ConfigError(
                "chunker 'intent': intent_source='given' needs exactly one of intents, intents_path, "
                f"intents_dataset; got {given or 'none'}"
            )
        if intent_source != "given" and given:
            raise ConfigError(
                f"chunker 'intent': {given[0]} is only used with intent_source='given' "
                f"(intent_source is {intent_source!r}); set intent_source: given or remove {given[0]}"
            )
        if target_tokens is not None and target_tokens > max_tokens:
            raise ConfigError(
                f"chunker 'intent': target_tokens ({target_tokens}) must not exceed max_tokens ({max_tokens})"
            )

    # ------------------------------------------------------------------ settings
    def setting(self, name: str) -> Any:
        """The effective value of a profile-dependent parameter (explicit value, else the profile's).

        Example:
            >>> IntentChunker(profile="reference_code").setting("length_weight")
            0.1
        """
        return profile_value(self.profile, name, getattr(self, name))

    def _calibration_target(self) -> int | None:
        """Mean chunk size (tokens) β is calibrated for per document, or ``None`` when β is fixed."""
        if self.boundary_penalty is None and (self.target_tokens is not None or self.setting("boundary_penalty") is None):
            return self.target_tokens or max(1, self.max_tokens // 2)
        return None

    def effective_params(self) -> dict[str, Any]:
        """The parameters with the values IDC actually uses (``get_params()``/configs keep them as given).

        Every profile-dependent parameter left at ``None`` takes the profile's value. When β is
        calibrated per document, ``boundary_penalty`` is ``None`` and ``target_tokens`` is the mean
        chunk size it is calibrated for (default ``max_tokens // 2``). Collaborators stay as given.

        Example:
            >>> p = IntentChunker(profile="reference_code").effective_params()
            >>> p["length_weight"], p["boundary_penalty"], p["min_sentences"], p["target_tokens"]
            (0.1, 1.2, 3, None)
            >>> p = IntentChunker(max_tokens=200).effective_params()
            >>> p["max_sentences"], p["boundary_penalty"], p["target_tokens"]
            (15, None, 100)
            >>> IntentChunker().get_params()["max_sentences"] is None  # the config keeps what was given
            True
        """
        params = self.get_params()
        for name in PROFILE_PARAMS:
            params[name] = self.setting(name)
        target = self._calibration_target()
        if target is not None:
            params["boundary_penalty"] = None
            params["target_tokens"] = target
        return params

    def _load(self) -> None:
        from ragkit.text.tokenizers import get_tokenizer

        self._tokenizer = get_tokenizer(self.tokenizer)
        self._embedder = resolve_backend(self.embedder, "embedder")
        self._llm = resolve_backend(self.llm, "llm") if self.intent_source == "llm" else None
        self._given: GivenIntents | None = None
        if self.intent_source == "given":
            self._given = load_given_intents(self.intents, self.intents_path, self.intents_dataset,
                                             self.__dict__.get("runtime_"))

    def bind_runtime(self, runtime: Any) -> None:
        """Called by the pipeline: ``intents_dataset`` is read from the runtime's data root (``--data-root``)."""
        self.__dict__["runtime_"] = runtime

    # ------------------------------------------------------------------ units
    def units(self, text: str) -> tuple[list[tuple[int, int]], list[int]]:
        """Sentence spans (sentences above ``max_tokens`` cut at token boundaries) and their token counts.

        Example:
            >>> from ragkit.testing import FakeEmbedder
            >>> text = "One two three four five six. Seven."
            >>> spans, counts = IntentChunker(embedder=FakeEmbedder(), max_tokens=4).units(text)
            >>> [text[s:e] for s, e in spans], counts
            (['One two three four', 'five six.', 'Seven.'], [4, 3, 2])
        """
        self.warm_up()
        return sentence_units(text, self.splitter, self._tokenizer, self.max_tokens)

    # ------------------------------------------------------------------ intents
    def _windows_requests(self, text: str, units: Sequence[tuple[int, int]]) -> list[GenerationRequest]:
        return window_requests(text, units, window_chars=self.window_chars, intents_per_window=self.intents_per_window,
                               max_intents_per_window=self.max_intents_per_window, temperature=self.temperature,
                               seed=self.seed)

    def generate_intents(self, doc: Document, units: Sequence[tuple[int, int]]) -> tuple[list[str], int, int]:
        """Intents from the LLM, one call per window; returns ``(intents, windows, failed windows)``.

        A window whose answer is not valid JSON (after the LLM layer's retries) is logged and skipped;
        a document without a single usable answer raises :class:`~ragkit.errors.RagkitError`.
        """
        self.warm_up()
        return generate_intents(self._llm, self._windows_requests(doc.text, units), doc.id,
                                batch_size=self.llm_batch_size,
                                progress=lambda total: self._progress(total, "IDC intents", "window"))

    def random_intents(self, doc: Document, units: Sequence[tuple[int, int]]) -> list[str]:
        """The *random* control: as many random sentences of the document as the LLM would be asked for."""
        return random_intents(doc, units, window_chars=self.window_chars, intents_per_window=self.intents_per_window,
                              max_intents_per_window=self.max_intents_per_window, seed=self.seed)

    def given_intents(self, doc: Document) -> list[str]:
        """Given intents for ``doc``: the shared list, or the entry for its ``source_id``."""
        self.warm_up()
        assert self._given is not None
        return given_intents_for(self._given, doc)

    # ------------------------------------------------------------------ objective
    def boundary_costs(self, text: str, units: Sequence[tuple[int, int]], vectors: np.ndarray) -> np.ndarray:
        """The code profile's per-boundary costs (negative = a good place to cut), by unit start."""
        return dp.boundary_costs(text, units, vectors)

    def segment(
        self, unit_vectors: np.ndarray, intent_vectors: np.ndarray, unit_tokens: Sequence[int],
        boundary_costs: np.ndarray | None = None,
    ) -> tuple[Segmentation, float]:
        """The exact optimum for given embeddings; returns the segmentation and the β it used."""
        return dp.segment(
            unit_vectors, intent_vectors, unit_tokens,
            max_sentences=int(self.setting("max_sentences")), length_weight=float(self.setting("length_weight")),
            length_penalty=self.setting("length_penalty"), target_sentences=self.target_sentences,
            coherence_weight=float(self.setting("coherence_weight")), min_sentences=int(self.setting("min_sentences")),
            boundary_penalty=self.setting("boundary_penalty"), max_tokens=self.max_tokens,
            calibrate_to=self._calibration_target(), boundary_costs=boundary_costs,
        )

    # ------------------------------------------------------------------ the stage
    def analyse(self, doc: Document) -> IntentRun:
        """Run IDC on one document and return every intermediate (intents, segmentation, β, chunks)."""
        self.warm_up()
        text = doc.text
        units, unit_tokens = self.units(text)
        if not units:
            return IntentRun(units, unit_tokens, [], [], None, 0.0, [])
        windows = failed = 0
        if self.intent_source == "llm":
            generated, windows, failed = self.generate_intents(doc, units)
        elif self.intent_source == "random":
            generated = self.random_intents(doc, units)
        else:
            generated = self.given_intents(doc)
        if not generated:
            raise DocumentError(f"IDC: no intents for document {doc.id[:12]} (intent_source={self.intent_source!r})")
        vectors = np.asarray(self._embedder.embed_documents([text[s:e] for s, e in units] + list(generated)),
                             dtype=np.float64)
        unit_vectors, generated_vectors = vectors[: len(units)], vectors[len(units):]
        kept = dedup_intents(generated_vectors, self.dedup_threshold)
        intents = [generated[i] for i in kept]
        intent_vectors = generated_vectors[kept]
        costs = self.boundary_costs(text, units, unit_vectors) if self.setting("boundary_heuristics") else None
        segmentation, beta = self.segment(unit_vectors, intent_vectors, unit_tokens, costs)
        groups = [list(range(s, e)) for s, e in segmentation.segments]
        groups = dp.merge_short(groups, unit_vectors, intent_vectors, unit_tokens,
                                min_sentences=self.merge_short_sentences, max_tokens=self.max_tokens)
        groups = dp.split_long(text, groups, units, unit_tokens, self.split_over_tokens)
        chunks = add_heading_paths(doc, self._chunks(doc, groups, units, unit_vectors, intents, intent_vectors))
        return IntentRun(units, list(unit_tokens), list(generated), intents, segmentation, beta, chunks,
                         windows, failed)

    def _chunk(self, doc: Document) -> list[Chunk]:
        return self.analyse(doc).chunks

    def _chunks(self, doc: Document, groups: list[list[int]], units: Sequence[tuple[int, int]],
                unit_vectors: np.ndarray, intents: list[str], intent_vectors: np.ndarray) -> list[Chunk]:
        from ragkit.chunkers._merge import cap_spans

        spans = [(units[g[0]][0], units[g[-1]][1]) for g in groups]
        counts = self._tokenizer.count_many([doc.text[s:e] for s, e in spans])
        chunks = []
        for group, (start, end), count in zip(groups, spans, counts):
            sims = dp.best_intent_scores(group, unit_vectors, intent_vectors)
            order = np.argsort(-sims, kind="stable")[: self.metadata_intents]
            meta = {
                "intents": [intents[i] for i in order],
                "intent_similarity": round(float(sims[order[0]]), 6) if len(order) else None,
                "sentences": len(group),
            }
            pieces = [(start, end)]
            piece_counts = [count]
            if count > self.max_tokens:  # joining cut-inside-a-word units can add a token: re-split
                pieces, piece_counts = cap_spans(doc.text, pieces, [units[i] for i in group], self.max_tokens,
                                                 self._tokenizer, [count])
            for (s, e), c in zip(pieces, piece_counts):
                chunks.append(Chunk.from_span(doc, s, e, token_count=int(c), metadata=meta))
        return chunks
