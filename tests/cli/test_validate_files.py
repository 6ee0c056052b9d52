"""``ragkit validate``: experiment files, the questions file, hosted backends' key variables."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from ragkit.cli import app

REPO = Path(__file__).resolve().parents[2]


def test_validate_recognises_experiment_files():
    result = CliRunner().invoke(app, ["validate", str(REPO / "configs/eval/chroma-chunkers.yaml")])
    assert result.exit_code == 0, result.output
    assert "experiment" in result.stdout and "9 variant(s)" in result.stdout and "unknown" not in result.output


def test_validate_reports_a_bad_variant_of_an_experiment(tmp_path: Path):
    experiment = tmp_path / "exp.yaml"
    experiment.write_text("dataset: chroma_chunking_eval\nvariants:\n  - name: bad\n"
                          "    set: {index.chunker: {type: token, max_tokens: 0}}\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", str(experiment)])
    assert result.exit_code == 2 and "bad" in result.stderr and "max_tokens" in result.stderr


def test_validate_checks_the_questions_file(tmp_path: Path):
    config = tmp_path / "c.yaml"
    config.write_text("version: 1\nquery: {questions: missing.jsonl}\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", str(config)])
    assert result.exit_code == 2 and str(tmp_path / "missing.jsonl") in result.stderr
    (tmp_path / "missing.jsonl").write_text('{"id": "q", "question": "x?"}\n', encoding="utf-8")
    assert CliRunner().invoke(app, ["validate", str(config)]).exit_code == 0


def test_validate_warns_when_a_hosted_key_variable_is_unset(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("RAGKIT_TEST_UNSET_KEY", raising=False)
    config = tmp_path / "c.yaml"
    config.write_text("version: 1\nbackends:\n  llm:\n    default: {type: openai, model: gpt-4o-mini, "
                      "api_key_env: RAGKIT_TEST_UNSET_KEY}\n    local: {type: openai, model: m, "
                      "base_url: 'http://127.0.0.1:8765/v1', api_key_env: RAGKIT_TEST_UNSET_KEY}\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", str(config)])
    assert result.exit_code == 0, result.output
    assert "warning:" in result.stderr and "backends.llm.default" in result.stderr
    assert "RAGKIT_TEST_UNSET_KEY" in result.stderr and "backends.llm.local" not in result.stderr
    monkeypatch.setenv("RAGKIT_TEST_UNSET_KEY", "sk-test")
    assert "warning" not in CliRunner().invoke(app, ["validate", str(config)]).stderr
