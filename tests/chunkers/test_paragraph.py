"""ParagraphChunker: blank-line blocks packed, long paragraphs split at sentences."""

from __future__ import annotations

from ragkit.chunkers.paragraph import ParagraphChunker
from ragkit.text.tokenizers import get_tokenizer
from ragkit.types import Document

TOK = get_tokenizer("minilm")


def test_paragraphs_are_packed_and_cut_at_blank_lines():
    paragraphs = [f"Paragraph {i} has a few words in it." for i in range(10)]
    doc = Document.from_text("\n\n".join(paragraphs))
    chunks = ParagraphChunker(max_tokens=30).chunk(doc)
    assert all(c.token_count <= 30 for c in chunks)
    for chunk in chunks:
        assert chunk.text.split("\n\n")[0] in paragraphs and chunk.text.split("\n\n")[-1] in paragraphs
    assert len(chunks) == 4  # 9 tokens per paragraph, three per chunk


def test_blank_lines_with_spaces_and_crlf():
    doc = Document.from_text("First block.\r\n \r\nSecond block.\n\t\nThird block.")
    chunks = ParagraphChunker(max_tokens=3).chunk(doc)
    assert [c.text for c in chunks] == ["First block.", "Second block.", "Third block."]


def test_long_paragraph_splits_at_sentences():
    long = " ".join(f"This is sentence {i}." for i in range(20))
    doc = Document.from_text(f"Intro.\n\n{long}\n\nOutro.")
    chunks = ParagraphChunker(max_tokens=20).chunk(doc)
    assert all(c.token_count <= 20 for c in chunks)
    assert all(c.text.endswith(".") for c in chunks)
    assert chunks[0].text.startswith("Intro.\n\nThis is sentence 0.")  # a short paragraph joins the next sentences


def test_finance_corpus(chroma_texts):
    doc = Document.from_text(chroma_texts["finance"])
    chunks = ParagraphChunker(max_tokens=256, target_tokens=200).chunk(doc)
    assert all(c.token_count <= 256 for c in chunks)
    assert sum(c.token_count for c in chunks) == TOK.count(doc.text)  # no token lost, none repeated
