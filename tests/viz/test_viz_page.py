"""The visualiser's HTML generation (escaping, paging, boundary marks, score hooks) and ``ragkit viz``."""

from __future__ import annotations

import json
import re

import pytest
from _shared_data import CHROMA
from typer.testing import CliRunner

from ragkit.chunkers._diagnostics import recording
from ragkit.chunkers.margin import MarginChunker
from ragkit.chunkers.perplexity import PerplexityChunker
from ragkit.chunkers.sentence import SentenceChunker
from ragkit.chunkers.token import TokenChunker
from ragkit.cli import app
from ragkit.errors import ConfigError
from ragkit.testing import FakeLLM
from ragkit.types import Chunk, Document
from ragkit.viz import Column, collect, page_ranges, payload, render, render_columns

HOSTILE = 'a </script><script>alert(1)</script> <!-- x --> & "q" \u2028 <img src=x onerror=alert(2)> b'


def _data(page: str) -> dict:
    match = re.search(r'<script type="application/json" id="ragkit-viz-data">(.*?)</script>', page, re.S)
    assert match, "data element missing"
    return json.loads(match.group(1))


def test_document_text_cannot_close_the_data_script_or_add_markup():
    doc = Document.from_text(HOSTILE)
    page = render(doc, {"<b>name</b>": SentenceChunker(max_tokens=64)}, title="<i>t</i>")
    assert page.count("<script") == 2 and page.count("</script>") == 2
    assert "<img" not in page and "<!-- x" not in page and "<b>name" not in page and "<i>t" not in page
    assert "&lt;i&gt;t&lt;/i&gt;" in page
    data = _data(page)  # the JSON round-trips to the exact text and names
    assert data["text"] == HOSTILE and data["columns"][0]["name"] == "<b>name</b>"


def test_pages_cover_the_text_and_prefer_line_ends():
    text = (CHROMA / "state_of_the_union.md").read_text(encoding="utf-8")  # paragraphs: newlines every few lines
    pages = page_ranges(text, 5000)
    assert pages[0][0] == 0 and pages[-1][1] == len(text)
    assert all(a[1] == b[0] for a, b in zip(pages, pages[1:]))
    assert all(5000 <= e - s <= 6250 for s, e in pages[:-1])
    assert sum(text[e - 1] == "\n" for _, e in pages[:-1]) >= len(pages) - 2
    with pytest.raises(ConfigError, match="page_chars must be positive"):
        page_ranges(text, 0)


def test_each_page_lists_exactly_the_chunks_it_can_show():
    text = (CHROMA / "state_of_the_union.md").read_text(encoding="utf-8")
    doc = Document.from_text(text)
    columns = collect(doc, {"token": TokenChunker(max_tokens=64, overlap_tokens=16)})
    data = payload(doc, columns, page_chars=4000)
    chunks = data["columns"][0]["chunks"]
    for (ps, pe), (lo, hi) in zip(data["pages"], data["columns"][0]["pages"]):
        inside = [i for i, c in enumerate(chunks) if c["start"] < pe and c["end"] > ps]
        assert inside and lo <= inside[0] and inside[-1] < hi, (ps, pe, lo, hi)
        assert all(chunks[i]["end"] <= ps for i in range(lo, inside[0]))  # only nested leftovers before
    assert len(page_ranges(text, 4000)) == len(data["pages"]) > 10


def test_boundary_marks_are_starts_no_other_column_has():
    doc = Document.from_text("One two. Three four. Five six.")
    a = Column("a", (Chunk.from_span(doc, 0, 8, 2), Chunk.from_span(doc, 9, 30, 4)))
    b = Column("b", (Chunk.from_span(doc, 0, 20, 4), Chunk.from_span(doc, 20, 30, 2)))  # starts at a space
    data = payload(doc, [a, b])
    assert [c.get("diff", False) for c in data["columns"][0]["chunks"]] == [False, True]
    assert [c.get("diff", False) for c in data["columns"][1]["chunks"]] == [False, True]
    single = payload(doc, [a])
    assert not any(c.get("diff") for c in single["columns"][0]["chunks"])


