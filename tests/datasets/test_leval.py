"""leval_longdoc on the real shared data: (document, question) deduplication and verbatim-answer gold."""

from __future__ import annotations

from pathlib import Path

from ragkit.datasets import load_dataset


def test_leval_dedup_and_verbatim_gold(shared_root: Path) -> None:
    ds = load_dataset("leval_longdoc", data_root=shared_root)
    per = {c: sum(1 for q in ds.questions if q.corpus == c) for c in ds.corpora()}
    assert per == {"legal_contract_qa": 102, "natural_question": 84, "scientific_qa": 120}
    assert len(ds.documents) == 48
    excluded = ds.metadata["excluded"]
    assert excluded["natural_question: non-verbatim answers (no span)"] == 2
    assert excluded["scientific_qa: duplicate document-question pairs merged"] == 19
    legal = [q for q in ds.questions if q.corpus == "legal_contract_qa"]
    assert all(len(q.gold_spans) == 1 for q in legal)
    for q in ds.questions:
        for s in q.gold_spans:
            doc = ds.document(s.doc_id)
            text = doc.text[s.start:s.end]
            assert text in [a.strip() for a in q.answers]
            assert doc.text.find(text) == s.start  # first occurrence
    with_span = sum(1 for q in ds.questions if q.gold_spans)
    no_span = sum(v for k, v in excluded.items() if "(no span)" in k)
    assert with_span + no_span == len(ds.questions)
