"""Per-model generation defaults: where free-text answers end, and what keeps them from looping.

Small instruct models decoded greedily tend to repeat a sentence until the token cap (SmolLM2-135M
does on most RAG prompts). Each packaged model family therefore has a default set:

- ``stop``: stop sequences. Those that are special tokens of the model's vocabulary (the chat
  template's end-of-turn token: SmolLM2's and Qwen's ``<|im_end|>``, Qwen's ``<|endoftext|>``) end
  generation as EOS tokens in the local backends; the ``openai`` backend sends them all as ``stop``.
- ``repetition_penalty``: multiplicative (CTRL-style) penalty on tokens the answer has already
  generated; ``1.0`` is off. The local backend penalises generated tokens only, so copying words from
  the context passages is not penalised (servers apply their own variant: llama.cpp's
  ``repeat_penalty`` looks at the last 64 tokens, vLLM's ``repetition_penalty`` at prompt and output).
- ``no_repeat_ngram_size``: no n-gram of generated tokens may occur twice (``transformers`` only);
  ``0`` is off.
- ``max_new_tokens``: the answer budget for stages that leave theirs unset (``stuff``'s
  ``max_new_tokens: null``).

The defaults apply to every free-text chat ``generate`` request that does not set the value itself
(:func:`apply_generation_defaults`); requests constrained by a JSON schema get none of them (the
schema decides where they end, and a repetition penalty would fight the JSON syntax), and neither do
completion-style ``prompt=`` requests (raw continuation without the chat template: no end-of-turn
token to stop at, and the caller decides how it continues). A backend's
config overrides each value (``stop``, ``repetition_penalty``, ``no_repeat_ngram_size``,
``max_new_tokens``), and ``generation_defaults: none`` turns the model's set off (the behaviour
before there were defaults). The settings travel inside each request, so they are part of every
LLM cache key: answers cached under one setting are never served for another.

Example:
    >>> d = resolve_generation_defaults("smollm2-135m-instruct")
    >>> d.source, d.stop
    ('smollm2', ('<|im_end|>',))
    >>> resolve_generation_defaults("smollm2-135m-instruct", repetition_penalty=1.0).repetition_penalty
    1.0
    >>> resolve_generation_defaults("gpt-4o-mini").source
    'none'
    >>> from ragkit.llm.base import GenerationRequest
    >>> req = apply_generation_defaults(GenerationRequest.chat("Hi?"), d)
    >>> req.stop, req.repetition_penalty == d.repetition_penalty
    (('<|im_end|>',), True)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # base imports this module (prepare_request); the request type is only an annotation here
    from ragkit.llm.base import GenerationRequest

#: Answer budget when neither the model's defaults nor the config give one (the old fixed value).
FALLBACK_MAX_NEW_TOKENS = 256
DefaultsMode = Literal["model", "none"]


@dataclass(frozen=True)
class GenerationDefaults:
    """Generation settings a backend applies to free-text requests that leave them unset.

    Example:
        >>> GenerationDefaults().is_empty
        True
        >>> GenerationDefaults(stop=("<|im_end|>",)).is_empty
        False
    """

    stop: tuple[str, ...] = ()
    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    max_new_tokens: int = FALLBACK_MAX_NEW_TOKENS
    #: which entry of :data:`MODEL_GENERATION_DEFAULTS` matched (``none``), ``+config`` when overridden
    source: str = "none"

    @property
    def is_empty(self) -> bool:
        """True when applying these defaults changes no request."""
        return not self.stop and self.repetition_penalty == 1.0 and self.no_repeat_ngram_size == 0

    def to_dict(self) -> dict[str, object]:
        return {"stop": list(self.stop), "repetition_penalty": self.repetition_penalty,
                "no_repeat_ngram_size": self.no_repeat_ngram_size, "max_new_tokens": self.max_new_tokens,
                "source": self.source}


#: Model families (a regular expression searched in the lower-cased model name, its packaged alias's
#: hub name, or a folder's name) and their defaults; the first match wins. Values measured with
#: ``benchmarks/answer_quality.py`` (``benchmarks/RESULTS.md``, ``## answers``).
MODEL_GENERATION_DEFAULTS: tuple[tuple[str, GenerationDefaults], ...] = (
    ("smollm2", GenerationDefaults(stop=("<|im_end|>",), repetition_penalty=1.3, no_repeat_ngram_size=4,
                                   max_new_tokens=192, source="smollm2")),
    ("qwen", GenerationDefaults(stop=("<|im_end|>", "<|endoftext|>"), repetition_penalty=1.05,
                                no_repeat_ngram_size=0, max_new_tokens=256, source="qwen")),
)


def _names(model: str) -> list[str]:
    from ragkit.llm.models import get_spec

    names = [model.lower()]
    spec = get_spec(model)
    if spec is not None:
        names.append(spec.hub_name.lower())
    base = Path(model).name.lower()
    if base and base not in names:
        names.append(base)
    return names


def model_generation_defaults(model: str) -> GenerationDefaults:
    """The packaged defaults of the first family whose pattern matches ``model`` (else empty ones).

    Example:
        >>> model_generation_defaults("Qwen/Qwen2.5-0.5B-Instruct").stop
        ('<|im_end|>', '<|endoftext|>')
        >>> model_generation_defaults("/models/SmolLM2-360M-Instruct").source
        'smollm2'
    """
    names = _names(model)
    for pattern, defaults in MODEL_GENERATION_DEFAULTS:
        if any(re.search(pattern, name) for name in names):
            return defaults
    return GenerationDefaults()


def resolve_generation_defaults(
    model: str,
    *,
    mode: DefaultsMode = "model",
    stop: Sequence[str] | None = None,
    repetition_penalty: float | None = None,
    no_repeat_ngram_size: int | None = None,
    max_new_tokens: int | None = None,
) -> GenerationDefaults:
    """The model's defaults (``mode: model``) or none (``mode: none``), each overridden by a non-``None`` value.

    An override replaces the model's value (``stop: []`` removes the model's stop sequences).

    Raises:
        ValueError: ``mode`` is not ``model`` or ``none``.

    Example:
        >>> resolve_generation_defaults("smollm2-135m-instruct", mode="none").is_empty
        True
        >>> resolve_generation_defaults("smollm2-135m-instruct", stop=["\\n\\n"]).stop
        ('\\n\\n',)
    """
    if mode not in ("model", "none"):
        raise ValueError(f"generation_defaults must be 'model' (the model's packaged defaults) or 'none' (no "
                         f"defaults), got {mode!r}")
    base = model_generation_defaults(model) if mode == "model" else GenerationDefaults()
    changes: dict[str, object] = {}
    if stop is not None:
        changes["stop"] = tuple(stop)
    if repetition_penalty is not None:
        changes["repetition_penalty"] = float(repetition_penalty)
    if no_repeat_ngram_size is not None:
        changes["no_repeat_ngram_size"] = int(no_repeat_ngram_size)
    if max_new_tokens is not None:
        changes["max_new_tokens"] = int(max_new_tokens)
    if not changes:
        return base
    return replace(base, **changes, source=f"{base.source}+config")  # type: ignore[arg-type]


def apply_generation_defaults(request: GenerationRequest, defaults: GenerationDefaults) -> GenerationRequest:
    """``request`` with ``defaults`` filled in where it leaves them unset (idempotent).

    Stop sequences are merged (the request's first); ``repetition_penalty`` and
    ``no_repeat_ngram_size`` are taken from ``defaults`` only when the request has ``None``. A request
    with a JSON schema or a completion-style ``prompt`` is returned unchanged, and so is every request
    when ``defaults`` is empty (its cache key stays what it was before defaults existed).

    Example:
        >>> from ragkit.llm.base import GenerationRequest
        >>> d = GenerationDefaults(stop=("END",), repetition_penalty=1.2)
        >>> r = apply_generation_defaults(GenerationRequest.chat("Hi?", stop=("\\n",), repetition_penalty=1.0), d)
        >>> r.stop, r.repetition_penalty, r.no_repeat_ngram_size
        (('\\n', 'END'), 1.0, None)
    """
    if request.json_schema is not None or request.messages is None or defaults.is_empty:
        return request
    changes: dict[str, object] = {}
    extra = tuple(s for s in defaults.stop if s not in request.stop)
    if extra:
        changes["stop"] = request.stop + extra
    if request.repetition_penalty is None and defaults.repetition_penalty != 1.0:
        changes["repetition_penalty"] = defaults.repetition_penalty
    if request.no_repeat_ngram_size is None and defaults.no_repeat_ngram_size:
        changes["no_repeat_ngram_size"] = defaults.no_repeat_ngram_size
    return replace(request, **changes) if changes else request  # type: ignore[arg-type]
