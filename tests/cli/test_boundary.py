"""The CLI's one error boundary: ragkit errors → one ``error:`` line + exit code; warnings → one line."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import ragkit.cli.application as cli_application
from ragkit.cli import app, main
from ragkit.cli.boundary import CommandGroup
from ragkit.errors import ConfigError, MissingDependencyError, RagkitError, RagkitWarning, StageError

REPO = Path(__file__).resolve().parents[2]


def _demo(exc: BaseException) -> CommandGroup:
    demo = CommandGroup()

    @demo.command("boom")
    def boom() -> None:
        """Raise the error under test."""
        raise exc

    @demo.command("other")
    def other() -> None:
        """A second command, so that ``demo`` is a group."""

    return demo


@pytest.mark.parametrize(("exc", "code"), [
    (ConfigError("index.chunker.max_tokens: must be > 0 (got 0)"), 2),
    (MissingDependencyError("faiss", "faiss", "dense retrieval"), 3),
    (StageError("index.chunker", "intent", "the LLM timed out"), 1),
    (RagkitError("something failed at run time"), 1),
])
def test_a_ragkit_error_is_one_line_on_stderr_and_its_exit_code(exc: RagkitError, code: int) -> None:
    result = CliRunner().invoke(_demo(exc), ["boom"])
    assert result.exit_code == code
    assert result.stderr == f"error: {exc}\n" and result.stdout == ""
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output


def test_other_exceptions_are_not_swallowed() -> None:
    result = CliRunner().invoke(_demo(KeyError("bug")), ["boom"])
    assert result.exit_code == 1 and isinstance(result.exception, KeyError)


def test_every_command_runs_inside_the_boundary() -> None:
    commands = list(app.registered_commands)
    for group in app.registered_groups:
        commands += group.typer_instance.registered_commands
    names = [c.name for c in commands]
    assert set(names) >= {"chunk", "validate", "components", "run", "index", "query", "eval", "list", "prepare"}
    assert all(getattr(c.callback, "__ragkit_boundary__", False) for c in commands)


def test_help_stops_at_the_form_feed() -> None:
    listing = CliRunner().invoke(app, ["--help"]).stdout
    assert "Evaluate variants side by side" in listing and ">>>" not in listing
    for command in ("chunk", "run", "query", "eval"):
        assert ">>>" not in CliRunner().invoke(app, [command, "--help"]).stdout


def test_real_commands_map_errors_to_exit_codes(tmp_path: Path) -> None:
    missing = CliRunner().invoke(app, ["run", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2 and missing.stderr.startswith("error: ") and missing.stderr.count("\n") == 1
    bad_k = CliRunner().invoke(app, ["query", "any.yaml", "q", "--k", "0"])
    assert (bad_k.exit_code, bad_k.stderr) == (2, "error: --k 0: must be a positive integer\n")


def test_main_reports_errors_raised_outside_a_command(monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    def broken_app() -> None:
        raise MissingDependencyError("typer", None)

    monkeypatch.setattr(cli_application, "app", broken_app)
    with pytest.raises(SystemExit) as stop:
        main()
    assert stop.value.code == 3
    assert capsys.readouterr().err == f"error: {MissingDependencyError('typer', None)}\n"


def test_main_prints_ragkit_warnings_as_one_line(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    def warning_app() -> None:
        warnings.warn("x.txt: decoded as cp1252", RagkitWarning, stacklevel=1)
        raise typer.Exit(0)

    monkeypatch.setattr(cli_application, "app", warning_app)
    with warnings.catch_warnings():  # main() installs its formatter; restore Python's afterwards
        warnings.simplefilter("always")
        with pytest.raises(typer.Exit):
            main()
    assert capsys.readouterr().err == "warning: x.txt: decoded as cp1252\n"


def test_python_dash_m_ragkit_cli_end_to_end(tmp_path: Path) -> None:
    """The real process: a ragkit warning is one line, an error one line and exit 2, no traceback."""
    latin = tmp_path / "latin.txt"
    latin.write_bytes("Crème brûlée is a dessert. It has a caramel top.".encode("cp1252"))
    ok = subprocess.run([sys.executable, "-m", "ragkit.cli", "chunk", str(latin), "--chunker", "sentence",
                         "--format", "jsonl", "--param", "max_tokens=8"],
                        capture_output=True, text=True, cwd=REPO)
    assert ok.returncode == 0, ok.stderr
    assert [line for line in ok.stderr.splitlines() if line.strip()] == [
        line for line in ok.stderr.splitlines() if line.startswith("warning: ")]
    assert len(ok.stderr.splitlines()) == 1 and "cp1252" in ok.stderr and len(ok.stdout.splitlines()) == 2
    bad = subprocess.run([sys.executable, "-m", "ragkit.cli", "chunk", str(latin), "--format", "csv"],
                         capture_output=True, text=True, cwd=REPO)
    assert (bad.returncode, bad.stderr) == (2, "error: --format 'csv' is not supported; use table or jsonl\n")
