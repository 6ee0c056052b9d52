"""StructureChunker: sections from headings, recursive inside long ones, heading paths."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from ragkit.chunkers.base import heading_path_at
from ragkit.chunkers.structure import StructureChunker
from ragkit.loaders import load_corpus
from ragkit.types import Document

WIKITEXTS = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "chroma_chunking_eval" / "wikitexts.md"


def section_level_at(headings, position):
    level = 0
    for start, _end, lvl, _title in headings:
        if start > position:
            break
        level = lvl
    return level


def test_chunks_stay_inside_their_section_tree():
    (doc,) = load_corpus([WIKITEXTS])
    headings = doc.headings
    for max_tokens in (128, 256, 1500):
        chunks = StructureChunker(max_tokens=max_tokens).chunk(doc)
        assert all(c.token_count <= max_tokens for c in chunks)
        for chunk in chunks:
            assert chunk.metadata["heading_path"] == heading_path_at(headings, chunk.start)
            own_level = section_level_at(headings, chunk.start)
            inner = [h for h in headings if chunk.start < h[0] < chunk.end]
            assert all(h[2] > own_level for h in inner), "a chunk runs into a sibling or parent section"
    # with a large cap whole subtrees become single chunks (e.g. Development with Music and Release)
    big = StructureChunker(max_tokens=1500).chunk(doc)  # Development with its subsections: 1,344 tokens
    assert any("= = = Music = = =" in c.text and c.text.startswith("= = Development = =") for c in big)


def test_heading_only_section_travels_with_its_first_subsection():
    text = "# Guide\n## Install\nRun pip install.\n## Use\nCall it.\n"
    chunks = StructureChunker(max_tokens=10).chunk(Document.from_text(text))
    assert [c.text for c in chunks] == ["# Guide\n## Install\nRun pip install.", "## Use\nCall it."]
    assert [c.metadata["heading_path"] for c in chunks] == [["Guide"], ["Guide", "Use"]]


def test_detected_headings_give_heading_paths_when_metadata_has_none():
    text = "Preamble text.\n = Film = \n Intro .\n = = Plot = = \n " + "A story . " * 30
    chunks = StructureChunker(max_tokens=20).chunk(Document.from_text(text))
    assert chunks[0].text == "Preamble text." and chunks[0].metadata["heading_path"] == []
    assert chunks[1].metadata["heading_path"] == ["Film"]
    assert all(c.metadata["heading_path"] == ["Film", "Plot"] for c in chunks[2:])
    assert len(chunks) > 3


def test_no_headings_behaves_like_packed_paragraphs(chroma_texts):
    doc = Document.from_text(chroma_texts["chatlogs"])
    chunks = StructureChunker(max_tokens=200).chunk(doc)
    assert all(c.token_count <= 200 and c.metadata["heading_path"] == [] for c in chunks)


def test_target_tokens_splits_sections_that_fit_the_cap():
    text = "# A\n" + "\n".join(f"Line {i} of A." for i in range(12))
    doc = Document.from_text(text)
    chunks = StructureChunker(max_tokens=100, target_tokens=20).chunk(doc)
    assert len(chunks) > 1 and all(c.token_count <= 20 for c in chunks)


def test_cli_acceptance_wikitexts_jsonl():
    from ragkit.cli import app

    result = CliRunner().invoke(app, ["chunk", str(WIKITEXTS), "--chunker", "structure", "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    text = WIKITEXTS.read_text(encoding="utf-8")
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(rows) > 100
    assert all(text[r["start"]:r["end"]] == r["text"] for r in rows)
    assert all(r["token_count"] <= 256 for r in rows)
    gameplay = [r for r in rows if r["text"].startswith("= = Gameplay = =")]
    assert gameplay and gameplay[0]["metadata"]["heading_path"] == ["Valkyria Chronicles III", "Gameplay"]
    assert rows[0]["metadata"]["heading_path"] == ["Valkyria Chronicles III"]
