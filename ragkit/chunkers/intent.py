"""Intent-Driven Dynamic Chunking (IDC): chunk boundaries chosen so each chunk answers a likely question.

An LLM predicts the questions readers will ask of the document (its *intents*); sentences and
intents are embedded in one space; an exact dynamic programme then picks the boundaries that
maximise (METHODS.md §5.2)

    U(S) = Σ_C max_q cos(mean(C), q) − λ Σ_C |C|² − β (k − 1)

over segmentations into at most ``max_sentences`` sentences and ``max_tokens`` tokens per chunk
(:mod:`ragkit.chunkers._segment`). The authors' released code optimises a richer objective
(target-relative length penalty, minimum length, coherence, boundary heuristics); set
``profile="reference_code"`` for its defaults or switch single terms on.

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

import json
import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field
from tqdm.auto import tqdm

from ragkit.chunkers._segment import (
    Segmentation,
    apply_constraints,
    calibrate_boundary_penalty,
    idc_table,
    optimal_segmentation,
)
from ragkit.chunkers.base import Chunker, add_heading_paths
from ragkit.errors import ConfigError, DocumentError, RagkitError, StructuredOutputError
from ragkit.llm.base import GenerationRequest
from ragkit.stage import EmbedderRef, LLMRef
from ragkit.types import Chunk, Document

log = logging.getLogger(__name__)

IntentSource = Literal["llm", "random", "given"]
Profile = Literal["paper", "reference_code"]

#: Bump when the prompt or schema changes: it is part of the LLM cache key.
PROMPT_VERSION = "idc-intents@2"
#: Longest question accepted (characters); the token budget per request is sized from it.
MAX_INTENT_CHARS = 160
#: Completion tokens allowed per requested question, plus a fixed allowance for the JSON frame.
TOKENS_PER_INTENT, TOKENS_FRAME = 64, 48

INTENT_SYSTEM = "You read documents and list the questions their readers will ask."

INTENT_PROMPT = """Here is {part} of a document.

<document>
{text}
</document>

