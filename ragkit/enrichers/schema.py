"""Metadata schemas for :class:`~ragkit.enrichers.llm_metadata.LLMMetadataEnricher`.

A schema says which fields the LLM writes for every chunk, turns them into the JSON schema that
constrained decoding enforces, describes them in the prompt and validates (and lightly normalises)
what comes back. Three ways to get one:

- a named profile: ``default`` (generic: content type, keywords, entities, summary, intents,
  potential questions) or ``compact`` (six short fields that fit in 96 output tokens);
- a field list, as written in YAML (``fields: [{name: content_type, type: enum, values: [...]},
  {name: keywords, type: list, max_items: 5}]``); field types are ``string``, ``enum``, ``list``,
  ``bool``, ``int`` and ``number``; a ``list`` with ``values`` is a subset of those values;
- a pydantic model class (Python API): its JSON schema is enforced and the model validates.

Example:
    >>> schema = MetadataSchema.from_fields([
    ...     {"name": "content_type", "type": "enum", "values": ["Procedural", "Conceptual"]},
    ...     {"name": "keywords", "type": "list", "max_items": 2},
    ... ])
    >>> schema.json_schema()["properties"]["keywords"]["maxItems"]
    2
    >>> schema.validate({"content_type": "Procedural", "keywords": [" oil ", "oil", "filter"]})
    {'content_type': 'Procedural', 'keywords': ['oil', 'filter']}
    >>> MetadataSchema.profile("compact").names
    ['content_type', 'intent', 'topic', 'keywords', 'entities', 'question']
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from typing_extensions import NotRequired, TypedDict

from ragkit.errors import ConfigError
from ragkit.types import sha256_hex

FieldType = Literal["string", "enum", "list", "bool", "int", "number"]
FIELD_TYPES: tuple[str, ...] = ("string", "enum", "list", "bool", "int", "number")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: Content types of the generic schemas (the study's five plus three for non-technical text).
CONTENT_TYPES: tuple[str, ...] = (
    "Conceptual", "Procedural", "Reference", "Example", "Warning", "Narrative", "Dialogue", "Data",
)
#: Query intents of the generic schemas.
INTENTS: tuple[str, ...] = ("How-To", "Explain", "Compare", "Reference", "Debug")


class FieldDict(TypedDict):
    """One field of a YAML field list (the config form of :class:`MetadataField`)."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]

    name: str
    type: FieldType
    values: NotRequired[list[str]]
    max_items: NotRequired[int]
    min_items: NotRequired[int]
    max_length: NotRequired[int]
    description: NotRequired[str]


