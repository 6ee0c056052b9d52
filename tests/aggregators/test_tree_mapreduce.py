"""tree_mapreduce: post-order schedule, reduce / pass-through / skip, budget, parsing, retries, trace."""

from __future__ import annotations

import json
import re

from ragkit.aggregators._tom import confidence_value, parse_json_rationale, parse_rationale
from ragkit.aggregators.tree_mapreduce import NO_ANSWER, TreeMapReduceAggregator
from ragkit.context import QueryContext
from ragkit.llm.base import GenerationRequest
from ragkit.testing.fakes import FakeLLM
from ragkit.trees.headings import HeadingsTreeBuilder
from ragkit.types import Chunk, Document, Query, ScoredChunk

TEXT = ("# Guide\n"
        "## Cats\nCats purr when happy.\nCats sleep a lot.\n"
        "## Dogs\nDogs bark at night.\n"
        "## Birds\nBirds sing at dawn.\n")
Q = Query.from_text("When do birds sing?")


def doc_and_chunks():
    heads = []
    for title, level in [("Guide", 1), ("Cats", 2), ("Dogs", 2), ("Birds", 2)]:
        marker = "#" * level + " " + title
        start = TEXT.index(marker)
        heads.append((start, start + len(marker), level, title))
    doc = Document.from_text(TEXT, {"headings": heads})
    pieces = ["Cats purr when happy.", "Cats sleep a lot.", "Dogs bark at night.", "Birds sing at dawn."]
    chunks = [Chunk.from_span(doc, TEXT.index(p), TEXT.index(p) + len(p), 4) for p in pieces]
    return doc, chunks


def context_for(doc, chunks):
    tree = HeadingsTreeBuilder().build(doc, chunks)
    return QueryContext(chunks, trees={doc.id: tree}, count_tokens=lambda t: len(t.split())), tree


def scripted(rules):
    """A function-mode fake: the first rule whose pattern is in the prompt (first user message) gives the reply."""
    def reply(request: GenerationRequest) -> str:
        user = [m for m in request.messages if m["role"] == "user"][0]["content"]
        for pattern, text in rules:
            if re.search(pattern, user, re.S):
                return text
        return "Key information: none\nReasoning: unrelated\nAnswer: unknown\nConfidence: 0"
    return reply


def rationale(answer, confidence):
    return f"Key information: fact\nReasoning: because\nAnswer: {answer}\nConfidence: {confidence}"


def kinds(request):
    return request.template_version.split("@")[0]


def test_post_order_with_reduce_pass_through_and_internal_maps():
    doc, chunks = doc_and_chunks()
    context, tree = context_for(doc, chunks)
    llm = FakeLLM(mode="function", function=scripted([
        (r"Birds sing", rationale("at dawn", 9)), (r"Title: Birds", rationale("at dawn", 9)),
        (r"chunk\[1\]", rationale("at dawn", 8)), (r"Title: Guide", rationale("at dawn", 9))]))
    agg = TreeMapReduceAggregator(llm=llm, output="markers", scope="document")
    answer = agg.aggregate(Q, [ScoredChunk(c, 1.0) for c in chunks], context=context)
    visited = answer.trace["tree"]["visited"]
    position = {r["id"]: i for i, r in enumerate(visited)}
    for node in tree.nodes.values():  # post-order: every node after all its children
        for child in node.children:
            assert position[child] < position[node.id]
    ops = {r["title"] or r["id"][:6]: r["op"] for r in visited}
    assert ops["Cats"] == "reduce+map" and ops["Dogs"] == "pass+map" and ops["Guide"] == "reduce+map"
    assert [r["op"] for r in visited if r["leaf"]] == ["map"] * 4
    assert answer.text == "at dawn" and answer.trace["tree"]["confidence_norm"] is not None
    # 4 leaf maps, then one batch: Cats reduce; then 3 section maps; then Guide reduce + map
    assert answer.trace["tree"]["calls_used"] == 4 + 1 + 3 + 2 == llm.calls
    batches = [kinds(r) for r in llm.seen]
    assert batches[:4] == ["tom_map"] * 4 and batches[4] == "tom_reduce" and batches[-2:] == ["tom_reduce", "tom_map"]


