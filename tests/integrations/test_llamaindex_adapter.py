"""LlamaIndex adapters with the real llama-index-core: node parser output equals ragkit's own chunks on the
real corpora (offsets, ids, texts), prev/next/parent relationships; the retriever returns the selection."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

pytest.importorskip("llama_index.core")
from _shared_data import CHROMA
from llama_index.core import Document as LIDocument  # noqa: E402
from llama_index.core.schema import MetadataMode, NodeRelationship  # noqa: E402

from ragkit import Pipeline  # noqa: E402
from ragkit.errors import MissingDependencyError  # noqa: E402
from ragkit.integrations import build_chunker  # noqa: E402
from ragkit.integrations.llamaindex import RagkitLlamaRetriever, RagkitNodeParser  # noqa: E402
from ragkit.loaders import load_corpus  # noqa: E402
from ragkit.types import Document  # noqa: E402

CORPORA = ["chatlogs", "finance", "pubmed", "state_of_the_union", "wikitexts"]
FAKES = {"llm": {"default": {"type": "fake"}}, "embeddings": {"default": {"type": "fake"}}}


def _corpus(name: str) -> Document:
    path = CHROMA / f"{name}.md"
    if not path.is_file():
        pytest.skip(f"real corpus {path} absent (set RAGKIT_DATA)")
    return load_corpus([path])[0]


@pytest.mark.parametrize("name", CORPORA)
def test_node_parser_equals_ragkit_on_real_corpora(name: str) -> None:
    doc = _corpus(name)
    expected = build_chunker("recursive", {"max_tokens": 200}).chunk(doc)
    li_doc = LIDocument(text=doc.text, metadata={"source": name})
    nodes = RagkitNodeParser.from_chunker("recursive", max_tokens=200).get_nodes_from_documents([li_doc])
    assert len(nodes) == len(expected) > 10
    assert [n.node_id for n in nodes] == [c.id for c in expected]
    assert [n.text for n in nodes] == [c.text for c in expected]
    assert [(n.start_char_idx, n.end_char_idx) for n in nodes] == [(c.start, c.end) for c in expected]
    assert [n.metadata["token_count"] for n in nodes] == [c.token_count for c in expected]
    assert [n.metadata["heading_path"] for n in nodes] == [list(c.metadata["heading_path"]) for c in expected]
    for i, n in enumerate(nodes):
        assert doc.text[n.start_char_idx:n.end_char_idx] == n.text
        assert n.metadata["source"] == name
        assert n.relationships[NodeRelationship.SOURCE].node_id == li_doc.doc_id
        assert n.relationships[NodeRelationship.PARENT].node_id == li_doc.doc_id
        assert (n.prev_node.node_id if i else None) == (nodes[i - 1].node_id if i else None)
        assert (n.next_node.node_id if n.next_node else None) == (nodes[i + 1].node_id if i + 1 < len(nodes) else None)
    # ragkit's bookkeeping stays out of what LlamaIndex embeds; the heading path stays in
    embed_text = nodes[-1].get_content(metadata_mode=MetadataMode.EMBED)
    assert "chunk_id" not in embed_text and "start_index" not in embed_text


def test_offsets_survive_repeated_text_and_overlap() -> None:
    text = "Same words again and again.\n\n" * 60
    parser = RagkitNodeParser.from_chunker({"type": "token", "max_tokens": 16, "overlap_tokens": 4})
    nodes = parser.get_nodes_from_documents([LIDocument(text=text)])
    expected = build_chunker({"type": "token", "max_tokens": 16, "overlap_tokens": 4}).chunk(Document.from_text(text))
    assert [(n.start_char_idx, n.end_char_idx) for n in nodes] == [(c.start, c.end) for c in expected]
    assert all(text[n.start_char_idx:n.end_char_idx] == n.text for n in nodes)


def test_two_documents_link_only_their_own_nodes() -> None:
    docs = [LIDocument(text="Alpha one. Alpha two. Alpha three."), LIDocument(text="Beta one. Beta two.")]
    nodes = RagkitNodeParser.from_chunker("sentence", max_tokens=4).get_nodes_from_documents(docs)
    first_beta = next(i for i, n in enumerate(nodes) if n.text.startswith("Beta"))
    assert NodeRelationship.NEXT not in nodes[first_beta - 1].relationships
    assert NodeRelationship.PREVIOUS not in nodes[first_beta].relationships


def test_missing_extra_names_the_pip_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_index.core", None)
    monkeypatch.delitem(sys.modules, "ragkit.integrations.llamaindex")
    with pytest.raises(MissingDependencyError, match=r"pip install 'ragkit\[llamaindex\]'"):
        importlib.import_module("ragkit.integrations.llamaindex")


@pytest.mark.parametrize("selector", [{"type": "top_k", "k": 4},
                                      [{"type": "top_k", "k": 8}, {"type": "token_budget", "budget": 150}]])
def test_retriever_returns_the_pipelines_selection_in_order(selector) -> None:
    pipe = Pipeline.from_config({"backends": FAKES, "index": {
        "chunker": {"type": "sentence", "max_tokens": 60}, "retriever": {"type": "hybrid"}, "store": ":memory:"},
        "query": {"retrieve": {"k": 12}, "selector": selector}})
    pipe.index_documents([Document.from_text(_corpus("state_of_the_union").text[:40_000])])
    question = "What about inflation and prices?"
    hits = RagkitLlamaRetriever(pipe).retrieve(question)
    expected = pipe.select(question)
    assert hits and [h.node.node_id for h in hits] == [s.chunk.id for s in expected]
    assert [h.score for h in hits] == [s.score for s in expected]
    assert all(h.node.text == s.chunk.text and (h.node.start_char_idx, h.node.end_char_idx) == (s.chunk.start, s.chunk.end)
               for h, s in zip(hits, expected))
    assert hits[0].node.relationships[NodeRelationship.SOURCE].node_id == expected[0].chunk.doc_id


@pytest.mark.slow
def test_retriever_end_to_end_with_minilm(tmp_path: Path) -> None:
    doc = _corpus("pubmed")
    config = {"backends": {"llm": {"default": {"type": "fake"}},
                           "embeddings": {"default": {"type": "sentence_transformers", "model": "minilm"}}},
              "index": {"chunker": {"type": "recursive", "max_tokens": 128}, "retriever": {"type": "hybrid"},
                        "store": str(tmp_path / "store")},
              "query": {"retrieve": {"k": 10}, "selector": {"type": "top_k", "k": 3}}}
    Pipeline.from_config(config).index_documents([Document.from_text(doc.text[:20_000])])
    question = "What were the results of the clinical study?"
    hits = RagkitLlamaRetriever(config, k=5).retrieve(question)
    assert len(hits) == 3
    assert [h.node.node_id for h in hits] == [s.chunk.id for s in Pipeline.from_config(config).select(question, k=5)]
