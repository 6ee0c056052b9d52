"""L-Eval long documents (``leval_longdoc``): deduplicated (document, question) pairs, verbatim answer spans.

One ``<task>.jsonl`` (upstream, ``split: full``) or ``<task>.dev.jsonl`` (dev subset) per task in
:data:`LEVAL_TASKS` (``input`` document, ``instructions``,
``outputs``). Repeated pairs merge (another reference answer becomes an alias); gold is the first
verbatim occurrence of a reference answer; yes/no/unanswerable and non-verbatim answers get no span
and are counted as excluded. Natural Questions pages keep their ``<H1>``-``<H6>`` tags as headings.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ragkit.datasets.files import full_or_dev, read_jsonl
from ragkit.datasets.records import EvalDataset, EvalQuestion, Span
from ragkit.datasets.root import dataset_dir
from ragkit.errors import DatasetError
from ragkit.types import Document

__all__ = ["LEVAL_TASKS", "load_leval"]

#: The tasks (subsets); each has its own index.
LEVAL_TASKS = ("legal_contract_qa", "natural_question", "scientific_qa")
_NON_SPAN_ANSWERS = {"yes", "no", "unanswerable"}
_HTML_HEADING = re.compile(r"<H([1-6])>(.*?)</H\1>", re.DOTALL)


def _nq_headings(text: str) -> list[tuple[int, int, int, str]]:
    return [(m.start(), m.end(), int(m.group(1)), " ".join(m.group(2).split())) for m in _HTML_HEADING.finditer(text)]


def load_leval(root: Path, subset: Sequence[str] | None = None) -> EvalDataset:
    """L-Eval long-document QA (dev): deduplicated (document, question) pairs; gold = first verbatim answer.

    Example:
        >>> import json, tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "leval_longdoc").mkdir()
        >>> row = {"input": "The term is two years. Either party may end it.",
        ...        "instructions": ["How long is the term?", "Can it end?"], "outputs": ["two years", "Yes"]}
        >>> _ = (root / "leval_longdoc" / "legal_contract_qa.dev.jsonl").write_text(json.dumps(row) + "\\n")
        >>> ds = load_leval(root, ["legal_contract_qa"])
        >>> [len(q.gold_spans) for q in ds.questions], ds.metadata["excluded"]
        ([1, 0], {'legal_contract_qa: yes/no/unanswerable answers (no span)': 1})
    """
    folder = dataset_dir(root, "leval_longdoc")
    tasks = list(subset) if subset else list(LEVAL_TASKS)
    bad = [t for t in tasks if t not in LEVAL_TASKS]
    if bad:
        raise DatasetError(f"leval_longdoc: unknown task {bad}; subsets are {', '.join(LEVAL_TASKS)}")
    excluded: Counter[str] = Counter()
    docs: dict[str, Document] = {}
    questions: list[EvalQuestion] = []
    splits: list[str] = []
    for task in tasks:
        path, split = full_or_dev(folder, f"{task}.jsonl")
        splits.append(split)
        rows = read_jsonl(path)
        pairs: dict[tuple[str, str], list[str]] = {}
        rank: dict[str, int] = {}
        for row in rows:
            text = row["input"]
            if text not in rank:
                rank[text] = len(rank)
                meta: dict[str, Any] = {"corpus": task, "task": task}
                if task == "natural_question":
                    meta["headings"] = _nq_headings(text)
                docs[text] = Document.from_text(text, source_id=f"{task}:{rank[text]}", metadata=meta)
            for question, answer in zip(row["instructions"], row["outputs"]):
                if (text, question) in pairs:
                    excluded[f"{task}: duplicate document-question pairs merged"] += 1
                answers = pairs.setdefault((text, question), [])
                if answer not in answers:
                    answers.append(answer)  # a repeated pair with another reference answer adds an alias
        for qi, ((text, question), answers) in enumerate(pairs.items()):
            doc = docs[text]
            span = None
            if all(a.strip().lower().rstrip(".") in _NON_SPAN_ANSWERS for a in answers):
                excluded[f"{task}: yes/no/unanswerable answers (no span)"] += 1
            else:
                for answer in answers:
                    if answer.strip().lower().rstrip(".") in _NON_SPAN_ANSWERS or not answer.strip():
                        continue
                    quoted = answer.strip()
                    at = text.find(quoted)
                    if at >= 0:
                        span = Span(doc.id, at, at + len(quoted))
                        break
                if span is None:
                    excluded[f"{task}: non-verbatim answers (no span)"] += 1
            questions.append(EvalQuestion(
                id=f"{task}-{rank[text]:02d}-{qi:03d}", text=question, answers=tuple(answers),
                gold_spans=(span,) if span else (), gold_passages=(str(doc.metadata["source_id"]),),
                metadata={"split": split, "corpus": task, "document": rank[text]},
            ))
    return EvalDataset("leval_longdoc", list(docs.values()), questions, {
        "split": "+".join(dict.fromkeys(splits)), "pooled": False, "hit_rule": "contain", "excluded": dict(excluded),
        "gold": "first verbatim occurrence of the reference answer in its document",
    })
