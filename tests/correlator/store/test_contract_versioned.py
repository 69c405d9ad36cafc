"""The versioned collections (cases, allowlist) on every backend: `put` with its version check, reads after a put,
search, sort, count and terms over cases, and retention of closed cases and expired allowlist entries."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from correlator.model import ms_to_iso
from correlator.store import InvalidRequestError, Store, StoreError, UnknownCollectionError
from correlator.store.errors import VersionConflictError
from correlator.store.retention import RetentionPolicy
from tests.correlator.store.conftest import T0

DAY = 86_400_000


def case_doc(case_id: str = "case-1a2b", version: int = 1, *, created: int = T0, **fields: Any) -> dict[str, Any]:
    """A case document as the case repository stores it (trimmed): flat fields to search and bulky parts."""
    score = fields.pop("score", 60)
    doc: dict[str, Any] = {
        "id": case_id, "version": version, "title": f"Powershell on ws01 ({case_id})", "status": "new",
        "severity": "high", "layer": "L2", "created_ms": created, "updated_ms": created, "closed_ms": None,
        "agency": None, "assignee": None, "group_key": "host:ws01", "tags": [], "rule_ids": ["r1"],
        "alert_ids": ["a1"], "risk": {"score": score, "severity": "high", "explanation": f"high (+{score})",
                                      "factors": [{"name": "rule_level", "points": score, "reason": "test"}]},
        "timeline": [{"id": f"t{version}", "seq": version, "actor": "socctl", "action": "open",
                      "before": {}, "after": {"anything": {"nested": [1, 2]}}}],
        "alerts": [{"id": "a1", "risk": {"score": score}}],
    }
    doc.update(fields)
    return doc


def stored(doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` as a store gives it back: with @timestamp from created_ms."""
    return {**doc, "@timestamp": ms_to_iso(doc["created_ms"])}


# -- put and get ---------------------------------------------------------------------------------------------


def test_create_then_get(store: Store) -> None:
    doc = case_doc()
    store.put("cases", doc, expected_version=None)
    assert store.get("cases", "case-1a2b") == stored(doc)
    assert store.get("cases", "case-none") is None
    assert store.count("cases") == 1


def test_update_is_visible_when_put_returns(store: Store) -> None:
    first = case_doc(title="Mimikatz seen on dc01")
    store.put("cases", first, expected_version=None)
    assert store.count("cases", "mimikatz") == 1
    second = case_doc(version=3, title="Credential dumping on dc01", status="acknowledged", assignee="alice",
                      updated_ms=T0 + 5_000)
    store.put("cases", second, expected_version=1)
    assert store.get("cases", "case-1a2b") == stored(second)
    assert store.count("cases") == 1
    assert store.count("cases", "status:new") == 0
    assert store.count("cases", "status:acknowledged AND assignee:ALICE") == 1
    assert store.count("cases", "mimikatz") == 0  # the free text of the old version is gone
    assert store.count("cases", "credential dumping") == 1
    assert store.search("cases").hits == [stored(second)]


def test_the_bulky_parts_of_a_case_are_stored_but_not_searched(store: Store) -> None:
    doc = case_doc(timeline=[{"id": "t1", "summary": "zebrafish"}], alerts=[{"id": "a1", "rule_title": "okapi"}],
                   risk={"score": 60, "severity": "high", "explanation": "gnu", "factors": [{"reason": "quokka"}]})
    store.put("cases", doc, expected_version=None)
    assert store.get("cases", "case-1a2b") == stored(doc)
    assert [store.count("cases", word) for word in ("zebrafish", "okapi", "quokka", "gnu", "powershell")] == [
        0, 0, 0, 1, 1,
    ]


def test_update_is_visible_to_another_store(store: Store, second_store: Store) -> None:
    store.put("cases", case_doc(), expected_version=None)
    assert second_store.get("cases", "case-1a2b") is not None
    second_store.put("cases", case_doc(version=2, status="acknowledged"), expected_version=1)
    assert store.get("cases", "case-1a2b")["status"] == "acknowledged"  # type: ignore[index]
    assert store.count("cases", "status:acknowledged") == 1


