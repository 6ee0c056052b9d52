"""LLMMetadataEnricher with fake LLMs: storage, order, prompts, batching, retries, reports, usage."""

from __future__ import annotations

import json
import warnings

import pytest

from ragkit.enrichers._common import MetadataWarning
from ragkit.enrichers.llm_metadata import METADATA_PROMPT, LLMMetadataEnricher
from ragkit.errors import ConfigError, StructuredOutputError
from ragkit.llm.base import Completion, LLMBackend
from ragkit.testing import FakeLLM
from ragkit.types import Chunk, Document
from ragkit.usage import usage_scope

GOOD = {"content_type": "Procedural", "intent": "How-To", "topic": "oil change", "keywords": ["oil", "filter"],
        "entities": ["Acme"], "question": "How do I change the oil?"}


def make_chunks(n: int = 5, title: str = "Car manual") -> tuple[list[Chunk], dict[str, Document]]:
    text = "".join(f"Step {i}: do thing number {i} carefully. " for i in range(n))
    doc = Document.from_text(text, {"title": title})
    chunks, pos = [], 0
    for i in range(n):
        piece = f"Step {i}: do thing number {i} carefully."
        start = text.index(piece, pos)
        chunks.append(Chunk.from_span(doc, start, start + len(piece), 8, {"heading_path": ["Manual", "Oil"]}))
        pos = start + len(piece)
    return chunks, {doc.id: doc}


def answer_for(request) -> str:
    """Deterministic metadata derived from the step number in the prompt."""
    user = request.messages[1]["content"]
    step = int(user.split("Step ")[1].split(":")[0])
    return json.dumps({**GOOD, "topic": f"step {step}", "keywords": [f"step{step}", "oil"]})


def test_metadata_goes_under_llm_and_text_is_untouched():
    chunks, docs = make_chunks()
    enricher = LLMMetadataEnricher(llm=FakeLLM(mode="function", function=answer_for), profile="compact")
    out = enricher.enrich(chunks, docs)
    assert [c.id for c in out] == [c.id for c in chunks]
    for before, after in zip(chunks, out):
        assert (after.text, after.start, after.end, after.token_count) == (before.text, before.start, before.end,
                                                                           before.token_count)
        step = before.text.split(":")[0].split()[1]
        assert after.metadata["llm"]["topic"] == f"step {step}"
        assert after.metadata["heading_path"] == ["Manual", "Oil"]  # other metadata kept
    report = enricher.last_report_
    assert (report.chunks, report.valid, report.invalid_ids, report.retried) == (5, 5, [], 0)


def test_prompt_has_context_fields_schema_and_version():
    chunks, docs = make_chunks(1)
    enricher = LLMMetadataEnricher(llm=FakeLLM(), profile="compact", max_input_chars=120)
    request = enricher.request_for(chunks[0], docs[chunks[0].doc_id])
    user = request.messages[-1]["content"]
    assert "Document: Car manual\nSection: Manual > Oil" in user
    assert "- content_type: what kind of text it is; one of Conceptual, Procedural, Reference" in user
    assert "Describe this passage. Fields:\n- content_type" in user
    assert request.json_schema == enricher.schema_.json_schema() and request.max_tokens == 96
    assert request.template_version == METADATA_PROMPT.key == "llm_metadata@3" and request.temperature == 0.0
    no_context = LLMMetadataEnricher(llm=FakeLLM(), include_context=False).request_for(chunks[0], None)
    assert "Document:" not in no_context.messages[-1]["content"]
    assert no_context.max_tokens == 320  # the default profile's budget


def test_prompt_clips_long_chunks_but_metadata_never_touches_text():
    doc = Document.from_text("word " * 2000)
    chunk = Chunk.from_span(doc, 0, len(doc.text), 2000)
    enricher = LLMMetadataEnricher(llm=FakeLLM(mode="fixed", responses=[json.dumps(GOOD)]), profile="compact",
                                   max_input_chars=300)
    assert len(enricher.request_for(chunk, doc).messages[-1]["content"]) < 1500
    out = enricher.enrich([chunk], {doc.id: doc})[0]
    assert out.text == doc.text and out.token_count == 2000


def test_batches_are_bounded_by_batch_size():
    chunks, docs = make_chunks(7)
    sizes = []

    class Recording(FakeLLM):
        def generate(self, requests):
            sizes.append(len(requests))
            return super().generate(requests)

    LLMMetadataEnricher(llm=Recording(mode="function", function=answer_for), profile="compact",
                        batch_size=3).enrich(chunks, docs)
    assert sizes == [3, 3, 1]


