"""``CachedLLM``: the wrapper every configured LLM backend runs inside.

It satisfies the same protocol as the backend it wraps (stages never know about it) and adds:

- a persistent call cache in ``RAGKIT_HOME/cache.sqlite`` (namespace ``llm``). The key is the sha256
  of the backend identity (model, revision, output-relevant settings), the method, the full request
  (every sampling parameter, the JSON schema, the prompt-template version) and a cache-schema
  version; the request is keyed after the backend's generation defaults are filled in
  (``LLMBackend.prepare_request``), so a change of defaults changes the key. Modes ``read_write`` /
  ``read_only`` / ``off`` follow the config's ``cache.mode`` (``--no-cache`` sets ``off``). A fully
  cached run makes zero backend calls (``backend_calls`` counts them). Requests sampled at
  ``temperature > 0`` without a ``seed`` are never cached.
- structured output: a completion for a request with ``json_schema`` is validated (JSON parse, the
  schema, and the pydantic ``response_model`` when given). An invalid one is retried with the
  validation error appended to the conversation, up to ``structured_retries`` times; then
  :class:`~ragkit.errors.StructuredOutputError` carries the raw text.
- counters: ``backend_calls`` (inner method calls), ``backend_requests``, ``cache_hits``,
  ``latency_s`` (time spent in the inner backend); cache hits are recorded as ``cached_calls``
  in the usage scopes. The inner backend records calls, tokens and estimated cost itself.

Example:
    >>> from ragkit.testing import FakeLLM
    >>> from ragkit.cache import CacheStore
    >>> import tempfile, pathlib
    >>> store = CacheStore(pathlib.Path(tempfile.mkdtemp()) / "c.sqlite")
    >>> llm = CachedLLM(inner=FakeLLM(), store=store)
    >>> first = llm.complete("hello")
    >>> second = llm.complete("hello")
    >>> (second.text == first.text, second.cached, llm.backend_calls)
    (True, True, 1)
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ragkit.cache import CacheMode, CacheStore, default_cache
from ragkit.errors import StructuredOutputError
from ragkit.llm.base import Completion, GenerationRequest, LLMBackend, validation_error
from ragkit.types import sha256_hex
from ragkit.usage import record_usage

NAMESPACE = "llm"
#: Bump when the stored value format or the key recipe changes.
CACHE_SCHEMA_VERSION = 1

RETRY_INSTRUCTION = (
    "Your previous reply is invalid: {error}. Reply again with only a JSON value that matches this JSON "
    "schema, with no other text:\n{schema}"
)


def _encode_arrays(arrays: Sequence[np.ndarray]) -> bytes:
    return json.dumps([[None if np.isnan(v) else float(v) for v in a] for a in arrays]).encode()


def _decode_arrays(raw: bytes) -> list[np.ndarray]:
    return [np.asarray([np.nan if v is None else v for v in row], dtype=np.float64) for row in json.loads(raw)]


def _deterministic(request: GenerationRequest) -> bool:
    return request.temperature == 0 or request.seed is not None


class CachedLLM(LLMBackend):
    """Cache, structured-output validation with retries, and call counters around any LLM backend.

    Example:
        >>> from ragkit.testing import FakeLLM
        >>> llm = CachedLLM(inner=FakeLLM(), mode="off")
        >>> llm.supports("token_logprobs")
        True
    """

    def __init__(
        self,
        *,
        inner: LLMBackend,
        store: CacheStore | None = None,
        mode: CacheMode | None = None,
        structured_retries: int = 2,
    ) -> None:
        self.inner = inner
        self.store = store
        self.mode = mode
        self.structured_retries = structured_retries
        self.capabilities = inner.capabilities  # type: ignore[misc]
        self.backend_calls = 0
        self.backend_requests = 0
        self.cache_hits = 0
        self.latency_s = 0.0
        self._lock = threading.Lock()

    # ----------------------------------------------------------------- plumbing
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in {"inner", "_lock"}:
            raise AttributeError(name)
        return getattr(self.inner, name)

    @property
    def identity(self) -> dict[str, Any]:
        return self.inner.identity

    @property
    def name(self) -> str:
        return self.inner.name

    def warm_up(self) -> None:
        self.inner.warm_up()

    def default_generation(self) -> Any:
        return self.inner.default_generation()

    def prepare_request(self, request: GenerationRequest) -> GenerationRequest:
        return self.inner.prepare_request(request)

    def _cache(self) -> CacheStore:
        if self.store is not None:
            return self.store
        return default_cache(self.mode)

    def _key(self, method: str, payload: Any, identity: Any = None) -> str:
        identity = self.inner.identity if identity is None else identity
        return sha256_hex(CACHE_SCHEMA_VERSION, identity, method, payload)

    def _call(self, fn: Callable[[], Any], n_requests: int) -> Any:
        start = time.perf_counter()
        try:
            return fn()
        finally:
            with self._lock:
                self.backend_calls += 1
                self.backend_requests += n_requests
                self.latency_s += time.perf_counter() - start

    def _hits(self, store: CacheStore, keys: Sequence[str]) -> dict[str, bytes]:
        found = store.get_many(NAMESPACE, keys) if store.readable else {}
        if found:
            hits = sum(1 for k in keys if k in found)
            with self._lock:
                self.cache_hits += hits
            record_usage(cached_calls=hits)
        return found

    def stats(self) -> dict[str, Any]:
        """Counters: inner calls and requests, cache hits, seconds spent in the inner backend."""
        return {"backend_calls": self.backend_calls, "backend_requests": self.backend_requests,
                "cache_hits": self.cache_hits, "latency_s": round(self.latency_s, 4)}

    # ----------------------------------------------------------------- generate
    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        outcomes = self.generate_outcomes(requests)
        failure = next((o for o in outcomes if isinstance(o, StructuredOutputError)), None)
        if failure is not None:
            raise failure
        return outcomes  # type: ignore[return-value]

    def generate_outcomes(self, requests: Sequence[GenerationRequest]) -> list[Completion | StructuredOutputError]:
        """Like :meth:`generate`, but a request whose structured output stays invalid gets its :class:`StructuredOutputError` in place instead of failing the whole batch (the valid completions are cached and returned)."""
        # the backend's generation defaults (stop, repetition settings) go into each request first, so
        # they are part of its key: a change of defaults never answers from another setting's entries
        requests = [self.inner.prepare_request(r) for r in requests]
        store = self._cache()
        identity = self.inner.identity
        keys = [self._key("generate", r.to_dict(), identity) for r in requests]
        cacheable = [_deterministic(r) for r in requests]
        found = self._hits(store, [k for k, ok in zip(keys, cacheable) if ok])
        results: list[Completion | StructuredOutputError | None] = [None] * len(requests)
        for i, key in enumerate(keys):
            if cacheable[i] and key in found:
                results[i] = Completion.from_dict(json.loads(found[key]), cached=True)
        missing = [i for i, r in enumerate(results) if r is None]
        if missing:
            fresh = self._generate_validated([requests[i] for i in missing])
            to_store: dict[str, bytes] = {}
            for i, outcome in zip(missing, fresh):
                if isinstance(outcome, StructuredOutputError):
                    results[i] = outcome
                    continue
                if not cacheable[i]:
                    outcome = Completion(outcome.text, outcome.prompt_tokens, outcome.completion_tokens,
                                         outcome.finish_reason, False, {**outcome.extra, "stochastic": True})
                else:
                    to_store[keys[i]] = json.dumps(outcome.to_dict()).encode()
                results[i] = outcome
            if to_store and store.writable:
                store.put_many(NAMESPACE, to_store)
        return [r for r in results if r is not None]

    def _generate_validated(self, requests: list[GenerationRequest]) -> list[Completion | StructuredOutputError]:
        outputs: list[Any] = self._call(lambda: self.inner.generate(requests), len(requests))
        attempts = [1] * len(requests)
        conversations = [list(r.messages) if r.messages is not None else [{"role": "user", "content": r.prompt}]
                         for r in requests]
        errors: dict[int, str] = {}
        for i, (request, completion) in enumerate(zip(requests, outputs)):
            if request.json_schema is not None:
                error = validation_error(completion.text, request.json_schema, request.response_model)
                if error:
                    errors[i] = error
        for _ in range(self.structured_retries):
            if not errors:
                break
            retry_ids = sorted(errors)
            retries = []
            for i in retry_ids:
                conversations[i] = conversations[i] + [
                    {"role": "assistant", "content": outputs[i].text},
                    {"role": "user", "content": RETRY_INSTRUCTION.format(
                        error=errors[i], schema=json.dumps(requests[i].json_schema))},
                ]
                retries.append(requests[i].with_messages(conversations[i]))
            fresh = self._call(lambda retries=retries: self.inner.generate(retries), len(retries))
            for i, completion in zip(retry_ids, fresh):
                attempts[i] += 1
                outputs[i] = completion
                error = validation_error(completion.text, requests[i].json_schema, requests[i].response_model)
                if error:
                    errors[i] = error
                else:
                    del errors[i]
        result: list[Completion | StructuredOutputError] = []
        for i, completion in enumerate(outputs):
            if i in errors:
                result.append(StructuredOutputError(
                    self.inner.name,
                    f"output does not satisfy the requested JSON schema after {attempts[i]} attempt(s): {errors[i]}. "
                    "Raise max_tokens, simplify the schema, or use a stronger model",
                    completion.text,
                ))
            else:
                extra = dict(completion.extra)
                if attempts[i] > 1:
                    extra["attempts"] = attempts[i]
                result.append(Completion(completion.text, completion.prompt_tokens, completion.completion_tokens,
                                         completion.finish_reason, False, extra))
        return result

    # ----------------------------------------------------------------- scoring
    def token_logprobs(self, segments: Sequence[str], max_context: int | None = None) -> list[np.ndarray]:
        return self.token_logprobs_batch([segments], max_context)[0]

    def token_logprobs_batch(
        self, documents: Sequence[Sequence[str]], max_context: int | None = None
    ) -> list[list[np.ndarray]]:
        store = self._cache()
        identity = self.inner.identity
        keys = [self._key("token_logprobs", {"segments": list(doc), "max_context": max_context}, identity)
                for doc in documents]
        found = self._hits(store, keys)
        results: list[list[np.ndarray] | None] = [
            _decode_arrays(found[k]) if k in found else None for k in keys
        ]
        missing = [i for i, r in enumerate(results) if r is None]
        if missing:
            docs = [list(documents[i]) for i in missing]
            if len(docs) == 1:
                fresh = [self._call(lambda: self.inner.token_logprobs(docs[0], max_context), 1)]
            else:
                fresh = self._call(lambda: self.inner.token_logprobs_batch(docs, max_context), len(docs))
            for i, arrays in zip(missing, fresh):
                results[i] = arrays
            if store.writable:
                store.put_many(NAMESPACE, {keys[i]: _encode_arrays(results[i] or []) for i in missing})
        return [r or [] for r in results]

    def next_token_probs(self, prompts: Sequence[str | GenerationRequest], candidates: Sequence[str]) -> np.ndarray:
        store = self._cache()
        identity = self.inner.identity
        keys = [self._key("next_token_probs", {"prompt": p.to_dict() if isinstance(p, GenerationRequest) else p,
                                               "candidates": list(candidates)}, identity) for p in prompts]
        found = self._hits(store, keys)
        out = np.zeros((len(prompts), len(candidates)), dtype=np.float64)
        missing = []
        for i, key in enumerate(keys):
            if key in found:
                out[i] = json.loads(found[key])
            else:
                missing.append(i)
        if missing:
            fresh = self._call(lambda: self.inner.next_token_probs([prompts[i] for i in missing], candidates),
                               len(missing))
            fresh = np.asarray(fresh, dtype=np.float64).reshape(len(missing), len(candidates))
            to_store = {}
            for row, i in zip(fresh, missing):
                out[i] = row
                to_store[keys[i]] = json.dumps([float(v) for v in row]).encode()
            if store.writable:
                store.put_many(NAMESPACE, to_store)
        return out


def wrap_llm(backend: Any, *, store: CacheStore | None = None, mode: CacheMode | None = None) -> Any:
    """Wrap an LLM backend in :class:`CachedLLM` (already-wrapped backends are returned unchanged)."""
    if isinstance(backend, CachedLLM) or not isinstance(backend, LLMBackend):
        return backend
    return CachedLLM(inner=backend, store=store, mode=mode)
