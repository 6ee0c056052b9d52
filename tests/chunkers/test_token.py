"""TokenChunker: exact token windows with overlap, verbatim text, exact caps."""

from __future__ import annotations

import pytest

from ragkit.chunkers.token import TokenChunker
from ragkit.errors import ConfigError
from ragkit.text.tokenizers import get_tokenizer
from ragkit.types import Document

TOK = get_tokenizer("minilm")


def test_windows_of_exactly_max_tokens():
    doc = Document.from_text(" ".join(f"w{i % 10}" for i in range(100)))  # "w3" is 2 tokens: w, ##3
    chunks = TokenChunker(max_tokens=16).chunk(doc)
    assert [c.token_count for c in chunks] == [16] * 12 + [8]
    assert all(TOK.count(c.text) == c.token_count for c in chunks)
    assert chunks[0].text == "w0 w1 w2 w3 w4 w5 w6 w7"


def test_overlap_shares_tokens_between_neighbours():
    doc = Document.from_text(" ".join(["alpha", "beta", "gamma", "delta"] * 20))
    chunks = TokenChunker(max_tokens=10, overlap_tokens=3).chunk(doc)
    for a, b in zip(chunks, chunks[1:]):
        shared = doc.text[b.start:a.end]
        assert a.start < b.start < a.end
        assert TOK.count(shared) == 3
    assert chunks[-1].end == len(doc.text)


def test_cuts_inside_words_are_verified():
    # Long rare words split into many word pieces; windows cut between pieces and are re-counted.
    words = ["unaffableness", "hyperventilating", "Xylophonist", "zygomorphic", "antidisestablishment"]
    doc = Document.from_text(" ".join(words * 30))
    for max_tokens in (5, 7, 13):
        chunks = TokenChunker(max_tokens=max_tokens).chunk(doc)
        for chunk in chunks:
            assert doc.text[chunk.start:chunk.end] == chunk.text
            assert chunk.token_count == len(TOK.encode(chunk.text)) <= max_tokens
        # every token of the document is in some chunk
        covered = sum(c.token_count for c in chunks)
        assert covered >= TOK.count(doc.text) - len(chunks)


def test_cl100k_counts():
    tok = get_tokenizer("cl100k")
    doc = Document.from_text("Ünïcode text with emoji 😀😀 and more words, many more words. " * 20)
    chunks = TokenChunker(max_tokens=12, tokenizer="cl100k").chunk(doc)
    assert chunks
    assert all(c.token_count == len(tok.encode(c.text)) <= 12 for c in chunks)


def test_text_without_tokens_is_kept():
    doc = Document.from_text("\u0301\u0301")  # combining marks only: no tokens after normalisation
    chunks = TokenChunker(max_tokens=4).chunk(doc)
    assert [(c.text, c.token_count) for c in chunks] == [("\u0301\u0301", 0)]


@pytest.mark.parametrize(
    ("params", "message"),
    [({"max_tokens": 0}, r"max_tokens.*greater than 0.*got 0"),
     ({"max_tokens": 8, "overlap_tokens": 8}, r"overlap_tokens \(8\) must be smaller than the chunk size \(8\)"),
     ({"overlap_tokens": -1}, r"overlap_tokens.*got -1"),
     ({"tokenizer": "bert"}, r"tokenizer.*'minilm' or 'cl100k'.*got 'bert'")],
)
def test_bad_parameters(params, message):
    with pytest.raises(ConfigError, match=message):
        TokenChunker(**params)


def test_constructor_does_no_io_and_stores_params():
    chunker = TokenChunker(max_tokens=32, overlap_tokens=4)
    assert chunker.get_params() == {"max_tokens": 32, "overlap_tokens": 4, "tokenizer": "minilm"}
    assert "_tok" not in chunker.__dict__
    chunker.chunk(Document.from_text("hello"))
    assert "_tok" in chunker.__dict__
