"""Cluster-semantic chunking: small pieces grouped into chunks by an exact DP on embedding similarity.

The text is cut into small pieces (sentences packed up to ``piece_tokens``, about 50 tokens; longer
sentences cut at token boundaries; never across a blank line), each piece is embedded, and the
dynamic programme of :mod:`ragkit.chunkers._segment` picks the grouping of consecutive pieces that
maximises the total within-chunk similarity

    Σ_C Σ_{a≠b ∈ C} (cos(v_a, v_b) − μ) − β (k − 1)

under the hard cap of ``max_tokens`` per chunk. ``μ`` (default: the document's mean pairwise
cosine) makes grouping pay only for pieces more similar than average, so chunk sizes follow the
text; ``target_tokens`` instead calibrates ``β`` per document to reach that mean chunk size.
This is the method that led Chroma's chunking report on precision and IoU; written here from its
description, with an exact vectorised DP.

Example:
    >>> from ragkit.testing import FakeEmbedder
    >>> from ragkit.types import Document
    >>> doc = Document.from_text("Cats purr softly. Cats nap all day.\\n\\nStocks fell. Bonds rose in May.")
    >>> chunks = ClusterChunker(embedder=FakeEmbedder(), piece_tokens=8, max_tokens=64).chunk(doc)
    >>> all(doc.text[c.start:c.end] == c.text and c.token_count <= 64 for c in chunks)
    True
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from ragkit.backends import resolve_backend
from ragkit.chunkers._segment import (
    Segmentation,
    apply_constraints,
    calibrate_boundary_penalty,
    cluster_table,
    max_units_within,
    mean_pairwise_similarity,
    optimal_segmentation,
)
from ragkit.chunkers._units import sentence_units
from ragkit.chunkers.base import Chunker
from ragkit.errors import ConfigError
from ragkit.stage import EmbedderRef
from ragkit.types import Chunk, Document

_HEADING = re.compile(r"^(#{1,6} |=+ .* =+$)")


def pack_pieces(
    text: str, units: Sequence[tuple[int, int]], unit_tokens: Sequence[int], piece_tokens: int
) -> list[tuple[int, int]]:
    """Greedily pack consecutive units into pieces of at most ``piece_tokens`` tokens.

    A piece never spans a blank line (paragraph break), except that a heading line (Markdown ``#``
    or WikiText ``= … =``) joins the text after it; a unit above ``piece_tokens`` stays alone.

    Example:
        >>> text = "A b. C d.\\n\\nE f."
        >>> pack_pieces(text, [(0, 4), (5, 9), (11, 15)], [2, 2, 2], 4)
        [(0, 9), (11, 15)]
        >>> pack_pieces("# Title\\n\\nBody.", [(0, 7), (9, 14)], [2, 2], 4)
        [(0, 14)]
    """
    pieces: list[tuple[int, int]] = []
    start = end = -1
    running = 0
    for (s, e), c in zip(units, unit_tokens):
        barrier = "\n\n" in text[end:s] and not _HEADING.match(text[start:end])
        if start >= 0 and running + c <= piece_tokens and not barrier:
            end, running = e, running + c
            continue
        if start >= 0:
            pieces.append((start, end))
        start, end, running = s, e, c
    if start >= 0:
        pieces.append((start, end))
    return pieces


class ClusterChunker(Chunker):
    """Cluster-semantic chunking: pieces of ~``piece_tokens`` grouped by an exact within-similarity DP.

    Parameters:
        embedder: embeds the pieces (``embed_documents``, batched); a config name or an instance.
        max_tokens: hard cap per chunk (a DP constraint), in ``tokenizer`` tokens. The default 254
            is what MiniLM embeds without truncation (256 word pieces including [CLS] and [SEP]).
        piece_tokens: size of the small pieces (Chroma's cluster chunker used 50).
        target_tokens: if set, β is calibrated per document so the mean chunk has about this many tokens.
        similarity_offset: ``μ`` subtracted from every pair's cosine; ``None`` = the document's mean
            pairwise cosine of its pieces.
        boundary_penalty: ``β`` per boundary when ``target_tokens`` is not set (default 0).
        max_pieces: optional cap on pieces per chunk (besides the token cap).
        splitter: sentence splitter used to cut pieces (``nupunkt`` offline default).
        tokenizer: tokenizer for sizes (default ``minilm``).
        show_progress: tqdm bar over documents in :meth:`chunk_many` (``None``: on a terminal).

    Example:
        >>> from ragkit.testing import FakeEmbedder
        >>> chunker = ClusterChunker(embedder=FakeEmbedder(), piece_tokens=6, max_tokens=24)
        >>> chunks = chunker.chunk(Document.from_text("Red apples. Green apples. Blue sky. Grey sky."))
        >>> sum(c.metadata["pieces"] for c in chunks)
        2
    """

    progress_desc = "cluster chunking"

    def __init__(
        self,
        *,
        embedder: EmbedderRef = "default",
        max_tokens: Annotated[int, Field(gt=0)] = 254,
        piece_tokens: Annotated[int, Field(gt=0)] = 50,
        target_tokens: Annotated[int, Field(gt=0)] | None = None,
        similarity_offset: float | None = None,
        boundary_penalty: float = 0.0,
        max_pieces: Annotated[int, Field(gt=0)] | None = None,
        splitter: Literal["nupunkt", "regex"] = "nupunkt",
        tokenizer: str = "minilm",
        show_progress: bool | None = None,
    ) -> None:
        self.embedder = embedder
        self.max_tokens = max_tokens
        self.piece_tokens = piece_tokens
        self.target_tokens = target_tokens
        self.similarity_offset = similarity_offset
        self.boundary_penalty = boundary_penalty
        self.max_pieces = max_pieces
        self.splitter = splitter
        self.tokenizer = tokenizer
        self.show_progress = show_progress
        if piece_tokens > max_tokens:
            raise ConfigError(
                f"chunker 'cluster': piece_tokens ({piece_tokens}) must not exceed max_tokens ({max_tokens})"
            )
        if target_tokens is not None and target_tokens > max_tokens:
            raise ConfigError(
                f"chunker 'cluster': target_tokens ({target_tokens}) must not exceed max_tokens ({max_tokens})"
            )

    def _load(self) -> None:
        from ragkit.text.tokenizers import get_tokenizer

        self._tokenizer = get_tokenizer(self.tokenizer)
        self._embedder = resolve_backend(self.embedder, "embedder")

    def pieces(self, text: str) -> tuple[list[tuple[int, int]], list[int]]:
        """Small pieces of ``text`` (character spans) and their token counts.

        Example:
            >>> from ragkit.testing import FakeEmbedder
            >>> text = "One two. Three four five.\\n\\nSix."
            >>> ClusterChunker(embedder=FakeEmbedder(), piece_tokens=8, max_tokens=16).pieces(text)[0]
            [(0, 25), (27, 31)]
        """
        self.warm_up()
        units, unit_tokens = sentence_units(text, self.splitter, self._tokenizer, self.piece_tokens)
        pieces = pack_pieces(text, units, unit_tokens, self.piece_tokens)
        return pieces, self._tokenizer.count_many([text[s:e] for s, e in pieces])

    def segment(self, vectors: np.ndarray, piece_tokens: Sequence[int]) -> tuple[Segmentation, float]:
        """The exact optimum for given piece embeddings; returns the segmentation and the β used."""
        max_len = max_units_within(piece_tokens, self.max_tokens)
        if self.max_pieces is not None:
            max_len = min(max_len, self.max_pieces)
        table = cluster_table(vectors, max_len, offset=self.similarity_offset)
        table = apply_constraints(table, unit_tokens=piece_tokens, max_tokens=self.max_tokens)
        if self.target_tokens is not None:
            beta, segmentation = calibrate_boundary_penalty(table, piece_tokens, self.target_tokens)
            return segmentation, beta
        return optimal_segmentation(table, boundary_penalty=self.boundary_penalty), float(self.boundary_penalty)

    def _chunk(self, doc: Document) -> list[Chunk]:
        from ragkit.chunkers._merge import cap_spans

        text = doc.text
        pieces, counts = self.pieces(text)
        if not pieces:
            return []
        vectors = np.asarray(self._embedder.embed_documents([text[s:e] for s, e in pieces]), dtype=np.float64)
        segmentation, _beta = self.segment(vectors, counts)
        spans = [(pieces[s][0], pieces[e - 1][1]) for s, e in segmentation.segments]
        chunk_counts = self._tokenizer.count_many([text[s:e] for s, e in spans])
        chunks = []
        for (s, e), (a, b), c in zip(segmentation.segments, spans, chunk_counts):
            meta = {"pieces": e - s, "cohesion": round(mean_pairwise_similarity(vectors[s:e]), 6) if e - s > 1 else None}
            parts, part_counts = [(a, b)], [c]
            if c > self.max_tokens:  # pieces cut inside a word can add a token when joined: re-split
                parts, part_counts = cap_spans(text, parts, pieces[s:e], self.max_tokens, self._tokenizer, [c])
            for (ps, pe), pc in zip(parts, part_counts):
                chunks.append(Chunk.from_span(doc, ps, pe, token_count=int(pc), metadata=meta))
        return chunks