def test_batched_generate_per_level():
    doc, chunks = doc_and_chunks()
    context, _ = context_for(doc, chunks)

    class Counting(FakeLLM):
        def generate(self, requests):
            self.batches = [*getattr(self, "batches", []), len(requests)]
            return super().generate(requests)

    llm = Counting(mode="fixed", responses=[rationale("x", 5)])
    TreeMapReduceAggregator(llm=llm, output="markers", scope="document").aggregate(
        Q, [ScoredChunk(c, 1.0) for c in chunks], context=context)
    assert llm.batches == [4, 1, 3, 1, 1], "leaves together, then reduces and maps of each level together"


def test_scope_selected_prunes_to_paths_of_selected_chunks():
    doc, chunks = doc_and_chunks()
    context, _ = context_for(doc, chunks)
    llm = FakeLLM(mode="fixed", responses=[rationale("at dawn", 9)])
    answer = TreeMapReduceAggregator(llm=llm, output="markers").aggregate(
        Q, [ScoredChunk(chunks[3], 1.0)], context=context)
    titles = [r["title"] for r in answer.trace["tree"]["visited"]]
    assert titles == ["", "Birds", "Guide"] and [s.chunk.id for s in answer.chunks] == [chunks[3].id]
    assert [r["op"] for r in answer.trace["tree"]["visited"]] == ["map", "pass+map", "pass+map"]


def test_skip_when_all_children_failed_and_failures_are_reported():
    doc, chunks = doc_and_chunks()
    context, _ = context_for(doc, chunks)
    llm = FakeLLM(mode="function", function=scripted([
        (r"Birds sing at dawn", rationale("at dawn", 9)), (r"Title: Birds", rationale("at dawn", 9)),
        (r"Cats|Dogs", "I do not know."), (r"Title: Guide", rationale("dawn", 7))]))
    answer = TreeMapReduceAggregator(llm=llm, output="markers", scope="document", max_retries=1,
                                     free_text_fallback=False).aggregate(
        Q, [ScoredChunk(c, 1.0) for c in chunks], context=context)
    by_title = {r["title"]: r for r in answer.trace["tree"]["visited"] if r["title"]}
    assert by_title["Cats"]["op"] == "skip" and by_title["Dogs"]["op"] == "skip"
    tree = answer.trace["tree"]
    assert tree["failed"] == 3 and tree["retries"] == 3 and len(tree["failed_nodes"]) == 3
    assert by_title["Guide"]["op"] == "pass+map" and answer.text == "dawn"
    assert all("unparsable" in r["error"] for r in tree["visited"] if r.get("failed"))


def test_retry_recovers_and_everything_failed_gives_no_answer():
    doc, chunks = doc_and_chunks()
    llm = FakeLLM(mode="scripted", responses=["garbage", rationale("Paris", 10)])
    answer = TreeMapReduceAggregator(llm=llm, output="markers").aggregate(Q, [ScoredChunk(chunks[0], 1.0)])
    assert answer.text == "Paris" and answer.trace["tree"]["retries"] == 1 and answer.trace["tree"]["failed"] == 0
    assert "did not follow the format" in llm.seen[-1].messages[-1]["content"]
    bad = TreeMapReduceAggregator(llm=FakeLLM(mode="fixed", responses=["??"]), output="markers", max_retries=0)
    answer = bad.aggregate(Q, [ScoredChunk(chunks[0], 1.0)])
    assert answer.text == NO_ANSWER and answer.trace["tree"]["failed"] == 1


def test_budget_collapses_the_deepest_level_first():
    doc, chunks = doc_and_chunks()
    context, _ = context_for(doc, chunks)
    llm = FakeLLM(mode="fixed", responses=[rationale("x", 5)])
    answer = TreeMapReduceAggregator(llm=llm, output="markers", scope="document", max_llm_calls=5).aggregate(
        Q, [ScoredChunk(c, 1.0) for c in chunks], context=context)
    tree = answer.trace["tree"]
    assert tree["degraded"] and tree["collapsed_levels"] == 1 and tree["calls_used"] <= 5 == llm.calls
    collapsed = [r for r in tree["visited"] if r["collapsed"]]
    assert {r["title"] for r in collapsed} == {"Cats", "Dogs", "Birds"}
    assert len(answer.chunks) == 4, "collapsed sections still read all their chunks"
    tiny = TreeMapReduceAggregator(llm=FakeLLM(mode="fixed", responses=[rationale("x", 5)]), output="markers",
                                   scope="document", max_llm_calls=1)
    answer = tiny.aggregate(Q, [ScoredChunk(c, 1.0) for c in chunks], context=context)
    assert answer.trace["tree"]["calls_used"] == 1 and answer.text == "x"


