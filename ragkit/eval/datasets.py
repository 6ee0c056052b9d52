"""Evaluation datasets: documents, questions and gold evidence, loaded the same way every time.

Four shared sets are built in (``chroma_chunking_eval``, ``hipporag_multihop``, ``qasper_sample``,
``leval_longdoc``); anything else is read in the generic format (``datasets/README.md``). Gold
evidence is always expressed on *documents* (character spans ``(doc_id, start, end)`` and passage
ids = document ``source_id``), never on chunks, so every chunker is scored against the same gold.

Data root precedence: explicit ``data_root`` (``--data-root``) > ``$RAGKIT_DATA`` > the config's
``data_root`` > ``../shared/datasets`` relative to the working directory.

Example:
    >>> ds = load_dataset("chroma_chunking_eval", subset=["chatlogs"])  # doctest: +SKIP
    >>> q = ds.questions[0]  # doctest: +SKIP
    >>> doc = ds.document(q.gold_spans[0].doc_id)  # doctest: +SKIP
    >>> doc.text[q.gold_spans[0].start:q.gold_spans[0].end] == q.metadata["references"][0]  # doctest: +SKIP
    True
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

from ragkit.errors import DatasetError
from ragkit.types import Document, Query, sha256_hex

#: Environment variable naming the data root (second in the precedence order).
DATA_ENV = "RAGKIT_DATA"
#: Default data root, relative to the working directory.
DEFAULT_DATA_ROOT = Path("..") / "shared" / "datasets"

HIT_RULES = ("contain", "overlap")


class Span(NamedTuple):
    """A character range ``[start, end)`` of document ``doc_id`` (a plain tuple: ``(doc_id, start, end)``)."""

    doc_id: str
    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class EvalQuestion:
    """One evaluation question with its gold evidence.

    Attributes:
        id: stable question id (the dataset's own id where it has one).
        text: the question.
        answers: reference answer first, then aliases (may be empty: span-only datasets).
        gold_spans: gold evidence as character spans of the dataset's documents.
        gold_passages: gold passage ids (document ``source_id`` values), where the dataset has them.
        metadata: ``split``, ``corpus`` and dataset-specific fields.

    Example:
        >>> q = EvalQuestion("q1", "Who?", answers=("Ada",), gold_spans=(Span("d", 0, 3),))
        >>> q.to_query().text
        'Who?'
    """

    id: str
    text: str
    answers: tuple[str, ...] = ()
    gold_spans: tuple[Span, ...] = ()
    gold_passages: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def corpus(self) -> str:
        return str(self.metadata.get("corpus", ""))

    def to_query(self) -> Query:
        """The question as a ragkit :class:`~ragkit.types.Query` (same id)."""
        return Query(id=self.id, text=self.text, metadata={"corpus": self.corpus})

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "answers": list(self.answers),
                "gold_spans": [list(s) for s in self.gold_spans], "gold_passages": list(self.gold_passages),
                "metadata": dict(self.metadata)}


@dataclass
class EvalDataset:
    """Documents, questions and how to score them.

    ``metadata`` records ``hit_rule`` (``contain``: a gold span counts as covered when the retrieved
    chunks contain all of it), ``pooled`` (whether all corpora share one index), the ``split`` and the
    counts of excluded gold (``excluded``), so reports can say what was left out and why.

    Example:
        >>> ds = EvalDataset("toy", [Document.from_text("abc", source_id="a")], [])
        >>> ds.by_source("a").text
        'abc'
    """

    name: str
    documents: list[Document]
    questions: list[EvalQuestion]
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._by_id = {d.id: d for d in self.documents}
        self._by_source = {str(d.metadata.get("source_id")): d for d in self.documents
                           if d.metadata.get("source_id") is not None}

    @property
    def hit_rule(self) -> str:
        return str(self.metadata.get("hit_rule", "contain"))

    @property
    def pooled(self) -> bool:
        return bool(self.metadata.get("pooled", True))

    def document(self, doc_id: str) -> Document:
        """The document with id ``doc_id``."""
        try:
            return self._by_id[doc_id]
        except KeyError:
            raise DatasetError(f"dataset {self.name!r} has no document with id {doc_id[:16]}...") from None

    def by_source(self, source_id: str) -> Document:
        """The document whose ``metadata["source_id"]`` is ``source_id``."""
        try:
            return self._by_source[source_id]
        except KeyError:
            raise DatasetError(f"dataset {self.name!r} has no document with source_id {source_id!r}") from None

    def corpora(self) -> list[str]:
        """Corpus names in first-appearance order (documents first, then questions)."""
        seen = dict.fromkeys(str(d.metadata.get("corpus", "")) for d in self.documents)
        seen.update(dict.fromkeys(q.corpus for q in self.questions))
        return list(seen)

    def partitions(self) -> list[tuple[str, EvalDataset]]:
        """``[("all", self)]`` for pooled datasets, else one ``(corpus, sub-dataset)`` per corpus."""
        if self.pooled or len(self.corpora()) <= 1:
            return [("all" if self.pooled else (self.corpora() or ["all"])[0], self)]
        return [(c, self.select(corpora=[c])) for c in self.corpora()]

    def select(self, corpora: Sequence[str] | None = None, limit: int | None = None) -> EvalDataset:
        """A sub-dataset: only ``corpora`` (documents and questions), at most ``limit`` questions per corpus."""
        docs, questions = self.documents, self.questions
        if corpora is not None:
            wanted = set(corpora)
            unknown = wanted - set(self.corpora())
            if unknown:
                raise DatasetError(
                    f"dataset {self.name!r}: unknown corpus/subset {sorted(unknown)}; available: "
                    f"{', '.join(self.corpora())}. Fix the dataset's subset list."
                )
            docs = [d for d in docs if d.metadata.get("corpus") in wanted]
            questions = [q for q in questions if q.corpus in wanted]
        if limit is not None:
            if limit <= 0:
                raise DatasetError(f"limit must be a positive number of questions per corpus, got {limit}")
            per: Counter[str] = Counter()
            kept = []
            for q in questions:
                if per[q.corpus] < limit:
                    kept.append(q)
                    per[q.corpus] += 1
            questions = kept
        meta = dict(self.metadata)
        if corpora is not None:
            meta["subset"] = list(corpora)
        return EvalDataset(self.name, list(docs), list(questions), meta)

    def fingerprint(self) -> str:
        """Hash of the documents and questions (keys result files)."""
        return sha256_hex(self.name, self.documents_fingerprint(), [q.to_dict() for q in self.questions])[:16]

    def documents_fingerprint(self) -> str:
        """Hash of the documents only (names index stores: a new question set reuses the index)."""
        return sha256_hex(sorted(d.id for d in self.documents))[:16]

    def summary(self) -> dict[str, Any]:
        """Counts for reports: documents, characters, questions, gold spans, exclusions."""
        return {
            "name": self.name,
            "documents": len(self.documents),
            "characters": sum(len(d.text) for d in self.documents),
            "questions": len(self.questions),
            "questions_with_gold_spans": sum(1 for q in self.questions if q.gold_spans),
            "gold_spans": sum(len(q.gold_spans) for q in self.questions),
            "corpora": dict(Counter(q.corpus for q in self.questions)),
            **{k: v for k, v in self.metadata.items() if k in ("hit_rule", "pooled", "split", "excluded", "subset")},
        }


# ---------------------------------------------------------------------------------------------- data root
def resolve_data_root(data_root: str | Path | None = None, config_data_root: str | Path | None = None) -> Path:
    """The data root by precedence: ``data_root`` > ``$RAGKIT_DATA`` > ``config_data_root`` > ``../shared/datasets``.

    Raises:
        DatasetError: the chosen root does not exist (the message says which rule chose it).

    Example:
        >>> resolve_data_root("/tmp").as_posix()
        '/tmp'
    """
    for value, how in ((data_root, "--data-root"), (os.environ.get(DATA_ENV), f"${DATA_ENV}"),
                       (config_data_root, "the config's data_root"),
                       (DEFAULT_DATA_ROOT, "the default ../shared/datasets (relative to the working directory)")):
        if value:
            root = Path(value).expanduser()
            if not root.is_dir():
                raise DatasetError(
                    f"data root {str(root)!r} (from {how}) does not exist or is not a directory "
                    f"(working directory: {Path.cwd()}). Evaluation data is expected there, one folder per "
                    f"dataset (e.g. {root / 'chroma_chunking_eval'}). Point --data-root or ${DATA_ENV} at the "
                    "folder holding the datasets, or run from the project root next to ../shared/datasets."
                )
            return root
    raise AssertionError("unreachable")  # pragma: no cover


def _dataset_dir(root: Path, folder: str) -> Path:
    path = root / folder
    if not path.is_dir():
        raise DatasetError(
            f"dataset folder {str(path)!r} is missing under the data root {str(root)!r}. Copy or link the "
            f"dataset there, or point --data-root / ${DATA_ENV} at the folder that contains {folder!r}."
        )
    return path


def _require(path: Path) -> Path:
    if not path.is_file():
        raise DatasetError(f"dataset file {str(path)!r} is missing; the dataset folder looks incomplete "
                           "(see its SOURCE.md for the expected files)")
    return path


def _read_json(path: Path) -> Any:
    try:
        return json.loads(_require(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc}); the file may be truncated") from exc


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for lineno, line in enumerate(_require(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{lineno}: not a JSON object per line ({exc}); fix or remove the line") from exc
        if not isinstance(row, dict):
            raise DatasetError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
        rows.append(row)
    return rows


def document_from_file(path: Path, source_id: str, **meta: Any) -> Document:
    """A corpus file loaded by ``ragkit.loaders`` (same text, id and headings), with stable evaluation metadata.

    The machine-specific ``path`` is dropped and ``source_id`` replaced by the dataset's own name for
    the file, so chunk caches keyed by document fingerprints hold across data roots and machines.
    """
    from ragkit.loaders import load_corpus

    loaded = load_corpus([path])
    if len(loaded) != 1:
        raise DatasetError(f"corpus file {str(path)!r} is empty or unreadable; the dataset looks damaged")
    doc = loaded[0]
    kept = {k: v for k, v in doc.metadata.items() if k not in ("path", "source_id")}
    return replace(doc, metadata={**kept, "source_id": source_id, **meta})


# ---------------------------------------------------------------------------------------------- chroma
CHROMA_CORPORA = ("state_of_the_union", "wikitexts", "chatlogs", "finance", "pubmed")


def load_chroma(root: Path, subset: Sequence[str] | None = None) -> EvalDataset:
    """Chroma's general chunking evaluation (dev): five corpus files, questions with exact gold spans."""
    folder = _dataset_dir(root, "chroma_chunking_eval")
    corpora = list(subset) if subset else list(CHROMA_CORPORA)
    bad = [c for c in corpora if c not in CHROMA_CORPORA]
    if bad:
        raise DatasetError(f"chroma_chunking_eval: unknown corpus {bad}; subsets are {', '.join(CHROMA_CORPORA)}")
    docs = {c: document_from_file(_require(folder / f"{c}.md"), c, corpus=c) for c in corpora}
    questions = []
    with _require(folder / "questions_dev.csv").open(encoding="utf-8", newline="") as fh:
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
                id=f"chroma-dev-{index:04d}", text=row["question"], gold_spans=tuple(spans),
                gold_passages=(corpus,),
                metadata={"split": "dev", "corpus": corpus, "row": index,
                          "references": [r["content"] for r in refs]},
            ))
    return EvalDataset("chroma_chunking_eval", list(docs.values()), questions, {
        "split": "dev", "pooled": True, "hit_rule": "contain", "excluded": {},
        "gold": "character spans as published (offsets into the corpus file read as UTF-8)",
    })


