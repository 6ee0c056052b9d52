"""The openai backend against a real OpenAI-compatible server: llama.cpp's, on loopback, serving SmolLM2."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from pydantic import BaseModel

from ragkit.errors import BackendError, BackendTimeoutError, CapabilityError
from ragkit.llm.base import GenerationRequest
from ragkit.llm.cached import CachedLLM
from ragkit.llm.llama_server import free_port
from ragkit.llm.openai_backend import OpenAILLM
from ragkit.usage import usage_scope

pytestmark = [pytest.mark.slow, pytest.mark.server]


@pytest.fixture(scope="module")
def llm(llama_chat_server) -> OpenAILLM:
    return OpenAILLM(base_url=llama_chat_server.base_url, model="smollm2-135m-instruct", api_key_env=None,
                     json_mode="json_object_schema", prompt_logprobs=True, timeout=120, concurrency=4,
                     price_per_1k={"prompt": 0.5, "completion": 1.5})


def test_chat_and_completion_with_usage_and_cost(llm: OpenAILLM) -> None:
    with usage_scope() as usage:
        out = llm.generate([GenerationRequest.chat("What is the capital of France? One sentence.", max_tokens=16),
                            GenerationRequest(prompt="1, 2, 3, 4,", max_tokens=6, stop=(" 7",))])
    assert "Paris" in out[0].text and out[0].prompt_tokens > 5 and 0 < out[0].completion_tokens <= 16
    assert " 7" not in out[1].text
    assert usage.llm_calls == 2
    expected = (usage.prompt_tokens * 0.5 + usage.completion_tokens * 1.5) / 1000
    assert usage.est_cost_usd == pytest.approx(expected)


class City(BaseModel):
    city: str
    country: str


def test_json_output_validates_against_the_schema(llm: OpenAILLM) -> None:
    wrapped = CachedLLM(inner=llm, mode="off")
    request = GenerationRequest.chat("Give the city and country of the Eiffel Tower as JSON.", json_schema=City,
                                     max_tokens=40)
    city = wrapped.generate([request])[0].parse(City)
    assert city.city and city.country


def test_next_token_probabilities_of_1_and_2(llm: OpenAILLM) -> None:
    chat = GenerationRequest.chat("Is 5 bigger than 3? Answer 1 for yes or 2 for no. Reply with the digit only.")
    probs = llm.next_token_probs([chat, "Answer 1 or 2:"], ["1", "2"])
    assert probs.shape == (2, 2) and (probs >= 0).all() and (probs.sum(axis=1) <= 1 + 1e-6).all()
    assert probs[0].sum() > 0.05


def test_prompt_logprobs_through_echo_are_aligned_per_segment(llm: OpenAILLM, smollm) -> None:
    segments = ["The Eiffel Tower is in Paris.", " It was completed in 1889."]
    result = llm.token_logprobs(segments)
    assert [len(a) for a in result] == [smollm.count_tokens(s) for s in segments]  # same BPE vocabulary
    flat = np.concatenate(result)
    assert np.isnan(flat[0]) and np.isfinite(flat[1:]).all() and (flat[1:] <= 0).all()
    windowed = np.concatenate(llm.token_logprobs(segments, max_context=6))
    assert len(windowed) == len(flat) and np.isfinite(windowed[1:]).all()
    assert not np.allclose(windowed[8:], flat[8:])              # re-scored in windows with less context


def test_llama_cpp_server_echo_logprobs_are_shifted_by_one(llm: OpenAILLM) -> None:
    """Why configs keep prompt_logprobs off for llama.cpp's server (llama-cpp-python 0.3.36).

    Its echo logprobs score token i with the distribution that predicts token i+1 (row i instead of
    row i-1). The in-process llama_cpp backend reads the logits itself and is correct; if this test
    starts failing, the server was fixed and prompt_logprobs can be turned on for it.
    """
    from ragkit.llm.llama_cpp_backend import LlamaCppLLM, _log_softmax_rows

    local = LlamaCppLLM(n_threads=1)
    local.warm_up()
    segments = ["The Eiffel Tower is in Paris."]
    served = llm.token_logprobs(segments)[0]
    ids = local._encode_segment(segments[0])
    rows = _log_softmax_rows(local._eval(ids))
    same_row = np.array([rows[i, ids[i]] for i in range(len(ids))])       # the server's (shifted) definition
    correct = np.concatenate(local.token_logprobs(segments))
    np.testing.assert_allclose(served[1:], same_row[1:], atol=0.05)
    assert np.nanmean(np.abs(served - correct)) > 1.0


def test_token_logprobs_is_a_declared_capability() -> None:
    plain = OpenAILLM(base_url="http://127.0.0.1:9/v1", api_key_env=None)
    assert not plain.supports("token_logprobs")
    with pytest.raises(CapabilityError, match="token_logprobs"):
        plain.token_logprobs(["x"])


def test_unreachable_server_fails_clearly_after_bounded_retries() -> None:
    port = free_port()                                            # nothing listens there
    llm = OpenAILLM(base_url=f"http://127.0.0.1:{port}/v1", api_key_env=None, max_retries=2, backoff_s=0.05,
                    timeout=5)
    start = time.perf_counter()
    with pytest.raises(BackendError, match=rf"cannot reach the server at http://127.0.0.1:{port}/v1 .* after 3 attempts.*base_url"):
        llm.complete("hello", max_tokens=4)
    assert time.perf_counter() - start < 10


def test_rejected_response_format_points_at_json_mode(llama_chat_server) -> None:
    # llama-cpp-python's server answers response_format {"type": "json_schema"} with HTTP 500
    llm = OpenAILLM(base_url=llama_chat_server.base_url, api_key_env=None, json_mode="json_schema", max_retries=0)
    request = GenerationRequest.chat("Name a colour.", json_schema={"type": "object", "properties": {
        "colour": {"type": "string"}}, "required": ["colour"]}, max_tokens=16)
    with pytest.raises(BackendError, match=r"(?s)HTTP 500 after 1 attempt: .*response_format.*set `json_mode`") as info:
        llm.generate([request])
    assert "rate-limiting" not in str(info.value)


def test_timeout_raises_backend_timeout_error(llama_chat_server) -> None:
    llm = OpenAILLM(base_url=llama_chat_server.base_url, api_key_env=None, timeout=0.05, max_retries=1,
                    backoff_s=0.05)
    with pytest.raises(BackendTimeoutError, match=r"timed out after 0.05 s \(2 attempts\).*Raise `timeout`"):
        llm.complete("Write a long story about the sea.", max_tokens=64)


def test_missing_api_key_for_openai_itself_is_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAGKIT_TEST_NO_SUCH_KEY", raising=False)
    llm = OpenAILLM(api_key_env="RAGKIT_TEST_NO_SUCH_KEY")
    with pytest.raises(BackendError, match="RAGKIT_TEST_NO_SUCH_KEY is not set"):
        llm.complete("hi")
    assert "RAGKIT_TEST_NO_SUCH_KEY" not in str(llm.identity)   # key names never reach cache keys


def test_parallel_requests_overlap_on_the_real_server(llama_chat_server) -> None:
    # Speed is a benchmark's business (a wall-time assertion fails on a loaded 2-core machine); what this
    # checks is the behaviour: with concurrency 8 the requests are in flight together, with 1 one at a time.
    requests = [GenerationRequest.chat(f"Write one sentence about the number {i}.", max_tokens=24) for i in range(8)]
    timings, peaks = {}, {}
    for concurrency in (1, 8):
        llm = OpenAILLM(base_url=llama_chat_server.base_url, api_key_env=None, concurrency=concurrency, timeout=120)
        llm.generate(requests[:1])                                 # connection and server warm-up
        in_flight, peak, lock = [0], [0], threading.Lock()
        one = llm._generate_one

        def counted(request, scopes, one=one, in_flight=in_flight, peak=peak, lock=lock):
            with lock:
                in_flight[0] += 1
                peak[0] = max(peak[0], in_flight[0])
            try:
                return one(request, scopes)
            finally:
                with lock:
                    in_flight[0] -= 1

        llm._generate_one = counted
        start = time.perf_counter()
        out = llm.generate(requests)
        timings[concurrency], peaks[concurrency] = time.perf_counter() - start, peak[0]
        assert len(out) == 8 and all(c.text for c in out)
    print(f"8 requests on 2 server processes: sequential {timings[1]:.2f} s, concurrency 8 {timings[8]:.2f} s")
    assert peaks[1] == 1
    assert peaks[8] > 1, "with concurrency 8 no two requests were ever in flight together"
