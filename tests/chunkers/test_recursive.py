"""RecursiveChunker: the separator cascade with exact caps."""

from __future__ import annotations

import pytest

from ragkit.chunkers.recursive import RecursiveChunker
from ragkit.loaders import load_corpus
from ragkit.text.tokenizers import get_tokenizer
from ragkit.types import Document

TOK = get_tokenizer("minilm")


def test_headings_come_first():
    text = "# One\n\nAlpha beta.\n\nGamma delta.\n\n# Two\n\nEpsilon zeta.\n"
    chunks = RecursiveChunker(max_tokens=10).chunk(Document.from_text(text))
    assert [c.text for c in chunks] == ["# One\n\nAlpha beta.\n\nGamma delta.", "# Two\n\nEpsilon zeta."]


def test_the_cascade_reaches_words_and_tokens():
    long_word = "abcdefghij" * 9  # ~40 word pieces (words above 100 characters are one [UNK] token)
    text = "Line one is here.\nLine two is here.\n" + " ".join(["word"] * 50) + " " + long_word
    chunks = RecursiveChunker(max_tokens=16).chunk(Document.from_text(text))
    # short lines share a chunk with the first words of the long line that had to be split
    assert chunks[0].text.startswith("Line one is here.\nLine two is here.\nword")
    assert all(c.token_count == TOK.count(c.text) <= 16 for c in chunks)
    at = text.index(long_word)
    pieces = [text[max(c.start, at):c.end] for c in chunks if c.end > at]
    assert len(pieces) >= 3 and "".join(pieces) == long_word  # cut between word pieces


def test_sum_of_counts_equals_document_count_without_overlap(chroma_texts):
    doc = Document.from_text(chroma_texts["pubmed"][:60_000])
    chunks = RecursiveChunker(max_tokens=128).chunk(doc)
    assert sum(c.token_count for c in chunks) == TOK.count(doc.text)
    assert all(a.end <= b.start for a, b in zip(chunks, chunks[1:]))


def test_overlap_carries_trailing_pieces():
    text = "\n".join(f"Line {i} says something short." for i in range(30))
    chunks = RecursiveChunker(max_tokens=32, overlap_tokens=10).chunk(Document.from_text(text))
    for a, b in zip(chunks, chunks[1:]):
        shared = text[b.start:a.end]
        assert a.start < b.start < a.end and TOK.count(shared) <= 10 and shared.startswith("Line")


def test_uses_loader_headings(tmp_path):
    path = tmp_path / "doc.html"
    path.write_text("<h1>A</h1><p>" + "words " * 10 + "</p><h1>B</h1><p>short</p>", encoding="utf-8")
    (doc,) = load_corpus([path])
    chunks = RecursiveChunker(max_tokens=12).chunk(doc)
    assert [c.metadata["heading_path"] for c in chunks] == [["A"], ["B"]]


@pytest.mark.parametrize("tokenizer", ["minilm", "cl100k"])
def test_wikitexts_caps_for_both_tokenizers(chroma_texts, tokenizer):
    tok = get_tokenizer(tokenizer)
    doc = Document.from_text(chroma_texts["wikitexts"][:40_000])
    chunks = RecursiveChunker(max_tokens=100, tokenizer=tokenizer).chunk(doc)
    assert [c.token_count for c in chunks] == tok.count_many([c.text for c in chunks])
    assert max(c.token_count for c in chunks) <= 100


def test_single_character_above_the_cap_is_reported():
    from ragkit.errors import DocumentError

    with pytest.raises(DocumentError, match=r"max_tokens=2.*Raise max_tokens"):
        RecursiveChunker(max_tokens=2).chunk(Document.from_text("한"))  # one syllable, three word pieces
