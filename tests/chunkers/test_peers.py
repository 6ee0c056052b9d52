"""Peer adapters: exact offsets and the token cap over the real corpora, locator robustness, errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ragkit.chunkers.peers import (
    ChonkieRecursiveChunker,
    ChonkieSemanticChunker,
    LangchainRecursiveChunker,
    chonkie_tokenizer,
    enforce_token_cap,
    locate_pieces,
)
from ragkit.errors import DocumentError, MissingDependencyError
from ragkit.registry import default_registry
from ragkit.testing import FakeEmbedder
from ragkit.text.tokenizers import get_tokenizer
from ragkit.types import Document

CHROMA = Path(os.environ.get("RAGKIT_DATA") or Path(__file__).resolve().parents[3] / "shared" / "datasets") \
    / "chroma_chunking_eval"
CORPORA = ["chatlogs", "finance", "pubmed", "state_of_the_union", "wikitexts"]


def _check(doc: Document, chunks: list, max_tokens: int) -> None:
    tok = get_tokenizer("minilm")
    assert chunks, "no chunks for a non-empty document"
    previous = -1
    for c in chunks:
        assert doc.text[c.start:c.end] == c.text
        assert c.doc_id == doc.id and c.text == c.text.strip() and c.text
        assert c.token_count == len(tok.encode(c.text)) <= max_tokens
        assert c.start > previous
        previous = c.start
        assert "heading_path" in c.metadata


@pytest.fixture(scope="module")
def corpora() -> dict[str, Document]:
    return {name: Document.from_text((CHROMA / f"{name}.md").read_text(encoding="utf-8"), source_id=name)
            for name in CORPORA}


@pytest.mark.parametrize("name", CORPORA)
def test_langchain_recursive_offsets_on_corpora(corpora: dict[str, Document], name: str) -> None:
    doc = corpora[name]
    _check(doc, LangchainRecursiveChunker(max_tokens=200).chunk(doc), 200)


@pytest.mark.parametrize("name", CORPORA)
def test_chonkie_recursive_offsets_on_corpora(corpora: dict[str, Document], name: str) -> None:
    doc = corpora[name]
    _check(doc, ChonkieRecursiveChunker(max_tokens=200).chunk(doc), 200)


@pytest.mark.parametrize("name", ["chatlogs", "state_of_the_union", "wikitexts"])
def test_chonkie_semantic_offsets_with_fake_embedder(corpora: dict[str, Document], name: str) -> None:
    doc = corpora[name]
    chunker = ChonkieSemanticChunker(max_tokens=128, embedder=FakeEmbedder(dimension=32))
    _check(doc, chunker.chunk(doc), 128)


@pytest.mark.slow
def test_chonkie_semantic_real_minilm_small_text(corpora: dict[str, Document]) -> None:
    doc = Document.from_text(corpora["state_of_the_union"].text[:3000])
    chunks = ChonkieSemanticChunker(max_tokens=200).chunk(doc)
    _check(doc, chunks, 200)
    assert len(chunks) > 1


def test_langchain_overlap_chunks_overlap_exactly(corpora: dict[str, Document]) -> None:
    doc = Document.from_text(corpora["state_of_the_union"].text[:20000])
    chunker = LangchainRecursiveChunker(max_tokens=64, overlap_tokens=16)
    chunks = chunker.chunk(doc)
    _check(doc, chunks, 64)
    # LangChain overlaps pieces merged within one separator level; each located chunk is its piece verbatim
    assert sum(1 for a, b in zip(chunks, chunks[1:]) if b.start < a.end) > 0
    assert [c.text for c in chunks] == [p.strip() for p in chunker._peer.split_text(doc.text) if p.strip()]


def test_registered_and_params_roundtrip() -> None:
    reg = default_registry()
    assert reg.get("chunker", "langchain_recursive") is LangchainRecursiveChunker
    assert reg.get("chunker", "chonkie_recursive") is ChonkieRecursiveChunker
    assert reg.get("chunker", "chonkie_semantic") is ChonkieSemanticChunker
    params = ChonkieRecursiveChunker(max_tokens=99).get_params()
    assert ChonkieRecursiveChunker(**params).get_params() == params


def test_cap_enforced_when_peer_leaves_a_long_piece() -> None:
    # One unbreakable 'word' longer than the cap: peers return it whole; the adapter cuts it by tokens.
    doc = Document.from_text("short start. " + "abc," * 400 + " end.")  # 800 tokens, no spaces
    no_char_level = ["\n\n", " "]  # without LangChain's final "" separator the long word stays whole
    for chunker in (LangchainRecursiveChunker(max_tokens=50), ChonkieRecursiveChunker(max_tokens=50),
                    LangchainRecursiveChunker(max_tokens=50, separators=no_char_level)):
        chunks = chunker.chunk(doc)
        _check(doc, chunks, 50)
    capped = LangchainRecursiveChunker(max_tokens=50, separators=no_char_level).chunk(doc)
    assert any(c.metadata.get("peer_cap_split") for c in capped)
    uncapped = LangchainRecursiveChunker(max_tokens=50, separators=no_char_level, enforce_cap=False).chunk(doc)
    assert max(c.token_count for c in uncapped) > 50


def test_locate_pieces_normalised_whitespace_and_hints() -> None:
    text = "Alpha   beta\tgamma.\n\n\nDelta  epsilon.  "
    assert locate_pieces(text, ["Alpha beta gamma.", "Delta epsilon."]) == [(0, 19), (22, 37)]
    # a wrong hint is ignored, a right one is used (repeated text: hint picks the second copy)
    assert locate_pieces("ab ab", ["ab"], [3]) == [(3, 5)]
    assert locate_pieces("ab ab", ["ab"], [1]) == [(0, 2)]
    assert locate_pieces("x", ["  ", ""]) == []
    with pytest.raises(DocumentError, match="could not be located"):
        locate_pieces("hello world", ["goodbye"])


def test_locate_pieces_in_order_for_repeated_text() -> None:
    text = "Yes. No. Yes. No."
    assert locate_pieces(text, ["Yes.", "No.", "Yes.", "No."]) == [(0, 4), (5, 8), (9, 13), (14, 17)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30),
                min_size=1, max_size=8))
def test_locate_pieces_recovers_a_partition(parts: list[str]) -> None:
    text = "".join(parts)
    spans = locate_pieces(text, [" ".join(p.split()) for p in parts])
    for (s, e) in spans:
        assert text[s:e] == text[s:e].strip() and e > s
    assert spans == sorted(spans)


def test_enforce_token_cap_exact_counts() -> None:
    tok = get_tokenizer("minilm")
    text = "unbelievably long words keep appearing " * 20
    spans = [(0, len(text.rstrip()))]
    out = enforce_token_cap(text, spans, [tok.count(text)], 7, tok)
    assert all(n == tok.count(text[s:e]) <= 7 for s, e, n, _ in out)
    assert out[0][0] == 0 and out[-1][1] == len(text.rstrip())


def test_chonkie_tokenizer_decode_is_exact() -> None:
    tok = chonkie_tokenizer(get_tokenizer("minilm"))
    text = "  Tokenization, émigré café!  done"
    ids = tok.encode(text)
    pieces = [tok.decode(ids[i:i + 3]) for i in range(0, len(ids), 3)]
    assert "".join(pieces) == text
    assert tok.count_tokens_batch(["a b", "c"]) == [2, 1]


def test_missing_peer_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "langchain_text_splitters", None)
    with pytest.raises(MissingDependencyError, match=r"ragkit\[peers\]"):
        LangchainRecursiveChunker(max_tokens=10).chunk(Document.from_text("some text here"))
