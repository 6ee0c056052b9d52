"""Deterministic fakes shipped with ragkit, registered like real backends (``type: fake``).

Everything here is seeded by sha256 of its input, never by ``random`` or the salted built-in
``hash``, so outputs are identical across processes and machines.

Example:
    >>> from ragkit.testing import FakeEmbedder, FakeLLM
    >>> FakeEmbedder(dimension=8).embed_documents(["a b", "a b"]).shape
    (2, 8)
    >>> FakeLLM(mode="fixed", responses=["hi"]).complete("hello").text
    'hi'
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Literal

import numpy as np

from ragkit._rng import seeded_rng
from ragkit.embeddings.base import Embedder
from ragkit.llm.base import (
    ALL_CAPABILITIES,
    GENERATE,
    NEXT_TOKEN_PROBS,
    STRUCTURED_OUTPUT,
    TOKEN_LOGPROBS,
    Completion,
    GenerationRequest,
    LLMBackend,
)
from ragkit.usage import record_usage

_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def fake_tokenize(text: str) -> list[str]:
    """The fakes' tokenizer: words and punctuation marks."""
    return _WORD.findall(text)


class FakeEmbedder(Embedder):
    """Hash-seeded unit vectors.

    ``mode="bow"`` (default) sums per-word vectors, so texts sharing words are similar, which
    makes semantic chunkers and retrieval tests meaningful; ``mode="hash"`` gives one unrelated
    vector per distinct text.
    """

    def __init__(self, *, dimension: int = 64, mode: Literal["bow", "hash"] = "bow") -> None:
        self.dimension = dimension
        self.mode = mode
        self.calls = 0

    def get_dimension(self) -> int:
        return self.dimension

    @property
    def identity(self) -> str:
        return f"fake:{self.mode}:{self.dimension}"

    def _vector(self, text: str) -> np.ndarray:
        if self.mode == "hash":
            vec = seeded_rng("fake-embedder", text).standard_normal(self.dimension)
        else:
            vec = np.zeros(self.dimension)
            for word in fake_tokenize(text.lower()):
                vec += seeded_rng("fake-word", word).standard_normal(self.dimension)
            if not vec.any():
                vec = seeded_rng("fake-embedder", text).standard_normal(self.dimension)
        return (vec / np.linalg.norm(vec)).astype(np.float32)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        self.calls += 1
        record_usage(embedding_calls=1, embedded_texts=len(texts))
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([self._vector(t) for t in texts])


def example_from_schema(schema: Mapping[str, Any], rng: np.random.Generator, defs: Mapping[str, Any] | None = None) -> Any:
    """A small deterministic instance of a JSON schema (objects, arrays, enums, scalars)."""
    defs = defs if defs is not None else schema.get("$defs", {})
    if "$ref" in schema:
        return example_from_schema(defs[schema["$ref"].split("/")[-1]], rng, defs)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return example_from_schema(options[0], rng, defs)
    if "enum" in schema:
        return schema["enum"][int(rng.integers(len(schema["enum"])))]
    if "const" in schema:
        return schema["const"]
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "string")
    if kind == "object":
        props = schema.get("properties", {})
        return {name: example_from_schema(sub, rng, defs) for name, sub in props.items()}
    if kind == "array":
        n = max(int(schema.get("minItems", 1)), min(2, int(schema.get("maxItems", 2))))
        return [example_from_schema(schema.get("items", {"type": "string"}), rng, defs) for _ in range(n)]
    if kind == "integer":
        return int(rng.integers(int(schema.get("minimum", 0)), int(schema.get("maximum", 9)) + 1))
    if kind == "number":
        return float(np.round(rng.random(), 3))
    if kind == "boolean":
        return bool(rng.integers(2))
    words = ["alpha", "beta", "gamma", "delta", "omega", "sigma"]
    return " ".join(words[int(i)] for i in rng.integers(len(words), size=2))


