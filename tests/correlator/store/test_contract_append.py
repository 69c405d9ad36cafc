"""Audit entries and alert replacement on every backend: `write_audit` (create-only, idempotent by id, refused
entries reported and dead-lettered, retention by time) and `write_alerts(..., replace=True)`."""

from __future__ import annotations

from typing import Any

from correlator.model import ms_to_iso
from correlator.store import Store, WriteResult
from correlator.store.retention import RetentionPolicy
from tests.correlator.store.conftest import T0
from tests.correlator.store.test_contract import build_alert, build_event

DAY = 86_400_000


def audit_entry(entry_id: str, *, at: int = T0, actor: str = "alice", action: str = "assign",
                case_id: str = "case-1", seq: int = 2, **fields: Any) -> dict[str, Any]:
    return {"id": entry_id, "at_ms": at, "actor": actor, "action": action,
            "subject": {"kind": "case", "id": case_id}, "summary": f"{action} by {actor}",
            "before": {"assignee": None}, "after": {"assignee": actor, "deep": {"any": ["shape", 1]}},
            "reason": None, "seq": seq, **fields}


def test_audit_is_create_only_and_idempotent(store: Store) -> None:
    entries = [audit_entry("e1"), audit_entry("e2", at=T0 + 1_000, action="transition", seq=3)]
    assert store.write_audit(entries) == WriteResult(written=2)
    changed = audit_entry("e1", actor="mallory")
    assert store.write_audit([changed, audit_entry("e2", at=T0 + 1_000)]) == WriteResult(duplicates=2)
    assert store.get("audit", "e1") == {**entries[0], "@timestamp": ms_to_iso(T0)}
    assert store.count("audit", "actor:mallory") == 0


def test_audit_queries(store: Store) -> None:
    store.write_audit([
        audit_entry("e1", at=T0, seq=2),
        audit_entry("e2", at=T0 + 1_000, action="transition", seq=3),
        audit_entry("e3", at=T0 + DAY, actor="bob", action="comment", case_id="case-2", seq=5),
        audit_entry("e4", at=T0 + 2_000, actor="socctl", action="allowlist_add", seq=1,
                    subject={"kind": "allowlist", "id": "allow-1"}),
    ])
    assert [hit["id"] for hit in store.search("audit", "actor:alice", sort="@timestamp").hits] == ["e1", "e2"]
    assert store.count("audit", 'subject.kind:case AND subject.id:"case-1"') == 2
    assert store.count("audit", "subject.kind:allowlist") == 1
    assert store.count("audit", "actor:alice", since_ms=T0 + 500, until_ms=T0 + DAY) == 1
    assert [hit["id"] for hit in store.search("audit", sort="-seq").hits] == ["e3", "e2", "e1", "e4"]
    assert store.terms("audit", "action") == [
        ("allowlist_add", 1), ("assign", 1), ("comment", 1), ("transition", 1),
    ]
    assert store.count("audit", "transition by alice") == 1  # free text of the summary


def test_refused_audit_entries_are_reported_and_dead_lettered(store: Store) -> None:
    result = store.write_audit([
        audit_entry("good"),
        {"id": "no-time", "actor": "alice"},
        {"actor": "nobody", "at_ms": T0},
        audit_entry("bad-actor", actor={"name": "x"}),
    ])
    assert result.written == 1
    assert result.failed == [
        ("no-time", "at_ms must be epoch milliseconds (an integer from 0 to 253402300799999), got None"),
        ("None", "id must be a non-empty string, got None"),
        ("bad-actor", "actor must be a string or a number, not dict"),
    ]
    assert store.count("deadletter", "stage:store") == 3
    letter = store.search("deadletter", '"bad-actor"').hits[0]
    assert letter["reason"] == "audit document bad-actor refused by the store: actor must be a string or a number, " \
                               "not dict"


def test_audit_retention_is_by_time(store: Store) -> None:
    now = T0 + 500 * DAY
    store.write_audit([audit_entry("old", at=now - 400 * DAY), audit_entry("new", at=now - 10 * DAY)])
    done = store.apply_retention(RetentionPolicy(), now)
    assert [(p.collection, p.agency, p.documents, p.deleted) for p in done] == [("audit", "default", 1, True)]
    assert [hit["id"] for hit in store.search("audit").hits] == ["new"]


# -- alerts replaced -----------------------------------------------------------------------------------------


def test_replace_overwrites_a_stored_alert(store: Store) -> None:
    event = build_event("powershell")
    first = build_alert(event)
    assert store.write_alerts([first]) == WriteResult(written=1)
    counted = build_alert(event)
    counted.extra["suppression"] = {"count": 7, "note": "representative zebra"}
    assert counted.id == first.id
    assert store.write_alerts([counted]) == WriteResult(duplicates=1)  # create-only: unchanged
    assert store.count("alerts", "suppression.count:7") == 0
    assert store.write_alerts([counted], replace=True) == WriteResult(written=1)
    assert store.get("alerts", first.id) == {**first.to_dict(), "suppression": {"count": 7,
                                                                               "note": "representative zebra"}}
    assert store.count("alerts") == 1
    assert store.count("alerts", "suppression.count:7") == 1
    assert store.count("alerts", "zebra") == 1
    counted.extra["suppression"] = {"count": 9}
    assert store.write_alerts([counted], replace=True) == WriteResult(written=1)
    assert store.count("alerts", "zebra") == 0  # the free text of the replaced document is gone
    assert store.count("alerts", "suppression.count:9") == 1


def test_replace_writes_new_alerts_and_the_last_of_a_batch_wins(store: Store) -> None:
    events = [build_event(f"e{i}", ts=T0 + i) for i in range(2)]
    alerts = [build_alert(event) for event in events]
    later = build_alert(events[0])
    later.extra["suppression"] = {"count": 2}
    assert store.write_alerts([*alerts, later], replace=True) == WriteResult(written=3)
    assert store.count("alerts") == 2
    assert store.get("alerts", alerts[0].id)["suppression"] == {"count": 2}  # type: ignore[index]
