"""pySigma's parsed condition tree -> our IR (`correlator.sigma.ir`). pySigma does all parsing (YAML, modifiers,
conditions, `1 of x*`); this module only translates its typed values into IR leaves."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaRegularExpressionFlag,
    SigmaString,
    SpecialChars,
)

from correlator.errors import RuleCompileError
from correlator.sigma.ir import Node, Pattern, make_and, make_not, make_or

_OPS = {
    CompareOperators.LT: "lt",
    CompareOperators.LTE: "lte",
    CompareOperators.GT: "gt",
    CompareOperators.GTE: "gte",
}
_RE_FLAGS = {
    SigmaRegularExpressionFlag.IGNORECASE: "i",
    SigmaRegularExpressionFlag.MULTILINE: "m",
    SigmaRegularExpressionFlag.DOTALL: "s",
}

Placeholders = Mapping[str, Sequence[str]]

def _expand_placeholders(value: SigmaString, placeholders: Placeholders) -> list[SigmaString]:
    if not value.contains_placeholder():
        return [value]

    def values_for(ph: Placeholder) -> Iterator[SigmaString]:
        if ph.name not in placeholders:
            raise RuleCompileError(
                f"placeholder %{ph.name}% has no values: add it to the placeholder values file (--placeholders)"
            )
        return iter([SigmaString(str(v)) for v in placeholders[ph.name]])

    return list(value.replace_placeholders(values_for))

def string_pattern(value: SigmaString, *, cased: bool, keyword: bool = False) -> Pattern:
    """A SigmaString as one (kind, text) pattern. Keywords without wildcards search as substrings."""
    parts = value.s
    lead = bool(parts) and parts[0] is SpecialChars.WILDCARD_MULTI
    trail = len(parts) > 1 and parts[-1] is SpecialChars.WILDCARD_MULTI
    inner = parts[(1 if lead else 0) : (len(parts) - 1 if trail else len(parts))]
    if lead and len(parts) == 1:
        return ("any", "")
    if all(isinstance(p, str) for p in inner):
        text = "".join(p for p in inner if isinstance(p, str))
        if not cased:
            text = text.lower()
        if lead and trail:
            return ("ct", text)
        if lead:
            return ("ct", text) if keyword else ("ew", text)
        if trail:
            return ("ct", text) if keyword else ("sw", text)
        return ("ct", text) if keyword else ("eq", text)
    glob: list[str] = []
    for p in parts:
        if p is SpecialChars.WILDCARD_MULTI:
            glob.append("*")
        elif p is SpecialChars.WILDCARD_SINGLE:
            glob.append("?")
        elif isinstance(p, str):
            chunk = p if cased else p.lower()
            glob.append(chunk.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?"))
        else:
            raise RuleCompileError(f"unsupported string part {p!r}")
    return ("glob", "".join(glob))

def value_to_ir(field: str | None, value: Any, placeholders: Placeholders) -> Node:
    """One typed Sigma value on a field (or field-less keyword when field is None) as an IR node."""
    if isinstance(value, SigmaExpansion):
        return make_or([value_to_ir(field, v, placeholders) for v in value.values])
    if isinstance(value, SigmaString):
        cased = isinstance(value, SigmaCasedString)
        strings = _expand_placeholders(value, placeholders)
        pats = tuple(string_pattern(s, cased=cased, keyword=field is None) for s in strings)
        if field is None:
            return ("kw", cased, pats)
        return ("str", field, cased, pats)
    if isinstance(value, SigmaRegularExpression):
        flags = "".join(sorted(_RE_FLAGS[f] for f in value.flags if f in _RE_FLAGS))
        return ("kwre", str(value.regexp), flags) if field is None else ("re", field, str(value.regexp), flags)
    if isinstance(value, SigmaBool):
        if field is None:
            return ("kw", False, (("ct", str(value.boolean).lower()),))
        return ("bool", field, bool(value.boolean))
    if isinstance(value, SigmaNumber):
        if field is None:
            return ("kw", False, (("ct", str(value.number)),))
        return ("num", field, value.number)
    if field is None:
        raise RuleCompileError(f"keyword detection with a {type(value).__name__} value is not supported")
    if isinstance(value, SigmaNull):
        return ("null", field)
    if isinstance(value, SigmaExists):
        return ("exists", field, bool(value.exists))
    if isinstance(value, SigmaCIDRExpression):
        return ("cidr", field, (str(value.network),))
    if isinstance(value, SigmaCompareExpression):
        return ("cmp", field, _OPS[value.op], value.number.number)
    if isinstance(value, SigmaFieldReference):
        sw = bool(getattr(value, "starts_with", False))
        ew = bool(getattr(value, "ends_with", False))
        mode = "ct" if sw and ew else "sw" if sw else "ew" if ew else "eq"
        return ("fieldref", field, value.field, mode)
    raise RuleCompileError(f"unsupported value type {type(value).__name__} on field {field!r}")

def condition_to_ir(node: Any, placeholders: Placeholders) -> Node:
    """pySigma condition tree (after `SigmaCondition.parse()`) -> IR."""
    if isinstance(node, ConditionAND):
        return make_and([condition_to_ir(a, placeholders) for a in node.args])
    if isinstance(node, ConditionOR):
        return make_or([condition_to_ir(a, placeholders) for a in node.args])
    if isinstance(node, ConditionNOT):
        return make_not(condition_to_ir(node.args[0], placeholders))
    if isinstance(node, ConditionFieldEqualsValueExpression):
        return value_to_ir(node.field, node.value, placeholders)
    if isinstance(node, ConditionValueExpression):
        return value_to_ir(None, node.value, placeholders)
    raise RuleCompileError(f"unsupported condition element {type(node).__name__}")

def rule_to_ir(rule: Any, placeholders: Placeholders) -> Node:
    """All conditions of a rule (a rule may list several; any of them firing is a match)."""
    conditions = [condition_to_ir(c.parse(), placeholders) for c in rule.detection.parsed_condition]
    return make_or(conditions)

