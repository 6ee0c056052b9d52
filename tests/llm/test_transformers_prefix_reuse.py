"""The transformers backend's shared-prefix path (KV cache of a prefix common to a batch) on SmolLM2."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow

PARENT = ("Passage: The Eiffel Tower is a wrought-iron lattice tower on the Champ de Mars in Paris, France. "
          "It is named after the engineer Gustave Eiffel, whose company designed and built the tower from 1887 "
          "to 1889.\n\n")
CHILDREN = ["Paris is the capital of France.", "Bees make honey in hives; they are busy insects.",
            "The tower is 330 metres tall and was the tallest structure in the world until 1930."]
TAIL = "\nPlease write a question based on this passage.\nQuestion:"


def _docs():
    return [[PARENT + child + TAIL, " How tall is the Eiffel Tower?"] for child in CHILDREN]


@pytest.fixture
def plain_and_shared(smollm):
    smollm.prefix_reuse = False
    try:
        plain = smollm.token_logprobs_batch(_docs())
        plain_stats = dict(smollm.last_scoring_stats)
    finally:
        del smollm.prefix_reuse                      # back to the class default (on)
    shared = smollm.token_logprobs_batch(_docs())
    return plain, plain_stats, shared, dict(smollm.last_scoring_stats)


def test_shared_prefix_equals_the_plain_path(plain_and_shared):
    plain, _, shared, _ = plain_and_shared
    for a, b in zip(plain, shared):
        assert [x.shape for x in a] == [x.shape for x in b]
        for x, y in zip(a, b):
            assert np.isnan(x[0]) == np.isnan(y[0])
            np.testing.assert_allclose(x, y, atol=2e-4, equal_nan=True)


def test_shared_prefix_runs_the_prefix_once_and_records_only_what_ran(plain_and_shared, smollm):
    _, plain_stats, _, stats = plain_and_shared
    n = stats["prefix_tokens"]
    assert n >= smollm.prefix_min_tokens
    assert stats["tokens_processed"] == plain_stats["tokens_processed"] - n * (len(CHILDREN) - 1)
    assert stats["prefix_tokens_reused"] == n * (len(CHILDREN) - 1)


def test_no_common_prefix_or_a_single_document_takes_the_plain_path(smollm):
    smollm.token_logprobs_batch([["Alpha beta gamma.", " Delta."], ["Zeta eta theta.", " Iota."]])
    assert "prefix_tokens" not in smollm.last_scoring_stats
    smollm.token_logprobs_batch(_docs()[:1])
    assert "prefix_tokens" not in smollm.last_scoring_stats
