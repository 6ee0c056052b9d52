"""SmolLM2-135M with its generation defaults ends a quickstart answer on its own (issue 23.5).

Before the defaults, this quickstart question over its four selected passages (a frozen copy in
``fixtures/quickstart_reindex_passages.json``, so doc edits do not move it) ran to the 256-token cap,
re-listing passage headers. The real model, greedy, so the outcome is deterministic.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ragkit.aggregators.stuff import StuffAggregator
from ragkit.text.repetition import has_loop
from ragkit.types import Chunk, Document, Query, ScoredChunk

pytestmark = pytest.mark.slow

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "quickstart_reindex_passages.json").read_text())
QUESTION = FIXTURE["question"]


def selected() -> list[ScoredChunk]:
    out = []
    for i, passage in enumerate(FIXTURE["passages"]):
        text = passage["text"]
        doc = Document.from_text(text, source_id=passage["source"])
        chunk = Chunk.from_span(doc, 0, len(text), len(text) // 4,
                                {"source_id": passage["source"], "heading_path": passage["headings"]})
        out.append(ScoredChunk(chunk, 1.0 - i / 10, "test"))
    return out


def test_quickstart_answer_ends_before_the_cap(smollm) -> None:
    agg = StuffAggregator(llm=smollm)
    budget = agg.answer_budget()
    assert budget == smollm.default_generation().max_new_tokens
    answer = agg.aggregate(Query.from_text(QUESTION), selected())
    assert answer.trace["finish_reason"] == "stop", answer.text
    assert 0 < answer.trace["completion_tokens"] < budget
    assert not answer.trace["loop_guard"]["cut"] and not has_loop(answer.text), answer.text
