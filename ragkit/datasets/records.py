"""Evaluation records: :class:`Span`, :class:`EvalQuestion` and :class:`EvalDataset`.

Gold evidence is always expressed on *documents* (character spans ``(doc_id, start, end)`` and
passage ids = document ``source_id``), never on chunks, so every chunker is scored against the same
gold.

Example:
    >>> from ragkit.types import Document
    >>> doc = Document.from_text("Ada wrote it.", source_id="a", metadata={"corpus": "toy"})
    >>> q = EvalQuestion("q1", "Who wrote it?", answers=("Ada",), gold_spans=(Span(doc.id, 0, 3),),
    ...                  metadata={"corpus": "toy"})
    >>> ds = EvalDataset("toy", [doc], [q])
    >>> span = ds.questions[0].gold_spans[0]
    >>> ds.document(span.doc_id).text[span.start:span.end]
    'Ada'
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ragkit.errors import DatasetError
from ragkit.types import Document, Query, sha256_hex

__all__ = ["HIT_RULES", "EvalDataset", "EvalQuestion", "Span"]

#: How a gold span counts as retrieved: ``contain`` (the chunks hold all of it) or ``overlap``.
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


