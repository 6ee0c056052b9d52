"""The windowing plan behind token_logprobs: every token scored once, context bounded, fresh positions."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ragkit.llm.base import Window, plan_windows, split_per_segment


@given(n=st.integers(0, 400), context=st.integers(1, 64), stride=st.floats(0.05, 1.0))
def test_every_token_scored_once_with_bounded_context(n: int, context: int, stride: float) -> None:
    windows = plan_windows(n, context, stride)
    scored = []
    for w in windows:
        assert 0 <= w.start < w.score_from <= w.end <= n
        assert w.end - w.start <= context + 1                     # at most `context` tokens before any token
        scored.extend(range(w.score_from, w.end))
    assert scored == list(range(1, n))                            # token 0 has no prediction; others once, in order
    if n <= context + 1:
        assert windows == ([Window(0, n, 1)] if n else [])        # short texts: one pass


@given(n=st.integers(2, 400), context=st.integers(2, 64))
def test_later_windows_keep_at_least_half_the_context(n: int, context: int) -> None:
    length = context + 1
    for w in plan_windows(n, context, 0.5)[1:]:
        assert w.score_from - w.start >= length - round(0.5 * length)


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="max_context"):
        plan_windows(10, 0)
    with pytest.raises(ValueError, match="stride"):
        plan_windows(10, 4, 0.0)


def test_split_per_segment() -> None:
    parts = split_per_segment(np.arange(6.0), [2, 0, 4])
    assert [p.tolist() for p in parts] == [[0.0, 1.0], [], [2.0, 3.0, 4.0, 5.0]]
