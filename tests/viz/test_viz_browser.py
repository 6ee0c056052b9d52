"""The visualiser page in a real browser: headless Chromium renders it, the test reads the DOM it built.

Chromium comes from Debian (``apt-get install -y chromium``; ``scripts/setup.sh`` installs it when
absent and apt is usable as root). Every check names what was missing; screenshots are saved under
the test's tmp dir.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from _shared_data import CHROMA

from ragkit.chunkers.intent import IntentChunker
from ragkit.chunkers.recursive import RecursiveChunker
from ragkit.chunkers.sentence import SentenceChunker
from ragkit.chunkers.token import TokenChunker
from ragkit.types import Document
from ragkit.viz import collect, payload, render_columns

CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="headless Chromium not found: run scripts/setup.sh (installs Debian's `chromium` when apt is usable "
           "as root) or `apt-get install -y chromium`",
)

INJECTION = '<script>document.title="pwned"</script><img src=x onerror="document.title=1"> & </div>'


class _Dom(HTMLParser):
    """The parts of the rendered DOM the checks need: columns, their chunk/gap spans, elements by tag."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.columns: list[dict] = []
        self.tags: dict[str, int] = {}
        self.body: dict[str, str] = {}
        self._in_doc = False
        self._span: dict | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags[tag] = self.tags.get(tag, 0) + 1
        cls = (attrs.get("class") or "").split()
        if tag == "body":
            self.body = attrs
        if tag == "section" and "column" in cls:
            self.columns.append({"name": attrs.get("data-chunker"), "spans": [], "has_strip": False})
        elif tag == "div" and "doc" in cls:
            self._in_doc = True
        elif tag == "div" and "strip" in cls and self.columns:
            self.columns[-1]["has_strip"] = True
        elif tag == "span" and self._in_doc:
            self._span = {"kind": "chunk" if "chunk" in cls else "gap", "attrs": attrs, "text": ""}
            self.columns[-1]["spans"].append(self._span)

    def handle_endtag(self, tag):
        if tag == "span":
            self._span = None
        elif tag == "div" and self._in_doc and self._span is None:
            self._in_doc = False

    def handle_data(self, data):
        if self._span is not None:
            self._span["text"] += data


def _run(*args: str, profile: Path) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
           f"--user-data-dir={profile}", "--virtual-time-budget=5000", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ, "LANG": "C.UTF-8"})


def dump(page: Path, number: int, profile: Path) -> _Dom:
    done = _run("--dump-dom", f"{page.as_uri()}#page={number}", profile=profile)
    assert done.returncode == 0 and "<main" in done.stdout, f"chromium --dump-dom failed: {done.stderr[-2000:]}"
    dom = _Dom()
    dom.feed(done.stdout)
    return dom


def screenshot(page: Path, out: Path, profile: Path, number: int = 1) -> Path:
    done = _run(f"--screenshot={out}", "--window-size=1400,900", f"{page.as_uri()}#page={number}", profile=profile)
    assert out.is_file() and out.stat().st_size > 1000, f"no screenshot written to {out}: {done.stderr[-2000:]}"
    return out


