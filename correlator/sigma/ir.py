"""The compiled-rule intermediate representation: plain tuples, so it pickles into the rule cache and is built
into closures without pySigma on a warm start.

Nodes (first element is the tag):

    ("and", (child, ...))                     ("or", (child, ...))           ("not", child)
    ("true",)                                 ("false",)
    ("str", field, cased, (pattern, ...))     any pattern matches (OR); a field that is a list matches if any item
    ("re", field, regex, flags)               flags: a string of i/m/s
    ("num", field, number)                    ("cmp", field, op, number)     op: lt/lte/gt/gte
    ("cidr", field, (network, ...))           ("null", field)                ("exists", field, bool)
    ("bool", field, bool)                     ("fieldref", field, other_field, mode)  mode: eq/sw/ew/ct
    ("kw", cased, (pattern, ...))             field-less keyword: searched in every field value
    ("kwre", regex, flags)

A pattern is (kind, text) with kind one of eq / sw / ew / ct / glob / any; text is lower-cased unless cased.
Glob text keeps `*` and `?` as wildcards and `\\*`, `\\?`, `\\\\` as escaped literals.
"""

from __future__ import annotations

import re
from typing import Any

Node = tuple[Any, ...]
Pattern = tuple[str, str]

TRUE: Node = ("true",)
FALSE: Node = ("false",)

FIELD_LEAVES = frozenset({"str", "re", "num", "cmp", "cidr", "null", "exists", "bool", "fieldref"})


def make_and(children: list[Node]) -> Node:
    """AND with constant folding and flattening of nested ANDs."""
    flat: list[Node] = []
    for child in children:
        if child == TRUE:
            continue
        if child == FALSE:
            return FALSE
        if child[0] == "and":
            flat.extend(child[1])
        else:
            flat.append(child)
    if not flat:
        return TRUE
    if len(flat) == 1:
        return flat[0]
    return ("and", tuple(flat))


def make_or(children: list[Node]) -> Node:
    """OR with constant folding, flattening, and merging of string leaves on the same field."""
    flat: list[Node] = []
    for child in children:
        if child == FALSE:
            continue
        if child == TRUE:
            return TRUE
        if child[0] == "or":
            flat.extend(child[1])
        else:
            flat.append(child)
    merged: list[Node] = []
    by_field: dict[tuple[str, str, bool], int] = {}
    for child in flat:
        if child[0] == "str":
            key = ("str", child[1], child[2])
            at = by_field.get(key)
            if at is not None:
                prev = merged[at]
                merged[at] = ("str", prev[1], prev[2], prev[3] + child[3])
                continue
            by_field[key] = len(merged)
        elif child[0] == "re" and _mergeable_regex(child[2]):
            # OR'ed regexes on one field become one alternation: one search instead of several
            key = ("re", child[1], False)
            at = by_field.get(key)
            scoped = _scoped(child[2], child[3])
            if at is not None:
                prev = merged[at]
                merged[at] = ("re", prev[1], f"{prev[2]}|{scoped}", "")
                continue
            by_field[key] = len(merged)
            child = ("re", child[1], scoped, "")
        merged.append(child)
    if not merged:
        return FALSE
    if len(merged) == 1:
        return merged[0]
    return ("or", tuple(merged))


_GLOBAL_FLAGS = re.compile(r"\(\?[aiLmsux]+\)")
_BACKREF = re.compile(r"\\[1-9]|\(\?P[<=]|\(\?<[A-Za-z_]")


def _mergeable_regex(pattern: str) -> bool:
    """A regex that keeps its meaning inside `(?flags:...)|...`: no global inline flags, no group references
    or names (numbering would shift), and valid for Python's parser."""
    if _GLOBAL_FLAGS.search(pattern) or _BACKREF.search(pattern):
        return False
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True


def _scoped(pattern: str, flags: str) -> str:
    return f"(?{flags}:{pattern})" if flags else f"(?:{pattern})"


def make_not(child: Node) -> Node:
    if child == TRUE:
        return FALSE
    if child == FALSE:
        return TRUE
    if child[0] == "not":
        inner: Node = child[1]
        return inner
    return ("not", child)


def fields_of(node: Node) -> set[str]:
    """Every field name the node reads."""
    tag = node[0]
    if tag in ("and", "or"):
        out: set[str] = set()
        for child in node[1]:
            out |= fields_of(child)
        return out
    if tag == "not":
        return fields_of(node[1])
    if tag == "fieldref":
        return {node[1], node[2]}
    if tag in FIELD_LEAVES:
        return {node[1]}
    return set()


def required_fields(node: Node) -> frozenset[str]:
    """Fields that must be present (with a value) for the node to be true: AND unions, OR intersects, NOT and
    null/exists-false tests require nothing."""
    tag = node[0]
    if tag == "and":
        acc: set[str] = set()
        for child in node[1]:
            acc |= required_fields(child)
        return frozenset(acc)
    if tag == "or":
        sets = [required_fields(child) for child in node[1]]
        return frozenset.intersection(*sets) if sets else frozenset()
    if tag in ("not", "null", "true", "false", "kw", "kwre"):
        return frozenset()
    if tag == "exists":
        return frozenset({node[1]}) if node[2] else frozenset()
    if tag == "fieldref":
        return frozenset({node[1], node[2]})
    if tag in FIELD_LEAVES:
        return frozenset({node[1]})
    return frozenset()


def glob_literals(text: str) -> list[str]:
    """The literal runs of a glob pattern, unescaped (`a*b\\*c` -> ['a', 'b*c'])."""
    runs: list[str] = []
    cur: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in "*?\\":
            cur.append(text[i + 1])
            i += 2
            continue
        if ch in "*?":
            if cur:
                runs.append("".join(cur))
                cur = []
        else:
            cur.append(ch)
        i += 1
    if cur:
        runs.append("".join(cur))
    return runs


def is_eventid_leaf(node: Node) -> frozenset[int] | None:
    if node[0] == "num" and node[1] == "EventID" and isinstance(node[2], int):
        return frozenset({node[2]})
    if node[0] == "str" and node[1] == "EventID" and all(k == "eq" and t.isdigit() for k, t in node[3]):
        return frozenset(int(t) for _, t in node[3])
    if node[0] == "or":
        acc: set[int] = set()
        for child in node[1]:
            ids = is_eventid_leaf(child)
            if ids is None:
                return None
            acc |= ids
        return frozenset(acc)
    return None


def route_event_ids(node: Node) -> frozenset[int] | None:
    """Event ids one of which every match has (from EventID conditions anywhere under AND/OR), or None."""
    direct = is_eventid_leaf(node)
    if direct is not None:
        return direct
    tag = node[0]
    if tag == "and":
        acc: frozenset[int] | None = None
        for child in node[1]:
            ids = route_event_ids(child)
            if ids is not None:
                acc = ids if acc is None else acc & ids
        return acc
    if tag == "or":
        union: set[int] = set()
        for child in node[1]:
            ids = route_event_ids(child)
            if ids is None:
                return None
            union |= ids
        return frozenset(union)
    return None
