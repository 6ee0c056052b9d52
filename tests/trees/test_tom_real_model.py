"""ToM with the packaged SmolLM2-135M (real model): an LLM tree and a MapReduce answer, small and bounded."""

from __future__ import annotations

import time

import pytest

from ragkit.aggregators.tree_mapreduce import TreeMapReduceAggregator
from ragkit.context import QueryContext
from ragkit.trees.headings import HeadingsTreeBuilder
from ragkit.trees.llm import LLMTreeBuilder
from ragkit.types import Chunk, Document, Query, ScoredChunk

TEXT = ("# Tokyo\nTokyo is the capital of Japan. Its trains are punctual.\n"
        "# Rome\nRome is the capital of Italy. The Colosseum is in Rome.\n")


@pytest.mark.slow
def test_smollm2_builds_a_verbatim_tree_and_answers_by_mapreduce(smollm):
    from ragkit.llm.cached import CachedLLM

    start = time.perf_counter()
    llm = CachedLLM(inner=smollm, mode="off")  # the session's SmolLM2 (tests/conftest.py); the clock starts here
    heads = [(0, 7, 1, "Tokyo"), (TEXT.index("# Rome"), TEXT.index("# Rome") + 6, 1, "Rome")]
    doc = Document.from_text(TEXT, {"headings": heads})
    cut = TEXT.index("# Rome")
    chunks = [Chunk.from_span(doc, 8, cut - 1, 12), Chunk.from_span(doc, cut + 7, len(TEXT) - 1, 12)]

    builder = LLMTreeBuilder(llm=llm, block_tokens=64, max_new_tokens=64)
    tree = builder.build(doc, chunks)
    leaves = sorted(tree.leaves(), key=lambda n: n.start)
    assert leaves and all(0 <= n.start < n.end <= len(TEXT) for n in leaves)
    covered = "".join(TEXT[n.start:n.end] for n in leaves)
    assert covered.replace(" ", "").replace("\n", "") == TEXT.replace(" ", "").replace("\n", ""), "nothing is lost"
    assert 0.0 <= builder.last_report_["coverage"] <= 1.0

    headings_tree = HeadingsTreeBuilder().build(doc, chunks)
    context = QueryContext(chunks, trees={doc.id: headings_tree})
    agg = TreeMapReduceAggregator(llm=llm, output="markers", max_retries=0, max_new_tokens=32)
    answer = agg.aggregate(Query.from_text("What is the capital of Italy?"), [ScoredChunk(chunks[1], 1.0)],
                           context=context)
    trace = answer.trace["tree"]
    assert answer.text and trace["calls_used"] == 2  # the leaf, then its section; the untitled root passes it up
    assert [r["op"] for r in trace["visited"]] == ["map", "pass+map", "pass"]
    print(f"tree build + MapReduce answer: {time.perf_counter() - start:.1f} s")  # speed: benchmarks/tree_build.py
