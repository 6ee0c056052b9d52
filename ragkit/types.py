"""Immutable records passed between stages.

All records are frozen dataclasses: change them with :func:`dataclasses.replace`. IDs are content
hashes, so they are the same on every run and on every machine.

Example:
    >>> doc = Document.from_text("Hello world. Bye.", source_id="greeting")
    >>> chunk = Chunk.from_span(doc, 0, 12, token_count=3)
    >>> chunk.text
    'Hello world.'
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any


def sha256_hex(*parts: object) -> str:
    """Hex sha256 over the canonical JSON of ``parts`` (stable across processes and machines)."""
    payload = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _frozen_metadata(metadata: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(metadata or {}))


def _plain(value: Any) -> Any:
    """Turn mapping proxies and tuples into JSON-friendly dicts and lists."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


@dataclass(frozen=True)
class Document:
    """A source document. ``id`` is ``sha256(text)``; a user-supplied id lives in ``metadata["source_id"]``.

    Loaders put heading spans in ``metadata["headings"]`` as ``(start, end, level, title)`` tuples.
    """

    id: str
    text: str
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "metadata", _frozen_metadata(self.metadata))

    @classmethod
    def from_text(cls, text: str, metadata: Mapping[str, Any] | None = None, source_id: str | None = None) -> Document:
        """Build a document whose id is the hash of its text."""
        meta = dict(metadata or {})
        if source_id is not None:
            meta["source_id"] = source_id
        return cls(id=sha256_hex(text), text=text, metadata=meta)

    @property
    def headings(self) -> list[tuple[int, int, int, str]]:
        """Heading spans ``(start, end, level, title)`` in document order."""
        return [tuple(h) for h in self.metadata.get("headings", ())]  # type: ignore[misc]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "metadata": _plain(self.metadata)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Document:
        return cls(id=data["id"], text=data["text"], metadata=data.get("metadata") or {})


@dataclass(frozen=True)
class Chunk:
    """A verbatim span of a document: ``doc.text[start:end] == text`` always.

    ``id = sha256(doc_id, start, end)``; ``token_count`` is measured with the configured tokenizer.
    Enrichers add to ``metadata`` only; prefixes are applied when embedding, never to ``text``.
    """

    id: str
    doc_id: str
    text: str
    start: int
    end: int
    token_count: int
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "metadata", _frozen_metadata(self.metadata))

    @staticmethod
    def make_id(doc_id: str, start: int, end: int) -> str:
        return sha256_hex(doc_id, start, end)

    @classmethod
    def from_span(
        cls, doc: Document, start: int, end: int, token_count: int, metadata: Mapping[str, Any] | None = None
    ) -> Chunk:
        """Cut ``doc.text[start:end]`` into a chunk (the only sanctioned way to make chunk text)."""
        if not 0 <= start < end <= len(doc.text):
            raise ValueError(f"invalid chunk span [{start}, {end}) for a document of {len(doc.text)} characters")
        return cls(
            id=cls.make_id(doc.id, start, end),
            doc_id=doc.id,
            text=doc.text[start:end],
            start=start,
            end=end,
            token_count=token_count,
            metadata=dict(metadata or {}),
        )

    def with_metadata(self, **updates: Any) -> Chunk:
        """Return a copy with ``metadata`` updated (text and offsets unchanged)."""
        return replace(self, metadata={**self.metadata, **updates})

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["metadata"] = _plain(self.metadata)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Chunk:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass(frozen=True)
class Query:
    """A question. ``id`` defaults to ``sha256(text)``."""

    id: str
    text: str
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "metadata", _frozen_metadata(self.metadata))

    @classmethod
    def from_text(cls, text: str, metadata: Mapping[str, Any] | None = None, id: str | None = None) -> Query:
        return cls(id=id or sha256_hex(text), text=text, metadata=dict(metadata or {}))


@dataclass(frozen=True)
class ScoredChunk:
    """A chunk with a score; ``source`` names the retriever (or stage) that produced the score."""

    chunk: Chunk
    score: float
    source: str = ""


