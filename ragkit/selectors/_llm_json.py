"""Lenient reading of the JSON objects small LLMs write (shared by ``meteora`` and ``verifier``).

Models wrap JSON in Markdown fences, leave trailing commas, write booleans as text (``"true"``,
``"Yes"``) or in Python spelling (``True``), and add prose around the object. :func:`parse_json_object`
recovers the first JSON object from such text or raises :class:`JSONParseError` with what was wrong;
:func:`as_bool` and :func:`as_float` read loosely typed fields. Nothing is guessed beyond that: a
reply that still does not parse is an error the caller reports (the verifier fails closed on it).

Example:
    >>> parse_json_object('Sure! ```json\\n{"flagged": "True", "flag_types": ["factual",],}\\n```')
    {'flagged': 'True', 'flag_types': ['factual']}
    >>> as_bool("yes"), as_bool("False"), as_bool(None)
    (True, False, None)
"""

from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_PY_LITERALS = re.compile(r"(?<![\w\"'])(True|False|None)(?![\w\"'])")


class JSONParseError(ValueError):
    """A reply holds no parseable JSON object; ``raw`` is the reply."""

    def __init__(self, message: str, raw: str) -> None:
        super().__init__(message)
        self.raw = raw


def _balanced_object(text: str) -> str | None:
    """The first ``{...}`` of ``text`` with balanced braces (strings respected), or ``None``."""
    start = text.find("{")
    while start != -1:
        depth, in_string, escaped = 0, False, False
        for i in range(start, len(text)):
            ch = text[i]
            if in_string:
                if escaped:
                    escaped = False
                elif ch == "\\":
                    escaped = True
                elif ch == '"':
                    in_string = False
            elif ch == '"':
                in_string = True
            elif ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    return text[start: i + 1]
        start = text.find("{", start + 1)
    return None


def _repair(candidate: str) -> str:
    candidate = _TRAILING_COMMA.sub(r"\1", candidate)
    return _PY_LITERALS.sub(lambda m: {"True": "true", "False": "false", "None": "null"}[m.group(1)], candidate)


def parse_json_object(text: str) -> dict[str, Any]:
    """The first JSON object in ``text`` (fences, trailing commas and Python literals tolerated).

    Raises:
        JSONParseError: no object could be read.

    Example:
        >>> parse_json_object('{"a": 1, "b": [1, 2,],}')
        {'a': 1, 'b': [1, 2]}
        >>> parse_json_object("no json here")
        Traceback (most recent call last):
        ...
        ragkit.selectors._llm_json.JSONParseError: no JSON object in the reply
    """
    raw = text or ""
    sources = [m.group(1) for m in _FENCE.finditer(raw)] + [raw]
    last_error = "no JSON object in the reply"
    for source in sources:
        candidate = _balanced_object(source)
        if candidate is None:
            continue
        for attempt in (candidate, _repair(candidate)):
            try:
                value = json.loads(attempt)
            except json.JSONDecodeError as exc:
                last_error = f"invalid JSON ({exc.msg} at column {exc.colno})"
                continue
            if isinstance(value, dict):
                return value
    raise JSONParseError(last_error, raw)


def as_bool(value: Any) -> bool | None:
    """A boolean from ``True``/``"true"``/``"yes"``/``1`` (and the negatives); ``None`` if unreadable.

    Example:
        >>> [as_bool(v) for v in (True, "TRUE", "no", 0, "maybe")]
        [True, True, False, False, None]
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().strip(".").lower()
        if word in ("true", "yes", "y", "1"):
            return True
        if word in ("false", "no", "n", "0"):
            return False
    return None


def as_float(value: Any, default: float | None = None) -> float | None:
    """A float from a number, ``"0.9"`` or ``"90%"`` (percentages become fractions); ``default`` otherwise.

    Example:
        >>> as_float("85%"), as_float(0.7), as_float("high", 1.0)
        (0.85, 0.7, 1.0)
    """
    if isinstance(value, bool):
        return default
    if isinstance(value, (int, float)):
        v = float(value)
    elif isinstance(value, str):
        text = value.strip()
        percent = text.endswith("%")
        try:
            v = float(text.rstrip("%").strip())
        except ValueError:
            return default
        if percent:
            v /= 100.0
    else:
        return default
    if v > 1.0 and v <= 100.0:
        v /= 100.0  # "90" on a 0-100 scale
    return v
