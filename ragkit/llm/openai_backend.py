"""OpenAI and any OpenAI-compatible server (vLLM, llama.cpp's server, Ollama) through the official client.

- ``base_url`` selects the server (``None``: ``$OPENAI_BASE_URL`` if set, as the client does, else
  api.openai.com); the key is read from the environment variable named by ``api_key_env``. Unset,
  ``$OPENAI_API_KEY`` is read for OpenAI's own endpoint only: a key is never forwarded to another
  server unless the config names its variable (the key itself never appears in configs or cache
  keys; servers that need no key get a placeholder). Messages name the effective endpoint and the
  proxy the client uses for it.
- Every call has a ``timeout`` and is retried up to ``max_retries`` times with exponential backoff on
  429, 5xx, timeouts and refused connections; then :class:`~ragkit.errors.BackendTimeoutError` (timeouts)
  or :class:`~ragkit.errors.BackendError` says what failed, where, and how to fix it.
- Batches run on at most ``concurrency`` threads.
- ``generate``: chat (``messages``) or completions (``prompt``); a request's JSON schema becomes
  ``response_format``: ``json_mode: json_schema`` (OpenAI, vLLM), ``json_object_schema`` (llama.cpp's
  server: ``{"type": "json_object", "schema": ...}``, enforced by a grammar), ``json_object`` (any
  JSON), ``off`` (the prompt alone asks for JSON; the caching wrapper still validates and retries).
- Generation defaults per model (:mod:`ragkit.llm.generation`, matched on the ``model`` name, so
  ``smollm2``/``qwen`` served by llama.cpp or vLLM get theirs; hosted models get none): a free-text
  request sends the model's ``stop`` sequences (end-of-turn tokens included) and its
  ``repetition_penalty`` in the body fields named by ``repetition_penalty_field`` (``auto``: both
  ``repeat_penalty``, read by llama.cpp's servers, and ``repetition_penalty``, read by vLLM; none to
  api.openai.com, which has neither). ``frequency_penalty`` (OpenAI's additive penalty, -2..2) is
  sent when configured. ``no_repeat_ngram_size`` has no server equivalent and is not sent.
  ``generation_defaults: none`` sends none of the model's values.
- ``next_token_probs`` (``output_logprobs: true``): one-token request with ``top_logprobs``; a candidate
  absent from the server's top list gets probability 0 (a lower bound).
- ``token_logprobs`` (``prompt_logprobs: true``, for servers whose completions endpoint returns
  correct prompt logprobs with ``echo=True``, such as vLLM's; OpenAI's hosted chat models do not, and
  llama-cpp-python's server (0.3.36) shifts them by one token: it scores token i with the distribution
  that predicts token i+1, so leave it off there and use the ``llama_cpp`` backend): the server
  tokenises the concatenated text; each token is assigned to the segment where it starts; long texts
  are re-scored in windows cut at token boundaries (see ``token_logprobs``).

Example:
    >>> llm = OpenAILLM(base_url="http://127.0.0.1:8765/v1", model="smollm2", prompt_logprobs=True)  # doctest: +SKIP
    >>> llm.complete("Say hi.", max_tokens=8).text                                                   # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, ClassVar, Literal, TypeVar

import numpy as np
from pydantic import Field

from ragkit._lazy import require
from ragkit.errors import BackendError, BackendTimeoutError, CapabilityError
from ragkit.llm.base import (
    GENERATE,
    NEXT_TOKEN_PROBS,
    STRUCTURED_OUTPUT,
    TOKEN_LOGPROBS,
    Completion,
    GenerationRequest,
    LLMBackend,
    plan_windows,
)
from ragkit.usage import active_scopes

log = logging.getLogger(__name__)
T = TypeVar("T")
NO_KEY = "sk-no-key-required"
OPENAI_ENDPOINT = "https://api.openai.com/v1"
#: Read automatically only when the effective endpoint is OpenAI's own (api_key_env unset).
DEFAULT_KEY_ENV = "OPENAI_API_KEY"


def _without_credentials(url: str) -> str:
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    if parts.username or parts.password:
        return urllib.parse.urlunsplit(parts._replace(netloc=f"***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")))
    return url


class OpenAIConnection:
    """Client construction and the bounded retry loop shared by the LLM and the embedder.

    Example:
        >>> conn = OpenAIConnection("openai", base_url="http://127.0.0.1:9/v1", api_key_env=None,
        ...                         timeout=1.0, max_retries=0)
        >>> conn.base_label
        'http://127.0.0.1:9/v1'
    """

    def __init__(self, backend: str, *, base_url: str | None, api_key_env: str | None, timeout: float,
                 max_retries: int, backoff_s: float = 0.5, backoff_max_s: float = 8.0) -> None:
        self.backend = backend
        self.base_url = base_url
        self.api_key_env = api_key_env
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self._client: Any = None
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        """Where requests really go: ``base_url``, else ``$OPENAI_BASE_URL`` (as the client reads it), else OpenAI."""
        return (self.base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_ENDPOINT).rstrip("/")

    @property
    def base_label(self) -> str:
        """The effective endpoint for messages, with the proxy the HTTP client will use for it (if any)."""
        import urllib.parse
        import urllib.request

        endpoint = self.endpoint
        parts = urllib.parse.urlsplit(endpoint)
        proxy = urllib.request.getproxies().get(parts.scheme)
        if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
            return f"{endpoint} (through the proxy {_without_credentials(proxy)})"
        return endpoint

    def official(self) -> bool:
        """Whether the effective endpoint is OpenAI's own API (https://api.openai.com)."""
        import urllib.parse

        parts = urllib.parse.urlsplit(self.endpoint)
        return parts.scheme == "https" and (parts.hostname or "") == "api.openai.com"

    def api_key(self) -> str:
        """The key to send: from ``api_key_env`` when the config names it; else ``$OPENAI_API_KEY`` for OpenAI only.

        A key in ``$OPENAI_API_KEY`` is never sent to another server (``base_url``, ``$OPENAI_BASE_URL``)
        unless the config names the variable for it (``api_key_env: OPENAI_API_KEY``).
        """
        variable = self.api_key_env or (DEFAULT_KEY_ENV if self.official() else None)
        key = os.environ.get(variable) if variable else None
        if key:
            return key
        if self.official():
            raise BackendError(self.backend, f"environment variable {variable} is not set, and {self.endpoint} "
                                             "needs a key: export it, or set api_key_env to the variable that "
                                             "holds your key")
        return NO_KEY

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                openai = require("openai", "openai", f"the {self.backend} backend")
                self._client = openai.OpenAI(base_url=self.base_url, api_key=self.api_key(), timeout=self.timeout,
                                             max_retries=0)
            return self._client

    def call(self, fn: Callable[[Any], T], what: str) -> T:
        """Run ``fn(client)`` with bounded retries and exponential backoff; raise ragkit errors.

        ``fn`` raises :class:`InvalidResponse` for a 200 whose body is not a usable answer (not JSON,
        no ``choices``, ``null`` content, far longer than requested): retried like a 5xx, then a
        :class:`~ragkit.errors.BackendError` naming the server. Nothing invalid is returned, so nothing
        invalid is cached.
        """
        import openai

        attempt = 0
        while True:
            try:
                return fn(self.client)
            except InvalidResponse as exc:
                problem, cls, retry_after = exc, BackendError, None
            except json.JSONDecodeError as exc:  # a 200 with an empty or truncated JSON body
                problem, cls, retry_after = InvalidResponse(f"a body that is not complete JSON ({exc})"), \
                    BackendError, None
            except openai.APIResponseValidationError as exc:
                problem, cls, retry_after = InvalidResponse(f"a response that is not valid JSON ({_message(exc)})"), \
                    BackendError, None
            except openai.APITimeoutError as exc:
                problem, cls, retry_after = exc, BackendTimeoutError, None
            except openai.APIConnectionError as exc:
                problem, cls, retry_after = exc, BackendError, None
            except openai.APIStatusError as exc:
                status = exc.status_code
                if status != 429 and status < 500 and status != 408:
                    raise BackendError(
                        self.backend,
                        f"{what} at {self.base_label} was rejected with HTTP {status}: {_message(exc)}. Check the "
                        "model name, the request settings and the API key (environment variable "
                        f"{self.api_key_env or (DEFAULT_KEY_ENV if self.official() else 'none: set api_key_env')!r})",
                    ) from exc
                problem, cls = exc, BackendError
                retry_after = _retry_after(exc)
            if attempt >= self.max_retries:
                raise self._final_error(cls, problem, what, attempt + 1) from problem
            delay = min(self.backoff_max_s, self.backoff_s * (2 ** attempt)) * (0.75 + 0.5 * random.random())
            if retry_after is not None:
                delay = min(self.backoff_max_s, max(delay, retry_after))
            log.warning("%s at %s failed (%s); retry %d/%d in %.1f s", what, self.base_label,
                        type(problem).__name__, attempt + 1, self.max_retries, delay)
            time.sleep(delay)
            attempt += 1

    def _final_error(self, cls: type[BackendError], problem: Exception, what: str, attempts: int) -> BackendError:
        import openai

        tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
        if isinstance(problem, InvalidResponse):
            return BackendError(self.backend, f"the server at {self.base_label} answered {what} with {problem} "
                                              f"({tries}); it is not behaving as an OpenAI-compatible server. Check "
                                              "base_url, the model name and the server's log", retriable=True)
        if cls is BackendTimeoutError:
            return BackendTimeoutError(self.backend, f"{what} at {self.base_label} timed out after {self.timeout} s "
                                                     f"({tries}). Raise `timeout` in the backend config, lower "
                                                     "max_tokens, or check the server's load", retriable=True)
        if isinstance(problem, openai.APIConnectionError):
            return BackendError(self.backend, f"cannot reach the server at {self.base_label} for {what} after "
                                              f"{tries} ({_message(problem)}). Is it running and is base_url right? "
                                              "For a local llama.cpp server: python -m llama_cpp.server --model "
                                              "MODEL.gguf --port 8765, then base_url: http://127.0.0.1:8765/v1",
                                retriable=True)
        status = getattr(problem, "status_code", "?")
        if status == 429:
            hint = "The server is rate-limiting; lower `concurrency` or raise `max_retries`"
        else:
            hint = ("The server failed on this request (its message is above). If it rejects `response_format`, "
                    "set `json_mode` to what it supports (llama.cpp: json_object_schema; vLLM and OpenAI: "
                    "json_schema); if it is overloaded, lower `concurrency` or raise `max_retries`")
        return BackendError(self.backend, f"{what} at {self.base_label} kept failing with HTTP {status} after "
                                          f"{tries}: {_message(problem)}. {hint}", retriable=True)


