"""The LLM backend protocol.

Capabilities (a backend declares which it has in ``capabilities``):

- ``generate(requests) -> list[Completion]``: chat or completion, optional JSON schema.
- ``token_logprobs(segments, max_context=None) -> list[ndarray]``: the segments (e.g. sentences of
  one document) are tokenised separately without special tokens and concatenated; every token is
  scored with at most ``max_context`` previous tokens of left context (the backend owns the
  windowing); the result is split back per segment. The very first token of the concatenation has
  no prediction and gets ``nan``.
- ``next_token_probs(prompts, candidates) -> ndarray`` of shape ``(len(prompts), len(candidates))``:
  probability of each single-token candidate string at the next position (raises if a candidate is
  not a single token).
- ``structured_output``: the backend constrains decoding to a request's JSON schema (grammar,
  logits processor or ``response_format``). Every backend gets schema validation and a retry loop
  from :class:`ragkit.llm.cached.CachedLLM`; this capability says the backend also enforces it.

Batch forms (``token_logprobs_batch``) take lists of requests; local backends run them as real batches.

Example:
    >>> from ragkit.testing import FakeLLM
    >>> llm = FakeLLM()
    >>> req = GenerationRequest.chat("Name a colour.", max_tokens=8, template_version="colour@1")
    >>> isinstance(llm.generate([req])[0].text, str)
    True
    >>> plan_windows(10, max_context=4, stride=0.5)[:2]
    [Window(start=0, end=5, score_from=1), Window(start=2, end=7, score_from=5)]
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, NamedTuple

import numpy as np

from ragkit.errors import BackendError, CapabilityError
from ragkit.stage import Component
from ragkit.usage import record_usage

GENERATE = "generate"
TOKEN_LOGPROBS = "token_logprobs"
NEXT_TOKEN_PROBS = "next_token_probs"
STRUCTURED_OUTPUT = "structured_output"
EMBEDDINGS = "embeddings"
ALL_CAPABILITIES = (GENERATE, TOKEN_LOGPROBS, NEXT_TOKEN_PROBS, STRUCTURED_OUTPUT)


class CandidateTokenError(BackendError, ValueError):
    """A ``next_token_probs`` candidate is not exactly one token of the model's vocabulary."""


def schema_of(schema: Any) -> dict[str, Any] | None:
    """A JSON schema dict from a dict or a pydantic model class (``None`` stays ``None``)."""
    if schema is None:
        return None
    if isinstance(schema, type) and hasattr(schema, "model_json_schema"):
        return schema.model_json_schema()
    if isinstance(schema, Mapping):
        return json.loads(json.dumps(schema))
    raise TypeError(f"json_schema must be a JSON-schema mapping or a pydantic model class, got {type(schema).__name__}")


