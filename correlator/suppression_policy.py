"""The suppression policy: which alerts are suppressed, over which window and key (see `correlator.suppression`
for what suppression does). YAML-ready (`from_dict`/`to_dict`)::

    window: 10m                        # default 5m; ms, s, m, h, d, w (an integer is milliseconds)
    fields: [host.name, user.name, source.ip, destination.ip]   # the key (the default)
    missing_fields: suppress           # suppress (default) | do_not_suppress
    exempt_kinds: [correlation]        # rule kinds never suppressed (default: correlation, already aggregates)
    max_ids: 10                        # ids of suppressed alerts listed on the representative
    rules:                             # per-rule overrides, by rule id
      3b5e2c1a-...: {window: 1h, fields: [user.name]}
      noisy-but-vital: {disabled: true}

A rule with an override that is not `disabled` is suppressed even when its kind is exempt: overrides win.
Errors name the key: ``suppression policy: rules.r1.window: must be at least 1 ms, not 0``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from correlator.cases.definitions import format_duration
from correlator.definitions import ALERT_KINDS
from correlator.errors import CorrelatorError
from correlator.model import MatchedRule
from correlator.timespec import TimeSpecError, parse_duration_ms

__all__ = [
    "DEFAULT_FIELDS",
    "DEFAULT_POLICY",
    "MISSING_FIELDS",
    "RULE_KINDS",
    "RuleSuppression",
    "SuppressionError",
    "SuppressionPolicy",
    "SuppressionPolicyError",
    "SuppressionScope",
]

DEFAULT_FIELDS: Final = ("host.name", "user.name", "source.ip", "destination.ip")
RULE_KINDS: Final = ALERT_KINDS
MISSING_FIELDS: Final = ("suppress", "do_not_suppress")
_TOP_KEYS: Final = ("window", "fields", "missing_fields", "exempt_kinds", "max_ids", "rules")
_RULE_KEYS: Final = ("window", "fields", "disabled")


class SuppressionError(CorrelatorError):
    """Root of the suppression errors."""


class SuppressionPolicyError(SuppressionError):
    """A policy value that is not valid: names the key (``rules.<id>.window``) and the reason."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"suppression policy: {key}: {reason}")


def _window(value: Any, key: str) -> int:
    """A window from a policy value: a duration string or an integer number of ms, at least 1 ms."""
    if isinstance(value, str):
        try:
            return parse_duration_ms(value)
        except TimeSpecError as exc:
            raise SuppressionPolicyError(key, str(exc)) from None
    _check_window(value, key)
    return int(value)


