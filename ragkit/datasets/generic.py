"""The generic dataset format (``datasets/README.md``): your own documents, questions and gold.

A folder with ``questions.jsonl`` and documents in ``documents.jsonl`` (``id``, ``text``, optional
``corpus`` and ``metadata``) and/or a ``corpus/`` folder of files (loaded by :mod:`ragkit.loaders`,
``source_id`` = the path under ``corpus/``). Gold spans quote the text verbatim or give offsets;
``gold_passages`` alone make the whole passage the evidence. An optional ``dataset.json`` sets
``name``, ``pooled`` and ``hit_rule``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ragkit.datasets.files import document_from_file, read_json, read_jsonl
from ragkit.datasets.records import EvalDataset, EvalQuestion, Span
from ragkit.errors import DatasetError
from ragkit.types import Document

__all__ = ["load_generic"]


def _gold_from_row(row: Mapping[str, Any], docs_by_source: Mapping[str, Document], where: str) -> list[Span]:
    spans = []
    for i, item in enumerate(row.get("gold_spans") or []):
        src = item.get("doc") if isinstance(item, Mapping) else None
        if src is None or str(src) not in docs_by_source:
            raise DatasetError(f"{where}: gold_spans[{i}] names document {src!r}, which is not in the corpus; "
                               f"use a document id from documents.jsonl or a corpus file path (known: "
                               f"{', '.join(list(docs_by_source)[:5])}{'...' if len(docs_by_source) > 5 else ''})")
        doc = docs_by_source[str(src)]
        if "text" in item:
            quoted = str(item["text"])
            at = doc.text.find(quoted)
            if at < 0:
                raise DatasetError(f"{where}: gold_spans[{i}] quotes text that does not occur verbatim in document "
                                   f"{src!r}: {quoted[:80]!r}; quote the document exactly or give start/end offsets")
            spans.append(Span(doc.id, at, at + len(quoted)))
        elif "start" in item and "end" in item:
            start, end = int(item["start"]), int(item["end"])
            if not 0 <= start < end <= len(doc.text):
                raise DatasetError(f"{where}: gold_spans[{i}] = [{start}, {end}) is outside document {src!r} "
                                   f"({len(doc.text)} characters); offsets are Python str indices, end exclusive")
            spans.append(Span(doc.id, start, end))
        else:
            raise DatasetError(f"{where}: gold_spans[{i}] must have either 'text' or 'start' and 'end', got {item!r}")
    return spans


def load_generic(folder: Path, name: str | None = None) -> EvalDataset:
    """A dataset in the generic format (see ``datasets/README.md``).

    Example:
        >>> import json, tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / "documents.jsonl").write_text(json.dumps({"id": "a", "text": "Paris is in France."}))
        >>> _ = (folder / "questions.jsonl").write_text(json.dumps(
        ...     {"question": "Where is Paris?", "gold_spans": [{"doc": "a", "text": "France"}]}))
        >>> ds = load_generic(folder, "mine")
        >>> span = ds.questions[0].gold_spans[0]
        >>> ds.name, ds.document(span.doc_id).text[span.start:span.end]
        ('mine', 'France')
    """
    spec: dict[str, Any] = {}
    spec_path = folder / "dataset.json"
    if spec_path.is_file():
        spec = read_json(spec_path)
    name = name or spec.get("name") or folder.name
    docs: list[Document] = []
    if (folder / "documents.jsonl").is_file():
        for i, row in enumerate(read_jsonl(folder / "documents.jsonl")):
            if "text" not in row:
                raise DatasetError(f"{folder / 'documents.jsonl'} line {i + 1}: missing 'text'")
            source = str(row.get("id", i))
            meta = {"corpus": row.get("corpus", "all"), **(row.get("metadata") or {})}
            docs.append(Document.from_text(row["text"], metadata=meta, source_id=source))
    corpus_dir = folder / "corpus"
    if corpus_dir.is_dir():
        for path in sorted(p for p in corpus_dir.rglob("*") if p.is_file()):
            docs.append(document_from_file(path, path.relative_to(corpus_dir).as_posix(), corpus="all"))
    if not docs:
        raise DatasetError(f"dataset {name!r} at {folder}: no documents; add documents.jsonl (one JSON object per "
                           "line with 'id' and 'text') or a corpus/ folder of text files")
    by_source = {str(d.metadata["source_id"]): d for d in docs}
    questions = []
    qpath = folder / "questions.jsonl"
    for i, row in enumerate(read_jsonl(qpath)):
        where = f"{qpath} line {i + 1}"
        text = row.get("question") or row.get("text")
        if not text:
            raise DatasetError(f"{where}: missing 'question'")
        answers = row.get("answers") or ([row["answer"]] if row.get("answer") else [])
        passages = [str(p) for p in row.get("gold_passages") or []]
        for p in passages:
            if p not in by_source:
                raise DatasetError(f"{where}: gold_passages names {p!r}, which is not a document id of the corpus")
        spans = _gold_from_row(row, by_source, where)
        if not spans and passages:  # passage-level gold: the whole passage is the evidence
            spans = [Span(by_source[p].id, 0, len(by_source[p].text)) for p in passages]
        questions.append(EvalQuestion(
            id=str(row.get("id", f"q{i}")), text=str(text), answers=tuple(str(a) for a in answers),
            gold_spans=tuple(spans), gold_passages=tuple(passages),
            metadata={"split": row.get("split", "dev"), "corpus": row.get("corpus", "all"), **(row.get("metadata") or {})},
        ))
    return EvalDataset(str(name), docs, questions, {
        "split": "dev", "pooled": bool(spec.get("pooled", True)), "hit_rule": spec.get("hit_rule", "contain"),
        "excluded": {}, "gold": "as given in questions.jsonl",
    })
