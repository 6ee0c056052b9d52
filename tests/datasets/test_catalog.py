"""The dataset catalogue: load_dataset's name resolution, subsets and limits, and experiment dataset entries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragkit.datasets import DATA_ENV, DATASETS, dataset_spec, load_dataset
from ragkit.errors import DatasetError


def _toy(root: Path, name: str = "toy") -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    docs = [{"id": "a", "text": "Alpha.", "corpus": "x"}, {"id": "b", "text": "Beta.", "corpus": "y"}]
    questions = [{"id": f"q{i}", "question": f"Q{i}?", "corpus": c, "gold_passages": [d]}
                 for i, (c, d) in enumerate([("x", "a"), ("x", "a"), ("y", "b")])]
    (folder / "documents.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs), encoding="utf-8")
    (folder / "questions.jsonl").write_text("".join(json.dumps(q) + "\n" for q in questions), encoding="utf-8")
    return folder


def test_builtins_are_listed_with_their_subsets() -> None:
    assert set(DATASETS) == {"chroma_chunking_eval", "hipporag_multihop", "qasper_sample", "leval_longdoc"}
    loader, subsets, description = DATASETS["leval_longdoc"]  # still a (loader, subsets, description) tuple
    assert subsets == ("legal_contract_qa", "natural_question", "scientific_qa") and callable(loader)
    assert description


def test_missing_folders_and_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="dataset folder .*chroma_chunking_eval.* is missing"):
        load_dataset("chroma_chunking_eval", data_root=tmp_path)
    with pytest.raises(DatasetError, match="unknown dataset 'nope'"):
        load_dataset("nope", data_root=tmp_path)


def test_generic_by_name_subset_and_limit(tmp_path: Path) -> None:
    _toy(tmp_path)
    ds = load_dataset("toy", data_root=tmp_path, subset="x", limit=1)
    assert [q.id for q in ds.questions] == ["q0"] and [d.text for d in ds.documents] == ["Alpha."]
    assert ds.metadata["subset"] == ["x"]
    both = load_dataset("toy", data_root=tmp_path, subset=["x", "y"])
    assert len(both.questions) == 3


def test_root_precedence_reaches_load_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _toy(tmp_path / "env")
    _toy(tmp_path / "config")
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "env"))
    ds = load_dataset("toy", config_data_root=tmp_path / "config")
    assert ds.documents[0].metadata["source_id"] == "a"
    monkeypatch.delenv(DATA_ENV)
    assert load_dataset("toy", config_data_root=tmp_path / "config").name == "toy"


def test_dataset_spec() -> None:
    assert dataset_spec("x") == {"name": "x", "subset": None, "limit": None}
    assert dataset_spec({"name": "x", "subset": "a,b"})["subset"] == ["a", "b"]
    with pytest.raises(DatasetError, match="unknown keys"):
        dataset_spec({"name": "x", "split": "test"})
    with pytest.raises(DatasetError, match="expected a name or a mapping"):
        dataset_spec({"subset": "a"})
