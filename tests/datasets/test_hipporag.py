"""hipporag_multihop on the real shared data: counts, supporting-fact gold, subsets and partitions."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ragkit.datasets import EvalDataset, Span, load_dataset
from ragkit.errors import DatasetError


def test_hipporag_counts_gold_and_partitions(shared_root: Path, gold_text: Callable[[EvalDataset, Span], str]) -> None:
    ds = load_dataset("hipporag_multihop", data_root=shared_root)
    assert not ds.pooled
    parts = dict(ds.partitions())
    assert set(parts) == {"hotpotqa", "musique"}
    hot, mus = parts["hotpotqa"], parts["musique"]
    assert (len(hot.documents), len(hot.questions)) == (994, 80)
    assert (len(mus.documents), len(mus.questions)) == (1890, 80)
    corpus = json.loads((shared_root / "hipporag_multihop" / "hotpotqa_train_corpus.json").read_text())
    raw = json.loads((shared_root / "hipporag_multihop" / "hotpotqa_train.dev.json").read_text())
    for q, item in zip(hot.questions, raw):
        facts = list(dict.fromkeys((t, i) for t, i in item["supporting_facts"]))
        assert [gold_text(hot, s) for s in q.gold_spans] == [corpus[t][i].strip() for t, i in facts]
        assert q.answers == (item["answer"],)
    # document text = sentences joined as stored
    doc = hot.by_source("Demon Dice")
    assert doc.text == "".join(corpus["Demon Dice"])
    raw_m = json.loads((shared_root / "hipporag_multihop" / "musique_train.dev.json").read_text())
    assert sum(len(q.gold_spans) for q in mus.questions) == 189
    for q, item in zip(mus.questions, raw_m):
        supporting = [p["paragraph_text"] for p in item["paragraphs"] if p["is_supporting"]]
        assert [gold_text(mus, s) for s in q.gold_spans] == supporting
        assert all(s.start == 0 and s.end == len(mus.document(s.doc_id).text) for s in q.gold_spans)
        assert q.answers[0] == item["answer"] and set(item["answer_aliases"]) <= set(q.answers)
    assert sum(len(q.answers) - 1 for q in mus.questions) == 47


def test_hipporag_subset_selection(shared_root: Path) -> None:
    ds = load_dataset("hipporag_multihop", data_root=shared_root, subset="musique", limit=5)
    assert ds.corpora() == ["musique"] and len(ds.questions) == 5
    with pytest.raises(DatasetError, match="unknown subset.*hotpotqa, musique"):
        load_dataset("hipporag_multihop", data_root=shared_root, subset="2wiki")