class FakeLLM(LLMBackend):
    """A deterministic LLM with every capability (or the subset named in ``supported``).

    Modes for ``generate``:
        - ``hash``: text (or a schema-valid JSON instance) derived from sha256 of the request;
        - ``fixed``: cycles through ``responses``;
        - ``scripted``: returns ``responses`` in order, one per request, and raises when they run out;
        - ``echo``: returns the last user message (or the prompt);
        - ``function``: calls ``function(request) -> str`` (Python API only).

    ``token_logprobs`` gives each token a hash-seeded log-probability in [-8, -0.05] that depends on
    the token and its predecessor; ``next_token_probs`` gives hash-seeded probabilities per prompt,
    or the rows of ``next_token_script`` in order (cycled) when given. ``calls`` counts backend
    calls and ``seen`` keeps every generation request (for cache and prompt tests).

    Example:
        >>> llm = FakeLLM(mode="scripted", responses=["not json", '{"a": 1}'])
        >>> [c.text for c in llm.generate([GenerationRequest(prompt="x"), GenerationRequest(prompt="y")])]
        ['not json', '{"a": 1}']
        >>> FakeLLM(next_token_script=[[0.2, 0.7]]).next_token_probs(["p", "q"], ["1", "2"]).tolist()
        [[0.2, 0.7], [0.2, 0.7]]
        >>> FakeLLM(supported=["generate"]).supports("token_logprobs")
        False
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({GENERATE, TOKEN_LOGPROBS, NEXT_TOKEN_PROBS, STRUCTURED_OUTPUT})

    def __init__(
        self,
        *,
        mode: Literal["hash", "fixed", "scripted", "echo", "function"] = "hash",
        responses: Sequence[str] = (),
        function: Callable[[GenerationRequest], str] | None = None,
        model: str = "fake",
        next_token_script: Sequence[Sequence[float]] = (),
        supported: Sequence[str] | None = None,
        price_per_1k: dict[str, float] | None = None,
    ) -> None:
        self.mode = mode
        self.responses = tuple(responses)
        self.function = function
        self.model = model
        self.next_token_script = tuple(tuple(float(v) for v in row) for row in next_token_script)
        self.supported = supported
        self.price_per_1k = price_per_1k
        self.capabilities = type(self).capabilities_for({"supported": supported})  # type: ignore[misc]
        self.calls = 0
        self.seen: list[GenerationRequest] = []
        self._cursor = 0
        self._script_cursor = 0

    @classmethod
    def capabilities_for(cls, params: Mapping[str, Any]) -> frozenset[str]:
        supported = params.get("supported")
        if supported is None:
            return frozenset(cls.capabilities)
        unknown = set(supported) - set(ALL_CAPABILITIES)
        if unknown:
            raise ValueError(f"FakeLLM(supported=...): unknown capabilities {sorted(unknown)}; "
                             f"known: {', '.join(ALL_CAPABILITIES)}")
        return frozenset(supported)

    @property
    def identity(self) -> dict[str, Any]:
        return {"type": "fake", "mode": self.mode, "responses": list(self.responses), "model": self.model,
                "next_token_script": [list(r) for r in self.next_token_script]}

    def _text_for(self, request: GenerationRequest) -> str:
        if self.mode in ("fixed", "scripted"):
            if not self.responses:
                raise ValueError(f"FakeLLM(mode={self.mode!r}) needs responses=[...]")
            if self.mode == "scripted" and self._cursor >= len(self.responses):
                raise ValueError(f"FakeLLM(mode='scripted') ran out of responses after {len(self.responses)} "
                                 "requests; add more responses or use mode='fixed' to cycle")
            text = self.responses[self._cursor % len(self.responses)]
            self._cursor += 1
            return text
        if self.mode == "echo":
            if request.messages:
                return [m for m in request.messages if m["role"] == "user"][-1]["content"]
            return request.prompt or ""
        if self.mode == "function":
            if self.function is None:
                raise ValueError("FakeLLM(mode='function') needs function=callable")
            return self.function(request)
        rng = seeded_rng("fake-llm", request.to_dict())
        if request.json_schema:
            return json.dumps(example_from_schema(request.json_schema, rng))
        words = ["the", "answer", "is", "found", "in", "context", "chunk", "ragkit", "retrieval", "document"]
        n = int(min(request.max_tokens, 12))
        return " ".join(words[int(i)] for i in rng.integers(len(words), size=max(n, 1)))

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        self.require(GENERATE)
        out = []
        for request in requests:
            self.calls += 1
            self.seen.append(request)
            text = self._text_for(request)
            prompt_tokens = len(fake_tokenize(request.prompt_text()))
            completion_tokens = len(fake_tokenize(text))
            self._record(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
            out.append(Completion(text=text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens))
        return out

    def token_logprobs(self, segments: Sequence[str], max_context: int | None = None) -> list[np.ndarray]:
        self.require(TOKEN_LOGPROBS)
        self.calls += 1
        out, previous, first = [], "<s>", True
        total = 0
        for segment in segments:
            values = []
            for token in fake_tokenize(segment):
                if first:
                    values.append(float("nan"))
                    first = False
                else:
                    values.append(-0.05 - 7.95 * float(seeded_rng("fake-lp", previous, token).random()))
                previous = token
            total += len(values)
            out.append(np.asarray(values, dtype=np.float64))
        self._record(prompt_tokens=total)
        return out

    def next_token_probs(self, prompts: Sequence[str | GenerationRequest], candidates: Sequence[str]) -> np.ndarray:
        self.require(NEXT_TOKEN_PROBS)
        self.calls += 1
        rows = []
        for prompt in prompts:
            if self.next_token_script:
                row = self.next_token_script[self._script_cursor % len(self.next_token_script)]
                self._script_cursor += 1
                if len(row) != len(candidates):
                    raise ValueError(f"FakeLLM next_token_script row {list(row)} has {len(row)} values for "
                                     f"{len(candidates)} candidates")
                rows.append(np.asarray(row, dtype=np.float64))
                continue
            key = prompt.to_dict() if isinstance(prompt, GenerationRequest) else prompt
            raw = seeded_rng("fake-ntp", key, list(candidates)).random(len(candidates)) + 1e-3
            rows.append(raw / raw.sum() * 0.9)
        self._record(calls=len(rows))
        return np.asarray(rows, dtype=np.float64).reshape(len(rows), len(candidates))
