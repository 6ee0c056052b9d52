"""OpenAIEmbedder against a real llama.cpp server (embedding=True) on loopback."""

from __future__ import annotations

import numpy as np
import pytest

from ragkit.embeddings.openai import OpenAIEmbedder
from ragkit.errors import BackendError
from ragkit.llm.llama_server import free_port
from ragkit.usage import usage_scope

pytestmark = [pytest.mark.slow, pytest.mark.server]


@pytest.fixture(scope="module")
def embedding_server(request: pytest.FixtureRequest):
    try:
        import llama_cpp.server  # noqa: F401
    except ImportError as exc:
        pytest.fail(f"llama-cpp-python[server] is not importable ({exc}): run scripts/build_llama_cpp.sh once, "
                    "then re-run (the embedder is tested against a real llama.cpp server)")
    from ragkit.llm.llama_server import shared_server, stop_shared

    request.addfinalizer(stop_shared)
    return shared_server("embedding")


TEXTS = ["The cat sleeps on the warm sofa.", "A kitten naps on the couch.", "Quarterly revenue rose by 4 percent.",
         "Interest rates were left unchanged.", ""]


def test_embeddings_are_normalised_rows_in_input_order(embedding_server) -> None:
    embedder = OpenAIEmbedder(base_url=embedding_server.base_url, model="smollm2-135m-instruct", api_key_env=None,
                              batch_size=2, concurrency=2)
    with usage_scope() as usage:
        vectors = embedder.embed_documents(TEXTS)
    assert vectors.shape == (5, 576) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert usage.embedding_calls == 3 and usage.embedded_texts == 5          # batches of 2 → 3 requests
    one_by_one = np.stack([embedder.embed_query(t) for t in TEXTS[:3]])
    np.testing.assert_allclose(one_by_one, vectors[:3], atol=1e-4)             # order kept across threads
    sims = vectors[:4] @ vectors[:4].T
    assert sims[0, 1] > sims[0, 2] and sims[2, 3] > sims[1, 3]                # related texts are closer
    assert embedder.get_dimension() == 576


def test_unreachable_embeddings_server_is_a_clear_error() -> None:
    port = free_port()
    embedder = OpenAIEmbedder(base_url=f"http://127.0.0.1:{port}/v1", api_key_env=None, max_retries=1, backoff_s=0.05)
    with pytest.raises(BackendError, match=rf"cannot reach the server at http://127.0.0.1:{port}/v1 .*after 2 attempts"):
        embedder.embed_documents(["x"])


def test_identity_and_params_never_hold_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAGKIT_TEST_EMBED_KEY", "sk-secret")
    embedder = OpenAIEmbedder(base_url="http://127.0.0.1:9/v1", api_key_env="RAGKIT_TEST_EMBED_KEY")
    assert "sk-secret" not in repr(embedder.get_params()) and "sk-secret" not in embedder.identity


def test_a_pipeline_caches_the_openai_embedder_like_any_other(embedding_server) -> None:
    from ragkit import Pipeline

    pipe = Pipeline.from_config({
        "backends": {"llm": {"default": {"type": "fake"}},
                     "embeddings": {"default": {"type": "openai", "base_url": embedding_server.base_url,
                                                "model": "smollm2-135m-instruct", "api_key_env": None}}},
        "index": {"store": ":memory:", "retriever": {"type": "dense"}}})
    texts = ["The cache serves repeated texts.", "A second distinct text for the server."]
    with usage_scope() as first:
        a = pipe.embedder.embed_documents(texts)
    with usage_scope() as second:
        b = pipe.embedder.embed_documents(texts)
    assert type(pipe.embedder).__name__ == "CachedEmbedder"
    assert first.embedding_calls >= 1 and second.embedding_calls == 0, "repeats must not reach the server"
    np.testing.assert_array_equal(a, b)
