"""The runtime allowlist (rule exceptions, as Elastic's exception items or Wazuh's rule overrides): analysts say
"this rule, this field, this value is expected" with an author, a reason and an optional expiry.

An entry (`AllowlistEntry`) names a rule id (or ``*`` for every rule), a flat field name (ECS ``source.ip`` or a
native name such as ``Image``), an operator and a value:

    equals    the value, case-insensitively (the default)
    wildcard  ``*`` any run of characters, ``?`` one character; case-insensitive, the whole value
    cidr      an IPv4 or IPv6 network (``10.0.0.0/8``, ``2001:db8::/32``; a bare address is one host)
    in        any of a list of values, case-insensitively

A field holding a list matches when any element does. An entry matches until `expires_ms` (exclusive: at
``expires_ms`` it no longer matches); a revoked entry never matches. The field's value comes from the alert
(`correlator.cases.grouping.alert_value`: ``host.name``, then `extra`, then `matched`) and, when absent there, from
the source event through a getter (`Event.get`, which knows native and ECS names).

`Allowlist` compiles entries once and indexes them by rule id, then field, so checking an alert looks only at the
entries of its rule and of ``*``. Changes are pure functions (`add_entry`, `revoke_entry`, `extend_entry`) returning
the entry's next version and an audit record; whoever stores entries keeps the latest version of each id. Hit
counts stay out of the entries: `AllowlistHits` counts what `match` returned. YAML files: `load_allowlist_file`
(format in `correlator.allowlist_load`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from correlator.allowlist_entry import (
    ANY_RULE,
    AllowlistChangeError,
    AllowlistEntry,
    AllowlistEntryError,
    AllowlistError,
    AllowOperator,
    content_id,
    entry_id_for,
    parse_network,
    parse_operator,
    scalar_text,
)
from correlator.assets import parse_ip
from correlator.located_yaml import LocatedError
from correlator.model import Alert, alert_value, ms_to_iso

__all__ = [
    "ANY_RULE",
    "AllowOperator",
    "Allowlist",
    "AllowlistChangeError",
    "AllowlistEntry",
    "AllowlistEntryError",
    "AllowlistError",
    "AllowlistHits",
    "add_entry",
    "entry_id_for",
    "extend_entry",
    "load_allowlist_file",
    "revoke_entry",
]


# -- matching


Predicate = Callable[[str], bool]


def _wildcard(pattern: str) -> Predicate:
    """``*``/``?`` over the whole value, case-insensitively, without backtracking: the pattern's pieces between
    stars have fixed lengths, so the first piece anchors at the start, the last at the end, and each one between
    takes its leftmost place after the previous one."""
    pieces = pattern.casefold().split("*")
    regexes = [re.compile("".join("." if c == "?" else re.escape(c) for c in piece), re.DOTALL) for piece in pieces]
    if len(pieces) == 1:
        only = regexes[0]
        return lambda text: only.fullmatch(text.casefold()) is not None
    lengths = [len(piece) for piece in pieces]
    least = sum(lengths)
    head, middle, tail = regexes[0], regexes[1:-1], regexes[-1]

    def matches(text: str) -> bool:
        folded = text.casefold()
        tail_at = len(folded) - lengths[-1]
        if len(folded) < least or head.match(folded) is None or tail.fullmatch(folded, tail_at) is None:
            return False
        pos = lengths[0]
        for regex in middle:
            found = regex.search(folded, pos, tail_at)
            if found is None:
                return False
            pos = found.end()
        return True

    return matches


def _compile(entry: AllowlistEntry) -> Predicate:
    value = entry.value
    if entry.operator is AllowOperator.IN:
        choices = frozenset(item.casefold() for item in value)
        return lambda text: text.casefold() in choices
    assert isinstance(value, str)
    if entry.operator is AllowOperator.WILDCARD:
        return _wildcard(value)
    if entry.operator is AllowOperator.CIDR:
        network = parse_network(value)

        def in_network(text: str) -> bool:
            address = parse_ip(text)
            return address is not None and address.version == network.version and address in network

        return in_network
    folded = value.casefold()
    return lambda text: text.casefold() == folded


def _texts(value: Any) -> list[str]:
    """The values of a field to compare: a scalar as text, every scalar of a list; nothing for None or a map."""
    if isinstance(value, list | tuple):
        return [text for item in value for text in _texts(item)]
    text = scalar_text(value)
    return [] if text is None else [text]


_Index = dict[str, dict[str, list[tuple[AllowlistEntry, Predicate]]]]


@dataclass(frozen=True, slots=True)
class Allowlist:
    """An immutable set of entries, compiled and indexed by rule id then field (revoked entries are kept in
    `entries` but not indexed). Build it again after a change. `errors`: what a loader could not read."""

    entries: tuple[AllowlistEntry, ...] = ()
    errors: tuple[LocatedError, ...] = ()
    source: str | None = None
    _index: _Index = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "entries", tuple(self.entries))
        seen: set[str] = set()
        index: _Index = {}
        for entry in sorted(self.entries, key=lambda e: (e.field, e.created_ms, e.id)):
            if entry.id in seen:
                raise AllowlistError(f"duplicate allowlist entry id {entry.id!r}")
            seen.add(entry.id)
            if not entry.revoked:
                index.setdefault(entry.rule, {}).setdefault(entry.field, []).append((entry, _compile(entry)))
        object.__setattr__(self, "_index", index)

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, entry_id: str) -> AllowlistEntry | None:
        return next((e for e in self.entries if e.id == entry_id), None)

    def match(self, alert: Alert, fields: Callable[[str], Any] | None, at_ms: int) -> AllowlistEntry | None:
        """The first active entry that allows `alert` at `at_ms`: entries of its rule before those of ``*``, then by
        field name, creation time and id. `fields`: a getter of the source event's fields (`event.get`)."""
        return next(self._matches(alert, fields, at_ms), None)

    def match_all(self, alert: Alert, fields: Callable[[str], Any] | None, at_ms: int) -> tuple[AllowlistEntry, ...]:
        """Every active entry that allows `alert`, in `match`'s order."""
        return tuple(self._matches(alert, fields, at_ms))

    def _matches(self, alert: Alert, fields: Callable[[str], Any] | None, at_ms: int) -> Iterator[AllowlistEntry]:
        values: dict[str, list[str]] = {}
        for rule in dict.fromkeys((alert.rule.id, ANY_RULE)):
            by_field = self._index.get(rule)
            if not by_field:
                continue
            for name, compiled in by_field.items():
                candidates = [(entry, predicate) for entry, predicate in compiled if entry.active(at_ms)]
                if not candidates:
                    continue
                texts = values.get(name)
                if texts is None:
                    texts = values[name] = _texts(_field_value(alert, fields, name))
                for entry, predicate in candidates:
                    if any(predicate(text) for text in texts):
                        yield entry


