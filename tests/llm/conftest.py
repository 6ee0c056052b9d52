"""Fixtures for the LLM layer: loopback llama.cpp servers (the real SmolLM2 ``smollm`` is in tests/conftest.py)."""

from __future__ import annotations

import pytest


def _require_llama_server() -> None:
    try:
        import llama_cpp.server  # noqa: F401
    except ImportError as exc:
        pytest.fail(f"llama-cpp-python[server] is not importable ({exc}). These tests run the openai backend "
                    "against a real llama.cpp server on loopback: run scripts/build_llama_cpp.sh once "
                    "(builds and caches the wheel with the AMX-safe flags from OFFLINE.md), then re-run.")


@pytest.fixture(scope="session")
def llama_chat_server(request: pytest.FixtureRequest):
    """llama.cpp's OpenAI-compatible server (2 worker processes) serving SmolLM2 for chat/completions."""
    _require_llama_server()
    from ragkit.llm.llama_server import shared_server, stop_shared

    request.addfinalizer(stop_shared)
    return shared_server("chat")


@pytest.fixture(scope="session")
def llama_embedding_server(request: pytest.FixtureRequest):
    """A second llama.cpp server instance with ``embedding=True`` (mean pooling)."""
    _require_llama_server()
    from ragkit.llm.llama_server import shared_server, stop_shared

    request.addfinalizer(stop_shared)
    return shared_server("embedding")
