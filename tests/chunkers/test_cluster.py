"""Cluster-semantic chunker: pieces, exact DP wiring, cap and offsets, real MiniLM end to end."""

from __future__ import annotations

import numpy as np
import pytest

from ragkit.chunkers._segment import cluster_table, optimal_segmentation
from ragkit.chunkers.cluster import ClusterChunker, pack_pieces
from ragkit.embeddings.base import Embedder
from ragkit.errors import ConfigError
from ragkit.testing import FakeEmbedder
from ragkit.testing.checks import build_with_fakes, no_network, stored_params_match
from ragkit.types import Document


class TopicEmbedder(Embedder):
    """Pieces about the same keyword get the same direction (plus a tiny shared component)."""

    def embed_documents(self, texts):
        keys = ("volcano", "violin", "tax")
        rows = [[float(k in t.lower()) for k in keys] + [0.05] for t in texts]
        return np.asarray(rows, dtype=np.float32)


TEXT = (
    "The volcano erupted at dawn. Ash from the volcano covered the town. "
    "The violin was built in 1720. Its violin varnish is famous. A violin needs care. "
    "The tax rate rose. Tax revenue fell last year."
)


def check_invariants(doc: Document, chunks, max_tokens: int) -> None:
    from ragkit.text.tokenizers import get_tokenizer

    tok = get_tokenizer("minilm")
    assert chunks
    for chunk in chunks:
        assert doc.text[chunk.start : chunk.end] == chunk.text == chunk.text.strip()
        assert chunk.token_count == len(tok.encode(chunk.text)) <= max_tokens
    assert all(a.end <= b.start for a, b in zip(chunks, chunks[1:]))
    covered = "".join(doc.text[c.start : c.end] for c in chunks)
    assert "".join(covered.split()) == "".join(doc.text.split())


def test_pack_pieces_respects_size_and_paragraphs():
    text = "A b. C d.\n\nE f. G h."
    units = [(0, 4), (5, 9), (11, 15), (16, 20)]
    assert pack_pieces(text, units, [2, 2, 2, 2], 4) == [(0, 9), (11, 20)]
    assert pack_pieces(text, units, [2, 2, 2, 2], 3) == [(0, 4), (5, 9), (11, 15), (16, 20)]
    assert pack_pieces(text, units, [9, 1, 1, 1], 4) == [(0, 4), (5, 9), (11, 20)]
    heading = "= = Early life = =\n\nShe was born. She grew up."
    assert pack_pieces(heading, [(0, 18), (20, 33), (34, 45)], [6, 4, 4], 12) == [(0, 33), (34, 45)]


def test_groups_follow_topics():
    doc = Document.from_text(TEXT)
    chunker = ClusterChunker(embedder=TopicEmbedder(), piece_tokens=8, max_tokens=64)  # one sentence a piece
    chunks = chunker.chunk(doc)
    assert [c.text.split()[1] for c in chunks] == ["volcano", "violin", "tax"]
    assert [c.metadata["pieces"] for c in chunks] == [2, 3, 2]
    assert chunks[0].metadata["cohesion"] == pytest.approx(1.0, abs=1e-3)
    check_invariants(doc, chunks, 64)


def test_chunker_uses_the_exact_dp_optimum():
    doc = Document.from_text(" ".join(f"Sentence {i} is about {['ice', 'fire', 'rock'][i % 3]} today." for i in range(60)))
    embedder = FakeEmbedder(dimension=32)
    chunker = ClusterChunker(embedder=embedder, piece_tokens=12, max_tokens=60)
    pieces, counts = chunker.pieces(doc.text)
    vectors = embedder.embed_documents([doc.text[s:e] for s, e in pieces])
    seg, beta = chunker.segment(vectors, counts)
    assert beta == 0.0
    chunks = chunker.chunk(doc)
    assert [(c.start, c.end) for c in chunks] == [(pieces[s][0], pieces[e - 1][1]) for s, e in seg.segments]
    unconstrained = optimal_segmentation(cluster_table(vectors, len(pieces)))
    assert seg.score <= unconstrained.score + 1e-9  # the cap can only cost similarity


def test_target_tokens_calibrates_chunk_size(chroma_texts):
    doc = Document.from_text(chroma_texts["state_of_the_union"], source_id="state_of_the_union")
    for target in (100, 200):
        chunks = ClusterChunker(embedder=FakeEmbedder(mode="hash"), max_tokens=400, target_tokens=target).chunk(doc)
        mean = np.mean([c.token_count for c in chunks])
        assert abs(mean - target) / target < 0.1, (target, mean)
        check_invariants(doc, chunks, 400)


def test_invariants_on_all_chroma_corpora(chroma_texts):
    chunker = ClusterChunker(embedder=FakeEmbedder(mode="hash"), max_tokens=200)
    for name, text in chroma_texts.items():
        doc = Document.from_text(text, source_id=name)
        check_invariants(doc, chunker.chunk(doc), 200)


def test_long_words_and_sentences_stay_within_the_cap():
    doc = Document.from_text("x" * 2000 + " " + "word " * 400 + "end.")
    check_invariants(doc, ClusterChunker(embedder=FakeEmbedder(), max_tokens=30, piece_tokens=10).chunk(doc), 30)


def test_config_errors_and_conformance():
    with pytest.raises(ConfigError, match=r"piece_tokens \(300\) must not exceed max_tokens \(254\)"):
        ClusterChunker(piece_tokens=300)
    with pytest.raises(ConfigError, match=r"target_tokens \(500\) must not exceed max_tokens \(254\)"):
        ClusterChunker(target_tokens=500)
    with no_network():
        chunker = build_with_fakes("chunker", "cluster", max_tokens=128)
    assert stored_params_match(chunker) == []
    assert chunker.chunk(Document.from_text("   ")) == []


@pytest.mark.slow
def test_real_minilm_end_to_end_on_chatlogs(chroma_texts, minilm):
    from ragkit.backends import wrap_backend

    doc = Document.from_text(chroma_texts["chatlogs"], source_id="chatlogs")
    chunker = ClusterChunker(embedder=wrap_backend("embedder", minilm), max_tokens=256)
    chunks = chunker.chunk(doc)
    check_invariants(doc, chunks, 256)
    sizes = [c.metadata["pieces"] for c in chunks]
    assert len(set(sizes)) > 2, "chunk sizes collapsed to one value"
    cohesive = [c.metadata["cohesion"] for c in chunks if c.metadata["cohesion"] is not None]
    assert np.mean(cohesive) > 0.2  # grouped pieces are more similar than MiniLM's typical unrelated pair
