"""CachedLLM: persistent cache (zero backend calls on a rerun), modes, concurrency, structured-output retries."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from pydantic import BaseModel

from ragkit.cache import CacheStore
from ragkit.errors import CapabilityError, StructuredOutputError
from ragkit.llm.base import GenerationRequest
from ragkit.llm.cached import CachedLLM, wrap_llm
from ragkit.pipeline import Pipeline
from ragkit.testing import FakeLLM
from ragkit.usage import usage_scope

REQUESTS = [GenerationRequest.chat(f"Question {i}?", max_tokens=8) for i in range(5)]
SEGMENTS = [["One sentence.", " Two sentences here."], ["Another document."]]


def run_everything(llm: CachedLLM) -> tuple:
    texts = [c.text for c in llm.generate(REQUESTS)]
    lps = llm.token_logprobs(SEGMENTS[0], max_context=64)
    batch = llm.token_logprobs_batch(SEGMENTS, max_context=64)
    probs = llm.next_token_probs(["p1", GenerationRequest.chat("p2", max_tokens=1)], ["1", "2"])
    return texts, lps, batch, probs


def test_second_identical_run_makes_zero_backend_calls(tmp_path: Path) -> None:
    store = CacheStore(tmp_path / "c.sqlite")
    first_backend = FakeLLM()
    with usage_scope() as first_usage:
        first = run_everything(CachedLLM(inner=first_backend, store=store))
    assert first_backend.calls > 0 and first_usage.llm_calls > 0

    second_backend = FakeLLM()                                  # a fresh process would look like this
    wrapped = CachedLLM(inner=second_backend, store=store)
    with usage_scope() as second_usage:
        second = run_everything(wrapped)
    assert second_backend.calls == 0 and wrapped.backend_calls == 0
    assert second_usage.llm_calls == 0 and second_usage.prompt_tokens == 0
    assert second_usage.cached_calls == len(REQUESTS) + 1 + 2 + 2
    assert first[0] == second[0]
    for a, b in zip(first[1], second[1]):
        np.testing.assert_array_equal(a, b)                     # NaN of the first token survives the round trip
    np.testing.assert_array_equal(first[3], second[3])
    assert all(c.cached for c in wrapped.generate(REQUESTS[:2]))


def test_key_covers_request_settings_template_version_and_backend_identity(tmp_path: Path) -> None:
    store = CacheStore(tmp_path / "c.sqlite")
    base = GenerationRequest.chat("Same words.", max_tokens=8)
    variants = [base, GenerationRequest.chat("Same words.", max_tokens=9),
                GenerationRequest.chat("Same words.", max_tokens=8, template_version="qa@2"),
                GenerationRequest.chat("Same words.", max_tokens=8, json_schema={"type": "object"})]
    llm = CachedLLM(inner=FakeLLM(), store=store)
    llm.generate(variants)
    assert llm.backend_requests == 4 and store.count("llm") == 4
    other_model = CachedLLM(inner=FakeLLM(model="other"), store=store)
    other_model.generate([base])
    assert other_model.backend_calls == 1


def test_modes_read_only_and_off(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite"
    CachedLLM(inner=FakeLLM(), store=CacheStore(path)).generate(REQUESTS[:2])
    read_only = CachedLLM(inner=FakeLLM(), store=CacheStore(path, mode="read_only"))
    read_only.generate(REQUESTS[:3])
    assert read_only.cache_hits == 2 and read_only.backend_requests == 1
    assert CacheStore(path).count("llm") == 2                    # read_only never writes
    off = CachedLLM(inner=FakeLLM(), store=CacheStore(path, mode="off"))
    off.generate(REQUESTS[:2])
    assert off.cache_hits == 0 and off.backend_requests == 2


def test_stochastic_requests_are_not_cached(tmp_path: Path) -> None:
    llm = CachedLLM(inner=FakeLLM(), store=CacheStore(tmp_path / "c.sqlite"))
    sampled = GenerationRequest.chat("Tell a story.", temperature=0.8)
    seeded = GenerationRequest.chat("Tell a story.", temperature=0.8, seed=7)
    out = llm.generate([sampled, seeded])
    assert out[0].extra["stochastic"] is True and "stochastic" not in out[1].extra
    llm.generate([sampled, seeded])
    assert llm.cache_hits == 1 and llm.backend_requests == 3


class Answer(BaseModel):
    answer: int


def test_invalid_structured_output_is_retried_with_the_error(tmp_path: Path) -> None:
    inner = FakeLLM(mode="scripted", responses=["sure! the answer is 4", '{"answer": 4}'])
    llm = CachedLLM(inner=inner, store=CacheStore(tmp_path / "c.sqlite"))
    completion = llm.generate([GenerationRequest.chat("2+2?", json_schema=Answer, max_tokens=16)])[0]
    assert completion.parse(Answer).answer == 4 and completion.extra["attempts"] == 2
    retry = inner.seen[1]
    assert [m["role"] for m in retry.messages] == ["user", "assistant", "user"]
    assert "not valid JSON" in retry.messages[-1]["content"] and '"answer"' in retry.messages[-1]["content"]


def test_structured_output_error_after_bounded_retries_carries_raw_text(tmp_path: Path) -> None:
    inner = FakeLLM(mode="fixed", responses=['{"answer": "four"}'])
    llm = CachedLLM(inner=inner, store=CacheStore(tmp_path / "c.sqlite"), structured_retries=2)
    ok = GenerationRequest.chat("fine", max_tokens=4)
    bad = GenerationRequest.chat("2+2?", json_schema=Answer, max_tokens=16)
    with pytest.raises(StructuredOutputError, match=r"after 3 attempt\(s\).*answer.*'four' is not of type 'integer'") as err:
        llm.generate([ok, bad])
    assert err.value.raw == '{"answer": "four"}'
    assert inner.calls == 4                                     # 2 first + 2 retries, bounded
    llm.generate([ok])                                          # the valid answer of the failed batch was cached
    assert inner.calls == 4


def test_capabilities_pass_through_and_missing_ones_raise() -> None:
    llm = wrap_llm(FakeLLM(supported=["generate"]))
    assert llm.supports("generate") and not llm.supports("token_logprobs")
    with pytest.raises(CapabilityError, match="does not support 'token_logprobs'"):
        llm.token_logprobs(["a b"])
    assert wrap_llm(llm) is llm


def test_pipeline_wraps_every_llm_backend() -> None:
    pipe = Pipeline.from_config({"backends": {"llm": {"default": {"type": "fake"}, "other": {"type": "fake"}},
                                              "embeddings": {"default": {"type": "fake"}}}})
    assert isinstance(pipe.backend("llm", "default"), CachedLLM)
    assert isinstance(pipe.backend("llm", {"type": "fake", "model": "inline"}), CachedLLM)
    assert pipe.backend("llm", "default").calls == 0           # attributes of the inner backend stay reachable


def _writer(path: str, worker: int, n: int) -> None:
    llm = CachedLLM(inner=FakeLLM(), store=CacheStore(path))
    for start in range(0, n, 5):                                # overlapping keys across workers, many transactions
        requests = [GenerationRequest.chat(f"q{(i + worker * 7) % n}", max_tokens=4) for i in range(start, start + 5)]
        llm.generate(requests)
        llm.token_logprobs([f"segment {worker} {start}", " more"])


def test_concurrent_writers_do_not_corrupt_the_cache(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.sqlite")
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(path, w, 40)) for w in range(4)]
    for p in workers:
        p.start()
    for p in workers:
        p.join(timeout=300)
    assert [p.exitcode for p in workers] == [0, 0, 0, 0]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store = CacheStore(path)
    assert store.count("llm") == 40 + 4 * 8                     # 40 distinct requests + 8 scoring calls per worker
    reader = CachedLLM(inner=FakeLLM(), store=store)
    reader.generate([GenerationRequest.chat(f"q{i}", max_tokens=4) for i in range(40)])
    assert reader.backend_calls == 0


def test_real_model_scoring_is_served_from_cache_the_second_time(smollm, tmp_path: Path) -> None:
    store = CacheStore(tmp_path / "c.sqlite")
    first = CachedLLM(inner=smollm, store=store).token_logprobs(["The cat sat.", " It slept."])
    again = CachedLLM(inner=smollm, store=store)
    second = again.token_logprobs(["The cat sat.", " It slept."])
    assert again.backend_calls == 0
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
