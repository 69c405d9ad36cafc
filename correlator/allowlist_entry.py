"""An allowlist entry (one rule exception) as data: frozen, validated on construction, `to_dict`/`from_dict`
round trip; errors name the key (``allowlist entry: value: '10.0.0.1/8' has host bits set (did you mean
10.0.0.0/8?)``). Matching, changes and audit records: `correlator.allowlist`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any, Final

import orjson

from correlator.errors import CorrelatorError
from correlator.model import ms_to_iso

__all__ = [
    "ANY_RULE",
    "AllowOperator",
    "AllowlistChangeError",
    "AllowlistEntry",
    "AllowlistEntryError",
    "AllowlistError",
    "content_id",
    "entry_id_for",
    "parse_network",
    "parse_operator",
    "scalar_text",
]

ANY_RULE: Final = "*"
_FIELD: Final = re.compile(r"[^\s.]+(\.[^\s.]+)*")
_KEYS: Final = ("id", "rule", "field", "operator", "value", "expires_ms", "author", "reason", "created_ms",
                "revoked_ms", "version")
_REQUIRED: Final = ("rule", "field", "value", "author", "reason")


class AllowlistError(CorrelatorError):
    """Root of the allowlist errors."""


class AllowlistEntryError(AllowlistError):
    """An entry value that is not valid: names the key and the reason."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"allowlist entry: {key}: {reason}")


class AllowlistChangeError(AllowlistError):
    """A change that cannot apply to an entry as it is (revoked, nothing to change, bad argument)."""

    def __init__(self, entry_id: str, action: str, reason: str) -> None:
        self.entry_id = entry_id
        self.action = action
        self.reason = reason
        super().__init__(f"allowlist entry {entry_id}: {action}: {reason}")


class AllowOperator(StrEnum):
    EQUALS = "equals"
    WILDCARD = "wildcard"
    CIDR = "cidr"
    IN = "in"


def parse_operator(value: Any) -> AllowOperator:
    try:
        return AllowOperator(value)
    except ValueError:
        raise AllowlistEntryError(
            "operator", f"unknown operator {value!r} (expected {', '.join(AllowOperator)})") from None


