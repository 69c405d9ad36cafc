"""Grouping alerts into cases: keys, the window, severity raises, duplicates, merge and split."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from correlator.cases.commands import Transition
from correlator.cases.definitions import CaseStatus, Layer
from correlator.cases.grouping import (
    DEFAULT_GROUPING,
    CaseGrouper,
    GroupingConfig,
    IncomingAlert,
    alert_value,
    group_key,
    merge_cases,
    split_case,
)
from correlator.cases.lifecycle import apply
from correlator.cases.model import Case
from correlator.model import Alert
from correlator.scoring import Severity
from tests.correlator.cases.conftest import HOUR, MINUTE, T0

WINDOW = 24 * HOUR


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"host": "WS01.corp.local"}, "host:ws01.corp.local"),
        ({"host": None, "extra": {"host": {"hostname": "SRV"}}}, "host:srv"),
        ({"host": None, "matched": {"Computer": "DC01"}}, "host:dc01"),
        ({"host": "ws01", "extra": {"campaign.id": "op-hanoi"}}, "campaign:op-hanoi"),
        ({"host": "ws01", "extra": {"threat": {"campaign": {"id": "c2-wave"}}}}, "campaign:c2-wave"),
        ({"host": None, "matched": {"TargetUserName": "Admin"}}, "user:admin"),
        ({"host": None, "extra": {"user.name": "-"}, "matched": {"IpAddress": "203.0.113.9"}},
         "source_ip:203.0.113.9"),
        ({"host": None}, None),
    ],
    ids=["host", "host-nested-extra", "host-matched", "campaign-flat", "campaign-nested", "user", "source-ip",
         "no-key"],
)
def test_group_key_defaults(make_alert: Callable[..., Alert], kwargs: dict[str, Any], key: str | None) -> None:
    assert group_key(make_alert(**kwargs), DEFAULT_GROUPING) == key


def test_correlation_key_from_group_values(make_alert: Callable[..., Alert]) -> None:
    alert = make_alert(kind="correlation", extra={"correlation": {"group": {"source.ip": "1.2.3.4",
                                                                              "host.name": "a"}}})
    config = GroupingConfig.of(["correlation"])
    assert group_key(alert, config) == 'correlation:{"host.name":"a","source.ip":"1.2.3.4"}'
    assert alert_value(alert, "correlation.group") == {"source.ip": "1.2.3.4", "host.name": "a"}


@pytest.mark.parametrize(
    ("keys", "second", "same_case"),
    [
        (["host"], {"host": "ws01", "matched": {"TargetUserName": "bob"}}, True),
        (["host"], {"host": "ws02", "matched": {"TargetUserName": "alice"}}, False),
        (["user"], {"host": "ws02", "matched": {"TargetUserName": "ALICE"}}, True),
        (["user"], {"host": "ws01", "matched": {"TargetUserName": "bob"}}, False),
        (["source_ip"], {"host": "ws02", "extra": {"source": {"ip": "198.51.100.7"}}}, True),
        (["source_ip"], {"host": "ws01", "extra": {"source": {"ip": "198.51.100.8"}}}, False),
        (["campaign", "host"], {"host": "ws09", "extra": {"campaign.id": "op-1"}}, True),
        (["campaign", "host"], {"host": "ws01"}, False),
    ],
    ids=["host-same", "host-other", "user-same", "user-other", "ip-same", "ip-other", "campaign-same",
         "campaign-then-host"],
)
def test_grouping_by_each_key(make_incoming: Callable[..., IncomingAlert], keys: list[str],
                              second: dict[str, Any], same_case: bool) -> None:
    grouper = CaseGrouper(grouping=GroupingConfig.of(keys))
    first = make_incoming("r1", host="ws01", matched={"TargetUserName": "alice"},
                          extra={"source": {"ip": "198.51.100.7"}, "campaign.id": "op-1"})
    cases = grouper.group_all([first, make_incoming("r2", ts=T0 + MINUTE, **second)], at_ms=T0)
    assert len(cases) == (1 if same_case else 2)


@pytest.mark.parametrize(
    ("offset", "joins"),
    [(WINDOW, True), (WINDOW + 1, False), (-WINDOW, True), (-WINDOW - 1, False), (0, True)],
    ids=["end-of-window", "after-window", "start-of-window-late-arrival", "before-window", "same-time"],
)
def test_window_boundaries(make_incoming: Callable[..., IncomingAlert], offset: int, joins: bool) -> None:
    grouper = CaseGrouper()
    cases = grouper.group_all([make_incoming("r1"), make_incoming("r2", ts=T0 + offset)], at_ms=T0)
    assert len(cases) == (1 if joins else 2)


def test_window_slides_with_last_seen(make_incoming: Callable[..., IncomingAlert]) -> None:
    alerts = [make_incoming(f"r{i}", ts=T0 + i * 20 * HOUR) for i in range(4)]  # 60 h span, gaps of 20 h
    (case,) = CaseGrouper().group_all(alerts, at_ms=T0)
    assert (case.first_seen_ms, case.last_seen_ms) == (T0, T0 + 60 * HOUR)


def test_closed_case_is_not_joined(make_incoming: Callable[..., IncomingAlert]) -> None:
    grouper = CaseGrouper()
    first = grouper.add(make_incoming("r1"), [], T0)
    assert first.case is not None
    assert first.opened
    closed, _ = apply(first.case, Transition(CaseStatus.FALSE_POSITIVE), "alice", T0 + 1)
    second = grouper.add(make_incoming("r2", ts=T0 + MINUTE), [closed], T0 + 2)
    assert second.opened
    assert second.case is not None
    assert second.case.id != closed.id


def test_duplicate_alert_changes_nothing(make_incoming: Callable[..., IncomingAlert]) -> None:
    grouper = CaseGrouper()
    item = make_incoming("r1")
    first = grouper.add(item, [], T0)
    assert first.case is not None
    again = grouper.add(item, [first.case], T0 + 1)
    assert again.duplicate
    assert again.case == first.case
    assert again.entries == ()


def test_a_full_case_takes_no_more_alerts(make_incoming: Callable[..., IncomingAlert]) -> None:
    grouper = CaseGrouper(grouping=GroupingConfig.of(["host"], max_alerts=3))
    items = [make_incoming(f"r{i}", ts=T0 + i * MINUTE) for i in range(7)]
    cases = sorted(grouper.group_all(items, at_ms=T0), key=lambda c: c.first_seen_ms or 0)
    assert [len(c.alerts) for c in cases] == [3, 3, 1]
    assert [a.id for c in cases for a in c.alerts] == [i.alert.id for i in items]  # none lost, in order
    opened = cases[1].timeline[0]
    assert opened.reason is not None
    assert opened.reason.endswith(f"; continues {cases[0].id}, full (3 alerts)")
    again = grouper.add(items[1], cases, T0 + HOUR)  # an alert of the full case, replayed: still a duplicate
    assert again.duplicate
    assert again.case == cases[0]


@pytest.mark.parametrize(("keyless", "cases"), [("new_case", 1), ("skip", 0)], ids=["new-case", "skip"])
def test_keyless_policy(make_incoming: Callable[..., IncomingAlert], keyless: str, cases: int) -> None:
    grouper = CaseGrouper(grouping=GroupingConfig.of(["host"], keyless=keyless))
    result = grouper.group_all([make_incoming("r1", host=None)], at_ms=T0)
    assert len(result) == cases
    if cases:
        assert result[0].group_key is None


def test_new_case_is_deterministic(make_incoming: Callable[..., IncomingAlert]) -> None:
    item = make_incoming("r1", points=60, extra={"organization.id": "so-tttt", "asset": {"system": {"id": "dvc"}}})
    first = CaseGrouper().add(item, [], T0)
    second = CaseGrouper().add(item, [], T0)
    assert first == second
    case = first.case
    assert case is not None
    assert case.id.startswith("case-")
    assert len(case.id) == 21
    assert (case.title, case.group_key, case.agency, case.systems) == ("Rule r1 (ws01)", "host:ws01", "so-tttt",
                                                                        ("dvc",))
    assert (case.severity, case.layer, case.status) == (Severity.HIGH, Layer.L2, CaseStatus.NEW)
    assert case.sla is not None
    assert case.sla.acknowledge_by_ms == T0 + HOUR


def test_join_raises_severity_and_escalates(make_incoming: Callable[..., IncomingAlert]) -> None:
    grouper = CaseGrouper()
    low = grouper.add(make_incoming("r1", points=10), [], T0)
    assert low.case is not None
    assert (low.case.severity, low.case.layer) == (Severity.LOW, Layer.L1)
    result = grouper.add(make_incoming("r2", points=60, ts=T0 + MINUTE), [low.case], T0 + MINUTE)
    case = result.case
    assert case is not None
    assert not result.opened
    assert (case.severity, case.layer) == (Severity.HIGH, Layer.L2)
    assert [e.action for e in result.entries] == ["add_alert", "set_sla", "escalate"]
    assert result.entries[0].summary.endswith("severity raised from low to high: high: test (+60)")
    assert result.entries[2].summary == "escalated from L1 to L2: routing: severity high → L2"
    assert case.sla is not None
    assert case.sla.acknowledge_by_ms == T0 + HOUR
    # a lower alert afterwards changes neither
    later = grouper.add(make_incoming("r3", points=10, ts=T0 + 2 * MINUTE), [case], T0 + 2 * MINUTE)
    assert later.case is not None
    assert (later.case.severity, later.case.layer) == (Severity.HIGH, Layer.L2)
    assert [e.action for e in later.entries] == ["add_alert"]


def test_analyst_deescalation_stays_until_severity_rises(make_incoming: Callable[..., IncomingAlert]) -> None:
    from correlator.cases.commands import Deescalate

    grouper = CaseGrouper()
    opened = grouper.add(make_incoming("r1", points=30), [], T0)
    assert opened.case is not None
    case, _ = apply(opened.case, Deescalate(Layer.L1, "the agency handles it"), "alice", T0 + 1)
    same = grouper.add(make_incoming("r2", points=30, ts=T0 + 1), [case], T0 + 2)
    assert same.case is not None
    assert same.case.layer is Layer.L1


def test_merge_keeps_both_timelines(make_incoming: Callable[..., IncomingAlert]) -> None:
    grouper = CaseGrouper()
    (a,) = grouper.group_all([make_incoming("r1", points=30, host="ws01")], at_ms=T0)
    (b,) = grouper.group_all([make_incoming("r2", points=80, host="ws02", ts=T0 + MINUTE)], at_ms=T0)
    merged, closed, entries = merge_cases(a, b, "alice", T0 + HOUR)
    assert merged.alert_ids == (*a.alert_ids, *b.alert_ids)
    assert merged.timeline[: len(a.timeline)] == a.timeline
    assert merged.timeline[len(a.timeline): -1] == b.timeline  # the source's entries, unchanged
    assert merged.timeline[-1] == entries[0]
    assert entries[0].summary == (f"merged case {b.id} (1 alerts, {len(b.timeline)} timeline entries); severity "
                                  "raised from medium to critical")
    assert (merged.severity, merged.merged_from, merged.last_seen_ms) == (Severity.CRITICAL, (b.id,), T0 + MINUTE)
    assert (closed.status, closed.merged_into, closed.timeline[-1]) == (CaseStatus.CLOSED, a.id, entries[1])
    assert entries[1].summary == f"merged into case {a.id}; closed"
    assert Case.from_dict(merged.to_dict()) == merged


def test_grouper_merge_reroutes(make_incoming: Callable[..., IncomingAlert]) -> None:
    grouper = CaseGrouper()
    (a,) = grouper.group_all([make_incoming("r1", points=10, host="ws01")], at_ms=T0)
    (b,) = grouper.group_all([make_incoming("r2", points=60, host="ws02")], at_ms=T0)
    merged, _closed, entries = grouper.merge(a, b, "alice", T0 + HOUR)
    assert merged.layer is Layer.L2
    assert [e.action for e in entries] == ["merge", "merged_into", "set_sla", "escalate"]


def test_merge_refuses_self_and_merged(new_case: Callable[..., Case]) -> None:
    from correlator.cases.errors import CommandError

    case = new_case()
    with pytest.raises(CommandError, match=r"^case case-1: merge: cannot merge a case into itself$"):
        merge_cases(case, case, "alice", T0)
    other = new_case("case-2")
    _merged, closed, _ = merge_cases(case, other, "alice", T0)
    with pytest.raises(CommandError, match=r"^case case-3: merge: case case-2 was already merged into case-1$"):
        merge_cases(new_case("case-3"), closed, "alice", T0)


def test_split_moves_alerts_to_a_new_case(make_incoming: Callable[..., IncomingAlert]) -> None:
    grouper = CaseGrouper()
    items = [make_incoming("r1", points=30), make_incoming("r2", points=80, ts=T0 + MINUTE),
             make_incoming("r3", points=40, ts=T0 + 2 * MINUTE)]
    (case,) = grouper.group_all(items, at_ms=T0)
    assert case.severity is Severity.CRITICAL
    moving = [items[1].alert.id]
    remaining, new, entries = split_case(case, moving, "alice", T0 + HOUR)
    assert remaining.alert_ids == (items[0].alert.id, items[2].alert.id)
    assert (remaining.severity, remaining.last_seen_ms) == (Severity.MEDIUM, T0 + 2 * MINUTE)
    assert new.alert_ids == tuple(moving)
    assert (new.severity, new.split_from, new.group_key, new.layer) == (Severity.CRITICAL, case.id,
                                                                        case.group_key, case.layer)
    assert entries[0].summary == f"split 1 alert(s) out into case {new.id}; severity lowered from critical to medium"
    assert entries[1].summary == "opened: critical, owned by L2 (critical: test (+80))"
    assert entries[1].after["split_from"] == case.id
    assert remaining.timeline[: len(case.timeline)] == case.timeline
    again = split_case(case, moving, "alice", T0 + HOUR)
    assert again[1].id == new.id  # deterministic id


@pytest.mark.parametrize(
    ("ids", "message"),
    [([], "no alerts to split out"), (["nope"], "alert(s) not in the case: nope"),
     (None, "cannot split out every alert (the case would be empty)")],
    ids=["none", "unknown", "all"],
)
def test_split_refused(new_case: Callable[..., Case], ids: list[str] | None, message: str) -> None:
    from correlator.cases.errors import CommandError

    case = new_case()
    with pytest.raises(CommandError) as caught:
        split_case(case, list(case.alert_ids) if ids is None else ids, "alice", T0)
    assert str(caught.value) == f"case case-1: split_out: {message}"


def test_grouper_split_refreshes_both(make_incoming: Callable[..., IncomingAlert]) -> None:
    grouper = CaseGrouper()
    items = [make_incoming("r1", points=10), make_incoming("r2", points=80, ts=T0 + MINUTE)]
    (case,) = grouper.group_all(items, at_ms=T0)
    remaining, new, entries = grouper.split(case, [items[1].alert.id], "alice", T0 + HOUR)
    assert remaining.severity is Severity.LOW
    assert remaining.layer is Layer.L2
    assert new.sla is not None
    assert new.sla.acknowledge_by_ms == T0 + HOUR + 15 * MINUTE
    assert [e.action for e in entries] == ["split_out", "open", "set_sla", "set_sla"]


def test_grouping_config_validation() -> None:
    with pytest.raises(ValueError, match="grouping window must be at least 1 ms"):
        GroupingConfig.of(["host"], window_ms=0)
    with pytest.raises(ValueError, match=r"unknown grouping key\(s\) mac \(give their fields\)"):
        GroupingConfig.of(["mac"])
    config = GroupingConfig.of(["mac"], fields={"mac": ["host.mac"]})
    assert config.to_dict() == {"window": "1d", "keys": ["mac"], "fields": {"mac": ["host.mac"]},
                                "keyless": "new_case", "max_alerts": 1000}
    with pytest.raises(ValueError, match="max_alerts must be at least 1, got 0"):
        GroupingConfig.of(["host"], max_alerts=0)
