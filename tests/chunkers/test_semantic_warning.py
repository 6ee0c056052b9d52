"""The semantic chunker's truncation warning is about its sentence windows, and only when they are too long."""

from __future__ import annotations

import warnings

from ragkit.chunkers.semantic import SemanticChunker
from ragkit.embeddings.sentence_transformers import SentenceTransformerEmbedder, TruncationWarning
from ragkit.types import Document


def _warnings(text: str, **params) -> list[str]:
    chunker = SemanticChunker(embedder=SentenceTransformerEmbedder(model="minilm"), **params)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        chunker.chunk(Document.from_text(text))
    return [str(w.message) for w in caught if issubclass(w.category, TruncationWarning)]


def test_no_truncation_warning_on_short_sentences():
    text = " ".join(f"Sentence number {i} talks about stores and indexes." for i in range(40))
    assert _warnings(text, max_tokens=200) == []


def test_long_windows_warn_about_buffer_size_not_max_tokens():
    long_sentence = " ".join(["word"] * 300) + "."
    messages = _warnings(f"Short one. {long_sentence} Another short one.", max_tokens=200, buffer_size=1)
    assert messages and all("sentence windows" in m and "buffer_size" in m for m in messages)
    assert not any("max_tokens <=" in m for m in messages)
