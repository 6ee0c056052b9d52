"""The generic dataset format: documents.jsonl or a corpus/ folder, quoted or offset gold, clear errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from ragkit.datasets import EvalDataset, Span, load_dataset
from ragkit.errors import DatasetError


def test_generic_format(tmp_path: Path, gold_text: Callable[[EvalDataset, Span], str]) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "documents.jsonl").write_text(
        json.dumps({"id": "a", "text": "Alpha beta gamma. Delta epsilon."}) + "\n"
        + json.dumps({"id": "b", "text": "Zeta eta theta."}) + "\n", encoding="utf-8")
    (folder / "questions.jsonl").write_text(
        json.dumps({"id": "q1", "question": "What follows delta?", "answers": ["epsilon"],
                    "gold_spans": [{"doc": "a", "text": "Delta epsilon."}]}) + "\n"
        + json.dumps({"question": "Which has zeta?", "gold_passages": ["b"]}) + "\n"
        + json.dumps({"question": "Offsets?", "gold_spans": [{"doc": "a", "start": 0, "end": 5}]}) + "\n",
        encoding="utf-8")
    ds = load_dataset("mine", data_root=tmp_path)
    q1, q2, q3 = ds.questions
    assert gold_text(ds, q1.gold_spans[0]) == "Delta epsilon." and q1.answers == ("epsilon",)
    assert gold_text(ds, q2.gold_spans[0]) == "Zeta eta theta." and q2.gold_passages == ("b",)
    assert gold_text(ds, q3.gold_spans[0]) == "Alpha"
    assert load_dataset(str(folder)).fingerprint() == ds.fingerprint()
    (folder / "questions.jsonl").write_text(
        json.dumps({"question": "?", "gold_spans": [{"doc": "a", "text": "not there"}]}) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="does not occur verbatim"):
        load_dataset("mine", data_root=tmp_path)
    (folder / "questions.jsonl").write_text(
        json.dumps({"question": "?", "gold_spans": [{"doc": "zz", "start": 0, "end": 1}]}) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="names document 'zz'"):
        load_dataset("mine", data_root=tmp_path)


def test_generic_corpus_folder(tmp_path: Path, gold_text: Callable[[EvalDataset, Span], str]) -> None:
    folder = tmp_path / "files"
    (folder / "corpus").mkdir(parents=True)
    (folder / "corpus" / "one.md").write_text("# One\n\nHello there.\n", encoding="utf-8")
    (folder / "questions.jsonl").write_text(
        json.dumps({"question": "Greeting?", "gold_spans": [{"doc": "one.md", "text": "Hello there."}]}) + "\n",
        encoding="utf-8")
    ds = load_dataset(str(folder))
    assert ds.documents[0].metadata["source_id"] == "one.md"
    assert gold_text(ds, ds.questions[0].gold_spans[0]) == "Hello there."