def test_chunks_of_another_document_are_refused():
    doc, other = Document.from_text("abc def"), Document.from_text("xyz uvw")
    with pytest.raises(ConfigError, match="not a span of document"):
        payload(doc, [Column("x", (Chunk.from_span(other, 0, 3, 1),))])
    with pytest.raises(ConfigError, match="at least one column"):
        render_columns(doc, [])


def test_metadata_heading_paths_and_intents_reach_the_page():
    doc = Document.from_text("# Cats\n\nCats purr. They nap.", metadata={"headings": [(0, 6, 1, "Cats")]})
    chunk = Chunk.from_span(doc, 8, 18, 3, metadata={"heading_path": ["Cats"], "intents": ["Why purr?"],
                                                      "score": (1, 2)})
    data = payload(doc, [Column("x", (chunk,))])
    entry = data["columns"][0]["chunks"][0]
    assert entry["heading_path"] == ["Cats"] and entry["intent"] == "Why purr?"
    assert entry["metadata"] == {"intents": ["Why purr?"], "score": [1, 2]}


SENTENCES = "The sky is blue. Grass is green. I like tea. Tea is warm. Cats purr. Dogs bark loudly. Birds sing."


@pytest.mark.parametrize("make", [
    lambda: PerplexityChunker(llm=FakeLLM(), max_tokens=64),
    lambda: MarginChunker(llm=FakeLLM(), context="sentence", max_tokens=64),
    lambda: MarginChunker(llm=FakeLLM(), context="chunk", lookahead=3, max_tokens=64),
], ids=["perplexity", "margin-sentence", "margin-chunk"])
def test_recorded_scores_leave_chunks_unchanged_and_align_with_sentences(make):
    doc = Document.from_text(SENTENCES)
    plain = make().chunk(doc)
    with recording() as sink:
        recorded = make().chunk(doc)
    assert [c.id for c in recorded] == [c.id for c in plain]
    scores = sink[doc.id]
    assert len(scores.values) == len(scores.sentences) == 7
    assert all(doc.text[s:e].strip() == doc.text[s:e] for s, e in scores.sentences)
    if scores.chunker == "margin":
        assert scores.values[0] is None and all(v is not None for v in scores.values[1:])
    (column,) = collect(doc, {"x": make()})
    data = payload(doc, [column])
    cuts = [s[3] for s in data["columns"][0]["scores"]["sentences"]]
    assert sum(cuts) == len(plain)  # every chunk ends with a scored sentence, marked red in the strip


def test_viz_command_writes_one_page_with_a_column_per_chunker(tmp_path):
    source = tmp_path / "doc.md"
    source.write_text("# Title\n\nOne sentence. Another one <here>.\n\n## Part\n\nLast words.", encoding="utf-8")
    out = tmp_path / "out" / "page.html"
    args = ["viz", str(source), "-c", "sentence:max_tokens=6", "-c", "recursive", "-p", "max_tokens=32", "-o", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(out)
    data = _data(out.read_text(encoding="utf-8"))
    assert [c["name"] for c in data["columns"]] == ["sentence:max_tokens=6", "recursive"]
    assert data["columns"][0]["chunks"][-1]["heading_path"] == ["Title", "Part"]


def test_viz_command_errors_name_the_spec(tmp_path):
    source = tmp_path / "doc.txt"
    source.write_text("Text.", encoding="utf-8")
    result = CliRunner().invoke(app, ["viz", str(source), "-c", "sentence:max_tokens"])
    assert result.exit_code == 2 and "is not KEY=VALUE" in result.output
    result = CliRunner().invoke(app, ["viz", str(source), "-c", "no_such_chunker"])
    assert result.exit_code == 2 and "no_such_chunker" in result.output
