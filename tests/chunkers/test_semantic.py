"""SemanticChunker: percentile breakpoints on embedding distance, with the hard cap enforced."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from ragkit.chunkers.semantic import SemanticChunker
from ragkit.errors import ConfigError
from ragkit.testing import FakeEmbedder
from ragkit.text.sentences import split_sentences
from ragkit.text.tokenizers import get_tokenizer
from ragkit.types import Document

TOK = get_tokenizer("minilm")
CHATLOGS = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "chroma_chunking_eval" / "chatlogs.md"

TOPICS = ("Cats purr and nap. Cats nap and purr. Cats purr, cats nap. "
          "Stocks fell and rose. Stocks rose and fell. Stocks fell, stocks rose. "
          "Rain falls and stops. Rain stops and falls. Rain falls, rain stops.")


def test_breaks_at_topic_shifts():
    chunker = SemanticChunker(embedder=FakeEmbedder(), max_tokens=64, buffer_size=0, breakpoint_percentile=80)
    texts = [c.text for c in chunker.chunk(Document.from_text(TOPICS))]
    assert texts == ["Cats purr and nap. Cats nap and purr. Cats purr, cats nap.",
                     "Stocks fell and rose. Stocks rose and fell. Stocks fell, stocks rose.",
                     "Rain falls and stops. Rain stops and falls. Rain falls, rain stops."]


def test_hard_cap_splits_groups_at_their_largest_distance():
    # percentile 100: no breakpoint at all, so only the cap splits the text
    chunker = SemanticChunker(embedder=FakeEmbedder(), max_tokens=30, buffer_size=0, breakpoint_percentile=100)
    chunks = chunker.chunk(Document.from_text(TOPICS))
    assert all(c.token_count == TOK.count(c.text) <= 30 for c in chunks)
    assert len(chunks) >= 2
    assert all(c.text.endswith(".") for c in chunks)  # whole sentences


def test_cap_holds_on_a_real_corpus_with_fake_vectors(chroma_texts):
    doc = Document.from_text(chroma_texts["state_of_the_union"])
    for percentile in (50.0, 95.0, 100.0):
        chunks = SemanticChunker(embedder=FakeEmbedder(mode="hash"), max_tokens=64,
                                 breakpoint_percentile=percentile).chunk(doc)
        assert chunks and max(c.token_count for c in chunks) <= 64
        assert [c.token_count for c in chunks] == TOK.count_many([c.text for c in chunks])
        assert all(a.end <= b.start for a, b in zip(chunks, chunks[1:]))


def test_sentence_longer_than_the_cap_is_split_at_words():
    doc = Document.from_text("Short. " + " ".join(f"w{i}" for i in range(80)) + ". Short again.")
    chunks = SemanticChunker(embedder=FakeEmbedder(), max_tokens=16).chunk(doc)
    assert all(c.token_count <= 16 for c in chunks) and len(chunks) >= 10


def test_min_tokens_merges_small_groups():
    doc = Document.from_text(TOPICS)
    small = SemanticChunker(embedder=FakeEmbedder(), max_tokens=64, buffer_size=0, breakpoint_percentile=10)
    merged = SemanticChunker(embedder=FakeEmbedder(), max_tokens=64, buffer_size=0, breakpoint_percentile=10,
                             min_tokens=12)
    a, b = small.chunk(doc), merged.chunk(doc)
    assert len(b) < len(a)
    assert all(c.token_count >= 12 for c in b[:-1])


def test_chunk_many_embeds_once_and_matches_chunk():
    embedder = FakeEmbedder()
    chunker = SemanticChunker(embedder=embedder, max_tokens=40, buffer_size=1)
    docs = [Document.from_text(TOPICS), Document.from_text(""), Document.from_text(TOPICS[:90] + " The end.")]
    batched = chunker.chunk_many(docs)
    assert embedder.calls == 1
    assert batched == [chunker.chunk(d) for d in docs]
    assert batched[1] == []


def test_buffer_windows_are_verbatim_neighbour_spans():
    seen: list[str] = []

    class Recording(FakeEmbedder):
        def embed_documents(self, texts):
            seen.extend(texts)
            return super().embed_documents(texts)

    doc = Document.from_text("One is here. Two is here. Three is here.")
    SemanticChunker(embedder=Recording(), buffer_size=1).chunk(doc)
    assert seen == ["One is here. Two is here.", "One is here. Two is here. Three is here.",
                    "Two is here. Three is here."]


def test_parameters():
    with pytest.raises(ConfigError, match="breakpoint_percentile"):
        SemanticChunker(embedder=FakeEmbedder(), breakpoint_percentile=0)
    with pytest.raises(ConfigError, match=r"min_tokens \(300\) must not exceed max_tokens"):
        SemanticChunker(embedder=FakeEmbedder(), min_tokens=300)
    with pytest.raises(ConfigError, match="unresolved reference 'default'"):
        SemanticChunker().chunk(Document.from_text("One. Two."))


def test_built_from_a_config_with_a_fake_backend():
    from ragkit.pipeline import Pipeline

    pipe = Pipeline.from_config({
        "backends": {"embeddings": {"default": {"type": "fake"}}, "llm": {"default": {"type": "fake"}}},
        "index": {"chunker": {"type": "semantic", "max_tokens": 32, "breakpoint_percentile": 80}},
    })
    chunks = pipe.chunker.chunk(Document.from_text(TOPICS))
    assert chunks and all(c.token_count <= 32 for c in chunks)


@pytest.mark.slow
def test_real_minilm_on_chatlogs():
    """The packaged MiniLM through the sentence_transformers embedder (registry), on chatlogs.md."""
    from ragkit.registry import default_registry

    if importlib.util.find_spec("ragkit.embeddings.sentence_transformers") is not None:
        embedder = default_registry().create("embedder", "sentence_transformers", model="minilm", device="cpu",
                                              cache=False)
    else:  # pragma: no cover - the embedder module ships with ragkit
        pytest.fail("ragkit.embeddings.sentence_transformers is missing")
    text = CHATLOGS.read_text(encoding="utf-8")
    doc = Document.from_text(text)
    chunker = SemanticChunker(embedder=embedder, max_tokens=256, breakpoint_percentile=90)
    chunks = chunker.chunk(doc)
    assert all(text[c.start:c.end] == c.text for c in chunks)
    assert [c.token_count for c in chunks] == TOK.count_many([c.text for c in chunks])
    assert max(c.token_count for c in chunks) <= 256
    n_sentences = len(split_sentences(text))
    assert 5 < len(chunks) < n_sentences / 2
    # chatlogs.md holds five unrelated conversations; their starts are real topic shifts, and chance
    # alone would make a given one a chunk start with probability len(chunks) / n_sentences (~0.25).
    conversation_starts = [i + 2 for i in range(len(text)) if text.startswith("\n\n[{", i)]
    assert len(conversation_starts) == 4
    starts = {c.start for c in chunks}
    assert sum(s in starts for s in conversation_starts) >= 3
