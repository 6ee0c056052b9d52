"""Sentence splitting: exact, trimmed, ordered spans from every splitter."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ragkit.errors import ConfigError
from ragkit.text.sentences import SPLITTERS, split_sentences


def assert_valid_spans(text: str, spans: list[tuple[int, int]]) -> None:
    previous_end = 0
    for start, end in spans:
        assert previous_end <= start < end <= len(text)
        piece = text[start:end]
        assert piece == piece.strip() and piece
        previous_end = end
    # nothing but whitespace is left out
    covered = set()
    for start, end in spans:
        covered.update(range(start, end))
    assert all(text[i].isspace() for i in range(len(text)) if i not in covered)


@pytest.mark.parametrize("splitter", ["nupunkt", "regex"])
def test_simple_text(splitter):
    text = "Paris is in France. Rome is in Italy!  Is Berlin in Germany?\n\nYes."
    sentences = [text[a:b] for a, b in split_sentences(text, splitter)]
    assert sentences == ["Paris is in France.", "Rome is in Italy!", "Is Berlin in Germany?", "Yes."]


def test_nupunkt_knows_abbreviations():
    text = "Dr. Smith arrived at 5 p.m. on Monday. He left."
    assert [text[a:b] for a, b in split_sentences(text)] == ["Dr. Smith arrived at 5 p.m. on Monday.", "He left."]


@pytest.mark.parametrize("name", ["chatlogs", "finance", "pubmed", "state_of_the_union", "wikitexts"])
def test_corpus_spans_are_valid(chroma_texts, name):
    text = chroma_texts[name]
    spans = split_sentences(text)
    assert len(spans) > 100
    assert_valid_spans(text, spans)


def test_finance_corpus_is_fast(chroma_texts):
    split_sentences("Warm up. The model.")
    start = time.perf_counter()
    split_sentences(chroma_texts["finance"])
    assert time.perf_counter() - start < 5.0  # ~0.1 s when the machine is idle


def test_empty_and_whitespace():
    for splitter in ("nupunkt", "regex"):
        assert split_sentences("", splitter) == []
        assert split_sentences(" \n\t ", splitter) == []


def test_unknown_splitter():
    with pytest.raises(ConfigError, match=r"unknown sentence splitter 'spacy'.*nupunkt, regex"):
        split_sentences("A. B.", "spacy")
    assert SPLITTERS == ("nupunkt", "regex")


def test_nltk_splitter_is_refused_with_the_reason_and_the_replacement():
    # removed (issue 23.6): its punkt_tab data cannot be installed offline; nupunkt is the same algorithm
    with pytest.raises(ConfigError, match=r"'nltk' was removed: .*punkt_tab.*cannot be installed offline.*"
                                          r"Use splitter: nupunkt \(the default.*or splitter: regex"):
        split_sentences("One. Two.", "nltk")


def test_no_ragkit_module_imports_nltk():
    import ragkit

    root = Path(ragkit.__file__).parent
    users = [p for p in root.rglob("*.py") if re.search(r"^\s*(import|from)\s+nltk\b|require\(\s*['\"]nltk",
                                                            p.read_text(encoding="utf-8"), re.M)]
    assert users == []


@settings(max_examples=100, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("ab .!?\n\r\t\u2028é😀\u0301\"')")), max_size=200),
       splitter=st.sampled_from(["nupunkt", "regex"]))
def test_spans_are_valid_on_any_text(text, splitter):
    assert_valid_spans(text, split_sentences(text, splitter))
