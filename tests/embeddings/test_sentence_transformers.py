"""The sentence-transformers embedder with the real packaged MiniLM: vectors, order, truncation, and the
embedding cache wrapper (``CachedEmbedder``) around it, as a pipeline builds it."""

from __future__ import annotations

import uuid
import warnings

import numpy as np
import pytest

from ragkit.cache import default_cache
from ragkit.embeddings.cached import CachedEmbedder
from ragkit.embeddings.sentence_transformers import SentenceTransformerEmbedder, TruncationWarning
from ragkit.errors import BackendError, ConfigError, DocumentError
from ragkit.usage import usage_scope


@pytest.fixture(scope="module")
def embedder():
    emb = CachedEmbedder(inner=SentenceTransformerEmbedder(model="minilm", batch_size=4))
    emb.warm_up()
    return emb


def sibling(embedder: CachedEmbedder, **params) -> CachedEmbedder:
    """Another (cache-wrapped) embedder sharing ``embedder``'s loaded model (loading MiniLM again takes seconds)."""
    other = SentenceTransformerEmbedder(**params)
    other.__dict__.update(model_=embedder.model_, max_seq_length_=embedder.max_seq_length_, _warmed=True)
    return CachedEmbedder(inner=other)


def fresh(text: str) -> str:
    """A text no earlier test embedded (so the cache misses)."""
    return f"{text} [{uuid.uuid4().hex[:8]}]"


def test_constructor_does_no_io():
    emb = CachedEmbedder(inner=SentenceTransformerEmbedder())
    assert not hasattr(emb, "model_") and emb.model == "minilm" and emb.device == "auto"


def test_vectors_are_normalised_and_semantic(embedder):
    vectors = embedder.embed_documents(["A cat sits on the mat.", "A kitten rests on a rug.",
                                        "Quarterly revenue grew by ten percent."])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3
    assert embedder.get_dimension() == 384
    assert embedder.resolved_device() == "cpu" and embedder.precision == "fp32"


def test_length_sorted_batches_keep_input_order(embedder):
    texts = [fresh("short"), fresh("a much longer sentence " * 8), fresh("mid length text here"),
             fresh("x"), fresh("another fairly long sentence with several words " * 3)]
    batched = embedder.embed_documents(texts)  # batch_size 4: two batches, sorted by token length
    single = sibling(embedder, cache=False)
    one_by_one = np.stack([single.embed_documents([t])[0] for t in texts[:2]])
    np.testing.assert_allclose(batched[:2], one_by_one, atol=1e-5)
    for i, text in enumerate(texts):
        np.testing.assert_allclose(batched[i], embedder.embed_query(text), atol=1e-6)


def test_cache_serves_repeats_and_counts_only_model_runs(embedder):
    one = fresh("cache probe one")
    texts = [one, fresh("cache probe two"), one]
    with usage_scope() as first:
        a = embedder.embed_documents(texts)
    assert (first.embedding_calls, first.embedded_texts) == (1, 2)  # the duplicate is embedded once
    other = CachedEmbedder(inner=SentenceTransformerEmbedder(model="minilm"))  # new instance: the persistent cache answers
    with usage_scope() as second:
        b = other.embed_documents(texts)
    assert (second.embedding_calls, second.embedded_texts) == (0, 0)
    assert not hasattr(other, "model_"), "a fully cached call must not load the model"
    np.testing.assert_array_equal(a, b)
    with usage_scope() as partial:
        embedder.embed_documents([texts[0], fresh("cache probe three")])
    assert (partial.embedding_calls, partial.embedded_texts) == (1, 1)
    assert default_cache().count(embedder.namespace) >= 3


def test_cache_off_always_runs_the_model(embedder):
    text = fresh("uncached")
    no_cache = sibling(embedder, cache=False)
    for _ in range(2):
        with usage_scope() as u:
            no_cache.embed_documents([text])
        assert u.embedding_calls == 1
    assert default_cache().get(no_cache.namespace, __import__("hashlib").sha256(text.encode()).hexdigest()) is None


