"""qasper_sample: the Markdown rendering, evidence-paragraph gold and the exclusions it reports."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ragkit.datasets import EvalDataset, Span, load_dataset, render_qasper_paper


def test_qasper_rendering_gold_and_exclusions(shared_root: Path, gold_text: Callable[[EvalDataset, Span], str]) -> None:
    ds = load_dataset("qasper_sample", data_root=shared_root)
    assert len(ds.documents) == 8 and len(ds.questions) == 36
    assert ds.metadata["excluded"] == {"qasper: figure/table evidence": 4,
                                       "qasper: evidence not a paragraph of the paper": 1,
                                       "qasper: questions without evidence": 5}
    assert sum(len(q.gold_spans) for q in ds.questions) == 48
    for doc in ds.documents:
        assert doc.text.startswith("# ")
        for start, end, level, title in doc.metadata["headings"]:
            assert doc.text[start:end] == "#" * level + " " + title
    for q in ds.questions:
        for s in q.gold_spans:
            text = gold_text(ds, s)
            assert text.strip() and "\n\n" not in text
    paper = ds.by_source("1705.09665")
    assert "\n\n## Introduction\n\n" in paper.text


def test_render_qasper_nesting_and_untitled_sections() -> None:
    text, heads, paras = render_qasper_paper({
        "title": "T", "abstract": "",
        "full_text": {"section_name": ["", "A ::: B", "A ::: C", "A ::: C", "D"],
                      "paragraphs": [["p0"], ["p1", ""], ["p2"], ["p3"], ["p4"]]}})
    assert [(lvl, t) for _, _, lvl, t in heads] == [(1, "T"), (2, "A"), (3, "B"), (3, "C"), (3, "C"), (2, "D")]
    assert [text[s:e] if s >= 0 else None for s, e in paras] == ["p0", "p1", None, "p2", "p3", "p4"]