@dataclass
class Usage:
    """Resource usage of a stage or a run. Summable with ``+``."""

    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    embedding_calls: int = 0
    embedded_texts: int = 0
    cached_calls: int = 0
    wall_time_s: float = 0.0
    est_cost_usd: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary_line(self) -> str:
        """The ``usage:`` line printed at the end of ``ragkit run``."""
        return (
            f"usage: llm_calls={self.llm_calls} prompt_tokens={self.prompt_tokens} "
            f"completion_tokens={self.completion_tokens} embedding_calls={self.embedding_calls} "
            f"est_cost_usd={self.est_cost_usd:.6f}"
        )


@dataclass(frozen=True)
class Answer:
    """What the aggregator returns. ``chunks`` are the chunks given to the generator, in prompt order."""

    text: str
    chunks: tuple[ScoredChunk, ...] = ()
    rationale: str | None = None
    usage: Usage = field(default_factory=Usage)
    trace: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "chunks": [
                {"id": s.chunk.id, "doc_id": s.chunk.doc_id, "start": s.chunk.start, "end": s.chunk.end,
                 "score": s.score, "source": s.source, "text": s.chunk.text,
                 "metadata": _plain(s.chunk.metadata)}
                for s in self.chunks
            ],
            "rationale": self.rationale,
            "usage": self.usage.to_dict(),
            "trace": _plain(self.trace),
        }


@dataclass(frozen=True)
class TreeNode:
    """One node of a :class:`DocTree`.

    Leaves hold a verbatim span of the document (``doc.text[start:end]``); internal nodes cover the
    span of their children and carry ``title``, ``keywords`` and ``summary`` (written by a tree
    builder, possibly an LLM). ``chunk_ids`` lists the index chunks that fall under the node.
    """

    id: str
    parent: str | None
    children: tuple[str, ...]
    start: int
    end: int
    level: int = 0
    title: str = ""
    summary: str = ""
    keywords: tuple[str, ...] = ()
    chunk_ids: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "children", tuple(self.children))
        object.__setattr__(self, "keywords", tuple(self.keywords))
        object.__setattr__(self, "chunk_ids", tuple(self.chunk_ids))
        object.__setattr__(self, "metadata", _frozen_metadata(self.metadata))

    @property
    def is_leaf(self) -> bool:
        return not self.children

    def to_dict(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TreeNode:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass(frozen=True)
class DocTree:
    """A document's tree: ``nodes`` by id, ``root`` the id of the top node.

    Example:
        >>> doc = Document.from_text("# A\\nalpha\\n# B\\nbeta")
        >>> leaves = [TreeNode("l1", "r", (), 0, 9), TreeNode("l2", "r", (), 10, 19)]
        >>> tree = DocTree(doc.id, "r", {"r": TreeNode("r", None, ("l1", "l2"), 0, 19, title="doc"),
        ...                              **{n.id: n for n in leaves}})
        >>> [doc.text[n.start:n.end] for n in tree.leaves()]
        ['# A\\nalpha', '# B\\nbeta']
        >>> DocTree.from_dict(tree.to_dict()) == tree
        True
    """

    doc_id: str
    root: str
    nodes: Mapping[str, TreeNode]
    builder: str = ""

    def node(self, node_id: str) -> TreeNode:
        return self.nodes[node_id]

    def children(self, node_id: str) -> list[TreeNode]:
        return [self.nodes[c] for c in self.nodes[node_id].children]

    def leaves(self, node_id: str | None = None) -> list[TreeNode]:
        """The leaves under ``node_id`` (default: the root), in document order."""
        out: list[TreeNode] = []
        stack = [node_id or self.root]
        while stack:
            node = self.nodes[stack.pop()]
            if node.is_leaf:
                out.append(node)
            else:
                stack.extend(reversed(node.children))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"doc_id": self.doc_id, "root": self.root, "builder": self.builder,
                "nodes": [n.to_dict() for n in self.nodes.values()]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DocTree:
        nodes = [TreeNode.from_dict(n) for n in data["nodes"]]
        return cls(doc_id=data["doc_id"], root=data["root"], nodes={n.id: n for n in nodes},
                   builder=data.get("builder", ""))
