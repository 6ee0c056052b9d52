"""HippoRAG's multi-hop samples (``hipporag_multihop``): HotpotQA and MuSiQue, open-corpus setting.

HotpotQA: one document per corpus title (its sentences joined as stored), gold = supporting-sentence
spans. MuSiQue: one document per corpus paragraph, gold = the supporting paragraphs matched by exact
text. The subsets are not pooled: each gets its own index. Questions come from the upstream
``<subset>_train.json`` (100 each, ``split: full``) or the dev subset ``<subset>_train.dev.json``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from ragkit.datasets.files import full_or_dev, read_json
from ragkit.datasets.records import EvalDataset, EvalQuestion, Span
from ragkit.datasets.root import dataset_dir
from ragkit.errors import DatasetError
from ragkit.types import Document

__all__ = ["HIPPORAG_SUBSETS", "load_hipporag"]

#: The subsets, each indexed separately.
HIPPORAG_SUBSETS = ("hotpotqa", "musique")


def _hotpotqa(folder: Path, excluded: Counter[str], splits: list[str]) -> tuple[list[Document], list[EvalQuestion]]:
    corpus: dict[str, list[str]] = read_json(folder / "hotpotqa_train_corpus.json")
    docs: dict[str, Document] = {}
    offsets: dict[str, list[tuple[int, int]]] = {}
    by_text: dict[str, Document] = {}
    for title, sentences in corpus.items():
        text = "".join(sentences)
        bounds, pos = [], 0
        for sentence in sentences:
            bounds.append((pos, pos + len(sentence)))
            pos += len(sentence)
        offsets[title] = bounds
        if not text.strip():
            excluded["hotpotqa: empty corpus titles"] += 1
            continue
        if text in by_text:  # identical text ⇒ identical id: one document, several titles
            doc = by_text[text]
            docs[title] = doc
            continue
        doc = Document.from_text(text, source_id=title, metadata={"corpus": "hotpotqa", "title": title})
        by_text[text] = docs[title] = doc
    questions = []
    path, split = full_or_dev(folder, "hotpotqa_train.json")
    splits.append(split)
    for item in read_json(path):
        spans, passages = [], []
        for title, index in item["supporting_facts"]:
            if title not in docs or index >= len(offsets[title]):
                excluded["hotpotqa: supporting facts not in the corpus"] += 1
                continue
            start, end = offsets[title][index]
            text = docs[title].text
            while start < end and text[start].isspace():
                start += 1
            while end > start and text[end - 1].isspace():
                end -= 1
            if end <= start:
                excluded["hotpotqa: empty supporting sentences"] += 1
                continue
            span = Span(docs[title].id, start, end)
            if span not in spans:
                spans.append(span)
            if title not in passages:
                passages.append(title)
        questions.append(EvalQuestion(
            id=item["_id"], text=item["question"], answers=(item["answer"],), gold_spans=tuple(spans),
            gold_passages=tuple(passages),
            metadata={"split": split, "corpus": "hotpotqa", "type": item.get("type"), "level": item.get("level")},
        ))
    return list({d.id: d for d in docs.values()}.values()), questions


def _musique(folder: Path, excluded: Counter[str], splits: list[str]) -> tuple[list[Document], list[EvalQuestion]]:
    corpus = read_json(folder / "musique_train_corpus.json")
    by_text: dict[str, Document] = {}
    for index, para in enumerate(corpus):
        text = para["text"]
        if not text.strip():
            excluded["musique: empty corpus paragraphs"] += 1
            continue
        if text in by_text:
            excluded["musique: duplicate corpus paragraphs merged"] += 1
            continue
        by_text[text] = Document.from_text(text, source_id=f"{index}:{para['title']}",
                                           metadata={"corpus": "musique", "title": para["title"]})
    questions = []
    path, split = full_or_dev(folder, "musique_train.json")
    splits.append(split)
    for item in read_json(path):
        spans, passages = [], []
        for para in item["paragraphs"]:
            if not para["is_supporting"]:
                continue
            doc = by_text.get(para["paragraph_text"])
            if doc is None:
                excluded["musique: supporting paragraphs not found verbatim in the corpus"] += 1
                continue
            start, end = 0, len(doc.text)
            while doc.text[start].isspace():
                start += 1
            while doc.text[end - 1].isspace():
                end -= 1
            spans.append(Span(doc.id, start, end))
            passages.append(str(doc.metadata["source_id"]))
        answers = tuple(dict.fromkeys([item["answer"], *item.get("answer_aliases", [])]))
        hops = item["id"].split("__", 1)[0]
        questions.append(EvalQuestion(
            id=item["id"], text=item["question"], answers=answers, gold_spans=tuple(spans),
            gold_passages=tuple(passages), metadata={"split": split, "corpus": "musique", "type": hops},
        ))
    return list(by_text.values()), questions


def load_hipporag(root: Path, subset: Sequence[str] | None = None) -> EvalDataset:
    """HippoRAG's HotpotQA and MuSiQue samples (full or dev), open-corpus setting, one index per subset.

    Example:
        >>> import json, tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> folder = root / "hipporag_multihop"
        >>> folder.mkdir()
        >>> _ = (folder / "hotpotqa_train_corpus.json").write_text(json.dumps({"Ada": ["Ada wrote. ", "She died."]}))
        >>> _ = (folder / "hotpotqa_train.dev.json").write_text(json.dumps([{"_id": "h1", "question": "Who wrote?",
        ...     "answer": "Ada", "supporting_facts": [["Ada", 0]]}]))
        >>> ds = load_hipporag(root, ["hotpotqa"])
        >>> span = ds.questions[0].gold_spans[0]
        >>> ds.document(span.doc_id).text[span.start:span.end], ds.questions[0].gold_passages
        ('Ada wrote.', ('Ada',))
    """
    folder = dataset_dir(root, "hipporag_multihop")
    subsets = list(subset) if subset else list(HIPPORAG_SUBSETS)
    bad = [s for s in subsets if s not in HIPPORAG_SUBSETS]
    if bad:
        raise DatasetError(f"hipporag_multihop: unknown subset {bad}; subsets are {', '.join(HIPPORAG_SUBSETS)}")
    excluded: Counter[str] = Counter()
    docs: list[Document] = []
    questions: list[EvalQuestion] = []
    splits: list[str] = []
    for name in subsets:
        d, q = (_hotpotqa if name == "hotpotqa" else _musique)(folder, excluded, splits)
        docs += d
        questions += q
    return EvalDataset("hipporag_multihop", docs, questions, {
        "split": "+".join(dict.fromkeys(splits)), "pooled": False, "hit_rule": "contain", "excluded": dict(excluded),
        "gold": "HotpotQA: supporting-sentence spans in per-title documents; MuSiQue: supporting paragraphs "
                "(whole per-paragraph documents), matched by exact text",
    })
