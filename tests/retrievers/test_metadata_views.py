"""Metadata embedding views (prefix_fusion, tfidf_weighted, tfidf_concat) with fixed metadata and fakes.

Covers METHODS §6.5's deterministic tests: prefix formatting (missing fields, CamelCase, truncation),
TF-IDF keyword-string assembly, one fitted vectorizer, fusion arithmetic (norms, padding and
truncation), query heuristics; plus filters on generated fields and persistence through the store.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from ragkit.errors import ConfigError, IndexStoreError
from ragkit.retrievers.dense import DenseRetriever
from ragkit.retrievers.metadata_views import (
    PrefixFusionView,
    QueryVocabulary,
    TfidfConcatView,
    TfidfWeightedView,
    camel_case,
    content_words,
    format_prefix,
    generic_query_metadata,
    keyword_string,
    prefix_groups,
    register_query_prefix,
)
from ragkit.retrievers.views import make_view, view_names
from ragkit.testing.fakes import FakeEmbedder
from ragkit.types import Chunk, Document, Query

FULL = {
    "content_type": "Procedural",
    "keywords": ["oil change", "drain plug", "filter", "torque"],
    "entities": ["Acme Motors", "Model T"],
    "summary": "How to change the oil.",
    "intents": ["How-To", "Reference"],
    "potential_questions": ["How do I change the engine oil of a Model T quickly and safely at home?", "Other?"],
}


class TableEmbedder:
    """Embeds by looking texts up in a table (unknown texts: a fixed fallback); counts calls."""

    def __init__(self, table: dict[str, list[float]], dimension: int) -> None:
        self.table, self.dimension, self.texts = table, dimension, []

    def _vec(self, text: str) -> np.ndarray:
        self.texts.append(text)
        return np.asarray(self.table.get(text, [1.0] + [0.0] * (self.dimension - 1)), dtype=np.float32)

    def embed_documents(self, texts):
        return np.stack([self._vec(t) for t in texts])

    def embed_query(self, text):
        return self._vec(text)


def chunk(text: str, meta: dict | None = None, start: int = 0) -> Chunk:
    doc = Document.from_text(text)
    return Chunk.from_span(doc, 0, len(text), len(text.split()), meta or {})


# ---------------------------------------------------------------------------------------------------
# prefix formatting

def test_full_metadata_prefix_in_the_studys_order():
    assert format_prefix(FULL, max_chars=500) == (
        "[Intent:How-To] [Procedural] [Entities:Acme Motors|Model T] [Keywords:oil change|drain plug|filter] "
        "[Q:HowDoIChangeTheEngineOilOfAModelTQuicklyAndSafelyA]")


def test_study_shaped_metadata_renders_like_its_prefix():
    study = {"content_type": {"primary": "Warning", "subtypes": ["x"]}, "primary_category": "Storage",
             "mentioned_services": ["S3", "Glacier", "KMS", "IAM"], "has_code": False, "intents": ["Debug"],
             "potential_questions": ["why does my upload fail?"], "tf_idf_keywords": ["s3"]}
    assert format_prefix(study, max_chars=500) == (
        "[Intent:Debug] [Service:S3|Glacier|KMS] [Warning] [Storage] [Code:None] [Q:WhyDoesMyUploadFail]")


def test_missing_and_empty_fields_are_skipped():
    assert format_prefix({"content_type": "Reference", "keywords": [], "entities": None, "topic": ""}) == "[Reference]"
    assert format_prefix({}) == "" and format_prefix(None) == ""
    assert prefix_groups({"potential_questions": []}) == []
    assert prefix_groups({"potential_questions": ["?!"]}) == []  # nothing left after CamelCasing


def test_truncation_drops_whole_tags_and_caps_questions_and_items():
    prefix = format_prefix(FULL, max_chars=60)
    assert prefix == "[Intent:How-To] [Procedural] [Entities:Acme Motors|Model T]" and len(prefix) <= 60
    assert format_prefix(FULL, max_chars=10) == ""
    tags = prefix_groups(FULL, max_items=2, question_chars=10)
    assert "[Keywords:oil change|drain plug]" in tags and "[Q:HowDoIChan]" in tags
    assert camel_case("How do I change the engine oil of a Model T quickly and safely at home?") == \
        "HowDoIChangeTheEngineOilOfAModelTQuicklyAndSafelyA"  # the study's 50 characters
    assert len(camel_case("x" * 80)) == 50


def test_tag_syntax_is_sanitised_and_user_fields_render():
    tags = prefix_groups({"keywords": ["a|b", "[c]"], "department": "HR [north]", "urgent": True, "level": 3})
    assert tags == ["[Keywords:a b|c]", "[Department:HR north]", "[Urgent:Yes]", "[Level:3]"]
    assert prefix_groups(FULL, fields=["summary", "content_type"]) == ["[Summary:How to change the oil.]", "[Procedural]"]
    assert prefix_groups({"intent": "Explain", "question": "What is X?"}, fields=["intents", "potential_questions"]) == \
        ["[Intent:Explain]", "[Q:WhatIsX]"]


def test_context_line_follows_the_tags():
    context = {"title": "Manual", "heading_path": ["Engine", "Oil"], "summary": "Oil change steps."}
    assert format_prefix({"content_type": "Procedural"}, context) == \
        "[Procedural] Manual > Engine > Oil: Oil change steps."
    assert len(format_prefix({}, {"summary": "x " * 300}, context_chars=50)) <= 50


def test_prefix_fusion_embeds_prefix_plus_text_and_never_changes_text():
    c = chunk("Drain the oil.", {"llm": FULL})
    plain = chunk("No metadata here.")
    view = PrefixFusionView(max_prefix_chars=40)
    texts = view.chunk_texts([c, plain])
    assert texts == ["[Intent:How-To] [Procedural] Drain the oil.", "No metadata here."]
    assert c.text == "Drain the oil." and c.token_count == 3  # the chunk record is untouched
    embedder = TableEmbedder({}, 4)
    view.fit([c, plain])
    view.embed_chunks([c, plain], embedder)
    assert embedder.texts == texts


# ---------------------------------------------------------------------------------------------------
# query side

@pytest.mark.parametrize("query, intent, content_type", [
    ("How do I install the agent?", "How-To", "Procedural"),
    ("Why does the upload fail with an error?", "Debug", "Warning"),
    ("What is the difference between A and B?", "Compare", "Conceptual"),
    ("What is a vector index?", "Explain", "Conceptual"),
    ("Which parameters does it take?", "Reference", "Reference"),
    ("Show an example of a config", None, "Example"),
    ("vector index", None, None),
])
def test_generic_query_cues(query, intent, content_type):
    meta = generic_query_metadata(query, QueryVocabulary())
    assert meta.get("intent") == intent and meta.get("content_type") == content_type
    assert meta["question"] == query


def test_query_prefix_uses_index_vocabulary_and_same_format():
    chunks = [chunk("a", {"llm": {"entities": ["Acme Motors", "x"], "keywords": ["oil change", "the"]}})]
    view = PrefixFusionView()
    view.fit(chunks)
    assert view.vocabulary_.entities == {"acme motors": "Acme Motors"}  # too-short and stop-word phrases left out
    text = view.query_text(Query.from_text("How do I book an oil change at Acme Motors?"))
    assert text == ("[Intent:How-To] [Procedural] [Entities:Acme Motors] [Keywords:oil change] "
                    "[Q:HowDoIBookAnOilChangeAtAcmeMotors] How do I book an oil change at Acme Motors?")
    none = PrefixFusionView(query_prefix="none")
    assert none.query_text(Query.from_text("How?")) == "How?"


def test_query_prefix_builder_is_pluggable():
    register_query_prefix("test_always_compare", lambda q, vocab: {"intent": "Compare", "content_type": "Reference"})
    view = make_view("prefix_fusion", {"query_prefix": "test_always_compare"})
    assert view.query_text(Query.from_text("anything")) == "[Intent:Compare] [Reference] anything"
    with pytest.raises(ConfigError, match="query_prefix 'nope' is not registered; available: .*generic"):
        PrefixFusionView(query_prefix="nope")
    with pytest.raises(ConfigError, match="already registered"):
        register_query_prefix("generic", lambda q, v: {})


def test_bad_view_options_are_config_errors():
    with pytest.raises(ConfigError, match="max_items must be an integer >= 1, got 0"):
        PrefixFusionView(max_items=0)
    with pytest.raises(ConfigError, match="view_options.*unexpected keyword argument 'colour'"):
        make_view("prefix_fusion", {"colour": "red"})
    with pytest.raises(ConfigError, match="tfidf_weight must be a number >= 0, got -1"):
        TfidfWeightedView(tfidf_weight=-1)
    with pytest.raises(ConfigError, match=r"ngram_range must be \[min, max\]"):
        TfidfWeightedView(ngram_range=[2, 1])
    assert {"prefix_fusion", "tfidf_weighted", "tfidf_concat", "content"} <= set(view_names())


# ---------------------------------------------------------------------------------------------------
# TF-IDF

def test_keyword_string_assembly():
    meta = {"keywords": ["oil", "filter"], "entities": ["Acme"], "primary_category": "Maintenance",
            "mentioned_services": ["Lube"], "potential_questions": ["How do I replace the filter?"],
            "summary": "not used", "content_type": "Procedural"}
    assert keyword_string(meta) == "oil filter Acme Maintenance Lube replace filter oil filter Acme Lube"
    assert keyword_string({**meta, "tf_idf_keywords": ["given"]}).endswith("filter given")
    assert keyword_string(meta, fields=["summary"]) == "not used"
    assert keyword_string({}) == "" and keyword_string(None) == ""
    assert content_words("What are the best ways to rotate keys?") == ["best", "ways", "rotate", "keys"]


def corpus(n: int) -> list[Chunk]:
    out = []
    for i in range(n):
        words = [f"term{i}", f"shared{i % 3}"]
        out.append(chunk(f"chunk number {i}", {"llm": {"keywords": words, "entities": [f"entity{i}"]}}))
    return out


def test_vectorizer_fitted_once_on_all_chunks_and_reused_for_queries(monkeypatch):
    from sklearn.feature_extraction.text import TfidfVectorizer

    fits = []
    original = TfidfVectorizer.fit

    def counting_fit(self, *args, **kwargs):
        fits.append(len(args[0]))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(TfidfVectorizer, "fit", counting_fit)
    chunks = corpus(150)
    # the aligned variant makes the TF-IDF part decisive here (the study's mix truncates it to 32 dims)
    retriever = DenseRetriever(embedder=FakeEmbedder(dimension=32), view="tfidf_concat",
                               view_options={"max_features": 1000, "dense_weight": 0.2, "tfidf_weight": 0.8}
                               ).index(chunks)
    for i in (3, 140, 149):
        hits = retriever.retrieve(f"about term{i} please", k=1)
        assert hits[0].chunk.metadata["llm"]["keywords"][0] == f"term{i}"  # chunk 140 is beyond the first 100
    weighted = DenseRetriever(embedder=FakeEmbedder(dimension=32), view="tfidf_weighted").index(chunks)
    for i in range(20):
        weighted.retrieve(f"term{i}", k=3)
    assert fits == [150, 150], "one vectorizer per index, fitted once on every chunk, never at query time"
    assert retriever.view_.fit_count_ == 1 and weighted.view_.fit_count_ == 1
    assert "term140" in retriever.view_.vocabulary_


def test_weighted_fusion_arithmetic_with_padding():
    chunks = [chunk("alpha text", {"llm": {"keywords": ["apple", "banana"]}}),
              chunk("beta text", {"llm": {"keywords": ["cherry"]}})]
    dense = {"alpha text": [3.0, 4.0, 0.0, 0.0, 0.0], "beta text": [0.0, 0.0, 2.0, 0.0, 0.0],
             "cherry cake": [0.0, 1.0, 0.0, 0.0, 0.0]}
    embedder = TableEmbedder(dense, 5)
    view = TfidfWeightedView(ngram_range=[1, 1])
    view.fit(chunks)
    # keyword strings: "apple banana apple banana" / "cherry cherry" → vocabulary apple, banana, cherry
    assert view.vocabulary_ == ["apple", "banana", "cherry"]
    vectors = view.embed_chunks(chunks, embedder)
    t0 = np.array([1, 1, 0, 0, 0]) / np.sqrt(2)  # equal idf for apple/banana: normalised, then zero-padded
    expected0 = 0.7 * np.array([0.6, 0.8, 0, 0, 0]) + 0.3 * t0
    np.testing.assert_allclose(vectors[0], expected0 / np.linalg.norm(expected0), atol=1e-6)
    expected1 = 0.7 * np.array([0, 0, 1, 0, 0]) + 0.3 * np.array([0, 0, 1, 0, 0])
    np.testing.assert_allclose(vectors[1], expected1 / np.linalg.norm(expected1), atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    q = view.embed_query(Query.from_text("cherry cake"), embedder)  # content words: cherry (cake has 4 letters)
    expected_q = 0.7 * np.array([0, 1, 0, 0, 0]) + 0.3 * np.array([0, 0, 1, 0, 0])
    np.testing.assert_allclose(q, expected_q / np.linalg.norm(expected_q), atol=1e-6)
    q2 = view.embed_query(Query.from_text("the and"), embedder)  # no content words: the dense vector alone
    np.testing.assert_allclose(q2, [1, 0, 0, 0, 0], atol=1e-6)


def test_weighted_fusion_truncates_tfidf_to_the_dense_dimension():
    chunks = [chunk(f"c{i}", {"llm": {"keywords": [f"k{i}word"]}}) for i in range(6)]
    view = TfidfWeightedView(ngram_range=[1, 1])
    view.fit(chunks)
    assert view.n_features == 6
    vectors = view.embed_chunks(chunks, TableEmbedder({}, 4))  # dense dimension 4 < 6 features
    assert vectors.shape == (6, 4)
    # chunks 4 and 5 have their only term in a dropped column: their vectors are the dense part alone
    np.testing.assert_allclose(vectors[5], [1, 0, 0, 0], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)


def test_concat_inner_product_is_the_weighted_cosine_mix():
    chunks = [chunk("alpha text", {"llm": {"keywords": ["apple", "banana"]}}),
              chunk("beta text", {"llm": {"keywords": ["cherry"]}}), chunk("gamma text")]
    dense = {"alpha text": [3.0, 4.0, 0.0], "beta text": [0.0, 0.0, 2.0], "gamma text": [1.0, 1.0, 1.0],
             "apple pie recipe": [1.0, 0.0, 0.0]}
    embedder = TableEmbedder(dense, 3)
    view = TfidfConcatView()
    view.fit(chunks)
    vectors = view.embed_chunks(chunks, embedder)
    assert vectors.shape == (3, 3 + view.n_features)
    q = view.embed_query(Query.from_text("apple pie recipe"), embedder)
    tq = view.query_tfidf(Query.from_text("apple pie recipe"))
    tc = view.chunk_tfidf(chunks)
    for i, c in enumerate(chunks):
        d = np.asarray(dense[c.text]) / np.linalg.norm(dense[c.text])
        cos_d = float(d @ np.array([1.0, 0.0, 0.0]))
        cos_t = float(tc[i] @ tq)
        assert float(vectors[i] @ q) == pytest.approx(0.7 * cos_d + 0.3 * cos_t, abs=1e-6)
    assert np.linalg.norm(vectors[2]) == pytest.approx(np.sqrt(0.7), abs=1e-6)  # no metadata: dense part only


def test_no_metadata_warns_and_degrades_to_content():
    chunks = [chunk("one"), chunk("two")]
    with pytest.warns(UserWarning, match="none of the 2 chunks has metadata under 'llm'"):
        view = make_view("tfidf_weighted")
        view.fit(chunks)
    assert view.n_features == 0
    embedder = FakeEmbedder(dimension=8)
    np.testing.assert_allclose(view.embed_chunks(chunks, embedder), embedder.embed_documents(["one", "two"]), atol=1e-6)


# ---------------------------------------------------------------------------------------------------
# filters and persistence

def tagged_corpus() -> list[Chunk]:
    kinds = ["Procedural", "Conceptual", "Reference"]
    out = []
    for i in range(12):
        meta = {"llm": {"content_type": kinds[i % 3], "keywords": [f"topic{i}"], "intent": "How-To",
                        "question": f"what about topic{i}?"}, "source": f"doc{i % 2}.md"}
        out.append(chunk(f"text about topic{i} and more", meta))
    return out


@pytest.mark.parametrize("view", ["prefix_fusion", "tfidf_weighted", "tfidf_concat"])
def test_filters_on_generated_fields_apply_before_top_k(view):
    chunks = tagged_corpus()
    retriever = DenseRetriever(embedder=FakeEmbedder(dimension=32), view=view).index(chunks)
    hits = retriever.retrieve("topic1", k=3, filter={"llm.content_type": "Procedural"})
    assert len(hits) == 3 and all(h.chunk.metadata["llm"]["content_type"] == "Procedural" for h in hits)
    everything = retriever.retrieve("topic1", k=50, filter={"llm.content_type": ["Procedural", "Reference"],
                                                             "source": "doc0.md"})
    expected = {c.id for c in chunks if c.metadata["llm"]["content_type"] in ("Procedural", "Reference")
                and c.metadata["source"] == "doc0.md"}
    assert {h.chunk.id for h in everything} == expected
    assert retriever.retrieve("x", k=5, filter={"llm.keywords": "topic7"})[0].chunk.metadata["llm"]["keywords"] == ["topic7"]


@pytest.mark.parametrize("view, options", [
    ("prefix_fusion", {"max_prefix_chars": 120}),
    ("tfidf_weighted", {"max_features": 50}),
    ("tfidf_concat", {"dense_weight": 0.6, "tfidf_weight": 0.4}),
])
def test_view_state_round_trips_through_save_and_load(tmp_path, view, options):
    chunks = tagged_corpus()
    embedder = FakeEmbedder(dimension=32)
    built = DenseRetriever(embedder=embedder, view=view, view_options=options).index(chunks)
    built.save(tmp_path / "r")
    saved = json.loads((tmp_path / "r" / "view.json").read_text())
    assert saved["name"] == view and saved["options"] == json.loads(json.dumps(built.view_.options))
    loaded = DenseRetriever(embedder=embedder, view=view, view_options=options).load(tmp_path / "r")
    assert loaded.view_.state() == built.view_.state()
    q = Query.from_text("How do I use topic5?")
    np.testing.assert_array_equal(loaded.query_vector(q), built.query_vector(q))
    assert [h.chunk.id for h in loaded.retrieve(q, k=4)] == [h.chunk.id for h in built.retrieve(q, k=4)]
    assert loaded.chunks_[0].metadata["llm"] == chunks[0].metadata["llm"]
    with pytest.raises(IndexStoreError, match=f"view: saved '{view}' vs configured 'content'"):
        DenseRetriever(embedder=embedder, view="content").load(tmp_path / "r")


def test_pipeline_round_trip_with_fake_llm_metadata_and_filters(tmp_path):
    """Index with the llm_metadata enricher (fake LLM) + prefix_fusion, persist, reopen, filter on llm.*."""
    from ragkit.pipeline import Pipeline

    (tmp_path / "docs").mkdir()
    for i in range(4):
        paragraphs = [f"Section {i}.{j}: instructions about widget{i}{j} and gadget{j}." for j in range(5)]
        (tmp_path / "docs" / f"d{i}.md").write_text("\n\n".join(paragraphs), encoding="utf-8")
    config = {
        "backends": {"llm": {"default": {"type": "fake"}}, "embeddings": {"default": {"type": "fake", "dimension": 32}}},
        "corpus": {"paths": [str(tmp_path / "docs" / "*.md")]},
        "index": {"store": str(tmp_path / "store"), "chunker": {"type": "paragraph", "max_tokens": 40},
                  "enrichers": [{"type": "llm_metadata", "profile": "compact"}],
                  "retriever": {"type": "dense", "view": "prefix_fusion"}},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no invalid metadata, no "no metadata" warning
        first = Pipeline.from_config(config)
        report = first.index()
    chunks = first.retriever.chunks_
    assert report.chunks == len(chunks) >= 8
    assert all(c.metadata["llm"]["content_type"] for c in chunks)
    value = chunks[0].metadata["llm"]["content_type"]
    matching = {c.id for c in chunks if c.metadata["llm"]["content_type"] == value}

    reopened = Pipeline.from_config(config)
    hits = reopened.retrieve("widget12", k=50, filter={"llm.content_type": value})
    assert {h.chunk.id for h in hits} == matching
    assert [c.metadata for c in reopened.retriever.chunks_] == [c.metadata for c in chunks]
    assert reopened.retriever.view_.state() == first.retriever.view_.state()
    assert reopened.run_usage().llm_calls == 0  # reopening the store makes no LLM call


def test_cli_index_then_query_with_metadata_filter_and_show_metadata(tmp_path):
    """`ragkit index` with the enricher (fake LLM), then `ragkit query --filter llm.* --show-metadata`."""
    import yaml
    from typer.testing import CliRunner

    from ragkit.cli import app

    (tmp_path / "docs").mkdir()
    for i in range(3):
        (tmp_path / "docs" / f"d{i}.md").write_text(
            "\n\n".join(f"Part {i}.{j}: how to tune widget{i}{j}." for j in range(4)), encoding="utf-8")
    config = {
        "backends": {"llm": {"default": {"type": "fake"}}, "embeddings": {"default": {"type": "fake", "dimension": 32}}},
        "corpus": {"paths": [str(tmp_path / "docs" / "*.md")]},
        "index": {"store": str(tmp_path / "store"), "chunker": {"type": "paragraph", "max_tokens": 24},
                  "enrichers": [{"type": "llm_metadata", "profile": "compact"}],
                  "retriever": {"type": "hybrid", "view": "tfidf_weighted"}},
        "query": {"selector": {"type": "top_k", "k": 2}},
    }
    path = tmp_path / "meta.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    runner = CliRunner()
    indexed = runner.invoke(app, ["index", str(path)])
    assert indexed.exit_code == 0, indexed.output
    from ragkit.pipeline import Pipeline

    pipe = Pipeline.from_config(config)
    pipe._require_index()
    value = pipe.retriever.chunks_[0].metadata["llm"]["content_type"]
    result = runner.invoke(app, ["query", str(path), "How do I tune widget11?", "--show-metadata",
                                 "--filter", json.dumps({"llm.content_type": value})])
    assert result.exit_code == 0, result.output
    shown = [json.loads(line.split("metadata: ", 1)[1]) for line in result.stdout.splitlines() if "metadata: " in line]
    assert shown and all(m["llm"]["content_type"] == value for m in shown)
