"""The cluster tree builder: BIC/AIC choice, probability threshold, small-n rule, levels with a seeded stub."""

from __future__ import annotations

import numpy as np
import pytest

from ragkit.testing.fakes import FakeEmbedder, FakeLLM
from ragkit.trees.cluster import ClusterTreeBuilder, GMMClusterer, assign, choose_k, parse_summary, reduce_pca
from ragkit.types import Chunk, Document

SUMMARY = "Title: Group\nKeywords: a; b\nSummary: Several sections."


def sections_doc(n: int) -> tuple[Document, list[Chunk]]:
    parts, heads, spans = [], [], []
    pos = 0
    for i in range(n):
        head = f"# S{i}"
        body = f"Body number {i} talks about topic {i % 3}."
        heads.append((pos, pos + len(head), 1, f"S{i}"))
        spans.append((pos + len(head) + 1, pos + len(head) + 1 + len(body)))
        parts.append(f"{head}\n{body}")
        pos += len(head) + 1 + len(body) + 1
    doc = Document.from_text("\n".join(parts), {"headings": heads})
    return doc, [Chunk.from_span(doc, s, e, 6) for s, e in spans]


def test_bic_aic_choice_and_threshold_assignment():
    assert choose_k([100.0, 90.0, 95.0], [80.0, 70.0, 60.0]) == 1  # normalised sums 1.0+1.0, 0+0.5, 0.5+0
    probabilities = np.array([[0.81, 0.19], [0.8, 0.2], [0.3, 0.7], [0.05, 0.95]])
    clusters, loose = assign(probabilities, 0.8)
    assert clusters == [[0], [3]] and loose == [1, 2], "membership must be strictly above the threshold"
    clusters, loose = assign(probabilities, 0.5)
    assert clusters == [[0, 1], [2, 3]] and loose == []


def test_small_n_is_one_cluster_without_fitting():
    x = np.random.default_rng(1).normal(size=(11, 5))
    clusterer = GMMClusterer(reducer="umap", dim=10)  # 11 <= dim + 1: UMAP is never called
    assert clusterer.cluster(x) == ([list(range(11))], [])
    assert GMMClusterer().cluster(np.zeros((0, 4))) == ([], [])


def test_gmm_with_fixed_embeddings_is_seeded():
    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(0, 0.01, (10, 6)) + np.eye(6)[0], rng.normal(0, 0.01, (10, 6)) + np.eye(6)[1]])
    first = GMMClusterer(reducer="pca", dim=1, small_n=10).cluster(x)
    assert first == GMMClusterer(reducer="pca", dim=1, small_n=10).cluster(x)
    clusters, loose = first
    assert sorted(i for c in clusters for i in c) + loose == list(range(20)) or loose
    assert all(set(c) <= set(range(10)) or set(c) <= set(range(10, 20)) for c in clusters), "groups never mix"
    assert reduce_pca(x, 3).shape == (20, 3)


def test_umap_reducer_runs_when_installed():
    pytest.importorskip("umap", reason="umap-learn is the 'trees' extra")
    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(0, 0.05, (15, 8)) + np.eye(8)[0], rng.normal(0, 0.05, (15, 8)) + np.eye(8)[1]])
    clusters, loose = GMMClusterer(reducer="umap", dim=2, small_n=15).cluster(x)
    assert sorted(i for c in clusters for i in c) + loose == list(range(30)) or loose
    assert all(len(set(c) & set(range(15))) in (0, len(c)) for c in clusters), "clusters never mix the two groups"


class StubClusterer:
    """Seeded stand-in: pairs consecutive items, the last one stays unclustered when the count is odd."""

    def __init__(self):
        self.calls = []

    def cluster(self, embeddings):
        n = len(embeddings)
        self.calls.append(n)
        return [[i, i + 1] for i in range(0, n - 1, 2)], ([n - 1] if n % 2 else [])


def test_levels_with_a_stub_clusterer():
    doc, chunks = sections_doc(5)
    stub = StubClusterer()
    builder = ClusterTreeBuilder(llm=FakeLLM(mode="fixed", responses=[SUMMARY]), embedder=FakeEmbedder(dimension=8),
                                 clusterer=stub, max_levels=4)
    tree = builder.build(doc, chunks)
    assert stub.calls == [5, 3, 2], "5 items → 2 pairs + 1; 3 → 1 pair + 1; 2 → one cluster of all (the root)"
    root = tree.node(tree.root)
    assert root.summary == "Several sections." and len(root.children) == 2
    assert builder.last_report_["levels"] == 3 and builder.last_report_["summaries"] == 4
    assert sorted(leaf.id for leaf in tree.leaves()) == sorted(c.id for c in chunks), "leaves are the chunks, untouched"
    summaries = [n for n in tree.nodes.values() if n.metadata.get("cluster_level")]
    assert {n.metadata["cluster_level"] for n in summaries} == {1, 2, 3}
    for node in tree.nodes.values():
        assert 0 <= node.start <= node.end <= len(doc.text)


def test_max_levels_and_fallback_summary():
    doc, chunks = sections_doc(5)
    builder = ClusterTreeBuilder(llm=FakeLLM(mode="fixed", responses=["???"]), embedder=FakeEmbedder(dimension=8),
                                 clusterer=StubClusterer(), max_levels=1)
    tree = builder.build(doc, chunks)
    assert builder.last_report_["levels"] == 1 and builder.last_report_["fallback_summaries"] == 2
    titles = [tree.node(c).title for c in tree.node(tree.root).children]
    assert titles == ["S0; S1", "S2; S3", "S4"]


def test_summary_parser():
    assert parse_summary("Title: T\nSummary: s") == {"title": "T", "keywords": [], "summary": "s"}
    assert parse_summary("nothing useful") is None


def test_cluster_builder_runs_with_pca_and_gmm():
    doc, chunks = sections_doc(14)
    builder = ClusterTreeBuilder(llm=FakeLLM(mode="fixed", responses=[SUMMARY]), embedder=FakeEmbedder(dimension=16),
                                 reducer="pca", dim=2)
    tree = builder.build(doc, chunks)
    assert len(tree.leaves()) == 14 and builder.last_report_["items"] == 14
