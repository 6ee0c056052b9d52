"""Shared fixtures (the isolated ``RAGKIT_HOME`` is set up by the repository's root ``conftest.py``)."""

from __future__ import annotations

import os

import pytest
from _shared_data import CHROMA, CHROMA_CORPORA


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


@pytest.fixture
def fresh_registry():
    from ragkit.registry import Registry

    return Registry()


@pytest.fixture(scope="session")
def chroma_texts() -> dict[str, str]:
    return {name: (CHROMA / f"{name}.md").read_text(encoding="utf-8") for name in CHROMA_CORPORA}


# One real model of each kind per session, shared by every folder's tests (loading one takes seconds on a
# busy machine; a test that needs other settings builds its own). Tests must not change them: a test that
# flips an attribute restores it (see tests/llm/test_transformers_prefix_reuse.py).
@pytest.fixture(scope="session")
def smollm():
    """The packaged SmolLM2-135M-Instruct through transformers (prepared on first use), on CPU, unwrapped."""
    from ragkit.llm.transformers_backend import TransformersLLM

    llm = TransformersLLM(device="cpu", num_threads=torch_threads())
    llm.warm_up()
    return llm


@pytest.fixture(scope="session")
def minilm():
    """The packaged MiniLM sentence embedder on CPU, unwrapped (no vector cache)."""
    from ragkit.embeddings.sentence_transformers import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder(model="minilm", device="cpu")
    embedder.warm_up()
    return embedder
