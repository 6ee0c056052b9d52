"""Config paths resolve against the config file's folder; ``--set`` values against the working directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragkit.cli import app
from ragkit.config.load import load_config

CONFIG = """\
version: 1
backends:
  llm: {default: {type: fake}}
  embeddings: {default: {type: fake}}
cache: {mode: "off"}
corpus: {paths: ["docs/*.md"]}
index:
  store: index-store
  chunker: {type: token, max_tokens: 32}
query:
  questions: questions.jsonl
output: {dir: out}
"""


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    (folder / "docs").mkdir(parents=True)
    (folder / "docs" / "store.md").write_text("# Store\n\nThe index store is written atomically.\n", encoding="utf-8")
    (folder / "questions.jsonl").write_text('{"id": "q1", "question": "How is the store written?"}\n', encoding="utf-8")
    (folder / "rag.yaml").write_text(CONFIG, encoding="utf-8")
    return folder


def test_run_from_another_directory_reads_and_writes_beside_the_config(project: Path, tmp_path: Path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = CliRunner().invoke(app, ["run", str(project / "rag.yaml")])
    assert result.exit_code == 0, result.output
    assert result.stdout.rstrip().endswith(f"output: {project / 'out'}")
    answers = [json.loads(line) for line in (project / "out" / "answers.jsonl").read_text().splitlines()]
    assert [a["id"] for a in answers] == ["q1"] and answers[0]["chunks"]
    assert (project / "index-store").is_dir() and not any(elsewhere.iterdir())


def test_relative_config_path_and_set_overrides(project: Path, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(project.parent)
    (project.parent / "other.jsonl").write_text('{"id": "o1", "question": "x?"}\n', encoding="utf-8")
    cfg = load_config(Path("project/rag.yaml"), ["query.questions=other.jsonl", "output.dir=runs/x"])
    assert cfg["corpus"]["paths"] == [str(project / "docs" / "*.md")]
    assert cfg["index"]["store"] == str(project / "index-store")
    assert cfg["query"]["questions"] == str(project.parent / "other.jsonl")  # --set: the working directory
    assert cfg["output"]["dir"] == str(project.parent / "runs" / "x")


def test_memory_store_and_mapping_configs_are_left_alone(tmp_path: Path):
    config = tmp_path / "c.yaml"
    config.write_text("version: 1\nindex: {store: ':memory:'}\n", encoding="utf-8")
    assert load_config(config)["index"]["store"] == ":memory:"
    assert load_config({"corpus": {"paths": ["docs"]}})["corpus"]["paths"] == ["docs"]


def test_shipped_configs_resolve_from_their_folder(tmp_path: Path, monkeypatch):
    repo = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(tmp_path)
    cfg = load_config(repo / "configs" / "quickstart.yaml")
    assert Path(cfg["query"]["questions"]).is_file()
    assert cfg["corpus"]["paths"] == [str(repo / "docs" / "**" / "*.md"), str(repo / "README.md")]
