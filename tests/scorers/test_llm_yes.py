"""llm_yes: P(yes) via next_token_probs, normalised against P(no) by default."""

from __future__ import annotations

import pytest

from ragkit.errors import CapabilityError
from ragkit.llm.base import GenerationRequest
from ragkit.scorers.llm_yes import LLMYesScorer
from ragkit.testing import FakeLLM
from ragkit.types import Query

Q = Query.from_text("Where is Rome?")


def test_normalised_and_raw_probability_of_yes():
    script = [[0.6, 0.2], [0.1, 0.3], [0.0, 0.0]]
    assert LLMYesScorer(llm=FakeLLM(next_token_script=script)).score(Q, ["a", "b", "c"]) == pytest.approx(
        [0.75, 0.25, 0.5])
    assert LLMYesScorer(llm=FakeLLM(next_token_script=script), normalize=False).score(Q, ["a", "b"]) == pytest.approx(
        [0.6, 0.1])


def test_one_call_with_chat_requests_holding_text_and_question():
    seen = []

    class Recording(FakeLLM):
        def next_token_probs(self, prompts, candidates):
            seen.append((list(prompts), list(candidates)))
            return super().next_token_probs(prompts, candidates)

    LLMYesScorer(llm=Recording()).score(Q, ["Rome is in Italy.", "Paris."])
    assert len(seen) == 1
    prompts, candidates = seen[0]
    assert candidates == ["Yes", "No"] and all(isinstance(p, GenerationRequest) for p in prompts)
    assert "Rome is in Italy." in prompts[0].messages[-1]["content"] and "Where is Rome?" in prompts[0].messages[-1]["content"]


def test_backend_without_next_token_probs_is_rejected():
    with pytest.raises(CapabilityError, match="next_token_probs"):
        LLMYesScorer(llm=FakeLLM(supported=["generate"])).score(Q, ["x"])
    with pytest.raises(CapabilityError, match="question"):
        LLMYesScorer(llm=FakeLLM(), template="{text} only").score(Q, ["x"])