def test_json_output_where_the_backend_constrains_it():
    doc, chunks = doc_and_chunks()
    llm = FakeLLM(mode="fixed", responses=[json.dumps({"key_info": "k", "reasoning": "r", "answer": "dawn",
                                                       "confidence": 8})])
    answer = TreeMapReduceAggregator(llm=llm).aggregate(Q, [ScoredChunk(chunks[3], 1.0)])
    assert answer.text == "dawn" and answer.trace["tree"]["output"] == "json"
    assert llm.seen[0].json_schema["required"] == ["key_info", "reasoning", "answer", "confidence"]
    assert answer.trace["tree"]["confidence"] == 8.0 and answer.trace["tree"]["confidence_norm"] == 0.8
    markers = TreeMapReduceAggregator(llm=FakeLLM(supported=["generate"], mode="fixed",
                                                  responses=[rationale("dawn", 8)]))
    assert markers.aggregate(Q, [ScoredChunk(chunks[3], 1.0)]).trace["tree"]["output"] == "markers"


def test_usage_per_node_and_trace_is_json():
    doc, chunks = doc_and_chunks()
    context, _ = context_for(doc, chunks)
    llm = FakeLLM(mode="fixed", responses=[rationale("x", 5)])
    answer = TreeMapReduceAggregator(llm=llm, output="markers").aggregate(
        Q, [ScoredChunk(c, 1.0) for c in chunks[:2]], context=context)
    visited = answer.trace["tree"]["visited"]
    assert all(r["prompt_tokens"] > 0 and r["calls"] >= 1 for r in visited)
    assert sum(r["prompt_tokens"] for r in visited) == answer.usage.prompt_tokens
    json.dumps(answer.to_dict())


def test_several_documents_are_reduced_into_one_answer():
    a = Document.from_text("Rome is in Italy.")
    b = Document.from_text("Paris is in France.")
    selected = [ScoredChunk(Chunk.from_span(a, 0, 17, 4), 1.0), ScoredChunk(Chunk.from_span(b, 0, 19, 4), 0.9)]
    llm = FakeLLM(mode="fixed", responses=[rationale("Italy", 6)])
    answer = TreeMapReduceAggregator(llm=llm, output="markers").aggregate(Q, selected)
    assert answer.trace["tree"]["documents"] == [a.id, b.id] and answer.trace["tree"]["calls_used"] == 3


def test_marker_parsing_is_lenient():
    r = parse_rationale("**Key information**: a\n**Reasoning**: b\n**Answer**: \"Rome\".\n**Confidence**: 8 out of 10")
    assert (r.key_info, r.answer, r.confidence) == ("a", "Rome", 8.0)
    r = parse_rationale("key_info: x\nreasoning_process: y\nfinal answer: Rome\nconfidence_score: 80/100")
    assert (r.key_info, r.reasoning, r.answer, r.confidence) == ("x", "y", "Rome", 8.0)
    r = parse_rationale("<answer>Rome</answer>\n<confidence>7</confidence>")
    assert r.answer == "Rome" and r.confidence == 7.0
    r = parse_rationale("Answer: Rome")
    assert r.confidence is None and r.confidence_norm is None
    assert parse_rationale("Answer:   \nConfidence: 9") is None
    assert parse_json_rationale('{"answer": ""}') is None
    assert parse_json_rationale("Answer: Rome\nConfidence: 3").answer == "Rome"
    assert confidence_value("10/10") == 10.0 and confidence_value("-") is None


def test_free_text_fallback_keeps_an_answer_but_counts_the_failure():
    doc, chunks = doc_and_chunks()
    llm = FakeLLM(mode="fixed", responses=["Birds sing at dawn. They are loud."])
    answer = TreeMapReduceAggregator(llm=llm, output="markers", max_retries=0).aggregate(Q, [ScoredChunk(chunks[3], 1.0)])
    tree = answer.trace["tree"]
    assert answer.text == "Birds sing at dawn" and tree["failed"] == 1 and tree["free_text_answers"] == 1
    assert tree["confidence"] is None
