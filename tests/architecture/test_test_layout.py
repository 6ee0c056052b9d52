"""Test modules need unique basenames: ``tests/`` has no ``__init__.py`` files (pytest's rootdir imports)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_test_module_basenames_are_unique():
    names = Counter(p.name for p in TESTS.rglob("*.py") if p.name != "conftest.py")
    assert not [n for n, count in names.items() if count > 1], "two test files share a basename"
