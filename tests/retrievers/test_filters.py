"""Metadata filters: every operator, dotted keys, ISO dates, chunk fields, and the errors."""

from __future__ import annotations

import datetime as dt

import pytest

from ragkit.errors import ConfigError
from ragkit.retrievers.filters import OPERATORS, compile_filter, filter_mask
from ragkit.types import Chunk

CHUNKS = [
    Chunk("c0", "d0", "a", 0, 1, 10, {"year": 2019, "lang": "en", "tags": ["x", "y"], "date": "2024-01-31",
                                     "llm": {"content_type": "Procedural", "score": 0.9}}),
    Chunk("c1", "d0", "b", 1, 2, 20, {"year": 2021, "lang": "fr", "tags": ["y"], "date": "2024-02-01T09:30:00Z",
                                     "llm": {"content_type": "Reference"}}),
    Chunk("c2", "d1", "c", 0, 1, 30, {"year": 2024, "lang": "de", "date": dt.date(2024, 3, 1), "summary": "s"}),
    Chunk("c3", "d1", "d", 1, 2, 40, {"lang": "en", "date": "not a date"}),
]


def ids(spec: dict) -> list[str]:
    mask = filter_mask(spec, CHUNKS)
    return [c.id for c, keep in zip(CHUNKS, mask) if keep]


@pytest.mark.parametrize(("spec", "expected"), [
    ({"lang": "en"}, ["c0", "c3"]),
    ({"lang": ["fr", "de"]}, ["c1", "c2"]),
    ({"tags": "x"}, ["c0"]),                       # list-valued metadata contains the value
    ({"tags": ["y", "z"]}, ["c0", "c1"]),          # shares an element
    ({"year": {"gte": 2021}}, ["c1", "c2"]),
    ({"year": {"gt": 2021}}, ["c2"]),
    ({"year": {"lte": 2021}}, ["c0", "c1"]),
    ({"year": {"lt": 2021}}, ["c0"]),
    ({"year": {"gte": 2019, "lt": 2024}}, ["c0", "c1"]),
    ({"year": {"in": [2019, 2024]}}, ["c0", "c2"]),
    ({"summary": {"exists": True}}, ["c2"]),
    ({"summary": {"exists": False}}, ["c0", "c1", "c3"]),
    ({"year": {"exists": False}}, ["c3"]),
    ({"llm.content_type": "Procedural"}, ["c0"]),  # dotted key into nested metadata
    ({"llm.score": {"gt": 0.5}}, ["c0"]),
    ({"llm.missing": {"exists": False}}, ["c0", "c1", "c2", "c3"]),
    ({"lang": "en", "year": {"exists": True}}, ["c0"]),  # all conditions must hold
    ({"doc_id": "d1"}, ["c2", "c3"]),              # chunk field fallback
    ({"token_count": {"gte": 30}}, ["c2", "c3"]),
    ({"year": "2019"}, []),                        # a string is not the number 2019
])
def test_operators(spec, expected):
    assert ids(spec) == expected


@pytest.mark.parametrize(("spec", "expected"), [
    ({"date": {"gte": "2024-02-01"}}, ["c1", "c2"]),           # date-only bound: calendar dates compared
    ({"date": {"lte": "2024-02-01"}}, ["c0", "c1"]),           # includes 09:30 on 1 Feb
    ({"date": {"lt": "2024-02-01"}}, ["c0"]),
    ({"date": {"gt": "2024-02-01T09:00:00+00:00"}}, ["c1", "c2"]),  # with time: exact instant; date-only c2 by day
    ({"date": {"gt": "2024-02-01T10:00:00Z"}}, ["c2"]),
    ({"date": "2024-03-01"}, ["c2"]),                          # a date object equals its ISO string
    ({"date": {"gte": dt.date(2024, 2, 15)}}, ["c2"]),         # YAML gives date objects for unquoted dates
    ({"date": {"in": ["2024-01-31", "2024-03-01"]}}, ["c0", "c2"]),
])
def test_dates_compare_as_dates(spec, expected):
    assert ids(spec) == expected


def test_no_filter_is_none():
    assert compile_filter(None) is None
    assert filter_mask(None, CHUNKS) is None
    assert compile_filter({}) is None


@pytest.mark.parametrize(("spec", "match"), [
    ({"year": {"gtee": 3}}, r"filter\.year\.gtee: unknown filter operator 'gtee'.*allowed operators: gte, lte, gt, lt, in, exists"),
    ({"year": {"in": 2020}}, r"filter\.year\.in: expects a list of values, got 2020"),
    ({"year": {"exists": "yes"}}, r"filter\.year\.exists: expects true or false, got 'yes'"),
    ({"year": {"gte": [1, 2]}}, r"operator 'gte' needs a number, a string or an ISO date, got \[1, 2\]"),
    ({"year": {}}, r"filter\.year: an empty operator mapping"),
    ({"": 1}, r"filter keys must be non-empty dotted names, got ''"),
    ({"a..b": 1}, r"non-empty dotted names, got 'a\.\.b'"),
])
def test_bad_filters_raise_config_error(spec, match):
    with pytest.raises(ConfigError, match=match):
        compile_filter(spec)


def test_non_mapping_filter():
    with pytest.raises(ConfigError, match=r"a filter must be a mapping.*got \['lang'\]"):
        compile_filter(["lang"])  # type: ignore[arg-type]


def test_operator_list_is_the_contract():
    assert OPERATORS == ("gte", "lte", "gt", "lt", "in", "exists")
