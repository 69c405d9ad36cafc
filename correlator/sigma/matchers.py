"""IR -> predicate closures. Built once per rule; the per-event path is plain attribute-free Python calls.

A predicate is `pred(low, fields) -> bool` where `fields` is the event's flat field view and `low` holds, for
the fields the candidate rules read, the lower-cased string form of each value (a list for multi-valued fields,
None for null). The engine builds `low` once per event; case-insensitive leaves read it, cased, numeric and
network leaves read `fields`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from typing import Any

import ahocorasick_rs

from correlator.errors import RuleCompileError
from correlator.sigma.ir import Node, Pattern
from correlator.sigma.safe_regex import compile_search

Pred = Callable[[dict[str, Any], dict[str, Any]], bool]
Test = Callable[[str], bool]


def lowered(value: Any) -> Any:
    """The case-folded string form of a field value as leaves see it (lists stay lists, None stays None)."""
    if value is None:
        return None
    cls = value.__class__
    if cls is str:
        return value.lower()
    if cls is bool:
        return "true" if value else "false"
    if cls is list or cls is tuple:
        return [lowered(v) for v in value]
    return str(value).lower()


def as_text(value: Any) -> Any:
    """The string form of a value for cased leaves (lists stay lists)."""
    if value is None:
        return None
    cls = value.__class__
    if cls is str:
        return value
    if cls is bool:
        return "true" if value else "false"
    if cls is list or cls is tuple:
        return [as_text(v) for v in value]
    return str(value)


def glob_to_regex(glob: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(glob):
        ch = glob[i]
        if ch == "\\" and i + 1 < len(glob) and glob[i + 1] in "*?\\":
            out.append(re.escape(glob[i + 1]))
            i += 2
            continue
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


_SMALL_LIST = 3


def _contains_any(needles: list[str]) -> Test:
    """Substring test for a long list of needles: one Aho-Corasick pass."""
    if not all(needles):
        return lambda v: True  # an empty needle is in every string
    find = ahocorasick_rs.AhoCorasick(needles).find_matches_as_indexes

    def test(v: str) -> bool:
        return bool(find(v))

    return test


def string_test(patterns: Iterable[Pattern]) -> Test:
    """One test for an OR of patterns, specialised for the common shapes."""
    eqs: set[str] = set()
    sws: list[str] = []
    ews: list[str] = []
    cts: list[str] = []
    globs: list[str] = []
    any_value = False
    for kind, text in patterns:
        if kind == "eq":
            eqs.add(text)
        elif kind == "sw":
            sws.append(text)
        elif kind == "ew":
            ews.append(text)
        elif kind == "ct":
            cts.append(text)
        elif kind == "glob":
            globs.append(glob_to_regex(text))
        elif kind == "any":
            any_value = True
        else:
            raise RuleCompileError(f"unknown string pattern kind {kind!r}")
    if any_value:
        return lambda v: True
    tests: list[Test] = []
    if eqs:
        eqset = frozenset(eqs)
        tests.append(eqset.__contains__)
    if sws:
        swt = tuple(sws)
        tests.append(lambda v: v.startswith(swt))
    if ews:
        ewt = tuple(ews)
        tests.append(lambda v: v.endswith(ewt))
    if cts:
        if len(cts) == 1:
            needle = cts[0]
            tests.append(lambda v: needle in v)
        elif len(cts) <= _SMALL_LIST:
            ctt = tuple(cts)
            tests.append(lambda v: any(c in v for c in ctt))
        else:
            tests.append(_contains_any(cts))
    if globs:
        # Globs compile to star-height-one patterns; DOTALL so `*` spans newlines in command lines.
        rx = re.compile("(?:" + ")|(?:".join(globs) + ")", re.DOTALL)
        full = rx.fullmatch
        tests.append(lambda v: full(v) is not None)
    if len(tests) == 1:
        return tests[0]
    tt = tuple(tests)
    return lambda v: any(t(v) for t in tt)


def _on_field(field: str, test: Test, view: str) -> Pred:
    """A leaf reading one field from `low` (view="low") or from the raw fields (view="raw")."""
    if view == "low":

        def pred_low(low: dict[str, Any], fields: dict[str, Any]) -> bool:
            v = low[field]  # a LowerView: folds the field on first use
            if v is None:
                return False
            if v.__class__ is str:
                return test(v)
            return any(test(x) for x in v if x is not None)

        return pred_low

    def pred_raw(low: dict[str, Any], fields: dict[str, Any]) -> bool:
        v = as_text(fields.get(field))
        if v is None:
            return False
        if v.__class__ is str:
            return test(v)
        return any(test(x) for x in v if x is not None)

    return pred_raw


def _number_test(number: int | float) -> Callable[[Any], bool]:
    text = str(number)

    def test(v: Any) -> bool:
        cls = v.__class__
        if cls is int or cls is float:
            return bool(v == number)
        if cls is str:
            s = v.strip()
            if s == text:
                return True
            try:
                return float(s) == number
            except ValueError:
                return False
        return False

    return test


_CMP = {
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
}


def _as_number(v: Any) -> float | None:
    cls = v.__class__
    if cls is int or cls is float:
        return float(v)
    if cls is str:
        try:
            return float(v.strip())
        except ValueError:
            return None
    return None


def _any_value(field: str, test: Callable[[Any], bool]) -> Pred:
    def pred(low: dict[str, Any], fields: dict[str, Any]) -> bool:
        v = fields.get(field)
        if v is None:
            return False
        if v.__class__ is list:
            return any(test(x) for x in v if x is not None)
        return test(v)

    return pred


def _cidr_test(networks: tuple[str, ...]) -> Callable[[Any], bool]:
    nets = [ipaddress.ip_network(n, strict=False) for n in networks]
    v4 = [(int(n.network_address), int(n.netmask)) for n in nets if n.version == 4]
    v6 = [(int(n.network_address), int(n.netmask)) for n in nets if n.version == 6]

    def test(v: Any) -> bool:
        try:
            ip = ipaddress.ip_address(str(v).strip())
        except ValueError:
            return False
        if ip.version == 6 and ip.ipv4_mapped is not None and v4:
            ip = ip.ipv4_mapped
        num = int(ip)
        table = v4 if ip.version == 4 else v6
        return any(num & mask == net for net, mask in table)

    return test


def _keyword(test: Test, view: str) -> Pred:
    def pred(low: dict[str, Any], fields: dict[str, Any]) -> bool:
        conv = lowered if view == "low" else as_text
        for value in fields.values():
            v = conv(value)
            if v is None:
                continue
            if v.__class__ is str:
                if test(v):
                    return True
            elif any(test(x) for x in v if x.__class__ is str):
                return True
        return False

    return pred


def _fieldref(field: str, other: str, mode: str) -> Pred:
    def pred(low: dict[str, Any], fields: dict[str, Any]) -> bool:
        a = lowered(fields.get(field))
        b = lowered(fields.get(other))
        if a is None or b is None or a.__class__ is not str or b.__class__ is not str:
            return False
        if mode == "eq":
            return bool(a == b)
        if mode == "sw":
            return bool(a.startswith(b))
        if mode == "ew":
            return bool(a.endswith(b))
        return b in a

    return pred


def _true(low: dict[str, Any], fields: dict[str, Any]) -> bool:
    return True


def _false(low: dict[str, Any], fields: dict[str, Any]) -> bool:
    return False


def _all_of(preds: tuple[Pred, ...]) -> Pred:
    """AND, unrolled for the common small arities (a plain loop, no generator, for the rest)."""
    if len(preds) == 2:
        a, b = preds
        return lambda low, fields: a(low, fields) and b(low, fields)
    if len(preds) == 3:
        a, b, c = preds
        return lambda low, fields: a(low, fields) and b(low, fields) and c(low, fields)

    def all_pred(low: dict[str, Any], fields: dict[str, Any]) -> bool:
        for p in preds:  # noqa: SIM110 - a loop avoids a generator per call on the hot path
            if not p(low, fields):
                return False
        return True

    return all_pred


def _any_of(preds: tuple[Pred, ...]) -> Pred:
    """OR, unrolled for the common small arities (a plain loop, no generator, for the rest)."""
    if len(preds) == 2:
        a, b = preds
        return lambda low, fields: a(low, fields) or b(low, fields)
    if len(preds) == 3:
        a, b, c = preds
        return lambda low, fields: a(low, fields) or b(low, fields) or c(low, fields)

    def any_pred(low: dict[str, Any], fields: dict[str, Any]) -> bool:
        for p in preds:  # noqa: SIM110 - a loop avoids a generator per call on the hot path
            if p(low, fields):
                return True
        return False

    return any_pred


def compile_node(node: Node) -> Pred:
    """IR node -> predicate. Raises RuleCompileError for malformed IR or unsafe regexes."""
    tag = node[0]
    if tag == "and":
        return _all_of(tuple(compile_node(c) for c in node[1]))
    if tag == "or":
        return _any_of(tuple(compile_node(c) for c in node[1]))
    if tag == "not":
        inner = compile_node(node[1])
        return lambda low, fields: not inner(low, fields)
    if tag == "true":
        return _true
    if tag == "false":
        return _false
    if tag == "str":
        _, field, cased, patterns = node
        return _on_field(field, string_test(patterns), "raw" if cased else "low")
    if tag == "re":
        _, field, pattern, flags = node
        return _on_field(field, compile_search(pattern, flags), "raw")
    if tag == "num":
        return _any_value(node[1], _number_test(node[2]))
    if tag == "cmp":
        _, field, op, number = node
        cmp = _CMP[op]
        bound = float(number)

        def cmp_test(v: Any) -> bool:
            n = _as_number(v)
            return n is not None and bool(cmp(n, bound))

        return _any_value(field, cmp_test)
    if tag == "cidr":
        return _any_value(node[1], _cidr_test(node[2]))
    if tag == "bool":
        want = node[2]
        text = "true" if want else "false"
        return _any_value(node[1], lambda v: v is want or (v.__class__ is str and v.strip().lower() == text))
    if tag == "null":
        field = node[1]

        def null_pred(low: dict[str, Any], fields: dict[str, Any]) -> bool:
            v = fields.get(field)
            return v is None or v == "" or (v.__class__ is list and not v)

        return null_pred
    if tag == "exists":
        field, want = node[1], node[2]
        return lambda low, fields: (fields.get(field) is not None) is want
    if tag == "fieldref":
        return _fieldref(node[1], node[2], node[3])
    if tag == "kw":
        _, cased, patterns = node
        return _keyword(string_test(patterns), "raw" if cased else "low")
    if tag == "kwre":
        return _keyword(compile_search(node[1], node[2]), "raw")
    raise RuleCompileError(f"unknown IR node {tag!r}")
