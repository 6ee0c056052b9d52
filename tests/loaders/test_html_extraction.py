"""HTML extraction: visible text, block breaks, heading spans into the extracted text."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragkit.loaders import LoaderWarning, load_corpus
from ragkit.loaders.html import html_to_text

PAGE = """<!doctype html><html><head><title>Guide &amp; Notes</title><style>h1 {color: red}</style>
<script>var x = "<h1>not a heading</h1>";</script></head>
<body>
  <h1>Getting   started</h1>
  <p>Install the <b>package</b>,
     then run it.</p>
  <h2 id="x">Options<br></h2>
  <ul><li>one</li><li>two &lt;2&gt;</li></ul>
  <table><tr><th>k</th><th>v</th></tr><tr><td>a</td><td>1</td></tr></table>
  <pre>  code
    indented</pre>
  <h3></h3>
  <h6>Last</h6>tail text
</body></html>"""


def test_visible_text_and_blocks():
    text, _headings, title = html_to_text(PAGE)
    assert title == "Guide & Notes"
    assert "not a heading" not in text and "color" not in text
    assert text.startswith("Getting started\n\nInstall the package, then run it.\n\nOptions")
    assert "one\ntwo <2>" in text
    assert "k | v\na | 1" in text
    assert "  code\n    indented" in text
    assert text.endswith("Last\n\ntail text")


def test_heading_spans_index_the_extracted_text():
    text, headings, _title = html_to_text(PAGE)
    assert [(level, title) for _s, _e, level, title in headings] == [(1, "Getting started"), (2, "Options"), (6, "Last")]
    for start, end, _level, heading in headings:
        assert text[start:end].strip() == heading


def test_loader_uses_meta_charset_when_not_utf8(tmp_path: Path):
    path = tmp_path / "page.htm"
    path.write_bytes('<meta charset="iso-8859-15"><h1>Prix \u20ac</h1>'.encode("iso-8859-15"))
    with pytest.warns(LoaderWarning, match="decoded as iso-8859-15"):
        (doc,) = load_corpus([path])
    assert doc.text == "Prix \u20ac"
    assert doc.headings == [(0, 6, 1, "Prix \u20ac")]
    assert doc.metadata["format"] == "html"


def test_empty_page_is_skipped(tmp_path: Path):
    path = tmp_path / "empty.html"
    path.write_text("<html><head><title>t</title></head><body> </body></html>", encoding="utf-8")
    with pytest.warns(LoaderWarning, match="whitespace-only|empty"):
        assert load_corpus([path]) == []
