"""The in-process llama_cpp backend on the packaged SmolLM2 GGUF."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import BaseModel

from ragkit.llm.base import CandidateTokenError, GenerationRequest, plan_windows

pytestmark = [pytest.mark.slow, pytest.mark.llama_cpp]

SEGMENTS = ["The Eiffel Tower is in Paris.", " It was completed in 1889 for the World's Fair."]


@pytest.fixture(scope="module")
def gguf():
    try:
        import llama_cpp  # noqa: F401
    except ImportError as exc:
        pytest.fail(f"llama-cpp-python is not importable ({exc}); run scripts/build_llama_cpp.sh once")
    from ragkit.llm.llama_cpp_backend import LlamaCppLLM

    llm = LlamaCppLLM(n_threads=1, n_ctx=512)
    llm.warm_up()
    return llm


class Place(BaseModel):
    city: str
    year: int


def test_generate_chat_and_grammar_constrained_json(gguf) -> None:
    out = gguf.generate([
        GenerationRequest.chat("What is the capital of France? One sentence.", max_tokens=16),
        GenerationRequest.chat("City and year as JSON: the Eiffel Tower, Paris, 1889.", json_schema=Place, max_tokens=40),
        GenerationRequest(prompt="JSON for Rome, 753:", json_schema=Place, max_tokens=40),
    ])
    assert "Paris" in out[0].text
    assert out[1].parse(Place).city and isinstance(out[2].parse(Place).year, int)


def test_token_logprobs_match_fresh_window_evaluation(gguf) -> None:
    ids = [t for s in SEGMENTS for t in gguf._encode_segment(s)]
    full = np.concatenate(gguf.token_logprobs(SEGMENTS))
    assert len(full) == len(ids) and np.isnan(full[0]) and np.isfinite(full[1:]).all()
    windowed = np.concatenate(gguf.token_logprobs(SEGMENTS, max_context=6))
    compared = 0
    for w in plan_windows(len(ids), 6, gguf.window_stride):
        alone = np.concatenate(gguf.token_logprobs([gguf.llm_.detokenize(ids[w.start: w.end]).decode()]))
        if len(alone) == w.end - w.start:                # same tokens after the decode/encode round trip
            np.testing.assert_allclose(windowed[w.score_from: w.end], alone[w.score_from - w.start:], atol=1e-3)
            compared += 1
    assert compared >= 2
    assert not np.allclose(windowed[8:], full[8:])


def test_close_to_the_transformers_backend(gguf, smollm) -> None:
    ours = np.concatenate(gguf.token_logprobs(SEGMENTS))
    reference = np.concatenate(smollm.token_logprobs(SEGMENTS))    # same weights, fp32 vs Q4_1
    assert len(ours) == len(reference)
    assert np.nanmean(np.abs(ours - reference)) < 0.3


def test_next_token_probs_and_multi_token_candidates(gguf) -> None:
    chat = GenerationRequest.chat("Is 5 bigger than 3? Answer 1 for yes or 2 for no. Reply with the digit only.")
    probs = gguf.next_token_probs([chat, "Answer 1 or 2:"], ["1", "2"])
    assert probs.shape == (2, 2) and ((probs > 0) & (probs < 1)).all() and probs[0].sum() > 0.05
    with pytest.raises(CandidateTokenError, match="single tokens"):
        gguf.next_token_probs(["x"], ["antidisestablishment"])