# ---------------------------------------------------------------------------------------------- hipporag
HIPPORAG_SUBSETS = ("hotpotqa", "musique")


def _hotpotqa(folder: Path, excluded: Counter[str]) -> tuple[list[Document], list[EvalQuestion]]:
    corpus: dict[str, list[str]] = _read_json(folder / "hotpotqa_train_corpus.json")
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
    for item in _read_json(folder / "hotpotqa_train.dev.json"):
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
            metadata={"split": "dev", "corpus": "hotpotqa", "type": item.get("type"), "level": item.get("level")},
        ))
    return list({d.id: d for d in docs.values()}.values()), questions


def _musique(folder: Path, excluded: Counter[str]) -> tuple[list[Document], list[EvalQuestion]]:
    corpus = _read_json(folder / "musique_train_corpus.json")
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
    for item in _read_json(folder / "musique_train.dev.json"):
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
            gold_passages=tuple(passages), metadata={"split": "dev", "corpus": "musique", "type": hops},
        ))
    return list(by_text.values()), questions


def load_hipporag(root: Path, subset: Sequence[str] | None = None) -> EvalDataset:
    """HippoRAG's HotpotQA and MuSiQue samples (dev), open-corpus setting, one index per subset."""
    folder = _dataset_dir(root, "hipporag_multihop")
    subsets = list(subset) if subset else list(HIPPORAG_SUBSETS)
    bad = [s for s in subsets if s not in HIPPORAG_SUBSETS]
    if bad:
        raise DatasetError(f"hipporag_multihop: unknown subset {bad}; subsets are {', '.join(HIPPORAG_SUBSETS)}")
    excluded: Counter[str] = Counter()
    docs: list[Document] = []
    questions: list[EvalQuestion] = []
    for name in subsets:
        d, q = (_hotpotqa if name == "hotpotqa" else _musique)(folder, excluded)
        docs += d
        questions += q
    return EvalDataset("hipporag_multihop", docs, questions, {
        "split": "dev", "pooled": False, "hit_rule": "contain", "excluded": dict(excluded),
        "gold": "HotpotQA: supporting-sentence spans in per-title documents; MuSiQue: supporting paragraphs "
                "(whole per-paragraph documents), matched by exact text",
    })


