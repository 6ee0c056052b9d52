"""``ragkit chunk page.html`` chunks the text the pipeline's loader extracts, at the same offsets."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from ragkit.cli import app
from ragkit.loaders import load_corpus

HTML = ("<html><head><title>T</title><style>p {color: red}</style></head><body><h1>Stores</h1>"
        "<p>The index store is written atomically.</p><p>Readers never see half a file.</p></body></html>")


def test_chunk_html_uses_the_pipeline_loader(tmp_path: Path):
    page = tmp_path / "page.html"
    page.write_text(HTML, encoding="utf-8")
    loaded = load_corpus([page])[0]
    result = CliRunner().invoke(app, ["chunk", str(page), "-c", "token", "-p", "max_tokens=8", "-f", "jsonl"])
    assert result.exit_code == 0, result.output
    chunks = [json.loads(line) for line in result.stdout.splitlines()]
    assert chunks and all("<" not in c["text"] for c in chunks)
    assert all(loaded.text[c["start"]:c["end"]] == c["text"] for c in chunks)
    assert {c["doc_id"] for c in chunks} == {loaded.id}
