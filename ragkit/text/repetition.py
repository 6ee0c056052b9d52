"""Repetition in generated text: the answer loop guard and the loop measures used by the benchmarks.

- :func:`sentences_with_offsets` splits text into sentences (after ``.``, ``!``, ``?`` followed by
  space, and at line breaks), with character offsets.
- :func:`first_repeated_sentence` finds the first sentence that repeats an earlier one verbatim
  (whitespace and case folded; only sentences of at least ``min_words`` words count, so short list
  markers, code fences or "Yes." do not trigger it).
- :func:`cut_at_repeat` is the loop guard: the text up to that repeat, and what was cut.
- :func:`repeated_ngram` finds a word n-gram occurring at least ``times`` times;
  :func:`has_loop` is the benchmark's definition of a loop: a word 4-gram repeated >= 3 times, or a
  repeated sentence.

Example:
    >>> text = "Ragkit writes a temporary folder. Then it renames it. Then it renames it. Then"
    >>> cut = cut_at_repeat(text)
    >>> cut.text, cut.repeated
    ('Ragkit writes a temporary folder. Then it renames it.', 'Then it renames it.')
    >>> has_loop(text), has_loop(cut.text)
    (True, False)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_BOUNDARY = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"\w+(?:['’]\w+)*")


def sentences_with_offsets(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of each non-blank sentence of ``text`` (stripped of surrounding space).

    Example:
        >>> t = "One two. Three!\\n- four"
        >>> [t[a:b] for a, b in sentences_with_offsets(t)]
        ['One two.', 'Three!', '- four']
    """
    spans, start = [], 0
    for match in [*_BOUNDARY.finditer(text), None]:
        end = match.start() if match is not None else len(text)
        piece = text[start:end]
        if piece.strip():
            lead = len(piece) - len(piece.lstrip())
            spans.append((start + lead, start + len(piece.rstrip())))
        if match is not None:
            start = match.end()
    return spans


def _normalise(sentence: str) -> str:
    return " ".join(sentence.lower().split())


def first_repeated_sentence(text: str, min_words: int = 3) -> tuple[int, int] | None:
    """The span of the first sentence that repeats an earlier sentence of ``text``, or ``None``.

    Example:
        >>> first_repeated_sentence("A b c. D e f. a  B c.")
        (14, 21)
        >>> first_repeated_sentence("Yes. Yes.") is None
        True
    """
    seen: set[str] = set()
    for start, end in sentences_with_offsets(text):
        sentence = text[start:end]
        if len(_WORD.findall(sentence)) < min_words:
            continue
        key = _normalise(sentence)
        if key in seen:
            return start, end
        seen.add(key)
    return None


@dataclass(frozen=True)
class LoopCut:
    """What :func:`cut_at_repeat` did: the kept ``text``, the ``repeated`` sentence, ``removed_chars``."""

    text: str
    repeated: str | None = None
    removed_chars: int = 0

    @property
    def cut(self) -> bool:
        return self.repeated is not None

    def to_trace(self) -> dict[str, object]:
        return {"cut": self.cut, "repeated_sentence": self.repeated, "removed_chars": self.removed_chars}


def cut_at_repeat(text: str, min_words: int = 3) -> LoopCut:
    """Cut ``text`` just before the first verbatim repeat of one of its sentences (the answer loop guard).

    Everything from the repeat on is dropped, trailing space included; text without a repeat comes
    back unchanged.

    Example:
        >>> cut_at_repeat("No repeat here. Fine.").cut
        False
    """
    found = first_repeated_sentence(text, min_words)
    if found is None:
        return LoopCut(text)
    start, end = found
    kept = text[:start].rstrip()
    return LoopCut(kept, text[start:end], len(text) - len(kept))


def repeated_ngram(text: str, n: int = 4, times: int = 3) -> tuple[str, ...] | None:
    """The first word ``n``-gram (case-folded) that occurs at least ``times`` times in ``text``, or ``None``.

    Example:
        >>> repeated_ngram("a b c d x a b c d y a b c d")
        ('a', 'b', 'c', 'd')
        >>> repeated_ngram("a b c d x a b c d") is None
        True
    """
    words = [w.lower() for w in _WORD.findall(text)]
    counts: dict[tuple[str, ...], int] = {}
    for i in range(len(words) - n + 1):
        gram = tuple(words[i: i + n])
        counts[gram] = counts.get(gram, 0) + 1
        if counts[gram] >= times:
            return gram
    return None


def has_loop(text: str, n: int = 4, times: int = 3, min_words: int = 3) -> bool:
    """A loop: some word ``n``-gram occurs ``times`` times or more, or a sentence repeats verbatim.

    Example:
        >>> has_loop("It stops. It stops.")
        False
        >>> has_loop("It stops here. It stops here.")
        True
    """
    return repeated_ngram(text, n, times) is not None or first_repeated_sentence(text, min_words) is not None
