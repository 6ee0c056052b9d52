"""Fixtures for index-store tests: a fresh registry with the counting chunker."""

from __future__ import annotations

import pytest
from store_helpers import CountingLineChunker

from ragkit.registry import Registry


@pytest.fixture
def registry():
    CountingLineChunker.calls = 0
    CountingLineChunker.fail_at = None
    reg = Registry()
    reg.add("chunker", "lines", CountingLineChunker)
    return reg
