"""Tests write only under temporary folders: the session-end guard (ragkit.testing.write_guard, issue 23.6)."""

from __future__ import annotations

import pytest

# pytest-benchmark, where installed, writes .benchmarks/ (pyproject's addopts block it; the inner runs too)
GUARD = ("-p", "ragkit.testing.write_guard", "-p", "no:benchmark")

LEAK = """
import os, pathlib, subprocess, sys

def test_clean(tmp_path):
    (tmp_path / "runs" / "eval").mkdir(parents=True)
    (tmp_path / "out.txt").write_text("fine")
    open("README.md").read()                       # reading the repository is fine

def test_default_output_folder():
    pathlib.Path("runs/eval/reduced").mkdir(parents=True, exist_ok=True)   # what ragkit eval did without --out

def test_writes_a_file():
    pathlib.Path("answers.jsonl").write_text("{}")

def test_rewrites_a_tracked_file():
    with open("README.md", "a") as f:
        f.write("x")
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makefile(".md", README="# a repository\n")
    pytester.makeini("[pytest]\n")
    return pytester


def test_a_session_that_writes_into_the_repository_fails_naming_paths_and_tests(project: pytest.Pytester,
                                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    project.makepyfile(test_leak=LEAK)
    result = project.runpytest(*GUARD)
    result.assert_outcomes(passed=4)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    out = result.stdout.str()
    assert "tests wrote into the repository" in out
    assert "created runs/ (by test_leak.py::test_default_output_folder)" in out
    assert "created answers.jsonl (by test_leak.py::test_writes_a_file)" in out
    assert "wrote to README.md (by test_leak.py::test_rewrites_a_tracked_file)" in out
    assert "test_clean" not in out.split("tests wrote into the repository")[1]


def test_a_clean_session_passes(project: pytest.Pytester) -> None:
    project.makepyfile(test_ok=LEAK.split("def test_default_output_folder")[0])
    result = project.runpytest(*GUARD)
    assert result.ret == pytest.ExitCode.OK and "repository" not in result.stdout.str()


SUBPROCESS = """
import pathlib, subprocess, sys

def test_subprocess_writes_runs():
    subprocess.run([sys.executable, "-c", "import pathlib; pathlib.Path('runs/quickstart').mkdir(parents=True)"],
                   check=True)
"""


def test_a_subprocess_leftover_fails_in_ci_and_warns_elsewhere(project: pytest.Pytester,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    project.makepyfile(test_sub=SUBPROCESS)
    monkeypatch.delenv("CI", raising=False)
    warned = project.runpytest(*GUARD)
    assert warned.ret == pytest.ExitCode.OK
    warned.stdout.fnmatch_lines(["*new paths under the repository*", "*new runs/ (a subprocess*",
                                 "*with CI=true this fails*"])
    project.run("rm", "-rf", str(project.path / "runs"))
    monkeypatch.setenv("CI", "true")
    failed = project.runpytest(*GUARD)
    assert failed.ret == pytest.ExitCode.TESTS_FAILED
    failed.stdout.fnmatch_lines(["*tests wrote into the repository*", "*new runs/ (a subprocess*"])


def test_a_plugin_writing_while_pytest_configures_is_caught(project: pytest.Pytester) -> None:
    # pytest-benchmark made .benchmarks/ in the checkout from pytest_configure, before any test ran
    project.makeconftest("import os\n\ndef pytest_configure(config):\n    os.makedirs('.benchmarks', exist_ok=True)\n")
    project.makepyfile(test_ok="def test_ok():\n    pass\n")
    result = project.runpytest(*GUARD)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*created .benchmarks/ (by (collection or session set-up))*"])
