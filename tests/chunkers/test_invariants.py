"""Offset and size invariants for every chunker in the default registry.

Each registered chunker is built with ``build_with_fakes`` (LLM- and embedding-driven chunkers get the
shipped fakes: offsets do not depend on model quality) and run over the five Chroma corpora and over
Hypothesis-generated Unicode. Every chunk must reproduce its text from the offsets, carry an exact
token count within ``max_tokens``, have a ``heading_path``, and come in document order without
overlap (unless the chunker is configured to overlap).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ragkit.chunkers._chars import UnrepresentableTextWarning
from ragkit.errors import MissingDependencyError
from ragkit.loaders import load_corpus
from ragkit.registry import default_registry
from ragkit.stage import collaborator_params
from ragkit.testing import FakeEmbedder
from ragkit.testing.checks import build_with_fakes
from ragkit.text.tokenizers import get_tokenizer
from ragkit.types import Chunk, Document

CHROMA = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "chroma_chunking_eval"
CORPORA = ["chatlogs", "finance", "pubmed", "state_of_the_union", "wikitexts"]
CHUNKERS = default_registry().names("chunker")
CORPUS_MAX_TOKENS = 256
FUZZ_MAX_TOKENS = 64  # small enough to force splitting, large enough for every chunker's default piece size

_built: dict[tuple[str, int], Any] = {}


def chunker_for(name: str, max_tokens: int) -> Any:
    key = (name, max_tokens)
    if key not in _built:
        # Hash-mode fake vectors cost one hash per text (the bag-of-words mode hashes every word);
        # offsets and caps do not depend on how meaningful the vectors are.
        cls = default_registry().get("chunker", name)
        fast = {param: FakeEmbedder(mode="hash", dimension=16)
                for param, kind in collaborator_params(cls).items() if kind == "embedder"}
        try:
            _built[key] = build_with_fakes("chunker", name, max_tokens=max_tokens, **fast)
        except MissingDependencyError as exc:  # pragma: no cover - every extra is installed in CI
            pytest.fail(f"chunker {name!r} cannot be imported: {exc}")
    return _built[key]


@pytest.fixture(scope="module")
def corpus_docs() -> dict[str, Document]:
    docs = load_corpus([CHROMA / f"{name}.md" for name in CORPORA])
    return {name: doc for name, doc in zip(CORPORA, docs)}


def overlaps_allowed(chunker: Any) -> bool:
    """Whether the chunker is configured to repeat text between neighbours (a documented overlap)."""
    params = chunker.get_params() if hasattr(chunker, "get_params") else {}
    return any("overlap" in key and value for key, value in params.items())


def check_invariants(chunker: Any, doc: Document, chunks: list[Chunk], max_tokens: int) -> None:
    tokenizer_name = getattr(chunker, "tokenizer", "minilm")
    tokenizer = get_tokenizer(tokenizer_name if isinstance(tokenizer_name, str) else "minilm")
    text = doc.text
    for chunk in chunks:
        assert 0 <= chunk.start < chunk.end <= len(text), (chunk.start, chunk.end)
        assert text[chunk.start:chunk.end] == chunk.text, f"offsets do not reproduce the text at {chunk.start}"
        assert chunk.doc_id == doc.id and chunk.id == Chunk.make_id(doc.id, chunk.start, chunk.end)
        assert chunk.text.strip(), f"whitespace-only chunk at {chunk.start}"
        assert isinstance(chunk.metadata.get("heading_path"), list)
        assert len(chunk.text) <= tokenizer.max_chars(max_tokens), (
            f"{len(chunk.text)} characters > max_chars={tokenizer.max_chars(max_tokens)} at {chunk.start}")
        assert all(isinstance(t, str) for t in chunk.metadata["heading_path"])
    if chunks:
        real = tokenizer.count_many([c.text for c in chunks])
        for chunk, count in zip(chunks, real):
            assert chunk.token_count == count, f"token_count {chunk.token_count} != {count} at {chunk.start}"
            assert count <= max_tokens, f"{count} tokens > max_tokens={max_tokens} at {chunk.start}"
    for a, b in zip(chunks, chunks[1:]):
        assert a.start <= b.start, "chunks out of order"
        if not overlaps_allowed(chunker):
            assert a.end <= b.start, f"chunks overlap: [{a.start}, {a.end}) and [{b.start}, {b.end})"


@pytest.mark.parametrize("corpus", CORPORA)
@pytest.mark.parametrize("name", CHUNKERS)
def test_invariants_on_chroma_corpora(name: str, corpus: str, corpus_docs: dict[str, Document]):
    chunker = chunker_for(name, CORPUS_MAX_TOKENS)
    doc = corpus_docs[corpus]
    chunks = chunker.chunk(doc)
    assert chunks, "a non-empty corpus gave no chunks"
    check_invariants(chunker, doc, chunks, CORPUS_MAX_TOKENS)
    if corpus == "wikitexts":
        first_heading = doc.headings[0][0]
        assert all(c.metadata["heading_path"] for c in chunks if c.start >= first_heading)


_PIECES = st.sampled_from([
    "word", "Tokenization", " ", "  ", "\n", "\r\n", "\r\n\r\n", "\n\n", "\t", ". ", "! ", "? ", ", ", "'", '"',
    "é", "e\u0301", "\u0301", "\u0308\u0308", "😀", "👍🏽", "👩‍👩‍👧", "🇫🇷", "戦場", "한국어", "\u200b", "\xa0",
    "—", "’", "ﬁ", "\x00", "\u2028", "# Heading\n", " = = Section = = \n", "\n## Sub\n", "x" * 120, "1.5",
])
_FREE = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)
TEXTS = st.one_of(
    st.just(""),
    st.text(alphabet=" \t\r\n\xa0\u2028", max_size=20),
    st.lists(st.one_of(_PIECES, _FREE), max_size=60).map("".join),
)


@pytest.mark.parametrize("name", CHUNKERS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXTS)
def test_invariants_on_generated_unicode(name: str, text: str):
    chunker = chunker_for(name, FUZZ_MAX_TOKENS)
    doc = Document.from_text(text)
    chunks = chunker.chunk(doc)
    if not text.strip():
        assert chunks == []
    check_invariants(chunker, doc, chunks, FUZZ_MAX_TOKENS)


def unspaced_corpora() -> dict[str, Document]:
    """Text a WordPiece tokenizer maps to a few ``[UNK]`` tokens: Thai, a base64 blob, long URLs (issue 13.3)."""
    import base64
    import random

    rng = random.Random(13)
    syllables = ["ภาษา", "ไทย", "เป็น", "ที่", "มี", "ระดับ", "เสียง", "ของ", "คำ", "แน่นอน", "หรือ", "วรรณยุกต์",
                 "เช่น", "เดียว", "กับ", "จีน", "และ", "ออก", "แตกต่าง", "ความ", "หมาย", "กัน", "ประเทศ", "คน"]
    paragraphs = ["".join(rng.choice(syllables) for _ in range(rng.randint(300, 900))) for _ in range(6)]
    thai = "# หัวข้อ\n\n" + "\n\n".join(paragraphs)
    blob = base64.b64encode(rng.randbytes(9000)).decode("ascii")
    b64 = "The attachment follows.\n\n" + blob + "\n\nEnd of attachment. " + base64.urlsafe_b64encode(rng.randbytes(3000)).decode()
    urls = " ".join(
        "https://example.org/" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(rng.randint(150, 2500)))
        for _ in range(8))
    return {"thai": Document.from_text(thai), "base64": Document.from_text(b64), "urls": Document.from_text("See " + urls)}


UNSPACED = unspaced_corpora()


@pytest.mark.parametrize("corpus", sorted(UNSPACED))
@pytest.mark.parametrize("name", CHUNKERS)
def test_invariants_on_text_without_spaces(name: str, corpus: str):
    """Token caps hold for text the tokenizer maps to [UNK]: chunks are also bounded by max_chars."""
    chunker = chunker_for(name, FUZZ_MAX_TOKENS)
    doc = UNSPACED[corpus]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnrepresentableTextWarning)
        chunks = chunker.chunk(doc)
    assert chunks, "a non-empty corpus gave no chunks"
    check_invariants(chunker, doc, chunks, FUZZ_MAX_TOKENS)
    if not overlaps_allowed(chunker):
        covered = sum(len(c.text) for c in chunks)
        assert covered >= len("".join(doc.text.split())), "text without spaces was dropped"


def test_unrepresentable_text_warns_once_per_chunker():
    chunker = build_with_fakes("chunker", "recursive", max_tokens=64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        chunker.chunk(UNSPACED["thai"])
        chunker.chunk(UNSPACED["urls"])
    unknown = [w for w in caught if issubclass(w.category, UnrepresentableTextWarning)]
    assert len(unknown) == 1 and "[UNK]" in str(unknown[0].message)


def test_every_builtin_chunker_is_covered():
    from ragkit._builtins import BUILTINS

    assert set(BUILTINS["chunker"]) <= set(CHUNKERS)


BASELINE_SMALL = [
    ("token", {"max_tokens": 8}),
    ("token", {"max_tokens": 8, "overlap_tokens": 3}),
    ("sentence", {"max_tokens": 8}),
    ("sentence", {"max_tokens": 12, "target_tokens": 6, "overlap_tokens": 2}),
    ("paragraph", {"max_tokens": 8}),
    ("recursive", {"max_tokens": 8}),
    ("recursive", {"max_tokens": 10, "overlap_tokens": 4, "splitter": "regex"}),
    ("structure", {"max_tokens": 8}),
    ("semantic", {"max_tokens": 8, "breakpoint_percentile": 50.0, "min_tokens": 3}),
    ("recursive", {"max_tokens": 16, "tokenizer": "cl100k"}),
]


@pytest.mark.parametrize(("name", "params"), BASELINE_SMALL, ids=[f"{n}-{i}" for i, (n, _p) in enumerate(BASELINE_SMALL)])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXTS)
def test_baseline_chunkers_at_small_caps(name: str, params: dict[str, Any], text: str):
    """Small caps force every level of the cascade, cuts inside words and the exact-count repair."""
    chunker = build_with_fakes("chunker", name, **params)
    doc = Document.from_text(text)
    chunks = chunker.chunk(doc)
    check_invariants(chunker, doc, chunks, params["max_tokens"])