def test_truncation_warning(embedder):
    long_text = fresh("word " * 300)
    with pytest.warns(TruncationWarning, match=r"1 of 2 texts exceed the embedding model's limit of 256 word pieces"):
        embedder.embed_documents([long_text, fresh("short")])
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncationWarning)
        embedder.embed_documents([long_text])  # cached: the model does not run, nothing to warn about
        embedder.embed_documents([fresh("fits " * 100)])


def test_identity_and_aliases():
    a = SentenceTransformerEmbedder(model="minilm")
    b = SentenceTransformerEmbedder(model="sentence-transformers/all-MiniLM-L6-v2")
    assert a.identity == b.identity and a.namespace == b.namespace
    assert b.model_source() == a.model_source()  # the hub name maps to the packaged copy
    assert SentenceTransformerEmbedder(normalize=False).namespace != a.namespace


def test_errors(tmp_path):
    with pytest.raises(ConfigError, match="device: got 'tpu'"):
        SentenceTransformerEmbedder(device="tpu")
    with pytest.raises(ConfigError, match="model: got ''"):
        SentenceTransformerEmbedder(model="")
    with pytest.raises(DocumentError, match="item 1 is a int"):
        SentenceTransformerEmbedder().embed_documents(["ok", 3])  # type: ignore[list-item]
    (tmp_path / "weights.bin").write_bytes(b"x")
    with pytest.raises(ConfigError, match="is a file; give the model folder"):
        SentenceTransformerEmbedder(model=str(tmp_path / "weights.bin")).model_source()
    missing = SentenceTransformerEmbedder(model=str(tmp_path / "no-such-model"), cache=False)
    with pytest.raises(BackendError, match="cannot load model"):
        missing.embed_documents(["x"])


def test_fast_path_equals_sentence_transformers_encode_on_real_chunks(embedder, chroma_texts, monkeypatch):
    """The tokenise-once path (CPU here; the GPU adds buckets of 16 and tokenizer processes) gives the
    library's vectors: cosine >= 0.99999 on real chunks, including one longer than the model's window."""
    import ragkit.embeddings._fast_path as fast_path
    from ragkit.chunkers.recursive import RecursiveChunker
    from ragkit.types import Document

    doc = Document.from_text(chroma_texts["wikitexts"][:60_000])
    texts = [c.text for c in RecursiveChunker(max_tokens=200).chunk(doc)][:120] + ["word " * 400, "x"]
    inner = embedder.inner
    assert inner.plan_ is not None, "MiniLM (transformer + mean pooling + normalize) takes the fast path"
    reference = inner.model_.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    with pytest.warns(TruncationWarning):
        fast = inner.embed_documents(texts)
    assert float(np.min(np.sum(fast * reference, axis=1))) >= 0.99999
    monkeypatch.setattr(fast_path, "BLOCK", 32)  # several blocks, tokenised by two worker processes
    pooled = fast_path.embed_texts(inner.plan_, texts, device="cpu", rows=16, pad_to=16, normalize=True, workers=2)
    assert float(np.min(np.sum(pooled * reference, axis=1))) >= 0.99999
    pool = fast_path.tokenizer_pool(inner.plan_, 2)
    again = fast_path.embed_texts(inner.plan_, texts[:70], device="cpu", rows=16, pad_to=16, normalize=True, workers=2)
    assert fast_path.tokenizer_pool(inner.plan_, 2) is pool, "the tokenizer processes are started once, then reused"
    assert np.allclose(again, pooled[:70], atol=1e-6)


def test_tokenizer_processes_only_for_large_gpu_calls(monkeypatch):
    """Tokenizer processes feed a GPU on large calls only; CPU calls and small calls tokenise in a thread."""
    import ragkit.embeddings.sentence_transformers as st

    monkeypatch.setattr(st.os, "cpu_count", lambda: 16)
    pick = SentenceTransformerEmbedder._tokenizer_workers
    assert pick(10 * st.POOL_MIN_TEXTS, on_gpu=False) == 0
    assert pick(st.POOL_MIN_TEXTS - 1, on_gpu=True) == 0
    assert pick(st.POOL_MIN_TEXTS, on_gpu=True) == st.TOKENIZER_WORKERS
    monkeypatch.setattr(st.os, "cpu_count", lambda: 2 * st.TOKENIZER_WORKERS - 1)  # too few cores to spare
    assert pick(st.POOL_MIN_TEXTS, on_gpu=True) == 0
