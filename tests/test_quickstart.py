"""The quickstart end to end through the CLI: real MiniLM, real FAISS, the store, run/index/query.

The first run indexes the project's docs and answers the questions; the second reuses the index
(no chunking) and the embedding cache (``embedding_calls=0``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ragkit.cli import app

REPO = Path(__file__).resolve().parents[1]
USAGE = re.compile(r"^usage: llm_calls=(\d+) prompt_tokens=(\d+) completion_tokens=(\d+) "
                   r"embedding_calls=(\d+) est_cost_usd=(\d+\.\d+)$")


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    return CliRunner()


def tail(stdout: str) -> tuple[re.Match, str]:
    lines = stdout.rstrip("\n").splitlines()
    usage = USAGE.match(lines[-2])
    assert usage, f"second-to-last stdout line is not the usage line: {lines[-2]!r}"
    assert lines[-1].startswith("output: ")
    return usage, lines[-1][len("output: "):]


@pytest.mark.slow
def test_quickstart_run_twice(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    questions = [json.loads(line) for line in (REPO / "configs/quickstart-questions.jsonl").read_text().splitlines()]

    first = runner.invoke(app, ["run", "configs/quickstart.yaml", "--out", str(tmp_path / "run1")])
    assert first.exit_code == 0, first.output
    usage, out_dir = tail(first.stdout)
    assert out_dir == str(tmp_path / "run1")
    assert int(usage.group(1)) == len(questions) and int(usage.group(4)) >= 1
    assert "cited chunks" in first.stdout and re.search(r"\[1\] (docs/|README\.md)", first.stdout)
    index_log = re.compile(r"^index: \d+ documents, \d+ chunks", re.M)         # the index phase's log line
    assert index_log.search(first.stderr) and not index_log.search(first.stdout)  # logs go to stderr

    answers = [json.loads(line) for line in (tmp_path / "run1" / "answers.jsonl").read_text().splitlines()]
    assert [a["id"] for a in answers] == [q["id"] for q in questions]
    for answer in answers:
        assert answer["answer"] and 1 <= len(answer["chunks"]) <= 4
        for cited in answer["chunks"]:
            source = (REPO / cited["source"]).read_text(encoding="utf-8")
            assert source[cited["start"]:cited["end"]] == cited["text"]  # offsets index the source file
            assert cited["id"] and isinstance(cited["score"], float)
    by_id = {a["id"]: a for a in answers}
    # The corpus is this repository's docs, which change; assert on content, not on which file ranks first.
    top_store_chunk = by_id["store-atomic"]["chunks"][0]["text"].lower()
    assert "atomic" in top_store_chunk, top_store_chunk
    assert "docs/retrieval.md" in {c["source"] for c in by_id["store-atomic"]["chunks"]}
    summary = json.loads((tmp_path / "run1" / "summary.json").read_text())
    assert summary["index"]["reused"] is False and summary["index"]["chunks"] > 10
    assert {"index.chunker", "index.retriever", "query.retrieve", "query.aggregator"} <= set(summary["usage"]["per_stage"])
    assert summary["usage"]["total"]["llm_calls"] == len(questions)
    assert summary["resolved_config"]["index"]["retriever"]["type"] == "hybrid"

    second = runner.invoke(app, ["run", "configs/quickstart.yaml", "--out", str(tmp_path / "run2")])
    assert second.exit_code == 0, second.output
    usage2, _ = tail(second.stdout)
    assert int(usage2.group(4)) == 0, "the re-run must be served by the stored index and the embedding cache"
    summary2 = json.loads((tmp_path / "run2" / "summary.json").read_text())
    assert summary2["index"]["reused"] is True and summary2["index"]["documents_processed"] == 0
    assert "index.chunker" not in summary2["usage"]["per_stage"]
    answers2 = [json.loads(line) for line in (tmp_path / "run2" / "answers.jsonl").read_text().splitlines()]
    assert [[c["id"] for c in a["chunks"]] for a in answers2] == [[c["id"] for c in a["chunks"]] for a in answers]

    # ragkit index: nothing to do; ragkit query: filter + metadata
    indexed = runner.invoke(app, ["index", "configs/quickstart.yaml", "--no-cache"])
    assert indexed.exit_code == 0 and "reused the stored index" in indexed.stdout
    asked = runner.invoke(app, ["query", "configs/quickstart.yaml", "Which BM25 parameters are used?",
                                "--k", "8", "--filter", '{"source_id": "docs/retrieval.md"}', "--show-metadata"])
    assert asked.exit_code == 0, asked.output
    cited = [line for line in asked.stdout.splitlines() if re.match(r"\s+\[\d\] ", line)]
    assert cited and all("docs/retrieval.md:" in line for line in cited)
    assert '"heading_path"' in asked.stdout and USAGE.match(asked.stdout.rstrip().splitlines()[-1])


def test_exit_codes(runner, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    bad = tmp_path / "bad.yaml"
    bad.write_text("index:\n  chunker: {type: recursiv}\nquery:\n  selector: {type: top_k, k: -1}\n")
    result = runner.invoke(app, ["run", str(bad)])
    assert result.exit_code == 2
    assert "index.chunker.type" in result.stderr and "query.selector.k" in result.stderr and not result.stdout
    empty_store = ["--set", f"index.store={tmp_path / 'none'}"]
    result = runner.invoke(app, ["query", "configs/quickstart.yaml", "anything", *empty_store])
    assert result.exit_code == 1 and "no index at" in result.stderr and "ragkit index" in result.stderr
    result = runner.invoke(app, ["query", "configs/quickstart.yaml", "x", "--filter", "{nope"])
    assert result.exit_code == 2 and "not valid JSON" in result.stderr
    result = runner.invoke(app, ["query", "configs/quickstart.yaml", "x", "--filter", '{"year": {"after": 1}}'])
    assert result.exit_code == 2 and "unknown filter operator 'after'" in result.stderr
    result = runner.invoke(app, ["run", "configs/quickstart.yaml", "--questions", str(tmp_path / "missing.jsonl")])
    assert result.exit_code == 2 and "missing.jsonl" in result.stderr and "does not exist" in result.stderr
