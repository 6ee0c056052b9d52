"""Identical documents are never merged silently (issue 13.4): every source stays listed and filterable."""

from __future__ import annotations

import pytest
from store_helpers import make_pipeline

from ragkit.errors import RagkitWarning
from ragkit.types import Document


def test_three_identical_files_keep_every_source(registry, tmp_path):
    text = "Refunds are accepted within 30 days.\nKeep the receipt.\n"
    docs = [Document.from_text(text, metadata={"source_id": f"{name}.md", "team": name}) for name in ("a", "b", "c")]
    docs.append(Document.from_text("Something else entirely.\n", metadata={"source_id": "d.md"}))
    pipeline = make_pipeline(registry, tmp_path / "s", retriever="bm25")
    with pytest.warns(RagkitWarning, match="2 document.*same text.*sources"):
        report = pipeline.index_documents(docs)
    assert report.documents == 2
    for name in ("a", "b", "c"):
        hits = pipeline.retrieve("refunds", k=5, filter={"sources": f"{name}.md"})
        assert hits and all("Refunds" in h.chunk.text or "receipt" in h.chunk.text for h in hits)
    chunk = pipeline.retrieve("refunds", k=1)[0].chunk
    assert chunk.metadata["sources"] == ["a.md", "b.md", "c.md"]
    assert [m["team"] for m in chunk.metadata["merged_metadata"]] == ["b", "c"]


def test_records_sharing_text_keep_their_ids_and_metadata(registry, tmp_path):
    docs = [Document.from_text("Same answer text.\n", metadata={"id": rid, "lang": lang})
            for rid, lang in (("q1", "en"), ("q2", "fr"))]
    pipeline = make_pipeline(registry, tmp_path / "s", retriever="bm25")
    with pytest.warns(RagkitWarning):
        pipeline.index_documents(docs)
    chunk = pipeline.retrieve("answer", k=1)[0].chunk
    assert chunk.metadata["sources"] == ["q1", "q2"] and chunk.metadata["merged_metadata"] == [{"id": "q2", "lang": "fr"}]
    assert pipeline.retrieve("answer", k=1, filter={"sources": "q2"})
