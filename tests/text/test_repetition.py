"""Repetition measures and the answer loop guard (issue 23.5)."""

from __future__ import annotations

import pytest

from ragkit.text.repetition import (
    cut_at_repeat,
    first_repeated_sentence,
    has_loop,
    repeated_ngram,
    sentences_with_offsets,
)

# what SmolLM2-135M answered to a quickstart question before the generation defaults (abridged)
LOOPING = ("The index phase on Ray is done by the `ragkit index configs/quickstart.yaml` command. The command is "
           "executed when a killed run leaves the previous index loadable. The command is executed when a killed run "
           "leaves the previous index loadable.\n\nThe command is executed when a killed run leaves the previous "
           "index loadable. The command is executed when a killed run leaves")


def test_sentence_offsets_index_the_text() -> None:
    text = "  First one. Second?\n\n- a bullet\nLast!  "
    spans = sentences_with_offsets(text)
    assert [text[a:b] for a, b in spans] == ["First one.", "Second?", "- a bullet", "Last!"]


def test_loop_guard_cuts_before_the_first_verbatim_repeat() -> None:
    cut = cut_at_repeat(LOOPING)
    assert cut.cut and cut.repeated == "The command is executed when a killed run leaves the previous index loadable."
    assert cut.text.endswith("leaves the previous index loadable.") and cut.text.count("The command is") == 1
    assert cut.removed_chars == len(LOOPING) - len(cut.text)
    assert not has_loop(cut.text) and has_loop(LOOPING)
    assert cut.to_trace() == {"cut": True, "repeated_sentence": cut.repeated, "removed_chars": cut.removed_chars}


@pytest.mark.parametrize("text", [
    "Yes. Yes. Yes.",                                             # sentences under 3 words do not count
    "```\ncode\n```\n\n```\nmore\n```",                           # repeated fences are not a loop
    "BM25 ranks words [1]. Dense retrieval ranks meaning [2].",
])
def test_guard_leaves_answers_without_a_repeated_sentence(text: str) -> None:
    cut = cut_at_repeat(text)
    assert not cut.cut and cut.text == text and cut.removed_chars == 0


def test_repeat_matching_folds_case_and_whitespace() -> None:
    text = "The store is atomic. It renames a folder.  the  STORE is atomic."
    start, end = first_repeated_sentence(text)
    assert text[start:end] == "the  STORE is atomic."


def test_ngram_loop_needs_three_occurrences_of_a_word_4gram() -> None:
    assert repeated_ngram("a b c d, a b c d; a b c d") == ("a", "b", "c", "d")
    assert repeated_ngram("a b c d, a b c d") is None
    assert has_loop("- `laxm` is a variant of bm25s. - `mcm` is a variant of bm25s. - `x` is a variant of bm25s.")
    assert not has_loop("Ragkit writes the new index to a temporary folder and renames it into place [1].")
