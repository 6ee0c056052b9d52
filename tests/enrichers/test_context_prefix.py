"""ContextPrefixEnricher with fake LLMs: stored context, prompt, clean-up, retries, report."""

from __future__ import annotations

import pytest

from ragkit.enrichers._common import MetadataWarning, document_title
from ragkit.enrichers.context_prefix import CONTEXT_PROMPT, ContextPrefixEnricher, context_line
from ragkit.testing import FakeLLM
from ragkit.types import Chunk, Document


def make_doc() -> tuple[Document, list[Chunk]]:
    text = "Installing\nRun the installer.\n\nConfiguring\nEdit the settings file."
    doc = Document.from_text(text, {"headings": [(0, 10, 1, "Installing"), (30, 41, 1, "Configuring")],
                                    "source_id": "docs/guide.md"})
    chunks = [Chunk.from_span(doc, 11, 29, 4, {"heading_path": ["Installing"]}),
              Chunk.from_span(doc, 42, len(text), 4, {"heading_path": ["Configuring"]})]
    return doc, chunks


def test_context_is_stored_and_text_untouched():
    doc, chunks = make_doc()
    llm = FakeLLM(mode="fixed", responses=['  "It explains how to run the installer of the tool. More text."\n'])
    out = ContextPrefixEnricher(llm=llm).enrich(chunks, {doc.id: doc})
    assert [c.text for c in out] == [c.text for c in chunks]
    context = out[1].metadata["context"]
    assert context == {"title": "Installing", "heading_path": ["Configuring"],
                       "summary": "It explains how to run the installer of the tool."}
    assert context_line(context) == "Installing > Configuring: It explains how to run the installer of the tool."


def test_prompt_shows_title_section_document_start_and_chunk():
    doc, chunks = make_doc()
    enricher = ContextPrefixEnricher(llm=FakeLLM(), max_document_chars=20)
    request = enricher.request_for(chunks[1], doc)
    user = request.messages[-1]["content"]
    assert user.startswith("Document: Installing\nSection: Configuring\n\nBeginning of the document:")
    assert "Edit the settings file." in user and "Run the installer." not in user  # document clipped to 20 chars
    assert request.template_version == CONTEXT_PROMPT.key and request.max_tokens == 48


def test_empty_answers_are_retried_then_reported_without_summary():
    doc, chunks = make_doc()
    llm = FakeLLM(mode="fixed", responses=["ok"])
    with pytest.warns(MetadataWarning, match=r"2 of 2 chunk\(s\)"):
        out, report = ContextPrefixEnricher(llm=llm, max_retries=1).enrich_with_report(chunks, {doc.id: doc})
    assert llm.calls == 4 and report.retried == 2 and report.invalid_ids == [c.id for c in chunks]
    assert out[0].metadata["context"] == {"title": "Installing", "heading_path": ["Installing"]}
    assert context_line(out[0].metadata["context"]) == "Installing > Installing"


def test_summary_is_clipped():
    doc, chunks = make_doc()
    long = "This passage " + "very " * 100 + "long."
    out = ContextPrefixEnricher(llm=FakeLLM(mode="fixed", responses=[long]), max_summary_chars=40).enrich(
        chunks[:1], {doc.id: doc})
    assert len(out[0].metadata["context"]["summary"]) <= 40


def test_document_title_fallbacks():
    assert document_title(Document.from_text("x", {"title": " A  Title "})) == "A Title"
    assert document_title(Document.from_text("x", {"source_id": "docs/setup.md"})) == "setup"
    assert document_title(Document.from_text("x", {"source_id": "report-2024"})) == "report-2024"
    assert document_title(Document.from_text("x")) == "" and document_title(None) == ""
