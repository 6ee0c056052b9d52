"""Token ids travel from the chunker to the embedder (issue 15): real corpora, the real MiniLM, the real chunkers.

The chunker's ids must be exactly what the tokenizer gives for each chunk text; the embedder fed
with them must give ``SentenceTransformer.encode``'s vectors (cosine >= 0.99999), for plain chunk
texts and for ``prefix_fusion``'s prefixed texts; a chunker counting with another tokenizer must not
be trusted (the embedder tokenises); the index phase must hand the ids over, in this process and
from chunking worker processes.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from ragkit.chunkers._split import BLANK_LINE, CascadePacker, RegexCuts, SentenceCuts, TokenView, finalize
from ragkit.chunkers.recursive import RecursiveChunker
from ragkit.chunkers.token import TokenChunker
from ragkit.embeddings.sentence_transformers import SentenceTransformerEmbedder, TruncationWarning
from ragkit.pipeline import Pipeline
from ragkit.retrievers.metadata_views import PrefixFusionView
from ragkit.text import token_ids
from ragkit.text.tokenizers import WordPieceTokenizer, get_tokenizer, minilm_tokenizer_path
from ragkit.types import Document

MIXED = ("Café naïve résumé — 東京タワー 😀 e\u0301cole\u00a0tab\there\n\n"
         "Straße ΑΒΓ «quoted» 1,234.56 % [CLS] ok\u200bzero-width " * 40)


@pytest.fixture(scope="module")
def embedder():
    emb = SentenceTransformerEmbedder(model="minilm", batch_size=32, cache=False, show_progress=False)
    emb.warm_up()
    return emb


def _docs(chroma_texts, chars: int) -> list[Document]:
    return [Document.from_text(text[:chars], source_id=name) for name, text in chroma_texts.items()]


def _chunk(chunker, docs):
    table = token_ids.TokenIds()
    with token_ids.using(table):
        chunks = [c for result in chunker.chunk_many(docs) for c in result]
    return chunks, table


def _min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.min(np.sum(a * b, axis=1)))


@pytest.mark.parametrize(("chunker", "share"), [
    (RecursiveChunker(max_tokens=200), 0.95), (RecursiveChunker(max_tokens=64, overlap_tokens=16), 0.95),
    (TokenChunker(max_tokens=50), 0.6),  # windows cut inside words are left to the embedder
], ids=["recursive200", "recursive64-overlap", "token50"])
def test_chunker_ids_are_exactly_the_tokenizers_ids_on_every_real_corpus(chroma_texts, chunker, share):
    tok = get_tokenizer("minilm")
    docs = [*_docs(chroma_texts, 400_000), Document.from_text(MIXED)]
    chunks, table = _chunk(chunker, docs)
    handed = 0
    for chunk in chunks:
        entry = table.lookup(tok.fingerprint, chunk.text)
        if entry is None:
            continue
        handed += 1
        assert entry[0] is None
        assert entry[1].tolist() == tok.encode(chunk.text), chunk.text[:80]
    assert handed >= share * len(chunks), f"only {handed} of {len(chunks)} chunks came with ids"
    assert table.lookup(tok.fingerprint, MIXED[:40]) is None  # nothing but chunk texts


def test_no_ids_are_recorded_outside_the_index_phase(chroma_texts):
    chunks = RecursiveChunker(max_tokens=128).chunk(Document.from_text(chroma_texts["finance"][:20_000]))
    assert chunks and token_ids.active() is None  # recording is off: same chunks, nothing kept


def test_ids_from_the_chunker_give_sentence_transformers_vectors_on_real_chunks(embedder, chroma_texts):
    """CI's equality check of the new path: chunker ids -> embedder vs ``SentenceTransformer.encode``.

    ``max_tokens=300`` lets chunks exceed MiniLM's 256-piece window, so the model-side truncation of
    handed-over ids is compared too.
    """
    docs = [*_docs(chroma_texts, 10_000), Document.from_text(MIXED[:4000])]
    chunks, table = _chunk(RecursiveChunker(max_tokens=300), docs)
    texts = [c.text for c in chunks]
    assert any(c.token_count > 254 for c in chunks), "some chunk must exceed the model's window"
    reference = embedder.model_.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    with token_ids.using(table), pytest.warns(TruncationWarning, match="exceed the embedding model's limit"):
        vectors = embedder.embed_documents(texts)
    assert table.served >= 0.95 * len(texts)
    assert _min_cosine(vectors, reference) >= 0.99999


def test_prefix_fusion_tokenises_only_the_prefix_and_gives_the_same_vectors(embedder, chroma_texts):
    chunks, table = _chunk(RecursiveChunker(max_tokens=250), _docs(chroma_texts, 8_000))
    meta = [{"intent": "How-To", "content_type": "Procedural", "entities": ["Federal Reserve", "東京", "Café"],
             "keywords": ["inflation", "rates"], "question": "What did the speaker say about this part?"},
            {"content_type": "Reference"}, {}]
    chunks = [c.with_metadata(llm=meta[i % len(meta)]) for i, c in enumerate(chunks)]
    view = PrefixFusionView()
    with token_ids.using(table):
        texts = view.chunk_texts(chunks)
    assert sum(t != c.text for t, c in zip(texts, chunks)) >= len(chunks) // 2
    reference = embedder.model_.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    with token_ids.using(table), warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncationWarning)  # long chunks plus a prefix pass the window
        vectors = embedder.embed_documents(texts)
    assert table.served == len(texts)  # every prefixed text found: only the prefixes were tokenised
    assert _min_cosine(vectors, reference) >= 0.99999


def _cased_tokenizer(tmp_path) -> WordPieceTokenizer:
    """MiniLM's WordPiece with lower-casing off: another tokenizer (other ids for capitalised words)."""
    spec = json.loads(minilm_tokenizer_path().read_text(encoding="utf-8"))
    spec["normalizer"]["lowercase"] = False
    path = tmp_path / "tokenizer.json"
    path.write_text(json.dumps(spec), encoding="utf-8")
    return WordPieceTokenizer("minilm-cased", path)


