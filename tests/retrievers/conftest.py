"""Fixtures for retriever tests: one real MiniLM embedder per session (loading it takes seconds)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def minilm():
    from ragkit.embeddings.sentence_transformers import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder(model="minilm", device="cpu")
    embedder.warm_up()
    return embedder