class InvalidResponse(Exception):
    """A 200 response that is not a usable answer (retried, then reported; never returned or cached)."""


#: An answer longer than ``max_tokens * MAX_CHARS_PER_TOKEN + 1024`` characters cannot respect ``max_tokens``.
MAX_CHARS_PER_TOKEN = 32


def first_choice(response: Any, what: str = "response") -> Any:
    """``response.choices[0]``, or :class:`InvalidResponse` saying what the server sent instead.

    Example:
        >>> first_choice(type("R", (), {"choices": []})())
        Traceback (most recent call last):
        ...
        ragkit.llm.openai_backend.InvalidResponse: an empty `choices` list
    """
    if isinstance(response, (str, bytes)):
        shown = response[:80] if isinstance(response, str) else response[:80].decode("utf-8", "replace")
        raise InvalidResponse(f"a body that is not JSON ({shown!r})")
    choices = getattr(response, "choices", None)
    if not isinstance(choices, list):
        raise InvalidResponse(f"JSON without a `choices` list ({type(choices).__name__})")
    if not choices or choices[0] is None:
        raise InvalidResponse("an empty `choices` list")
    return choices[0]


def checked_text(text: Any, max_tokens: int | None) -> str:
    """The answer text, or :class:`InvalidResponse` for ``null`` or an answer far longer than ``max_tokens``."""
    if text is None:
        raise InvalidResponse("`null` content (no answer text)")
    if not isinstance(text, str):
        raise InvalidResponse(f"content of type {type(text).__name__}, not text")
    if max_tokens is not None and len(text) > int(max_tokens) * MAX_CHARS_PER_TOKEN + 1024:
        raise InvalidResponse(f"an answer of {len(text):,} characters to a request for at most {max_tokens} tokens")
    return text


