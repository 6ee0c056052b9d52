"""Config validation rejects a stage whose LLM needs are not met, naming stage, backend and capability."""

from __future__ import annotations

import pytest

from ragkit.config.load import load_config
from ragkit.errors import ConfigError


def config(llm: dict, chunker: dict) -> dict:
    return {"backends": {"llm": {"small": llm}, "embeddings": {"default": {"type": "fake"}}},
            "index": {"chunker": chunker, "retriever": {"type": "bm25"}},
            "query": {"aggregator": {"type": "stuff", "llm": "small"}}}


def test_perplexity_chunker_on_a_backend_without_token_logprobs_is_rejected() -> None:
    bad = config({"type": "fake", "supported": ["generate"]}, {"type": "perplexity", "llm": "small"})
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    message = str(err.value)
    assert "index.chunker.llm" in message                  # the stage's slot
    assert "perplexity needs capability 'token_logprobs'" in message
    assert "backend 'small' (fake)" in message and "supports only: generate" in message


def test_openai_backend_capabilities_follow_its_settings() -> None:
    openai = {"type": "openai", "base_url": "http://127.0.0.1:9/v1", "api_key_env": None}
    with pytest.raises(ConfigError, match=r"perplexity needs capability 'token_logprobs', but backend 'small' \(openai\)"):
        load_config(config(openai, {"type": "perplexity", "llm": "small"}))
    load_config(config({**openai, "prompt_logprobs": True}, {"type": "perplexity", "llm": "small"}))
    with pytest.raises(ConfigError, match="margin needs capability 'next_token_probs'"):
        load_config(config({**openai, "output_logprobs": False}, {"type": "margin", "llm": "small"}))


def test_inline_backend_is_checked_too() -> None:
    bad = config({"type": "fake"}, {"type": "margin", "llm": {"type": "fake", "supported": ["generate"]}})
    with pytest.raises(ConfigError, match="margin needs capability 'next_token_probs'"):
        load_config(bad)
