"""Shared by the tree builders: a mutable draft node, freezing drafts into a :class:`DocTree`, span text from chunks, and rendering.

Builders assemble :class:`Draft` nodes (title, keywords, summary, span, children) and call
:func:`freeze`, which gives every node a stable id (a content hash, or the chunk id for a leaf that
is exactly one chunk), parent links, depth levels, spans of internal nodes as the union of their
children, and the ``chunk_ids`` of the index chunks that overlap each node.

Example:
    >>> from ragkit.types import Chunk, Document
    >>> doc = Document.from_text("Alpha one. Beta two.")
    >>> chunks = [Chunk.from_span(doc, 0, 10, 2), Chunk.from_span(doc, 11, 20, 2)]
    >>> root = Draft(title="doc", children=[Draft(start=0, end=10), Draft(start=11, end=20)])
    >>> tree = freeze(doc, root, chunks, builder="demo")
    >>> [n.chunk_ids == (c.id,) for n, c in zip(tree.leaves(), chunks)], tree.node(tree.root).end
    ([True, True], 20)
    >>> span_text(chunks, 5, 15)
    'one.\\nBeta'
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ragkit.types import Chunk, DocTree, Document, TreeNode, sha256_hex


@dataclass
class Draft:
    """A node under construction (mutable); :func:`freeze` turns a draft tree into a :class:`DocTree`."""

    title: str = ""
    summary: str = ""
    keywords: list[str] = field(default_factory=list)
    start: int = 0
    end: int = 0
    children: list[Draft] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    node_id: str | None = None

    @property
    def is_leaf(self) -> bool:
        return not self.children

    def leaves(self) -> list[Draft]:
        """The leaf drafts under this one, in child order."""
        if self.is_leaf:
            return [self]
        return [leaf for child in self.children for leaf in child.leaves()]


def _sorted_chunks(chunks: Sequence[Chunk]) -> list[Chunk]:
    return sorted(chunks, key=lambda c: (c.start, c.end))


def overlapping(chunks: Sequence[Chunk], start: int, end: int) -> list[Chunk]:
    """The chunks overlapping ``[start, end)`` (``chunks`` sorted by start)."""
    return [c for c in chunks if c.start < end and start < c.end]


def span_text(chunks: Sequence[Chunk], start: int, end: int, gap: str = "\n") -> str:
    """The text of ``[start, end)`` stitched from the chunks that cover it (verbatim pieces, ``gap`` between them).

    Used where the document itself is not at hand (query time has chunks, not documents); text no
    chunk covers (whitespace between chunks, mostly) is left out.
    """
    pieces = []
    last = start
    for c in _sorted_chunks(chunks):
        if c.end <= last or c.start >= end:
            continue
        a, b = max(last, c.start), min(end, c.end)
        pieces.append(c.text[a - c.start: b - c.start])
        last = b
    return gap.join(p.strip() for p in pieces if p.strip())


def _fix_spans(draft: Draft) -> None:
    for child in draft.children:
        _fix_spans(child)
    if draft.children:
        draft.start = min(c.start for c in draft.children)
        draft.end = max(c.end for c in draft.children)


def freeze(doc: Document, root: Draft, chunks: Sequence[Chunk], builder: str) -> DocTree:
    """Turn a draft tree into a :class:`DocTree` of ``doc`` (ids, parents, levels, spans, chunk ids).

    Internal spans become the union of their children's; a leaf that is exactly one chunk's span takes
    that chunk's id. Node ids are hashes of the document, the builder and the node's path, so a rebuild
    gives the same ids.
    """
    _fix_spans(root)
    ordered = _sorted_chunks(chunks)
    starts = [c.start for c in ordered]
    by_span = {(c.start, c.end): c.id for c in ordered}
    nodes: dict[str, TreeNode] = {}

    def chunk_ids(start: int, end: int) -> tuple[str, ...]:
        hi = bisect.bisect_left(starts, end)
        return tuple(c.id for c in ordered[:hi] if c.end > start and c.start < end)

    def visit(draft: Draft, parent: str | None, path: tuple[int, ...], level: int) -> str:
        if draft.node_id:
            node_id = draft.node_id
        elif draft.is_leaf and (draft.start, draft.end) in by_span:
            node_id = by_span[(draft.start, draft.end)]
        else:
            node_id = sha256_hex("tree-node", doc.id, builder, path, draft.start, draft.end, draft.title)[:24]
        children = tuple(visit(c, node_id, (*path, i), level + 1) for i, c in enumerate(draft.children))
        nodes[node_id] = TreeNode(
            id=node_id, parent=parent, children=children, start=int(draft.start), end=int(draft.end), level=level,
            title=draft.title, summary=draft.summary, keywords=tuple(draft.keywords),
            chunk_ids=chunk_ids(draft.start, draft.end), metadata=dict(draft.metadata))
        return node_id

    root_id = visit(root, None, (), 0)
    return DocTree(doc_id=doc.id, root=root_id, nodes=nodes, builder=builder)


def depth(tree: DocTree) -> int:
    """The number of levels below the root (0 for a root without children).

    Example:
        >>> from ragkit.types import Document
        >>> doc = Document.from_text("abc")
        >>> depth(freeze(doc, Draft(children=[Draft(start=0, end=3)]), [], "demo"))
        1
    """
    return max((n.level for n in tree.nodes.values()), default=0)


def render_text(tree: DocTree, doc: Document, count_tokens: Callable[[str], int], *, preview: int = 60) -> str:
    """An indented outline of ``tree``: title (or a text preview for untitled leaves), span and token count per node.

    Example:
        >>> from ragkit.types import Document
        >>> doc = Document.from_text("# A\\nalpha\\n# B\\nbeta")
        >>> tree = freeze(doc, Draft(title="doc", children=[Draft(title="A", start=0, end=9),
        ...                                                  Draft(title="B", start=10, end=19)]), [], "demo")
        >>> print(render_text(tree, doc, lambda t: len(t.split())))
        doc  [0, 19)  6 tok
        ├── A  [0, 9)  3 tok
        └── B  [10, 19)  3 tok
    """
    lines: list[str] = []

    def label(node: TreeNode) -> str:
        if node.title:
            return node.title
        text = " ".join(doc.text[node.start:node.end].split())
        return f'"{text[:preview]}{"…" if len(text) > preview else ""}"'

    def visit(node_id: str, prefix: str, last: bool, top: bool) -> None:
        node = tree.node(node_id)
        tokens = count_tokens(doc.text[node.start:node.end])
        branch = "" if top else ("└── " if last else "├── ")
        lines.append(f"{prefix}{branch}{label(node)}  [{node.start}, {node.end})  {tokens} tok")
        child_prefix = prefix if top else prefix + ("    " if last else "│   ")
        for i, child in enumerate(node.children):
            visit(child, child_prefix, i == len(node.children) - 1, False)

    visit(tree.root, "", True, True)
    return "\n".join(lines)


def render_json(tree: DocTree, doc: Document, count_tokens: Callable[[str], int]) -> str:
    """The tree as nested JSON: ``title``, ``start``, ``end``, ``tokens``, ``level``, ``keywords``, ``summary``, ``children``."""

    def visit(node_id: str) -> dict[str, Any]:
        node = tree.node(node_id)
        out: dict[str, Any] = {"id": node.id, "title": node.title, "start": node.start, "end": node.end,
                               "tokens": count_tokens(doc.text[node.start:node.end]), "level": node.level}
        if node.keywords:
            out["keywords"] = list(node.keywords)
        if node.summary:
            out["summary"] = node.summary
        if node.metadata:
            out["metadata"] = json.loads(json.dumps(dict(node.metadata), default=str))
        if node.children:
            out["children"] = [visit(c) for c in node.children]
        return out

    return json.dumps({"doc_id": tree.doc_id, "builder": tree.builder, "root": visit(tree.root)},
                      ensure_ascii=False, indent=2)
