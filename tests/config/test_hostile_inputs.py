"""Exit-2 errors instead of tracebacks (issue 13.7, the rest): list indexes in --set, lone surrogates in
paths, symbolic links that point to themselves inside a corpus folder."""

from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner

from ragkit.cli import app
from ragkit.config.load import apply_overrides
from ragkit.errors import ConfigError
from ragkit.loaders import LoaderWarning, load_corpus


def test_set_with_a_list_index_changes_or_appends_an_item():
    data = {"index": {"enrichers": [{"type": "context_prefix"}]}}
    assert apply_overrides(data, ["index.enrichers.0.type=llm_metadata"])["index"]["enrichers"] == [{"type": "llm_metadata"}]
    assert apply_overrides(data, ["index.enrichers.1.type=llm_metadata"])["index"]["enrichers"][1] == {"type": "llm_metadata"}
    assert apply_overrides({}, ["index.enrichers.0.type=llm_metadata"])["index"]["enrichers"] == [{"type": "llm_metadata"}]
    for bad in ("index.enrichers.5.type=x", "index.enrichers.x.type=x", "index.enrichers.-1.type=x", "index..x=1"):
        with pytest.raises(ConfigError, match="--set"):
            apply_overrides(data, [bad])


def test_validate_exits_2_on_bad_list_index_and_lone_surrogate(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text('version: 1\noutput: {dir: "out\\udc80"}\n')
    result = CliRunner().invoke(app, ["validate", str(config)])
    assert result.exit_code == 2 and "lone surrogate" in result.stderr and "Traceback" not in result.stderr
    config.write_text("version: 1\n")
    result = CliRunner().invoke(app, ["validate", str(config), "--set", "index.enrichers.3.type=llm_metadata"])
    assert result.exit_code == 2 and "not a position" in result.stderr


def test_self_referencing_symlinks_in_a_corpus_are_skipped_with_a_warning(tmp_path):
    (tmp_path / "a.md").write_text("# A\n\nHello.\n")
    os.symlink("loop.md", tmp_path / "loop.md")
    os.symlink("nowhere.txt", tmp_path / "gone.txt")
    for spec in ([tmp_path], [str(tmp_path / "*")]):
        with pytest.warns(LoaderWarning, match="symbolic link"):
            docs = load_corpus(spec)
        assert [d.text for d in docs] == ["# A\n\nHello.\n"]
