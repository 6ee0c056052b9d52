"""chroma_chunking_eval on the real shared data: counts, and gold spans reproduce the published references."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ragkit.datasets import EvalDataset, Span, load_dataset
from ragkit.types import sha256_hex


def test_chroma_counts_and_spans_reproduce_references(
    shared_root: Path, gold_text: Callable[[EvalDataset, Span], str]
) -> None:
    ds = load_dataset("chroma_chunking_eval", data_root=shared_root)
    assert len(ds.documents) == 5 and len(ds.questions) == 377
    assert sum(len(q.gold_spans) for q in ds.questions) == 621
    per = {c: sum(1 for q in ds.questions if q.corpus == c) for c in ds.corpora()}
    assert per == {"state_of_the_union": 60, "wikitexts": 116, "finance": 77, "chatlogs": 45, "pubmed": 79}
    lengths = {d.metadata["source_id"]: len(d.text) for d in ds.documents}
    assert lengths == {"chatlogs": 40_000, "finance": 737_905, "pubmed": 500_000,
                       "state_of_the_union": 48_051, "wikitexts": 118_372}
    for q in ds.questions:
        assert [gold_text(ds, s) for s in q.gold_spans] == q.metadata["references"]
    assert ds.pooled and ds.hit_rule == "contain" and ds.partitions()[0][0] == "all"


def test_chroma_doc_ids_match_the_file_text(shared_root: Path) -> None:
    ds = load_dataset("chroma_chunking_eval", data_root=shared_root, subset="chatlogs")
    text = (shared_root / "chroma_chunking_eval" / "chatlogs.md").read_text(encoding="utf-8")
    assert [d.id for d in ds.documents] == [sha256_hex(text)]
    assert len(ds.questions) == 45