def check_page(dom: _Dom, data: dict, number: int) -> dict[str, list[str]]:
    """Every check on one rendered page; returns ``{column: [ids of chunks that start on this page]}``."""
    text = data["text"]
    ps, pe = data["pages"][number - 1]
    names = [c["name"] for c in data["columns"]]
    assert [c["name"] for c in dom.columns] == names, f"side-by-side columns: expected {names}, DOM has " \
                                                      f"{[c['name'] for c in dom.columns]}"
    assert dom.body.get("data-page") == str(number), f"page {number} not shown (body says {dom.body.get('data-page')})"
    assert dom.tags.get("script") == 2 and "img" not in dom.tags, f"document text became markup: tags {dom.tags}"
    started: dict[str, list[str]] = {}
    for col, got in zip(data["columns"], dom.columns):
        covered = "".join(s["text"] for s in got["spans"])
        if covered != text[ps:pe]:
            at = next((i for i, (a, b) in enumerate(zip(covered, text[ps:pe])) if a != b), min(len(covered), pe - ps))
            pytest.fail(f"column {col['name']!r} page {number}: spans do not cover the text in order; first "
                        f"difference at offset {ps + at}: DOM {covered[at:at + 40]!r} vs text {text[ps + at:ps + at + 40]!r}")
        chunks = [s["attrs"] for s in got["spans"] if s["kind"] == "chunk"]
        positions = [int(a["data-start"]) for a in chunks]
        assert positions == sorted(positions), f"column {col['name']!r}: chunks out of order on page {number}"
        for attrs, span in zip(chunks, (s for s in got["spans"] if s["kind"] == "chunk")):
            meta = col["chunks"][int(attrs["data-i"])]
            assert attrs["data-id"] == meta["id"], f"column {col['name']!r}: chunk {attrs['data-i']} has the wrong id"
            start, end = int(attrs["data-start"]), int(attrs["data-end"])
            assert span["text"] == "" or span["text"] in text[start:end], f"chunk {meta['id']} shows text outside its span"
        started[col["name"]] = [a["data-id"] for a in chunks if "data-cont" not in a]
        expected = {c["id"] for c in col["chunks"] if ps <= c["start"] < pe}
        missing = expected - set(started[col["name"]])
        assert not missing, f"column {col['name']!r} page {number}: chunks missing from the DOM: {sorted(missing)[:5]}"
        if col["scores"] is not None:
            assert got["has_strip"], f"column {col['name']!r}: per-sentence score strip missing"
    return started


def check_all_pages(page: Path, data: dict, tmp_path: Path) -> dict[int, _Dom]:
    """Every page's checks, then each chunk shown exactly once; returns the DOMs by page number (one
    Chromium start per page: callers read further checks off these instead of dumping a page again)."""
    seen: dict[str, list[str]] = {c["name"]: [] for c in data["columns"]}
    doms: dict[int, _Dom] = {}
    for number in range(1, len(data["pages"]) + 1):
        doms[number] = dump(page, number, tmp_path / "profile")
        for name, ids in check_page(doms[number], data, number).items():
            seen[name] += ids
    for col in data["columns"]:
        ids = seen[col["name"]]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        missing = [c["id"] for c in col["chunks"] if c["id"] not in ids]
        assert not twice and not missing, f"column {col['name']!r}: chunks shown twice {twice[:5]}, missing {missing[:5]}"
    return doms


def _write(tmp_path: Path, doc: Document, columns, name: str, page_chars: int) -> tuple[Path, dict]:
    page = tmp_path / f"{name}.html"
    page.write_text(render_columns(doc, columns, title=name, page_chars=page_chars), encoding="utf-8")
    return page, payload(doc, columns, page_chars)


def test_three_chunkers_side_by_side_on_a_real_corpus_with_pages_and_hostile_text(tmp_path):
    text = (CHROMA / "state_of_the_union.md").read_text(encoding="utf-8")[:9000]
    text = text[:4000] + "\n\n" + INJECTION + "\n\n" + text[4000:]
    doc = Document.from_text(text)
    columns = collect(doc, {
        "sentence:max_tokens=64": SentenceChunker(max_tokens=64),
        "recursive:max_tokens=128": RecursiveChunker(max_tokens=128),
        "token:max_tokens=96,overlap_tokens=24": TokenChunker(max_tokens=96, overlap_tokens=24),
    })
    page, data = _write(tmp_path, doc, columns, "sotu", page_chars=3000)
    assert len(data["pages"]) >= 3
    check_all_pages(page, data, tmp_path)
    assert any(c["differ"] for c in data["columns"]), "no boundary differences marked between different chunkers"
    screenshot(page, tmp_path / "viz-sotu.png", tmp_path / "profile")
    check_hover(page, data, tmp_path)


