"""The visualiser page's inline stylesheet and script (no external resources)."""

CSS = """
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.5 system-ui, sans-serif; color: #1d2330; background: #f5f6f8; }
header { position: sticky; top: 0; z-index: 2; background: #fff; border-bottom: 1px solid #d5d9e0;
  padding: 6px 14px; display: flex; gap: 16px; align-items: center; flex-wrap: wrap; }
h1 { font-size: 16px; margin: 0; max-width: 50%; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
nav { display: flex; gap: 6px; align-items: center; }
nav input { width: 5em; }
#columns { display: grid; grid-auto-flow: column; grid-auto-columns: minmax(320px, 1fr); gap: 10px; padding: 10px; }
.column { background: #fff; border: 1px solid #d5d9e0; border-radius: 6px; min-width: 0; }
.column h2 { font-size: 14px; margin: 0; padding: 6px 10px; border-bottom: 1px solid #e3e6eb; word-break: break-all; }
.stats { font-size: 12px; color: #5b6475; padding: 2px 10px 6px; }
.doc { white-space: pre-wrap; overflow-wrap: anywhere; padding: 8px 10px; font: 13px/1.6 ui-monospace, monospace; }
.chunk { border-radius: 2px; cursor: help; }
.chunk.c0 { background: #dbeafe; } .chunk.c1 { background: #fde68a; } .chunk.c2 { background: #bbf7d0; }
.chunk.c3 { background: #fbcfe8; } .chunk.c4 { background: #ddd6fe; } .chunk.c5 { background: #fed7aa; }
.chunk:hover, .chunk.hl { outline: 2px solid #1d4ed8; }
.chunk[data-diff] { box-shadow: inset 3px 0 0 #dc2626; }
.chunk[data-overlap] { background-image: repeating-linear-gradient(45deg, transparent 0 4px, rgba(0,0,0,.08) 4px 8px); }
.chunk[data-intent]::before { content: "\\2691 " attr(data-intent); display: block; font: 11px system-ui, sans-serif;
  color: #6b21a8; white-space: normal; }
.gap { color: #8a93a5; }
.strip { display: flex; align-items: flex-end; gap: 1px; height: 48px; padding: 4px 10px; border-bottom: 1px solid #e3e6eb;
  overflow-x: auto; }
.strip .bar { flex: 0 0 5px; background: #94a3b8; min-height: 1px; }
.strip .bar.cut { background: #dc2626; }
.strip .bar.none { background: repeating-linear-gradient(0deg, #e2e8f0 0 2px, transparent 2px 4px); height: 100%; }
.legend { font-size: 11px; color: #5b6475; padding: 0 10px 4px; }
#tip { position: fixed; z-index: 3; max-width: 460px; background: #111827; color: #f9fafb; padding: 8px 10px;
  border-radius: 6px; font: 12px/1.4 ui-monospace, monospace; white-space: pre-wrap; pointer-events: none; }
"""

