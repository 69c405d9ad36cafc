"""Translate the store's query AST (`correlator.store.query`) into Elasticsearch Query DSL (pure functions).

Elasticsearch refuses queries that do not fit a field's type (a case-insensitive term on a ``long``, a prefix on an
``ip``), so translation needs each field's type, as the ``_field_caps`` API reports it: `FieldKinds` maps a field
to its types, and for a field whose type differs between indices (dynamic mapping on different days), the indices
of each type. Per type:

- ``keyword``: ``term`` / ``prefix`` with ``case_insensitive``; ``text`` and ``ip`` fields use their ``.keyword``
  sub-field the same way (the whole value, as in SQLite);
- numbers: ``term`` on the number when the value is one (``process.pid:4242``), else nothing matches;
- ``boolean``: ``term`` when the value is ``true``/``false`` in any case; ``date``: ``term`` on an ISO-8601 value;
- unmapped fields and other types: nothing matches (``match_none``).

A field with several types gets one clause per type, each limited to its indices with a ``_index`` filter, which
Elasticsearch rewrites away on the other indices before building the field query.
Free text (`Text`) searches `TEXT_FIELD`: ``match_phrase`` on the lower-cased words, the last one a prefix with
``*`` (``prefix`` for one word, with no limit on the words it expands to; ``match_phrase_prefix`` for more, whose
last word expands to at most `MAX_PREFIX_EXPANSIONS` words).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, TypeAlias

from correlator.store.es_mapping import TEXT_FIELD, words
from correlator.store.query import And, FieldExists, FieldMatch, MatchAll, Not, Or, Query, Text, parse_number

__all__ = [
    "MATCH_NONE",
    "FieldKinds",
    "query_fields",
    "sort_clause",
    "terms_field",
    "to_dsl",
]

# field -> {type: indices holding the field with that type, or None when the field has one type everywhere}
FieldKinds: TypeAlias = Mapping[str, Mapping[str, tuple[str, ...] | None]]

MATCH_NONE: Final[dict[str, Any]] = {"match_none": {}}
MATCH_ALL: Final[dict[str, Any]] = {"match_all": {}}
_INTEGRAL: Final = frozenset({"long", "integer", "short", "byte", "unsigned_long"})
_FRACTIONAL: Final = frozenset({"double", "float", "half_float", "scaled_float"})
_VIA_KEYWORD: Final = frozenset({"text", "ip", "match_only_text"})
MAX_PREFIX_EXPANSIONS: Final = 10_000


def query_fields(node: Query) -> set[str]:
    """The fields a query names (for a ``_field_caps`` request)."""
    match node:
        case FieldMatch(field=name) | FieldExists(field=name):
            return {name}
        case Not(item=item):
            return query_fields(item)
        case And(items=items) | Or(items=items):
            return set().union(*(query_fields(item) for item in items))
    return set()


def to_dsl(node: Query, kinds: FieldKinds) -> dict[str, Any]:
    match node:
        case MatchAll():
            return dict(MATCH_ALL)
        case Text(text=text, prefix=prefix):
            return _text(text, prefix=prefix)
        case FieldExists(field=name):
            return {"exists": {"field": name}}
        case FieldMatch():
            return _field_match(node, kinds.get(node.field, {}))
        case Not(item=item):
            return {"bool": {"must_not": [to_dsl(item, kinds)]}}
        case And(items=items):
            return {"bool": {"filter": [to_dsl(item, kinds) for item in items]}}
        case Or(items=items):
            return {"bool": {"should": [to_dsl(item, kinds) for item in items], "minimum_should_match": 1}}
    raise TypeError(f"not a query node: {node!r}")


def _text(text: str, *, prefix: bool) -> dict[str, Any]:
    terms = words(text)
    if not terms:
        return dict(MATCH_NONE)
    if prefix and len(terms) == 1:
        return {"prefix": {TEXT_FIELD: {"value": terms[0]}}}
    if prefix:
        return {"match_phrase_prefix": {TEXT_FIELD: {"query": " ".join(terms),
                                                     "max_expansions": MAX_PREFIX_EXPANSIONS}}}
    return {"match_phrase": {TEXT_FIELD: {"query": " ".join(terms)}}}


def _field_match(node: FieldMatch, types: Mapping[str, tuple[str, ...] | None]) -> dict[str, Any]:
    clauses: list[dict[str, Any]] = []
    for kind, indices in sorted(types.items()):
        clause = _typed_match(node, kind)
        if clause is None:
            continue
        if indices is not None:
            clause = {"bool": {"filter": [{"terms": {"_index": list(indices)}}, clause]}}
        clauses.append(clause)
    if not clauses:
        return dict(MATCH_NONE)
    if len(clauses) == 1:
        return clauses[0]
    return {"bool": {"should": clauses, "minimum_should_match": 1}}


def _typed_match(node: FieldMatch, kind: str) -> dict[str, Any] | None:
    name, value = node.field, node.value
    if kind == "keyword" or kind in _VIA_KEYWORD:
        target = name if kind == "keyword" else f"{name}.keyword"
        operator = "prefix" if node.prefix else "term"
        return {operator: {target: {"value": value, "case_insensitive": True}}}
    if node.prefix:
        return None
    if kind in _INTEGRAL or kind in _FRACTIONAL:
        number = _number(value, integral=kind in _INTEGRAL)
        return None if number is None else {"term": {name: {"value": number}}}
    if kind == "boolean":
        lowered = value.lower()
        return {"term": {name: {"value": lowered == "true"}}} if lowered in ("true", "false") else None
    if kind in ("date", "date_nanos"):
        return {"term": {name: {"value": value}}} if _is_iso_datetime(value) else None
    return None


def _number(value: str, *, integral: bool) -> int | float | None:
    number = parse_number(value)
    if number is None or not integral or isinstance(number, int):
        return number
    return int(number) if number.is_integer() else None


def _is_iso_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _single_kind(types: Mapping[str, tuple[str, ...] | None]) -> str | None:
    """The type used to sort or aggregate a field: its only type, else the first string-like one."""
    if not types:
        return None
    if len(types) == 1:
        return next(iter(types))
    for kind in ("keyword", *sorted(_VIA_KEYWORD)):
        if kind in types:
            return kind
    return sorted(types)[0]


def terms_field(name: str, types: Mapping[str, tuple[str, ...] | None]) -> tuple[str, str] | None:
    """(field to aggregate, its type) for a terms aggregation, or None when the field cannot be aggregated."""
    kind = _single_kind(types)
    if kind is None or kind in ("object", "nested", "unmapped"):
        return None
    if kind in _VIA_KEYWORD:
        return f"{name}.keyword", "keyword"
    return name, kind


def sort_clause(name: str, types: Mapping[str, tuple[str, ...] | None], *, descending: bool) -> dict[str, Any]:
    order = "desc" if descending else "asc"
    kind = _single_kind(types)
    if kind is None or kind in ("object", "nested", "unmapped"):
        return {name: {"order": order, "missing": "_last", "unmapped_type": "keyword"}}
    target = f"{name}.keyword" if kind in _VIA_KEYWORD else name
    return {target: {"order": order, "missing": "_last", "unmapped_type": "keyword"}}
