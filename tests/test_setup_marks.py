"""scripts/setup.sh --no-llama-cpp: tests that need llama.cpp then skip with the reason (issue 23.6)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import ragkit.testing.setup_marks as setup_marks

REPO = Path(__file__).resolve().parents[1]
SUITE = """
import pytest

@pytest.mark.server
def test_needs_the_server():
    import llama_cpp.server

@pytest.mark.llama_cpp
def test_needs_llama_cpp():
    import llama_cpp

def test_plain():
    pass
"""


@pytest.fixture
def suite(pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    pytester.makeini("[pytest]\nmarkers =\n    server: s\n    llama_cpp: l\n")
    pytester.makepyfile(test_suite=SUITE)
    monkeypatch.setenv("RAGKIT_REAL_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    monkeypatch.setattr(setup_marks, "llama_cpp_installed", lambda: False)   # as after --no-llama-cpp:
    for name in ("llama_cpp", "llama_cpp.server"):                             # not importable
        monkeypatch.setitem(sys.modules, name, None)
    return pytester


def test_after_no_llama_cpp_the_marked_tests_skip_saying_why(suite: pytest.Pytester, tmp_path: Path) -> None:
    (tmp_path / "home" / setup_marks.STAMP).write_text("scripts/setup.sh --no-llama-cpp\n")
    result = suite.runpytest("-p", "ragkit.testing.setup_marks", "-rs")
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines(["*SKIPPED*llama-cpp-python is not installed: scripts/setup.sh --no-llama-cpp "
                                 "skipped building it*Run scripts/build_llama_cpp.sh*"])


def test_without_the_stamp_a_missing_llama_cpp_still_fails(suite: pytest.Pytester) -> None:
    result = suite.runpytest("-p", "ragkit.testing.setup_marks")
    result.assert_outcomes(passed=1, failed=2)


def test_setup_sh_takes_no_llama_cpp_and_refuses_unknown_options() -> None:
    script = REPO / "scripts" / "setup.sh"
    usage = subprocess.run(["bash", str(script), "--help"], capture_output=True, text=True, timeout=30)
    assert usage.returncode == 0 and "--no-llama-cpp" in usage.stdout
    bad = subprocess.run(["bash", str(script), "--no-llama"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "unknown option '--no-llama'; options: --no-llama-cpp, --help" in bad.stderr
    text = script.read_text(encoding="utf-8")
    assert f'NO_LLAMA_STAMP="$RAGKIT_HOME/{setup_marks.STAMP}"' in text   # the stamp the plugin reads
