"""The poisoned evidence set: deterministic, 30 % per corpus, kinds labelled, documents rebuilt exactly."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ragkit.datasets.poisoned import build_records, load_sources, poisoned_instance, read_records

COMMITTED = Path(__file__).resolve().parents[2] / "datasets" / "poisoned_evidence" / "instances.jsonl"


def test_the_committed_set_is_what_the_generator_writes(shared_root):
    records = build_records(load_sources(shared_root), seed=17, rate=0.3)
    assert records == read_records(COMMITTED)
    per = Counter(r["corpus"] for r in records)
    poisoned = Counter(r["corpus"] for r in records if r["kind"])
    assert all(poisoned[c] == round(0.3 * n) for c, n in per.items())
    assert {r["kind"] for r in records if r["kind"]} == {"answer_swap", "injection"}
    assert build_records(load_sources(shared_root), seed=18, rate=0.3) != records


def test_poisoned_instances_rebuild_gold_and_poison_spans(shared_root):
    sources = dict(load_sources(shared_root))
    records = [r for r in read_records(COMMITTED) if r["kind"]]
    for record in records[::7]:
        ds = sources[record["dataset"]]
        original = next(q for q in ds.questions if q.id == record["question_id"])
        doc, question, (start, end) = poisoned_instance(ds, record)
        assert doc.text[start:end] == record["passage"]
        old_doc = ds.document(record["doc_id"])
        for old, new in zip([s for s in original.gold_spans if s.doc_id == old_doc.id],
                            [s for s in question.gold_spans if s.doc_id == doc.id]):
            assert old_doc.text[old.start:old.end] == doc.text[new.start:new.end]
        if record["kind"] == "answer_swap":
            assert record["wrong_answer"].split()[0] in record["passage"]