@pytest.mark.parametrize(
    ("setup", "doc", "expected", "actual", "message"),
    [
        ([(case_doc(), None), (case_doc(version=2), 1)], case_doc(version=3), 1, 2,
         "cases/case-1a2b: version conflict: expected 1, stored 2"),
        ([(case_doc(), None)], case_doc(status="closed"), None, 1,
         "cases/case-1a2b: version conflict: expected none, stored 1"),
        ([], case_doc(version=2), 1, None,
         "cases/case-1a2b: version conflict: expected 1, stored none"),
        ([(case_doc(), None), (case_doc(version=4), 1)], case_doc(version=5), 3, 4,
         "cases/case-1a2b: version conflict: expected 3, stored 4"),
    ],
    ids=["stale-version", "create-existing", "update-missing", "lost-update"],
)
def test_version_conflicts(
    store: Store, setup: list[tuple[dict[str, Any], int | None]], doc: dict[str, Any], expected: int | None,
    actual: int | None, message: str,
) -> None:
    for earlier, version in setup:
        store.put("cases", earlier, expected_version=version)
    before = store.get("cases", "case-1a2b")
    with pytest.raises(VersionConflictError) as info:
        store.put("cases", doc, expected_version=expected)
    assert str(info.value) == message
    assert (info.value.collection, info.value.doc_id, info.value.expected, info.value.actual) == (
        "cases", "case-1a2b", expected, actual,
    )
    assert isinstance(info.value, StoreError)
    assert store.get("cases", "case-1a2b") == before  # nothing written


def test_a_retried_put_of_the_stored_document_is_not_a_conflict(store: Store) -> None:
    store.put("cases", case_doc(), expected_version=None)
    store.put("cases", case_doc(), expected_version=None)  # the same create, again
    store.put("cases", case_doc(version=2), expected_version=1)
    store.put("cases", case_doc(version=2), expected_version=1)  # the same update, again
    assert store.get("cases", "case-1a2b") == stored(case_doc(version=2))


def test_two_stores_racing_from_one_version_only_one_wins(store: Store, second_store: Store) -> None:
    store.put("cases", case_doc(), expected_version=None)
    store.put("cases", case_doc(version=2, assignee="alice"), expected_version=1)
    with pytest.raises(VersionConflictError):
        second_store.put("cases", case_doc(version=2, status="acknowledged"), expected_version=1)
    assert second_store.get("cases", "case-1a2b")["assignee"] == "alice"  # type: ignore[index]


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda s: s.put("alerts", case_doc(), expected_version=None), InvalidRequestError,
         "put alerts: not a versioned collection (put takes one of: cases, allowlist; alerts is written by its "
         "create-only write method)"),
        (lambda s: s.put("audit", case_doc(), expected_version=None), InvalidRequestError,
         "put audit: not a versioned collection (put takes one of: cases, allowlist; audit is written by its "
         "create-only write method)"),
        (lambda s: s.put("case", case_doc(), expected_version=None), UnknownCollectionError,
         "unknown collection 'case' (expected one of: events, alerts, deadletter, cases, allowlist, audit)"),
        (lambda s: s.put("cases", case_doc(case_id=""), expected_version=None), InvalidRequestError,
         "put cases: id must be a non-empty string, got ''"),
        (lambda s: s.put("cases", {"version": 1, "created_ms": T0}, expected_version=None), InvalidRequestError,
         "put cases: id must be a non-empty string, got None"),
        (lambda s: s.put("cases", case_doc(version=0), expected_version=None), InvalidRequestError,
         "put cases/case-1a2b: version must be an integer >= 1, got 0"),
        (lambda s: s.put("cases", case_doc(version=True), expected_version=None), InvalidRequestError,
         "put cases/case-1a2b: version must be an integer >= 1, got True"),
        (lambda s: s.put("cases", case_doc(created="2024-01-01"), expected_version=None), InvalidRequestError,
         "put cases/case-1a2b: created_ms must be epoch milliseconds (an integer from 0 to 253402300799999), "
         "got '2024-01-01'"),
        (lambda s: s.put("allowlist", {"id": "x", "version": 1}, expected_version=None), InvalidRequestError,
         "put allowlist/x: created_ms must be epoch milliseconds (an integer from 0 to 253402300799999), got None"),
        (lambda s: s.put("cases", case_doc(), expected_version=0), InvalidRequestError,
         "put cases/case-1a2b: expected_version must be None (create) or an integer >= 1, got 0"),
        (lambda s: s.put("cases", case_doc(version=2), expected_version=2), InvalidRequestError,
         "put cases/case-1a2b: the new version 2 must be greater than expected_version 2"),
        (lambda s: s.put("cases", case_doc(status={"not": "scalar"}), expected_version=None), InvalidRequestError,
         "put cases/case-1a2b: status must be a string or a number, not dict"),
        (lambda s: s.put("cases", case_doc(title="lone \ud800"), expected_version=None), InvalidRequestError,
         "put cases/case-1a2b: document is not valid JSON: str is not valid UTF-8: surrogates not allowed"),
        (lambda s: s.put("cases", ["id", "case-1"], expected_version=None), InvalidRequestError,
         "put cases: the document must be a mapping, not list"),
    ],
    ids=["append-only", "audit-append-only", "unknown-collection", "empty-id", "no-id", "version-0",
         "version-bool", "created-not-int", "allowlist-no-created", "expected-0", "version-not-greater",
         "indexed-not-scalar", "not-json", "not-a-mapping"],
)
def test_invalid_puts(store: Store, call: Callable[[Store], object], error: type[StoreError], message: str) -> None:
    with pytest.raises(error) as info:
        call(store)
    assert str(info.value) == message
    assert store.count("cases") == 0


