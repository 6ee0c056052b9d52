"""The ``chroma`` protocol against a reference implementation of Chroma's published evaluation.

The reference below is written from the description of Chroma's chunking evaluation ("Evaluating
Chunking Strategies for Retrieval" and its public evaluation framework), not from ragkit's code,
and deliberately works on *sets of character positions* instead of range arithmetic:

* a chunk is placed either at its own offsets (``exact``) or, as Chroma's code places it, at the
  first occurrence of its text in its corpus after dropping one trailing full stop (``reference``);
* per question, the retrieved chunks of the question's corpus are intersected with each reference
  excerpt; an intersection exists when the larger start is ≤ the smaller end (touching counts);
* numerator = characters in the union of those intersections; recall = numerator / Σ excerpt
  lengths; precision = numerator / Σ lengths of all retrieved chunks (any corpus, overlaps counted
  each time); IoU = numerator / (that precision denominator + Σ over excerpts of their characters
  no retrieved chunk of the corpus covers);
* precision Ω: the same with every chunk of the corpus that meets an excerpt taken as retrieved,
  and denominator = characters in the union of those chunks and the excerpts.

ragkit's implementation and this reference get the same random cases (documents with repeated
passages, so string search often lands on an earlier copy) and must agree exactly, in both modes.
"""

from __future__ import annotations

import random

import pytest

from ragkit.datasets import EvalQuestion, Span
from ragkit.eval import metrics as M
from ragkit.eval.protocols import ChunkPositions, chroma_row, chunks_by_document
from ragkit.types import Chunk, Document, ScoredChunk

# ------------------------------------------------------------------------------------------ reference


def ref_place(corpus: str, text: str, start: int, end: int, mode: str) -> tuple[int, int]:
    """Where a chunk is scored: its offsets, or Chroma's string search (first occurrence, trailing '.' dropped)."""
    if mode == "exact":
        return start, end
    target = text[:-1] if text.endswith(".") else text
    for i in range(len(corpus) - len(target) + 1):  # the first position where the text occurs
        if corpus[i:i + len(target)] == target:
            return i, i + len(target)
    raise AssertionError("a verbatim chunk is always found")


def chars(start: int, end: int) -> set[int]:
    return set(range(start, end))


def meets(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return max(a[0], b[0]) <= min(a[1], b[1])


def ref_scores(retrieved: list[tuple[str, int, int]], excerpts: list[tuple[str, int, int]]) -> tuple[float, ...]:
    """recall, precision, IoU of one question; ``retrieved`` are placed chunks ``(corpus, start, end)``."""
    corpus = excerpts[0][0]
    hit: set[int] = set()
    for c_corpus, c_start, c_end in retrieved:
        if c_corpus != corpus:
            continue
        for _, e_start, e_end in excerpts:
            if meets((c_start, c_end), (e_start, e_end)):
                hit |= chars(c_start, c_end) & chars(e_start, e_end)
    covered_by_chunks = set().union(*[chars(s, e) for c, s, e in retrieved if c == corpus])
    numerator = len(hit)
    recall_den = sum(e - s for _, s, e in excerpts)
    precision_den = sum(e - s for _, s, e in retrieved)
    unused = sum(len(chars(s, e) - covered_by_chunks) for _, s, e in excerpts)
    div = lambda a, b: a / b if b else 0.0  # noqa: E731
    return div(numerator, recall_den), div(numerator, precision_den), div(numerator, precision_den + unused)


def ref_omega(all_chunks: list[tuple[str, int, int]], excerpts: list[tuple[str, int, int]]) -> float:
    corpus = excerpts[0][0]
    relevant = [(s, e) for c, s, e in all_chunks
                if c == corpus and any(meets((s, e), (es, ee)) for _, es, ee in excerpts)]
    if not relevant:
        return 0.0
    chunk_chars = set().union(*[chars(s, e) for s, e in relevant])
    excerpt_chars = set().union(*[chars(s, e) for _, s, e in excerpts])
    union = chunk_chars | excerpt_chars
    return len(chunk_chars & excerpt_chars) / len(union) if union else 0.0


# ------------------------------------------------------------------------------------------ random cases
WORDS = ["Rates rose.", "Sales fell.", "Net income", "grew", "in 2019.", "Costs", "were flat.", "."]


def random_document(rng: random.Random) -> str:
    passages = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4))) for _ in range(3)]
    return " ".join(rng.choice(passages) for _ in range(rng.randint(4, 12)))  # passages repeat


