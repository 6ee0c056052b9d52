"""embedding scorer: cosine of query and text embeddings; warns past the embedder's window."""

from __future__ import annotations

import numpy as np
import pytest

from ragkit.scorers.embedding import EmbeddingScorer, EmbeddingWindowWarning
from ragkit.testing.fakes import FakeEmbedder
from ragkit.types import Query

Q = Query.from_text("green pears")


def test_cosine_ranks_the_matching_text_first_and_is_in_range():
    scores = EmbeddingScorer(embedder=FakeEmbedder(dimension=32)).score(Q, ["green pears.", "red apples.", ""])
    assert scores.shape == (3,) and scores[0] > scores[1]
    assert np.all(scores <= 1.0 + 1e-9) and np.all(scores >= -1.0 - 1e-9)


class Windowed(FakeEmbedder):
    max_seq_length_ = 5

    def token_lengths(self, texts):
        return [len(t.split()) + 2 for t in texts]


def test_warns_when_a_text_exceeds_the_window():
    scorer = EmbeddingScorer(embedder=Windowed(dimension=16))
    with pytest.warns(EmbeddingWindowWarning, match="1 of 2 texts exceed the embedder's window of 5"):
        scorer.score(Q, ["two words", "this text has far too many words"])


def test_no_warning_without_window_information(recwarn):
    EmbeddingScorer(embedder=FakeEmbedder(dimension=16)).score(Q, ["a " * 1000])
    assert not [w for w in recwarn if issubclass(w.category, EmbeddingWindowWarning)]


def test_constructor_does_no_resolution():
    assert EmbeddingScorer().embedder == "default"
    assert EmbeddingScorer().get_params() == {"embedder": "default"}
