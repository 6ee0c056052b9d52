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

Batch forms (``token_logprobs_batch``) take lists of requests; local backends run them as real batches.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np

from ragkit.errors import CapabilityError
from ragkit.stage import Component

GENERATE = "generate"
TOKEN_LOGPROBS = "token_logprobs"
NEXT_TOKEN_PROBS = "next_token_probs"
EMBEDDINGS = "embeddings"


@dataclass(frozen=True)
class GenerationRequest:
    """One generation call. Give ``messages`` (chat) or ``prompt`` (completion).

    ``json_schema`` asks for output that validates against that JSON schema.
    """

    messages: tuple[Mapping[str, str], ...] | None = None
    prompt: str | None = None
    max_tokens: int = 256
    temperature: float = 0.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    json_schema: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError("GenerationRequest needs exactly one of messages= or prompt=")
        if self.messages is not None:
            object.__setattr__(self, "messages", tuple(dict(m) for m in self.messages))
        object.__setattr__(self, "stop", tuple(self.stop))

    @classmethod
    def chat(cls, user: str, system: str | None = None, **kwargs: Any) -> GenerationRequest:
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
        return cls(messages=tuple(messages), **kwargs)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["messages"] = [dict(m) for m in self.messages] if self.messages is not None else None
        data["stop"] = list(self.stop)
        data["json_schema"] = json.loads(json.dumps(self.json_schema)) if self.json_schema else None
        return data

    def prompt_text(self) -> str:
        """The request as plain text (for backends without a chat template and for token estimates)."""
        if self.prompt is not None:
            return self.prompt
        return "\n".join(f"{m['role']}: {m['content']}" for m in self.messages or ())


@dataclass(frozen=True)
class Completion:
    """A generation result."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"
    cached: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    def json(self) -> Any:
        """Parse ``text`` as JSON (raises ``json.JSONDecodeError``)."""
        return json.loads(self.text)


class LLMBackend(Component):
    """Base class for LLM backends. Subclasses implement ``generate`` and declare ``capabilities``."""

    capabilities: ClassVar[frozenset[str]] = frozenset({GENERATE})

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        raise NotImplementedError

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

    @property
    def identity(self) -> dict[str, Any]:
        """What determines outputs (model, revision, relevant settings); part of every cache key."""
        return {"type": type(self).__name__, **{k: v for k, v in self.get_params().items() if k not in {"api_key"}}}

    def _unsupported(self, capability: str) -> None:
        raise CapabilityError(
            f"{type(self).__name__} does not support {capability!r} (it supports: "
            f"{', '.join(sorted(self.capabilities))}). Configure a backend that does, e.g. type: transformers."
        )
