"""Heading detection: Markdown ATX/setext and WikiText lines, with exact spans."""

from __future__ import annotations

from ragkit.text.headings import find_headings


def test_atx_headings_with_levels_and_closing_hashes():
    text = "# One\nbody\n### Three ###\n####### seven is not a heading\n#nospace\n  ## Indented\n"
    assert find_headings(text) == [(0, 5, 1, "One"), (11, 24, 3, "Three"), (67, 78, 2, "Indented")]
    for start, end, _level, _title in find_headings(text):
        assert text[start:end].lstrip().startswith("#")


def test_setext_needs_three_marks_and_a_text_line():
    text = "Title\n=====\n\nSub\n---\n\n- item\n---\n12\n =\n"
    headings = find_headings(text)
    assert [(h[2], h[3]) for h in headings] == [(1, "Title"), (2, "Sub")]
    assert text[headings[0][0]:headings[0][1]] == "Title\n====="


def test_wikitext_headings():
    text = " = Valkyria = \n Text .\n = = Gameplay = = \n More .\n = = = Music = = = \n == Media ==\n= x\n"
    assert [(h[2], h[3]) for h in find_headings(text)] == [(1, "Valkyria"), (2, "Gameplay"), (3, "Music"), (2, "Media")]
    first = find_headings(text)[0]
    assert text[first[0]:first[1]] == "= Valkyria ="


def test_fenced_code_is_skipped():
    text = "# Real\n```python\n# comment\n```\n~~~\n# also code\n~~~\n## After\n"
    assert [h[3] for h in find_headings(text)] == ["Real", "After"]


def test_wikitexts_corpus(chroma_texts):
    text = chroma_texts["wikitexts"]
    headings = find_headings(text)
    assert len(headings) == 84
    assert headings[0][2:] == (1, "Valkyria Chronicles III")
    assert headings[1][2:] == (2, "Gameplay")
    assert all(text[s:e].startswith("=") and text[s:e].endswith("=") for s, e, _l, _t in headings)


def test_no_headings_in_plain_corpora(chroma_texts):
    for name in ("chatlogs", "finance", "pubmed", "state_of_the_union"):
        assert find_headings(chroma_texts[name]) == []


def test_switches():
    text = "# A\n = B = \nC\n===\n"
    assert [h[3] for h in find_headings(text, atx=False)] == ["B", "C"]
    assert [h[3] for h in find_headings(text, wikitext=False, setext=False)] == ["A"]