def _text(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise AllowlistEntryError(key, f"must be a non-empty string, not {value!r}")
    return value


def _opt_ms(value: Any, key: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise AllowlistEntryError(key, f"must be epoch milliseconds, not {value!r}")
    if value < 0:
        raise AllowlistEntryError(key, f"must not be negative, not {value}")
    return value


def _time_ms(value: Any, key: str) -> int | None:
    """Epoch ms from an integer, an ISO 8601 text or a YAML timestamp (a time without a zone is UTC)."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise AllowlistEntryError(key, f"must be epoch milliseconds or an ISO 8601 time, not {value!r}") from None
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return int(moment.timestamp() * 1000)
    return _opt_ms(value, key)


def parse_network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as exc:
        if "host bits set" in str(exc):
            net = ipaddress.ip_network(text.strip(), strict=False)
            raise AllowlistEntryError("value", f"{text!r} has host bits set (did you mean {net}?)") from None
        raise AllowlistEntryError("value", f"{text!r} is not an IPv4 or IPv6 network") from None


def scalar_text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value if isinstance(value, str) else None


def _check_value(operator: AllowOperator, value: Any) -> str | tuple[str, ...]:
    if operator is AllowOperator.IN:
        if isinstance(value, str) or not isinstance(value, list | tuple) or not value:
            raise AllowlistEntryError("value", f"must be a non-empty list for operator in, not {value!r}")
        items = tuple(scalar_text(item) for item in value)
        for item in items:
            if item is None or not item.strip():
                raise AllowlistEntryError("value", f"must be a list of non-empty values, not {value!r}")
        return tuple(item for item in items if item is not None)
    text = scalar_text(value)
    if text is None:
        reason = f"must be a single value for operator {operator}, not {value!r}"
        if isinstance(value, list | tuple):
            reason += " (use operator: in for a list)"
        raise AllowlistEntryError("value", reason)
    if not text.strip():
        raise AllowlistEntryError("value", "must not be empty")
    if operator is AllowOperator.CIDR:
        parse_network(text)
    return text


def content_id(body: Mapping[str, Any], prefix: str, size: int) -> str:
    return prefix + hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()[:size]


@dataclass(frozen=True, slots=True)
class AllowlistEntry:
    """One exception. `id` is derived from the content when not given (`entry_id_for`) and stays the same across
    versions; `version` counts changes (1 when added). Validated on construction."""

    rule: str
    field: str
    value: str | tuple[str, ...]
    author: str
    reason: str
    operator: AllowOperator = AllowOperator.EQUALS
    created_ms: int = 0
    expires_ms: int | None = None
    revoked_ms: int | None = None
    version: int = 1
    id: str = ""

    def __post_init__(self) -> None:
        rule = _text(self.rule, "rule")
        if rule != rule.strip() or any(c.isspace() for c in rule):
            raise AllowlistEntryError("rule", f"must be a rule id or '*' without spaces, not {rule!r}")
        if not isinstance(self.field, str) or not _FIELD.fullmatch(self.field):
            raise AllowlistEntryError("field", f"must be a flat field name (source.ip, Image), not {self.field!r}")
        operator = parse_operator(self.operator)
        object.__setattr__(self, "operator", operator)
        object.__setattr__(self, "value", _check_value(operator, self.value))
        _text(self.author, "author")
        _text(self.reason, "reason")
        created = _opt_ms(self.created_ms, "created_ms")
        assert created is not None
        expires = _opt_ms(self.expires_ms, "expires_ms")
        if expires is not None and expires <= created:
            raise AllowlistEntryError("expires_ms", f"must be after created_ms ({ms_to_iso(created)}), "
                                                    f"not {ms_to_iso(expires)}")
        revoked = _opt_ms(self.revoked_ms, "revoked_ms")
        if revoked is not None and revoked < created:
            raise AllowlistEntryError("revoked_ms", f"must not be before created_ms ({ms_to_iso(created)}), "
                                                    f"not {ms_to_iso(revoked)}")
        if isinstance(self.version, bool) or not isinstance(self.version, int) or self.version < 1:
            raise AllowlistEntryError("version", f"must be a whole number >= 1, not {self.version!r}")
        if not isinstance(self.id, str) or any(c.isspace() for c in self.id):
            raise AllowlistEntryError("id", f"must be a string without spaces, not {self.id!r}")
        if not self.id:
            object.__setattr__(self, "id", entry_id_for(self))

    @property
    def revoked(self) -> bool:
        return self.revoked_ms is not None

    def active(self, at_ms: int) -> bool:
        """Not revoked and not expired at `at_ms` (an entry expires at `expires_ms` exactly)."""
        return self.revoked_ms is None and (self.expires_ms is None or at_ms < self.expires_ms)

    def describe(self) -> str:
        value = ", ".join(self.value) if isinstance(self.value, tuple) else self.value
        rule = "every rule" if self.rule == ANY_RULE else f"rule {self.rule}"
        return f"{rule} when {self.field} {self.operator} {value!r}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "rule": self.rule, "field": self.field, "operator": str(self.operator),
            "value": list(self.value) if isinstance(self.value, tuple) else self.value,
            "expires_ms": self.expires_ms, "author": self.author, "reason": self.reason,
            "created_ms": self.created_ms, "revoked_ms": self.revoked_ms, "version": self.version,
        }

    @classmethod
    def from_dict(cls, data: Any) -> AllowlistEntry:
        """From `to_dict`'s shape (or a YAML entry): times as epoch ms or ISO 8601; `id`, `operator`,
        `created_ms`, `expires_ms`, `revoked_ms` and `version` are optional. Errors name the key."""
        if not isinstance(data, Mapping):
            raise AllowlistEntryError("entry", f"must be a mapping, not {data!r}")
        for key in data:
            if key not in _KEYS:
                raise AllowlistEntryError(str(key), f"unknown key (expected one of {', '.join(_KEYS)})")
        for key in _REQUIRED:
            if data.get(key) is None:
                raise AllowlistEntryError(key, "missing")
        created = _time_ms(data.get("created_ms", 0), "created_ms")
        return cls(rule=data["rule"], field=data["field"], value=data["value"], author=data["author"],
                   reason=data["reason"], operator=parse_operator(data.get("operator") or AllowOperator.EQUALS),
                   created_ms=0 if created is None else created,
                   expires_ms=_time_ms(data.get("expires_ms"), "expires_ms"),
                   revoked_ms=_time_ms(data.get("revoked_ms"), "revoked_ms"),
                   version=data.get("version", 1), id=data.get("id") or "")


def entry_id_for(entry: AllowlistEntry) -> str:
    """The id of a new entry: a hash of what it allows, who added it, why, and when."""
    body = entry.to_dict()
    for key in ("id", "revoked_ms", "version"):
        del body[key]
    return content_id(body, "allow-", 16)
