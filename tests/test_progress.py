"""The progress policy (ragkit.progress): lines on a non-terminal stream, bars on a terminal, --quiet silences."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragkit.cli import app
from ragkit.progress import LineProgress, configure, progress, silence_third_party, track


@pytest.fixture(autouse=True)
def _policy():
    yield
    configure(quiet=False, interval=5.0, third_party=False)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_lines_on_a_non_terminal_stream():
    configure(interval=0)
    stream = io.StringIO()
    assert list(track(range(4), "embedding", "text", stream=stream)) == [0, 1, 2, 3]
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("embedding: 1/4 text (25 %)") and "ETA" in lines[0]
    assert lines[-1].startswith("embedding: 4/4 text (100 %) done in ")


def test_a_short_phase_prints_nothing_and_quiet_prints_nothing():
    stream = io.StringIO()
    with progress(3, "chunking", "doc", stream=stream) as bar:  # default interval: 5 s, not reached
        bar.update(3)
    assert stream.getvalue() == ""
    configure(quiet=True, interval=0)
    with progress(3, "chunking", "doc", stream=stream, show=True) as bar:
        bar.update(3)
    assert stream.getvalue() == ""


def test_a_terminal_gets_a_bar():
    stream = _Terminal()
    with progress(2, "answering", "question", stream=stream) as bar:
        bar.update(2)
    assert not isinstance(bar, LineProgress) and "answering" in stream.getvalue()


def test_eta_from_the_rate():
    stream = io.StringIO()
    bar = LineProgress(10, "eval exp", "variant", stream, interval=0, clock=iter([0.0, 60.0]).__next__)
    bar.update(2)
    assert stream.getvalue().strip() == "eval exp: 2/10 variant (20 %) 1:00 elapsed, ETA 4:00"


def test_library_bars_are_off_by_default():
    from transformers.utils import logging as transformers_logging

    transformers_logging.enable_progress_bar()
    silence_third_party()
    assert not transformers_logging.is_progress_bar_enabled()
    transformers_logging.enable_progress_bar()


CONFIG = """\
version: 1
backends:
  llm: {default: {type: fake}}
  embeddings: {default: {type: fake}}
cache: {mode: "off"}
corpus: {paths: ["docs/*.md"]}
index: {store: ":memory:", chunker: {type: token, max_tokens: 16}}
query: {questions: q.jsonl}
"""


def test_run_reports_each_phase_on_stderr_and_quiet_silences_it(tmp_path: Path):
    (tmp_path / "docs").mkdir()
    for name in ("a", "b"):
        (tmp_path / "docs" / f"{name}.md").write_text(f"# {name}\n\nText about {name}.\n", encoding="utf-8")
    (tmp_path / "q.jsonl").write_text('{"id": "1", "question": "a?"}\n{"id": "2", "question": "b?"}\n',
                                      encoding="utf-8")
    (tmp_path / "c.yaml").write_text(CONFIG, encoding="utf-8")
    args = ["run", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "out")]
    loud = CliRunner().invoke(app, ["--progress-interval", "0", *args])
    assert loud.exit_code == 0, loud.output
    assert "chunking: 2/2 doc (100 %) done in" in loud.stderr
    assert "answering: 2/2 question (100 %) done in" in loud.stderr
    assert "answering:" not in loud.stdout  # results only on stdout
    quiet = CliRunner().invoke(app, ["--quiet", "--progress-interval", "0", *args])
    assert quiet.exit_code == 0 and "chunking:" not in quiet.stderr and "answering:" not in quiet.stderr
    assert quiet.stdout.splitlines()[-2:] == loud.stdout.splitlines()[-2:]