@dataclass(frozen=True)
class GenerationRequest:
    """One generation call. Give ``messages`` (chat) or ``prompt`` (completion).

    ``json_schema`` (a JSON-schema mapping or a pydantic model class) asks for output that validates
    against it; with a pydantic class, ``response_model`` keeps the class for validation.
    ``template_version`` (e.g. ``"metadata@2"``, set by :class:`ragkit.llm.prompts.PromptTemplate`)
    is part of the cache key, so editing a prompt template invalidates its cached answers.

    Example:
        >>> from pydantic import BaseModel
        >>> class Answer(BaseModel):
        ...     choice: int
        >>> req = GenerationRequest.chat("1 or 2?", json_schema=Answer, max_tokens=16)
        >>> req.json_schema["required"], req.response_model is Answer
        (['choice'], True)
    """

    messages: tuple[Mapping[str, str], ...] | None = None
    prompt: str | None = None
    max_tokens: int = 256
    temperature: float = 0.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    json_schema: Mapping[str, Any] | None = None
    template_version: str | None = None
    response_model: type | None = field(default=None, compare=False, repr=False)
    #: ``None``: the backend's default for free text (``ragkit.llm.generation``); ``1.0`` is off
    repetition_penalty: float | None = None
    #: ``None``: the backend's default for free text; ``0`` is off
    no_repeat_ngram_size: int | None = None

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("GenerationRequest needs exactly one of messages= or prompt=")
        if self.messages is not None:
            object.__setattr__(self, "messages", tuple(dict(m) for m in self.messages))
        object.__setattr__(self, "stop", tuple(self.stop))
        if isinstance(self.json_schema, type):
            if self.response_model is None:
                object.__setattr__(self, "response_model", self.json_schema)
            object.__setattr__(self, "json_schema", schema_of(self.json_schema))
        elif self.json_schema is None and self.response_model is not None:
            object.__setattr__(self, "json_schema", schema_of(self.response_model))
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got {self.max_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if self.repetition_penalty is not None and not self.repetition_penalty > 0:
            raise ValueError(f"repetition_penalty must be > 0 (1.0 is off), got {self.repetition_penalty}")
        if self.no_repeat_ngram_size is not None and self.no_repeat_ngram_size < 0:
            raise ValueError(f"no_repeat_ngram_size must be >= 0 (0 is off), got {self.no_repeat_ngram_size}")

    @classmethod
    def chat(cls, user: str, system: str | None = None, **kwargs: Any) -> GenerationRequest:
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
        return cls(messages=tuple(messages), **kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Everything that determines the output, JSON-ready (the cache key hashes this)."""
        data = asdict(self)
        data.pop("response_model", None)
        data["messages"] = [dict(m) for m in self.messages] if self.messages is not None else None
        data["stop"] = list(self.stop)
        data["json_schema"] = json.loads(json.dumps(self.json_schema)) if self.json_schema else None
        for key in ("template_version", "repetition_penalty", "no_repeat_ngram_size"):
            if data[key] is None:
                data.pop(key)  # keeps the keys of requests that do not use them stable
        return data

    def prompt_text(self) -> str:
        """The request as plain text (for backends without a chat template and for token estimates)."""
        if self.prompt is not None:
            return self.prompt
        return "\n".join(f"{m['role']}: {m['content']}" for m in self.messages or ())

    def with_messages(self, messages: Sequence[Mapping[str, str]]) -> GenerationRequest:
        """A copy with other messages (used by the structured-output retry loop)."""
        from dataclasses import replace

        return replace(self, messages=tuple(dict(m) for m in messages), prompt=None)


@dataclass(frozen=True)
class Completion:
    """A generation result. ``extra`` may hold ``latency_s``, ``attempts``, ``stochastic``."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"
    cached: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    def json(self) -> Any:
        """Parse ``text`` as JSON (raises ``json.JSONDecodeError``)."""
        return json.loads(self.text)

    def parse(self, model: type) -> Any:
        """Validate ``text`` into a pydantic model (raises ``pydantic.ValidationError``)."""
        return model.model_validate_json(self.text)

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "finish_reason": self.finish_reason, "extra": dict(self.extra)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], cached: bool = False) -> Completion:
        return cls(text=data["text"], prompt_tokens=data.get("prompt_tokens", 0),
                   completion_tokens=data.get("completion_tokens", 0), finish_reason=data.get("finish_reason", "stop"),
                   cached=cached, extra=data.get("extra") or {})


