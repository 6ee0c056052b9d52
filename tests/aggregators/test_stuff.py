"""The stuff aggregator: prompt order, context cap, one generate call, cited chunks."""

from __future__ import annotations

import pytest

from ragkit.aggregators.stuff import NO_CONTEXT_ANSWER, StuffAggregator, parse_template
from ragkit.errors import ConfigError
from ragkit.testing.fakes import FakeLLM
from ragkit.types import Chunk, Document, Query, ScoredChunk
from ragkit.usage import usage_scope

DOC = Document.from_text("Paris is in France. Rome is in Italy. Tokyo is in Japan.", metadata={"source_id": "cities.md"})
Q = Query.from_text("Where is Rome?")


def selected(token_counts=(5, 5, 5)):
    spans = [(0, 19), (20, 37), (38, 56)]
    return [ScoredChunk(Chunk.from_span(DOC, s, e, n, {"source_id": "cities.md", "heading_path": ["Cities"]}),
                        1.0 - i / 10, "test") for i, ((s, e), n) in enumerate(zip(spans, token_counts))]


def test_one_generate_with_chunks_in_prompt_order():
    llm = FakeLLM(mode="echo")
    with usage_scope() as usage:
        answer = StuffAggregator(llm=llm).aggregate(Q, selected())
    assert llm.calls == 1 and usage.llm_calls == 1
    prompt = answer.text  # echo returns the user message
    assert prompt.index("[1] cities.md > Cities\nParis is in France.") < prompt.index("[2] cities.md > Cities\nRome") \
        < prompt.index("[3] cities.md > Cities\nTokyo")
    assert prompt.rstrip().endswith("Question: Where is Rome?\nAnswer:")
    assert [s.chunk.text for s in answer.chunks] == ["Paris is in France.", "Rome is in Italy.", "Tokyo is in Japan."]
    assert answer.usage.llm_calls == 1 and answer.trace["prompt_template"] == "stuff-v1"


def test_context_cap_keeps_a_prefix():
    agg = StuffAggregator(llm=FakeLLM(mode="echo"), max_context_tokens=10)
    answer = agg.aggregate(Q, selected((4, 6, 1)))
    assert len(answer.chunks) == 2 and answer.trace["dropped_chunks"] == 1 and answer.trace["context_tokens"] == 10
    assert "Tokyo" not in answer.text
    big_first = agg.aggregate(Q, selected((50, 1, 1)))
    assert len(big_first.chunks) == 1  # the first chunk always goes in


def test_text_without_spaces_cannot_blow_the_context_cap():
    """Issue 13.3: Thai chunks of 1 [UNK] token each must not send a 159 KB prompt under max_context_tokens."""
    thai = Document.from_text("\u0e20\u0e32\u0e29\u0e32" * 40_000)
    chunks = [ScoredChunk(Chunk.from_span(thai, i, i + 10_000, 1), 1.0) for i in range(0, 160_000, 10_000)]
    agg = StuffAggregator(llm=FakeLLM(mode="echo"), max_context_tokens=1536)
    answer = agg.aggregate(Q, chunks)
    assert len(answer.text) <= 1536 * 20 + 2_000  # the passages plus the template and headers
    assert answer.trace["dropped_chunks"] >= 12


def test_no_candidates_makes_no_call():
    llm = FakeLLM()
    answer = StuffAggregator(llm=llm).aggregate(Q, [])
    assert answer.text == NO_CONTEXT_ANSWER and answer.chunks == () and llm.calls == 0


def test_placeholders_in_chunk_text_are_not_expanded(tmp_path):
    doc = Document.from_text("The template uses {question} literally.")
    chunk = ScoredChunk(Chunk.from_span(doc, 0, len(doc.text), 6), 1.0)
    text = StuffAggregator(llm=FakeLLM(mode="echo")).aggregate(Q, [chunk]).text
    assert "uses {question} literally" in text


def test_custom_template_and_errors(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("# mine\n[user]\nQ: {question}\nC: {context}\n")
    agg = StuffAggregator(llm=FakeLLM(mode="echo"), template=str(path))
    answer = agg.aggregate(Q, selected())
    assert answer.text.startswith("Q: Where is Rome?\nC: [1]") and answer.trace["prompt_template"] == "file:t.txt"
    with pytest.raises(ConfigError, match=r"must contain \{question\}"):
        parse_template("[user]\n{context}", "x")
    with pytest.raises(ConfigError, match="needs a \\[user\\] section"):
        parse_template("[system]\nhi", "x")
    with pytest.raises(ConfigError, match="cannot read"):
        StuffAggregator(llm=FakeLLM(), template=str(tmp_path / "missing.txt")).aggregate(Q, selected())


# ----------------------------------------------------------------- loop guard and answer budget (issue 23.5)
LOOP = "Rome is in Italy [2]. It is the capital. It is the capital. It is the capital. It is"


def test_loop_guard_cuts_a_repeated_sentence_and_says_so_in_the_trace():
    answer = StuffAggregator(llm=FakeLLM(mode="fixed", responses=[LOOP])).aggregate(Q, selected())
    assert answer.text == "Rome is in Italy [2]. It is the capital."
    guard = answer.trace["loop_guard"]
    assert guard["cut"] and guard["repeated_sentence"] == "It is the capital."
    assert guard["removed_chars"] == len(LOOP) - len(answer.text)
    assert answer.trace["finish_reason"] == "stop"
    off = StuffAggregator(llm=FakeLLM(mode="fixed", responses=[LOOP]), loop_guard=False).aggregate(Q, selected())
    assert off.text == LOOP and "loop_guard" not in off.trace
    clean = StuffAggregator(llm=FakeLLM(mode="fixed", responses=["Italy [2]."])).aggregate(Q, selected())
    assert clean.text == "Italy [2]." and clean.trace["loop_guard"]["cut"] is False


def test_answer_budget_comes_from_the_llms_defaults_unless_set():
    from ragkit.llm.generation import GenerationDefaults

    class Budgeted(FakeLLM):
        def default_generation(self):
            return GenerationDefaults(max_new_tokens=77)

    llm = Budgeted(mode="echo")
    assert StuffAggregator(llm=llm).build_request(Q, selected()).max_tokens == 77
    assert StuffAggregator(llm=llm, max_new_tokens=12).build_request(Q, selected()).max_tokens == 12
    assert StuffAggregator(llm=FakeLLM()).build_request(Q, selected()).max_tokens == 256
    assert StuffAggregator(llm=llm).get_params()["max_new_tokens"] is None
