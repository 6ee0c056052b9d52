"""query_likelihood: mean log P(question | text) over the question segment of one batched backend call."""

from __future__ import annotations

import numpy as np
import pytest

from ragkit.errors import CapabilityError
from ragkit.llm.base import LLMBackend
from ragkit.scorers.query_likelihood import QueryLikelihoodScorer
from ragkit.testing import FakeLLM
from ragkit.types import Query

Q = Query.from_text("Where is Rome?")


class ScriptedLLM(LLMBackend):
    """Returns per-token log-probs from the text's length; records every batch it gets."""

    capabilities = frozenset({"generate", "token_logprobs"})

    def __init__(self) -> None:
        self.batches: list[list[list[str]]] = []

    def token_logprobs_batch(self, documents, max_context=None):
        self.batches.append([list(d) for d in documents])
        out = []
        for prompt, _question in documents:
            out.append([np.full(3, -1.0), np.full(4, -float(len(prompt)) / 10)])
        return out


def test_segments_question_only_and_one_batched_call():
    llm = ScriptedLLM()
    scorer = QueryLikelihoodScorer(llm=llm, prompt="P: {text} Q:")
    scores = scorer.score(Q, ["short", "a much longer text"])
    assert llm.batches == [[["P: short Q:", " Where is Rome?"], ["P: a much longer text Q:", " Where is Rome?"]]]
    assert scores == pytest.approx([-1.1, -2.4])  # mean of the question segment only
    assert scorer.score(Q, []).shape == (0,)


def test_first_token_nan_is_ignored():
    class FirstToken(ScriptedLLM):
        def token_logprobs_batch(self, documents, max_context=None):
            return [[np.zeros(0), np.array([np.nan, -1.0, -3.0])] for _ in documents]

    assert QueryLikelihoodScorer(llm=FirstToken()).score(Q, ["x"]) == pytest.approx([-2.0])


def test_with_the_fake_llm_is_deterministic():
    a = QueryLikelihoodScorer(llm=FakeLLM()).score(Q, ["Rome is in Italy.", "Paris."])
    b = QueryLikelihoodScorer(llm=FakeLLM()).score(Q, ["Rome is in Italy.", "Paris."])
    assert a.shape == (2,) and (a == b).all() and (a <= 0).all()


def test_backend_without_token_logprobs_is_rejected():
    with pytest.raises(CapabilityError, match="token_logprobs"):
        QueryLikelihoodScorer(llm=FakeLLM(supported=["generate"])).score(Q, ["x"])


def test_declares_its_capability_for_config_validation():
    assert QueryLikelihoodScorer.requires == {"llm": frozenset({"token_logprobs"})}


@pytest.mark.slow
def test_real_smollm_prefers_the_relevant_text(smollm):
    scorer = QueryLikelihoodScorer(llm=smollm)
    query = Query.from_text("What is the capital of Italy?")
    texts = ["Rome is the capital of Italy. The Colosseum and the Vatican are in Rome.",
             "Photosynthesis converts light energy into chemical energy in plants."]
    relevant, irrelevant = scorer.score(query, texts)
    assert np.isfinite([relevant, irrelevant]).all()
    assert relevant > irrelevant