def _check_window(value: Any, key: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SuppressionPolicyError(key, f"must be a duration (10m) or a number of ms, not {value!r}")
    if value < 1:
        raise SuppressionPolicyError(key, f"must be at least 1 ms, not {value}")


def _check_fields(value: Any, key: str) -> None:
    if not isinstance(value, tuple) or not value:
        raise SuppressionPolicyError(key, f"must be a non-empty list of field names, not {value!r}")
    for name in value:
        if not isinstance(name, str) or not name.strip() or name != name.strip():
            raise SuppressionPolicyError(key, f"invalid field name {name!r}")
    duplicates = sorted({name for name in value if value.count(name) > 1})
    if duplicates:
        raise SuppressionPolicyError(key, f"duplicate field(s) {', '.join(duplicates)}")


def _fields(value: Any, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        raise SuppressionPolicyError(key, f"must be a non-empty list of field names, not {value!r}")
    fields = tuple(value)
    _check_fields(fields, key)
    return fields


@dataclass(frozen=True, slots=True)
class RuleSuppression:
    """One rule's override: its own window and/or key fields (None: the policy's), or no suppression at all."""

    window_ms: int | None = None
    fields: tuple[str, ...] | None = None
    disabled: bool = False

    def __post_init__(self) -> None:
        if self.window_ms is not None:
            _check_window(self.window_ms, "window")
        if self.fields is not None:
            _check_fields(self.fields, "fields")
        if not isinstance(self.disabled, bool):
            raise SuppressionPolicyError("disabled", f"must be true or false, not {self.disabled!r}")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.window_ms is not None:
            out["window"] = format_duration(self.window_ms)
        if self.fields is not None:
            out["fields"] = list(self.fields)
        if self.disabled:
            out["disabled"] = True
        return out

    @classmethod
    def from_dict(cls, data: Any, key: str = "") -> RuleSuppression:
        """`key`: where the mapping sits (``rules.<id>``), to prefix error keys with."""
        prefix = f"{key}." if key else ""
        if not isinstance(data, Mapping):
            raise SuppressionPolicyError(key or "rule", f"must be a mapping, not {data!r}")
        _check_keys(data, _RULE_KEYS, prefix)
        window = _window(data["window"], f"{prefix}window") if data.get("window") is not None else None
        fields = _fields(data["fields"], f"{prefix}fields") if data.get("fields") is not None else None
        disabled = data.get("disabled", False)
        if not isinstance(disabled, bool):
            raise SuppressionPolicyError(f"{prefix}disabled", f"must be true or false, not {disabled!r}")
        return cls(window, fields, disabled)


@dataclass(frozen=True, slots=True)
class SuppressionScope:
    """What suppression means for one rule: its window and key fields."""

    window_ms: int
    fields: tuple[str, ...]


def _check_keys(data: Mapping[Any, Any], known: Sequence[str], prefix: str) -> None:
    for key in data:
        if key not in known:
            raise SuppressionPolicyError(f"{prefix}{key}", f"unknown key (expected one of {', '.join(known)})")


@dataclass(frozen=True, slots=True)
class SuppressionPolicy:
    """Which alerts are suppressed, over which window and key (see the module doc). Validated on construction."""

    window_ms: int = 5 * 60_000
    fields: tuple[str, ...] = DEFAULT_FIELDS
    exempt_kinds: frozenset[str] = frozenset({"correlation"})
    rules: Mapping[str, RuleSuppression] = field(default_factory=dict)
    missing_fields: str = "suppress"
    max_ids: int = 10

    def __post_init__(self) -> None:
        _check_window(self.window_ms, "window")
        _check_fields(self.fields, "fields")
        if not isinstance(self.exempt_kinds, frozenset):
            raise SuppressionPolicyError("exempt_kinds", f"must be a set of rule kinds, not {self.exempt_kinds!r}")
        unknown = sorted(str(kind) for kind in self.exempt_kinds if kind not in RULE_KINDS)
        if unknown:
            raise SuppressionPolicyError(
                "exempt_kinds", f"unknown rule kind(s) {', '.join(unknown)} (expected {', '.join(sorted(RULE_KINDS))})")
        if self.missing_fields not in MISSING_FIELDS:
            raise SuppressionPolicyError("missing_fields",
                                         f"must be suppress or do_not_suppress, not {self.missing_fields!r}")
        if isinstance(self.max_ids, bool) or not isinstance(self.max_ids, int) or self.max_ids < 0:
            raise SuppressionPolicyError("max_ids", f"must be a whole number >= 0, not {self.max_ids!r}")
        for rule_id, override in self.rules.items():
            if not isinstance(rule_id, str) or not rule_id.strip():
                raise SuppressionPolicyError("rules", f"invalid rule id {rule_id!r}")
            if not isinstance(override, RuleSuppression):
                raise SuppressionPolicyError(f"rules.{rule_id}", f"must be a RuleSuppression, not {override!r}")
        object.__setattr__(self, "rules", MappingProxyType(dict(self.rules)))

    def exemption(self, rule: MatchedRule) -> str | None:
        """Why alerts of `rule` are not suppressed, or None when they are."""
        override = self.rules.get(rule.id)
        if override is not None:
            return f"suppression is disabled for rule {rule.id!r}" if override.disabled else None
        if rule.kind in self.exempt_kinds:
            return f"rule kind {rule.kind!r} is exempt from suppression"
        return None

    def scope(self, rule: MatchedRule) -> SuppressionScope | None:
        """The window and key fields for alerts of `rule`; None when they are not suppressed."""
        if self.exemption(rule) is not None:
            return None
        override = self.rules.get(rule.id)
        if override is None:
            return SuppressionScope(self.window_ms, self.fields)
        return SuppressionScope(override.window_ms or self.window_ms, override.fields or self.fields)

    def to_dict(self) -> dict[str, Any]:
        return {
            "window": format_duration(self.window_ms),
            "fields": list(self.fields),
            "missing_fields": self.missing_fields,
            "exempt_kinds": sorted(self.exempt_kinds),
            "max_ids": self.max_ids,
            "rules": {rule_id: override.to_dict() for rule_id, override in sorted(self.rules.items())},
        }

    @classmethod
    def from_dict(cls, data: Any) -> SuppressionPolicy:
        """From a mapping (a YAML document); every key is optional. Errors name the key."""
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise SuppressionPolicyError("policy", f"must be a mapping, not {data!r}")
        _check_keys(data, _TOP_KEYS, "")
        default = DEFAULT_POLICY
        window = _window(data["window"], "window") if data.get("window") is not None else default.window_ms
        fields = _fields(data["fields"], "fields") if data.get("fields") is not None else default.fields
        kinds = data.get("exempt_kinds", sorted(default.exempt_kinds))
        if isinstance(kinds, str):
            kinds = [kinds]
        if not isinstance(kinds, list | tuple) or not all(isinstance(k, str) for k in kinds):
            raise SuppressionPolicyError("exempt_kinds", f"must be a list of rule kinds, not {kinds!r}")
        rules_data = data.get("rules") or {}
        if not isinstance(rules_data, Mapping):
            raise SuppressionPolicyError("rules", f"must be a mapping of rule id to override, not {rules_data!r}")
        rules: dict[str, RuleSuppression] = {}
        for rule_id, item in rules_data.items():
            if not isinstance(rule_id, str) or not rule_id.strip():
                raise SuppressionPolicyError("rules", f"invalid rule id {rule_id!r}")
            rules[rule_id] = RuleSuppression.from_dict(item, f"rules.{rule_id}")
        return cls(window_ms=window, fields=fields, exempt_kinds=frozenset(kinds), rules=rules,
                   missing_fields=data.get("missing_fields", default.missing_fields),
                   max_ids=data.get("max_ids", default.max_ids))


DEFAULT_POLICY: Final = SuppressionPolicy()
