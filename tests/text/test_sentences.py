"""Sentence splitting: exact, trimmed, ordered spans from every splitter."""

from __future__ import annotations

import importlib.util
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ragkit.errors import ConfigError, MissingDependencyError
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
    with pytest.raises(ConfigError, match=r"unknown sentence splitter 'spacy'.*nupunkt, nltk, regex"):
        split_sentences("A. B.", "spacy")
    assert SPLITTERS == ("nupunkt", "nltk", "regex")


def test_nltk_without_data_or_package_says_how_to_fix():
    if importlib.util.find_spec("nltk") is None:
        with pytest.raises(MissingDependencyError, match="pip install nltk"):
            split_sentences("One. Two.", "nltk")
        return
    try:
        import nltk

        nltk.data.find("tokenizers/punkt_tab/english/")
    except LookupError:
        with pytest.raises(ConfigError, match="punkt_tab"):
            split_sentences("One. Two.", "nltk")
    else:
        assert split_sentences("One. Two.", "nltk") == [(0, 4), (5, 9)]


@settings(max_examples=100, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("ab .!?\n\r\t\u2028é😀\u0301\"')")), max_size=200),
       splitter=st.sampled_from(["nupunkt", "regex"]))
def test_spans_are_valid_on_any_text(text, splitter):
    assert_valid_spans(text, split_sentences(text, splitter))
