"""The chunker contract: ``chunk(doc) -> list[Chunk]`` with exact offsets and a hard token cap.

:class:`Chunker` owns the batch path (the template every chunker shares): :meth:`Chunker.chunk_many`
skips empty documents, calls ``warm_up()`` once, shows a progress bar where the chunker asks for one,
calls the per-kind hook :meth:`Chunker._chunk_batch` (default: :meth:`Chunker._chunk` per document;
model-driven chunkers override it to batch model calls across documents), then applies the shared
post-step that sets ``metadata["heading_path"]`` from the document's headings. :meth:`Chunker.chunk`
is ``chunk_many([doc])[0]``. Every chunk satisfies ``doc.text[chunk.start:chunk.end] == chunk.text``.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any, ClassVar

from ragkit.chunkers._chars import bound_chars, warn_unknown
from ragkit.stage import Component
from ragkit.types import Chunk, Document


def heading_path_at(headings: Sequence[tuple[int, int, int, str]], position: int) -> list[str]:
    """Titles of the headings enclosing ``position`` (outermost first)."""
    path: list[tuple[int, str]] = []
    for start, _end, level, title in headings:
        if start > position:
            break
        while path and path[-1][0] >= level:
            path.pop()
        path.append((level, title))
    return [title for _level, title in path]


def add_heading_paths(doc: Document, chunks: Iterable[Chunk]) -> list[Chunk]:
    """The shared post-step: set ``metadata["heading_path"]`` on every chunk (idempotent)."""
    headings = sorted(doc.headings)
    out = []
    for chunk in chunks:
        if "heading_path" in chunk.metadata:
            out.append(chunk)
            continue
        # A chunk that starts with a heading line belongs under that heading.
        out.append(chunk.with_metadata(heading_path=heading_path_at(headings, chunk.start)))
    return out


def spans_to_chunks(doc: Document, spans: Sequence[tuple[int, int]], counts: Sequence[int]) -> list[Chunk]:
    """Chunks for ``spans`` (empty or whitespace-only spans dropped)."""
    chunks = []
    for (start, end), count in zip(spans, counts):
        if end > start and doc.text[start:end].strip():
            chunks.append(Chunk.from_span(doc, start, end, token_count=count))
    return chunks


def position_index(sorted_positions: Sequence[int], position: int) -> int:
    """How many of ``sorted_positions`` are <= ``position`` (a bisection)."""
    return bisect.bisect_right(sorted_positions, position)


def resolve_llm(ref: Any, capability: str) -> Any:
    """The LLM collaborator of a chunker that needs ``capability`` (e.g. ``token_logprobs``).

    The backend comes from the one backend policy, :func:`ragkit.backends.resolve_backend` (an
    instance as is; ``"default"`` = the canonical default LLM, built and cache-wrapped); a backend
    that declares it lacks ``capability`` is refused with :class:`~ragkit.errors.CapabilityError`.

    Example:
        >>> from ragkit.testing import FakeLLM
        >>> llm = FakeLLM()
        >>> resolve_llm(llm, "token_logprobs") is llm
        True
    """
    from ragkit.backends import resolve_backend
    from ragkit.errors import CapabilityError

    backend = resolve_backend(ref, "llm")
    supports = getattr(backend, "supports", None)
    if supports is not None and not supports(capability):
        raise CapabilityError(
            f"{type(backend).__name__} does not provide {capability!r}, which this chunker needs; configure a "
            "backend that does (type: transformers, llama_cpp, or an openai server returning prompt logprobs)"
        )
    return backend


def progress_bar(total: int, desc: str, unit: str, show: bool | None) -> Any:
    """Progress on stderr by :mod:`ragkit.progress`'s policy (``show=None``: for more than one item).

    Example:
        >>> with progress_bar(1, "demo", "doc", None) as bar:
        ...     bar.disable
        True
    """
    from ragkit.progress import progress

    return progress(total, desc, unit, show=show)


class Chunker(Component):
    """Base class: implement ``_chunk(doc)`` (or ``_chunk_batch(docs)``); the base owns the batch path.

    ``chunk_many(docs)`` skips empty documents, warms up once, shows a per-document progress bar when
    the class sets :attr:`progress_desc` (controlled by a ``show_progress`` parameter where the
    chunker has one), calls :meth:`_chunk_batch`, holds the character cap that goes with ``max_tokens``
    (``max_chars = max_tokens * 20`` for the built-in tokenizers; longer chunks are cut into exact
    sub-spans, see :mod:`ragkit.chunkers._chars`) and adds ``metadata["heading_path"]``.

    Example:
        >>> from ragkit.chunkers.token import TokenChunker
        >>> chunks = TokenChunker(max_tokens=8).chunk(Document.from_text("one two three " * 10))
        >>> all(c.token_count <= 8 for c in chunks)
        True
        >>> [len(x) for x in TokenChunker(max_tokens=8).chunk_many([Document.from_text(" "), Document.from_text("a b")])]
        [0, 1]
    """

    #: Description of the per-document progress bar of the default :meth:`_chunk_batch`; ``None``: no bar.
    progress_desc: ClassVar[str | None] = None

    def chunk(self, doc: Document) -> list[Chunk]:
        """Cut ``doc`` into chunks whose text is ``doc.text[start:end]``."""
        return self.chunk_many([doc])[0]

    def chunk_many(self, docs: Iterable[Document]) -> list[list[Chunk]]:
        """Chunk several documents; equals ``[chunk(d) for d in docs]`` (one result list per document).

        Empty (whitespace-only) documents give ``[]`` without touching the model; the others go to
        :meth:`_chunk_batch` together, so model-driven chunkers can batch across documents.
        """
        docs = list(docs)
        out: list[list[Chunk]] = [[] for _ in docs]
        todo = [i for i, d in enumerate(docs) if d.text.strip()]
        if not todo:
            return out
        self.warm_up()
        batch = [docs[i] for i in todo]
        results = self._chunk_batch(batch)
        if len(results) != len(batch):
            raise RuntimeError(f"{type(self).__name__}._chunk_batch returned {len(results)} results for {len(batch)} documents")
        cap = self._char_cap()
        for i, chunks in zip(todo, results):
            if cap is not None:
                warn_unknown(docs[i], cap[1], self)
                chunks = bound_chars(docs[i], chunks, max_tokens=cap[0], tokenizer=cap[1])
            out[i] = add_heading_paths(docs[i], chunks)
        return out

    def _char_cap(self) -> tuple[int, Any] | None:
        """``(max_tokens, tokenizer)`` when the chunker has a token cap; the base then also holds ``max_chars``.

        ``max_chars = tokenizer.max_chars(max_tokens)`` (``max_tokens * chars_per_token``, 20 for the
        built-in tokenizers): see :mod:`ragkit.chunkers._chars`.
        """
        max_tokens = getattr(self, "max_tokens", None)
        if not isinstance(max_tokens, int) or max_tokens <= 0:
            return None
        from ragkit.text.tokenizers import get_tokenizer

        name = getattr(self, "tokenizer", "minilm")
        return max_tokens, get_tokenizer(name if isinstance(name, str) or hasattr(name, "max_chars") else "minilm")

    def _chunk_batch(self, docs: Sequence[Document]) -> list[list[Chunk]]:
        """The per-kind hook: chunks of each (non-empty) document; default ``_chunk`` per document."""
        if self.progress_desc is None:
            return [self._chunk(doc) for doc in docs]
        out = []
        with self._progress(len(docs), self.progress_desc, "doc") as bar:
            for doc in docs:
                out.append(self._chunk(doc))
                bar.update(1)
        return out

    def _chunk(self, doc: Document) -> list[Chunk]:
        raise NotImplementedError(f"{type(self).__name__} must implement _chunk(doc) or _chunk_batch(docs)")

    def _progress(self, total: int, desc: str, unit: str) -> Any:
        """A progress bar honouring the chunker's ``show_progress`` parameter (if it has one)."""
        return progress_bar(total, desc, unit, getattr(self, "show_progress", None))

    def __call__(self, doc: Document | str) -> list[Chunk]:
        if isinstance(doc, str):
            doc = Document.from_text(doc)
        return self.chunk(doc)


def renumber(chunks: Sequence[Chunk], **metadata: object) -> list[Chunk]:
    """Attach extra metadata to every chunk (returns copies)."""
    return [replace(c, metadata={**c.metadata, **metadata}) for c in chunks]
