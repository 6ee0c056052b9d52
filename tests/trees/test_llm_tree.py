"""The LLM tree builder (ToM's HSP): markup parser, title merge, block cut-back, alignment and coverage."""

from __future__ import annotations

import re

import pytest

from ragkit.testing.fakes import FakeLLM
from ragkit.trees._common import Draft
from ragkit.trees.llm import LLMTreeBuilder, align, cut_blocks, merge_by_title, parse_markup, split_keywords
from ragkit.types import Chunk, Document

MARKUP = """Some preface the model added.
***Cities of Europe***
**Keywords**: cities; Europe
**Summary**: Capitals.
***1. France***
**Keywords**: Paris；Eiffel
**Summary**: About France.
***1.1 Paris***
**Original Text**: Paris is the capital of France.
***1.2 Monuments***
**Original Text**: It is known for the Eiffel Tower.
***2. Italy***
**Original Text**: Rome is the capital of Italy.
***4. Spain***
**Original Text**: Madrid hosts a royal palace and many museums.
***3.4 Orphan***
**Original Text**: lost
***3.4.1 Orphan child***
**Original Text**: lost too
"""


def fake_tokens(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]


# ------------------------------------------------------------------ parser
def test_markup_parser_numbered_headings_and_missing_parent():
    root, dropped = parse_markup(MARKUP)
    assert root is not None and root.title == "Cities of Europe" and root.keywords == ["cities", "Europe"]
    assert [c.title for c in root.children] == ["France", "Italy", "Spain"]
    france = root.children[0]
    assert france.keywords == ["Paris", "Eiffel"] and france.summary == "About France."
    assert [c.title for c in france.children] == ["Paris", "Monuments"]
    assert france.children[0].metadata["original_text"] == "Paris is the capital of France."
    assert root.children[1].metadata["number"] == "2"
    assert dropped == 2, "3.4 has no parent 3, and 3.4.1 then has none either"


def test_markup_parser_without_main_title_is_empty():
    assert parse_markup("***1. Intro***\n**Original Text**: x") == (None, 1)
    assert parse_markup("no markup at all") == (None, 0)


def test_keywords_split_on_both_semicolons():
    assert split_keywords("a; b；c") == ["a", "b", "c"]
    assert split_keywords("a, b") == ["a", "b"]


# ------------------------------------------------------------------ merge
def test_title_merge_unites_keywords_and_merges_children_recursively():
    leaf = lambda s: Draft(start=s, end=s + 1)  # noqa: E731
    first = Draft(title="Report", keywords=["a"], summary="S1.",
                  children=[Draft(title="Intro", keywords=["k"], children=[leaf(0)])])
    second = Draft(title=" report ", keywords=["a", "b"], summary="S2.",
                   children=[Draft(title="intro", keywords=["k", "m"], children=[leaf(5)]),
                             Draft(title="Results", children=[leaf(9)])])
    other = Draft(title="Appendix", children=[leaf(12)])
    root = merge_by_title([first, second, other], title="Doc")
    assert [c.title for c in root.children] == ["Report", "Appendix"]
    report = root.children[0]
    assert report.keywords == ["a", "b"] and report.summary == "S1. S2."
    assert [c.title for c in report.children] == ["Intro", "Results"]
    assert report.children[0].keywords == ["k", "m"]
    assert [(d.start, d.end) for d in report.children[0].children] == [(0, 1), (5, 6)]


# ------------------------------------------------------------------ blocks
def test_block_cut_back_to_the_last_delimiter_with_a_fake_tokenizer():
    text = "aa bb. cc dd ee ff gg! hh"
    blocks = cut_blocks(text, fake_tokens(text), 5)
    assert [text[a:b] for a, b in blocks] == ["aa bb.", " cc dd ee ff gg!", " hh"]
    # no delimiter within the block: hard cut after block_tokens tokens
    text = "a b c d e f g"
    assert [text[a:b] for a, b in cut_blocks(text, fake_tokens(text), 3)] == ["a b c", " d e f", " g"]
    # a delimiter only on the first token does not count (cut back to a later token only)
    text = "x. y z w"
    assert [text[a:b] for a, b in cut_blocks(text, fake_tokens(text), 2)] == ["x. y", " z w"]
    # blocks tile the text
    text = "One. Two three! Four - five # six? seven"
    blocks = cut_blocks(text, fake_tokens(text), 3)
    assert blocks[0][0] == 0 and blocks[-1][1] == len(text)
    assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))
    with pytest.raises(ValueError):
        cut_blocks(text, fake_tokens(text), 0)


