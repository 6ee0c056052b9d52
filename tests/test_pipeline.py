"""The pipeline as conductor: selector chains, query context, trace per stage, trees slot, runtime, backends."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import pytest

from ragkit import Pipeline
from ragkit.context import ContextError, QueryContext
from ragkit.errors import ConfigError
from ragkit.registry import Registry
from ragkit.selectors.base import Selector
from ragkit.stage import Component
from ragkit.types import Chunk, DocTree, Document, Query, ScoredChunk, TreeNode

FAKES = {"llm": {"default": {"type": "fake"}}, "embeddings": {"default": {"type": "fake"}}}
DOCS = [Document.from_text("Alpha one. Alpha two. Alpha three. Alpha four.", source_id="a"),
        Document.from_text("Beta one. Beta two. Beta three.", source_id="b")]


class NeighbourSelector(Selector):
    """Keeps the top candidate and its neighbours (needs the query context)."""

    needs_context: ClassVar[frozenset[str]] = frozenset({"chunks"})

    def __init__(self, *, window: int = 1) -> None:
        self.window = window

    def select(self, query: Query, candidates: Sequence[ScoredChunk], context: Any = None) -> list[ScoredChunk]:
        assert isinstance(context, QueryContext), "a stage that declares needs_context gets a QueryContext"
        self.seen = context
        return [ScoredChunk(c, 0.0, "neighbours") for c in context.neighbors(candidates[0].chunk.id, self.window)]

    def trace(self) -> dict[str, Any]:
        return {"window": self.window}


class SectionTree(Component):
    """A one-level tree: the document as root, each chunk a leaf (a stand-in for the ToM builders)."""

    def build(self, doc: Document, chunks: Sequence[Chunk]) -> DocTree:
        leaves = {f"{doc.id[:8]}-{i}": TreeNode(f"{doc.id[:8]}-{i}", "root", (), c.start, c.end, level=1,
                                                chunk_ids=(c.id,)) for i, c in enumerate(chunks)}
        root = TreeNode("root", None, tuple(leaves), 0, len(doc.text), title=doc.metadata.get("source_id", ""))
        return DocTree(doc.id, "root", {"root": root, **leaves}, builder="section")


class TreeAggregator(Component):
    needs_context: ClassVar[frozenset[str]] = frozenset({"trees"})

    def aggregate(self, query: Query, selected: Sequence[ScoredChunk], context: Any = None):
        from ragkit.types import Answer

        tree = context.document_tree(selected[0].chunk.doc_id)
        return Answer(text=tree.node(tree.root).title, chunks=tuple(selected), trace={"nodes": len(tree.nodes)})


@pytest.fixture
def registry() -> Registry:
    registry = Registry()
    registry.add("selector", "neighbours", NeighbourSelector)
    registry.add("tree", "sections", SectionTree)
    registry.add("aggregator", "tree_title", TreeAggregator)
    return registry


def pipeline(registry: Registry, **query: Any) -> Pipeline:
    return Pipeline.from_config({"backends": FAKES, "index": {"chunker": {"type": "sentence", "max_tokens": 4},
                                                              "retriever": {"type": "bm25"}, "store": ":memory:"},
                                 "query": query}, registry=registry)


def test_a_selector_chain_runs_in_order_and_traces_each_link(registry):
    pipe = pipeline(registry, selector=[{"type": "top_k", "k": 3}, {"type": "top_k", "k": 1}])
    pipe.index(DOCS)
    answer = pipe.query("Alpha three")
    slots = [s["slot"] for s in answer.trace["stages"]]
    assert slots == ["query.retrieve", "query.selector.0", "query.selector.1", "query.aggregator"]
    first, second = answer.trace["stages"][1:3]
    assert len(first["ids"]) == 3 and second["ids"] == first["ids"][:1] and second["type"] == "top_k"
    assert [s.chunk.id for s in answer.chunks] == second["ids"]
    assert pipe.to_config()["query"]["selector"][1] == {"type": "top_k", "k": 1}


def test_a_stage_that_declares_needs_context_gets_the_index_view(registry):
    pipe = pipeline(registry, selector={"type": "neighbours", "window": 1})
    pipe.index(DOCS)
    answer = pipe.query("Alpha three")
    texts = [s.chunk.text for s in answer.chunks]
    assert texts == ["Alpha two.", "Alpha three.", "Alpha four."]  # document order, around the top hit
    link = answer.trace["stages"][1]
    assert link["details"] == {"window": 1} and link["slot"] == "query.selector"
    context = pipe.selector.seen
    assert [c.text for c in context.chunks_of(DOCS[1].id)] == ["Beta one.", "Beta two.", "Beta three."]
    with pytest.raises(ContextError, match="index.tree"):
        context.document_tree(DOCS[0].id)


def test_plain_two_argument_stages_still_work(registry):
    class Legacy(Selector):
        def select(self, query, candidates):  # the pre-context signature
            return list(candidates[:1])

    registry.add("selector", "legacy", Legacy)
    pipe = pipeline(registry, selector={"type": "legacy"})
    pipe.index(DOCS)
    assert len(pipe.query("Beta").chunks) == 1


def test_tree_stages_need_index_tree_at_validation(registry):
    with pytest.raises(ConfigError, match=r"query.aggregator.type: aggregator 'tree_title' needs document trees"):
        pipeline(registry, aggregator={"type": "tree_title"})


def test_trees_are_built_persisted_and_reused(registry, tmp_path):
    config = {"backends": FAKES, "index": {"chunker": {"type": "sentence", "max_tokens": 4}, "retriever": {"type": "bm25"},
                                           "store": str(tmp_path / "store"), "tree": {"type": "sections"}},
              "query": {"aggregator": {"type": "tree_title"}}}
    first = Pipeline.from_config(config, registry=registry)
    report = first.index(DOCS)
    assert report.trees == 2 and not report.reused
    no_tree = Pipeline.from_config({**config, "index": {**config["index"], "tree": None},
                                    "query": {}}, registry=registry)
    assert no_tree.index_hash() != first.index_hash(), "the tree config is part of the index hash"
    again = Pipeline.from_config(config, registry=registry)
    assert again.index(DOCS).reused
    answer = again.query("Beta two")
    assert answer.text == "b" and answer.trace["nodes"] == 4
    reopened = Pipeline.from_config(config, registry=registry)
    reopened.open_index()
    tree = reopened.trees_[DOCS[0].id]
    assert [DOCS[0].text[n.start:n.end] for n in tree.leaves()] == ["Alpha one.", "Alpha two.", "Alpha three.",
                                                                    "Alpha four."]


def test_two_pipelines_keep_their_own_cache_modes(registry):
    cached = pipeline(registry)
    uncached = Pipeline.from_config({"backends": FAKES, "cache": {"mode": "off"}}, registry=registry)
    llm_a = cached.backend("llm", "default")
    llm_b = uncached.backend("llm", "default")
    assert (cached.runtime.cache_mode, uncached.runtime.cache_mode) == ("read_write", "off")
    assert llm_a._cache().writable and not llm_b._cache().readable
    assert cached.runtime.cache().writable, "building a second pipeline must not change the first one's mode"


def test_every_backend_gets_the_policy_wrappers(registry):
    pipe = pipeline(registry)
    assert type(pipe.backend("llm", "default")).__name__ == "CachedLLM"
    assert type(pipe.embedder).__name__ == "CachedEmbedder"
    assert pipe.embedder is pipe.backend("embeddings", "default"), "one instance per backend name"


def test_data_root_is_the_pipelines_not_the_processes(registry, tmp_path, monkeypatch):
    monkeypatch.delenv("RAGKIT_DATA", raising=False)
    a, b = pipeline(registry), pipeline(registry)
    a.data_root = tmp_path
    assert a.runtime.data_root == tmp_path and b.runtime.data_root is None
    import os

    assert "RAGKIT_DATA" not in os.environ


def test_stage_failures_name_the_link(registry):
    class Broken(Selector):
        def select(self, query, candidates, context=None):
            raise ValueError("boom")

    registry.add("selector", "broken", Broken)
    pipe = pipeline(registry, selector=[{"type": "top_k", "k": 2}, {"type": "broken"}])
    pipe.index(DOCS)
    from ragkit.errors import StageError

    with pytest.raises(StageError, match=r"stage query.selector.1 \(broken\) failed: ValueError: boom"):
        pipe.query("Alpha")


def test_nested_stage_specs_are_validated_normalised_and_built_with_the_configs_backends():
    config = {"backends": FAKES, "index": {"chunker": {"type": "sentence", "max_tokens": 4},
                                           "retriever": {"type": "bm25"}, "store": ":memory:"},
              "query": {"selector": [{"type": "corag", "budget": 12, "scorer": "embedding"}]}}
    pipe = Pipeline.from_config(config)
    assert pipe.to_config()["query"]["selector"][0]["scorer"] == {"type": "embedding", "embedder": "default"}
    corag = pipe.selector
    assert type(corag.scorer).__name__ == "EmbeddingScorer", "the pipeline builds the nested scorer"
    assert corag.scorer.embedder is pipe.embedder, "with the config's (cached) embedder"
    pipe.index(DOCS)
    answer = pipe.query("Alpha three")
    assert answer.chunks and sum(s.chunk.token_count for s in answer.chunks) <= 12
    with pytest.raises(ConfigError) as info:
        Pipeline.from_config({**config, "query": {"selector": {"type": "corag", "budget": 0, "scorer": "embeding"}}})
    assert "query.selector.budget" in str(info.value) and "query.selector.scorer.type" in str(info.value)
    assert "Did you mean 'embedding'" in str(info.value)
