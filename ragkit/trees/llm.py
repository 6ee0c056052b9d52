"""``llm``: ToM's prompted Hierarchical Semantic Parser (METHODS.md §2.2 steps 1–5), leaves mapped back to verbatim spans.

1. **Blocks**: the document is cut into blocks of at most ``block_tokens`` tokens, each cut back to
   the last token containing a delimiter among ``。！？!?.#-`` (a hard cut when there is none)
   (:func:`cut_blocks`). Blocks tile the document.
2. Query-aware block filtering is left out: trees are built once at index time and reused by every
   question, so every block is parsed.
3. **Markup prompt** (:data:`HSP_PROMPT`): one LLM call per block (all blocks in one batched
   ``generate``) asking for a numbered hierarchy (≤ 5 top sections, ≤ 4 levels, headings ≤ 15 words,
   3–5 keywords, ≤ 100-word summaries) in the ``***title***`` / ``**Keywords**:`` / ``**Summary**:`` /
   ``**Original Text**:`` markup, with leaves carrying the original text word for word.
4. **Parse** (:func:`parse_markup`): parent by numbering prefix (``1.2.1`` → ``1.2``; ``1`` → the main
   title); nodes whose parent is missing are dropped; no main title → nothing parsed.
5. **Merge** (:func:`merge_by_title`): block trees under one root; roots with identical titles merge
   (keyword union, summaries concatenated, children merged recursively by title).

Leaves must be **verbatim spans**. Each leaf's original text is aligned to its block
(:func:`align`): exact match, then whitespace-insensitive match, then a fuzzy match on shared word
4-grams. Aligned leaves are ordered by position and grow to tile their block, so text the model
dropped or rewrote is re-attached to the preceding leaf (or the first one); a leaf that cannot be
aligned is removed, and a block with no aligned leaf becomes one leaf. Nothing of the document is
lost. The report (``last_report_`` and the root's ``metadata["hsp"]``) gives the **coverage**
(share of non-space characters the model reproduced in aligned leaves), the alignment kinds, the
re-attached characters, dropped nodes and unparsed blocks.

Example:
    >>> from ragkit.testing.fakes import FakeLLM
    >>> from ragkit.types import Document
    >>> doc = Document.from_text("Cats purr. Dogs bark loudly.")
    >>> markup = ("***Pets***\\n**Keywords**: cats; dogs\\n**Summary**: Two pets.\\n"
    ...           "***1. Cats***\\n**Original Text**: Cats purr.\\n***2. Dogs***\\n**Original Text**: Dogs bark.")
    >>> builder = LLMTreeBuilder(llm=FakeLLM(mode="fixed", responses=[markup]))
    >>> tree = builder.build(doc, [])
    >>> [(n.title, doc.text[n.start:n.end]) for n in tree.leaves()]
    [('Cats', 'Cats purr.'), ('Dogs', 'Dogs bark loudly.')]
    >>> r = builder.last_report_
    >>> r["exact"], r["fuzzy"], round(r["coverage"], 2), r["reattached_chars"]
    (1, 1, 0.71, 7)
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field

from ragkit.llm.prompts import PromptTemplate
from ragkit.stage import Component, LLMRef
from ragkit.trees._common import Draft, freeze
from ragkit.trees.headings import document_title
from ragkit.types import Chunk, DocTree, Document

DELIMITERS = "。！？!?.#-"

#: The Hierarchical Semantic Parser prompt (our wording of the authors' intent). Bump the version on any change.
HSP_PROMPT = PromptTemplate(
    "tom_hsp",
    1,
    system="You restructure documents into a hierarchy of titled sections without losing any text.",
    text=(
        "Restructure the text below into a hierarchy of sections.\n"
        "Rules:\n"
        "- Begin with a general title for the whole text, with its keywords and summary.\n"
        "- Use at most 5 top-level sections and at most 4 levels, numbered 1., 1.1, 1.1.1 and so on.\n"
        "- Every heading has at most 15 words, 3 to 5 keywords separated by ';' and a summary of at most 100 words.\n"
        "- A section without subsections carries its part of the text under **Original Text**, copied word for "
        "word. Every sentence of the text must appear in exactly one such section: do not shorten, rewrite or "
        "drop anything.\n"
        "Use exactly this markup:\n"
        "***General title***\n**Keywords**: keyword; keyword; keyword\n**Summary**: what the text is about\n"
        "***1. Section heading***\n**Keywords**: keyword; keyword; keyword\n**Summary**: what the section says\n"
        "***1.1 Subsection heading***\n**Keywords**: keyword; keyword; keyword\n**Summary**: what it says\n"
        "**Original Text**: the subsection's text, word for word\n\n"
        "Text:\n\"\"\"\n{text}\n\"\"\""
    ),
)

_HEADING = re.compile(r"^[ \t]*\*{3}[ \t]*(.+?)[ \t]*\*{3}[ \t]*$", re.MULTILINE)
_NUMBER = re.compile(r"^(\d+(?:\.\d+)*)\.?(?:\s+|$)")
_FIELD = re.compile(r"^[ \t]*(?:\*\*)?[ \t]*(keywords|summary|original[ _]text)[ \t]*(?:\*\*)?[ \t]*[:：][ \t]*(?:\*\*)?",
                    re.IGNORECASE | re.MULTILINE)
_WORD = re.compile(r"\w+")


# --------------------------------------------------------------------------- step 1: blocks
def cut_blocks(text: str, token_spans: Sequence[tuple[int, int]], block_tokens: int,
               delimiters: str = DELIMITERS) -> list[tuple[int, int]]:
    """Character spans of blocks of at most ``block_tokens`` tokens that tile ``text``.

    Each block is cut back to end after the last of its tokens (not the first) whose text contains a
    delimiter; a block without one is cut hard after ``block_tokens`` tokens. ``token_spans`` are the
    ``(start, end)`` character spans of the tokens in order.

    Example:
        >>> text = "One two. Three four five. Six"
        >>> spans = [(m.start(), m.end()) for m in re.finditer(r"\\S+", text)]
        >>> [text[a:b] for a, b in cut_blocks(text, spans, 3)]
        ['One two.', ' Three four five.', ' Six']
        >>> text = "a b c d e"
        >>> [text[a:b] for a, b in cut_blocks(text, [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)], 2)]
        ['a b', ' c d', ' e']
    """
    if block_tokens < 1:
        raise ValueError(f"block_tokens must be >= 1, got {block_tokens}")
    blocks: list[tuple[int, int]] = []
    n = len(token_spans)
    i, position = 0, 0
    while i < n:
        j = min(n, i + block_tokens)
        cut = j
        if j < n:
            for k in range(j - 1, i, -1):
                a, b = token_spans[k]
                if any(d in text[a:b] for d in delimiters):
                    cut = k + 1
                    break
        end = token_spans[cut - 1][1] if cut < n else len(text)
        if end > position:
            blocks.append((position, end))
        position, i = end, cut
    if not blocks and text:
        blocks.append((0, len(text)))
    elif blocks and blocks[-1][1] < len(text):
        blocks[-1] = (blocks[-1][0], len(text))
    return blocks


# --------------------------------------------------------------------------- step 4: parse
def split_keywords(value: str) -> list[str]:
    """Keywords separated by ``;`` or ``；`` (commas when there is neither).

    Example:
        >>> split_keywords("tree; map reduce；LLM")
        ['tree', 'map reduce', 'LLM']
    """
    parts = re.split(r"[;；]", value) if re.search(r"[;；]", value) else value.split(",")
    return [" ".join(p.strip(" *.").split()) for p in parts if p.strip(" *.")]


def _fields(body: str) -> dict[str, str]:
    found: dict[str, str] = {}
    marks = list(_FIELD.finditer(body))
    for m, nxt in zip(marks, [*marks[1:], None]):
        name = m.group(1).lower().replace(" ", "_")
        value = body[m.end(): nxt.start() if nxt else len(body)].strip()
        found.setdefault(name, value)
    return found


def parse_markup(text: str) -> tuple[Draft | None, int]:
    """Parse HSP markup into a draft tree; returns ``(root or None, number of dropped nodes)``.

    The first ``***...***`` heading must be the unnumbered main title (otherwise nothing is parsed);
    numbered headings find their parent by numbering prefix, and a node whose parent is missing is
    dropped (with its descendants). Leaves keep their text in ``metadata["original_text"]``.

    Example:
        >>> root, dropped = parse_markup("***Doc***\\n**Summary**: all\\n***1. A***\\n**Keywords**: x; y\\n"
        ...                              "***1.1 B***\\n**Original Text**: b text\\n***2.3 C***\\n**Original Text**: c")
        >>> root.title, [c.title for c in root.children], root.children[0].children[0].metadata["original_text"]
        ('Doc', ['A'], 'b text')
        >>> dropped, parse_markup("***1. No main title***")[0]
        (1, None)
    """
    heads = list(_HEADING.finditer(text))
    if not heads:
        return None, 0
    nodes: list[tuple[str | None, Draft]] = []
    for m, nxt in zip(heads, [*heads[1:], None]):
        raw = " ".join(m.group(1).strip("* ").split())
        number_match = _NUMBER.match(raw)
        number = number_match.group(1) if number_match else None
        title = raw[number_match.end():].strip(" .:") if number_match else raw
        body = text[m.end(): nxt.start() if nxt else len(text)]
        fields = _fields(body)
        draft = Draft(title=title, summary=" ".join(fields.get("summary", "").split()),
                      keywords=split_keywords(fields.get("keywords", "")))
        original = fields.get("original_text", "").strip()
        if original:
            draft.metadata["original_text"] = original
        if number:
            draft.metadata["number"] = number
        nodes.append((number, draft))
    if nodes[0][0] is not None:
        return None, len(nodes)
    root = nodes[0][1]
    by_number: dict[str, Draft] = {}
    dropped = 0
    for number, draft in nodes[1:]:
        if number is None:  # a second unnumbered heading: treat as a top-level section
            root.children.append(draft)
            continue
        parent_number = number.rsplit(".", 1)[0] if "." in number else None
        parent = root if parent_number is None else by_number.get(parent_number)
        if parent is None:
            dropped += 1
            continue
        parent.children.append(draft)
        by_number[number] = draft
    return root, dropped


# --------------------------------------------------------------------------- step 5: merge
def _norm_title(title: str) -> str:
    return " ".join(title.casefold().split())


def merge_by_title(roots: Sequence[Draft], title: str = "") -> Draft:
    """Block trees under one synthetic root; nodes with identical titles merge, recursively.

    Keywords are united (first occurrence order), summaries concatenated, children merged by title.
    Untitled nodes and leaves never merge (a leaf holds a span of text, and two spans stay two leaves).

    Example:
        >>> aim = lambda start: Draft(title="Aim", children=[Draft(start=start, end=start + 1)])
        >>> a = Draft(title="Intro", keywords=["x"], summary="One.", children=[aim(0)])
        >>> b = Draft(title="intro", keywords=["x", "y"], summary="Two.", children=[aim(5), Draft(title="Data", start=7, end=9)])
        >>> root = merge_by_title([a, b], title="Paper")
        >>> [(n.title, n.keywords, n.summary, [c.title for c in n.children]) for n in root.children]
        [('Intro', ['x', 'y'], 'One. Two.', ['Aim', 'Data'])]
        >>> [(leaf.start, leaf.end) for leaf in root.children[0].children[0].children]
        [(0, 1), (5, 6)]
    """
    root = Draft(title=title)
    _merge_into(root, list(roots))
    return root


def _merge_into(parent: Draft, incoming: Sequence[Draft]) -> None:
    seen: dict[str, Draft] = {_norm_title(c.title): c for c in parent.children if c.title and not c.is_leaf}
    for node in incoming:
        key = _norm_title(node.title) if not node.is_leaf else ""
        twin = seen.get(key) if key else None
        if twin is None or twin.is_leaf:
            parent.children.append(node)
            if key:
                seen[key] = node
            continue
        twin.keywords = list(dict.fromkeys([*twin.keywords, *node.keywords]))
        twin.summary = " ".join(s for s in (twin.summary, node.summary) if s)
        _merge_into(twin, node.children)


# --------------------------------------------------------------------------- alignment
def _words(text: str, offset: int = 0) -> list[tuple[str, int, int]]:
    return [(m.group(0).casefold(), offset + m.start(), offset + m.end()) for m in _WORD.finditer(text)]


def align(text: str, piece: str, lo: int, hi: int, *, cursor: int | None = None, ngram: int = 4,
          min_ratio: float = 0.5) -> tuple[int, int, str] | None:
    """Where ``piece`` sits in ``text[lo:hi]``: ``(start, end, how)`` with ``how`` exact, normalised or fuzzy; ``None`` if not found.

    Exact search starts at ``cursor`` (then from ``lo``); ``normalised`` ignores whitespace
    differences; ``fuzzy`` takes the densest run of the piece's word ``ngram``-grams found in the
    window and needs at least ``min_ratio`` of them.

    Example:
        >>> doc = "The cat sat on the mat. Then the dog came in and barked at the cat."
        >>> align(doc, "the dog came in", 0, len(doc))
        (29, 44, 'exact')
        >>> align(doc, "the   dog\\ncame in", 0, len(doc))[2]
        'normalised'
        >>> a, b, how = align(doc, "Then the dog came in and barked at a cat", 0, len(doc))
        >>> doc[a:b], how
        ('Then the dog came in and barked at', 'fuzzy')
        >>> align(doc, "something else entirely here", 0, len(doc)) is None
        True
    """
    piece = piece.strip()
    if not piece:
        return None
    for start in ([cursor] if cursor is not None and lo <= cursor < hi else []) + [lo]:
        at = text.find(piece, start, hi)
        if at >= 0:
            return at, at + len(piece), "exact"
    words = piece.split()
    if len(words) > 1 and len(words) <= 400:
        pattern = re.compile(r"\s+".join(re.escape(w) for w in words))
        m = pattern.search(text, lo, hi)
        if m:
            return m.start(), m.end(), "normalised"
    window = _words(text[lo:hi], lo)
    mine = [w for w, _, _ in _words(piece)]
    n = min(ngram, len(mine))
    if n == 0 or len(window) < n:
        return None
    index: dict[tuple[str, ...], list[int]] = {}
    for i in range(len(window) - n + 1):
        index.setdefault(tuple(w for w, _, _ in window[i:i + n]), []).append(i)
    grams = [tuple(mine[i:i + n]) for i in range(len(mine) - n + 1)]
    hits = sorted({i for g in grams for i in index.get(g, ())})
    if not hits:
        return None
    best: tuple[int, int, int] = (0, 0, 0)  # (count, first, last)
    first = hits[0]
    count = 1
    for prev, cur in zip(hits, hits[1:]):
        if cur - prev > max(8, 2 * n):
            if count > best[0]:
                best = (count, first, prev)
            first, count = cur, 1
        else:
            count += 1
    if count > best[0]:
        best = (count, first, hits[-1])
    count, a, b = best
    if count / max(1, len(grams)) < min_ratio:
        return None
    return window[a][1], window[min(len(window) - 1, b + n - 1)][2], "fuzzy"


def _nonspace(text: str) -> int:
    return len(text) - sum(1 for ch in text if ch.isspace())


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _leaf_slots(node: Draft) -> list[Draft]:
    """Turn parsed nodes with original text into leaves (an internal node's own text becomes its first child)."""
    slots: list[Draft] = []
    for child in node.children:
        slots.extend(_leaf_slots(child))
    original = node.metadata.pop("original_text", None)
    if original:
        if node.children:
            leaf = Draft(title="", metadata={"original_text": original})
            node.children.insert(0, leaf)
            slots.insert(0, leaf)
        else:
            node.metadata["original_text"] = original
            slots.insert(0, node)
    return slots


def _drop_empty(node: Draft) -> bool:
    """Remove branches without aligned leaves; return whether ``node`` keeps a span."""
    if node.is_leaf:
        return node.end > node.start
    node.children = [c for c in node.children if _drop_empty(c)]
    return bool(node.children)


class LLMTreeBuilder(Component):
    """ToM's Hierarchical Semantic Parser with a prompted LLM; leaves are verbatim, re-attached spans.

    Parameters:
        llm: the LLM backend (a name under ``backends.llm`` in YAML, an instance in Python).
        block_tokens: block size in ``tokenizer`` tokens (the authors: 4096 cl100k tokens).
        tokenizer: ``minilm`` (default) or ``cl100k`` (the authors' tokenizer; needs the ``cl100k`` extra).
        max_new_tokens: output budget per block (``None``: twice the block's tokens plus 256, at most 4096).
        temperature: sampling temperature (0: greedy, cacheable).
        min_fuzzy_ratio: share of a leaf's word 4-grams that must be found for a fuzzy alignment.

    Example:
        >>> from ragkit.testing.fakes import FakeLLM
        >>> LLMTreeBuilder(llm=FakeLLM(), block_tokens=512).block_tokens
        512
    """

    requires: ClassVar[dict[str, frozenset[str]]] = {"llm": frozenset({"generate"})}

    def __init__(
        self,
        *,
        llm: LLMRef = "default",
        block_tokens: Annotated[int, Field(ge=16)] = 4096,
        tokenizer: Literal["minilm", "cl100k"] = "minilm",
        max_new_tokens: Annotated[int, Field(gt=0)] | None = None,
        temperature: Annotated[float, Field(ge=0)] = 0.0,
        min_fuzzy_ratio: Annotated[float, Field(gt=0, le=1)] = 0.5,
    ) -> None:
        self.llm = llm
        self.block_tokens = block_tokens
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.min_fuzzy_ratio = min_fuzzy_ratio
        self.last_report_: dict[str, Any] | None = None

    def _load(self) -> None:
        from ragkit.backends import resolve_backend
        from ragkit.text.tokenizers import get_tokenizer

        self.llm = resolve_backend(self.llm, "llm")
        self.tokenizer_ = get_tokenizer(self.tokenizer)

    def blocks(self, doc: Document) -> list[tuple[int, int]]:
        """The block spans of ``doc`` (step 1)."""
        self.warm_up()
        spans = self.tokenizer_.spans(doc.text)
        pairs = list(zip(spans.starts.tolist(), spans.ends.tolist()))
        return cut_blocks(doc.text, pairs, self.block_tokens)

    def _request(self, text: str) -> Any:
        budget = self.max_new_tokens or min(4096, 2 * self.tokenizer_.count(text) + 256)
        # the parse re-writes the block's text: no repetition penalty (the model's answer defaults) here
        return HSP_PROMPT.request(text=text.strip(), max_tokens=budget, temperature=self.temperature,
                                  repetition_penalty=1.0, no_repeat_ngram_size=0)

    def build(self, doc: Document, chunks: Sequence[Chunk]) -> DocTree:
        """Parse ``doc`` block by block with the LLM and return its tree (leaves aligned to the document)."""
        self.warm_up()
        start_time = time.perf_counter()
        blocks = [b for b in self.blocks(doc) if doc.text[b[0]:b[1]].strip()]
        completions = self.llm.generate([self._request(doc.text[a:b]) for a, b in blocks]) if blocks else []
        report: dict[str, Any] = {"blocks": len(blocks), "leaves": 0, "exact": 0, "normalised": 0, "fuzzy": 0,
                                  "unaligned": 0, "dropped_nodes": 0, "unparsed_blocks": 0, "duplicates": 0,
                                  "prompt_tokens": 0, "completion_tokens": 0}
        block_roots: list[Draft] = []
        aligned_chars = 0
        reattached = 0
        for index, ((lo, hi), completion) in enumerate(zip(blocks, completions)):
            report["prompt_tokens"] += completion.prompt_tokens
            report["completion_tokens"] += completion.completion_tokens
            root, dropped = parse_markup(completion.text)
            report["dropped_nodes"] += dropped
            slots = _leaf_slots(root) if root is not None else []
            placed: list[Draft] = []
            cursor = lo
            for slot in slots:
                found = align(doc.text, slot.metadata.pop("original_text", ""), lo, hi, cursor=cursor,
                              min_ratio=self.min_fuzzy_ratio)
                if found is None:
                    report["unaligned"] += 1
                    continue
                a, b, how = found
                report[how] += 1
                slot.start, slot.end = a, b
                slot.metadata["alignment"] = how
                slot.metadata["block"] = index
                placed.append(slot)
                cursor = b
            placed.sort(key=lambda d: (d.start, d.end))
            kept: list[Draft] = []
            for slot in placed:
                if kept and slot.start < kept[-1].end:  # overlapping alignment: keep the earlier leaf's span
                    slot.start = kept[-1].end
                if slot.end <= slot.start:
                    report["duplicates"] += 1
                    continue
                kept.append(slot)
            aligned_chars += sum(_nonspace(doc.text[d.start:d.end]) for d in kept)
            if not kept:
                report["unparsed_blocks"] += 1
                a, b = _trim(doc.text, lo, hi)
                leaf = Draft(title=f"Block {index + 1}", start=a, end=b, metadata={"block": index, "unparsed": True})
                if root is None:
                    root = Draft(title="", children=[leaf])
                else:
                    root.children = [leaf]
                block_roots.append(root)
                continue
            bounds = [lo, *[d.start for d in kept[1:]], hi]
            for slot, (a, b) in zip(kept, zip(bounds, bounds[1:])):
                before = _nonspace(doc.text[slot.start:slot.end])
                slot.start, slot.end = _trim(doc.text, a, b)
                reattached += _nonspace(doc.text[slot.start:slot.end]) - before
            assert root is not None
            _drop_empty(root)
            block_roots.append(root)
            report["leaves"] += len(kept)
        tree_root = merge_by_title(block_roots, title=document_title(doc))
        if not tree_root.children:
            a, b = _trim(doc.text, 0, len(doc.text))
            tree_root.children.append(Draft(start=a, end=max(a, b)))
        total = _nonspace(doc.text)
        report.update(coverage=aligned_chars / total if total else 1.0, reattached_chars=reattached,
                      seconds=round(time.perf_counter() - start_time, 3))
        tree_root.metadata["hsp"] = dict(report)
        self.last_report_ = report
        return freeze(doc, tree_root, chunks, builder="llm")
