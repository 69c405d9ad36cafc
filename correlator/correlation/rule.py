"""Correlation rules as data: frozen, validated on construction, round-trippable through `to_dict`/`from_dict`.

A `CorrelationRule` is the resolved form of a Sigma correlation rule: every reference in `rules:` and `aliases:` is
the canonical id of the referenced rule (its `id`, else its `name`), so the engine never looks a name up again.
`semantic_hash` identifies what the rule computes (type, referenced rules, grouping, timespan, condition, aliases,
and the semantic hashes of referenced correlation rules); engine state is keyed by it, so reloading an unchanged
rule keeps its windows and changing it starts it afresh. Title, level, tags and `generate` are not part of it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from correlator.correlation.definitions import (
    EAGER_OPERATORS,
    VALUE_TYPES,
    ConditionOp,
    CorrelationType,
)

__all__ = ["Condition", "CorrelationRule", "semantic_hash"]

_COMPARE: dict[ConditionOp, Callable[[float, float], bool]] = {
    ConditionOp.GT: lambda x, n: x > n,
    ConditionOp.GTE: lambda x, n: x >= n,
    ConditionOp.LT: lambda x, n: x < n,
    ConditionOp.LTE: lambda x, n: x <= n,
    ConditionOp.EQ: lambda x, n: x == n,
    ConditionOp.NEQ: lambda x, n: x != n,
}


@dataclass(frozen=True, slots=True)
class Condition:
    """`gte: 10`, or several bounds at once (a range, all must hold: `gt: 100, lte: 200`), with the value field
    of the value_* types and the percentile of value_percentile."""

    bounds: tuple[tuple[ConditionOp, float], ...]
    field: str | None = None
    percentile: int | None = None

    def __post_init__(self) -> None:
        if not self.bounds:
            raise ValueError("a correlation condition needs at least one of gt, gte, lt, lte, eq, neq")
        ops = [op for op, _ in self.bounds]
        if len(set(ops)) != len(ops):
            raise ValueError("a correlation condition names an operator twice")
        if self.percentile is not None and not 0 <= self.percentile <= 100:
            raise ValueError(f"percentile must be between 0 and 100, not {self.percentile}")

    @property
    def eager(self) -> bool:
        """Only lower bounds: decided on the event that makes it true, not when the window closes."""
        return all(op in EAGER_OPERATORS for op, _ in self.bounds)

    def holds(self, value: float) -> bool:
        return all(_COMPARE[op](value, bound) for op, bound in self.bounds)

    def compile(self) -> Callable[[float], bool]:
        """The condition as one closure (the hot path calls it once per event and rule)."""
        if len(self.bounds) == 1:
            op, n = self.bounds[0]
            single: dict[ConditionOp, Callable[[float], bool]] = {
                ConditionOp.GT: lambda x: x > n, ConditionOp.GTE: lambda x: x >= n,
                ConditionOp.LT: lambda x: x < n, ConditionOp.LTE: lambda x: x <= n,
                ConditionOp.EQ: lambda x: x == n, ConditionOp.NEQ: lambda x: x != n,
            }
            return single[op]
        checks = tuple((_COMPARE[op], bound) for op, bound in self.bounds)
        return lambda x: all(compare(x, bound) for compare, bound in checks)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {op.value: bound for op, bound in self.bounds}
        if self.field is not None:
            out["field"] = self.field
        if self.percentile is not None:
            out["percentile"] = self.percentile
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Condition:
        bounds: list[tuple[ConditionOp, float]] = []
        for key, value in data.items():
            if key in ("field", "percentile"):
                continue
            try:
                op = ConditionOp(key)
            except ValueError:
                raise ValueError(f"unknown condition operator '{key}'") from None
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"condition '{key}' needs a number, not {value!r}")  # noqa: TRY004 - a rule error
            bounds.append((op, value))
        bounds.sort(key=lambda b: list(ConditionOp).index(b[0]))
        fieldref = data.get("field")
        if fieldref is not None and not isinstance(fieldref, str):
            raise ValueError(f"condition field must be one field name, not {fieldref!r}")
        percentile = data.get("percentile")
        if percentile is not None and (isinstance(percentile, bool) or not isinstance(percentile, int)):
            raise ValueError(f"percentile must be an integer, not {percentile!r}")
        return cls(bounds=tuple(bounds), field=fieldref, percentile=percentile)


@dataclass(frozen=True, slots=True)
class CorrelationRule:
    """A resolved Sigma correlation rule."""

    id: str  # canonical id: the rule's `id`, else its `name`
    title: str
    type: CorrelationType
    rules: tuple[str, ...]  # canonical ids of the referenced rules, in the rule's order
    timespan_ms: int
    condition: Condition
    group_by: tuple[str, ...] = ()
    # alias -> ((canonical id of a referenced rule, that rule's field name), ...)
    aliases: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()
    generate: bool = False
    name: str | None = None
    level: str | None = None
    tags: tuple[str, ...] = ()
    description: str | None = None
    path: str | None = None
    line: int | None = None
    references: tuple[str, ...] = ()  # the references as written (`rules:`), for messages
    semantic_hash: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("a correlation rule needs an id or a name")
        if self.timespan_ms < 1:
            raise ValueError(f"timespan must be at least 1 ms, not {self.timespan_ms}")
        if not self.rules:
            raise ValueError("a correlation rule must reference at least one rule")
        if self.type in VALUE_TYPES and not self.condition.field:
            raise ValueError(f"{self.type.value} correlation rule without condition field")
        if self.type == CorrelationType.VALUE_PERCENTILE and self.condition.percentile is None:
            raise ValueError("value_percentile correlation rule without condition percentile")
        if self.type == CorrelationType.TEMPORAL_ORDERED and self.condition.bounds != (
            (ConditionOp.GTE, len(self.rules)),
        ):
            raise ValueError("temporal_ordered supports only the default condition (every rule, in order)")
        if self.type == CorrelationType.TEMPORAL and len(set(self.rules)) != len(self.rules):
            raise ValueError("temporal correlation rule references a rule twice")
        for alias, mapping in self.aliases:
            for source, _ in mapping:
                if source not in self.rules:
                    raise ValueError(f"alias '{alias}' names rule '{source}' that is not in rules")
        if not self.semantic_hash:
            object.__setattr__(self, "semantic_hash", semantic_hash(self, {}))

    @property
    def eager(self) -> bool:
        return self.condition.eager

    def field_for(self, name: str, source: str) -> str:
        """The field that `name` (a group-by field or alias) means in events matched by rule `source`."""
        for alias, mapping in self.aliases:
            if alias == name:
                for rule_id, fieldname in mapping:
                    if rule_id == source:
                        return fieldname
        return name

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "title": self.title, "type": self.type.value,
            "rules": list(self.rules), "timespan_ms": self.timespan_ms, "condition": self.condition.to_dict(),
            "group_by": list(self.group_by),
            "aliases": {alias: dict(mapping) for alias, mapping in self.aliases},
            "generate": self.generate, "level": self.level, "tags": list(self.tags),
            "description": self.description, "path": self.path, "line": self.line,
            "references": list(self.references), "semantic_hash": self.semantic_hash,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CorrelationRule:
        return cls(
            id=data["id"], name=data.get("name"), title=data["title"], type=CorrelationType(data["type"]),
            rules=tuple(data["rules"]), timespan_ms=int(data["timespan_ms"]),
            condition=Condition.from_dict(data["condition"]), group_by=tuple(data.get("group_by") or ()),
            aliases=tuple((alias, tuple(mapping.items())) for alias, mapping in (data.get("aliases") or {}).items()),
            generate=bool(data.get("generate", False)), level=data.get("level"), tags=tuple(data.get("tags") or ()),
            description=data.get("description"), path=data.get("path"), line=data.get("line"),
            references=tuple(data.get("references") or ()), semantic_hash=data.get("semantic_hash") or "",
        )


def semantic_hash(rule: CorrelationRule, referenced: Mapping[str, str]) -> str:
    """What the rule computes, as a hash: changes when its windows would mean something else.

    `referenced` maps the canonical id of each referenced *correlation* rule to its own semantic hash, so a
    change below a chain reaches the rules above it.
    """
    content = {
        "id": rule.id,
        "type": rule.type.value,
        "rules": [[ref, referenced.get(ref, "")] for ref in rule.rules],
        "group_by": list(rule.group_by),
        "timespan_ms": rule.timespan_ms,
        "condition": rule.condition.to_dict(),
        "aliases": sorted([alias, sorted(mapping)] for alias, mapping in rule.aliases),
    }
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]
