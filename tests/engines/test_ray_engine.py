"""The ray engine against the local one: same store (ids, texts, offsets, BM25 state, vectors), same eval.

One local Ray (``num_cpus=2``) is started for the module and shut down after it. The corpora are the
two small Chroma corpora (chatlogs, state_of_the_union: ~90 KB, for CI time) embedded with the
packaged MiniLM, the cache off so both engines really chunk and embed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from _shared_data import CHROMA

from ragkit import Pipeline
from ragkit.errors import ConfigError, MissingDependencyError
from ragkit.store.store import IndexStore

CORPORA = ["chatlogs", "state_of_the_union"]


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


def _config(store: Path, engine: dict) -> dict:
    return {
        "backends": {"embeddings": {"default": {"type": "sentence_transformers", "model": "minilm"}},
                     "llm": {"default": {"type": "fake"}}},
        "cache": {"mode": "off"},
        "index": {"store": str(store), "chunker": {"type": "recursive", "max_tokens": 200},
                  "retriever": {"type": "hybrid", "view": "content", "fusion": "rrf"}},
        "engine": engine,
    }


def _files(names) -> list[str]:
    return [str(CHROMA / f"{name}.md") for name in names]


def _state(store: IndexStore) -> dict:
    root = store.retriever_dir()
    bm25 = {p.name: (np.load(p) if p.suffix == ".npy" else json.loads(p.read_text())) for p in (root / "bm25").iterdir()}
    return {"chunks": store.read_chunks(), "documents": store.read_documents(), "bm25": bm25,
            "vectors": np.load(root / "dense" / "vectors.npy"), "manifest": store.manifest()}


@pytest.fixture(scope="module")
def built(ray_cluster, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ray_engine")
    local = Pipeline.from_config(_config(tmp / "local", {"type": "local"}))
    local_report = local.index(_files(CORPORA))
    ray_pipe = Pipeline.from_config(_config(tmp / "ray", {"type": "ray", "batch_documents": 1}))
    ray_report = ray_pipe.index(_files(CORPORA))
    return tmp, local, local_report, ray_pipe, ray_report


def test_the_ray_store_equals_the_local_store(built):
    tmp, _, local_report, ray_pipe, ray_report = built
    a, b = _state(IndexStore(tmp / "local")), _state(IndexStore(tmp / "ray"))
    assert ray_report.chunks == local_report.chunks > 50
    assert [(c.id, c.doc_id, c.start, c.end, c.text, c.token_count, c.metadata) for c in b["chunks"]] == \
           [(c.id, c.doc_id, c.start, c.end, c.text, c.token_count, c.metadata) for c in a["chunks"]]
    assert b["documents"] == a["documents"]
    assert sorted(b["bm25"]) == sorted(a["bm25"])
    for name, value in a["bm25"].items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(b["bm25"][name], value, err_msg=name)
        else:
            assert b["bm25"][name] == value, name
    assert b["vectors"].shape == a["vectors"].shape
    np.testing.assert_allclose(b["vectors"], a["vectors"], atol=1e-4)
    assert b["manifest"]["index_hash"] == a["manifest"]["index_hash"]
    # usage summed over the workers: chunker time from the chunk workers, embedding texts from the actors
    usage = ray_pipe.stage_usage
    assert usage["index.retriever"].embedded_texts == ray_report.chunks
    assert usage["index.chunker"].wall_time_s > 0
    # the engine's own measurements reach the report: the embedder actors' busy time within the embedding
    stats = ray_report.engine_stats
    assert stats["embed_texts"] == ray_report.chunks and stats["embed_calls"] >= 1
    assert 0 < stats["embed_actor_busy_s"] <= stats["embed_wall_s"]
    assert local_report.engine_stats == {}


def test_the_ray_index_answers_like_the_local_one(built):
    _, local, _, ray_pipe, _ = built
    question = "What did the president say about inflation?"
    assert [s.chunk.id for s in ray_pipe.retrieve(question, k=5)] == [s.chunk.id for s in local.retrieve(question, k=5)]


def test_incremental_ray_run_chunks_only_new_documents(ray_cluster, tmp_path):
    import shutil

    corpus, store = tmp_path / "corpus", tmp_path / "store"
    corpus.mkdir()
    config = _config(store, {"type": "ray"})
    config["index"]["retriever"] = {"type": "bm25"}  # about chunk reuse: no embedding needed
    reports = []
    for names in (CORPORA[:1], CORPORA[:2], CORPORA[:2]):
        for name in names:
            shutil.copy(CHROMA / f"{name}.md", corpus / f"{name}.md")
        reports.append(Pipeline.from_config(config).index([str(corpus / "*.md")]))
    assert [r.documents_processed for r in reports] == [1, 1, 0]
    assert [r.reused for r in reports] == [False, False, True]
    local = Pipeline.from_config({**config, "engine": {"type": "local"},
                                  "index": {**config["index"], "store": str(tmp_path / "local")}})
    local.index([str(corpus / "*.md")])
    assert [c.id for c in IndexStore(store).read_chunks()] == [c.id for c in IndexStore(tmp_path / "local").read_chunks()]


def test_eval_fan_out_on_ray_equals_the_sequential_run(ray_cluster, tmp_path):
    from ragkit.eval.runner import run_experiment

    data = tmp_path / "tiny"
    data.mkdir()
    docs = [{"id": f"d{i}", "text": text} for i, text in enumerate([
        "Ada Lovelace wrote the first program. She worked with Babbage.",
        "Bees make honey. Honey is sweet and keeps for years.",
        "Paris is the capital of France. The Seine flows through it."])]
    (data / "documents.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    questions = [{"question": "Who wrote the first program?", "answer": "Ada", "gold_passages": ["d0"]},
                 {"question": "What do bees make?", "answer": "honey", "gold_passages": ["d1"]},
                 {"question": "Which river flows through Paris?", "answer": "Seine", "gold_passages": ["d2"]}]
    (data / "questions.jsonl").write_text("".join(json.dumps(q) + "\n" for q in questions))
    exp = {"dataset": str(data), "protocols": ["budget"], "match": False,
           "base": {"index": {"retriever": {"type": "bm25"}}},
           "variants": [{"name": "para", "set": {"index.chunker": {"type": "paragraph", "max_tokens": 64}}},
                        {"name": "sentence", "set": {"index.chunker": {"type": "sentence", "max_tokens": 8}}}]}
    sequential = run_experiment(exp, out=tmp_path / "seq", echo=None, plots=False, limit=2)
    fanned = run_experiment(exp, out=tmp_path / "ray", echo=None, plots=False, limit=2, engine="ray",
                            rebuild=True)
    assert [r["variant"] for r in fanned.records] == ["para", "sentence"]
    for a, b in zip(sequential.records, fanned.records):
        assert (b["key"], b["protocols"], b["cost"]["chunks"]) == (a["key"], a["protocols"], a["cost"]["chunks"])
        assert not b["cost"]["reused"]  # the Ray tasks really ran the index phase


def test_missing_ray_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)
    pipe = Pipeline.from_config({"backends": {"embeddings": {"default": {"type": "fake"}}},
                                 "index": {"store": ":memory:", "retriever": {"type": "bm25"}},
                                 "engine": {"type": "ray"}})
    with pytest.raises(MissingDependencyError, match=r"ragkit\[ray\]"):
        pipe.index([str(CHROMA / "chatlogs.md")])


def test_engine_parameters_are_checked():
    from ragkit.engines.ray import RayEngine

    with pytest.raises(ConfigError, match="engine.embed_actors"):
        RayEngine(embed_actors=0)