#: Appended to a copy of the page: hover the second chunk of the last column, copy the tooltip to the body.
HOVER = """<script>
var spans = document.querySelectorAll("section.column:last-child span.chunk");
spans[1].dispatchEvent(new MouseEvent("mouseenter", {clientX: 10, clientY: 10}));
document.body.setAttribute("data-tip", document.getElementById("tip").textContent);
document.body.setAttribute("data-tip-hidden", document.getElementById("tip").hidden);
</script></body>"""


def check_hover(page: Path, data: dict, tmp_path: Path) -> None:
    hovered = tmp_path / "hover.html"
    hovered.write_text(page.read_text(encoding="utf-8").replace("</body>", HOVER), encoding="utf-8")
    dom = dump(hovered, 1, tmp_path / "profile")
    chunk = data["columns"][-1]["chunks"][1]
    tip = dom.body.get("data-tip", "")
    for part in (f"id: {chunk['id']}", f"offsets: [{chunk['start']}, {chunk['end']})", f"tokens: {chunk['tokens']}",
                 "heading path:"):
        assert part in tip, f"hover tooltip lacks {part!r}; it says {tip!r}"
    assert dom.body.get("data-tip-hidden") == "false", "hover tooltip stayed hidden"


@pytest.mark.slow
def test_a_one_megabyte_document_stays_paged(tmp_path):
    text = "\n\n".join((CHROMA / f"{n}.md").read_text(encoding="utf-8") for n in ("finance", "pubmed"))
    assert len(text.encode("utf-8")) >= 1_000_000
    doc = Document.from_text(text)
    columns = collect(doc, {"token:max_tokens=256": TokenChunker(max_tokens=256),
                            "token:max_tokens=200": TokenChunker(max_tokens=200)})
    page, data = _write(tmp_path, doc, columns, "large", page_chars=20_000)
    assert len(data["pages"]) >= 50
    for number in (1, len(data["pages"]) // 2, len(data["pages"])):
        dom = dump(page, number, tmp_path / "profile")
        check_page(dom, data, number)
        assert max(len(c["spans"]) for c in dom.columns) < 400, "a page renders far more than its share of chunks"
    screenshot(page, tmp_path / "viz-large.png", tmp_path / "profile", number=len(data["pages"]) // 2)


@pytest.mark.slow
def test_score_strips_and_intents_with_real_models(tmp_path, smollm, minilm):
    from ragkit.backends import wrap_backend
    from ragkit.chunkers.margin import MarginChunker
    from ragkit.chunkers.perplexity import PerplexityChunker

    text = (CHROMA / "wikitexts.md").read_text(encoding="utf-8")[:600]
    doc = Document.from_text(text)
    embedder = wrap_backend("embedder", minilm)  # the session's MiniLM (tests/conftest.py), cache-wrapped as by default
    chunkers = {
        "perplexity": PerplexityChunker(llm=smollm, max_tokens=128),
        "margin:context=sentence": MarginChunker(llm=smollm, context="sentence", max_tokens=128),
        "intent:given": IntentChunker(embedder=embedder, intent_source="given", max_tokens=128,
                                      intents=["What is the history of the subject?", "Where is it located?"]),
    }
    columns = collect(doc, chunkers)
    plain = chunkers["perplexity"].chunk(doc)  # margin's equality runs with a fake LLM in test_viz_page.py
    assert [c.id for c in columns[0].chunks] == [c.id for c in plain], "perplexity: recording changed the chunks"
    assert columns[0].scores and columns[1].scores and columns[2].scores is None
    page, data = _write(tmp_path, doc, columns, "scores", page_chars=20_000)
    dom = check_all_pages(page, data, tmp_path)[1]
    assert all(c.get("intent") for c in data["columns"][2]["chunks"]), "intent column: a chunk has no matched intent"
    assert all("data-intent" in s["attrs"] for s in dom.columns[2]["spans"] if s["kind"] == "chunk"), \
        "intent column: the matched intent is not on every chunk element"
    screenshot(page, tmp_path / "viz-scores.png", tmp_path / "profile")