def test_invalid_output_is_retried_with_the_error_then_kept_empty_and_reported():
    chunks, docs = make_chunks(4)
    seen_retry = []

    def flaky(request):
        user = request.messages[1]["content"]
        step = int(user.split("Step ")[1].split(":")[0])
        if len(request.messages) > 2:  # a retry turn
            seen_retry.append(request.messages[-1]["content"])
            if step == 1:
                return json.dumps(GOOD)  # fixed on retry
        if step in (1, 3):
            return '{"content_type": "Essay"}'
        return json.dumps(GOOD)

    enricher = LLMMetadataEnricher(llm=FakeLLM(mode="function", function=flaky), profile="compact", max_retries=1)
    with pytest.warns(MetadataWarning, match=r"1 of 4 chunk\(s\) got no LLM metadata") as caught:
        out = enricher.enrich(chunks, docs)
    assert len(out) == 4 and [c.text for c in out] == [c.text for c in chunks]  # never dropped
    assert out[1].metadata["llm"] == GOOD and out[3].metadata["llm"] == {}
    report = enricher.last_report_
    assert report.valid == 3 and report.invalid_ids == [chunks[3].id] and report.retried == 2
    assert "missing field(s)" in report.errors[chunks[3].id]
    assert chunks[3].id[:12] in str(caught[0].message)
    assert all("That answer is not valid: missing field(s)" in m for m in seen_retry)
    assert report.valid_rate == 0.75


def test_no_retries_when_disabled():
    chunks, docs = make_chunks(2)
    llm = FakeLLM(mode="fixed", responses=["not json"])
    with pytest.warns(MetadataWarning):
        out, report = LLMMetadataEnricher(llm=llm, profile="compact", max_retries=0).enrich_with_report(chunks, docs)
    assert llm.calls == 2 and report.invalid_ids == [c.id for c in chunks]
    assert report.errors[chunks[0].id].startswith("not valid JSON")
    assert all(c.metadata["llm"] == {} for c in out)


class StrictBackend(LLMBackend):
    """Raises StructuredOutputError for prompts about step 2 (like the caching wrapper after its retries)."""

    def __init__(self) -> None:
        self.batches = []

    def generate(self, requests):
        self.batches.append(len(requests))
        out = []
        for r in requests:
            if "Step 2:" in r.messages[1]["content"]:
                raise StructuredOutputError("strict", "does not match the JSON schema", raw="{}")
            out.append(Completion(text=json.dumps(GOOD)))
        return out


def test_structured_output_error_fails_one_chunk_not_the_batch():
    chunks, docs = make_chunks(4)
    backend = StrictBackend()
    with pytest.warns(MetadataWarning):
        out, report = LLMMetadataEnricher(llm=backend, profile="compact", max_retries=0).enrich_with_report(chunks, docs)
    assert backend.batches[0] == 4 and backend.batches[1:] == [1, 1, 1, 1]  # isolated after the batch failed
    assert report.invalid_ids == [chunks[2].id] and "structured output failed" in report.errors[chunks[2].id]
    assert [c.metadata["llm"] == GOOD for c in out] == [True, True, False, True]


def test_other_backend_errors_propagate():
    class Down(LLMBackend):
        def generate(self, requests):
            raise ConnectionError("server unreachable")

    chunks, docs = make_chunks(2)
    with pytest.raises(ConnectionError, match="unreachable"):
        LLMMetadataEnricher(llm=Down()).enrich(chunks, docs)


def test_usage_is_accounted_and_hash_fake_gives_valid_metadata():
    chunks, docs = make_chunks(6)
    llm = FakeLLM()  # hash mode: a schema-valid instance per request
    with usage_scope() as usage, warnings.catch_warnings():
        warnings.simplefilter("error", MetadataWarning)
        out = LLMMetadataEnricher(llm=llm, profile="default").enrich(chunks, docs)
    assert usage.llm_calls == 6 and usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert all(set(c.metadata["llm"]) == {"content_type", "keywords", "entities", "summary", "intents",
                                          "potential_questions"} for c in out)


def test_custom_key_fields_and_pydantic_model():
    from pydantic import BaseModel

    class Topic(BaseModel):
        topic: str

    chunks, docs = make_chunks(2)
    out = LLMMetadataEnricher(llm=FakeLLM(mode="fixed", responses=['{"topic": "oil"}']), model=Topic,
                              key="meta").enrich(chunks, docs)
    assert out[0].metadata["meta"] == {"topic": "oil"} and "llm" not in out[0].metadata
    fields = [{"name": "kind", "type": "enum", "values": ["a", "b"]}]
    out = LLMMetadataEnricher(llm=FakeLLM(mode="fixed", responses=['{"kind": "b"}']), fields=fields).enrich(chunks, docs)
    assert out[1].metadata["llm"] == {"kind": "b"}
    with pytest.raises(ConfigError, match="either fields .* or model"):
        LLMMetadataEnricher(llm=FakeLLM(), fields=fields, model=Topic)


