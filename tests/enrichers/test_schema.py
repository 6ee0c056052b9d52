"""Metadata schemas: profiles, YAML field lists, pydantic models, validation and clear errors."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel, Field

from ragkit.config.load import load_config
from ragkit.enrichers.schema import CONTENT_TYPES, MetadataField, MetadataSchema
from ragkit.errors import ConfigError
from ragkit.llm.base import validation_error
from ragkit.testing.fakes import example_from_schema, seeded_rng


def test_default_profile_has_the_generic_fields():
    schema = MetadataSchema.profile("default")
    assert schema.names == ["content_type", "keywords", "entities", "summary", "intents", "potential_questions"]
    js = schema.json_schema()
    assert js["required"] == schema.names and js["additionalProperties"] is False
    assert js["properties"]["content_type"]["enum"] == list(CONTENT_TYPES)
    assert js["properties"]["intents"]["items"]["enum"][0] == "How-To"


def test_compact_profile_is_small():
    schema = MetadataSchema.profile("compact")
    assert len(schema.names) <= 6 and schema.max_tokens <= 96
    for name, prop in schema.json_schema()["properties"].items():
        if prop["type"] == "string" and "enum" not in prop:
            assert prop["maxLength"] <= 80, name
        if prop["type"] == "array":
            assert prop["maxItems"] <= 3 and prop["items"]["maxLength"] <= 24, name


def test_yaml_field_list_builds_schema_and_validates():
    schema = MetadataSchema.from_fields([
        {"name": "content_type", "type": "enum", "values": ["Procedural", "Conceptual"]},
        {"name": "keywords", "type": "list", "max_items": 2, "max_length": 10},
        {"name": "audience", "type": "list", "values": ["admin", "user"]},
        {"name": "has_code", "type": "bool"},
        {"name": "year", "type": "int"},
        {"name": "title", "type": "string", "max_length": 20, "description": "a title"},
    ])
    props = schema.json_schema()["properties"]
    assert props["keywords"] == {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 10},
                                 "maxItems": 2}
    assert props["audience"]["items"]["enum"] == ["admin", "user"]
    value = schema.validate({"content_type": "Procedural", "keywords": [" a  b ", "A B", "c", "d"],
                             "audience": ["admin"], "has_code": False, "year": 2024, "title": "  x  "})
    assert value["keywords"] == ["a b", "c"] and value["title"] == "x"
    assert "- title: a title\n" in schema.prompt_fields() + "\n"
    assert "- audience: audience; up to 2 of admin, user" in schema.prompt_fields()
    assert "- keywords: keywords (up to 2)" in schema.prompt_fields()
    with pytest.raises(ValueError, match="content_type: 'Essay' is not one of"):
        schema.validate({**value, "content_type": "Essay"})
    with pytest.raises(ValueError, match=r"missing field\(s\) \['year'\]"):
        schema.validate({k: v for k, v in value.items() if k != "year"})
    with pytest.raises(ValueError, match=r"unexpected field\(s\) \['extra'\]"):
        schema.validate({**value, "extra": 1})
    with pytest.raises(ValueError, match="audience: 'root' is not one of"):
        schema.validate({**value, "audience": ["root"]})
    with pytest.raises(ValueError, match="year: expected an integer"):
        schema.validate({**value, "year": True})
    with pytest.raises(ValueError, match="not valid JSON"):
        schema.parse('{"content_type": ')


@pytest.mark.parametrize("field, message", [
    ({"name": "kind", "type": "enum"}, "type enum needs values"),
    ({"name": "a.b", "type": "string"}, "is not allowed: use letters"),
    ({"name": "x", "type": "tuple"}, "type 'tuple' is not allowed; allowed: string, enum"),
    ({"name": "x", "type": "string", "max_items": 3}, "max_items/min_items apply to list fields only"),
    ({"name": "x", "type": "list", "max_items": 0}, "max_items must be >= 1"),
    ({"name": "x", "type": "enum", "values": ["a", "a"]}, "contain duplicates"),
    ({"name": "x", "type": "string", "maxlen": 3}, r"unknown key\(s\) \['maxlen'\]"),
    ({"type": "string"}, "a field needs name and type"),
])
def test_bad_fields_are_reported(field, message):
    with pytest.raises(ConfigError, match=message):
        MetadataSchema.from_fields([field])


def test_duplicate_names_and_unknown_profile():
    with pytest.raises(ConfigError, match=r"duplicate field name\(s\) \['a'\]"):
        MetadataSchema.from_fields([{"name": "a", "type": "string"}, {"name": "a", "type": "int"}])
    with pytest.raises(ConfigError, match="unknown metadata schema profile 'tiny'; available: default, compact"):
        MetadataSchema.profile("tiny")


def test_pydantic_model_schema():
    class Legal(BaseModel):
        clause_type: str = Field(description="kind of clause")
        parties: list[str] = Field(max_length=3)

    schema = MetadataSchema.resolve(model=Legal)
    assert schema.names == ["clause_type", "parties"] and schema.model is Legal
    assert "- clause_type: kind of clause" in schema.prompt_fields()
    assert schema.validate({"clause_type": "term", "parties": ["A"]}) == {"clause_type": "term", "parties": ["A"]}
    with pytest.raises(ValueError, match="parties"):
        schema.validate({"clause_type": "term", "parties": ["A", "B", "C", "D"]})


@pytest.mark.parametrize("profile", ["default", "compact"])
def test_schema_instances_from_the_json_schema_validate(profile):
    """What a constrained decoder can emit (any instance of the JSON schema) passes our validation."""
    schema = MetadataSchema.profile(profile)
    for seed in range(20):
        value = example_from_schema(schema.json_schema(), seeded_rng("schema", profile, seed))
        assert validation_error(json.dumps(value), schema.json_schema()) is None
        assert schema.validate(value).keys() == value.keys()


def test_config_accepts_field_lists_and_reports_bad_ones():
    base = {"backends": {"llm": {"default": {"type": "fake"}}, "embeddings": {"default": {"type": "fake"}}}}
    fields = [{"name": "content_type", "type": "enum", "values": ["A", "B"]},
              {"name": "keywords", "type": "list", "max_items": 5}]
    cfg = load_config({**base, "index": {"enrichers": [{"type": "llm_metadata", "fields": fields}]}})
    enricher = cfg["index"]["enrichers"][0]
    assert enricher["fields"] == fields and enricher["profile"] == "default" and enricher["key"] == "llm"
    bad = [{"name": "keywords", "type": "lst"}]
    with pytest.raises(ConfigError, match=r"index\.enrichers\.0\.fields\.0\.type"):
        load_config({**base, "index": {"enrichers": [{"type": "llm_metadata", "fields": bad}]}})
    with pytest.raises(ConfigError, match=r"index\.enrichers\.0\.profile"):
        load_config({**base, "index": {"enrichers": [{"type": "llm_metadata", "profile": "tiny"}]}})


def test_field_round_trip():
    field = MetadataField("tags", "list", max_items=3, max_length=20, description="tags")
    assert MetadataField.from_dict(field.to_dict()) == field


def test_config_reports_semantic_field_errors_with_their_path():
    base = {"backends": {"llm": {"default": {"type": "fake"}}, "embeddings": {"default": {"type": "fake"}}}}
    bad = [{"name": "kind", "type": "enum"}]
    with pytest.raises(ConfigError, match=r"index\.enrichers\.0\.fields: .*type enum needs values"):
        load_config({**base, "index": {"enrichers": [{"type": "llm_metadata", "fields": bad}]}})
