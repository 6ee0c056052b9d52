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


# ---------------------------------------------------------------- plug-in kinds (views, query prefixes, loaders)
def test_plugin_kinds_live_in_the_one_registry():
    from ragkit._builtins import PLUGIN_KINDS

    reg = Registry(entry_points=False)
    assert set(PLUGIN_KINDS) == {"view", "query_prefix", "loader"}
    assert {"content", "prefix_fusion", "tfidf_weighted", "tfidf_concat"} <= set(reg.names("view"))
    assert {"generic", "none"} <= set(reg.names("query_prefix"))
    assert {".md", ".txt", ".html", ".jsonl"} <= set(reg.names("loader"))
    assert reg.get("loader", ".md").__name__ == "load_markdown"
    assert {e.kind for e in reg.entries()}.isdisjoint(PLUGIN_KINDS)  # stage listing unchanged
    assert {"view", "loader"} <= {e.kind for e in reg.entries(plugins=True)}


def test_unknown_view_gets_the_registry_message():
    from ragkit.errors import UnknownComponentError

    with pytest.raises(UnknownComponentError, match="unknown view type 'contents'. Did you mean 'content'?"):
        Registry(entry_points=False).get("view", "contents")


def test_plugin_functions_register_and_are_checked():
    reg = Registry(builtins=False, entry_points=False)
    reg.add("query_prefix", "mine", lambda q, v: {})
    reg.add("loader", ".org", lambda path, source_id, max_bytes: [])
    assert reg.names("loader") == [".org"]
    with pytest.raises(RegistrationError, match="lacks chunk_texts"):
        reg.add("view", "bad", type("Bad", (), {}))
    reg.remove("loader", ".org")
    assert reg.names("loader") == []


def test_old_mappings_are_live_views_of_the_registry():
    from ragkit.loaders.formats import LOADERS, load_text
    from ragkit.retrievers.metadata_views import QUERY_PREFIX_BUILDERS, generic_query_metadata
    from ragkit.retrievers.views import VIEWS, ContentView

    assert VIEWS["content"] is ContentView and QUERY_PREFIX_BUILDERS["generic"] is generic_query_metadata
    assert LOADERS.get(".txt") is load_text and LOADERS.get(".nope") is None


def test_validate_rejects_an_unknown_view_with_a_suggestion():
    from ragkit.config.load import validate_config
    from ragkit.errors import ConfigError

    cfg = {"version": 1, "corpus": {"paths": ["x.md"]}, "index": {"retriever": {"type": "dense", "view": "contents"}}}
    with pytest.raises(ConfigError, match=r"index.retriever.view: .*Did you mean 'content'\?"):
        validate_config(cfg)
