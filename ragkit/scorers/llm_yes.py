"""``llm_yes`` scorer: the LLM's probability of answering "yes" to "does this context answer the question?".

One chat prompt per text (context, question, "Answer yes or no."), scored with the backend's
``next_token_probs`` over the two single-token answers. The score is
``P(yes) / (P(yes) + P(no))`` (``normalize=True``, default: robust to probability mass on other
tokens such as punctuation or casing variants) or the raw ``P(yes)``. All texts go in one call.

Example:
    >>> from ragkit.testing import FakeLLM
    >>> from ragkit.types import Query
    >>> scorer = LLMYesScorer(llm=FakeLLM(next_token_script=[[0.6, 0.2], [0.1, 0.3]]))
    >>> scorer.score(Query.from_text("Where is Rome?"), ["Rome is in Italy.", "Paris."]).round(2).tolist()
    [0.75, 0.25]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np

from ragkit.errors import CapabilityError
from ragkit.llm.base import NEXT_TOKEN_PROBS, GenerationRequest
from ragkit.scorers._build import UsesBackends
from ragkit.scorers.base import Scorer
from ragkit.stage import LLMRef
from ragkit.types import Query

DEFAULT_TEMPLATE = ("Context:\n{text}\n\nQuestion: {question}\n\n"
                    "Does the context contain the answer to the question? Answer yes or no.")


class LLMYesScorer(UsesBackends, Scorer):
    """P("yes") that the text answers the question, via ``next_token_probs``.

    Args:
        llm: backend with ``next_token_probs``.
        template: the user message; must contain ``{text}`` and ``{question}``.
        yes, no: the single-token answers (as the model writes them after the chat template).
        normalize: return ``P(yes) / (P(yes) + P(no))`` instead of ``P(yes)``.

    Example:
        >>> LLMYesScorer().yes, LLMYesScorer().no
        ('Yes', 'No')
    """

    requires: ClassVar[dict[str, frozenset[str]]] = {"llm": frozenset({NEXT_TOKEN_PROBS})}

    def __init__(self, *, llm: LLMRef = "default", template: str = DEFAULT_TEMPLATE, yes: str = "Yes",
                 no: str = "No", normalize: bool = True) -> None:
        self.llm = llm
        self.template = template
        self.yes = yes
        self.no = no
        self.normalize = normalize

    def _load(self) -> None:
        for field in ("{text}", "{question}"):
            if field not in self.template:
                raise CapabilityError(f"llm_yes: template {self.template!r} must contain {field!r}")
        self.llm_ = self._llm_with(NEXT_TOKEN_PROBS, "llm_yes", "use type: transformers or llama_cpp")

    def requests(self, query: Query, texts: Sequence[str]) -> list[GenerationRequest]:
        """One chat request per text (the backend applies its chat template)."""
        return [GenerationRequest.chat(self.template.format(text=t, question=query.text), max_tokens=1,
                                       template_version="llm_yes@1") for t in texts]

    def score(self, query: Query, texts: Sequence[str]) -> np.ndarray:
        """P(yes) (normalised against P(no) by default) per text, in one backend call."""
        self.warm_up()
        texts = list(texts)
        if not texts:
            return np.zeros(0, dtype=np.float64)
        probs = np.asarray(self.llm_.next_token_probs(self.requests(query, texts), [self.yes, self.no]),
                           dtype=np.float64).reshape(len(texts), 2)
        if not self.normalize:
            return probs[:, 0]
        total = probs.sum(axis=1)
        return np.divide(probs[:, 0], total, out=np.full(len(texts), 0.5), where=total > 0)
