"""Versioned prompt templates, kept next to the stage that uses them.

A template has a ``name`` and a ``version``; requests built from it carry ``template_version =
"name@version"``, which is part of the LLM cache key. Bump the version whenever you change the
wording, and cached answers for the old wording stop being reused.

Placeholders are ``{identifier}``; any other brace (a JSON example, ``{"a": 1}``) is left as is, so
templates need no escaping. Missing or unexpected variables are errors.

Example:
    >>> SUMMARY = PromptTemplate("summary", 2, "Summarise in {n} words:\\n{text}\\nReply as {\\"summary\\": ...}")
    >>> SUMMARY.render(n=5, text="Cats sleep a lot.")
    'Summarise in 5 words:\\nCats sleep a lot.\\nReply as {"summary": ...}'
    >>> SUMMARY.request(n=5, text="x", max_tokens=32).template_version
    'summary@2'
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ragkit.errors import ConfigError
from ragkit.llm.base import GenerationRequest

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_GENERATION_KEYS = {"max_tokens", "temperature", "seed", "stop", "json_schema", "response_model",
                    "repetition_penalty", "no_repeat_ngram_size"}


@dataclass(frozen=True)
class PromptTemplate:
    """A named, versioned prompt: a user-turn ``text`` and an optional ``system`` text, both with ``{vars}``.

    Example:
        >>> t = PromptTemplate("yes_no", 1, "Is this relevant to {question}? {chunk}", system="Answer yes or no.")
        >>> sorted(t.variables)
        ['chunk', 'question']
        >>> req = t.request(question="cats", chunk="Cats purr.", max_tokens=2)
        >>> req.messages[0]["role"], req.template_version
        ('system', 'yes_no@1')
    """

    name: str
    version: int | str
    text: str
    system: str | None = None

    @property
    def key(self) -> str:
        """``"name@version"``, the value requests carry as ``template_version``."""
        return f"{self.name}@{self.version}"

    @property
    def variables(self) -> set[str]:
        found = set(_PLACEHOLDER.findall(self.text))
        if self.system:
            found |= set(_PLACEHOLDER.findall(self.system))
        return found

    def _fill(self, text: str, values: Mapping[str, Any]) -> str:
        return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text)

    def _check(self, values: Mapping[str, Any]) -> None:
        missing = self.variables - set(values)
        extra = set(values) - self.variables
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing {sorted(missing)}")
            if extra:
                parts.append(f"unexpected {sorted(extra)}")
            raise ConfigError(f"prompt template {self.key}: {', '.join(parts)}; it takes: {sorted(self.variables)}")

    def render(self, **values: Any) -> str:
        """The user text with every ``{var}`` replaced (all variables required, no extras)."""
        self._check(values)
        return self._fill(self.text, values)

    def render_system(self, **values: Any) -> str | None:
        return self._fill(self.system, values) if self.system else None

    def request(self, **values: Any) -> GenerationRequest:
        """A chat :class:`GenerationRequest`; generation keywords (``max_tokens``, ``json_schema``, ...) pass through."""
        settings = {k: values.pop(k) for k in list(values) if k in _GENERATION_KEYS}
        self._check(values)
        return GenerationRequest.chat(self._fill(self.text, values), self.render_system(**values),
                                      template_version=self.key, **settings)

    def prompt_request(self, **values: Any) -> GenerationRequest:
        """A completion-style request (no chat template): system text, a blank line, then the user text."""
        settings = {k: values.pop(k) for k in list(values) if k in _GENERATION_KEYS}
        self._check(values)
        system = self.render_system(**values)
        text = self._fill(self.text, values)
        return GenerationRequest(prompt=f"{system}\n\n{text}" if system else text, template_version=self.key,
                                 **settings)

    @classmethod
    def from_file(cls, path: str | Path) -> PromptTemplate:
        """Load a template file: ``name:``/``version:``/``system:`` header lines, a ``---`` line, then the text.

        Example file ``metadata.prompt`` next to a stage module::

            name: metadata
            version: 3
            ---
            Extract metadata from:
            {chunk}
        """
        raw = Path(path).read_text(encoding="utf-8")
        header, sep, body = raw.partition("\n---\n")
        if not sep:
            raise ConfigError(f"prompt template file {path}: expected header lines, a '---' line, then the text")
        meta: dict[str, str] = {}
        for line in header.splitlines():
            if line.strip():
                key, _, value = line.partition(":")
                meta[key.strip()] = value.strip()
        if "version" not in meta:
            raise ConfigError(f"prompt template file {path}: the header needs 'version: N'")
        return cls(name=meta.get("name") or Path(path).stem, version=meta["version"], text=body.rstrip("\n"),
                   system=meta.get("system") or None)
