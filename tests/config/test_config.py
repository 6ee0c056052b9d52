"""Config loading: normalisation, round trip, overrides and error messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from ragkit.config.load import apply_overrides, load_config, parse_override
from ragkit.errors import ConfigError, UnknownComponentError
from ragkit.pipeline import Pipeline

REPO = Path(__file__).resolve().parents[2]
FAKE_BACKENDS = {"llm": {"default": {"type": "fake"}}, "embeddings": {"default": {"type": "fake"}}}


def test_defaults_are_filled_in():
    cfg = load_config({})
    assert cfg["version"] == 1
    assert cfg["index"]["chunker"]["type"] == "recursive"
    assert cfg["index"]["chunker"]["max_tokens"] == 256
    assert cfg["query"]["selector"] == {"type": "top_k", "k": 5}
    assert cfg["backends"]["llm"]["default"]["type"] == "transformers"


def test_round_trip_is_stable():
    pipe = Pipeline.from_config({"backends": FAKE_BACKENDS, "index": {"chunker": {"type": "token", "max_tokens": 50}}})
    again = Pipeline.from_config(pipe.to_config())
    assert again.to_config() == pipe.to_config()


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_validate_and_round_trip(path: Path):
    cfg = load_config(path)
    assert load_config(cfg) == cfg


def test_overrides_parse_yaml_values():
    assert parse_override("index.chunker.max_tokens=128") == ("index.chunker.max_tokens", 128)
    assert parse_override("query.retrieve.filter={lang: en}") == ("query.retrieve.filter", {"lang": "en"})
    data = apply_overrides({"index": {"chunker": {"type": "token"}}}, ["index.chunker.max_tokens=64"])
    assert data["index"]["chunker"]["max_tokens"] == 64
    cfg = load_config({"backends": FAKE_BACKENDS}, ["index.chunker.type=token", "query.selector.k=3"])
    assert cfg["index"]["chunker"]["type"] == "token" and cfg["query"]["selector"]["k"] == 3


def test_override_without_equals_is_explained():
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_override("index.chunker.max_tokens")


def test_every_problem_reported_with_path_value_and_line(tmp_path: Path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "version: 1\n"
        "index:\n"
        "  chunker: {type: recursiv, max_tokens: 128}\n"
        "query:\n"
        "  selector:\n"
        "    type: top_k\n"
        "    k: -3\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "2 problems" in message
    assert "index.chunker.type (line 3)" in message and "'recursiv'" in message and "Did you mean 'recursive'" in message
    assert "query.selector.k (line 7)" in message and "-3" in message
    assert {p[0] for p in info.value.problems} == {"index.chunker.type", "query.selector.k"}


def test_schema_and_stage_problems_are_reported_together(tmp_path: Path):
    # a negative retrieve.k fails the top-level schema; the misspelled stage types must still be reported
    path = tmp_path / "bad.yaml"
    path.write_text(
        "version: 1\n"
        "backends:\n"
        "  llm: {default: {type: fak}}\n"
        "index:\n"
        "  chunker: {type: recursiv, max_tokens: 128}\n"
        "query:\n"
        "  retrieve: {k: -5}\n"
        "  selector: {type: top_k, k: 0}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    problems = info.value.problems
    assert [p[0] for p in problems] == ["backends.llm.default.type", "index.chunker.type", "query.retrieve.k",
                                        "query.selector.k"]                      # in file order
    assert [p[2] for p in problems] == [3, 5, 7, 8]
    message = str(info.value)
    assert "4 problems" in message and "(got -5)" in message and "'recursiv'" in message and "'fak'" in message


def test_schema_failure_does_not_invent_backend_problems():
    # backends left out get the defaults, so references to 'default' stay valid while another key is wrong
    with pytest.raises(ConfigError) as info:
        load_config({"index": {"chunker": {"type": "recursiv"}, "embedder": "default"},
                     "query": {"retrieve": {"k": -5}, "aggregator": {"type": "stuff", "llm": "default"}}})
    assert {p[0] for p in info.value.problems} == {"index.chunker.type", "query.retrieve.k"}


def test_unknown_keys_are_errors():
    with pytest.raises(ConfigError, match=r"index.chunker.max_tokns: unknown parameter"):
        load_config({"index": {"chunker": {"type": "token", "max_tokns": 5}}})
    with pytest.raises(ConfigError, match=r"indx: unknown parameter"):
        load_config({"indx": {}})


def test_malformed_yaml_names_line(tmp_path: Path):
    path = tmp_path / "broken.yaml"
    path.write_text("index:\n  chunker: {type: token\nquery: [\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"line \d+: malformed YAML"):
        load_config(path)


def test_yaml_tags_are_refused(tmp_path: Path):
    path = tmp_path / "tag.yaml"
    path.write_text("index: !!python/object/apply:os.system ['true']\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"line 1: YAML tag '!!python/object/apply:os.system' is not allowed"):
        load_config(path)


@pytest.mark.parametrize(("text", "message"), [
    ("a: !!binary aGVsbG8=\n", "YAML tag '!!binary' is not allowed"),
    ("a: !!set {x, y}\n", "YAML tag '!!set' is not allowed"),
    ("index: {store: a}\nindex: {store: b}\n", "line 2: duplicate key 'index'"),
    ("a: &a [*a]\n", "recursive alias"),
    ("a: " + "9" * 5000 + "\n", "an integer with 5000 digits"),
    ("a: " + "[" * 2000 + "]" * 2000 + "\n", "nests too deeply|nesting deeper than"),
    ("a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
     "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n",
     "expands to more than 100,000 values"),
])
def test_hostile_yaml_is_a_clean_config_error(tmp_path: Path, text: str, message: str):
    """Issue 13 (6, 7, 13): alias bombs, recursive aliases, deep nesting, huge integers, duplicate keys and
    tags used to hang, crash with a traceback or pass silently; each is now one ConfigError with a line."""
    path = tmp_path / "hostile.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_unknown_backend_reference():
    with pytest.raises(ConfigError, match=r"query.aggregator.llm: refers to llm backend 'big'"):
        load_config({"backends": FAKE_BACKENDS, "query": {"aggregator": {"type": "stuff", "llm": "big"}}})


def test_unknown_component_error_lists_choices(fresh_registry):
    with pytest.raises(UnknownComponentError, match="Registered chunker types: .*recursive"):
        fresh_registry.get("chunker", "nope")


def test_cache_mode_off_survives_yaml_booleans(tmp_path: Path):
    # YAML 1.1 parses a bare `off` as false, in files and in --set values alike
    assert load_config({}, overrides=["cache.mode=off"])["cache"]["mode"] == "off"
    path = tmp_path / "c.yaml"
    path.write_text("cache: {mode: off}\n", encoding="utf-8")
    assert load_config(path)["cache"]["mode"] == "off"
    with pytest.raises(ConfigError, match="cache.mode"):
        load_config({}, overrides=["cache.mode=on"])


@pytest.mark.parametrize(("config", "path", "message"), [
    ({"index": {"chunker": {"type": "token", "max_tokens": 10, "overlap_tokens": 10}}},
     "index.chunker", "overlap_tokens \\(10\\) must be smaller"),
    ({"query": {"retrieve": {"filter": {"year": {"gtee": 3}}}}}, "query.retrieve.filter", "unknown filter operator 'gtee'"),
    ({"index": {"retriever": {"type": "hybrid", "view": "prefix_fusion", "view_options": {"max_prefix_chars": -1}}}},
     "index.retriever", "max_prefix_chars must be an integer >= 0"),
])
def test_validate_catches_what_the_run_would_refuse(config, path, message):
    """Issue 13 (13): these passed `ragkit validate` and failed `ragkit run`."""
    with pytest.raises(ConfigError, match=message) as info:
        load_config(config)
    assert path in {p[0] for p in info.value.problems}
