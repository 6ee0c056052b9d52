"""Versioned prompt templates."""

from __future__ import annotations

import pytest

from ragkit.errors import ConfigError
from ragkit.llm.prompts import PromptTemplate

T = PromptTemplate("metadata", 3, 'Text: {text}\nReply like {"title": "..."} for {who}.', system="You are {who}.")


def test_render_fills_placeholders_and_leaves_json_braces() -> None:
    assert T.render(text="cats", who="Bob") == 'Text: cats\nReply like {"title": "..."} for Bob.'
    assert T.variables == {"text", "who"}


def test_missing_and_unexpected_variables_are_errors() -> None:
    with pytest.raises(ConfigError, match=r"metadata@3: missing \['who'\]"):
        T.render(text="x")
    with pytest.raises(ConfigError, match=r"unexpected \['extra'\]"):
        T.render(text="x", who="y", extra=1)


def test_request_carries_template_version_and_settings() -> None:
    req = T.request(text="x", who="Ann", max_tokens=12, temperature=0.0)
    assert req.template_version == "metadata@3"
    assert req.messages[0] == {"role": "system", "content": "You are Ann."}
    assert req.max_tokens == 12
    assert req.to_dict()["template_version"] == "metadata@3"
    bumped = PromptTemplate("metadata", 4, T.text, T.system).request(text="x", who="Ann", max_tokens=12)
    assert bumped.to_dict() != req.to_dict()           # a new version is a new cache key
    assert T.prompt_request(text="x", who="Ann").prompt.startswith("You are Ann.\n\n")


def test_from_file(tmp_path) -> None:
    path = tmp_path / "intent.prompt"
    path.write_text("name: intent\nversion: 2\nsystem: Be brief.\n---\nIntents of:\n{text}\n", encoding="utf-8")
    template = PromptTemplate.from_file(path)
    assert (template.key, template.system, template.render(text="a")) == ("intent@2", "Be brief.", "Intents of:\na")
    (tmp_path / "bad.prompt").write_text("no header", encoding="utf-8")
    with pytest.raises(ConfigError, match="---"):
        PromptTemplate.from_file(tmp_path / "bad.prompt")