def test_empty_input_and_docs_as_list():
    enricher = LLMMetadataEnricher(llm=FakeLLM())
    assert enricher.enrich([], {}) == [] and enricher.last_report_.chunks == 0
    chunks, docs = make_chunks(1)
    out = LLMMetadataEnricher(llm=FakeLLM(mode="fixed", responses=[json.dumps(GOOD)]), profile="compact").enrich(
        chunks, list(docs.values()))
    assert out[0].metadata["llm"]["topic"] == "oil change"


def test_registered_and_buildable_from_config():
    from ragkit.testing.checks import build_with_fakes, normalised_params

    enricher = build_with_fakes("enricher", "llm_metadata", profile="compact")
    assert isinstance(enricher, LLMMetadataEnricher) and enricher.output_tokens == 96
    params = normalised_params("enricher", "llm_metadata", profile="compact")
    assert params["profile"] == "compact" and params["batch_size"] == 32 and params["max_retries"] == 1


def test_through_the_caching_wrapper_second_run_makes_no_backend_call(tmp_path):
    from ragkit.cache import CacheStore
    from ragkit.llm.cached import CachedLLM

    chunks, docs = make_chunks(5)
    inner = FakeLLM(mode="function", function=answer_for)
    llm = CachedLLM(inner=inner, store=CacheStore(tmp_path / "c.sqlite"))
    first = LLMMetadataEnricher(llm=llm, profile="compact").enrich(chunks, docs)
    calls = inner.calls
    with usage_scope() as usage:
        enricher = LLMMetadataEnricher(llm=llm, profile="compact")
        second = enricher.enrich(chunks, docs)
    assert inner.calls == calls == 5 and usage.cached_calls == 5 and usage.llm_calls == 0
    assert [c.metadata for c in second] == [c.metadata for c in first] and enricher.last_report_.cached == 5


def test_wrapper_failures_stay_per_chunk_and_are_not_regenerated(tmp_path):
    from ragkit.cache import CacheStore
    from ragkit.llm.cached import CachedLLM

    def bad_for_step_2(request):
        return '{"oops": 1}' if "Step 2:" in request.messages[1]["content"] else json.dumps(GOOD)

    chunks, docs = make_chunks(4)
    inner = FakeLLM(mode="function", function=bad_for_step_2)
    llm = CachedLLM(inner=inner, store=CacheStore(tmp_path / "c.sqlite"), structured_retries=2)
    with pytest.warns(MetadataWarning, match=r"1 of 4"):
        out, report = LLMMetadataEnricher(llm=llm, profile="compact", max_retries=1).enrich_with_report(chunks, docs)
    assert inner.calls == 4 + 2  # one batch of 4, then the wrapper's two retries of the bad one; nothing else
    assert report.invalid_ids == [chunks[2].id] and report.retried == 0
    assert "does not satisfy the requested JSON schema after 3 attempt(s)" in report.errors[chunks[2].id]
    assert out[2].metadata["llm"] == {} and out[0].metadata["llm"] == GOOD


def test_artifact_round_trip_rescores_without_the_llm(tmp_path):
    from ragkit.enrichers.llm_metadata import artifact_rows, read_metadata_artifact, write_metadata_artifact

    chunks, docs = make_chunks(4)

    def bad_for_step_3(request):
        return "nope" if "Step 3:" in request.messages[1]["content"] else answer_for(request)

    generator = LLMMetadataEnricher(llm=FakeLLM(mode="function", function=bad_for_step_3), profile="compact",
                                    max_retries=0)
    with pytest.warns(MetadataWarning):
        first = generator.enrich(chunks, docs)
    path = tmp_path / "artifacts" / "meta.jsonl"
    written = write_metadata_artifact(path, artifact_rows(generator, first, docs),
                                      {"command": "pytest", "model": "fake"})
    header, rows = read_metadata_artifact(path)
    assert written == 4 and header == {"format": 1, "command": "pytest", "model": "fake"}
    assert [r["valid"] for r in sorted(rows, key=lambda r: r["start"])] == [True, True, True, False]

    silent = FakeLLM(mode="fixed", responses=["must not be called"])
    reuse = LLMMetadataEnricher(llm=silent, profile="compact", max_retries=0, precomputed=str(path))
    with pytest.warns(MetadataWarning, match="1 of 4"):
        again = reuse.enrich(chunks, docs)
    assert silent.calls == 0 and reuse.last_report_.precomputed == 4
    assert [c.metadata for c in again] == [c.metadata for c in first]
    assert "invalid when the artifact was generated" in reuse.last_report_.errors[chunks[3].id]

    other = make_chunks(5)[0][4:]  # a chunk the artifact does not have: generated by the LLM
    fresh = LLMMetadataEnricher(llm=FakeLLM(mode="function", function=answer_for), profile="compact",
                                precomputed=str(path)).enrich(other, docs)
    assert fresh[0].metadata["llm"]["topic"] == "step 4"
    with pytest.raises(ConfigError, match="does not exist"):
        LLMMetadataEnricher(llm=silent, precomputed=str(tmp_path / "missing.jsonl")).enrich(chunks, docs)
