"""Nested scorer specs: names, mappings and instances; collaborators from the context or inline specs."""

from __future__ import annotations

import pytest

from ragkit.errors import ConfigError, UnknownComponentError
from ragkit.scorers._build import build_scorer, resolve_collaborator
from ragkit.scorers.embedding import EmbeddingScorer
from ragkit.testing.fakes import FakeEmbedder
from ragkit.types import Query


def test_name_mapping_and_instance():
    emb = FakeEmbedder(dimension=8)
    assert type(build_scorer("embedding", embedder=emb)).__name__ == "EmbeddingScorer"
    scorer = build_scorer({"type": "llm_yes", "normalize": False})
    assert scorer.normalize is False and scorer.llm == "default"  # nothing resolved until used
    instance = EmbeddingScorer(embedder=emb)
    assert build_scorer(instance) is instance


def test_context_embedder_replaces_default_only():
    emb, other = FakeEmbedder(dimension=8), FakeEmbedder(dimension=4)
    assert build_scorer({"type": "embedding"}, embedder=emb).embedder is emb
    assert build_scorer({"type": "embedding", "embedder": other}, embedder=emb).embedder is other


def test_inline_backend_spec_is_built_and_wrapped():
    scorer = build_scorer({"type": "embedding", "embedder": {"type": "fake", "dimension": 8}})
    assert scorer.score(Query.from_text("q"), ["q", "x"]).shape == (2,)
    assert type(scorer.embedder_).__name__ == "CachedEmbedder"
    llm = resolve_collaborator({"type": "fake"}, "llm", cache_mode="off")
    assert type(llm).__name__ == "CachedLLM"


def test_errors_name_the_path():
    with pytest.raises(UnknownComponentError):
        build_scorer({"type": "nope"})
    with pytest.raises(ConfigError, match=r"sel\.scorer"):
        build_scorer({"type": "embedding", "bogus": 1}, path="sel.scorer")
    with pytest.raises(ConfigError, match="scorer"):
        build_scorer(42)
    with pytest.raises(ConfigError, match="only a pipeline config"):
        resolve_collaborator("my_llm", "llm")
