"""Retrieval only: ``query.aggregator: null`` and ``ragkit query --no-llm`` answer with the selected chunks, no LLM."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

import ragkit.pipeline as pipeline_module
from ragkit.cli import app
from ragkit.config.load import load_config
from ragkit.pipeline import Pipeline
from ragkit.types import Document

# An LLM backend that cannot load (no such model): building or warming it up would fail the test.
CONFIG = """\
version: 1
backends:
  llm: {default: {type: transformers, model: no-such-model-anywhere}}
  embeddings: {default: {type: fake}}
cache: {mode: "off"}
corpus: {paths: ["docs/*.md"]}
index:
  store: store
  chunker: {type: sentence, max_tokens: 12}
  retriever: {type: bm25}
query:
  selector: {type: top_k, k: 2}
"""


def test_null_aggregator_validates_and_no_llm_is_built(monkeypatch):
    built: list[str] = []
    real_build = pipeline_module.build_backend
    monkeypatch.setattr(pipeline_module, "build_backend",
                        lambda kind, *a, **kw: built.append(kind) or real_build(kind, *a, **kw))
    config = load_config({"backends": {"embeddings": {"default": {"type": "fake"}}},
                          "index": {"chunker": {"type": "sentence", "max_tokens": 8}, "retriever": {"type": "bm25"},
                                    "store": ":memory:"},
                          "query": {"aggregator": None, "selector": {"type": "top_k", "k": 1}}})
    pipe = Pipeline(config)
    pipe.index([Document.from_text("Paris is in France. Rome is in Italy.", source_id="geo.txt")])
    answer = pipe.query("Where is Rome?")
    assert answer.text == "[1] geo.txt:20-37 score=" + f"{answer.chunks[0].score:.4f}"
    assert [s.chunk.text for s in answer.chunks] == ["Rome is in Italy."] and answer.usage.llm_calls == 0
    assert "llm" not in built and not any(section == "llm" for section, _ in pipe._backends)


def test_query_no_llm_prints_chunks_with_scores_and_offsets(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # source ids are relative to the working directory
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "store.md").write_text("The index store is written atomically. Readers see whole files.\n",
                                                encoding="utf-8")
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    index = CliRunner().invoke(app, ["index", str(config)])
    assert index.exit_code == 0, index.output
    with_llm = CliRunner().invoke(app, ["query", str(config), "How is the store written?"])
    assert with_llm.exit_code != 0  # the configured LLM cannot load: the --no-llm run below never touches it
    result = CliRunner().invoke(app, ["query", str(config), "How is the store written?", "--no-llm"])
    assert result.exit_code == 0, result.output
    assert "answer: [1] docs/store.md:0-" in result.stdout and "score=" in result.stdout
    assert "usage: llm_calls=0 " in result.stdout