# ------------------------------------------------------------------ alignment
def test_alignment_exact_normalised_fuzzy_and_missing():
    doc = "Alpha beta gamma delta. Epsilon zeta eta theta iota kappa. Lambda mu."
    assert align(doc, "Epsilon zeta", 0, len(doc))[2] == "exact"
    assert align(doc, "Epsilon\n  zeta", 0, len(doc))[2] == "normalised"
    a, b, how = align(doc, "epsilon zeta eta theta iota KAPPA lambda", 0, len(doc))
    assert how == "fuzzy" and doc[a:b].startswith("Epsilon") and "kappa" in doc[a:b]
    assert align(doc, "completely different words here", 0, len(doc)) is None
    assert align(doc, "Lambda mu.", 0, 20) is None, "search stays inside the block"


def _builder(markup: str, **params) -> LLMTreeBuilder:
    return LLMTreeBuilder(llm=FakeLLM(mode="fixed", responses=[markup]), **params)


def test_leaves_are_verbatim_and_nothing_is_lost():
    text = ("Paris is the capital of France. It is known for the Eiffel Tower. "
            "Rome is the capital of Italy. Pasta is popular there.")
    doc = Document.from_text(text)
    chunks = [Chunk.from_span(doc, 0, 65, 12), Chunk.from_span(doc, 66, len(text), 10)]
    builder = _builder(MARKUP)
    tree = builder.build(doc, chunks)
    leaves = tree.leaves()
    assert [n.title for n in leaves] == ["Paris", "Monuments", "Italy"], "Spain's text is not in the document"
    joined = " ".join(text[n.start:n.end] for n in sorted(leaves, key=lambda n: n.start))
    assert joined == text, "leaves tile the document: dropped text re-attached"
    report = builder.last_report_
    assert report["exact"] == 3 and report["unaligned"] == 1 and report["dropped_nodes"] == 2
    assert report["reattached_chars"] == len("Pastaispopularthere.")
    assert 0.7 < report["coverage"] < 0.85
    assert tree.node(tree.root).metadata["hsp"]["coverage"] == report["coverage"]
    assert {c for n in leaves for c in n.chunk_ids} == {c.id for c in chunks}


def test_unparsable_output_keeps_every_block_as_a_leaf():
    text = "First sentence here. Second sentence here. Third one is here. Fourth and last."
    doc = Document.from_text(text)
    builder = _builder("I cannot do that.", block_tokens=16)
    tree = builder.build(doc, [])
    assert builder.last_report_["blocks"] >= 2 and builder.last_report_["unparsed_blocks"] == builder.last_report_["blocks"]
    leaves = sorted(tree.leaves(), key=lambda n: n.start)
    assert "".join(text[n.start:n.end] for n in leaves).replace(" ", "") == text.replace(" ", "")
    assert builder.last_report_["coverage"] == 0.0


def test_rewritten_leaf_is_aligned_fuzzily_and_overlaps_are_resolved():
    text = "The committee met on Monday and approved the budget for next year after a long debate."
    doc = Document.from_text(text)
    markup = ("***Minutes***\n***1. Meeting***\n**Original Text**: The committee met on Monday and approved the "
              "budget\n***2. Debate***\n**Original Text**: approved the budget for next year after a long debate")
    builder = _builder(markup)
    tree = builder.build(doc, [])
    leaves = sorted(tree.leaves(), key=lambda n: n.start)
    assert [text[n.start:n.end] for n in leaves] == ["The committee met on Monday and approved the budget",
                                                     "for next year after a long debate."]
