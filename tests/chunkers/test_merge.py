"""The shared Meta-Chunking span utilities: dynamic merge packing, units, the hard token cap."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ragkit.chunkers._merge import cap_spans, finish_spans, measure_spans, merge_spans, split_at_tokens


class WhitespaceTokens:
    """A fake tokenizer: one token per run of non-space characters (offsets exact, counts additive)."""

    def offsets(self, text: str) -> list[tuple[int, int]]:
        return [m.span() for m in re.finditer(r"\S+", text)]

    def count(self, text: str) -> int:
        return len(text.split())

    def count_many(self, texts: Sequence[str]) -> list[int]:
        return [self.count(t) for t in texts]


class CharPairTokens(WhitespaceTokens):
    """Each token is at most two characters of a word (words split like WordPiece continuations)."""

    def offsets(self, text: str) -> list[tuple[int, int]]:
        out = []
        for m in re.finditer(r"\S+", text):
            for k in range(m.start(), m.end(), 2):
                out.append((k, min(k + 2, m.end())))
        return out

    def count(self, text: str) -> int:
        return len(self.offsets(text))


TOK = WhitespaceTokens()


def test_greedy_packing_follows_the_authors_rule():
    spans = [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]
    # running + next <= target joins; otherwise emit and restart with next
    assert merge_spans(spans, [3, 2, 4, 1, 5], target=5) == [(0, 3), (4, 7), (8, 9)]
    assert merge_spans(spans, [1, 1, 1, 1, 1], target=5) == [(0, 9)]
    assert merge_spans(spans, [5, 5, 5, 5, 5], target=5) == spans


def test_first_piece_over_target_gives_no_empty_chunk():
    # the authors' loop emits "" here; ours never does
    merged = merge_spans([(0, 10), (11, 12)], [50, 1], target=5)
    assert merged == [(0, 10), (11, 12)]
    assert all(e > s for s, e in merged)


def test_merge_respects_max_tokens_alongside_target():
    spans = [(0, 1), (2, 3), (4, 5)]
    assert merge_spans(spans, [1, 1, 1], target=100, token_counts=[4, 4, 4], max_tokens=8) == [(0, 3), (4, 5)]


def test_merge_rejects_bad_input():
    with pytest.raises(ValueError, match="positive"):
        merge_spans([(0, 1)], [1], target=0)
    with pytest.raises(ValueError, match="2 spans but 1 lengths"):
        merge_spans([(0, 1), (2, 3)], [1], target=3)


def test_units_words_characters_tokens():
    text = "Alpha beta. Gamma delta epsilon.  Zeta."
    spans = [(0, 11), (12, 32), (34, 39)]
    assert measure_spans(text, spans, "words") == [2, 3, 1]
    assert measure_spans(text, spans, "characters") == [11, 20, 5]
    assert measure_spans(text, spans, "tokens", TOK) == [2, 3, 1]
    with pytest.raises(ValueError, match="needs a tokenizer"):
        measure_spans(text, spans, "tokens")
    # words vs characters give different packings of the same pieces
    assert merge_spans(spans, measure_spans(text, spans, "words"), target=5) == [(0, 32), (34, 39)]
    assert merge_spans(spans, measure_spans(text, spans, "characters"), target=25) == [(0, 11), (12, 39)]


def test_merged_span_keeps_original_whitespace():
    text = "One two.\n\nThree four."
    merged = merge_spans([(0, 8), (10, 21)], [2, 2], target=10)
    assert merged == [(0, 21)]
    assert text[0:21] == "One two.\n\nThree four."


def test_split_at_tokens_prefers_word_starts_and_fits():
    text = "abcdef gh ijklmn"
    pieces = split_at_tokens(text, 0, len(text), 3, CharPairTokens())
    assert all(CharPairTokens().count(text[s:e]) <= 3 for s, e in pieces)
    # "abcdef" is 3 tokens: the cut falls at the word start before "gh"
    assert [text[s:e] for s, e in pieces] == ["abcdef", "gh", "ijklmn"]


def test_cap_splits_at_sentences_then_tokens():
    text = "a b c. d e. f g h i j k l m n o."
    sentences = [(0, 6), (7, 11), (12, len(text))]
    spans, counts = cap_spans(text, [(0, len(text))], sentences, 4, TOK)
    assert all(c <= 4 for c in counts)
    assert counts == [len(text[s:e].split()) for s, e in spans]
    # sentence boundaries are kept where they fit; the long sentence is cut at tokens
    assert text[spans[0][0]:spans[0][1]] == "a b c."
    assert "".join(text[s:e] for s, e in spans).replace(" ", "") == text.replace(" ", "")


def test_finish_spans_caps_then_merges_within_cap():
    text = "a b. c d. e f. g h. i j k l m n."
    sentences = [(0, 4), (5, 9), (10, 14), (15, 19), (20, len(text))]
    spans, counts = finish_spans(text, sentences, sentences, TOK, max_tokens=5, target_length=4,
                                 length_unit="tokens")
    assert spans[:2] == [(0, 9), (10, 19)]
    assert all(c <= 5 for c in counts)
    spans_w, _ = finish_spans(text, sentences, sentences, TOK, max_tokens=None, target_length=100,
                              length_unit="words")
    assert spans_w == [(0, len(text))]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 30), min_size=1, max_size=30), st.integers(1, 60))
def test_merge_properties(lengths: list[int], target: int):
    spans = [(2 * i, 2 * i + 1) for i in range(len(lengths))]
    merged = merge_spans(spans, lengths, target)
    assert merged and all(e > s for s, e in merged)
    assert merged[0][0] == 0 and merged[-1][1] == spans[-1][1]
    # every piece is in exactly one merged span, order kept; multi-piece spans stay within target
    position = 0
    for s, e in merged:
        inside = [i for i, (a, b) in enumerate(spans) if a >= s and b <= e]
        assert inside and inside[0] == position
        position = inside[-1] + 1
        if len(inside) > 1:
            assert sum(lengths[i] for i in inside) <= target
    assert position == len(spans)


def test_span_counter_matches_retokenising(chroma_texts):
    import numpy as np

    from ragkit.chunkers._merge import SpanCounter
    from ragkit.text.tokenizers import get_tokenizer

    tok = get_tokenizer("minilm")
    text = chroma_texts["wikitexts"][:20000]
    rng = np.random.default_rng(0)
    cuts = np.sort(rng.integers(0, len(text), size=(300, 2)), axis=1)
    spans = [(int(a), int(b)) for a, b in cuts if b > a]  # many cut inside words: recounted exactly
    assert SpanCounter(text, tok)(spans) == tok.count_many([text[a:b] for a, b in spans])
    assert SpanCounter(text, TOK)(spans) == [len(text[a:b].split()) for a, b in spans]