# ---------------------------------------------------------------------------------------------- qasper
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
    """Qasper sample (dev): papers rendered as Markdown; gold = evidence paragraphs located in the rendering."""
    folder = _dataset_dir(root, "qasper_sample")
    path = _require(folder / "qasper_sample.dev.json")
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
                gold_passages=(paper["id"],), metadata={"split": "dev", "corpus": "qasper", "paper": paper["id"]},
            ))
    return EvalDataset("qasper_sample", docs, questions, {
        "split": "dev", "pooled": True, "hit_rule": "contain", "excluded": dict(excluded),
        "gold": "union of all annotators' evidence paragraphs, located in the Markdown rendering",
    })


# ---------------------------------------------------------------------------------------------- L-Eval
LEVAL_TASKS = ("legal_contract_qa", "natural_question", "scientific_qa")
_NON_SPAN_ANSWERS = {"yes", "no", "unanswerable"}
_HTML_HEADING = re.compile(r"<H([1-6])>(.*?)</H\1>", re.DOTALL)


def _nq_headings(text: str) -> list[tuple[int, int, int, str]]:
    return [(m.start(), m.end(), int(m.group(1)), " ".join(m.group(2).split())) for m in _HTML_HEADING.finditer(text)]


def load_leval(root: Path, subset: Sequence[str] | None = None) -> EvalDataset:
    """L-Eval long-document QA (dev): deduplicated (document, question) pairs; gold = first verbatim answer."""
    folder = _dataset_dir(root, "leval_longdoc")
    tasks = list(subset) if subset else list(LEVAL_TASKS)
    bad = [t for t in tasks if t not in LEVAL_TASKS]
    if bad:
        raise DatasetError(f"leval_longdoc: unknown task {bad}; subsets are {', '.join(LEVAL_TASKS)}")
    excluded: Counter[str] = Counter()
    docs: dict[str, Document] = {}
    questions: list[EvalQuestion] = []
    for task in tasks:
        rows = _read_jsonl(folder / f"{task}.dev.jsonl")
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
                metadata={"split": "dev", "corpus": task, "document": rank[text]},
            ))
    return EvalDataset("leval_longdoc", list(docs.values()), questions, {
        "split": "dev", "pooled": False, "hit_rule": "contain", "excluded": dict(excluded),
        "gold": "first verbatim occurrence of the reference answer in its document",
    })