# -- search, sort, count, terms ------------------------------------------------------------------------------

CASES: list[dict[str, Any]] = [
    case_doc("case-a", created=T0, updated_ms=T0 + 40, score=80, severity="critical", status="investigating",
             tags=["lateral", "admin"], group_key="host:ws01", assignee="alice", rule_ids=["r1", "r2"]),
    case_doc("case-b", created=T0 + 1_000, updated_ms=T0 + 10, severity="medium", status="new",
             tags=["admin"], group_key="host:ws02", title="Brute force against VPN", risk=None),
    case_doc("case-c", created=T0 + 2_000, updated_ms=T0 + 30, score=60, severity="high", status="closed",
             closed_ms=T0 + 3_000, group_key="user:bob", assignee="bob", rule_ids=["r2"]),
    case_doc("case-d", created=T0 + DAY, updated_ms=T0 + 20, score=60, severity="high", status="new",
             group_key="host:ws01"),
]


@pytest.fixture
def cases(store: Store) -> list[dict[str, Any]]:
    for doc in CASES:
        store.put("cases", doc, expected_version=None)
    return CASES


def ids(hits: list[dict[str, Any]]) -> list[str]:
    return [hit["id"] for hit in hits]


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("-@timestamp", ["case-d", "case-c", "case-b", "case-a"]),
        ("@timestamp", ["case-a", "case-b", "case-c", "case-d"]),
        ("-risk.score", ["case-a", "case-c", "case-d", "case-b"]),  # no score (risk null): last
        ("risk.score", ["case-c", "case-d", "case-a", "case-b"]),
        ("updated_ms", ["case-b", "case-d", "case-c", "case-a"]),
        ("-updated_ms", ["case-a", "case-c", "case-d", "case-b"]),
        ("severity", ["case-a", "case-c", "case-d", "case-b"]),  # as words: critical, high (ties by id), medium
        ("-severity", ["case-b", "case-c", "case-d", "case-a"]),
        ("assignee", ["case-a", "case-c", "case-b", "case-d"]),  # unassigned last
        ("closed_ms", ["case-c", "case-a", "case-b", "case-d"]),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_sort_cases_by_any_scalar_field(store: Store, cases: list[dict[str, Any]], sort: str,
                                        expected: list[str]) -> None:
    assert ids(store.search("cases", sort=sort).hits) == expected


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status:new", ["case-b", "case-d"]),
        ("status:NEW OR status:investigating", ["case-a", "case-b", "case-d"]),
        ('group_key:"host:ws01"', ["case-a", "case-d"]),
        ('group_key:"host:ws01" AND NOT status:closed', ["case-a", "case-d"]),
        ("group_key:host*", ["case-a", "case-b", "case-d"]),
        ("risk.score:60", ["case-c", "case-d"]),
        ("risk.score:35", []),
        ("severity:high", ["case-c", "case-d"]),
        ("tags:admin", ["case-a", "case-b"]),
        ("rule_ids:r2", ["case-a", "case-c"]),
        ("closed_ms:*", ["case-c"]),
        ("NOT closed_ms:*", ["case-a", "case-b", "case-d"]),
        ("assignee:bob", ["case-c"]),
        ("id:case-b", ["case-b"]),
        ('title:"Brute force against VPN"', ["case-b"]),
        ("brute", ["case-b"]),
        ("vpn AND status:new", ["case-b"]),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_query_cases(store: Store, cases: list[dict[str, Any]], query: str, expected: list[str]) -> None:
    page = store.search("cases", query, sort="id")
    assert ids(page.hits) == expected
    assert page.total == len(expected)
    assert store.count("cases", query) == len(expected)


def test_time_range_and_paging_on_cases(store: Store, cases: list[dict[str, Any]]) -> None:
    assert store.count("cases", since_ms=T0 + 1_000, until_ms=T0 + 2_001) == 2
    assert store.count("cases", since_ms=T0 + DAY) == 1
    page = store.search("cases", sort="id", limit=2, offset=1)
    assert (page.total, ids(page.hits)) == (4, ["case-b", "case-c"])


def test_terms_on_cases(store: Store, cases: list[dict[str, Any]]) -> None:
    assert store.terms("cases", "severity") == [("high", 2), ("critical", 1), ("medium", 1)]
    assert store.terms("cases", "status", "NOT status:closed") == [("new", 2), ("investigating", 1)]
    assert store.terms("cases", "tags") == [("admin", 2), ("lateral", 1)]
    assert store.terms("cases", "rule_ids") == [("r1", 3), ("r2", 2)]
    assert store.terms("cases", "risk.score", size=1) == [(60, 2)]


