"""The Qasper sample (``qasper_sample``): papers rendered as Markdown, evidence paragraphs as gold.

``qasper-original-sample.json`` (upstream, 10 papers, ``split: full``) or ``qasper_sample.dev.json``
(dev subset, 8 papers) holds concatenated JSON objects, one per paper. Each paper becomes one
Markdown document (:func:`render_qasper_paper`); evidence paragraphs are located in the rendering;
figure/table evidence and evidence that is not a paragraph of the paper are counted as excluded.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ragkit.datasets.files import full_or_dev
from ragkit.datasets.records import EvalDataset, EvalQuestion, Span
from ragkit.datasets.root import dataset_dir
from ragkit.errors import DatasetError
from ragkit.types import Document

__all__ = ["load_qasper", "render_qasper_paper"]


def _iter_json_objects(text: str, path: Path) -> list[dict[str, Any]]:
    decoder, pos, out = json.JSONDecoder(), 0, []
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return out
        try:
            obj, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}: object {len(out)} is not valid JSON ({exc})") from exc
        out.append(obj)


def render_qasper_paper(paper: Mapping[str, Any]) -> tuple[str, list[tuple[int, int, int, str]], list[tuple[int, int]]]:
    """Render a Qasper paper as Markdown: ``# title``, ``## Abstract``, then sections by ``:::`` nesting.

    Returns ``(text, headings, paragraph_spans)``; headings are ``(start, end, level, title)`` of the
    heading lines, paragraph spans are in ``full_text`` order (empty paragraphs get ``(-1, -1)``).

    Example:
        >>> text, heads, paras = render_qasper_paper({"title": "T", "abstract": "A.",
        ...     "full_text": {"section_name": ["Intro ::: Aim"], "paragraphs": [["P."]]}})
        >>> print(text)
        # T
        <BLANKLINE>
        ## Abstract
        <BLANKLINE>
        A.
        <BLANKLINE>
        ## Intro
        <BLANKLINE>
        ### Aim
        <BLANKLINE>
        P.
        >>> [h[3] for h in heads], text[paras[0][0]:paras[0][1]]
        (['T', 'Abstract', 'Intro', 'Aim'], 'P.')
    """
    parts: list[str] = []
    headings: list[tuple[int, int, int, str]] = []
    paragraph_spans: list[tuple[int, int]] = []
    pos = 0

    def add_block(block: str) -> tuple[int, int]:
        nonlocal pos
        if parts:
            parts.append("\n\n")
            pos += 2
        start = pos
        parts.append(block)
        pos += len(block)
        return start, pos

    def add_heading(level: int, title: str) -> None:
        start, end = add_block("#" * level + " " + title)
        headings.append((start, end, level, title))

    add_heading(1, paper["title"].strip())
    if paper.get("abstract", "").strip():
        add_heading(2, "Abstract")
        add_block(paper["abstract"].strip())
    open_path: list[str] = []
    full = paper["full_text"]
    for name, paragraphs in zip(full["section_name"], full["paragraphs"]):
        path = [p.strip() for p in (name or "").split(":::") if p.strip()]
        if path:
            common = 0
            while common < min(len(path), len(open_path)) and path[common] == open_path[common]:
                common += 1
            if common == len(path):  # same section again: repeat its heading
                common -= 1
            for depth in range(common, len(path)):
                add_heading(depth + 2, path[depth])
            open_path = path
        for paragraph in paragraphs:
            if paragraph.strip():
                paragraph_spans.append(add_block(paragraph))
            else:
                paragraph_spans.append((-1, -1))
    return "".join(parts), headings, paragraph_spans


def load_qasper(root: Path, subset: Sequence[str] | None = None) -> EvalDataset:
    """Qasper sample (dev): papers rendered as Markdown; gold = evidence paragraphs located in the rendering.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "qasper_sample").mkdir()
        >>> paper = {"id": "p1", "title": "T", "abstract": "A.",
        ...          "full_text": {"section_name": ["Intro"], "paragraphs": [["We use BM25."]]},
        ...          "qas": {"question_id": ["q1"], "question": ["Which ranker?"], "answers": [{"answer": [
        ...              {"extractive_spans": ["BM25"], "evidence": ["We use BM25."]}]}]}}
        >>> _ = (root / "qasper_sample" / "qasper_sample.dev.json").write_text(json.dumps(paper))
        >>> ds = load_qasper(root)
        >>> q = ds.questions[0]
        >>> q.answers, ds.document(q.gold_spans[0].doc_id).text[q.gold_spans[0].start:q.gold_spans[0].end]
        (('BM25',), 'We use BM25.')
    """
    folder = dataset_dir(root, "qasper_sample")
    path, split = full_or_dev(folder, "qasper-original-sample.json")
    papers = _iter_json_objects(path.read_text(encoding="utf-8"), path)
    if subset:
        known = {p["id"] for p in papers}
        bad = [s for s in subset if s not in known]
        if bad:
            raise DatasetError(f"qasper_sample: unknown paper id {bad}; papers are {', '.join(sorted(known))}")
        papers = [p for p in papers if p["id"] in set(subset)]
    excluded: Counter[str] = Counter()
    docs, questions = [], []
    for paper in papers:
        text, headings, para_spans = render_qasper_paper(paper)
        doc = Document.from_text(text, source_id=paper["id"], metadata={
            "corpus": "qasper", "title": paper["title"], "headings": headings, "format": "markdown"})
        docs.append(doc)
        located: dict[str, tuple[int, int]] = {}
        for para, span in zip((p for ps in paper["full_text"]["paragraphs"] for p in ps), para_spans):
            if span[0] >= 0:
                located.setdefault(para, span)  # duplicate paragraphs: first occurrence
                located.setdefault(para.strip(), span)
        qas = paper["qas"]
        for qid, question, answer_block in zip(qas["question_id"], qas["question"], qas["answers"]):
            answers, evidence = [], []
            for ans in answer_block["answer"]:
                if ans.get("unanswerable"):
                    answers.append("Unanswerable")
                elif ans.get("extractive_spans"):
                    answers.append(", ".join(ans["extractive_spans"]))
                elif ans.get("free_form_answer", "").strip():
                    answers.append(ans["free_form_answer"].strip())
                elif ans.get("yes_no") is not None:
                    answers.append("Yes" if ans["yes_no"] else "No")
                for ev in ans.get("evidence", []):
                    if ev not in evidence:
                        evidence.append(ev)
            spans = []
            for ev in evidence:
                if ev.startswith("FLOAT SELECTED"):
                    excluded["qasper: figure/table evidence"] += 1
                elif ev in located or ev.strip() in located:
                    start, end = located.get(ev) or located[ev.strip()]
                    spans.append(Span(doc.id, start, end))
                else:
                    excluded["qasper: evidence not a paragraph of the paper"] += 1
            if not evidence:
                excluded["qasper: questions without evidence"] += 1
            questions.append(EvalQuestion(
                id=qid, text=question, answers=tuple(dict.fromkeys(answers)), gold_spans=tuple(dict.fromkeys(spans)),
                gold_passages=(paper["id"],), metadata={"split": split, "corpus": "qasper", "paper": paper["id"]},
            ))
    return EvalDataset("qasper_sample", docs, questions, {
        "split": split, "pooled": True, "hit_rule": "contain", "excluded": dict(excluded),
        "gold": "union of all annotators' evidence paragraphs, located in the Markdown rendering",
    })