# ---------------------------------------------------------------------------------------------- generic
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
    """A dataset in the generic format (see ``datasets/README.md``)."""
    spec: dict[str, Any] = {}
    spec_path = folder / "dataset.json"
    if spec_path.is_file():
        spec = _read_json(spec_path)
    name = name or spec.get("name") or folder.name
    docs: list[Document] = []
    if (folder / "documents.jsonl").is_file():
        for i, row in enumerate(_read_jsonl(folder / "documents.jsonl")):
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
    for i, row in enumerate(_read_jsonl(qpath)):
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


# ---------------------------------------------------------------------------------------------- registry
Loader = Callable[[Path, Sequence[str] | None], EvalDataset]

#: Built-in datasets: ``name: (loader, subsets, description)``.
DATASETS: dict[str, tuple[Loader, tuple[str, ...], str]] = {
    "chroma_chunking_eval": (load_chroma, CHROMA_CORPORA, "Chroma's chunking benchmark: 5 corpora, gold char spans"),
    "hipporag_multihop": (load_hipporag, HIPPORAG_SUBSETS, "HotpotQA + MuSiQue multi-hop, supporting evidence"),
    "qasper_sample": (load_qasper, (), "Qasper papers as Markdown, evidence paragraphs"),
    "leval_longdoc": (load_leval, LEVAL_TASKS, "L-Eval long documents, verbatim answer spans"),
}