def _field_value(alert: Alert, fields: Callable[[str], Any] | None, name: str) -> Any:
    value = alert_value(alert, name)
    if value is None and fields is not None:
        value = fields(name)
    return value


class AllowlistHits:
    """Hit counts by entry id (kept out of the entries): `record` what `match` returned."""

    __slots__ = ("_counts", "_last")

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._last: dict[str, int] = {}

    def record(self, entry: AllowlistEntry, at_ms: int) -> None:
        self._counts[entry.id] = self._counts.get(entry.id, 0) + 1
        self._last[entry.id] = max(at_ms, self._last.get(entry.id, at_ms))

    def count(self, entry_id: str) -> int:
        return self._counts.get(entry_id, 0)

    def to_dict(self) -> dict[str, dict[str, int]]:
        return {i: {"hits": n, "last_hit_ms": self._last[i]} for i, n in sorted(self._counts.items())}


# -- changes and their audit records


def _audit(entry: AllowlistEntry, action: str, actor: str, at_ms: int, summary: str, before: Mapping[str, Any],
           after: Mapping[str, Any], reason: str) -> dict[str, Any]:
    """An audit record: `seq` is the entry version the change produced; `id` a hash of the rest."""
    body = {"at_ms": at_ms, "actor": actor, "action": action, "subject": {"kind": "allowlist", "id": entry.id},
            "summary": summary, "before": dict(before), "after": dict(after), "reason": reason,
            "seq": entry.version}
    return {"id": content_id(body, "", 24), **body}