JS = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("ragkit-viz-data").textContent);
  var text = data.text, pages = data.pages;
  var nav = document.getElementById("nav"), main = document.getElementById("columns");
  var tip = document.getElementById("tip");

  function el(tag, cls, content) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (content !== undefined) node.textContent = content;
    return node;
  }

  function describe(col, i) {
    var c = col.chunks[i], lines = [
      col.name + "  chunk " + i + " of " + col.chunks.length,
      "id: " + c.id,
      "offsets: [" + c.start + ", " + c.end + ")  " + (c.end - c.start) + " chars",
      "tokens: " + c.tokens,
      "heading path: " + (c.heading_path.length ? c.heading_path.join(" > ") : "(none)")];
    if (c.intent) lines.push("intent: " + c.intent);
    if (c.diff) lines.push("boundary: no other column starts a chunk here");
    var meta = Object.keys(c.metadata);
    if (meta.length) lines.push("metadata: " + JSON.stringify(c.metadata, null, 1));
    return lines.join("\n");
  }

  function strip(col, ps, pe) {
    var box = el("div", "strip"), sents = col.scores.sentences, lo = Infinity, hi = -Infinity;
    sents.forEach(function (s) { if (s[2] !== null) { lo = Math.min(lo, s[2]); hi = Math.max(hi, s[2]); } });
    sents.forEach(function (s, k) {
      if (s[0] < ps || s[0] >= pe) return;
      var bar = el("div", "bar" + (s[3] ? " cut" : "") + (s[2] === null ? " none" : ""));
      if (s[2] !== null) bar.style.height = (8 + 92 * (hi > lo ? (s[2] - lo) / (hi - lo) : 0.5)) + "%";
      bar.title = "sentence " + k + " [" + s[0] + ", " + s[1] + "): " + (s[2] === null ? "no score" : s[2].toFixed(3)) +
        (s[3] ? " (ends a chunk)" : "") + "\n" + text.slice(s[0], Math.min(s[1], s[0] + 120));
      box.appendChild(bar);
    });
    return box;
  }

  function column(col, p) {
    var ps = pages[p][0], pe = pages[p][1], pos = ps;
    var sec = el("section", "column"), doc = el("div", "doc");
    sec.setAttribute("data-chunker", col.name);
    sec.appendChild(el("h2", null, col.name));
    sec.appendChild(el("div", "stats", col.chunks.length + " chunks; " + col.differ +
      " start where no other column does" + (col.chunks.length ? "" : " (the chunker returned none)")));
    if (col.scores) {
      sec.appendChild(strip(col, ps, pe));
      sec.appendChild(el("div", "legend", "per sentence: " + col.scores.label + "; red = the sentence ends a chunk"));
    }
    var range = col.pages[p];
    for (var i = range[0]; i < range[1]; i++) {
      var c = col.chunks[i], s = Math.max(c.start, ps), e = Math.min(c.end, pe);
      if (e <= s || e <= pos) { if (e > s) addChunk(doc, col, i, e, e, s); continue; }
      if (s > pos) { doc.appendChild(el("span", "gap", text.slice(pos, s))); pos = s; }
      addChunk(doc, col, i, Math.max(s, pos), e, s);
      pos = Math.max(pos, e);
    }
    if (pos < pe) doc.appendChild(el("span", "gap", text.slice(pos, pe)));
    sec.appendChild(doc);
    return sec;
  }

  function addChunk(doc, col, i, from, to, s) {
    var c = col.chunks[i], span = el("span", "chunk c" + (i % 6), text.slice(from, Math.max(from, to)));
    span.setAttribute("data-i", i);
    span.setAttribute("data-id", c.id);
    span.setAttribute("data-start", c.start);
    span.setAttribute("data-end", c.end);
    if (c.start < pages[current][0]) span.setAttribute("data-cont", "1");
    if (from > s) span.setAttribute("data-overlap", from - s);
    if (c.diff) span.setAttribute("data-diff", "1");
    if (c.intent) span.setAttribute("data-intent", c.intent);
    span.addEventListener("mouseenter", function (ev) { tip.textContent = describe(col, i); tip.hidden = false; move(ev); });
    span.addEventListener("mousemove", move);
    span.addEventListener("mouseleave", function () { tip.hidden = true; });
    doc.appendChild(span);
  }

  function move(ev) {
    tip.style.left = Math.min(ev.clientX + 14, window.innerWidth - 470) + "px";
    tip.style.top = Math.min(ev.clientY + 14, window.innerHeight - tip.offsetHeight - 8) + "px";
  }

  var current = 0;
  function show(p) {
    current = Math.max(0, Math.min(pages.length - 1, p));
    main.textContent = "";
    data.columns.forEach(function (col) { main.appendChild(column(col, current)); });
    info.textContent = "page " + (current + 1) + " of " + pages.length + "  [" + pages[current][0] + ", " +
      pages[current][1] + ") of " + text.length + " chars";
    input.value = current + 1;
    document.body.setAttribute("data-page", current + 1);
    document.body.setAttribute("data-pages", pages.length);
  }

  var prev = el("button", null, "\u2190 prev"), next = el("button", null, "next \u2192");
  var input = el("input"), info = el("span");
  input.type = "number"; input.min = 1; input.max = pages.length;
  prev.onclick = function () { location.hash = "page=" + current; };
  next.onclick = function () { location.hash = "page=" + (current + 2); };
  input.onchange = function () { location.hash = "page=" + input.value; };
  [prev, input, next, info].forEach(function (n) { nav.appendChild(n); });
  function fromHash() {
    var m = /page=(\d+)/.exec(location.hash);
    show(m ? parseInt(m[1], 10) - 1 : 0);
  }
  window.addEventListener("hashchange", fromHash);
  fromHash();
})();
"""
