"""EvalDataset / EvalQuestion / Span: lookups, selection, partitions and fingerprints."""

from __future__ import annotations

import pytest

from ragkit.datasets import EvalDataset, EvalQuestion, Span
from ragkit.errors import DatasetError
from ragkit.types import Document


def _dataset(pooled: bool) -> EvalDataset:
    docs = [Document.from_text(t, source_id=s, metadata={"corpus": c})
            for t, s, c in [("Alpha.", "a", "x"), ("Beta.", "b", "y")]]
    questions = [EvalQuestion(f"q{i}", f"Q{i}?", gold_spans=(Span(docs[d].id, 0, 5),),
                              metadata={"corpus": c}) for i, (c, d) in enumerate([("x", 0), ("x", 0), ("y", 1)])]
    return EvalDataset("toy", docs, questions, {"pooled": pooled})


def test_lookups_and_errors() -> None:
    ds = _dataset(pooled=True)
    assert ds.by_source("b").text == "Beta." and ds.document(ds.documents[0].id).text == "Alpha."
    with pytest.raises(DatasetError, match="no document with source_id 'zz'"):
        ds.by_source("zz")
    with pytest.raises(DatasetError, match="no document with id"):
        ds.document("0" * 64)
    assert Span("d", 2, 7).length == 5 and tuple(Span("d", 2, 7)) == ("d", 2, 7)


def test_select_and_partitions() -> None:
    pooled, split = _dataset(pooled=True), _dataset(pooled=False)
    assert [name for name, _ in pooled.partitions()] == ["all"]
    parts = dict(split.partitions())
    assert set(parts) == {"x", "y"} and len(parts["x"].questions) == 2 and len(parts["y"].documents) == 1
    assert len(pooled.select(limit=1).questions) == 2  # one per corpus
    with pytest.raises(DatasetError, match="unknown corpus/subset"):
        pooled.select(corpora=["z"])
    with pytest.raises(DatasetError, match="positive number"):
        pooled.select(limit=0)


def test_fingerprints() -> None:
    ds = _dataset(pooled=True)
    fewer = ds.select(limit=1)
    assert fewer.documents_fingerprint() == ds.documents_fingerprint()  # same documents: same index
    assert fewer.fingerprint() != ds.fingerprint()
    assert ds.summary()["gold_spans"] == 3 and ds.questions[0].to_query().metadata == {"corpus": "x"}
