"""cross_encoder: the CrossEncoder code path on a locally built model (no cross-encoder is packaged)."""

from __future__ import annotations

import pytest

from ragkit.errors import BackendError
from ragkit.scorers.cross_encoder import CrossEncoderScorer
from ragkit.types import Query


def test_constructor_does_no_io():
    scorer = CrossEncoderScorer(model="/does/not/exist")
    assert scorer.model_source() == "/does/not/exist" and scorer.batch_size == 32


@pytest.fixture(scope="module")
def local_cross_encoder(tmp_path_factory):
    """MiniLM's packaged weights as a CrossEncoder with a fresh 1-label head, saved to a temp folder."""
    import torch
    from sentence_transformers import CrossEncoder

    from ragkit.embeddings.sentence_transformers import packaged_minilm_path

    torch.manual_seed(0)
    model = CrossEncoder(str(packaged_minilm_path()), num_labels=1, device="cpu")
    folder = tmp_path_factory.mktemp("cross_encoder")
    model.save(str(folder))
    return folder


@pytest.mark.slow
def test_local_cross_encoder_scores_pairs_deterministically(local_cross_encoder):
    texts = ["Rome is the capital of Italy.", "Plants use light.", "Sushi."]
    query = Query.from_text("What is the capital of Italy?")
    a = CrossEncoderScorer(model=str(local_cross_encoder), device="cpu").score(query, texts)
    b = CrossEncoderScorer(model=str(local_cross_encoder), device="cpu").score(query, texts)
    assert a.shape == (3,) and (a == b).all()  # random head: meaningless but deterministic once saved
    assert CrossEncoderScorer(model=str(local_cross_encoder)).score(query, []).shape == (0,)


def test_missing_local_model_is_a_backend_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BackendError, match="No cross-encoder is packaged"):
        CrossEncoderScorer(model=str(empty), device="cpu").score(Query.from_text("q"), ["x"])
