"""Chroma's chunking evaluation (``chroma_chunking_eval``): five corpus files, questions with exact gold spans.

Files: ``<corpus>.md`` for each of :data:`CHROMA_CORPORA` and ``questions_df.csv`` (the upstream file:
all 472 questions, ``split: full``) or, in a development checkout, ``questions_dev.csv`` (its dev rows,
``split: dev``), with columns ``question``,
``references`` as a JSON list of ``{content, start_index, end_index}``, ``corpus_id``). Offsets index
the corpus file read as UTF-8; a reference that does not reproduce its content is an error.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

from ragkit.datasets.files import document_from_file, full_or_dev, require
from ragkit.datasets.records import EvalDataset, EvalQuestion, Span
from ragkit.datasets.root import dataset_dir
from ragkit.errors import DatasetError

__all__ = ["CHROMA_CORPORA", "load_chroma"]

#: The five corpora (subsets), in Chroma's order.
CHROMA_CORPORA = ("state_of_the_union", "wikitexts", "chatlogs", "finance", "pubmed")


def load_chroma(root: Path, subset: Sequence[str] | None = None) -> EvalDataset:
    """Chroma's general chunking evaluation (full or dev): five corpus files, questions with exact gold spans.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "chroma_chunking_eval").mkdir()
        >>> _ = (root / "chroma_chunking_eval" / "chatlogs.md").write_text("Hi there. Bye now.", encoding="utf-8")
        >>> refs = json.dumps([{"content": "Bye now.", "start_index": 10, "end_index": 18}])
        >>> with (root / "chroma_chunking_eval" / "questions_dev.csv").open("w", encoding="utf-8", newline="") as fh:
        ...     csv.writer(fh).writerows([["question", "references", "corpus_id"], ["The end?", refs, "chatlogs"]])
        >>> ds = load_chroma(root, ["chatlogs"])
        >>> span = ds.questions[0].gold_spans[0]
        >>> ds.document(span.doc_id).text[span.start:span.end], ds.questions[0].corpus
        ('Bye now.', 'chatlogs')
    """
    folder = dataset_dir(root, "chroma_chunking_eval")
    corpora = list(subset) if subset else list(CHROMA_CORPORA)
    bad = [c for c in corpora if c not in CHROMA_CORPORA]
    if bad:
        raise DatasetError(f"chroma_chunking_eval: unknown corpus {bad}; subsets are {', '.join(CHROMA_CORPORA)}")
    docs = {c: document_from_file(require(folder / f"{c}.md"), c, corpus=c) for c in corpora}
    questions = []
    path, split = full_or_dev(folder, "questions_df.csv")
    with path.open(encoding="utf-8", newline="") as fh:
        for index, row in enumerate(csv.DictReader(fh)):
            corpus = row["corpus_id"]
            if corpus not in docs:
                continue
            doc = docs[corpus]
            refs = json.loads(row["references"])
            spans = []
            for ref in refs:
                start, end = int(ref["start_index"]), int(ref["end_index"])
                if doc.text[start:end] != ref["content"]:
                    raise DatasetError(
                        f"chroma_chunking_eval row {index}: reference [{start}, {end}) does not reproduce its "
                        f"content in {corpus}.md; the corpus file differs from the published one"
                    )
                spans.append(Span(doc.id, start, end))
            questions.append(EvalQuestion(
                id=f"chroma-{split}-{index:04d}", text=row["question"], gold_spans=tuple(spans),
                gold_passages=(corpus,),
                metadata={"split": split, "corpus": corpus, "row": index,
                          "references": [r["content"] for r in refs]},
            ))
    return EvalDataset("chroma_chunking_eval", list(docs.values()), questions, {
        "split": split, "pooled": True, "hit_rule": "contain", "excluded": {},
        "gold": "character spans as published (offsets into the corpus file read as UTF-8)",
    })
