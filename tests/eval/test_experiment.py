"""Experiment files without models or data: parsing, checks, variants, grid expansion, overrides."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ragkit.errors import ConfigError
from ragkit.eval.experiment import (
    DEFAULT_MATCH,
    Variant,
    expand_grid,
    load_experiment,
    match_status,
    parse_grid,
    parse_match,
    parse_set,
)
from ragkit.eval.protocols import PROTOCOLS, candidates_needed, parse_protocols

BASE = {"index": {"retriever": {"type": "bm25"}}}


def _exp(**extra: object) -> dict:
    exp = {"name": "unit", "dataset": "chroma_chunking_eval", "base": BASE,
           "variants": [{"name": "token", "set": {"index.chunker": {"type": "token", "max_tokens": 200}}},
                        {"name": "sentence", "set": ["index.chunker.type=sentence"]}]}
    exp.update(extra)
    return exp


def test_defaults() -> None:
    exp = load_experiment(_exp())
    assert exp.name == "unit" and [v.name for v in exp.variants] == ["token", "sentence"]
    assert exp.datasets == [{"name": "chroma_chunking_eval", "subset": None, "limit": None}]
    assert exp.protocols == {"chroma": PROTOCOLS["chroma"], "budget": PROTOCOLS["budget"]}
    assert exp.match == {k: float(v) for k, v in DEFAULT_MATCH.items()} and exp.source is None


def test_variant_config_layers_base_then_variant_then_set() -> None:
    exp = load_experiment(_exp(), overrides=["index.chunker.max_tokens=99"])
    token, sentence = (exp.variant_config(v) for v in exp.variants)
    assert token["index"]["chunker"] == {"type": "token", "max_tokens": 99}
    assert sentence["index"]["chunker"]["type"] == "sentence" and sentence["index"]["chunker"]["max_tokens"] == 99
    assert token["index"]["retriever"] == {"type": "bm25"}
    assert token["backends"]["llm"]["default"] == {"type": "fake"}  # no LLM unless a protocol needs one
    assert BASE == {"index": {"retriever": {"type": "bm25"}}}  # the caller's mapping is not mutated


def test_grid_from_file_and_command_line_combine_in_order() -> None:
    exp = load_experiment(_exp(grid={"index.chunker.max_tokens": [64, 128]}), grid=["query.selector.k=3,5"])
    assert [v.name for v in exp.variants][:4] == [
        "token@max_tokens=64,k=3", "token@max_tokens=64,k=5", "token@max_tokens=128,k=3", "token@max_tokens=128,k=5"]
    assert len(exp.variants) == 8
    assert exp.variants[3].overrides[-2:] == [("index.chunker.max_tokens", 128), ("query.selector.k", 5)]


def test_a_command_line_grid_key_replaces_the_files() -> None:
    exp = load_experiment(_exp(grid={"index.chunker.max_tokens": [64, 128]}), grid=["index.chunker.max_tokens=32"])
    assert [v.name for v in exp.variants] == ["token@max_tokens=32", "sentence@max_tokens=32"]


def test_expand_grid_without_grid_and_unnamed_variants() -> None:
    variants = [Variant("a", [("x", 1)])]
    assert expand_grid(variants, {}) == variants
    assert [v.name for v in expand_grid([Variant("")], {"a.b": [1, 2]})] == ["b=1", "b=2"]


def test_parse_grid_and_set() -> None:
    assert parse_grid(["index.chunker.type=token,sentence"]) == {"index.chunker.type": ["token", "sentence"]}
    assert parse_grid(None) == {} and parse_grid({"k": (1, 2)}) == {"k": [1, 2]}
    for bad in ("index.chunker.max_tokens", "index.chunker.max_tokens=", "k=[1,"):
        with pytest.raises(ConfigError, match="--grid"):
            parse_grid([bad])
    assert parse_set(None, "x") == [] and parse_set("a.b=1", "x") == [("a.b", 1)]
    with pytest.raises(ConfigError, match="variants.0.set"):
        parse_set(5, "variants.0.set")
    with pytest.raises(ConfigError, match="'key=value' string"):
        parse_set([{"a": 1}], "variants.0.set")


def test_protocols() -> None:
    assert parse_protocols("evidence") == {"evidence": {"k": [1, 2, 5, 10], "rule": None}}
    assert parse_protocols({"budget": {"budget": 500}}) == {"budget": {"budget": 500, "candidates": 100}}
    assert candidates_needed(parse_protocols(["chroma"])) == 5
    assert candidates_needed(parse_protocols(["answer"])) == 1
    for spec, message in ((["chorma"], "unknown protocol 'chorma'"), ({"chroma": {"k": 10}}, "k = 5 is fixed"),
                          ({"evidence": {"k": [0]}}, "positive integers"), ({"evidence": {"rule": "x"}}, "contain"),
                          ({"budget": {"budget": -1}}, "protocols.budget.budget"), ([], "expected a list")):
        with pytest.raises(ConfigError, match=message):
            parse_protocols(spec)


def test_match() -> None:
    assert parse_match(False) is None and match_status(100.0, None) is None
    assert parse_match({"tolerance": 0.2}) == {"target_tokens": 200.0, "tolerance": 0.2}
    for bad in ({"target_tokens": 0}, {"tolerance": 1.0}, {"size": 3}, "200"):
        with pytest.raises(ConfigError, match="match"):
            parse_match(bad)
    assert match_status(180.0, {"target_tokens": 200.0, "tolerance": 0.1})["ok"] is True
    assert match_status(179.0, {"target_tokens": 200.0, "tolerance": 0.1})["ok"] is False


def test_experiment_errors_name_the_place(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'dataset' is required"):
        load_experiment({"base": BASE, "variants": [{"name": "a"}], "name": "x"})
    with pytest.raises(ConfigError, match=r"variants.1: expected a mapping with a 'name'"):
        load_experiment(_exp(variants=[{"name": "a"}, "b"]))
    with pytest.raises(ConfigError, match=r"variants.0: unknown keys \['sett'\]"):
        load_experiment(_exp(variants=[{"name": "a", "sett": {}}]))
    with pytest.raises(ConfigError, match="dataset: unknown keys"):
        load_experiment(_exp(dataset={"name": "chroma_chunking_eval", "subsets": ["x"]}))
    with pytest.raises(ConfigError, match="does not exist"):
        load_experiment(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="base: config file 'nope.yaml' does not exist"):
        load_experiment(_exp(base="nope.yaml"))
    with pytest.raises(ConfigError, match="(?s)variant 'token'.*index.chunker.max_tokens.*got 0"):
        load_experiment(_exp(), overrides=["index.chunker.max_tokens=0"])


def test_files_name_and_relative_base(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(yaml.safe_dump({"index": {"retriever": {"type": "bm25"}},
                                                        "corpus": {"paths": ["x/*.md"]}}))
    path = tmp_path / "my-exp.yaml"
    path.write_text(yaml.safe_dump({"dataset": "chroma_chunking_eval", "base": "base.yaml"}))
    exp = load_experiment(path)
    assert exp.name == "my-exp" and exp.source == path and "corpus" not in exp.base  # the dataset is the corpus
    assert [v.name for v in exp.variants] == ["base"]
    assert load_experiment(path, name="renamed").name == "renamed"


def test_pipeline_config_without_a_dataset_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pipe.yaml"
    path.write_text(yaml.safe_dump({"corpus": {"paths": ["docs/*.md"]}}))
    with pytest.raises(ConfigError, match="needs corpus.dataset"):
        load_experiment(path)