def _check_change(entry: AllowlistEntry, action: str, actor: str, at_ms: int, reason: str) -> None:
    if not isinstance(actor, str) or not actor.strip():
        raise AllowlistChangeError(entry.id, action, f"actor must be a non-empty string, not {actor!r}")
    if not isinstance(reason, str) or not reason.strip():
        raise AllowlistChangeError(entry.id, action, f"reason must be a non-empty string, not {reason!r}")
    if entry.revoked_ms is not None:
        raise AllowlistChangeError(entry.id, action, f"already revoked at {ms_to_iso(entry.revoked_ms)}")
    if at_ms < entry.created_ms:
        raise AllowlistChangeError(entry.id, action, f"at {ms_to_iso(at_ms)} is before the entry was created "
                                                     f"({ms_to_iso(entry.created_ms)})")


def _expiry(ms: int | None) -> str:
    return "never" if ms is None else ms_to_iso(ms)


def add_entry(*, rule: str, field: str, value: str | Iterable[str], author: str, reason: str, at_ms: int,
              operator: AllowOperator | str = AllowOperator.EQUALS, expires_ms: int | None = None,
              entry_id: str | None = None) -> tuple[AllowlistEntry, dict[str, Any]]:
    """A new entry (version 1, created at `at_ms` by `author`) and its ``add`` audit record."""
    if not isinstance(value, str):
        value = tuple(value)
    entry = AllowlistEntry(rule=rule, field=field, value=value, author=author, reason=reason,
                           operator=parse_operator(operator), created_ms=at_ms, expires_ms=expires_ms,
                           id=entry_id or "")
    summary = f"allow {entry.describe()}, expires {_expiry(entry.expires_ms)}"
    after = {k: v for k, v in entry.to_dict().items() if k not in {"id", "version"}}
    return entry, _audit(entry, "add", author, at_ms, summary, {}, after, reason)


def revoke_entry(entry: AllowlistEntry, actor: str, at_ms: int, reason: str
                 ) -> tuple[AllowlistEntry, dict[str, Any]]:
    """The entry revoked at `at_ms` (it no longer matches) and the ``revoke`` audit record."""
    _check_change(entry, "revoke", actor, at_ms, reason)
    revoked = _next(entry, revoked_ms=at_ms)
    return revoked, _audit(revoked, "revoke", actor, at_ms, f"revoke allowlist entry {entry.id} "
                                                             f"({entry.describe()})",
                           {"revoked_ms": None}, {"revoked_ms": at_ms}, reason)


def extend_entry(entry: AllowlistEntry, expires_ms: int | None, actor: str, at_ms: int, reason: str
                 ) -> tuple[AllowlistEntry, dict[str, Any]]:
    """The entry with a new expiry (None: never; it may also be shortened, but not to `at_ms` or earlier) and the
    ``extend`` audit record."""
    _check_change(entry, "extend", actor, at_ms, reason)
    if expires_ms is not None and (isinstance(expires_ms, bool) or not isinstance(expires_ms, int)):
        raise AllowlistChangeError(entry.id, "extend", f"expires_ms must be epoch milliseconds, not {expires_ms!r}")
    if expires_ms is not None and expires_ms <= at_ms:
        raise AllowlistChangeError(entry.id, "extend", f"new expiry {ms_to_iso(expires_ms)} is not after "
                                                       f"{ms_to_iso(at_ms)}")
    if expires_ms == entry.expires_ms:
        raise AllowlistChangeError(entry.id, "extend", f"already expires {_expiry(expires_ms)}")
    extended = _next(entry, expires_ms=expires_ms)
    summary = (f"change the expiry of allowlist entry {entry.id} from {_expiry(entry.expires_ms)} to "
               f"{_expiry(expires_ms)}")
    return extended, _audit(extended, "extend", actor, at_ms, summary, {"expires_ms": entry.expires_ms},
                            {"expires_ms": expires_ms}, reason)


def _next(entry: AllowlistEntry, **changes: Any) -> AllowlistEntry:
    return replace(entry, **changes, version=entry.version + 1)


def load_allowlist_file(path: str | Path, *, strict: bool = False) -> Allowlist:
    """An allowlist from a YAML file, collect-all (`correlator.allowlist_load`, which has the format)."""
    from correlator.allowlist_load import load_allowlist_file as load

    return load(path, strict=strict)