def test_allowlist_entries(store: Store) -> None:
    entry = {"id": "allow-1", "version": 1, "created_ms": T0, "expires_ms": T0 + DAY, "rule_id": "r1",
             "reason": "backup job", "created_by": "alice", "match": {"host.name": "bk01"}}
    store.put("allowlist", entry, expected_version=None)
    assert store.get("allowlist", "allow-1") == stored(entry)
    changed = {**entry, "version": 2, "expires_ms": T0 + 2 * DAY, "updated_ms": T0 + 5}
    store.put("allowlist", changed, expected_version=1)
    assert store.search("allowlist", "rule_id:r1").hits == [stored(changed)]
    assert store.count("allowlist", "backup") == 1
    with pytest.raises(VersionConflictError) as info:
        store.put("allowlist", {**entry, "version": 3}, expected_version=1)
    assert str(info.value) == "allowlist/allow-1: version conflict: expected 1, stored 2"
    assert store.count("cases") == 0


def test_allowlist_values_of_any_scalar_type(store: Store) -> None:
    values: list[Any] = [4624, "powershell.exe", ["10.0.0.1", "10.0.0.2"], True, 2.5]
    for i, value in enumerate(values):
        store.put("allowlist", {"id": f"allow-{i}", "version": 1, "created_ms": T0, "value": value},
                  expected_version=None)
    assert store.count("allowlist") == 5
    assert [hit["id"] for hit in store.search("allowlist", "value:4624 OR value:10.0.0.2 OR value:POWERSHELL.EXE",
                                              sort="id").hits] == ["allow-0", "allow-1", "allow-2"]


# -- retention -----------------------------------------------------------------------------------------------

NOW = T0 + 1_000 * DAY


def test_retention_deletes_cases_closed_before_the_cutoff(store: Store) -> None:
    policy = RetentionPolicy.from_dict({"agencies": {"so-a": 2}})  # so-a keeps 30 days, others 365
    docs = [
        case_doc("old-closed", created=NOW - 500 * DAY, closed_ms=NOW - 400 * DAY, status="closed",
                 title="ancient zebra"),
        case_doc("old-open", created=NOW - 500 * DAY, status="investigating"),
        case_doc("closed-recently", created=NOW - 500 * DAY, closed_ms=NOW - 10 * DAY, status="closed"),
        case_doc("so-a-closed", created=NOW - 60 * DAY, closed_ms=NOW - 40 * DAY, status="false_positive",
                 agency="SO-A"),
        case_doc("so-a-recent", created=NOW - 60 * DAY, closed_ms=NOW - 20 * DAY, status="closed", agency="so-a"),
    ]
    for doc in docs:
        store.put("cases", doc, expected_version=None)

    planned = store.apply_retention(policy, NOW, dry_run=True)
    assert sorted((p.collection, p.agency, p.level, p.documents, p.deleted) for p in planned) == [
        ("cases", "default", 5, 1, False),
        ("cases", "so-a", 2, 1, False),
    ]
    assert store.count("cases") == 5

    done = store.apply_retention(policy, NOW)
    assert sorted((p.agency, p.documents, p.deleted, p.cutoff_ms) for p in done) == [
        ("default", 1, True, NOW - 365 * DAY),
        ("so-a", 1, True, NOW - 30 * DAY),
    ]
    assert ids(store.search("cases", sort="id").hits) == ["closed-recently", "old-open", "so-a-recent"]
    assert store.get("cases", "old-closed") is None
    assert store.count("cases", "zebra") == 0
    assert store.apply_retention(policy, NOW) == []


def test_retention_deletes_allowlist_entries_expired_before_the_cutoff(store: Store) -> None:
    policy = RetentionPolicy.from_dict({"collection_days": {"allowlist": "90d"}})
    entries = [
        {"id": "expired-long-ago", "expires_ms": NOW - 91 * DAY},
        {"id": "expired-recently", "expires_ms": NOW - 89 * DAY},
        {"id": "never-expires", "expires_ms": None},
        {"id": "not-yet", "expires_ms": NOW + DAY},
    ]
    for entry in entries:
        store.put("allowlist", {**entry, "version": 1, "created_ms": NOW - 400 * DAY}, expected_version=None)
    done = store.apply_retention(policy, NOW)
    assert [(p.collection, p.agency, p.documents, p.deleted) for p in done] == [("allowlist", "default", 1, True)]
    assert ids(store.search("allowlist", sort="id").hits) == ["expired-recently", "never-expires", "not-yet"]
