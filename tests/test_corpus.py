"""ragkit.corpus: a config's corpus section (paths, dataset + subset, Document lists) as documents and questions."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ragkit.corpus import Corpus, corpus_from_spec, documents_from_spec, questions_from_spec
from ragkit.datasets import DATA_ENV
from ragkit.errors import DatasetError, DocumentError
from ragkit.types import Document

SHARED_DATASETS = Path(os.environ.get("RAGKIT_DATA") or Path(__file__).resolve().parents[2] / "shared" / "datasets")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    (tmp_path / "docs" / "a.md").write_text("# A\n\nAlpha.\n", encoding="utf-8")
    (tmp_path / "docs" / "sub" / "b.txt").write_text("Beta.\n", encoding="utf-8")
    return tmp_path


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    folder = tmp_path / "data" / "toy"
    folder.mkdir(parents=True)
    (folder / "documents.jsonl").write_text(
        json.dumps({"id": "a", "text": "Alpha.", "corpus": "x"}) + "\n"
        + json.dumps({"id": "b", "text": "Beta.", "corpus": "y"}) + "\n", encoding="utf-8")
    (folder / "questions.jsonl").write_text(
        json.dumps({"id": "q1", "question": "First?", "corpus": "x", "gold_passages": ["a"]}) + "\n"
        + json.dumps({"id": "q2", "question": "Second?", "corpus": "y", "gold_passages": ["b"]}) + "\n",
        encoding="utf-8")
    return tmp_path / "data"


def test_paths_resolve_against_base_dir_not_the_working_directory(project: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    docs = documents_from_spec({"paths": ["docs/**/*.md", "docs/sub"]}, base_dir=project)
    assert [d.metadata["source_id"] for d in docs] == ["docs/a.md", "docs/sub/b.txt"]
    assert documents_from_spec({"paths": "docs/a.md"}, base_dir=project)[0].text == "# A\n\nAlpha.\n"
    with pytest.raises(DocumentError, match="does not exist"):
        documents_from_spec({"paths": ["docs/a.md"]})  # the working directory has no docs/


def test_config_shaped_mapping_with_empty_keys(project: Path) -> None:
    spec = {"paths": ["docs/a.md"], "dataset": None, "subset": None, "max_bytes": None}  # as the schema fills it
    corpus = corpus_from_spec(spec, base_dir=project)
    assert len(corpus.documents) == 1 and corpus.questions is None and corpus.dataset is None


def test_max_bytes_from_the_spec(project: Path) -> None:
    with pytest.raises(DocumentError, match="max_bytes"):
        documents_from_spec({"paths": ["docs/a.md"], "max_bytes": 3}, base_dir=project)
    with pytest.raises(DocumentError, match="max_bytes"):
        documents_from_spec(["docs/a.md"], base_dir=project, max_bytes=3)


def test_document_lists_pass_through_in_order(project: Path) -> None:
    given = Document.from_text("Given.")
    docs = documents_from_spec([given, "docs/a.md"], base_dir=project)
    assert docs[0] is given and docs[1].metadata["source_id"] == "docs/a.md"
    assert documents_from_spec(given) == [given]
    assert questions_from_spec([given]) is None


def test_dataset_corpus_with_subset(data_root: Path) -> None:
    corpus = corpus_from_spec({"dataset": "toy", "subset": ["y"]}, data_root=data_root)
    assert isinstance(corpus, Corpus) and corpus.dataset is not None
    assert [d.text for d in corpus.documents] == ["Beta."]
    assert [(q.id, q.text, q.metadata) for q in corpus.questions] == [("q2", "Second?", {"corpus": "y"})]
    assert [q.id for q in questions_from_spec({"dataset": "toy"}, data_root=data_root)] == ["q1", "q2"]
    with pytest.raises(DatasetError, match="unknown corpus/subset"):
        documents_from_spec({"dataset": "toy", "subset": ["z"]}, data_root=data_root)


def test_dataset_corpus_follows_the_data_root_precedence(data_root: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATA_ENV, raising=False)
    assert len(documents_from_spec({"dataset": "toy"}, config_data_root=data_root)) == 2
    monkeypatch.setenv(DATA_ENV, str(data_root))
    assert len(documents_from_spec({"dataset": "toy"}, config_data_root=tmp_path / "missing")) == 2
    with pytest.raises(DatasetError, match="from --data-root"):
        documents_from_spec({"dataset": "toy"}, data_root=tmp_path / "missing")


def test_malformed_mappings(project: Path) -> None:
    with pytest.raises(DocumentError, match="neither 'paths' nor 'dataset'"):
        documents_from_spec({"paths": None}, base_dir=project)
    with pytest.raises(DocumentError, match="unknown keys"):
        documents_from_spec({"path": ["x"]}, base_dir=project)
    with pytest.raises(DocumentError, match="both 'paths' and 'dataset'"):
        documents_from_spec({"paths": ["docs"], "dataset": "toy"}, base_dir=project)


@pytest.mark.skipif(not (SHARED_DATASETS / "chroma_chunking_eval").is_dir(), reason="shared datasets not present")
def test_real_dataset_corpus() -> None:
    corpus = corpus_from_spec({"dataset": "chroma_chunking_eval", "subset": ["chatlogs"]}, data_root=SHARED_DATASETS)
    assert len(corpus.documents) == 1 and len(corpus.documents[0].text) == 40_000
    assert len(corpus.questions) == 45 and all(q.metadata["corpus"] == "chatlogs" for q in corpus.questions)
