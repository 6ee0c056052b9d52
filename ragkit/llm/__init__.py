"""ragkit.llm: one backend protocol for local and hosted LLMs.

- :mod:`ragkit.llm.base`: ``LLMBackend``, ``GenerationRequest``, ``Completion``, capability names,
  the token-window plan (``plan_windows``).
- Backends: ``transformers_backend.TransformersLLM`` (local default), ``llama_cpp_backend.LlamaCppLLM``
  (extra ``llama``), ``openai_backend.OpenAILLM`` (OpenAI or any compatible server), ``FakeLLM`` in
  :mod:`ragkit.testing`.
- :mod:`ragkit.llm.cached`: ``CachedLLM``, the wrapper every pipeline backend runs in (call cache,
  structured-output validation and retries, call counters).
- :mod:`ragkit.llm.prompts`: versioned ``PromptTemplate``; :mod:`ragkit.llm.models`: packaged model
  aliases and ``ragkit models``; :mod:`ragkit.llm.llama_server`: a loopback llama.cpp server.

Example:
    >>> from ragkit.llm import GenerationRequest, PromptTemplate
    >>> PromptTemplate("greet", 1, "Say hi to {name}.").request(name="Ann").template_version
    'greet@1'
"""

from ragkit.llm.base import (
    GENERATE,
    NEXT_TOKEN_PROBS,
    STRUCTURED_OUTPUT,
    TOKEN_LOGPROBS,
    Completion,
    GenerationRequest,
    LLMBackend,
)
from ragkit.llm.prompts import PromptTemplate

__all__ = ["GENERATE", "NEXT_TOKEN_PROBS", "STRUCTURED_OUTPUT", "TOKEN_LOGPROBS", "Completion", "GenerationRequest",
           "LLMBackend", "PromptTemplate"]
