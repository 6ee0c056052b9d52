"""Shared fixtures (the isolated ``RAGKIT_HOME`` is set up by the repository's root ``conftest.py``)."""

from __future__ import annotations

import pytest
from _shared_data import CHROMA, CHROMA_CORPORA


@pytest.fixture
def fresh_registry():
    from ragkit.registry import Registry

    return Registry()


@pytest.fixture(scope="session")
def chroma_texts() -> dict[str, str]:
    return {name: (CHROMA / f"{name}.md").read_text(encoding="utf-8") for name in CHROMA_CORPORA}