def test_a_chunker_with_another_tokenizer_is_not_trusted(embedder, chroma_texts, tmp_path):
    cased = _cased_tokenizer(tmp_path)
    minilm = get_tokenizer("minilm")
    assert cased.fingerprint != minilm.fingerprint
    doc = Document.from_text(chroma_texts["state_of_the_union"][:15_000])
    table = token_ids.TokenIds()
    with token_ids.using(table):
        view = TokenView(doc.text, cased)  # inside the index phase's channel: the view keeps the ids
        spans = CascadePacker(view, [RegexCuts(BLANK_LINE), SentenceCuts()], max_tokens=120).split()
        chunks = finalize(doc, view, spans, max_tokens=120)
    texts = [c.text for c in chunks]
    cased_ids = [table.lookup(cased.fingerprint, t) for t in texts]
    assert all(e is not None for e in cased_ids)
    assert any(e[1].tolist() != minilm.encode(t) for e, t in zip(cased_ids, texts)), "the cased ids must differ"
    reference = embedder.model_.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
    with token_ids.using(table):
        vectors = embedder.embed_documents(texts)
    assert table.served == 0  # another fingerprint: every text tokenised by the embedder
    assert _min_cosine(vectors, reference) >= 0.99999
    # the same ids filed under the embedder's own fingerprint are taken as given (so the check above matters)
    trusted = token_ids.TokenIds()
    for text, entry in zip(texts, cased_ids):
        trusted.add(minilm.fingerprint, text, entry[1])
    with token_ids.using(trusted):
        taken = embedder.embed_documents(texts)
    assert trusted.served == len(texts) and _min_cosine(taken, reference) < 0.999


@pytest.mark.parametrize("workers", [1, 2])
def test_the_index_phase_hands_the_chunker_ids_to_the_embedder(chroma_texts, workers):
    docs = [Document.from_text(text[i:i + 4_000], source_id=f"{name}:{i}")
            for name, text in chroma_texts.items() for i in range(0, 12_000, 4_000)]
    pipe = Pipeline.from_config({
        "backends": {"llm": {"default": {"type": "fake"}},
                     "embeddings": {"default": {"type": "sentence_transformers", "model": "minilm",
                                                "show_progress": False}}},
        "cache": {"mode": "off"},
        "engine": {"type": "local", "workers": workers, "parallel_min_chars": 0},
        "index": {"chunker": {"type": "recursive", "max_tokens": 128}, "retriever": {"type": "dense"},
                  "store": ":memory:"}})
    report = pipe.index_documents(docs)
    assert report.chunks > 50
    assert report.token_ids_used >= 0.95 * report.chunks
    chunks = pipe.retriever.chunks_
    model = pipe.embedder.inner.model_ if hasattr(pipe.embedder, "inner") else pipe.embedder.model_
    reference = model.encode([c.text for c in chunks], batch_size=32, normalize_embeddings=True,
                             convert_to_numpy=True)
    assert _min_cosine(pipe.retriever.vectors_, reference) >= 0.99999


def test_the_embedder_knows_its_wrap_window_and_fingerprint(embedder):
    plan = embedder.plan_
    tok = get_tokenizer("minilm")
    assert (plan.head, plan.tail) == ((101,), (102,))  # [CLS] ... [SEP], found by probing the model's tokenizer
    assert plan.fingerprint == tok.fingerprint and plan.joinable and plan.limit == 256
    assert plan.mask_4d  # SDPA takes the ready mask: no host read-back per batch
    from ragkit.embeddings._fast_path import wrap

    flat, lengths, raw = wrap(plan, np.arange(1, 301, dtype=np.int32), np.array([3, 297]))
    assert lengths.tolist() == [5, 256] and raw.tolist() == [5, 299]
    assert flat[:5].tolist() == [101, 1, 2, 3, 102] and flat[5] == 101 and flat[-1] == 102
    assert flat[6:-1].tolist() == list(range(4, 258))  # the first 254 content ids, as the model truncates


def test_a_joined_text_must_be_prefix_space_text():
    table = token_ids.TokenIds()
    with pytest.raises(ValueError, match="is not head"):
        table.add_joined("[Tag] other text", "[Tag]", "chunk text")
