"""Semantic chunking: break where adjacent sentences drift apart in embedding space, within a hard cap."""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from typing import Annotated

import numpy as np
from pydantic import Field

from ragkit.chunkers._split import CascadePacker, Span, TokenizedChunker, TokenView, check_params
from ragkit.errors import ConfigError
from ragkit.stage import EmbedderRef
from ragkit.text.sentences import SentenceSplitter, split_sentences
from ragkit.text.tokenizers import TokenizerName
from ragkit.types import Chunk, Document


class SemanticChunker(TokenizedChunker):
    """Break between sentences whose embedding distance is above a percentile, with the cap enforced.

    Each sentence is embedded together with ``buffer_size`` neighbours on each side (the verbatim
    text from the first to the last of them), and the cosine distance between consecutive windows is
    computed. Gaps whose distance is above the ``breakpoint_percentile``-th percentile of the
    document's distances become chunk boundaries. Unlike most semantic chunkers, ``max_tokens`` is a
    hard cap: a group above it is split again at its largest internal distance until every part
    fits, and a single sentence above it is split at word boundaries. Groups smaller than
    ``min_tokens`` join the neighbour they are closer to when the result still fits.
    ``chunk_many`` embeds the sentences of all documents in one batch.

    Example:
        >>> from ragkit.testing import FakeEmbedder
        >>> from ragkit.types import Document
        >>> text = "Cats purr. Cats nap. Cats purr and nap. Stocks fell. Stocks rose. Stocks fell and rose."
        >>> chunker = SemanticChunker(embedder=FakeEmbedder(), max_tokens=32, buffer_size=0, breakpoint_percentile=75)
        >>> [c.text for c in chunker.chunk(Document.from_text(text))]
        ['Cats purr. Cats nap. Cats purr and nap.', 'Stocks fell. Stocks rose. Stocks fell and rose.']
    """

    def __init__(
        self,
        *,
        embedder: EmbedderRef = "default",
        max_tokens: Annotated[int, Field(gt=0)] = 256,
        breakpoint_percentile: Annotated[float, Field(gt=0, le=100)] = 95.0,
        buffer_size: Annotated[int, Field(ge=0)] = 1,
        min_tokens: Annotated[int, Field(ge=0)] = 0,
        splitter: SentenceSplitter = "nupunkt",
        tokenizer: TokenizerName = "minilm",
    ) -> None:
        self.embedder = embedder
        self.max_tokens = max_tokens
        self.breakpoint_percentile = breakpoint_percentile
        self.buffer_size = buffer_size
        self.min_tokens = min_tokens
        self.splitter = splitter
        self.tokenizer = tokenizer
        check_params(self, max_tokens=max_tokens)
        if min_tokens > max_tokens:
            raise ConfigError(
                f"SemanticChunker: min_tokens ({min_tokens}) must not exceed max_tokens ({max_tokens})",
                [("min_tokens", f"{min_tokens} > max_tokens {max_tokens}", None)],
            )

    def _load(self) -> None:
        super()._load()
        if isinstance(self.embedder, str):
            raise ConfigError(
                f"SemanticChunker needs an embedder instance; got the unresolved reference {self.embedder!r}. "
                "Build it through a Pipeline/config (which resolves backend names) or pass embedder=<Embedder>."
            )
        warm = getattr(self.embedder, "warm_up", None)
        if callable(warm):
            warm()

    # ------------------------------------------------------------------ public
    def _chunk_batch(self, docs: Sequence[Document]) -> list[list[Chunk]]:
        """Embed the sentence windows of all documents in one batch, then cut each document."""
        prepared = [self._prepare(doc) for doc in docs]
        vectors = self._embed([w for p in prepared for w in p[2]])
        out: list[list[Chunk]] = []
        offset = 0
        for doc, (view, sentences, doc_windows) in zip(docs, prepared):
            doc_vectors = vectors[offset:offset + len(doc_windows)]
            offset += len(doc_windows)
            out.append(self._chunk_prepared(doc, view, sentences, doc_vectors))
        return out

    def _chunk(self, doc: Document) -> list[Chunk]:
        view, sentences, windows = self._prepare(doc)
        return self._chunk_prepared(doc, view, sentences, self._embed(windows))

    # ------------------------------------------------------------------ steps
    def _prepare(self, doc: Document) -> tuple[TokenView, list[Span], list[str]]:
        view = self._view(doc)
        sentences = split_sentences(doc.text, self.splitter)
        if len(sentences) < 2:
            return view, sentences, []
        b = self.buffer_size
        n = len(sentences)
        windows = [doc.text[sentences[max(0, i - b)][0]:sentences[min(n - 1, i + b)][1]] for i in range(n)]
        return view, sentences, windows

    def _embed(self, windows: Sequence[str]) -> np.ndarray:
        if not windows:
            return np.zeros((0, 1), dtype=np.float32)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            vectors = np.asarray(self.embedder.embed_documents(list(windows)), dtype=np.float64)
        for warning in caught:
            if type(warning.message).__name__ == "TruncationWarning":  # about sentence windows, not chunks
                found = re.search(r"^(\d+) of (\d+) texts exceed the embedding model's limit of (\d+)", str(warning.message))
                over, total, limit = found.groups() if found else ("some", str(len(windows)), "?")
                warnings.warn(f"semantic: {over} of {total} sentence windows (a sentence with buffer_size={self.buffer_size} "
                              f"neighbours each side) exceed the embedding model's limit of {limit} word pieces; their "
                              "distances use only the first part. Lower buffer_size; max_tokens (the chunk cap, "
                              f"{self.max_tokens}) does not change this.", type(warning.message), stacklevel=3)
            else:
                warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1.0, norms)

    def _chunk_prepared(self, doc: Document, view: TokenView, sentences: list[Span], vectors: np.ndarray) -> list[Chunk]:
        packer = CascadePacker(view, [], max_tokens=self.max_tokens)
        if len(sentences) < 2:
            return self._finalize(doc, view, packer.split())
        distances = 1.0 - np.einsum("ij,ij->i", vectors[:-1], vectors[1:])
        threshold = float(np.percentile(distances, self.breakpoint_percentile))
        breaks = [i + 1 for i in np.flatnonzero(distances > threshold).tolist()]
        # Sentence k covers [bounds[k], bounds[k+1]); gaps between sentences go to the earlier one.
        bounds = [0, *[s for s, _e in sentences[1:]], len(doc.text)]
        token_at = view.index(np.asarray(bounds)).tolist()
        groups = self._capped_groups([0, *breaks, len(sentences)], token_at, distances)
        if self.min_tokens:
            groups = self._merge_small(groups, token_at, distances)
        spans: list[Span] = []
        for a, b in groups:
            start, end = bounds[a], bounds[b]
            if token_at[b] - token_at[a] > self.max_tokens:  # a single sentence above the cap
                spans.extend(packer.split(start, end))
            else:
                spans.append((start, end))
        return self._finalize(doc, view, spans)

    def _capped_groups(self, cuts: list[int], token_at: list[int], distances: np.ndarray) -> list[tuple[int, int]]:
        """Sentence ranges ``[a, b)`` between ``cuts``, re-split at their largest internal distance while above the cap."""
        out: list[tuple[int, int]] = []
        stack = [(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a][::-1]
        while stack:
            a, b = stack.pop()
            if token_at[b] - token_at[a] <= self.max_tokens or b - a == 1:
                out.append((a, b))
                continue
            split = a + 1 + int(np.argmax(distances[a:b - 1]))  # distances[k] is the gap before sentence k+1
            stack.append((split, b))
            stack.append((a, split))
        return out

    def _merge_small(self, groups: list[tuple[int, int]], token_at: list[int], distances: np.ndarray) -> list[tuple[int, int]]:
        """Join groups below ``min_tokens`` to their closer neighbour while the result fits the cap."""
        groups = list(groups)
        k = 0
        while k < len(groups) and len(groups) > 1:
            a, b = groups[k]
            options = []
            if token_at[b] - token_at[a] < self.min_tokens:
                if k > 0 and token_at[b] - token_at[groups[k - 1][0]] <= self.max_tokens:
                    options.append((float(distances[a - 1]), k - 1))
                if k + 1 < len(groups) and token_at[groups[k + 1][1]] - token_at[a] <= self.max_tokens:
                    options.append((float(distances[b - 1]), k + 1))
            if not options:
                k += 1
                continue
            _distance, other = min(options)
            lo, hi = min(k, other), max(k, other)
            groups[lo:hi + 1] = [(groups[lo][0], groups[hi][1])]
            k = lo  # the merged group may still be small
        return groups
