"""Per-model generation defaults (issue 23.5): resolution, application to requests, cache keys, the
transformers logits processors, and what the openai backend sends (to a real loopback HTTP server)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch
from pydantic import BaseModel

from ragkit.cache import CacheStore
from ragkit.llm.base import Completion, GenerationRequest, LLMBackend
from ragkit.llm.cached import CachedLLM
from ragkit.llm.generation import (
    FALLBACK_MAX_NEW_TOKENS,
    GenerationDefaults,
    apply_generation_defaults,
    model_generation_defaults,
    resolve_generation_defaults,
)
from ragkit.llm.llama_cpp_backend import LlamaCppLLM
from ragkit.llm.openai_backend import OpenAILLM
from ragkit.llm.transformers_backend import (
    GeneratedNoRepeatNGram,
    GeneratedRepetitionPenalty,
    TransformersLLM,
)


class Topic(BaseModel):
    topic: str


# ----------------------------------------------------------------- resolution
@pytest.mark.parametrize(("model", "source"), [
    ("smollm2-135m-instruct", "smollm2"),
    ("SmolLM2-135M-Instruct", "smollm2"),
    ("/data/models/smollm2-360m-instruct", "smollm2"),
    ("qwen2.5-coder-0.5b", "qwen"),
    ("Qwen/Qwen2.5-1.5B-Instruct", "qwen"),
    ("gpt-4o-mini", "none"),
    ("/data/models/my-finetune", "none"),
])
def test_model_family_matching(model: str, source: str) -> None:
    assert model_generation_defaults(model).source == source


def test_packaged_models_end_on_their_chat_templates_end_tokens() -> None:
    assert "<|im_end|>" in model_generation_defaults("smollm2-135m-instruct").stop
    qwen = model_generation_defaults("qwen2.5-coder-0.5b").stop
    assert "<|im_end|>" in qwen and "<|endoftext|>" in qwen
    smol = model_generation_defaults("smollm2-135m-instruct")
    assert smol.repetition_penalty > 1.0 and smol.max_new_tokens < FALLBACK_MAX_NEW_TOKENS


def test_overrides_replace_each_value_and_none_mode_has_nothing() -> None:
    smol = model_generation_defaults("smollm2-135m-instruct")
    over = resolve_generation_defaults("smollm2-135m-instruct", stop=[], repetition_penalty=1.0,
                                       no_repeat_ngram_size=5, max_new_tokens=40)
    assert (over.stop, over.repetition_penalty, over.no_repeat_ngram_size, over.max_new_tokens) == ((), 1.0, 5, 40)
    assert over.source == "smollm2+config"
    partial = resolve_generation_defaults("smollm2-135m-instruct", max_new_tokens=40)
    assert partial.stop == smol.stop and partial.repetition_penalty == smol.repetition_penalty
    off = resolve_generation_defaults("smollm2-135m-instruct", mode="none")
    assert off.is_empty and off.max_new_tokens == FALLBACK_MAX_NEW_TOKENS
    assert resolve_generation_defaults("gpt-4o", mode="none", repetition_penalty=1.2).repetition_penalty == 1.2
    with pytest.raises(ValueError, match="generation_defaults must be 'model'.*got 'on'"):
        resolve_generation_defaults("x", mode="on")  # type: ignore[arg-type]


# ----------------------------------------------------------------- requests
def test_apply_fills_unset_values_merges_stops_and_is_idempotent() -> None:
    d = GenerationDefaults(stop=("<|im_end|>",), repetition_penalty=1.3, no_repeat_ngram_size=6)
    req = GenerationRequest.chat("Why?", stop=("\n\n",))
    out = apply_generation_defaults(req, d)
    assert out.stop == ("\n\n", "<|im_end|>")
    assert (out.repetition_penalty, out.no_repeat_ngram_size) == (1.3, 6)
    assert apply_generation_defaults(out, d) == out
    own = apply_generation_defaults(GenerationRequest.chat("Why?", repetition_penalty=1.0, no_repeat_ngram_size=0), d)
    assert (own.repetition_penalty, own.no_repeat_ngram_size) == (1.0, 0)


def test_json_schema_prompt_requests_and_empty_defaults_keep_their_request_and_key() -> None:
    d = GenerationDefaults(stop=("<|im_end|>",), repetition_penalty=1.3)
    structured = GenerationRequest.chat("Topic?", json_schema=Topic)
    assert apply_generation_defaults(structured, d) is structured
    completion = GenerationRequest(prompt="1, 2, 3,")  # raw continuation: no chat template, no defaults
    assert apply_generation_defaults(completion, d) is completion
    plain = GenerationRequest.chat("Why?")
    assert apply_generation_defaults(plain, GenerationDefaults()) is plain
    # the new request fields stay out of the key when unset: keys from before the defaults are unchanged
    assert "repetition_penalty" not in plain.to_dict() and "no_repeat_ngram_size" not in plain.to_dict()
    assert apply_generation_defaults(plain, d).to_dict()["repetition_penalty"] == 1.3


def test_request_validates_the_new_fields() -> None:
    with pytest.raises(ValueError, match="repetition_penalty must be > 0.*got 0"):
        GenerationRequest.chat("x", repetition_penalty=0)
    with pytest.raises(ValueError, match="no_repeat_ngram_size must be >= 0.*got -1"):
        GenerationRequest.chat("x", no_repeat_ngram_size=-1)


class Recording(LLMBackend):
    """Answers with the settings it received, so a cache hit from another setting would show."""

    def __init__(self, *, defaults: GenerationDefaults | None = None) -> None:
        self.defaults = defaults
        self.seen: list[GenerationRequest] = []

    @property
    def identity(self) -> dict:
        return {"type": "recording"}  # the same for both settings: only the request keys tell them apart

    def default_generation(self) -> GenerationDefaults:
        return self.defaults or GenerationDefaults()

    def generate(self, requests):
        requests = [self.prepare_request(r) for r in requests]
        self.seen += requests
        return [Completion(text=f"rp={r.repetition_penalty} stop={list(r.stop)}") for r in requests]


def test_cache_never_answers_one_setting_from_the_others_entries(tmp_path) -> None:
    store = CacheStore(tmp_path / "c.sqlite")
    request = GenerationRequest.chat("Why do answers loop?")
    old = CachedLLM(inner=Recording(), store=store)
    new = CachedLLM(inner=Recording(defaults=model_generation_defaults("smollm2-135m-instruct")), store=store)
    first = old.generate([request])[0]
    second = new.generate([request])[0]
    assert new.cache_hits == 0 and new.backend_calls == 1
    smol = model_generation_defaults("smollm2-135m-instruct")
    assert first.text == "rp=None stop=[]"
    assert second.text == f"rp={smol.repetition_penalty} stop={list(smol.stop)}"
    again = CachedLLM(inner=Recording(defaults=model_generation_defaults("smollm2-135m-instruct")), store=store)
    assert again.generate([request])[0].text == second.text and again.cache_hits == 1 and again.backend_calls == 0
    assert again.prepare_request(request).repetition_penalty == new.default_generation().repetition_penalty


# ----------------------------------------------------------------- transformers backend (no model loaded)
def test_transformers_config_overrides_and_identity_stability() -> None:
    llm = TransformersLLM(model="smollm2-135m-instruct", device="cpu")
    assert llm.default_generation() == model_generation_defaults("smollm2-135m-instruct")
    assert llm.identity["repetition_penalty"] == 1.0 and "penalty_scope" not in llm.identity
    tuned = TransformersLLM(model="smollm2-135m-instruct", device="cpu", stop=["\n\n"], repetition_penalty=1.1,
                            no_repeat_ngram_size=4, max_new_tokens=96)
    d = tuned.default_generation()
    assert (d.stop, d.repetition_penalty, d.no_repeat_ngram_size, d.max_new_tokens) == (("\n\n",), 1.1, 4, 96)
    assert tuned.identity["penalty_scope"] == "generated"
    assert TransformersLLM(generation_defaults="none", device="cpu").default_generation().is_empty


def test_repetition_penalty_touches_generated_tokens_only_and_never_the_end_tokens() -> None:
    # vocabulary of 6; prompt = [4, 5] (width 2), generated: row 0 -> [1, 2], row 1 -> [1, 3]
    ids = torch.tensor([[4, 5, 1, 2], [4, 5, 1, 3]])
    scores = torch.tensor([[2.0, 2.0, 2.0, 2.0, 2.0, 2.0], [2.0, -2.0, 2.0, 2.0, 2.0, 2.0]])
    out = GeneratedRepetitionPenalty([2.0, 1.0], prompt_length=2, exempt={2})(ids, scores)
    assert out[0].tolist() == [2.0, 1.0, 2.0, 2.0, 2.0, 2.0]  # 1 penalised; 2 exempt; prompt ids 4, 5 untouched
    assert out[1].tolist() == scores[1].tolist()                 # penalty 1.0: row untouched
    neg = GeneratedRepetitionPenalty([2.0], prompt_length=0, exempt=set())(torch.tensor([[1]]),
                                                                            torch.tensor([[0.0, -2.0]]))
    assert neg.tolist() == [[0.0, -4.0]]


def test_no_repeat_ngram_bans_only_generated_repeats() -> None:
    # prompt [7, 8, 7] must not ban anything; generated [1, 2, 3, 1, 2]: the 3-gram (1, 2, 3) would repeat
    ids = torch.tensor([[7, 8, 7, 1, 2, 3, 1, 2]])
    out = GeneratedNoRepeatNGram([3], prompt_length=3, exempt=set())(ids, torch.zeros(1, 9))
    assert [i for i, v in enumerate(out[0].tolist()) if v == float("-inf")] == [3]
    kept = GeneratedNoRepeatNGram([3], prompt_length=3, exempt={3})(ids, torch.zeros(1, 9))
    assert torch.isfinite(kept).all()
    assert torch.isfinite(GeneratedNoRepeatNGram([0], prompt_length=3, exempt=set())(ids, torch.zeros(1, 9))).all()


def test_llama_cpp_has_the_same_defaults_without_ngram_ban() -> None:
    d = LlamaCppLLM().default_generation()
    smol = model_generation_defaults("smollm2-135m-instruct")
    assert d == replace(smol, no_repeat_ngram_size=0)
    assert LlamaCppLLM(generation_defaults="none").default_generation().is_empty


# ----------------------------------------------------------------- openai backend against a loopback server
@pytest.fixture
def bodies() -> Iterator[tuple[str, list[dict]]]:
    seen: list[dict] = []
    reply = {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
             "choices": [{"index": 0, "finish_reason": "stop",
                          "message": {"role": "assistant", "content": '{"topic": "loops"}'}}],
             "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            seen.append(json.loads(self.rfile.read(int(self.headers.get("content-length", 0)))))
            body = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_openai_backend_sends_the_models_defaults(bodies) -> None:
    url, seen = bodies
    llm = OpenAILLM(model="smollm2-135m-instruct", base_url=url, max_retries=0, concurrency=1)
    llm.generate([GenerationRequest.chat("Why?"), GenerationRequest.chat("Topic?", json_schema=Topic)])
    smol = model_generation_defaults("smollm2-135m-instruct")
    free, structured = seen
    assert free["stop"] == list(smol.stop)
    assert free["repeat_penalty"] == free["repetition_penalty"] == smol.repetition_penalty
    assert not {"stop", "repeat_penalty", "repetition_penalty"} & set(structured)


def test_openai_backend_overrides_and_none(bodies) -> None:
    url, seen = bodies
    OpenAILLM(model="smollm2", base_url=url, max_retries=0, generation_defaults="none").complete("Why?")
    OpenAILLM(model="smollm2", base_url=url, max_retries=0, repetition_penalty=1.15,
              repetition_penalty_field="repeat_penalty", frequency_penalty=0.4, stop=["\n\n"]).complete("Why?")
    OpenAILLM(model="my-server-model", base_url=url, max_retries=0).complete("Why?")
    off, tuned, unknown = seen
    assert not {"stop", "repeat_penalty", "repetition_penalty", "frequency_penalty"} & set(off)
    assert tuned["stop"] == ["\n\n"] and tuned["repeat_penalty"] == 1.15 and tuned["frequency_penalty"] == 0.4
    assert "repetition_penalty" not in tuned
    assert not {"stop", "repeat_penalty", "repetition_penalty"} & set(unknown)


def test_openai_official_endpoint_gets_no_multiplicative_penalty() -> None:
    llm = OpenAILLM(model="gpt-4o-mini", repetition_penalty=1.2)
    llm.connection_ = type("C", (), {"official": staticmethod(lambda: True)})()
    assert llm._penalty_fields(1.2) == {}
    llm.connection_ = type("C", (), {"official": staticmethod(lambda: False)})()
    assert llm._penalty_fields(1.2) == {"repeat_penalty": 1.2, "repetition_penalty": 1.2}
