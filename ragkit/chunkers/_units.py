"""Sentence units shared by the model-driven chunkers (perplexity, margin, intent, cluster).

One place decides how a document is cut into the sentences those chunkers score, embed or group:

- :func:`sentence_spans`: the splitter's sentences with blank spans dropped; never empty for
  non-blank text (the trimmed text is one sentence when the splitter finds none).
- :func:`sentence_units`: those sentences with any sentence above ``max_unit_tokens`` cut at token
  boundaries, plus every unit's token count (batched).

Example:
    >>> text = "One two. Three four five.\\n\\nSix."
    >>> [text[s:e] for s, e in sentence_spans(text, "regex")]
    ['One two.', 'Three four five.', 'Six.']
"""

from __future__ import annotations

from typing import Any

from ragkit.chunkers._merge import split_at_tokens

Span = tuple[int, int]


def sentence_spans(text: str, splitter: str = "nupunkt") -> list[Span]:
    """Sentence spans of ``text`` from :func:`ragkit.text.sentences.split_sentences`, blank spans dropped.

    Non-blank text always yields at least one span (the text without surrounding whitespace when
    the splitter finds no sentence).

    Example:
        >>> sentence_spans("  no final stop  ", "regex")
        [(2, 15)]
        >>> sentence_spans("   ")
        []
    """
    from ragkit.text.sentences import split_sentences

    spans = [(s, e) for s, e in split_sentences(text, splitter) if e > s and text[s:e].strip()]
    if not spans and text.strip():
        spans = [(len(text) - len(text.lstrip()), len(text.rstrip()))]
    return spans


def sentence_units(text: str, splitter: str, tokenizer: Any, max_unit_tokens: int) -> tuple[list[Span], list[int]]:
    """Sentences of ``text`` (those above ``max_unit_tokens`` cut at token boundaries) and their token counts.

    ``tokenizer`` is a :class:`ragkit.text.tokenizers.Tokenizer` (``count_many`` and ``offsets``).

    Example:
        >>> from ragkit.text.tokenizers import get_tokenizer
        >>> text = "One two three four five six. Seven."
        >>> spans, counts = sentence_units(text, "nupunkt", get_tokenizer("minilm"), 4)
        >>> [text[s:e] for s, e in spans], counts
        (['One two three four', 'five six.', 'Seven.'], [4, 3, 2])
    """
    spans = sentence_spans(text, splitter)
    counts = tokenizer.count_many([text[s:e] for s, e in spans])
    units: list[Span] = []
    unit_tokens: list[int] = []
    for (s, e), c in zip(spans, counts):
        if c <= max_unit_tokens:
            units.append((s, e))
            unit_tokens.append(c)
            continue
        pieces = split_at_tokens(text, s, e, max_unit_tokens, tokenizer)
        units.extend(pieces)
        unit_tokens.extend(tokenizer.count_many([text[a:b] for a, b in pieces]))
    return units, unit_tokens