Write {n} different questions that a reader could ask and that this text answers. Cover the main \
topics and the key details (names, numbers, dates, reasons). Each question is one sentence, specific, \
and answerable from the text alone.
Answer with JSON only: {{"questions": ["...", "..."]}}"""

#: Defaults of the two profiles (METHODS.md §5.4): the paper's objective and the authors' CLI.
PROFILE_DEFAULTS: dict[str, dict[str, Any]] = {
    "paper": {
        "max_sentences": 15, "length_weight": 0.0005, "length_penalty": "paper", "min_sentences": 1,
        "coherence_weight": 0.0, "boundary_heuristics": False, "boundary_penalty": None,
    },
    "reference_code": {
        "max_sentences": 20, "length_weight": 0.1, "length_penalty": "linear", "min_sentences": 3,
        "coherence_weight": 0.3, "boundary_heuristics": True, "boundary_penalty": 1.2,
    },
}

_REFERRING = re.compile(
    r"^(it|its|this|these|those|they|them|their|such|therefore|however|thus|hence|moreover|furthermore|"
    r"also|he|she|his|her)\b",
    re.IGNORECASE,
)
_LIST_ITEM = re.compile(r"^\s*([-*•+]|\d+[.)])\s")
_BLOCK_LINE = re.compile(r"^\s*(\||```|~~~|    \S)", re.MULTILINE)
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*$")


def intent_schema(n: int) -> dict[str, Any]:
    """The JSON schema of one intent-generation answer: ``{"questions": [1..n strings]}``.

    Example:
        >>> intent_schema(3)["properties"]["questions"]["maxItems"]
        3
    """
    return {
        "type": "object",
        "properties": {
            "questions": {
                "type": "array",
                "items": {"type": "string", "minLength": 8, "maxLength": MAX_INTENT_CHARS},
                "minItems": 1,
                "maxItems": int(n),
            }
        },
        "required": ["questions"],
        "additionalProperties": False,
    }


def parse_intents(text: str) -> list[str]:
    """Questions from one model answer (``{"questions": [...]}`` or a bare list), cleaned.

    Whitespace is collapsed, items of fewer than two words are dropped, exact repeats (ignoring
    case) removed. Raises ``ValueError`` when the text is not JSON of either shape.

    Example:
        >>> parse_intents('{"questions": ["What is X?", "what  is x?", "Why?"]}')
        ['What is X?']
    """
    data = json.loads(text)
    if isinstance(data, Mapping):
        data = data.get("questions")
    if not isinstance(data, list):
        raise ValueError(f"expected a JSON list of questions or {{'questions': [...]}}, got {text[:200]!r}")
    out, seen = [], set()
    for item in data:
        if not isinstance(item, str):
            continue
        question = " ".join(item.split())[:MAX_INTENT_CHARS]
        key = question.lower()
        if len(question.split()) < 2 or key in seen:
            continue
        seen.add(key)
        out.append(question)
    return out


def dedup_intents(vectors: np.ndarray, threshold: float = 0.85) -> list[int]:
    """Indices of the intents kept when any two with cosine ``> threshold`` keep only the earlier.

    Greedy in the given order: an intent is kept unless its cosine with an already kept intent
    exceeds ``threshold`` (the paper's rule at 0.85).

    Example:
        >>> v = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
        >>> dedup_intents(v, 0.85)
        [0, 2]
    """
    vecs = np.asarray(vectors, dtype=np.float64)
    if vecs.shape[0] == 0:
        return []
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    hat = np.divide(vecs, norms, out=np.zeros_like(vecs), where=norms > 0)
    sims = hat @ hat.T
    kept: list[int] = []
    for i in range(hat.shape[0]):
        if not kept or sims[i, kept].max() <= threshold:
            kept.append(i)
    return kept


def adaptive_intent_count(n_sentences: int, cap: int) -> int:
    """Intents to ask for in a window of ``n_sentences``: ``ceil(n / 10)`` clamped to ``[3, cap]``.

    With 12k-character windows this gives about 10 intents for a 100-sentence document and about
    40 for a 400-sentence one, the paper's ranges (10–15 and 35–40).

    Example:
        >>> adaptive_intent_count(25, 12), adaptive_intent_count(400, 12)
        (3, 12)
    """
    return int(min(max(3, math.ceil(n_sentences / 10)), max(1, cap)))


def plan_windows(units: Sequence[tuple[int, int]], max_chars: int) -> list[tuple[int, int]]:
    """Group consecutive units into windows ``[first, last)`` spanning at most ``max_chars`` characters.

    A unit longer than ``max_chars`` gets a window of its own (its prompt text is truncated).

    Example:
        >>> plan_windows([(0, 5), (6, 10), (11, 30)], 12)
        [(0, 2), (2, 3)]
    """
    windows: list[tuple[int, int]] = []
    first = 0
    for i in range(1, len(units) + 1):
        if i == len(units) or units[i][1] - units[first][0] > max_chars:
            windows.append((first, i))
            first = i
    return windows


def resolve_backend(ref: Any, kind: Literal["llm", "embedder"]) -> Any:
    """An injected backend as is; ``"default"`` builds the canonical config's default backend.

    Inside a pipeline the builder injects instances; this covers direct Python use and stages whose
    config leaves the collaborator out.
    """
    if not isinstance(ref, str):
        return ref
    if ref != "default":
        raise ConfigError(
            f"{kind}={ref!r} names a backend, which only a pipeline config can resolve; pass a backend "
            f"instance or use {kind}='default' for the packaged local model"
        )
    from ragkit.config.schema import BackendsConfig
    from ragkit.registry import default_registry

    section = "llm" if kind == "llm" else "embeddings"
    spec = dict(getattr(BackendsConfig(), section)["default"])
    cls = default_registry().get(kind, spec.pop("type"))
    backend = cls(**spec)
    if kind == "llm":
        try:
            from ragkit.llm.cached import CachedLLM
        except ImportError:
            return backend
        return CachedLLM(inner=backend)
    return backend


def _request(**kwargs: Any) -> GenerationRequest:
    """A chat request; the prompt version goes into the cache key where the request supports it."""
    if "template_version" in {f.name for f in fields(GenerationRequest)}:
        kwargs["template_version"] = PROMPT_VERSION
    user = kwargs.pop("user")
    system = kwargs.pop("system")
    return GenerationRequest.chat(user, system, **kwargs)


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
        splitter: Literal["nupunkt", "nltk", "regex"] = "nupunkt",
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
        if profile not in PROFILE_DEFAULTS:
            raise ConfigError(f"chunker 'intent': profile must be 'paper' or 'reference_code'; got {profile!r}")
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
        value = getattr(self, name)
        return PROFILE_DEFAULTS[self.profile][name] if value is None else value

    def _load(self) -> None:
        from ragkit.text.tokenizers import get_tokenizer

        self._tokenizer = get_tokenizer(self.tokenizer)
        self._embedder = resolve_backend(self.embedder, "embedder")
        self._llm = resolve_backend(self.llm, "llm") if self.intent_source == "llm" else None
        self._given: list[str] | dict[str, list[str]] | None = None
        if self.intent_source == "given":
            self._given = self._load_given()

    def _load_given(self) -> list[str] | dict[str, list[str]]:
        if self.intents is not None:
            return self.intents
        if self.intents_path is not None:
            path = Path(self.intents_path).expanduser()
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as exc:
                raise ConfigError(f"chunker 'intent': cannot read intents_path {str(path)!r}: {exc}") from exc
            if not isinstance(data, (list, dict)):
                raise ConfigError(
                    f"chunker 'intent': intents_path {str(path)!r} must hold a JSON list of questions or an "
                    f"object {{source_id: [questions]}}; got {type(data).__name__}"
                )
            return data
        from ragkit.datasets import load_dataset

        runtime = self.__dict__.get("runtime_")
        dataset = load_dataset(str(self.intents_dataset), getattr(runtime, "data_root", None),
                               config_data_root=getattr(runtime, "config_data_root", None))
        by_source: dict[str, list[str]] = {}
        for question in dataset.questions:
            for passage in question.gold_passages:
                by_source.setdefault(str(passage), []).append(question.text)
        return by_source

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
        from ragkit.chunkers._merge import split_at_tokens
        from ragkit.text.sentences import split_sentences

        self.warm_up()
        spans = [(s, e) for s, e in split_sentences(text, self.splitter) if e > s and text[s:e].strip()]
        if not spans and text.strip():
            spans = [(len(text) - len(text.lstrip()), len(text.rstrip()))]
        counts = self._tokenizer.count_many([text[s:e] for s, e in spans])
        units: list[tuple[int, int]] = []
        unit_tokens: list[int] = []
        for (s, e), c in zip(spans, counts):
            if c <= self.max_tokens:
                units.append((s, e))
                unit_tokens.append(c)
                continue
            pieces = split_at_tokens(text, s, e, self.max_tokens, self._tokenizer)
            units.extend(pieces)
            unit_tokens.extend(self._tokenizer.count_many([text[a:b] for a, b in pieces]))
        return units, unit_tokens

    # ------------------------------------------------------------------ intents
    def _windows_requests(self, text: str, units: Sequence[tuple[int, int]]) -> list[GenerationRequest]:
        windows = plan_windows(units, self.window_chars)
        requests = []
        for k, (first, last) in enumerate(windows):
            body = text[units[first][0] : units[last - 1][1]][: self.window_chars]
            n = self.intents_per_window or adaptive_intent_count(last - first, self.max_intents_per_window)
            part = "the whole" if len(windows) == 1 else f"part {k + 1} of {len(windows)}"
            requests.append(_request(
                user=INTENT_PROMPT.format(part=part, text=body, n=n), system=INTENT_SYSTEM,
                max_tokens=TOKENS_PER_INTENT * n + TOKENS_FRAME, temperature=self.temperature, seed=self.seed, json_schema=intent_schema(n),
            ))
        return requests

    def _progress_disabled(self, total: int) -> bool | None:
        if self.show_progress is None:
            return True if total < 2 else None
        return not self.show_progress

    def generate_intents(self, doc: Document, units: Sequence[tuple[int, int]]) -> tuple[list[str], int, int]:
        """Intents from the LLM, one call per window; returns ``(intents, windows, failed windows)``.

        A window whose answer is not valid JSON (after the LLM layer's retries) is logged and skipped;
        a document without a single usable answer raises :class:`~ragkit.errors.RagkitError`.
        """
        self.warm_up()
        requests = self._windows_requests(doc.text, units)
        intents: list[str] = []
        failed = 0
        with tqdm(total=len(requests), desc="IDC intents", unit="window",
                  disable=self._progress_disabled(len(requests))) as bar:
            for i in range(0, len(requests), self.llm_batch_size):
                batch = requests[i : i + self.llm_batch_size]
                outcomes: list[Any]
                try:
                    if hasattr(self._llm, "generate_outcomes"):  # CachedLLM: failures in place, per window
                        outcomes = list(self._llm.generate_outcomes(batch))
                    else:
                        outcomes = list(self._llm.generate(batch))
                except StructuredOutputError as exc:
                    outcomes = [exc] * len(batch)
                for outcome in outcomes:
                    if isinstance(outcome, StructuredOutputError):
                        failed += 1
                        log.warning("IDC: intent generation failed for a window: %s", outcome)
                        continue
                    try:
                        intents.extend(parse_intents(outcome.text))
                    except ValueError as exc:
                        failed += 1
                        log.warning("IDC: unusable intent answer skipped: %s", exc)
                bar.update(len(batch))
        if not intents:
            raise RagkitError(
                f"IDC: the LLM produced no usable intents for document {doc.id[:12]} ({len(requests)} windows, "
                f"{failed} unparseable). Use a stronger model, or intent_source: random | given."
            )
        return intents, len(requests), failed

    def random_intents(self, doc: Document, units: Sequence[tuple[int, int]]) -> list[str]:
        """The *random* control: as many random sentences of the document as the LLM would be asked for."""
        from ragkit.testing.fakes import seeded_rng

        windows = plan_windows(units, self.window_chars)
        total = sum(self.intents_per_window or adaptive_intent_count(b - a, self.max_intents_per_window)
                    for a, b in windows)
        candidates = [i for i, (s, e) in enumerate(units) if len(doc.text[s:e].split()) >= 4] or list(range(len(units)))
        rng = seeded_rng("idc-random-intents", doc.id, self.seed)
        picked = sorted(rng.choice(len(candidates), size=min(total, len(candidates)), replace=False).tolist())
        return [" ".join(doc.text[units[candidates[i]][0] : units[candidates[i]][1]].split())[:MAX_INTENT_CHARS]
                for i in picked]

    def given_intents(self, doc: Document) -> list[str]:
        """Given intents for ``doc``: the shared list, or the entry for its ``source_id``."""
        self.warm_up()
        given = self._given
        if isinstance(given, list):
            return [str(q) for q in given]
        assert given is not None
        source = doc.metadata.get("source_id")
        keys = [k for k in (source, Path(str(source)).name if source else None,
                            Path(str(source)).stem if source else None, doc.id) if k]
        for key in keys:
            if str(key) in given:
                return [str(q) for q in given[str(key)]]
        raise DocumentError(
            f"IDC: no given intents for document {doc.id[:12]} (source_id {source!r}); the intents mapping "
            f"has keys {sorted(given)[:10]}{' ...' if len(given) > 10 else ''}"
        )

    # ------------------------------------------------------------------ objective
    def boundary_costs(self, text: str, units: Sequence[tuple[int, int]], vectors: np.ndarray) -> np.ndarray:
        """The code profile's per-boundary costs (negative = a good place to cut), by unit start."""
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
        self, unit_vectors: np.ndarray, intent_vectors: np.ndarray, unit_tokens: Sequence[int],
        boundary_costs: np.ndarray | None = None,
    ) -> tuple[Segmentation, float]:
        """The exact optimum for given embeddings; returns the segmentation and the β it used."""
        max_len = int(self.setting("max_sentences"))
        table = idc_table(
            unit_vectors, intent_vectors, max_len,
            length_weight=float(self.setting("length_weight")),
            length_penalty=self.setting("length_penalty"),
            target_len=self.target_sentences,
            coherence_weight=float(self.setting("coherence_weight")),
        )
        table = apply_constraints(
            table, unit_tokens=unit_tokens, max_tokens=self.max_tokens, min_len=int(self.setting("min_sentences")),
        )
        beta = self.setting("boundary_penalty")
        if self.boundary_penalty is None and (self.target_tokens is not None or beta is None):
            target = self.target_tokens or max(1, self.max_tokens // 2)
            beta, segmentation = calibrate_boundary_penalty(table, unit_tokens, target, boundary_costs=boundary_costs)
            return segmentation, beta
        return optimal_segmentation(table, boundary_penalty=float(beta), boundary_costs=boundary_costs), float(beta)

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
        groups = self._merge_short(groups, unit_vectors, intent_vectors, unit_tokens)
        groups = self._split_long(text, groups, units, unit_tokens)
        chunks = add_heading_paths(doc, self._chunks(doc, groups, units, unit_vectors, intents, intent_vectors))
        return IntentRun(units, list(unit_tokens), list(generated), intents, segmentation, beta, chunks,
                         windows, failed)

    def _chunk(self, doc: Document) -> list[Chunk]:
        return self.analyse(doc).chunks

    def chunk_many(self, docs: Iterable[Document]) -> list[list[Chunk]]:
        """Chunk several documents with a progress bar over documents."""
        docs = list(docs)
        disable = (True if len(docs) < 2 else None) if self.show_progress is None else not self.show_progress
        return [self.chunk(d) for d in tqdm(docs, desc="IDC chunking", unit="doc", disable=disable)]

    # ------------------------------------------------------------------ post-processing
    @staticmethod
    def _best(group: Sequence[int], unit_vectors: np.ndarray, intent_vectors: np.ndarray) -> np.ndarray:
        mean = unit_vectors[list(group)].sum(axis=0)
        norm = float(np.linalg.norm(mean))
        q = intent_vectors / np.maximum(np.linalg.norm(intent_vectors, axis=1, keepdims=True), 1e-12)
        return (q @ mean) / norm if norm > 0 else np.zeros(q.shape[0])

    def _merge_short(self, groups: list[list[int]], unit_vectors: np.ndarray, intent_vectors: np.ndarray,
                     unit_tokens: Sequence[int]) -> list[list[int]]:
        if self.merge_short_sentences <= 0 or len(groups) < 2:
            return groups
        out = [groups[0]]
        for group in groups[1:]:
            prev = out[-1]
            short = min(len(prev), len(group)) < self.merge_short_sentences
            fits = sum(unit_tokens[i] for i in prev + group) <= self.max_tokens
            if short and fits:
                same = int(np.argmax(self._best(prev, unit_vectors, intent_vectors))) == int(
                    np.argmax(self._best(group, unit_vectors, intent_vectors)))
                if same:
                    out[-1] = prev + group
                    continue
            out.append(group)
        return out

    def _split_long(self, text: str, groups: list[list[int]], units: Sequence[tuple[int, int]],
                    unit_tokens: Sequence[int]) -> list[list[int]]:
        if self.split_over_tokens is None:
            return groups
        out: list[list[int]] = []
        pending = list(reversed(groups))
        while pending:
            group = pending.pop()
            if len(group) < 2 or sum(unit_tokens[i] for i in group) <= self.split_over_tokens:
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

    def _chunks(self, doc: Document, groups: list[list[int]], units: Sequence[tuple[int, int]],
                unit_vectors: np.ndarray, intents: list[str], intent_vectors: np.ndarray) -> list[Chunk]:
        from ragkit.chunkers._merge import cap_spans

        spans = [(units[g[0]][0], units[g[-1]][1]) for g in groups]
        counts = self._tokenizer.count_many([doc.text[s:e] for s, e in spans])
        chunks = []
        for group, (start, end), count in zip(groups, spans, counts):
            sims = self._best(group, unit_vectors, intent_vectors)
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