def validation_error(text: str, schema: Mapping[str, Any] | None, response_model: type | None = None) -> str | None:
    """``None`` when ``text`` is JSON valid against ``schema`` (and ``response_model``), else what is wrong."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    if schema:
        import jsonschema

        validator_cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        errors = sorted(validator_cls(schema).iter_errors(value), key=lambda e: list(e.absolute_path))
        if errors:
            first = errors[0]
            where = "/".join(str(p) for p in first.absolute_path) or "(root)"
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            return f"does not match the JSON schema at {where}: {first.message}{more}"
    if response_model is not None:
        from pydantic import ValidationError

        try:
            response_model.model_validate(value)
        except ValidationError as exc:
            return f"does not validate as {response_model.__name__}: {exc.errors()[0]['msg']}"
    return None


class Window(NamedTuple):
    """One scoring window over a token sequence: tokens ``[start, end)`` go through the model, and the predictions for tokens ``[score_from, end)`` are kept (each has between ``score_from - start`` and ``end - start - 1`` tokens of left context)."""

    start: int
    end: int
    score_from: int


def plan_windows(n_tokens: int, max_context: int, stride: float = 0.5) -> list[Window]:
    """Strided windows so that every token is scored once with at most ``max_context`` tokens of context.

    A sequence of ``n_tokens <= max_context + 1`` is one window (single pass). Longer ones use windows
    of ``max_context + 1`` tokens; after the first, each window adds ``stride * (max_context + 1)``
    new tokens and re-reads the rest as context, so every token after the first window sees at least
    ``(1 - stride) * (max_context + 1)`` previous tokens. Positions restart at 0 in every window.
    """
    if max_context < 1:
        raise ValueError(f"max_context must be >= 1, got {max_context}")
    if not 0 < stride <= 1:
        raise ValueError(f"stride must be in (0, 1], got {stride}")
    if n_tokens <= 1:
        return [Window(0, n_tokens, 1)] if n_tokens == 1 else []
    length = max_context + 1
    if n_tokens <= length:
        return [Window(0, n_tokens, 1)]
    step = max(1, min(length - 1, int(round(stride * length))))
    windows = [Window(0, length, 1)]
    scored_to = length
    while scored_to < n_tokens:
        end = min(n_tokens, scored_to + step)
        windows.append(Window(end - length, end, scored_to))
        scored_to = end
    return windows


def split_per_segment(values: np.ndarray, lengths: Sequence[int]) -> list[np.ndarray]:
    """Split a flat per-token array back into per-segment arrays."""
    out, cursor = [], 0
    for n in lengths:
        out.append(values[cursor: cursor + n].copy())
        cursor += n
    return out


def cost_usd(price_per_1k: Mapping[str, float] | None, prompt_tokens: int, completion_tokens: int) -> float:
    """Estimated cost from a price table ``{prompt: $ per 1k tokens, completion: $ per 1k tokens}``."""
    if not price_per_1k:
        return 0.0
    return (prompt_tokens * float(price_per_1k.get("prompt", 0.0))
            + completion_tokens * float(price_per_1k.get("completion", 0.0))) / 1000.0


class LLMBackend(Component):
    """Base class for LLM backends. Subclasses implement ``generate`` and declare ``capabilities``.

    Example:
        >>> class Shout(LLMBackend):
        ...     def generate(self, requests):
        ...         return [Completion(text=r.prompt_text().upper()) for r in requests]
        >>> Shout().complete("hi").text
        'USER: HI'
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({GENERATE})

    @classmethod
    def capabilities_for(cls, params: Mapping[str, Any]) -> frozenset[str]:
        """The capabilities an instance built from ``params`` has (config validation asks this).

        Backends whose capabilities depend on a setting (``openai``'s ``prompt_logprobs``) override it.
        """
        return frozenset(cls.capabilities)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        raise NotImplementedError

    def default_generation(self) -> Any:
        """The :class:`~ragkit.llm.generation.GenerationDefaults` this backend applies to free-text requests.

        The base class has none; backends with per-model defaults (``transformers``, ``openai``,
        ``llama_cpp``) resolve them from the model name and their config.
        """
        from ragkit.llm.generation import GenerationDefaults

        return GenerationDefaults()

    def prepare_request(self, request: GenerationRequest) -> GenerationRequest:
        """``request`` with this backend's generation defaults filled in (what the cache key hashes)."""
        from ragkit.llm.generation import apply_generation_defaults

        return apply_generation_defaults(request, self.default_generation())

    def complete(self, user: str, system: str | None = None, **kwargs: Any) -> Completion:
        """Convenience: one chat request, one completion."""
        return self.generate([GenerationRequest.chat(user, system, **kwargs)])[0]

    def token_logprobs(self, segments: Sequence[str], max_context: int | None = None) -> list[np.ndarray]:
        self._unsupported(TOKEN_LOGPROBS)
        raise AssertionError  # unreachable

    def token_logprobs_batch(
        self, documents: Sequence[Sequence[str]], max_context: int | None = None
    ) -> list[list[np.ndarray]]:
        """``token_logprobs`` for several documents (local backends batch them on the device)."""
        return [self.token_logprobs(segments, max_context) for segments in documents]

    def next_token_probs(self, prompts: Sequence[str | GenerationRequest], candidates: Sequence[str]) -> np.ndarray:
        self._unsupported(NEXT_TOKEN_PROBS)
        raise AssertionError  # unreachable

    def supports(self, capability: str) -> bool:
        return capability in self.capabilities

    def require(self, capability: str) -> None:
        """Raise :class:`CapabilityError` unless this backend has ``capability``."""
        if not self.supports(capability):
            self._unsupported(capability)

    @property
    def name(self) -> str:
        """Short label used in error messages."""
        return f"{type(self).__name__}({getattr(self, 'model', '?')})"

    @property
    def identity(self) -> dict[str, Any]:
        """What determines outputs (model, revision, relevant settings); part of every cache key."""
        hidden = {"api_key", "api_key_env", "price_per_1k", "show_progress", "timeout", "max_retries",
                  "concurrency", "batch_size", "max_batch_tokens"}
        return {"type": type(self).__name__, **{k: v for k, v in self.get_params().items() if k not in hidden}}

    def _record(self, *, calls: int = 1, prompt_tokens: int = 0, completion_tokens: int = 0,
                scopes: tuple[Any, ...] | None = None) -> None:
        """Record usage (calls, tokens, estimated cost from ``price_per_1k`` when the backend has one)."""
        price = getattr(self, "price_per_1k", None)
        record_usage(scopes=scopes, llm_calls=calls, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                     est_cost_usd=cost_usd(price, prompt_tokens, completion_tokens))

    def _unsupported(self, capability: str) -> None:
        raise CapabilityError(
            f"{type(self).__name__} does not support {capability!r} (it supports: "
            f"{', '.join(sorted(self.capabilities))}). Configure a backend that does, e.g. type: transformers."
        )


