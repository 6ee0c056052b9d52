"""``headings``: a document's tree from its heading spans, no model involved (ToM's "inherent structure").

The loaders put headings in ``doc.metadata["headings"]`` as ``(start, end, level, title)``
(Markdown, HTML H1–H6, WikiText; the datasets add theirs). A heading opens a section that runs to
the next heading of the same or a higher level; sections nest by level. Every chunk becomes a leaf
under the deepest section that contains its start, so a leaf is exactly a chunk's verbatim span
(and its id is the chunk id). Sections without chunks are dropped; chunks before the first heading
sit directly under the root. A root with a single section child (a document whose title is its only
top heading) takes that section's title and children.

Without chunks (a caller that only wants the outline) the leaves are the section bodies between
headings. Without headings the tree is the root over the chunks.

Example:
    >>> from ragkit.types import Chunk, Document
    >>> text = "# Guide\\nIntro text.\\n## Install\\nRun pip.\\n## Use\\nCall it."
    >>> doc = Document.from_text(text, {"headings": [(0, 7, 1, "Guide"), (20, 30, 2, "Install"), (40, 46, 2, "Use")]})
    >>> chunks = [Chunk.from_span(doc, s, e, 2) for s, e in [(8, 19), (20, 39), (40, 55)]]
    >>> tree = HeadingsTreeBuilder().build(doc, chunks)
    >>> root = tree.node(tree.root)
    >>> root.title, [tree.node(c).title or tree.node(c).id == chunks[0].id for c in root.children]
    ('Guide', [True, 'Install', 'Use'])
    >>> [doc.text[n.start:n.end] for n in tree.leaves()]
    ['Intro text.', '## Install\\nRun pip.', '## Use\\nCall it.']
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import Annotated

from pydantic import Field

from ragkit.stage import Component
from ragkit.trees._common import Draft, freeze
from ragkit.types import Chunk, DocTree, Document


def document_title(doc: Document) -> str:
    """``metadata.title``, else the source id, else ``""``.

    Example:
        >>> document_title(Document.from_text("x", {"title": " A  Guide "}))
        'A Guide'
    """
    for key in ("title", "source_id", "source", "path"):
        value = doc.metadata.get(key)
        if isinstance(value, str) and value.strip():
            return " ".join(value.split())
    return ""


class HeadingsTreeBuilder(Component):
    """Sections from ``doc.metadata["headings"]``, chunks as leaves under their heading path.

    Parameters:
        max_level: headings deeper than this level are ignored (their text stays in the parent section);
            ``None`` keeps every level.
        collapse_single: a root whose only child is a section takes that section's title and children.

    Example:
        >>> HeadingsTreeBuilder(max_level=3).max_level
        3
    """

    def __init__(self, *, max_level: Annotated[int, Field(ge=1, le=6)] | None = None,
                 collapse_single: bool = True) -> None:
        self.max_level = max_level
        self.collapse_single = collapse_single

    def _sections(self, doc: Document) -> list[tuple[int, int, int, str]]:
        """``(start, section end, level, title)`` per kept heading, in document order."""
        heads = sorted((int(s), int(e), int(level), str(title)) for s, e, level, title in doc.headings
                       if 0 <= int(s) < len(doc.text))
        if self.max_level is not None:
            heads = [h for h in heads if h[2] <= self.max_level]
        out = []
        for i, (start, _end, level, title) in enumerate(heads):
            stop = next((h[0] for h in heads[i + 1:] if h[2] <= level), len(doc.text))
            out.append((start, stop, level, " ".join(title.split())))
        return out

    def build(self, doc: Document, chunks: Sequence[Chunk]) -> DocTree:
        """The heading tree of ``doc`` with ``chunks`` as leaves."""
        sections = self._sections(doc)
        root = Draft(title=document_title(doc), start=0, end=len(doc.text))
        drafts: list[Draft] = []
        stack: list[tuple[int, int, Draft]] = []  # (level, end, draft)
        for start, stop, level, title in sections:
            draft = Draft(title=title, start=start, end=stop, metadata={"heading_level": level})
            while stack and (stack[-1][0] >= level or stack[-1][1] <= start):
                stack.pop()
            (stack[-1][2] if stack else root).children.append(draft)
            stack.append((level, stop, draft))
            drafts.append(draft)
        starts = [s[0] for s in sections]
        ordered = sorted(chunks, key=lambda c: (c.start, c.end))
        if ordered:
            for chunk in ordered:
                at = bisect.bisect_right(starts, chunk.start) - 1
                owner = drafts[at] if at >= 0 else root
                owner.children.append(Draft(start=chunk.start, end=chunk.end))
        else:
            self._body_leaves(doc, root, sections, drafts)
        for draft in [root, *drafts]:
            draft.children.sort(key=lambda d: d.start)
        _prune(root)
        if self.collapse_single and len(root.children) == 1 and not root.children[0].is_leaf:
            only = root.children[0]
            root = Draft(title=only.title or root.title, children=only.children,
                         metadata={**only.metadata, "document_title": root.title})
        if not root.children:  # nothing to hang: one leaf over the whole (non-empty) text
            text = doc.text
            a = len(text) - len(text.lstrip())
            b = len(text.rstrip())
            root.children.append(Draft(start=a, end=max(a, b)))
        return freeze(doc, root, chunks, builder="headings")

    @staticmethod
    def _body_leaves(doc: Document, root: Draft, sections: list[tuple[int, int, int, str]],
                     drafts: list[Draft]) -> None:
        """Leaves = the text between consecutive headings (no chunks given)."""
        bounds = [0, *[s[0] for s in sections], len(doc.text)]
        heading_end = {int(s): int(e) for s, e, _level, _title in doc.headings}
        for i in range(len(bounds) - 1):
            start = heading_end.get(bounds[i], bounds[i]) if i else 0
            end = bounds[i + 1]
            text = doc.text[start:end]
            a = start + len(text) - len(text.lstrip())
            b = start + len(text.rstrip())
            if b > a:
                (drafts[i - 1] if i else root).children.append(Draft(start=a, end=b))


def _prune(draft: Draft) -> bool:
    """Drop sections without leaves below them; return whether ``draft`` keeps anything."""
    kept = []
    for child in draft.children:
        if child.is_leaf:
            if "heading_level" not in child.metadata:  # a text leaf (a section without leaves is dropped)
                kept.append(child)
        elif _prune(child):
            kept.append(child)
    draft.children = kept
    return bool(kept)
