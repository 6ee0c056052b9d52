"""Metadata filters: the contracts' grammar, compiled once to a predicate over chunks.

Grammar (every condition must hold)::

    {key: value}                  # equal (if the metadata value is a list: contains value)
    {key: [v1, v2]}               # equal to any (list metadata: shares any element)
    {key: {gte: x, lte: y}}       # operators: gte, lte, gt, lt, in, exists (all must hold)

- Keys are dotted paths into nested metadata (``llm.content_type``). When the first segment is not
  a metadata key, the chunk fields ``id``, ``doc_id``, ``start``, ``end`` and ``token_count`` are used.
- ISO date strings (``"2024-05-01"``, ``"2024-05-01T10:00:00Z"``) and ``date``/``datetime`` values
  compare as dates; when either side has no time of day, only the calendar dates are compared, so
  ``{lte: "2024-05-01"}`` includes all of 1 May.
- Numbers compare with numbers, strings with strings; a comparison between other types is false
  (never an error). A missing key fails every condition except ``exists: false``.

Retrievers apply the predicate *before* top-k (``filter_mask`` gives the boolean mask over indexed
chunks), so a filtered query still returns ``k`` results when ``k`` chunks match.

Example:
    >>> from ragkit.types import Chunk
    >>> c = Chunk("c1", "d1", "x", 0, 1, 1, {"year": 2024, "meta": {"lang": "en"}, "date": "2024-03-02"})
    >>> compile_filter({"year": {"gte": 2020}, "meta.lang": ["en", "fr"], "date": {"lt": "2024-04-01"}})(c)
    True
    >>> compile_filter({"year": {"gt": 2024}})(c)
    False
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ragkit.errors import ConfigError
from ragkit.types import Chunk

OPERATORS = ("gte", "lte", "gt", "lt", "in", "exists")
CHUNK_FIELDS = ("id", "doc_id", "start", "end", "token_count")
_MISSING = object()
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")

Predicate = Callable[[Chunk], bool]


def _fail(path: str, message: str) -> ConfigError:
    return ConfigError(f"{path}: {message}", [(path, message, None)])


def _as_date(value: Any) -> tuple[_dt.datetime, bool] | None:
    """``(datetime, has_time)`` for ISO date strings and date objects, else ``None``."""
    if isinstance(value, _dt.datetime):
        return value, True
    if isinstance(value, _dt.date):
        return _dt.datetime(value.year, value.month, value.day), False
    if isinstance(value, str) and _DATE_RE.match(value.strip()):
        text = value.strip()
        try:
            parsed = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed, len(text) > 10
    return None


def _date_key(a: tuple[_dt.datetime, bool], b: tuple[_dt.datetime, bool]) -> tuple[Any, Any]:
    (da, ta), (db, tb) = a, b
    if not (ta and tb):
        return da.date(), db.date()
    if (da.tzinfo is None) != (db.tzinfo is None):  # naive values are taken as UTC
        da = da.replace(tzinfo=_dt.timezone.utc) if da.tzinfo is None else da
        db = db.replace(tzinfo=_dt.timezone.utc) if db.tzinfo is None else db
    return da, db


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _comparable(left: Any, right: Any) -> tuple[Any, Any] | None:
    """The pair to compare, or ``None`` when the two values are not comparable."""
    dl, dr = _as_date(left), _as_date(right)
    if dl is not None and dr is not None:
        return _date_key(dl, dr)
    if (dl is None) != (dr is None):  # a date never compares with a non-date
        return None
    if _is_number(left) and _is_number(right):
        return left, right
    if isinstance(left, str) and isinstance(right, str):
        return left, right
    return None


def _equal(left: Any, right: Any) -> bool:
    if isinstance(left, (list, tuple)):
        return any(_equal(item, right) for item in left)
    pair = _comparable(left, right)
    if pair is not None:
        return pair[0] == pair[1]
    return left == right


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "gte": lambda a, b: a >= b,
    "lte": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "lt": lambda a, b: a < b,
}


def resolve(chunk: Chunk, key: str) -> Any:
    """The value at dotted ``key`` in ``chunk.metadata`` (or a chunk field); ``_MISSING`` if absent."""
    parts = key.split(".")
    node: Any = chunk.metadata
    if parts[0] not in chunk.metadata and parts[0] in CHUNK_FIELDS and len(parts) == 1:
        return getattr(chunk, parts[0])
    for part in parts:
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def _check_scalar(path: str, op: str, value: Any) -> None:
    if not (_is_number(value) or isinstance(value, (str, _dt.date))):
        raise _fail(path, f"operator {op!r} needs a number, a string or an ISO date, got {value!r}")


def _condition(key: str, spec: Any, path: str) -> Predicate:
    if isinstance(spec, Mapping):
        if not spec:
            raise _fail(path, "an empty operator mapping matches nothing useful; give e.g. {gte: 3} or remove the key")
        unknown = [op for op in spec if op not in OPERATORS]
        if unknown:
            raise _fail(
                f"{path}.{unknown[0]}",
                f"unknown filter operator {unknown[0]!r} (value {spec[unknown[0]]!r}); allowed operators: "
                f"{', '.join(OPERATORS)}. For nested metadata use a dotted key, e.g. '{key}.{unknown[0]}'",
            )
        tests: list[Callable[[Any], bool]] = []
        for op, arg in spec.items():
            if op == "exists":
                if not isinstance(arg, bool):
                    raise _fail(f"{path}.exists", f"expects true or false, got {arg!r}")
                tests.append(lambda v, want=arg: (v is not _MISSING) == want)
            elif op == "in":
                if not isinstance(arg, (list, tuple)):
                    raise _fail(f"{path}.in", f"expects a list of values, got {arg!r}; write in: [{arg!r}]")
                values = list(arg)
                tests.append(lambda v, vs=values: v is not _MISSING and any(_equal(v, x) for x in vs))
            else:
                _check_scalar(f"{path}.{op}", op, arg)
                compare = _COMPARE[op]

                def test(v: Any, bound: Any = arg, cmp: Callable[[Any, Any], bool] = compare) -> bool:
                    if v is _MISSING:
                        return False
                    pair = _comparable(v, bound)
                    return pair is not None and cmp(*pair)

                tests.append(test)
        return lambda chunk: all(t(resolve(chunk, key)) for t in tests)
    if isinstance(spec, (list, tuple)):
        values = list(spec)
        return lambda chunk: (v := resolve(chunk, key)) is not _MISSING and any(_equal(v, x) for x in values)
    return lambda chunk: (v := resolve(chunk, key)) is not _MISSING and _equal(v, spec)


def compile_filter(spec: Mapping[str, Any] | None, path: str = "filter") -> Predicate | None:
    """Validate ``spec`` and return a predicate over chunks (``None`` for no filter).

    Raises :class:`ConfigError` naming the dotted path and value for malformed filters.
    """
    if spec is None:
        return None
    if not isinstance(spec, Mapping):
        raise _fail(path, f"a filter must be a mapping of metadata keys to conditions, got {spec!r}; "
                          "e.g. {source: docs/a.md} or {year: {gte: 2020}}")
    conditions = []
    for key, condition in spec.items():
        if not isinstance(key, str) or not key.strip() or any(not p for p in key.split(".")):
            raise _fail(path, f"filter keys must be non-empty dotted names, got {key!r}")
        conditions.append(_condition(key, condition, f"{path}.{key}"))
    if not conditions:
        return None
    return lambda chunk: all(cond(chunk) for cond in conditions)


def filter_mask(spec: Mapping[str, Any] | None, chunks: Sequence[Chunk]) -> np.ndarray | None:
    """Boolean mask of the chunks that pass ``spec`` (``None`` when there is no filter)."""
    predicate = compile_filter(spec)
    if predicate is None:
        return None
    return np.fromiter((predicate(c) for c in chunks), dtype=bool, count=len(chunks))
