"""``query_likelihood`` scorer: mean log P(question | text) under a causal LM.

Unsupervised passage re-ranking by question likelihood (UPR, Sachan et al. 2022): a text is good for
a question when a language model reading the text finds the question likely. Each text becomes a
two-segment document for the backend's ``token_logprobs``: the prompt (``Passage: {text}`` and an
instruction) and the question; segments are tokenised separately and concatenated, and only the
question segment's log-probabilities are averaged. The default offline scorer (packaged SmolLM2).

- All texts of one ``score`` call go to the backend in **one** ``token_logprobs_batch`` call (local
  backends batch them on the device; the LLM cache answers repeats).
- ``max_context`` bounds the left context each question token sees (``None``: the backend's
  default); a text longer than that is read only through its last ``max_context`` tokens.
- The score is a mean log-probability (``<= 0``); higher is better. Texts are compared on the same
  question, so no length normalisation beyond the mean over question tokens is applied.

Example:
    >>> from ragkit.testing import FakeLLM
    >>> from ragkit.types import Query
    >>> scorer = QueryLikelihoodScorer(llm=FakeLLM())
    >>> scorer.score(Query.from_text("Where is Rome?"), ["Rome is in Italy.", "Paris."]).shape
    (2,)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, ClassVar

import numpy as np
from pydantic import Field

from ragkit.errors import BackendError, CapabilityError
from ragkit.llm.base import TOKEN_LOGPROBS
from ragkit.scorers._build import UsesBackends
from ragkit.scorers.base import Scorer
from ragkit.stage import LLMRef
from ragkit.types import Query

DEFAULT_PROMPT = "Passage: {text}\nPlease write a question based on this passage.\nQuestion:"


class QueryLikelihoodScorer(UsesBackends, Scorer):
    """Mean log-probability of the question's tokens given ``prompt.format(text=...)``.

    Args:
        llm: backend with ``token_logprobs`` (a name in a config, an instance in Python).
        prompt: the text before the question; must contain ``{text}``.
        max_context: left-context cap per scored token (``None``: the backend's default).

    Example:
        >>> QueryLikelihoodScorer().prompt.startswith("Passage:")
        True
    """

    requires: ClassVar[dict[str, frozenset[str]]] = {"llm": frozenset({TOKEN_LOGPROBS})}

    def __init__(self, *, llm: LLMRef = "default", prompt: str = DEFAULT_PROMPT,
                 max_context: Annotated[int, Field(gt=0)] | None = None) -> None:
        self.llm = llm
        self.prompt = prompt
        self.max_context = max_context

    def _load(self) -> None:
        if "{text}" not in self.prompt:
            raise CapabilityError(f"query_likelihood: prompt {self.prompt!r} must contain '{{text}}'")
        self.llm_ = self._llm_with(TOKEN_LOGPROBS, "query_likelihood", "use type: transformers, llama_cpp, or an "
                                   "openai server returning prompt logprobs")

    def documents(self, query: Query, texts: Sequence[str]) -> list[list[str]]:
        """The ``token_logprobs`` documents: ``[prompt with text, " " + question]`` per text."""
        question = " " + query.text.strip()
        return [[self.prompt.format(text=text), question] for text in texts]

    def score(self, query: Query, texts: Sequence[str]) -> np.ndarray:
        """Mean log P(question | text) per text, shape ``(len(texts),)``, in one backend call."""
        self.warm_up()
        texts = list(texts)
        if not texts:
            return np.zeros(0, dtype=np.float64)
        results = self.llm_.token_logprobs_batch(self.documents(query, texts), self.max_context)
        out = np.empty(len(texts), dtype=np.float64)
        for i, segments in enumerate(results):
            if len(segments) != 2:
                raise BackendError("query_likelihood", f"token_logprobs returned {len(segments)} segments for 2; "
                                   "the backend breaks the token_logprobs contract")
            values = np.asarray(segments[1], dtype=np.float64)
            values = values[np.isfinite(values)]
            out[i] = float(values.mean()) if values.size else float("-inf")
        return out