class TokenScoringMixin:
    """Shared ``token_logprobs`` for backends that tokenise locally and score token windows.

    Subclasses provide ``_encode_segment(text) -> list[int]`` (no special tokens),
    ``_score_windows(windows, keep_from) -> list[ndarray]`` (for each token list, the log-probability
    of token ``i`` given tokens ``< i`` for ``i >= keep_from``; batch them as the device allows), ``_context_limit()``
    (the model's longest usable context) and the attributes ``max_context`` and ``window_stride``.
    """

    max_context: int
    window_stride: float

    def _encode_segment(self, text: str) -> list[int]:
        raise NotImplementedError

    def _encode_segments(self, texts: Sequence[str]) -> list[list[int]]:
        """``_encode_segment`` of each text; backends with a batch tokenizer override it (same ids)."""
        return [self._encode_segment(t) for t in texts]

    def _score_windows(self, windows: list[list[int]], keep_from: Sequence[int] | None = None) -> list[np.ndarray]:
        raise NotImplementedError

    def _context_limit(self) -> int:
        raise NotImplementedError

    def effective_context(self, max_context: int | None) -> int:
        """``max_context`` (or the backend default), capped by what the model supports."""
        limit = self._context_limit() - 1
        wanted = self.max_context if max_context is None else int(max_context)
        if wanted < 1:
            raise ValueError(f"max_context must be >= 1, got {wanted}")
        return max(1, min(wanted, limit))

    def token_logprobs(self, segments: Sequence[str], max_context: int | None = None) -> list[np.ndarray]:
        return self.token_logprobs_batch([segments], max_context)[0]

    def token_logprobs_batch(
        self, documents: Sequence[Sequence[str]], max_context: int | None = None
    ) -> list[list[np.ndarray]]:
        self.warm_up()  # type: ignore[attr-defined]
        context = self.effective_context(max_context)
        start = time.perf_counter()
        encoded: list[tuple[list[int], list[int]]] = []
        jobs: list[tuple[int, Window]] = []
        window_tokens: list[list[int]] = []
        keep_from: list[int] = []
        flat_segments = [s for segments in documents for s in segments]
        all_pieces = self._encode_segments(flat_segments) if flat_segments else []  # one call for all documents
        cursor = 0
        for d, segments in enumerate(documents):
            pieces = all_pieces[cursor: cursor + len(segments)]
            cursor += len(segments)
            ids = [t for p in pieces for t in p]
            encoded.append((ids, [len(p) for p in pieces]))
            for w in plan_windows(len(ids), context, self.window_stride):
                jobs.append((d, w))
                window_tokens.append(ids[w.start: w.end])
                keep_from.append(w.score_from - w.start)
        scores = self._score_windows(window_tokens, keep_from) if window_tokens else []
        flat = [np.full(len(ids), np.nan, dtype=np.float64) for ids, _ in encoded]
        for (d, w), values in zip(jobs, scores):
            offset = w.score_from - w.start
            flat[d][w.score_from: w.end] = values[offset:]
        processed = sum(len(t) for t in window_tokens)
        self._record(calls=len(documents), prompt_tokens=processed)  # type: ignore[attr-defined]
        self.last_scoring_stats = {"documents": len(documents), "windows": len(window_tokens),
                                   "tokens_scored": sum(len(ids) for ids, _ in encoded),
                                   "tokens_processed": processed, "seconds": time.perf_counter() - start}
        return [split_per_segment(flat[d], lengths) for d, (_, lengths) in enumerate(encoded)]
