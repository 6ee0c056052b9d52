"""Metadata as text: the bracket-tag prefixes of chunks and the query-side tag builders.

The ``prefix_fusion`` view (:mod:`ragkit.retrievers.metadata_views`) embeds ``"<prefix> " + text``;
this module writes the prefix from chunk metadata (:func:`format_prefix`) and, for queries, from a
registered builder (kind ``query_prefix``: ``generic``, ``none``, or yours via
:func:`register_query_prefix`) that sees the vocabulary learned from the index
(:class:`QueryVocabulary`).

Example:
    >>> format_prefix({"intent": "How-To", "keywords": ["oil", "filter"]})
    '[Intent:How-To] [Keywords:oil|filter]'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from ragkit.errors import ConfigError, RegistrationError
from ragkit.registry import KindMapping

# ---------------------------------------------------------------------------------------------------
# prefix formatting

#: Alias → canonical group name (a schema may call a field ``intents`` or ``intent``).
FIELD_ALIASES: dict[str, str] = {
    "intents": "intent",
    "intent": "intent",
    "potential_questions": "question",
    "questions": "question",
    "question": "question",
    "common_queries": "question",
    "content_type": "content_type",
    "primary_category": "category",
    "category": "category",
    "mentioned_services": "service",
    "services": "service",
    "entities": "entities",
    "keywords": "keywords",
    "topic": "topic",
    "has_code": "code",
}
#: Order of the known groups in a prefix (the study's order first, then ragkit's generic fields).
DEFAULT_GROUP_ORDER: tuple[str, ...] = (
    "intent", "service", "content_type", "category", "code", "topic", "entities", "keywords", "question",
)
#: Fields never put in a prefix unless asked for (too long to be a tag).
SKIPPED_BY_DEFAULT: frozenset[str] = frozenset({"summary", "related_topics", "tf_idf_keywords", "subtypes"})

_BAD_IN_TAG = re.compile(r"[\[\]|]+")
_WORDS = re.compile(r"[A-Za-z0-9]+")


def camel_case(text: str, limit: int = 50) -> str:
    """``"How do I reset it?"`` → ``"HowDoIResetIt"`` (letters and digits only), at most ``limit`` characters.

    Example:
        >>> camel_case("what is the capital of france?", 12)
        'WhatIsTheCap'
    """
    joined = "".join(w[:1].upper() + w[1:] for w in _WORDS.findall(text))
    return joined[:limit]


def _tag_value(value: Any, limit: int = 40) -> str:
    text = " ".join(_BAD_IN_TAG.sub(" ", str(value)).split())
    return text[:limit].rstrip()


def _first(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return value[0] if value else None
    if isinstance(value, Mapping):  # the study's {"primary": ..., "subtypes": [...]}
        return value.get("primary")
    return value


def _label(name: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in name.split("_") if p)


def prefix_groups(metadata: Mapping[str, Any] | None, *, fields: Sequence[str] | None = None, max_items: int = 3,
                  question_chars: int = 50) -> list[str]:
    """The bracket tags for one metadata dict, in prefix order (missing and empty fields are skipped).

    Example:
        >>> prefix_groups({"intents": ["Debug"], "entities": ["S3", "IAM", "KMS", "EC2"], "summary": "long"})
        ['[Intent:Debug]', '[Entities:S3|IAM|KMS]']
    """
    if not isinstance(metadata, Mapping) or not metadata:
        return []
    by_group: dict[str, tuple[str, Any]] = {}
    extra: list[tuple[str, Any]] = []
    for name, value in metadata.items():
        group = FIELD_ALIASES.get(name)
        if group is None:
            if fields is None and name in SKIPPED_BY_DEFAULT:
                continue
            extra.append((name, value))
        elif group not in by_group:
            by_group[group] = (name, value)
    if fields is None:
        order: list[tuple[str, str, Any]] = [(g, *by_group[g]) for g in DEFAULT_GROUP_ORDER if g in by_group]
        order += [(n, n, v) for n, v in extra]
    else:
        order = []
        for wanted in fields:
            group = FIELD_ALIASES.get(wanted, wanted)
            if group in by_group:
                order.append((group, *by_group[group]))
            elif wanted in metadata:
                order.append((wanted, wanted, metadata[wanted]))
    tags = []
    for group, name, value in order:
        tag = _render(group, name, value, max_items, question_chars)
        if tag:
            tags.append(tag)
    return tags


def _render(group: str, name: str, value: Any, max_items: int, question_chars: int) -> str:
    if value is None or value == "" or value == [] or value == {}:
        return ""
    if group == "question":
        first = _first(value)
        text = camel_case(str(first), question_chars) if first else ""
        return f"[Q:{text}]" if text else ""
    if group == "intent":
        first = _tag_value(_first(value) or "")
        return f"[Intent:{first}]" if first else ""
    if group in ("content_type", "category"):
        first = _tag_value(_first(value) or "")
        return f"[{first}]" if first else ""
    if group == "code":
        if isinstance(value, bool):
            return f"[Code:{'Yes' if value else 'None'}]"
        return f"[Code:{_tag_value(value)}]"
    label = {"service": "Service", "entities": "Entities", "keywords": "Keywords", "topic": "Topic"}.get(group, _label(name))
    if isinstance(value, Mapping):
        value = [v for v in value.values() if isinstance(v, (str, int, float))]
    if isinstance(value, (list, tuple)):
        items = [t for t in (_tag_value(v) for v in value) if t][:max_items]
        return f"[{label}:{'|'.join(items)}]" if items else ""
    if isinstance(value, bool):
        return f"[{label}:{'Yes' if value else 'No'}]"
    text = _tag_value(value)
    return f"[{label}:{text}]" if text else ""


def format_prefix(metadata: Mapping[str, Any] | None, context: Mapping[str, Any] | None = None, *,
                  fields: Sequence[str] | None = None, max_chars: int = 200, max_items: int = 3,
                  question_chars: int = 50, context_chars: int = 200) -> str:
    """The prefix for one chunk: bracket tags (whole tags dropped from the end to stay within ``max_chars``), then the situating line from ``context`` (clipped to ``context_chars``).

    Example:
        >>> format_prefix({"content_type": "Reference", "keywords": ["alpha", "beta"]}, max_chars=12)
        '[Reference]'
        >>> format_prefix({}, {"title": "Guide", "summary": "Install steps."})
        'Guide: Install steps.'
    """
    from ragkit.enrichers.context_prefix import context_line

    tags: list[str] = []
    used = 0
    for tag in prefix_groups(metadata, fields=fields, max_items=max_items, question_chars=question_chars):
        if used + len(tag) + (1 if tags else 0) > max_chars:
            break
        tags.append(tag)
        used += len(tag) + (1 if len(tags) > 1 else 0)
    line = context_line(context)
    if line and context_chars:
        from ragkit.enrichers._common import clip

        line = clip(line, context_chars)
    return " ".join(p for p in [" ".join(tags), line] if p)


# ---------------------------------------------------------------------------------------------------
# query-side prefix builders

_STOP: frozenset[str] | None = None


def stop_words() -> frozenset[str]:
    """English stop words (scikit-learn's list, the one the study's TF-IDF uses)."""
    global _STOP
    if _STOP is None:
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

        _STOP = frozenset(ENGLISH_STOP_WORDS)
    return _STOP


def content_words(text: str) -> list[str]:
    """Lower-cased words that are not stop words and longer than three characters (the study's query rule).

    Example:
        >>> content_words("How do I rotate the access keys for my bucket?")
        ['rotate', 'access', 'keys', 'bucket']
    """
    stop = stop_words()
    return [w for w in re.findall(r"[a-z0-9][a-z0-9\-']*", text.lower()) if len(w) > 3 and w not in stop]


_INTENT_CUES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Debug", re.compile(r"\b(error|errors|fail|fails|failed|failing|fix|debug|bug|crash\w*|broken|not working|"
                         r"issue|problem|troubleshoot\w*)\b")),
    ("Compare", re.compile(r"\b(compare\w*|comparison|difference|differences|differ|versus|vs\.?|better|"
                           r"worse|rather than|pros and cons)\b")),
    ("How-To", re.compile(r"\b(how (do|does|can|to|should|would|could|did)|steps?|procedure|install\w*|configure|"
                          r"set up|setup|enable|create|use)\b")),
    ("Reference", re.compile(r"\b(list|which|limit|limits|default|parameters?|syntax|value of|how (many|much)|"
                             r"when|where|who)\b")),
    ("Explain", re.compile(r"\b(what|why|explain|describe|meaning|mean|purpose|overview)\b")),
)
_TYPE_BY_INTENT = {"How-To": "Procedural", "Debug": "Warning", "Compare": "Conceptual", "Reference": "Reference",
                   "Explain": "Conceptual"}
_TYPE_CUES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Example", re.compile(r"\b(example|examples|sample|instance of)\b")),
    ("Warning", re.compile(r"\b(warning|risk|danger\w*|caution|avoid|security)\b")),
)


class QueryVocabulary:
    """Entity and keyword phrases seen in the indexed metadata, matched against query n-grams.

    Example:
        >>> v = QueryVocabulary.from_metadata([{"entities": ["New York"], "keywords": ["bagels"]}])
        >>> v.match("best bagels in new york?")
        {'entities': ['New York'], 'keywords': ['bagels']}
    """

    MAX_PHRASES: ClassVar[int] = 50000
    MAX_WORDS: ClassVar[int] = 4

    def __init__(self, entities: Mapping[str, str] | None = None, keywords: Mapping[str, str] | None = None) -> None:
        self.entities = dict(entities or {})
        self.keywords = dict(keywords or {})

    @classmethod
    def from_metadata(cls, records: Sequence[Mapping[str, Any]]) -> QueryVocabulary:
        entities: dict[str, str] = {}
        keywords: dict[str, str] = {}
        for meta in records:
            if not isinstance(meta, Mapping):
                continue
            for name, target in (("entities", entities), ("mentioned_services", entities), ("keywords", keywords)):
                values = meta.get(name)
                for value in values if isinstance(values, (list, tuple)) else ():
                    norm = _phrase_key(str(value))
                    if norm and len(norm) >= 3 and len(norm.split()) <= cls.MAX_WORDS and norm not in stop_words():
                        target.setdefault(norm, _tag_value(value))
        cap = cls.MAX_PHRASES
        return cls(dict(sorted(entities.items())[:cap]), dict(sorted(keywords.items())[:cap]))

    def match(self, text: str, max_items: int = 3) -> dict[str, list[str]]:
        """``{"entities": [...], "keywords": [...]}`` phrases of the vocabulary that occur in ``text``."""
        words = _phrase_key(text).split()
        grams = [" ".join(words[i:i + n]) for n in range(self.MAX_WORDS, 0, -1) for i in range(len(words) - n + 1)]
        out: dict[str, list[str]] = {}
        for name, table in (("entities", self.entities), ("keywords", self.keywords)):
            found: list[str] = []
            for gram in grams:
                if gram in table and table[gram] not in found:
                    found.append(table[gram])
                if len(found) >= max_items:
                    break
            if found:
                out[name] = found
        return out

    def __repr__(self) -> str:
        return f"QueryVocabulary(entities={len(self.entities)}, keywords={len(self.keywords)})"

    def state(self) -> dict[str, Any]:
        return {"entities": sorted(self.entities.items()), "keywords": sorted(self.keywords.items())}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> QueryVocabulary:
        return cls(dict(map(tuple, state.get("entities", []))), dict(map(tuple, state.get("keywords", []))))


def _phrase_key(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", text.lower()))


QueryPrefixBuilder = Callable[[str, QueryVocabulary], Mapping[str, Any]]


def generic_query_metadata(query: str, vocabulary: QueryVocabulary) -> dict[str, Any]:
    """The default query-side builder: pseudo-metadata from generic cues (no domain lists).

    - intent from cue words (debug, compare, how-to, reference, explain — the first that matches);
    - content type from explicit cues ("example", "warning") or from the intent;
    - entities and keywords: phrases of the query that the index's metadata uses;
    - question: the query itself (rendered as a CamelCase ``[Q:...]`` tag like the chunks').

    Example:
        >>> generic_query_metadata("How do I install the CLI?", QueryVocabulary(keywords={"cli": "CLI"}))
        {'intent': 'How-To', 'content_type': 'Procedural', 'keywords': ['CLI'], 'question': 'How do I install the CLI?'}
    """
    lowered = query.lower()
    out: dict[str, Any] = {}
    intent = next((name for name, cue in _INTENT_CUES if cue.search(lowered)), None)
    if intent:
        out["intent"] = intent
    content_type = next((name for name, cue in _TYPE_CUES if cue.search(lowered)), None)
    content_type = content_type or (_TYPE_BY_INTENT.get(intent) if intent else None)
    if content_type:
        out["content_type"] = content_type
    out.update(vocabulary.match(query))
    out["question"] = query.strip()
    return out


def no_query_metadata(query: str, vocabulary: QueryVocabulary) -> dict[str, Any]:
    """Builder ``none``: the query is embedded as is (no prefix)."""
    return {}


#: The registered query-prefix builders as a live ``{name: builder}`` mapping over the registry's
#: ``query_prefix`` kind (built-ins: ``generic``, ``none``).
QUERY_PREFIX_BUILDERS: KindMapping = KindMapping("query_prefix")


def register_query_prefix(name: str, builder: QueryPrefixBuilder) -> None:
    """Make ``builder(query_text, vocabulary) -> pseudo-metadata`` available as ``query_prefix: name``.

    The builder is registered as kind ``query_prefix`` in the one registry (so ``ragkit components``
    lists it). The returned mapping is rendered by :func:`format_prefix` exactly like chunk metadata,
    so use the same field names as your schema (``intent``, ``content_type``, ``entities``, ``question``...).

    Example:
        >>> register_query_prefix("always_howto", lambda q, v: {"intent": "How-To"})
        >>> "always_howto" in QUERY_PREFIX_BUILDERS
        True
    """
    try:
        QUERY_PREFIX_BUILDERS[name] = builder
    except RegistrationError as exc:
        raise ConfigError(f"query prefix builder {name!r} is already registered; choose another name ({exc})") from exc
