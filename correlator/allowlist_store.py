"""The allowlist kept in the store: entries as versioned documents (collection ``allowlist``), every change an
audit record (collection ``audit``, subject kind ``allowlist``). A thin shell over the pure changes of
`correlator.allowlist` (`add_entry`, `revoke_entry`, `extend_entry`); a concurrent change of the same entry is
refused by the store's version check (`VersionConflictError`) rather than lost."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from correlator.allowlist import (
    AllowlistEntry,
    AllowOperator,
    add_entry,
    extend_entry,
    revoke_entry,
)
from correlator.errors import CorrelatorError
from correlator.store.base import MAX_RESULT_WINDOW, Collection, Store

__all__ = ["AllowlistNotFoundError", "add", "extend", "get", "revoke", "stored_entries"]


class AllowlistNotFoundError(CorrelatorError):
    def __init__(self, entry_id: str) -> None:
        self.entry_id = entry_id
        super().__init__(f"no allowlist entry {entry_id!r}")


def _entry(doc: dict[str, Any]) -> AllowlistEntry:
    return AllowlistEntry.from_dict({k: v for k, v in doc.items() if k in _ENTRY_KEYS})


_ENTRY_KEYS = frozenset(AllowlistEntry(rule="*", field="f", value="v", author="a", reason="r").to_dict())


def stored_entries(store: Store) -> list[AllowlistEntry]:
    """Every entry in the store (revoked and expired ones included: the allowlist ignores them)."""
    page = store.search(Collection.ALLOWLIST, "", limit=MAX_RESULT_WINDOW, sort="created_ms")
    return [_entry(doc) for doc in page.hits]


def get(store: Store, entry_id: str) -> AllowlistEntry:
    doc = store.get(Collection.ALLOWLIST, entry_id)
    if doc is None:
        raise AllowlistNotFoundError(entry_id)
    return _entry(doc)


def _save(store: Store, entry: AllowlistEntry, record: dict[str, Any], previous: int | None) -> AllowlistEntry:
    store.put(Collection.ALLOWLIST, entry.to_dict(), expected_version=previous)
    store.write_audit([record])
    return entry


def add(store: Store, *, rule: str, field: str, value: str | Iterable[str], author: str, reason: str, at_ms: int,
        operator: AllowOperator | str = AllowOperator.EQUALS, expires_ms: int | None = None) -> AllowlistEntry:
    entry, record = add_entry(rule=rule, field=field, value=value, author=author, reason=reason, at_ms=at_ms,
                              operator=operator, expires_ms=expires_ms)
    return _save(store, entry, record, None)


def revoke(store: Store, entry_id: str, *, actor: str, at_ms: int, reason: str) -> AllowlistEntry:
    current = get(store, entry_id)
    entry, record = revoke_entry(current, actor, at_ms, reason)
    return _save(store, entry, record, current.version)


def extend(store: Store, entry_id: str, *, expires_ms: int | None, actor: str, at_ms: int,
           reason: str) -> AllowlistEntry:
    current = get(store, entry_id)
    entry, record = extend_entry(current, expires_ms, actor, at_ms, reason)
    return _save(store, entry, record, current.version)
