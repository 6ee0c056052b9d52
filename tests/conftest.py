"""Shared fixtures (the isolated ``RAGKIT_HOME`` is set up by the repository's root ``conftest.py``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = Path(os.environ.get("RAGKIT_DATA") or REPO.parent / "shared" / "datasets")
CHROMA = SHARED_DATASETS / "chroma_chunking_eval"
CHROMA_CORPORA = ["chatlogs", "finance", "pubmed", "state_of_the_union", "wikitexts"]


@pytest.fixture
def fresh_registry():
    from ragkit.registry import Registry

    return Registry()


@pytest.fixture(scope="session")
def chroma_texts() -> dict[str, str]:
    return {name: (CHROMA / f"{name}.md").read_text(encoding="utf-8") for name in CHROMA_CORPORA}