@dataclass(frozen=True)
class MetadataField:
    """One metadata field.

    ``values`` are the allowed values of an ``enum`` (or of a ``list``'s items, making the list a
    subset); ``max_length`` caps strings (and list items) in characters; ``max_items`` /
    ``min_items`` bound lists.

    Example:
        >>> MetadataField("tags", "list", max_items=3, max_length=20).json_schema()
        {'type': 'array', 'items': {'type': 'string', 'minLength': 1, 'maxLength': 20}, 'maxItems': 3}
    """

    name: str
    type: str
    values: tuple[str, ...] = ()
    max_items: int | None = None
    min_items: int = 0
    max_length: int | None = None
    description: str = ""

    def __post_init__(self) -> None:
        where = f"metadata field {self.name!r}"
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ConfigError(f"metadata field name {self.name!r} is not allowed: use letters, digits and "
                              "underscores, starting with a letter (it becomes a filter key such as llm.NAME)")
        if self.type not in FIELD_TYPES:
            raise ConfigError(f"{where}: type {self.type!r} is not allowed; allowed: {', '.join(FIELD_TYPES)}")
        object.__setattr__(self, "values", tuple(str(v) for v in self.values))
        if self.type == "enum" and not self.values:
            raise ConfigError(f"{where}: type enum needs values, e.g. values: [Procedural, Conceptual]")
        if self.values and self.type not in ("enum", "list"):
            raise ConfigError(f"{where}: values are allowed only for enum and list fields (type is {self.type!r})")
        if len(set(self.values)) != len(self.values):
            raise ConfigError(f"{where}: values {list(self.values)!r} contain duplicates")
        if (self.max_items is not None or self.min_items) and self.type != "list":
            raise ConfigError(f"{where}: max_items/min_items apply to list fields only (type is {self.type!r})")
        if self.max_items is not None and self.max_items < 1:
            raise ConfigError(f"{where}: max_items must be >= 1, got {self.max_items}")
        if self.min_items < 0 or (self.max_items is not None and self.min_items > self.max_items):
            raise ConfigError(f"{where}: min_items {self.min_items} must be between 0 and max_items {self.max_items}")
        if self.max_length is not None:
            if self.type not in ("string", "list") or (self.type == "list" and self.values):
                raise ConfigError(f"{where}: max_length applies to string fields and free-text lists only")
            if self.max_length < 1:
                raise ConfigError(f"{where}: max_length must be >= 1, got {self.max_length}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "fields") -> MetadataField:
        """Build a field from its YAML form (unknown keys are reported with the allowed ones)."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: each field must be a mapping like {{name: keywords, type: list}}, got {data!r}")
        allowed = ("name", "type", "values", "max_items", "min_items", "max_length", "description")
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown} in field {data.get('name')!r}; allowed: {', '.join(allowed)}")
        if "name" not in data or "type" not in data:
            raise ConfigError(f"{where}: a field needs name and type, got {dict(data)!r}")
        return cls(name=data["name"], type=data["type"], values=tuple(data.get("values") or ()),
                   max_items=data.get("max_items"), min_items=int(data.get("min_items") or 0),
                   max_length=data.get("max_length"), description=str(data.get("description") or ""))

    def to_dict(self) -> dict[str, Any]:
        """The YAML form (only the keys that are set)."""
        out: dict[str, Any] = {"name": self.name, "type": self.type}
        if self.values:
            out["values"] = list(self.values)
        if self.max_items is not None:
            out["max_items"] = self.max_items
        if self.min_items:
            out["min_items"] = self.min_items
        if self.max_length is not None:
            out["max_length"] = self.max_length
        if self.description:
            out["description"] = self.description
        return out

    def json_schema(self) -> dict[str, Any]:
        """The JSON schema of this field's value."""
        if self.type == "enum":
            return {"type": "string", "enum": list(self.values)}
        if self.type == "bool":
            return {"type": "boolean"}
        if self.type == "int":
            return {"type": "integer"}
        if self.type == "number":
            return {"type": "number"}
        if self.type == "string":
            out: dict[str, Any] = {"type": "string", "minLength": 1}
            if self.max_length is not None:
                out["maxLength"] = self.max_length
            return out
        items: dict[str, Any] = {"type": "string", "enum": list(self.values)} if self.values else {"type": "string", "minLength": 1}
        if self.max_length is not None and not self.values:
            items["maxLength"] = self.max_length
        out = {"type": "array", "items": items}
        if self.min_items:
            out["minItems"] = self.min_items
        if self.max_items is not None:
            out["maxItems"] = self.max_items
        return out

    def prompt_line(self) -> str:
        """How the field is explained to the model (one line; length limits are enforced by the decoder).

        Example:
            >>> MetadataField("kind", "enum", ("A", "B"), description="what it is").prompt_line()
            '- kind: what it is; one of A, B'
        """
        what = self.description or self.name.replace("_", " ")
        if self.type == "enum":
            return f"- {self.name}: {what}; one of {', '.join(self.values)}"
        if self.type == "list" and self.values:
            return f"- {self.name}: {what}; up to {self.max_items or len(self.values)} of {', '.join(self.values)}"
        if self.type == "list":
            return f"- {self.name}: {what}" + (f" (up to {self.max_items})" if self.max_items else "")
        if self.type == "string":
            return f"- {self.name}: {what}"
        shape = {"bool": "true or false", "int": "an integer", "number": "a number"}[self.type]
        return f"- {self.name}: {what}; {shape}"

    def normalise(self, value: Any) -> Any:
        """Light clean-up of a valid value: strip strings, drop empty and duplicate list items, cap lengths."""
        if self.type == "string" and isinstance(value, str):
            value = " ".join(value.split())
            return value[: self.max_length] if self.max_length else value
        if self.type == "list" and isinstance(value, list):
            seen: set[str] = set()
            out = []
            for item in value:
                text = " ".join(str(item).split())
                if self.max_length and not self.values:
                    text = text[: self.max_length]
                if text and text.lower() not in seen:
                    seen.add(text.lower())
                    out.append(text)
            return out[: self.max_items] if self.max_items else out
        return value

    def check(self, value: Any) -> str | None:
        """``None`` when ``value`` (after :meth:`normalise`) is acceptable, else what is wrong."""
        if self.type in ("string", "enum"):
            if not isinstance(value, str) or not value.strip():
                return f"{self.name}: expected a non-empty string, got {value!r}"
            if self.type == "enum" and value not in self.values:
                return f"{self.name}: {value!r} is not one of {list(self.values)}"
            return None
        if self.type == "bool":
            return None if isinstance(value, bool) else f"{self.name}: expected true or false, got {value!r}"
        if self.type == "int":
            ok = isinstance(value, int) and not isinstance(value, bool)
            return None if ok else f"{self.name}: expected an integer, got {value!r}"
        if self.type == "number":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            return None if ok else f"{self.name}: expected a number, got {value!r}"
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return f"{self.name}: expected a list of strings, got {value!r}"
        if len(value) < self.min_items:
            return f"{self.name}: needs at least {self.min_items} item(s), got {len(value)}"
        bad = [v for v in value if self.values and v not in self.values]
        if bad:
            return f"{self.name}: {bad[0]!r} is not one of {list(self.values)}"
        return None


@dataclass(frozen=True)
class MetadataSchema:
    """The fields an LLM writes per chunk, plus the output-token budget that fits them.

    Build one with :meth:`profile`, :meth:`from_fields` or :meth:`from_model`.

    Example:
        >>> s = MetadataSchema.profile("default")
        >>> s.names
        ['content_type', 'keywords', 'entities', 'summary', 'intents', 'potential_questions']
        >>> s.validate({"content_type": "Essay"})
        Traceback (most recent call last):
        ...
        ValueError: missing field(s) ['keywords', 'entities', 'summary', 'intents', 'potential_questions']
    """

    name: str
    fields: tuple[MetadataField, ...] = ()
    max_tokens: int = 256
    model: type[BaseModel] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        names = [f.name for f in self.fields]
        if self.model is None and not names:
            raise ConfigError("a metadata schema needs at least one field")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"metadata schema {self.name!r}: duplicate field name(s) {duplicates}")

    # ------------------------------------------------------------------ constructors
    @classmethod
    def profile(cls, name: str) -> MetadataSchema:
        """A built-in schema: ``default`` or ``compact``."""
        if name not in PROFILES:
            raise ConfigError(f"unknown metadata schema profile {name!r}; available: {', '.join(PROFILES)}, "
                              "or give fields: [...] (YAML) or a pydantic model class (Python)")
        return PROFILES[name]

    @classmethod
    def from_fields(cls, fields: Sequence[Mapping[str, Any] | MetadataField], name: str = "custom",
                    max_tokens: int | None = None) -> MetadataSchema:
        """A schema from a YAML-style field list; ``max_tokens`` defaults to an estimate from the fields."""
        if not fields:
            raise ConfigError("fields: give at least one field, e.g. [{name: keywords, type: list, max_items: 5}]")
        built = tuple(f if isinstance(f, MetadataField) else MetadataField.from_dict(f, f"fields.{i}")
                      for i, f in enumerate(fields))
        return cls(name=name, fields=built, max_tokens=max_tokens or estimate_max_tokens(built))

    @classmethod
    def from_model(cls, model: type[BaseModel], max_tokens: int = 320) -> MetadataSchema:
        """A schema from a pydantic model class: its JSON schema is enforced and the model validates."""
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise ConfigError(f"schema must be a pydantic BaseModel subclass, got {model!r}")
        return cls(name=model.__name__, fields=(), max_tokens=max_tokens, model=model)

    @classmethod
    def resolve(cls, profile: str | MetadataSchema = "default", fields: Sequence[Mapping[str, Any]] | None = None,
                model: type[BaseModel] | None = None) -> MetadataSchema:
        """The schema for an enricher's ``profile`` / ``fields`` / ``model`` parameters.

        ``model`` (a pydantic class) wins over ``fields``, which win over ``profile``; giving both
        ``model`` and ``fields`` is an error.
        """
        if model is not None and fields:
            raise ConfigError("give either fields (a YAML field list) or model (a pydantic class), not both")
        if model is not None:
            return cls.from_model(model)
        if fields:
            return cls.from_fields(fields)
        if isinstance(profile, MetadataSchema):
            return profile
        return cls.profile(profile)

    # ------------------------------------------------------------------ views
    @property
    def names(self) -> list[str]:
        if self.model is not None:
            return list(self.model.model_json_schema().get("properties", {}))
        return [f.name for f in self.fields]

    def json_schema(self) -> dict[str, Any]:
        """The JSON schema constrained decoding enforces (every field required, no extra keys)."""
        if self.model is not None:
            return self.model.model_json_schema()
        return {
            "type": "object",
            "properties": {f.name: f.json_schema() for f in self.fields},
            "required": [f.name for f in self.fields],
            "additionalProperties": False,
        }

    def prompt_fields(self) -> str:
        """The field descriptions given to the model, one per line."""
        if self.model is None:
            return "\n".join(f.prompt_line() for f in self.fields)
        lines = []
        for name, prop in self.model.model_json_schema().get("properties", {}).items():
            desc = prop.get("description") or prop.get("title") or ""
            lines.append(f"- {name}: {desc}".rstrip(": "))
        return "\n".join(lines)

    def fingerprint(self) -> str:
        """A short hash of the JSON schema (changes when the schema changes)."""
        return sha256_hex(self.json_schema())[:12]

    def validate(self, value: Any) -> dict[str, Any]:
        """Normalise and check one parsed LLM output; raise ``ValueError`` saying what is wrong."""
        if self.model is not None:
            from pydantic import ValidationError

            try:
                return self.model.model_validate(value).model_dump(mode="json")
            except ValidationError as exc:
                first = exc.errors()[0]
                raise ValueError(f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from exc
        if not isinstance(value, Mapping):
            raise ValueError(f"expected a JSON object, got {type(value).__name__}")
        missing = [f.name for f in self.fields if f.name not in value]
        if missing:
            raise ValueError(f"missing field(s) {missing}")
        extra = sorted(set(value) - set(self.names))
        if extra:
            raise ValueError(f"unexpected field(s) {extra}")
        out = {}
        for f in self.fields:
            normalised = f.normalise(value[f.name])
            problem = f.check(normalised)
            if problem:
                raise ValueError(problem)
            out[f.name] = normalised
        return out

    def parse(self, text: str) -> dict[str, Any]:
        """Parse and :meth:`validate` raw model output (``ValueError`` on any problem)."""
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from exc
        return self.validate(value)


def estimate_max_tokens(fields: Sequence[MetadataField]) -> int:
    """A generous output-token budget for a field list (keys, punctuation and values)."""
    total = 4
    for f in fields:
        total += 4 + len(f.name) // 3
        if f.type == "enum":
            total += max(len(v) for v in f.values) // 2 + 2
        elif f.type == "string":
            total += (f.max_length or 240) // 3 + 2
        elif f.type == "list":
            per = (max(len(v) for v in f.values) // 2 + 2) if f.values else (f.max_length or 40) // 3 + 2
            total += per * (f.max_items or 5) + 2
        else:
            total += 4
    return max(32, min(1024, total))


PROFILES: dict[str, MetadataSchema] = {
    "default": MetadataSchema(
        name="default",
        fields=(
            MetadataField("content_type", "enum", CONTENT_TYPES, description="what kind of text this is"),
            MetadataField("keywords", "list", max_items=8, max_length=40, description="the key terms"),
            MetadataField("entities", "list", max_items=5, max_length=40,
                          description="named people, organisations, places, products"),
            MetadataField("summary", "string", max_length=240, description="one or two sentences"),
            MetadataField("intents", "list", INTENTS, max_items=2,
                          description="what a reader would come to this text for"),
            MetadataField("potential_questions", "list", max_items=3, max_length=120,
                          description="questions this text answers"),
        ),
        max_tokens=320,
    ),
    "compact": MetadataSchema(
        name="compact",
        fields=(
            MetadataField("content_type", "enum", CONTENT_TYPES, description="what kind of text it is"),
            MetadataField("intent", "enum", INTENTS, description="why a reader would look for it"),
            MetadataField("topic", "string", max_length=32, description="the main topic, in a few words from the passage"),
            MetadataField("keywords", "list", max_items=3, max_length=20,
                          description="important words from the passage"),
            MetadataField("entities", "list", max_items=2, max_length=20,
                          description="names of people, places, organisations or products in the passage"),
            MetadataField("question", "string", max_length=64, description="one question that the passage answers"),
        ),
        max_tokens=96,
    ),
}


def check_field_list(fields: list[Any] | None) -> list[Any] | None:
    """Pydantic after-validator for an enricher's ``fields`` parameter: the list must build a schema (so ``ragkit validate`` reports a bad field list with its dotted path)."""
    if fields:
        try:
            MetadataSchema.from_fields(fields)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
    return fields
