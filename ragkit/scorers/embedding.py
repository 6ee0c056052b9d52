"""``embedding`` scorer: cosine between the query's and each text's embedding.

The cheapest scorer (one ``embed_documents`` call per batch, no LLM). It judges a text by one vector,
so it is additive-ish and blind to order; a selector searching chunk *combinations* gets more from
``query_likelihood`` or a cross-encoder.

**Truncation.** A bi-encoder reads at most its window (MiniLM: 256 word pieces, special tokens
included) and silently drops the rest. A concatenation of chunks longer than the window is scored
on its first chunks only: every combination sharing the same first ~256 tokens gets the same score,
whatever follows, so under this scorer adding a chunk beyond the window never changes a set's score
and ``corag`` sees a flat landscape past it. The scorer warns (:class:`EmbeddingWindowWarning`) when a
text exceeds the embedder's window, if the embedder can tell (``token_lengths`` and
``max_seq_length_``); use budgets within the window, or a scorer with a longer context.

Example:
    >>> from ragkit.testing.fakes import FakeEmbedder
    >>> from ragkit.types import Query
    >>> scorer = EmbeddingScorer(embedder=FakeEmbedder(dimension=32))
    >>> s = scorer.score(Query.from_text("green pears"), ["green pears.", "red apples."])
    >>> bool(s[0] > s[1])
    True
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

from ragkit.errors import RagkitWarning
from ragkit.scorers._build import UsesBackends
from ragkit.scorers.base import Scorer
from ragkit.stage import EmbedderRef
from ragkit.types import Query


class EmbeddingWindowWarning(RagkitWarning):
    """A scored text is longer than the embedder's window: only its beginning was scored."""


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


class EmbeddingScorer(UsesBackends, Scorer):
    """``cos(embed_query(q), embed_documents(text))`` for each text (one embedding call per batch).

    Args:
        embedder: the embedding backend (a name in a config, an instance in Python; ``"default"``
            outside a pipeline is the packaged MiniLM).

    Example:
        >>> EmbeddingScorer().embedder
        'default'
    """

    def __init__(self, *, embedder: EmbedderRef = "default") -> None:
        self.embedder = embedder

    def _load(self) -> None:
        self.embedder_ = self._resolve(self.embedder, "embedder")

    def _check_window(self, texts: Sequence[str]) -> None:
        embedder = self.embedder_
        lengths_of = getattr(embedder, "token_lengths", None)
        if not callable(lengths_of):
            return
        lengths = lengths_of(list(texts))  # loads the model if needed, which sets max_seq_length_
        limit = int(getattr(embedder, "max_seq_length_", 0) or 0)
        over = [n for n in lengths if limit and n > limit]
        if over:
            warnings.warn(
                f"embedding scorer: {len(over)} of {len(texts)} texts exceed the embedder's window of {limit} "
                f"tokens (longest {max(over)}); only their first {limit} tokens are scored, so combinations "
                "that differ after that point get the same score. Lower the selector's budget or use a "
                "scorer with a longer context (query_likelihood, cross_encoder).",
                EmbeddingWindowWarning, stacklevel=3)

    def score(self, query: Query, texts: Sequence[str]) -> np.ndarray:
        """Cosine similarity of the query with each text, shape ``(len(texts),)``."""
        self.warm_up()
        texts = list(texts)
        if not texts:
            return np.zeros(0, dtype=np.float64)
        self._check_window(texts)
        q = _unit(np.asarray(self.embedder_.embed_query(query.text), dtype=np.float64).reshape(-1))
        docs = _unit(np.asarray(self.embedder_.embed_documents(texts), dtype=np.float64))
        return docs @ q
