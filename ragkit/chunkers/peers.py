"""Peer chunkers (LangChain, Chonkie) adapted to ragkit's :class:`~ragkit.types.Chunk` with exact offsets.

They exist so every evaluation report can put ragkit's chunkers next to the libraries users would
otherwise pick, on the same embedder, tokenizer and protocol. Each adapter:

* gives the peer ragkit's tokenizer (MiniLM word pieces by default, never a download): LangChain
  gets it as ``length_function``, Chonkie as a tokenizer object whose "decode" returns the exact
  source substring, so even Chonkie's token-level fallback cuts the original text;
* maps every piece the peer returns back to source offsets (:func:`locate_pieces`): the peer's own
  start index when it checks out, else an exact search forward from the previous piece, else a
  whitespace-insensitive search (peers may strip or normalise whitespace); a piece that cannot be
  found raises :class:`~ragkit.errors.DocumentError` rather than being guessed;
* trims whitespace, re-counts tokens with ragkit's tokenizer and, with ``enforce_cap`` (default),
  cuts the rare piece the peer left above ``max_tokens`` at token boundaries (marked
  ``metadata["peer_cap_split"]``), so peers pass the same offset and size invariants as ragkit's.

The peers are imported lazily; without them a :class:`~ragkit.errors.MissingDependencyError` names
the ``peers`` extra (``pip install 'ragkit[peers]'``).

Example:
    >>> from ragkit.types import Document
    >>> doc = Document.from_text("First paragraph here.\\n\\nSecond one, a bit longer than the first.")
    >>> chunks = LangchainRecursiveChunker(max_tokens=8).chunk(doc)
    >>> all(doc.text[c.start:c.end] == c.text and c.token_count <= 8 for c in chunks)
    True
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import Field

from ragkit._lazy import require
from ragkit.backends import resolve_backend
from ragkit.chunkers._chars import trim_span
from ragkit.chunkers.base import Chunker
from ragkit.errors import DocumentError
from ragkit.stage import EmbedderRef
from ragkit.types import Chunk, Document

PEERS_EXTRA = "peers"


# ---------------------------------------------------------------------------------------------- offsets
def _whitespace_pattern(piece: str) -> re.Pattern[str] | None:
    words = piece.split()
    if not words:
        return None
    return re.compile(r"\s*".join(re.escape(w) for w in words))


def locate_pieces(text: str, pieces: Sequence[str], hints: Sequence[int | None] | None = None, *,
                  overlapping: bool = False) -> list[tuple[int, int]]:
    """Source spans ``(start, end)`` of peer output ``pieces`` (in document order), whitespace-trimmed.

    Args:
        text: the source text the peer chunked.
        pieces: the peer's chunk texts, in order; whitespace-only pieces are skipped.
        hints: the peer's claimed start offsets (used when ``text`` really has the piece there).
        overlapping: pieces may overlap (chunk overlap), so the search for piece ``i`` starts just
            after the start of piece ``i-1`` instead of at its end.

    Raises:
        DocumentError: a piece does not occur in ``text`` even with whitespace normalised.

    Example:
        >>> locate_pieces("Alpha  beta.\\n\\nGamma delta.", ["Alpha beta.", "Gamma delta."])
        [(0, 12), (14, 26)]
    """
    spans: list[tuple[int, int]] = []
    for i, piece in enumerate(pieces):
        core = piece.strip()
        if not core:
            continue
        lead = len(piece) - len(piece.lstrip())
        floor = 0 if not spans else (spans[-1][0] + 1 if overlapping else spans[-1][1])
        hint = hints[i] if hints is not None else None
        found: tuple[int, int] | None = None
        if hint is not None and hint + lead >= floor - (len(piece) if overlapping else 0):
            at = hint + lead
            if text.startswith(core, at):
                found = (at, at + len(core))
        if found is None:
            at = text.find(core, floor)
            if at >= 0:
                found = (at, at + len(core))
        if found is None:
            pattern = _whitespace_pattern(core)
            match = pattern.search(text, floor) if pattern else None
            if match is None and floor and pattern:  # a peer that re-emits earlier text (rare)
                match = pattern.search(text, max(0, spans[-1][0]))
            if match is not None:
                found = match.span()
        if found is None:
            raise DocumentError(
                f"peer chunk {i} could not be located in the source text (searched from offset {floor}; "
                f"piece starts {core[:60]!r}). The peer changed the text beyond whitespace; report it with "
                "the input document"
            )
        start, end = trim_span(text, *found)
        if end > start:
            spans.append((start, end))
    return spans


def enforce_token_cap(text: str, spans: Sequence[tuple[int, int]], counts: Sequence[int], max_tokens: int,
                      tokenizer: Any) -> list[tuple[int, int, int, bool]]:
    """``(start, end, token_count, was_split)`` with every span over ``max_tokens`` cut at token boundaries.

    Example:
        >>> from ragkit.text.tokenizers import get_tokenizer
        >>> text = "one two three four five"
        >>> enforce_token_cap(text, [(0, len(text))], [5], 2, get_tokenizer("minilm"))
        [(0, 7, 2, True), (8, 18, 2, True), (19, 23, 1, True)]
    """
    out: list[tuple[int, int, int, bool]] = []
    for (start, end), count in zip(spans, counts):
        if count <= max_tokens:
            out.append((start, end, count, False))
            continue
        token_starts = [start + s for s, _e in tokenizer.offsets(text[start:end])]
        a = 0
        while a < len(token_starts):
            b = min(a + max_tokens, len(token_starts))
            while True:
                cut = token_starts[b] if b < len(token_starts) else end
                s, e = trim_span(text, token_starts[a], cut)
                n = tokenizer.count(text[s:e])
                if n <= max_tokens or b - a <= 1:
                    break
                b -= 1
            if e > s:
                out.append((s, e, n, True))
            a = b
    return out


class _PeerChunker(Chunker):
    """Shared adapter logic: subclasses return ``(pieces, hints)`` from ``_peer_pieces``."""

    max_tokens: int
    tokenizer: str
    enforce_cap: bool
    _overlapping = False

    def _load(self) -> None:
        from ragkit.text.tokenizers import get_tokenizer

        self._tok = get_tokenizer(self.tokenizer)
        self._peer = self._make_peer()

    def _char_cap(self) -> tuple[int, Any] | None:
        # enforce_cap=False measures the peer as published: no cap of any kind, the character bound included
        return super()._char_cap() if self.enforce_cap else None

    def _make_peer(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _peer_pieces(self, text: str) -> tuple[list[str], list[int | None] | None]:  # pragma: no cover
        raise NotImplementedError

    def _chunk(self, doc: Document) -> list[Chunk]:
        pieces, hints = self._peer_pieces(doc.text)
        spans = locate_pieces(doc.text, pieces, hints, overlapping=self._overlapping)
        counts = self._tok.count_many([doc.text[s:e] for s, e in spans])
        if self.enforce_cap:
            cut = enforce_token_cap(doc.text, spans, counts, self.max_tokens, self._tok)
        else:
            cut = [(s, e, n, False) for (s, e), n in zip(spans, counts)]
        return [Chunk.from_span(doc, s, e, n, {"peer_cap_split": True} if split else None) for s, e, n, split in cut]


class LangchainRecursiveChunker(_PeerChunker):
    """LangChain's ``RecursiveCharacterTextSplitter`` measuring length in ragkit tokens (MiniLM by default).

    Separators default to LangChain's (``"\\n\\n"``, ``"\\n"``, ``" "``, ``""``); ``overlap_tokens`` is
    LangChain's ``chunk_overlap``.

    Example:
        >>> chunker = LangchainRecursiveChunker(max_tokens=200, overlap_tokens=20)
        >>> chunker.get_params()["overlap_tokens"]
        20
    """

    def __init__(self, *, max_tokens: Annotated[int, Field(gt=0)] = 256,
                 overlap_tokens: Annotated[int, Field(ge=0)] = 0, separators: list[str] | None = None,
                 tokenizer: str = "minilm", enforce_cap: bool = True) -> None:
        self.max_tokens = max_tokens
        self.overlap_tokens = overlap_tokens
        self.separators = separators
        self.tokenizer = tokenizer
        self.enforce_cap = enforce_cap

    @property
    def _overlapping(self) -> bool:  # type: ignore[override]
        return self.overlap_tokens > 0

    def _make_peer(self) -> Any:
        module = require("langchain_text_splitters", PEERS_EXTRA, "the langchain_recursive chunker")
        return module.RecursiveCharacterTextSplitter(
            chunk_size=self.max_tokens, chunk_overlap=min(self.overlap_tokens, self.max_tokens - 1),
            length_function=self._tok.count, separators=self.separators, keep_separator=True,
            strip_whitespace=True,
        )

    def _peer_pieces(self, text: str) -> tuple[list[str], list[int | None] | None]:
        return list(self._peer.split_text(text)), None


_CHONKIE_TOKENIZER_CLASS: list[type] = []


def chonkie_tokenizer(tokenizer: Any) -> Any:
    """A Chonkie ``Tokenizer`` counting with a ragkit tokenizer whose decode returns exact source text.

    ``encode`` returns token *start offsets* of the text it was last given, and ``decode`` of a run of
    them returns the source substring from the first token up to the next token (or the end), so the
    concatenated pieces of Chonkie's token-level fallback are exactly the original text.

    Example:
        >>> from ragkit.text.tokenizers import get_tokenizer
        >>> tok = chonkie_tokenizer(get_tokenizer("minilm"))
        >>> ids = tok.encode("Hello brave  new world")
        >>> [tok.decode(ids[:2]), tok.decode(ids[2:])], tok.count_tokens("Hello brave")
        (['Hello brave  ', 'new world'], 2)
    """
    if not _CHONKIE_TOKENIZER_CLASS:
        base = require("chonkie.tokenizer", PEERS_EXTRA, "the chonkie chunkers").Tokenizer

        class RagkitChonkieTokenizer(base):  # type: ignore[misc, valid-type]
            def __init__(self, inner: Any) -> None:
                super().__init__()
                self.inner = inner
                self._text = ""
                self._starts: list[int] = []

            def __repr__(self) -> str:
                return f"RagkitChonkieTokenizer({self.inner!r})"

            def encode(self, text: str) -> list[int]:
                self._text = text
                self._starts = [s for s, _e in self.inner.offsets(text)]
                return list(self._starts)

            def decode(self, tokens: Sequence[int]) -> str:
                if not tokens:
                    return ""
                first = 0 if tokens[0] == self._starts[0] else tokens[0]
                import bisect

                nxt = bisect.bisect_right(self._starts, tokens[-1])
                end = self._starts[nxt] if nxt < len(self._starts) else len(self._text)
                return self._text[first:end]

            def tokenize(self, text: str) -> list[int]:
                return [s for s, _e in self.inner.offsets(text)]

            def count_tokens(self, text: str) -> int:
                return int(self.inner.count(text))

            def count_tokens_batch(self, texts: Sequence[str]) -> list[int]:
                return [int(n) for n in self.inner.count_many(list(texts))]

        _CHONKIE_TOKENIZER_CLASS.append(RagkitChonkieTokenizer)
    return _CHONKIE_TOKENIZER_CLASS[0](tokenizer)


class ChonkieRecursiveChunker(_PeerChunker):
    """Chonkie's ``RecursiveChunker`` (default rules) counting ragkit tokens.

    Example:
        >>> ChonkieRecursiveChunker(max_tokens=128).get_params()["min_characters_per_chunk"]
        24
    """

    def __init__(self, *, max_tokens: Annotated[int, Field(gt=0)] = 256,
                 min_characters_per_chunk: Annotated[int, Field(ge=1)] = 24, tokenizer: str = "minilm",
                 enforce_cap: bool = True) -> None:
        self.max_tokens = max_tokens
        self.min_characters_per_chunk = min_characters_per_chunk
        self.tokenizer = tokenizer
        self.enforce_cap = enforce_cap

    def _make_peer(self) -> Any:
        chonkie = require("chonkie", PEERS_EXTRA, "the chonkie_recursive chunker")
        return chonkie.RecursiveChunker(tokenizer=chonkie_tokenizer(self._tok), chunk_size=self.max_tokens,
                                        min_characters_per_chunk=self.min_characters_per_chunk)

    def _peer_pieces(self, text: str) -> tuple[list[str], list[int | None] | None]:
        chunks = self._peer.chunk(text)
        return [c.text for c in chunks], [c.start_index for c in chunks]


_CHONKIE_EMBEDDINGS_CLASS: list[type] = []


def chonkie_embeddings(embedder: Any, tokenizer: Any) -> Any:
    """Wrap a ragkit embedder (cache, usage accounting, local model) as Chonkie ``BaseEmbeddings``."""
    if not _CHONKIE_EMBEDDINGS_CLASS:
        base = require("chonkie.embeddings.base", PEERS_EXTRA, "the chonkie_semantic chunker").BaseEmbeddings

        class RagkitChonkieEmbeddings(base):  # type: ignore[misc, valid-type]
            def __init__(self, inner: Any, tok: Any) -> None:
                super().__init__()
                self.inner = inner
                self.tok = tok

            def embed(self, text: str) -> Any:
                return self.inner.embed_documents([text])[0]

            def embed_batch(self, texts: list[str]) -> list[Any]:
                return list(self.inner.embed_documents(list(texts))) if texts else []

            @property
            def dimension(self) -> int:
                return int(self.inner.get_dimension())

            def get_tokenizer(self) -> Any:
                return self.tok

            def __repr__(self) -> str:
                return f"RagkitChonkieEmbeddings({self.inner!r})"

        _CHONKIE_EMBEDDINGS_CLASS.append(RagkitChonkieEmbeddings)
    return _CHONKIE_EMBEDDINGS_CLASS[0](embedder, tokenizer)


class ChonkieSemanticChunker(_PeerChunker):
    """Chonkie's ``SemanticChunker`` on ragkit's embedder (local MiniLM by default) and tokenizer.

    ``threshold``, ``similarity_window``, ``min_sentences_per_chunk``, ``min_characters_per_sentence``
    and ``skip_window`` are Chonkie's parameters with Chonkie's defaults.

    Example:
        >>> ChonkieSemanticChunker(max_tokens=200).get_params()["threshold"]
        0.8
    """

    def __init__(self, *, max_tokens: Annotated[int, Field(gt=0)] = 256,
                 threshold: Annotated[float, Field(gt=0, lt=1)] = 0.8,
                 similarity_window: Annotated[int, Field(ge=1)] = 3,
                 min_sentences_per_chunk: Annotated[int, Field(ge=1)] = 1,
                 min_characters_per_sentence: Annotated[int, Field(ge=1)] = 24,
                 skip_window: Annotated[int, Field(ge=0)] = 0,
                 embedder: EmbedderRef = "default", tokenizer: str = "minilm", enforce_cap: bool = True) -> None:
        self.max_tokens = max_tokens
        self.threshold = threshold
        self.similarity_window = similarity_window
        self.min_sentences_per_chunk = min_sentences_per_chunk
        self.min_characters_per_sentence = min_characters_per_sentence
        self.skip_window = skip_window
        self.embedder = embedder
        self.tokenizer = tokenizer
        self.enforce_cap = enforce_cap

    def _make_peer(self) -> Any:
        chonkie = require("chonkie", PEERS_EXTRA, "the chonkie_semantic chunker")
        embedder = resolve_backend(self.embedder, "embedder")  # "default": the packaged MiniLM, cached
        if hasattr(embedder, "warm_up"):
            embedder.warm_up()
        embeddings = chonkie_embeddings(embedder, chonkie_tokenizer(self._tok))
        return chonkie.SemanticChunker(
            embedding_model=embeddings, threshold=self.threshold, chunk_size=self.max_tokens,
            similarity_window=self.similarity_window, min_sentences_per_chunk=self.min_sentences_per_chunk,
            min_characters_per_sentence=self.min_characters_per_sentence, skip_window=self.skip_window,
        )

    def _peer_pieces(self, text: str) -> tuple[list[str], list[int | None] | None]:
        chunks = self._peer.chunk(text)
        return [c.text for c in chunks], [c.start_index for c in chunks]
