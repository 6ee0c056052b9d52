"""SentenceChunker: whole sentences packed up to the target, long sentences split at words."""

from __future__ import annotations

import pytest

from ragkit.chunkers.sentence import SentenceChunker
from ragkit.errors import ConfigError
from ragkit.text.sentences import split_sentences
from ragkit.text.tokenizers import get_tokenizer
from ragkit.types import Document

TOK = get_tokenizer("minilm")


def sentence_bounds(text: str) -> set[int]:
    spans = split_sentences(text)
    return {s for s, _e in spans} | {e for _s, e in spans}


def test_chunks_are_whole_sentences(chroma_texts):
    doc = Document.from_text(chroma_texts["state_of_the_union"])
    chunks = SentenceChunker(max_tokens=128).chunk(doc)
    bounds = sentence_bounds(doc.text)
    long_ones = {s for s, e in split_sentences(doc.text) if TOK.count(doc.text[s:e]) > 128}
    for chunk in chunks:
        assert chunk.token_count <= 128
        inside_long = any(s <= chunk.start < e for s, e in split_sentences(doc.text) if s in long_ones)
        if not inside_long:
            assert chunk.start in bounds and chunk.end in bounds


def test_packing_is_greedy():
    doc = Document.from_text("Paris is in France. Rome is in Italy. Berlin is in Germany.")
    assert [c.text for c in SentenceChunker(max_tokens=10).chunk(doc)] == [
        "Paris is in France. Rome is in Italy.", "Berlin is in Germany."]
    assert [c.text for c in SentenceChunker(max_tokens=16).chunk(doc)] == [doc.text]


def test_target_below_max():
    doc = Document.from_text("One two three four. Five six seven eight. Nine ten eleven twelve.")
    chunks = SentenceChunker(max_tokens=20, target_tokens=10).chunk(doc)
    assert [c.token_count for c in chunks] == [10, 5]


def test_long_sentence_is_split_at_words():
    sentence = " ".join(f"word{i}" for i in range(60)) + "."
    doc = Document.from_text(f"Short one. {sentence} Short two.")
    chunks = SentenceChunker(max_tokens=20).chunk(doc)
    assert all(c.token_count <= 20 for c in chunks)
    assert all(not c.text[0].isspace() and not c.text[-1].isspace() for c in chunks)
    for c in chunks:  # cuts fall between words
        assert c.start == 0 or doc.text[c.start - 1] == " "


def test_overlap_repeats_trailing_sentences():
    doc = Document.from_text(" ".join(f"Sentence number {i} here." for i in range(12)))
    chunks = SentenceChunker(max_tokens=24, overlap_tokens=6).chunk(doc)
    for a, b in zip(chunks, chunks[1:]):
        shared = doc.text[b.start:a.end]
        assert a.start < b.start < a.end and shared.startswith("Sentence") and shared.endswith("here.")
        assert TOK.count(shared) <= 6


def test_regex_splitter():
    doc = Document.from_text("Dr. Who arrived. He left!")
    # the regex splitter does not know abbreviations
    assert [c.text for c in SentenceChunker(max_tokens=4, splitter="regex").chunk(doc)] == [
        "Dr.", "Who arrived.", "He left!"]
    assert [c.text for c in SentenceChunker(max_tokens=5).chunk(doc)] == ["Dr. Who arrived.", "He left!"]


def test_bad_splitter():
    with pytest.raises(ConfigError, match="splitter"):
        SentenceChunker(splitter="spacy")
    with pytest.raises(ConfigError, match=r"target_tokens \(300\) must not exceed max_tokens \(256\)"):
        SentenceChunker(target_tokens=300)
