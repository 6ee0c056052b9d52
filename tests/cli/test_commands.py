"""The command line through Typer's CliRunner: exit codes, messages on stderr, output on stdout."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from typer.testing import CliRunner

from ragkit.cli import app
from ragkit.cli.boundary import show_warning
from ragkit.loaders import LoaderWarning

BAD_CONFIG = (
    "version: 1\n"
    "index:\n"
    "  chunker: {type: recursiv, max_tokens: 256}\n"
    "query:\n"
    "  retrieve: {k: -5}\n"
)


def test_validate_names_every_problem_and_exits_2(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_CONFIG, encoding="utf-8")
    good = Path(__file__).resolve().parents[2] / "configs" / "quickstart.yaml"
    result = CliRunner().invoke(app, ["validate", str(good), str(bad)])
    assert result.exit_code == 2
    assert "index.chunker.type (line 3)" in result.stderr and "'recursiv'" in result.stderr
    assert "query.retrieve.k (line 5)" in result.stderr and "(got -5)" in result.stderr
    assert "quickstart.yaml" in result.stdout and "ok" in result.stdout.lower()


def test_validate_applies_set_overrides(tmp_path: Path):
    config = tmp_path / "c.yaml"
    config.write_text("version: 1\nindex:\n  chunker: {type: token, max_tokens: 64}\n", encoding="utf-8")
    assert CliRunner().invoke(app, ["validate", str(config)]).exit_code == 0
    result = CliRunner().invoke(app, ["validate", str(config), "--set", "index.chunker.max_tokens=0"])
    assert result.exit_code == 2 and "index.chunker.max_tokens" in result.stderr


def test_components_lists_every_kind_with_its_extra():
    result = CliRunner().invoke(app, ["components"])
    assert result.exit_code == 0
    for name in ("recursive", "perplexity", "bm25", "dense", "hybrid", "top_k", "token_budget", "stuff"):
        assert name in result.stdout
    only = CliRunner().invoke(app, ["components", "--kind", "selector"])
    assert "token_budget" in only.stdout and "recursive" not in only.stdout


def test_chunk_decodes_a_non_utf8_file_with_a_warning_and_exact_offsets(tmp_path: Path):
    path = tmp_path / "latin.txt"
    path.write_bytes("Crème brûlée is a dessert. It has a caramel top.".encode("cp1252"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = CliRunner().invoke(app, ["chunk", str(path), "--chunker", "sentence", "--format", "jsonl",
                                          "--param", "max_tokens=8"])
    assert result.exit_code == 0, result.output
    text = path.read_bytes().decode("cp1252")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 2 and all(text[r["start"]: r["end"]] == r["text"] for r in rows)
    messages = [str(w.message) for w in caught if issubclass(w.category, LoaderWarning)]
    assert len(messages) == 1 and "not valid UTF-8" in messages[0] and "cp1252" in messages[0]


def test_chunk_errors_have_distinct_exit_codes(tmp_path: Path):
    path = tmp_path / "a.txt"
    path.write_text("One sentence. Another one.", encoding="utf-8")
    unknown = CliRunner().invoke(app, ["chunk", str(path), "--chunker", "sentense"])
    assert unknown.exit_code == 2 and "Did you mean 'sentence'" in unknown.stderr
    bad_format = CliRunner().invoke(app, ["chunk", str(path), "--format", "csv"])
    assert bad_format.exit_code == 2 and "table or jsonl" in bad_format.stderr
    missing = CliRunner().invoke(app, ["chunk", str(tmp_path / "nope.txt")])
    assert missing.exit_code == 2


def test_ragkit_warnings_print_as_one_line(capsys):
    show_warning(LoaderWarning("x.txt: decoded as cp1252"), LoaderWarning, "f.py", 1)
    assert capsys.readouterr().err == "warning: x.txt: decoded as cp1252\n"
