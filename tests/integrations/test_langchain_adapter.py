"""LangChain adapters with the real langchain-core: splitter output equals ragkit's own chunks on the real
corpora (offsets, ids, texts, heading paths, token counts); the retriever returns the pipeline's selection."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

pytest.importorskip("langchain_core")
from _shared_data import CHROMA
from langchain_core.documents import Document as LCDocument  # noqa: E402

from ragkit import Pipeline  # noqa: E402
from ragkit.errors import MissingDependencyError  # noqa: E402
from ragkit.integrations import build_chunker  # noqa: E402
from ragkit.integrations.langchain import RagkitRetriever, RagkitTextSplitter  # noqa: E402
from ragkit.loaders import load_corpus  # noqa: E402
from ragkit.types import Document  # noqa: E402

CORPORA = ["chatlogs", "finance", "pubmed", "state_of_the_union", "wikitexts"]
FAKES = {"llm": {"default": {"type": "fake"}}, "embeddings": {"default": {"type": "fake"}}}


def _corpus(name: str) -> Document:
    path = CHROMA / f"{name}.md"
    if not path.is_file():
        pytest.skip(f"real corpus {path} absent (set RAGKIT_DATA)")
    return load_corpus([path])[0]


def _assert_same(lc_docs, chunks, text: str) -> None:
    assert [d.page_content for d in lc_docs] == [c.text for c in chunks]
    assert [d.id for d in lc_docs] == [c.id for c in chunks]
    assert [d.metadata["chunk_id"] for d in lc_docs] == [c.id for c in chunks]
    assert [(d.metadata["start_index"], d.metadata["end_index"]) for d in lc_docs] == [(c.start, c.end) for c in chunks]
    assert [d.metadata["token_count"] for d in lc_docs] == [c.token_count for c in chunks]
    assert [d.metadata["heading_path"] for d in lc_docs] == [list(c.metadata["heading_path"]) for c in chunks]
    for d in lc_docs:
        assert text[d.metadata["start_index"]:d.metadata["end_index"]] == d.page_content


@pytest.mark.parametrize("name", CORPORA)
def test_splitter_equals_ragkit_recursive_on_real_corpora(name: str) -> None:
    doc = _corpus(name)
    chunker = build_chunker("recursive", {"max_tokens": 200})
    expected = chunker.chunk(doc)
    out = RagkitTextSplitter(chunker).create_documents([doc.text], [{"source": name}])
    assert len(out) == len(expected) > 10
    _assert_same(out, expected, doc.text)
    assert all(d.metadata["source"] == name and d.metadata["doc_id"] == doc.id for d in out)
    assert any(d.metadata["heading_path"] for d in out) == bool(doc.headings)


@pytest.mark.parametrize("spec", [{"type": "token", "max_tokens": 128, "overlap_tokens": 32},
                                  {"type": "sentence", "max_tokens": 150},
                                  {"type": "structure", "max_tokens": 256}])
def test_splitter_other_chunkers_with_overlap_and_structure(spec: dict) -> None:
    doc = _corpus("wikitexts")
    text = doc.text[:60_000]
    ragkit_doc = load_corpus([Document.from_text(text, {"headings": [h for h in doc.headings if h[1] <= len(text)]})])[0]
    expected = build_chunker(spec).chunk(ragkit_doc)
    splitter = RagkitTextSplitter(spec)
    out = splitter.split_documents([LCDocument(page_content=text, metadata={"source": "wiki"})])
    _assert_same(out, expected, text)
    assert splitter.split_text(text) == [c.text for c in expected]


def test_splitter_offsets_are_exact_where_langchain_search_would_be_wrong() -> None:
    text = "Repeat this line.\n\n" * 40
    out = RagkitTextSplitter("token", max_tokens=8).create_documents([text])
    starts = [d.metadata["start_index"] for d in out]
    assert starts == sorted(set(starts)) and len(out) > 10
    assert all(text[d.metadata["start_index"]:d.metadata["end_index"]] == d.page_content for d in out)


def test_splitter_bad_chunker_spec_names_the_problem() -> None:
    with pytest.raises(Exception, match="no_such_chunker"):
        RagkitTextSplitter("no_such_chunker")


def test_missing_extra_names_the_pip_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "langchain_core", None)
    monkeypatch.delitem(sys.modules, "ragkit.integrations.langchain")
    with pytest.raises(MissingDependencyError, match=r"pip install 'ragkit\[langchain\]'"):
        importlib.import_module("ragkit.integrations.langchain")


def _fake_pipeline(selector) -> Pipeline:
    pipe = Pipeline.from_config({"backends": FAKES, "index": {
        "chunker": {"type": "sentence", "max_tokens": 60}, "retriever": {"type": "hybrid"}, "store": ":memory:"},
        "query": {"retrieve": {"k": 12}, "selector": selector}})
    doc = _corpus("state_of_the_union")
    pipe.index_documents([Document.from_text(doc.text[:30_000], {"part": "a"}),
                          Document.from_text(doc.text[30_000:60_000], {"part": "b"})])
    return pipe


@pytest.mark.parametrize("selector", [{"type": "top_k", "k": 5},
                                      [{"type": "top_k", "k": 8}, {"type": "token_budget", "budget": 200}]])
def test_retriever_returns_the_pipelines_selection_in_order(selector) -> None:
    pipe = _fake_pipeline(selector)
    question = "What did the president say about jobs and the economy?"
    docs = RagkitRetriever(pipeline=pipe).invoke(question)
    expected = pipe.select(question)
    assert [d.id for d in docs] == [s.chunk.id for s in expected] and docs
    assert [d.metadata["score"] for d in docs] == [s.score for s in expected]
    assert [s.chunk.id for s in pipe.query(question).chunks] == [d.id for d in docs]


def test_retriever_k_and_filter_reach_the_pipeline() -> None:
    pipe = _fake_pipeline({"type": "top_k", "k": 50})
    docs = RagkitRetriever(pipeline=pipe, k=3, filter={"part": "b"}).invoke("jobs")
    assert len(docs) == 3
    doc_b = {c.doc_id for c in pipe.retriever.chunks_ if c.metadata.get("part") == "b"}
    assert {d.metadata["doc_id"] for d in docs} <= doc_b


@pytest.mark.slow
def test_retriever_end_to_end_with_minilm(tmp_path: Path) -> None:
    doc = _corpus("state_of_the_union")
    config = {"backends": {"llm": {"default": {"type": "fake"}},
                           "embeddings": {"default": {"type": "sentence_transformers", "model": "minilm"}}},
              "index": {"chunker": {"type": "recursive", "max_tokens": 128}, "retriever": {"type": "dense"},
                        "store": str(tmp_path / "store")},
              "query": {"retrieve": {"k": 10}, "selector": {"type": "top_k", "k": 3}}}
    Pipeline.from_config(config).index_documents([Document.from_text(doc.text[:20_000])])
    retriever = RagkitRetriever(pipeline=config)  # a fresh pipeline opens the stored index
    docs = retriever.invoke("What did the speaker say about Ukraine and Russia?")
    assert len(docs) == 3
    assert any("Ukrain" in d.page_content or "Russia" in d.page_content for d in docs)
    assert [d.id for d in docs] == [s.chunk.id for s in Pipeline.from_config(config).select(
        "What did the speaker say about Ukraine and Russia?")]
