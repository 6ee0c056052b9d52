"""The core modules on their own: records (types.py), the component base (stage.py), the cache store
(cache.py) and ``ragkit run`` as a library call (runner.py)."""

from __future__ import annotations

import json
import threading
from dataclasses import FrozenInstanceError
from typing import Annotated, Any

import pytest
from pydantic import Field

from ragkit.cache import CacheStore
from ragkit.errors import ConfigError, DatasetError, StageError
from ragkit.runner import answer_record, read_questions, run_config
from ragkit.stage import (
    Component,
    EmbedderRef,
    LLMRef,
    ScorerRef,
    call_stage,
    collaborator_params,
    nested_stage_params,
    param_names,
    validate_params,
)
from ragkit.types import Answer, Chunk, DocTree, Document, Query, ScoredChunk, TreeNode, Usage


# ------------------------------------------------------------------------------------------------ types
def test_ids_are_content_hashes_and_offsets_are_exact():
    doc = Document.from_text("Alpha beta. Gamma delta.", source_id="a.md")
    assert doc.id == Document.from_text("Alpha beta. Gamma delta.").id, "the id hashes the text only"
    assert doc.metadata["source_id"] == "a.md"
    chunk = Chunk.from_span(doc, 12, 24, token_count=2)
    assert chunk.text == doc.text[12:24] == "Gamma delta."
    assert chunk.id == Chunk.make_id(doc.id, 12, 24) != Chunk.from_span(doc, 0, 11, 2).id
    assert Chunk.from_dict(chunk.to_dict()) == chunk
    with pytest.raises(FrozenInstanceError):
        chunk.text = "changed"  # type: ignore[misc]


def test_usage_sums_and_answer_serialises_its_trace():
    total = Usage(llm_calls=1, prompt_tokens=10) + Usage(llm_calls=2, embedding_calls=1)
    assert (total.llm_calls, total.prompt_tokens, total.embedding_calls) == (3, 10, 1)
    assert total.summary_line().startswith("usage: llm_calls=3 prompt_tokens=10")
    doc = Document.from_text("x y")
    answer = Answer(text="ok", chunks=(ScoredChunk(Chunk.from_span(doc, 0, 1, 1), 0.5, "bm25"),),
                    trace={"stages": [{"slot": "query.selector", "ids": ("a",)}]})
    data = json.loads(json.dumps(answer.to_dict()))
    assert data["trace"]["stages"][0]["ids"] == ["a"] and data["chunks"][0]["text"] == "x"


def test_doc_tree_leaves_in_document_order_and_round_trip():
    nodes = {"r": TreeNode("r", None, ("b", "a"), 0, 10), "a": TreeNode("a", "r", (), 5, 10),
             "b": TreeNode("b", "r", (), 0, 5, keywords=["k"])}
    tree = DocTree("d", "r", nodes)
    assert [n.id for n in tree.leaves()] == ["b", "a"] and tree.node("b").keywords == ("k",)
    assert DocTree.from_dict(json.loads(json.dumps(tree.to_dict()))) == tree
    assert [c.id for c in tree.children("r")] == ["b", "a"]


# ------------------------------------------------------------------------------------------------ stage
class Toy(Component):
    def __init__(self, *, k: Annotated[int, Field(gt=0)] = 3, llm: LLMRef = "default",
                 embedder: EmbedderRef = "default", scorer: ScorerRef = "embedding") -> None:
        self.k, self.llm, self.embedder, self.scorer = k, llm, embedder, scorer
        self.loads = 0

    def _load(self) -> None:
        self.loads += 1


def test_parameters_come_from_the_signature():
    assert param_names(Toy) == ["k", "llm", "embedder", "scorer"]
    assert collaborator_params(Toy) == {"llm": "llm", "embedder": "embedder"}
    assert nested_stage_params(Toy) == {"scorer": "scorer"}
    assert Toy(k=5).get_params()["k"] == 5
    assert validate_params(Toy, {"k": 2}, "x")["k"] == 2
    with pytest.raises(ConfigError, match=r"x.k: .*greater than 0"):
        validate_params(Toy, {"k": 0}, "x")


def test_warm_up_runs_once_even_from_threads():
    toy = Toy()
    threads = [threading.Thread(target=toy.warm_up) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    toy.warm_up()
    assert toy.loads == 1


def test_call_stage_names_the_slot_and_passes_ragkit_errors_through():
    with pytest.raises(StageError, match=r"stage index.chunker \(toy\) failed: KeyError"):
        call_stage("index.chunker", "toy", lambda: {}["missing"])
    with pytest.raises(ConfigError, match="as is"):
        call_stage("index.chunker", "toy", lambda: (_ for _ in ()).throw(ConfigError("as is")))


# ------------------------------------------------------------------------------------------------ cache
def test_cache_modes(tmp_path):
    path = tmp_path / "c.sqlite"
    CacheStore(path, "read_write").put_many("ns", {"k": b"v"})
    assert CacheStore(path, "read_write").get_many("ns", ["k", "x"]) == {"k": b"v"}
    read_only = CacheStore(path, "read_only")
    assert read_only.readable and not read_only.writable and read_only.get_many("ns", ["k"]) == {"k": b"v"}
    off = CacheStore(path, "off")
    assert not off.readable and not off.writable
    assert CacheStore(path, "read_write").count("ns") == 1 and CacheStore(path, "read_write").count("other") == 0
    with pytest.raises(ConfigError, match="cache.mode"):
        CacheStore(path, "sometimes")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ runner
def test_read_questions_errors_name_the_line(tmp_path):
    good = tmp_path / "q.jsonl"
    good.write_text('{"id": "a", "question": "Why?"}\n\n{"question": "How?"}\n')
    assert [(q.id, q.text) for q in read_questions(good)] == [("a", "Why?"), ("q3", "How?")]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "question": "Why?"}\n{"id": "a", "question": "Again?"}\n')
    with pytest.raises(DatasetError, match="line 2: duplicate question id 'a'"):
        read_questions(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        read_questions(tmp_path / "missing.jsonl")


def test_run_config_writes_answers_with_traces_and_a_summary(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Rome\n\nRome is the capital of Italy.\n")
    (tmp_path / "q.jsonl").write_text('{"id": "q1", "question": "What is the capital of Italy?"}\n')
    config: dict[str, Any] = {
        "backends": {"llm": {"default": {"type": "fake"}}, "embeddings": {"default": {"type": "fake"}}},
        "corpus": {"paths": [str(tmp_path / "docs" / "*.md")]}, "index": {"store": ":memory:"},
        "query": {"questions": str(tmp_path / "q.jsonl"),
                  "selector": [{"type": "top_k", "k": 2}, {"type": "token_budget", "budget": 50}]}}
    result = run_config(config, out=tmp_path / "out")
    record = json.loads((tmp_path / "out" / "answers.jsonl").read_text().splitlines()[0])
    assert record["id"] == "q1" and "Rome" in record["chunks"][0]["text"]
    assert [s["slot"] for s in record["trace"]["stages"]][1:3] == ["query.selector.0", "query.selector.1"]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["questions"] == 1 and summary["index"]["chunks"] >= 1 and result.usage.llm_calls >= 0
    assert answer_record(Query.from_text("x", id="x"), Answer(text="t"))["chunks"] == []