def _message(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping) and inner.get("message"):
            return str(inner["message"])[:300]
        if isinstance(inner, str):
            return inner[:300]
    return (str(exc) or type(exc).__name__)[:300]


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _with_choice(response: Any) -> Any:
    first_choice(response)
    return response


def run_concurrently(items: Sequence[Any], fn: Callable[[Any], T], concurrency: int, desc: str,
                     show_progress: bool | None) -> list[T]:
    """``[fn(x) for x in items]`` on at most ``concurrency`` threads, in order, with a progress bar."""
    if len(items) <= 1 or concurrency <= 1:
        return [fn(x) for x in items]
    from tqdm.auto import tqdm

    show = show_progress if show_progress is not None else log.isEnabledFor(logging.INFO)
    with ThreadPoolExecutor(max_workers=min(concurrency, len(items))) as pool:
        futures = [pool.submit(fn, x) for x in items]
        with tqdm(total=len(futures), desc=desc, disable=not show, leave=False) as bar:
            for future in futures:
                future.add_done_callback(lambda _f: bar.update(1))
            return [f.result() for f in futures]


class OpenAILLM(LLMBackend):
    """OpenAI or any OpenAI-compatible server via the official ``openai`` client.

    Example:
        >>> llm = OpenAILLM(base_url="http://127.0.0.1:8765/v1", model="smollm2", api_key_env=None)
        >>> sorted(OpenAILLM.capabilities_for({"prompt_logprobs": True}))
        ['generate', 'next_token_probs', 'structured_output', 'token_logprobs']
        >>> llm.complete("Say hi.").text                                 # doctest: +SKIP
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({GENERATE, NEXT_TOKEN_PROBS, STRUCTURED_OUTPUT})

    def __init__(
        self,
        *,
        model: str = "gpt-4o-mini",
        base_url: str | None = None,
        api_key_env: str | None = None,
        timeout: Annotated[float, Field(gt=0)] = 60.0,
        max_retries: Annotated[int, Field(ge=0, le=10)] = 3,
        backoff_s: Annotated[float, Field(ge=0)] = 0.5,
        concurrency: Annotated[int, Field(gt=0, le=64)] = 4,
        json_mode: Literal["json_schema", "json_object_schema", "json_object", "off"] = "json_schema",
        output_logprobs: bool = True,
        prompt_logprobs: bool = False,
        top_logprobs: Annotated[int, Field(ge=1, le=20)] = 20,
        max_context: Annotated[int, Field(gt=0)] = 2048,
        window_stride: Annotated[float, Field(gt=0, le=1)] = 0.5,
        generation_defaults: Literal["model", "none"] = "model",
        stop: list[str] | None = None,
        repetition_penalty: Annotated[float, Field(gt=0)] | None = None,
        repetition_penalty_field: Literal["auto", "repeat_penalty", "repetition_penalty", "none"] = "auto",
        frequency_penalty: Annotated[float, Field(ge=-2, le=2)] | None = None,
        max_new_tokens: Annotated[int, Field(gt=0)] | None = None,
        price_per_1k: dict[str, float] | None = None,
        show_progress: bool | None = None,
    ) -> None:
        self.model = model
        self.base_url = base_url
        self.api_key_env = api_key_env
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.concurrency = concurrency
        self.json_mode = json_mode
        self.output_logprobs = output_logprobs
        self.prompt_logprobs = prompt_logprobs
        self.top_logprobs = top_logprobs
        self.max_context = max_context
        self.window_stride = window_stride
        self.generation_defaults = generation_defaults
        self.stop = stop
        self.repetition_penalty = repetition_penalty
        self.repetition_penalty_field = repetition_penalty_field
        self.frequency_penalty = frequency_penalty
        self.max_new_tokens = max_new_tokens
        self.price_per_1k = price_per_1k
        self.show_progress = show_progress
        self.capabilities = type(self).capabilities_for(  # type: ignore[misc]
            {"output_logprobs": output_logprobs, "prompt_logprobs": prompt_logprobs, "json_mode": json_mode})

    @classmethod
    def capabilities_for(cls, params: Mapping[str, Any]) -> frozenset[str]:
        caps = {GENERATE}
        if params.get("output_logprobs", True):
            caps.add(NEXT_TOKEN_PROBS)
        if params.get("prompt_logprobs", False):
            caps.add(TOKEN_LOGPROBS)
        if params.get("json_mode", "json_schema") != "off":
            caps.add(STRUCTURED_OUTPUT)
        return frozenset(caps)

    @property
    def identity(self) -> dict[str, Any]:
        extra = {"frequency_penalty": self.frequency_penalty} if self.frequency_penalty is not None else {}
        if self.repetition_penalty_field != "auto":
            extra["repetition_penalty_field"] = self.repetition_penalty_field
        return {"type": "openai", "base_url": self.base_url, "model": self.model, "json_mode": self.json_mode,
                "top_logprobs": self.top_logprobs, "max_context": self.max_context,
                "window_stride": self.window_stride, **extra}

    def default_generation(self) -> Any:
        """The model's generation defaults (matched on ``model``) with this config's overrides.

        ``no_repeat_ngram_size`` is always 0: OpenAI-compatible servers have no such setting.

        Example:
            >>> OpenAILLM(model="smollm2", base_url="http://127.0.0.1:9/v1").default_generation().stop
            ('<|im_end|>',)
            >>> OpenAILLM(model="gpt-4o-mini").default_generation().is_empty
            True
        """
        from dataclasses import replace

        from ragkit.llm.generation import resolve_generation_defaults

        resolved = resolve_generation_defaults(self.model, mode=self.generation_defaults, stop=self.stop,
                                               repetition_penalty=self.repetition_penalty,
                                               max_new_tokens=self.max_new_tokens)
        return replace(resolved, no_repeat_ngram_size=0)

    def _penalty_fields(self, penalty: float | None) -> dict[str, float]:
        """The body fields that carry a multiplicative repetition penalty to this server."""
        if penalty is None:
            return {}
        field = self.repetition_penalty_field
        if field == "auto":
            if self.connection_.official():
                return {}  # OpenAI's API has no multiplicative penalty (use frequency_penalty)
            return {"repeat_penalty": penalty, "repetition_penalty": penalty}
        return {} if field == "none" else {field: penalty}

    def _load(self) -> None:
        self.connection_ = OpenAIConnection("openai", base_url=self.base_url, api_key_env=self.api_key_env,
                                            timeout=self.timeout, max_retries=self.max_retries,
                                            backoff_s=self.backoff_s)
        self.connection_.api_key()  # fail early when the key is required and missing

    # ----------------------------------------------------------------- generate
    def _response_format(self, schema: Mapping[str, Any] | None) -> dict[str, Any] | None:
        if schema is None or self.json_mode == "off":
            return None
        if self.json_mode == "json_object":
            return {"type": "json_object"}
        if self.json_mode == "json_object_schema":  # llama.cpp's server: schema → grammar
            return {"type": "json_object", "schema": dict(schema)}
        return {"type": "json_schema", "json_schema": {"name": "output", "schema": dict(schema), "strict": False}}

    def _generate_one(self, request: GenerationRequest, scopes: tuple[Any, ...]) -> Completion:
        start = time.perf_counter()
        request = self.prepare_request(request)
        common: dict[str, Any] = {"model": self.model, "max_tokens": request.max_tokens,
                                  "temperature": request.temperature}
        if request.seed is not None:
            common["seed"] = request.seed
        if request.stop:
            if len(request.stop) > 4 and self.connection_.official():
                raise BackendError("openai", f"{len(request.stop)} stop sequences {list(request.stop)} for "
                                             f"{self.connection_.base_label}, which accepts at most 4: shorten "
                                             "the backend's `stop` list (or the stage's)")
            common["stop"] = list(request.stop)
        if self.frequency_penalty is not None and request.json_schema is None:
            common["frequency_penalty"] = self.frequency_penalty
        extra_body = self._penalty_fields(request.repetition_penalty)
        if extra_body:
            common["extra_body"] = extra_body
        if request.messages is not None:
            response_format = self._response_format(request.json_schema)
            if response_format:
                common["response_format"] = response_format

            def chat(c: Any) -> tuple[Any, Any, str]:
                reply = c.chat.completions.create(messages=[dict(m) for m in request.messages], **common)
                first = first_choice(reply)
                return reply, first, checked_text(getattr(getattr(first, "message", None), "content", None),
                                                  request.max_tokens)

            response, choice, text = self.connection_.call(chat, "chat completion")
        else:
            def complete(c: Any) -> tuple[Any, Any, str]:
                reply = c.completions.create(prompt=request.prompt, **common)
                first = first_choice(reply)
                return reply, first, checked_text(getattr(first, "text", None), request.max_tokens)

            response, choice, text = self.connection_.call(complete, "completion")
        usage = getattr(response, "usage", None)
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
        self._record(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, scopes=scopes)
        return Completion(text=text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                          finish_reason=choice.finish_reason or "stop",
                          extra={"latency_s": round(time.perf_counter() - start, 4)})

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        self.warm_up()
        scopes = active_scopes()
        return run_concurrently(list(requests), lambda r: self._generate_one(r, scopes), self.concurrency,
                                "openai generate", self.show_progress)

    # ----------------------------------------------------------------- next-token probabilities
    def _next_one(self, prompt: str | GenerationRequest, candidates: Sequence[str],
                  scopes: tuple[Any, ...]) -> np.ndarray:
        if isinstance(prompt, GenerationRequest) and prompt.messages is not None:
            response = self.connection_.call(
                lambda c: _with_choice(c.chat.completions.create(
                    model=self.model, messages=[dict(m) for m in prompt.messages], max_tokens=1, temperature=0.0,
                    logprobs=True, top_logprobs=self.top_logprobs)),
                "chat completion with logprobs")
            content = getattr(response.choices[0].logprobs, "content", None) if response.choices[0].logprobs else None
            if not content:
                raise CapabilityError(f"the server at {self.connection_.base_label} returned no logprobs for a chat "
                                      f"completion (model {self.model!r}); set output_logprobs: false for this backend "
                                      "and use one that returns them (transformers, llama_cpp)")
            top = {item.token: item.logprob for item in (content[0].top_logprobs or [])}
            top.setdefault(content[0].token, content[0].logprob)
        else:
            text = prompt.prompt if isinstance(prompt, GenerationRequest) else prompt
            response = self.connection_.call(
                lambda c: _with_choice(c.completions.create(model=self.model, prompt=text, max_tokens=1,
                                                            temperature=0.0, logprobs=self.top_logprobs)),
                "completion with logprobs")
            logprobs = response.choices[0].logprobs
            if logprobs is None or not logprobs.top_logprobs:
                raise CapabilityError(f"the server at {self.connection_.base_label} returned no logprobs for a "
                                      f"completion (model {self.model!r}); set output_logprobs: false")
            top = dict(logprobs.top_logprobs[0] or {})
        usage = getattr(response, "usage", None)
        self._record(prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                     completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0), scopes=scopes)
        return np.asarray([math.exp(top[c]) if c in top else 0.0 for c in candidates], dtype=np.float64)

    def next_token_probs(self, prompts: Sequence[str | GenerationRequest], candidates: Sequence[str]) -> np.ndarray:
        """Probabilities of ``candidates`` from the server's ``top_logprobs`` (absent ones get 0)."""
        self.require(NEXT_TOKEN_PROBS)
        self.warm_up()
        scopes = active_scopes()
        rows = run_concurrently(list(prompts), lambda p: self._next_one(p, candidates, scopes), self.concurrency,
                                "openai next-token", self.show_progress)
        return np.asarray(rows, dtype=np.float64).reshape(len(prompts), len(candidates))

    # ----------------------------------------------------------------- prompt logprobs
    def _echo(self, text: str, scopes: tuple[Any, ...]) -> tuple[list[int], list[float | None]]:
        """Token start offsets and log-probabilities of ``text`` as the server tokenises it."""
        response = self.connection_.call(
            lambda c: _with_choice(c.completions.create(model=self.model, prompt=text, max_tokens=1, temperature=0.0,
                                                        echo=True, logprobs=1)),
            "completion with echo=True")
        logprobs = response.choices[0].logprobs
        if logprobs is None or logprobs.token_logprobs is None or logprobs.text_offset is None:
            raise CapabilityError(f"the server at {self.connection_.base_label} returned no prompt logprobs for "
                                  f"echo=True (model {self.model!r}); it cannot score prompts: set prompt_logprobs: "
                                  "false and use the transformers or llama_cpp backend for perplexity")
        offsets, values = [], []
        for offset, value in zip(logprobs.text_offset, logprobs.token_logprobs):
            if offset >= len(text):  # the generated token, not part of the prompt
                break
            offsets.append(int(offset))
            values.append(value)
        usage = getattr(response, "usage", None)
        self._record(prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or len(offsets)), scopes=scopes)
        return offsets, values

    def token_logprobs(self, segments: Sequence[str], max_context: int | None = None) -> list[np.ndarray]:
        """Per-segment prompt log-probabilities via completions ``echo=True``.

        The server tokenises the concatenation (segment boundaries inside a token go to the segment
        where the token starts). When it is longer than ``max_context + 1`` tokens, windows from
        ``base.plan_windows`` are re-scored as text cut at token starts, so each kept token sees at
        most ``max_context`` tokens (re-tokenising a cut can shift a token at the window edge).
        """
        self.require(TOKEN_LOGPROBS)
        self.warm_up()
        scopes = active_scopes()
        text = "".join(segments)
        if not text:
            return [np.zeros(0) for _ in segments]
        context = max(1, min(self.max_context if max_context is None else int(max_context), self.max_context))
        offsets, values = self._echo(text, scopes)
        n = len(offsets)
        scored: list[float] = [float("nan")] * n
        windows = plan_windows(n, context, self.window_stride)
        if len(windows) <= 1:
            scored = [float("nan") if v is None else float(v) for v in values]
        else:
            bounds = offsets + [len(text)]

            def score(window: Any) -> list[tuple[int, float]]:
                lo_char, hi_char = bounds[window.start], bounds[window.end]
                local_offsets, local_values = self._echo(text[lo_char:hi_char], scopes)
                keep_char = bounds[window.score_from]
                found = []
                for off, val in zip(local_offsets, local_values):
                    absolute = lo_char + off
                    if absolute >= keep_char and val is not None:
                        found.append((absolute, float(val)))
                return found

            index = {off: i for i, off in enumerate(offsets)}
            first = [float("nan") if v is None else float(v) for v in values[: windows[0].end]]
            scored[: windows[0].end] = first
            for found in run_concurrently(windows[1:], score, self.concurrency, "openai windows", self.show_progress):
                for absolute, val in found:
                    if absolute in index:
                        scored[index[absolute]] = val
        if scored:
            scored[0] = float("nan")
        starts = np.cumsum([0] + [len(s) for s in segments])
        per_segment: list[list[float]] = [[] for _ in segments]
        seg = 0
        for off, val in zip(offsets, scored):
            while seg + 1 < len(segments) and off >= starts[seg + 1]:
                seg += 1
            per_segment[seg].append(val)
        return [np.asarray(v, dtype=np.float64) for v in per_segment]