def _as_list(subset: str | Iterable[str] | None) -> list[str] | None:
    if subset is None:
        return None
    if isinstance(subset, str):
        return [s.strip() for s in subset.split(",") if s.strip()]
    return list(subset)


def load_dataset(name: str, data_root: str | Path | None = None, subset: str | Iterable[str] | None = None, *,
                 config_data_root: str | Path | None = None, limit: int | None = None) -> EvalDataset:
    """Load a built-in dataset by name, or a generic-format folder ``<data root>/<name>`` (or a path).

    Args:
        name: ``chroma_chunking_eval``, ``hipporag_multihop``, ``qasper_sample``, ``leval_longdoc``, or the
            name of a generic-format folder under the data root (a path to such a folder also works).
        data_root: explicit root (``--data-root``); see :func:`resolve_data_root` for the precedence.
        subset: corpora / subsets to keep (``"hotpotqa"``, ``["chatlogs", "wikitexts"]``, ``"a,b"``).
        config_data_root: the config's ``data_root`` (third in the precedence).
        limit: keep at most this many questions per corpus (file order).

    Raises:
        DatasetError: unknown name, missing root or files, malformed data.

    Example:
        >>> ds = load_dataset("hipporag_multihop", subset="musique")  # doctest: +SKIP
        >>> len(ds.questions), ds.metadata["pooled"]  # doctest: +SKIP
        (80, False)
    """
    subsets = _as_list(subset)
    if name in DATASETS:
        root = resolve_data_root(data_root, config_data_root)
        loader = DATASETS[name][0]
        dataset = loader(root, subsets)
    else:
        candidate = Path(name).expanduser()
        if not (candidate.is_dir() and (candidate / "questions.jsonl").is_file()):
            root = resolve_data_root(data_root, config_data_root)
            candidate = root / name
        if not (candidate / "questions.jsonl").is_file():
            raise DatasetError(
                f"unknown dataset {name!r}: not a built-in ({', '.join(DATASETS)}) and no generic-format folder "
                f"with questions.jsonl at {str(candidate)!r}. Put your data there (see datasets/README.md) or "
                "fix the name."
            )
        dataset = load_generic(candidate)
        if subsets:
            dataset = dataset.select(corpora=subsets)
    dataset.metadata.setdefault("subset", subsets)
    if limit is not None:
        dataset = dataset.select(limit=limit)
    return dataset


def dataset_spec(spec: str | Mapping[str, Any]) -> dict[str, Any]:
    """Normalise an experiment's ``dataset`` entry to ``{name, subset, limit}``."""
    if isinstance(spec, str):
        return {"name": spec, "subset": None, "limit": None}
    if not isinstance(spec, Mapping) or "name" not in spec:
        raise DatasetError(f"dataset: expected a name or a mapping {{name, subset}}, got {spec!r}")
    unknown = set(spec) - {"name", "subset", "limit"}
    if unknown:
        raise DatasetError(f"dataset: unknown keys {sorted(unknown)}; allowed: name, subset, limit")
    return {"name": spec["name"], "subset": _as_list(spec.get("subset")), "limit": spec.get("limit")}
