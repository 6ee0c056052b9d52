"""Document text cannot drive the terminal through the CLI's output (issue 13.9)."""

from __future__ import annotations

from ragkit.cli.pipeline_commands import format_answer
from ragkit.types import Answer, Chunk, Document, Query, ScoredChunk

HOSTILE = ("Clear\x1b[2J\x1b[H screen, title \x1b]0;pwned\x07, clipboard \x1b]52;c;ZXZpbA==\x07, "
           "bell\x07, back\x08space, return\r over, C1 \x9b31m, bidi \u202egnp.exe")


def test_control_characters_of_documents_are_escaped_in_query_output():
    doc = Document.from_text(HOSTILE, source_id="evil\x1b[31m.md")
    chunk = Chunk.from_span(doc, 0, len(HOSTILE), 40, {**doc.metadata, "heading_path": ["T\x1b]0;x\x07"]})
    out = format_answer(Query.from_text("q\x1b[2J"), Answer("line one\nline\x1b[2K two", (ScoredChunk(chunk, 1.0),)),
                        show_metadata=True)
    raw = [c for c in out if (ord(c) < 32 and c not in "\n") or 0x7f <= ord(c) < 0xa0 or c == "\u202e"]
    assert raw == [], f"raw control characters reach the terminal: {raw!r}"
    assert "\\x1b[2J" in out and "\\x07" in out
    assert "answer: line one\nline\\x1b[2K two" in out  # newlines in answers stay
