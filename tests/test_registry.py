"""Registry: scoping by kind, checks at registration, lazy built-ins, entry points."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ragkit.errors import RegistrationError, UnknownComponentError
from ragkit.registry import Registry


def test_register_and_get(fresh_registry: Registry):
    @fresh_registry.register("chunker", "mine")
    class Mine:
        def chunk(self, doc):
            return []

    assert fresh_registry.get("chunker", "mine") is Mine
    fresh_registry.add("chunker", "mine", Mine)  # same class again: no-op
    with pytest.raises(RegistrationError, match="already registered"):
        fresh_registry.add("chunker", "mine", type("Other", (), {"chunk": lambda self, d: []}))


def test_names_are_scoped_by_kind(fresh_registry: Registry):
    fresh_registry.add("selector", "token", type("S", (), {"select": lambda self, q, c: c}))
    assert fresh_registry.get("selector", "token").__name__ == "S"
    assert fresh_registry.entry("chunker", "token").import_path.endswith("TokenChunker")


def test_registration_checks_required_method_and_args(fresh_registry: Registry):
    with pytest.raises(RegistrationError, match="lacks rerank"):
        fresh_registry.add("reranker", "bad", type("Bad", (), {}))

    class Star:
        def __init__(self, *args):
            pass

        def select(self, query, candidates):
            return candidates

    with pytest.raises(RegistrationError, match=r"takes \*args"):
        fresh_registry.add("selector", "star", Star)


def test_unknown_name_suggests_close_match(fresh_registry: Registry):
    with pytest.raises(UnknownComponentError, match="Did you mean 'semantic'"):
        fresh_registry.get("chunker", "semantik")


def test_listing_components_imports_no_torch():
    code = "import sys; from ragkit.registry import default_registry; r = default_registry(); " \
           "n = sum(1 for _ in r.entries()); assert 'torch' not in sys.modules, 'torch imported'; print(n)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout) > 20


def test_entry_points_are_loaded(monkeypatch: pytest.MonkeyPatch):
    from importlib import metadata

    class FakeEntryPoint:
        name = "selector:third_party"
        value = "ragkit.selectors.top_k:TopKSelector"

    monkeypatch.setattr(metadata, "entry_points", lambda group: [FakeEntryPoint()] if group == "ragkit.components" else [])
    registry = Registry()
    assert "third_party" in registry.names("selector")