def random_case(rng: random.Random) -> tuple[list[Document], list[Chunk], EvalQuestion, list[Chunk]]:
    docs = [Document.from_text(random_document(rng) + f" [{i}]", metadata={"corpus": f"c{i}"})
            for i in range(rng.randint(1, 3))]
    chunks = []
    for doc in docs:  # random spans, overlapping at times, many ending in '.'
        for _ in range(rng.randint(3, 10)):
            start = rng.randrange(len(doc.text) - 1)
            end = min(len(doc.text), start + rng.randint(1, 40))
            if rng.random() < 0.5:  # end on a full stop where there is one
                stop = doc.text.find(".", start, end + 10)
                end = stop + 1 if stop >= 0 else end
            chunks.append(Chunk.from_span(doc, start, end, 1))
    gold_doc = rng.choice(docs)
    gold = []
    for _ in range(rng.randint(1, 4)):
        start = rng.randrange(len(gold_doc.text) - 1)
        gold.append(Span(gold_doc.id, start, min(len(gold_doc.text), start + rng.randint(1, 30))))
    q = EvalQuestion("q", "?", gold_spans=tuple(gold), metadata={"corpus": gold_doc.metadata["corpus"]})
    top = [rng.choice(chunks) for _ in range(5)]  # any corpus, repeats possible
    return docs, chunks, q, top


@pytest.mark.parametrize("mode", ["exact", "reference"])
def test_ragkit_equals_the_reference_on_random_cases(mode: str) -> None:
    rng = random.Random(14)
    moved = 0
    for _ in range(3000):
        docs, chunks, q, top = random_case(rng)
        text_of = {d.id: d.text for d in docs}

        def placed(chunk: Chunk, text_of: dict[str, str] = text_of) -> tuple[str, int, int]:
            start, end = ref_place(text_of[chunk.doc_id], chunk.text, chunk.start, chunk.end, mode)
            return chunk.doc_id, start, end

        excerpts = [(s.doc_id, s.start, s.end) for s in q.gold_spans]
        expected = (*ref_scores([placed(c) for c in top], excerpts), ref_omega([placed(c) for c in chunks], excerpts))
        moved += sum(placed(c)[1:] != (c.start, c.end) for c in top)

        positions = ChunkPositions(mode, text_of)
        row = chroma_row(q, [ScoredChunk(c, 1.0) for c in top], positions,
                         positions.index_spans(chunks_by_document(chunks)))
        assert (row["recall"], row["precision"], row["iou"], row["precision_omega"]) == expected
        # the metric functions on their own, fed the same placed spans
        theirs = M.chroma_span_scores([positions.span(c) for c in top], q.gold_spans)
        assert (theirs.recall, theirs.precision, theirs.iou) == expected[:3]
        assert M.chroma_precision_omega([positions.span(c) for c in chunks], q.gold_spans) == expected[3]
    if mode == "reference":
        assert moved > 1000  # the cases do exercise string search landing elsewhere (earlier copy, dropped '.')


def test_reference_mode_credits_a_later_copy_with_the_first_copys_gold() -> None:
    """The difference the two modes make on a duplicated passage (``finance.md`` has many)."""
    doc = Document.from_text("Revenue rose 4%. Costs fell. Revenue rose 4%. Staff grew.", metadata={"corpus": "f"})
    first, later = Chunk.from_span(doc, 0, 16, 4), Chunk.from_span(doc, 29, 45, 4)
    assert first.text == later.text == "Revenue rose 4%."
    q = EvalQuestion("q", "How much did revenue rise?", gold_spans=(Span(doc.id, 0, 15),), metadata={"corpus": "f"})
    exact = chroma_row(q, [ScoredChunk(later, 1.0)])
    where = ChunkPositions("reference", {doc.id: doc.text})
    reference = chroma_row(q, [ScoredChunk(later, 1.0)], where)
    assert exact["recall"] == 0.0 and reference["recall"] == 1.0
    assert reference["precision"] == 1.0  # 15 gold characters of the 15 it is placed on (the '.' dropped)
