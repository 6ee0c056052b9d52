"""IDC intent sources: the LLM prompt and its answers, the *random* control and *given* intents.

Pure functions used by :class:`~ragkit.chunkers.intent.IntentChunker`: the windows a document is
cut into for intent generation, the schema-constrained requests, parsing and de-duplication of
answers, random sentences as a control, and given intents (a list, a JSON file or a dataset's
questions keyed by their gold passage).

Example:
    >>> parse_intents('["How do cats purr?"]')
    ['How do cats purr?']
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from ragkit._rng import seeded_rng
from ragkit.errors import ConfigError, DocumentError, RagkitError, StructuredOutputError
from ragkit.llm.base import GenerationRequest
from ragkit.types import Document

log = logging.getLogger("ragkit.chunkers.intent")

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


def _request(**kwargs: Any) -> GenerationRequest:
    """A chat request; the prompt version goes into the cache key where the request supports it."""
    if "template_version" in {f.name for f in fields(GenerationRequest)}:
        kwargs["template_version"] = PROMPT_VERSION
    user = kwargs.pop("user")
    system = kwargs.pop("system")
    return GenerationRequest.chat(user, system, **kwargs)


GivenIntents = list[str] | dict[str, list[str]]


def window_requests(text: str, units: Sequence[tuple[int, int]], *, window_chars: int,
                    intents_per_window: int | None, max_intents_per_window: int, temperature: float,
                    seed: int) -> list[GenerationRequest]:
    """One schema-constrained, versioned request per window of ``units`` (:func:`plan_windows`).

    Example:
        >>> reqs = window_requests("Cats purr. Dogs bark.", [(0, 10), (11, 21)], window_chars=12000,
        ...                        intents_per_window=None, max_intents_per_window=12, temperature=0.0, seed=0)
        >>> len(reqs), reqs[0].json_schema["properties"]["questions"]["maxItems"]
        (1, 3)
    """
    windows = plan_windows(units, window_chars)
    requests = []
    for k, (first, last) in enumerate(windows):
        body = text[units[first][0] : units[last - 1][1]][:window_chars]
        n = intents_per_window or adaptive_intent_count(last - first, max_intents_per_window)
        part = "the whole" if len(windows) == 1 else f"part {k + 1} of {len(windows)}"
        requests.append(_request(
            user=INTENT_PROMPT.format(part=part, text=body, n=n), system=INTENT_SYSTEM,
            max_tokens=TOKENS_PER_INTENT * n + TOKENS_FRAME, temperature=temperature, seed=seed,
            json_schema=intent_schema(n),
        ))
    return requests


def generate_intents(llm: Any, requests: Sequence[GenerationRequest], doc_id: str, *, batch_size: int,
                     progress: Callable[[int], Any]) -> tuple[list[str], int, int]:
    """Intents from ``llm`` for ``requests``; returns ``(intents, windows, failed windows)``.

    A window whose answer is not valid JSON (after the LLM layer's retries) is logged and skipped;
    a document without a single usable answer raises :class:`~ragkit.errors.RagkitError`.
    ``progress(total)`` opens the progress bar (a context manager with ``update``).

    Example:
        >>> from ragkit.testing import FakeLLM
        >>> from contextlib import nullcontext
        >>> from types import SimpleNamespace
        >>> llm = FakeLLM(mode="fixed", responses=['{"questions": ["Why do cats purr?"]}'])
        >>> reqs = window_requests("Cats purr.", [(0, 10)], window_chars=100, intents_per_window=1,
        ...                        max_intents_per_window=3, temperature=0.0, seed=0)
        >>> bar = lambda total: nullcontext(SimpleNamespace(update=lambda n: None))
        >>> generate_intents(llm, reqs, "doc", batch_size=4, progress=bar)
        (['Why do cats purr?'], 1, 0)
    """
    intents: list[str] = []
    failed = 0
    with progress(len(requests)) as bar:
        for i in range(0, len(requests), batch_size):
            batch = list(requests[i : i + batch_size])
            outcomes: list[Any]
            try:
                if hasattr(llm, "generate_outcomes"):  # CachedLLM: failures in place, per window
                    outcomes = list(llm.generate_outcomes(batch))
                else:
                    outcomes = list(llm.generate(batch))
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
            f"IDC: the LLM produced no usable intents for document {doc_id[:12]} ({len(requests)} windows, "
            f"{failed} unparseable). Use a stronger model, or intent_source: random | given."
        )
    return intents, len(requests), failed


def random_intents(doc: Document, units: Sequence[tuple[int, int]], *, window_chars: int,
                   intents_per_window: int | None, max_intents_per_window: int, seed: int) -> list[str]:
    """The *random* control: as many random sentences of ``doc`` as the LLM would be asked for.

    Seeded by the document id and ``seed`` (:func:`ragkit._rng.seeded_rng`), so repeatable.

    Example:
        >>> doc = Document.from_text("Cats purr when content. Dogs bark at night. Stocks fell on Monday.")
        >>> units = [(0, 23), (24, 43), (44, 66)]
        >>> random_intents(doc, units, window_chars=12000, intents_per_window=2, max_intents_per_window=12, seed=0)
        ['Dogs bark at night.', 'Stocks fell on Monday.']
    """
    windows = plan_windows(units, window_chars)
    total = sum(intents_per_window or adaptive_intent_count(b - a, max_intents_per_window) for a, b in windows)
    candidates = [i for i, (s, e) in enumerate(units) if len(doc.text[s:e].split()) >= 4] or list(range(len(units)))
    rng = seeded_rng("idc-random-intents", doc.id, seed)
    picked = sorted(rng.choice(len(candidates), size=min(total, len(candidates)), replace=False).tolist())
    return [" ".join(doc.text[units[candidates[i]][0] : units[candidates[i]][1]].split())[:MAX_INTENT_CHARS]
            for i in picked]


def load_given_intents(intents: GivenIntents | None, intents_path: str | None, intents_dataset: str | None,
                       runtime: Any = None) -> GivenIntents:
    """The given intents: ``intents`` as is, the JSON file ``intents_path``, or ``intents_dataset``'s questions.

    A dataset's questions are keyed by their gold passages (``{source_id: [questions]}``); its data
    root comes from ``runtime`` (``data_root``, ``config_data_root``) when the pipeline bound one.

    Example:
        >>> load_given_intents(["What is X?"], None, None)
        ['What is X?']
    """
    if intents is not None:
        return intents
    if intents_path is not None:
        path = Path(intents_path).expanduser()
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

    dataset = load_dataset(str(intents_dataset), getattr(runtime, "data_root", None),
                           config_data_root=getattr(runtime, "config_data_root", None))
    by_source: dict[str, list[str]] = {}
    for question in dataset.questions:
        for passage in question.gold_passages:
            by_source.setdefault(str(passage), []).append(question.text)
    return by_source


def given_intents_for(given: GivenIntents, doc: Document) -> list[str]:
    """Given intents for ``doc``: the shared list, or the entry for its ``source_id`` (name, stem or id).

    Example:
        >>> doc = Document.from_text("Cats purr.", metadata={"source_id": "docs/cats.md"})
        >>> given_intents_for({"cats": ["Why do cats purr?"]}, doc)
        ['Why do cats purr?']
    """
    if isinstance(given, list):
        return [str(q) for q in given]
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
