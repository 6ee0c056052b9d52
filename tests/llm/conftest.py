"""Fixtures for the LLM layer: the real SmolLM2 through transformers and loopback llama.cpp servers."""

from __future__ import annotations

import os

import pytest


def torch_threads() -> int | None:
    """Intra-op threads for the real-model tests.

    ``RAGKIT_TORCH_THREADS`` wins; otherwise 1 when the CPU is already busier than its core count
    (oversubscribed torch threads wait on each other and run several times slower), else torch's default.
    """
    if os.environ.get("RAGKIT_TORCH_THREADS"):
        return int(os.environ["RAGKIT_TORCH_THREADS"])
    if os.getloadavg()[0] > (os.cpu_count() or 1):
        return 1
    return None


@pytest.fixture(scope="session")
def smollm():
    """The packaged SmolLM2-135M-Instruct through transformers (prepared on first use), on CPU."""
    from ragkit.llm.transformers_backend import TransformersLLM

    llm = TransformersLLM(device="cpu", num_threads=torch_threads())
    llm.warm_up()
    return llm


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
