"""Fixtures for the dataset tests: where the real shared data is (the same rule as ``tests/conftest.py``)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from ragkit.datasets import EvalDataset, Span

SHARED_DATASETS = Path(os.environ.get("RAGKIT_DATA") or Path(__file__).resolve().parents[3] / "shared" / "datasets")


@pytest.fixture(scope="session")
def shared_root() -> Path:
    """The real data root (``$RAGKIT_DATA``, else ``../shared/datasets`` next to the repository)."""
    return SHARED_DATASETS


def _gold_text(ds: EvalDataset, span: Span) -> str:
    return ds.document(span.doc_id).text[span.start:span.end]


@pytest.fixture(scope="session")
def gold_text() -> Callable[[EvalDataset, Span], str]:
    """``gold_text(ds, span)``: the document text a gold span points at."""
    return _gold_text
