"""Alert suppression: counts, first/last seen, window boundaries, overrides, exempt kinds, out-of-order alerts,
replay and shuffle equivalence, eviction, snapshots, the batch contract and the policy's error messages."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from correlator.model import Alert, EventOrigin, MatchedRule, ms_to_iso
from correlator.suppression import (
    DEFAULT_POLICY,
    Action,
    RuleSuppression,
    SuppressionMetrics,
    SuppressionPolicy,
    SuppressionPolicyError,
    SuppressionSnapshotError,
    Suppressor,
)

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
MINUTE = 60_000
WINDOW = 10 * MINUTE

MakeAlert = Callable[..., Alert]


@pytest.fixture
def make_alert() -> MakeAlert:
    """An alert of rule `rule_id` at `ts` on `host`; `n` makes its event (and so its id) distinct."""

    def build(rule_id: str = "r1", *, ts: int = T0, host: str | None = "ws01", kind: str = "sigma", n: int = 0,
              user: str | None = None, matched: dict[str, Any] | None = None,
              extra: dict[str, Any] | None = None) -> Alert:
        fields = dict(matched or {})
        if user is not None:
            fields["user.name"] = user
        rule = MatchedRule(id=rule_id, title=f"Rule {rule_id}", level="high", kind=kind)
        return Alert(rule=rule, event_id=f"ev-{rule_id}-{ts}-{n}", timestamp_ms=ts, host_name=host,
                     origin=EventOrigin(path="test.jsonl", offset=n), matched=fields, extra=dict(extra or {}))

    return build


def policy(**kwargs: Any) -> SuppressionPolicy:
    return SuppressionPolicy.from_dict({"window": "10m", **kwargs})


def block(alert: Alert) -> dict[str, Any]:
    value: dict[str, Any] = alert.extra["suppression"]
    return value


def terms(host: str | None = "ws01", user: str | None = None, src: Any = None,
          dst: str | None = None) -> list[dict[str, Any]]:
    return [{"field": "host.name", "value": host}, {"field": "user.name", "value": user},
            {"field": "source.ip", "value": src}, {"field": "destination.ip", "value": dst}]


# -- counts, first and last seen


def test_first_alert_is_the_representative_and_later_ones_count_into_it(make_alert: MakeAlert) -> None:
    suppressor = Suppressor(policy())
    first = make_alert(ts=T0)
    second = make_alert(ts=T0 + 3 * MINUTE, n=1)
    third = make_alert(ts=T0 + MINUTE, n=2)

    opened = suppressor.process(first)
    assert opened.action is Action.NEW
    assert opened.reason == "first alert of its key"
    assert opened.representative_id == first.id
    assert opened.alert.id == first.id
    assert block(opened.alert) == {
        "count": 1, "docs_count": 0, "start": "2026-01-01T00:00:00.000Z", "end": "2026-01-01T00:00:00.000Z",
        "terms": terms(), "window": "10m", "window_start": "2026-01-01T00:00:00.000Z",
        "window_end": "2026-01-01T00:10:00.000Z", "suppressed_ids": [],
    }
    assert "suppression" not in first.extra  # the input alert is left alone

    suppressor.process(second)
    decision = suppressor.process(third)
    assert decision.action is Action.SUPPRESSED
    assert decision.suppressed
    assert decision.reason == f"within the window of representative {first.id} (count 3)"
    assert decision.alert.id == first.id
    assert decision.alert.timestamp_ms == T0
    assert block(decision.alert) == {
        "count": 3, "docs_count": 2, "start": "2026-01-01T00:00:00.000Z", "end": "2026-01-01T00:03:00.000Z",
        "terms": terms(), "window": "10m", "window_start": "2026-01-01T00:00:00.000Z",
        "window_end": "2026-01-01T00:10:00.000Z", "suppressed_ids": [second.id, third.id],
    }


def test_suppressed_ids_are_capped_but_the_count_is_not(make_alert: MakeAlert) -> None:
    suppressor = Suppressor(policy(max_ids=2))
    alerts = [make_alert(ts=T0 + i, n=i) for i in range(5)]
    decisions = [suppressor.process(a) for a in alerts]
    assert block(decisions[-1].alert)["count"] == 5
    assert block(decisions[-1].alert)["suppressed_ids"] == [alerts[1].id, alerts[2].id]


@pytest.mark.parametrize(
    ("other", "same"),
    [
        ({"host": "ws02"}, False),
        ({"rule_id": "r2"}, False),
        ({"kind": "yara"}, False),
        ({"user": "alice"}, False),
        ({"host": "WS01"}, False),  # values are compared exactly
        ({"matched": {"source.ip": "-"}}, True),  # blank values are missing
        ({"extra": {"process": {"name": "x.exe"}}}, True),  # not a key field
    ],
    ids=["other-host", "other-rule", "other-kind", "extra-user", "case-differs", "blank-is-missing", "non-key"],
)
def test_key_is_rule_and_field_values(make_alert: MakeAlert, other: dict[str, Any], same: bool) -> None:
    suppressor = Suppressor(policy())
    suppressor.process(make_alert(ts=T0))
    decision = suppressor.process(make_alert(ts=T0 + 1, n=1, **other))
    assert decision.suppressed is same


def test_key_values_from_extra_nested_matched_and_lists(make_alert: MakeAlert) -> None:
    suppressor = Suppressor(policy())
    first = make_alert(host=None, extra={"host": {"name": "srv1"}, "user.name": "bob"},
                       matched={"source.ip": ["10.0.0.2", "10.0.0.1"]})
    second = make_alert(ts=T0 + 1, n=1, host="srv1", user="bob", matched={"source.ip": ["10.0.0.1", "10.0.0.2",
                                                                                        "10.0.0.1"]})
    assert suppressor.process(first).action is Action.NEW
    decision = suppressor.process(second)
    assert decision.suppressed
    assert block(decision.alert)["terms"] == terms("srv1", "bob", ["10.0.0.1", "10.0.0.2"])


# -- windows


def test_window_end_is_inclusive(make_alert: MakeAlert) -> None:
    suppressor = Suppressor(policy())
    first = make_alert(ts=T0)
    suppressor.process(first)
    assert suppressor.process(make_alert(ts=T0 + WINDOW, n=1)).suppressed
    after = suppressor.process(make_alert(ts=T0 + WINDOW + 1, n=2))
    assert after.action is Action.NEW
    assert after.reason == f"the window of representative {first.id} ended at 2026-01-01T00:10:00.000Z"
    assert block(after.alert)["window_start"] == ms_to_iso(T0 + WINDOW + 1)
    # the next one counts into the newer representative
    later = suppressor.process(make_alert(ts=T0 + WINDOW + 2, n=3))
    assert later.representative_id == after.alert.id


def test_out_of_order_alert_within_one_window_before_the_start_counts(make_alert: MakeAlert) -> None:
    suppressor = Suppressor(policy())
    first = make_alert(ts=T0)
    suppressor.process(first)
    early = suppressor.process(make_alert(ts=T0 - WINDOW, n=1))
    assert early.suppressed
    assert early.reason == (f"out of order: before representative {first.id}, within one window of its start "
                            f"(count 2)")
    data = block(early.alert)
    assert (data["start"], data["end"]) == (ms_to_iso(T0 - WINDOW), ms_to_iso(T0))
    assert (data["window_start"], data["window_end"]) == (ms_to_iso(T0), ms_to_iso(T0 + WINDOW))  # does not move


def test_out_of_order_alert_more_than_one_window_before_opens_its_own(make_alert: MakeAlert) -> None:
    suppressor = Suppressor(policy())
    first = make_alert(ts=T0)
    suppressor.process(first)
    too_early = suppressor.process(make_alert(ts=T0 - WINDOW - 1, n=1))
    assert too_early.action is Action.NEW
    assert too_early.reason == "more than one window before the key's representatives"
    # T0 - 1 lies in the early representative's window [T0 - W - 1, T0 - 1]: its own window wins
    assert suppressor.process(make_alert(ts=T0 - 1, n=2)).representative_id == too_early.alert.id
    # T0 + 1 lies only in the first one's
    assert suppressor.process(make_alert(ts=T0 + 1, n=3)).representative_id == first.id


def test_per_rule_window_fields_and_disabled(make_alert: MakeAlert) -> None:
    suppressor = Suppressor(policy(rules={
        "long": {"window": "1h"},
        "by-user": {"fields": ["user.name"]},
        "off": {"disabled": True},
    }))
    suppressor.process(make_alert("long", ts=T0))
    assert suppressor.process(make_alert("long", ts=T0 + 59 * MINUTE, n=1)).suppressed
    assert suppressor.process(make_alert("r1", ts=T0)).action is Action.NEW
    assert suppressor.process(make_alert("r1", ts=T0 + 59 * MINUTE, n=1)).action is Action.NEW

    suppressor.process(make_alert("by-user", user="alice", host="ws01"))
    across_hosts = suppressor.process(make_alert("by-user", ts=T0 + 1, user="alice", host="ws99", n=1))
    assert across_hosts.suppressed
    assert block(across_hosts.alert)["terms"] == [{"field": "user.name", "value": "alice"}]

    first_off = suppressor.process(make_alert("off"))
    second_off = suppressor.process(make_alert("off", ts=T0 + 1, n=1))
    assert (first_off.action, second_off.action) == (Action.NEW, Action.NEW)
    assert second_off.reason == "suppression is disabled for rule 'off'"
    assert second_off.representative_id is None
    assert "suppression" not in second_off.alert.extra


def test_exempt_kinds_pass_through(make_alert: MakeAlert) -> None:
    suppressor = Suppressor(DEFAULT_POLICY)
    alerts = [make_alert("c1", kind="correlation", ts=T0 + i, n=i) for i in range(3)]
    decisions = [suppressor.process(a) for a in alerts]
    assert [d.action for d in decisions] == [Action.NEW] * 3
    assert decisions[0].reason == "rule kind 'correlation' is exempt from suppression"
    assert [d.alert for d in decisions] == alerts  # the alerts themselves, no block
    assert decisions[0].alert is alerts[0]
    assert all("suppression" not in d.alert.extra for d in decisions)
    assert suppressor.metrics().passed_total == 3

    for kind in ("sigma", "yara", "intel"):
        suppressor.process(make_alert(kind=kind))
        assert suppressor.process(make_alert(kind=kind, ts=T0 + 1, n=1)).suppressed, kind


def test_exempt_kinds_are_configurable_and_overrides_win(make_alert: MakeAlert) -> None:
    suppressor = Suppressor(policy(exempt_kinds=["yara"], rules={"c-noisy": {"window": "5m"}}))
    suppressor.process(make_alert("c1", kind="correlation"))
    assert suppressor.process(make_alert("c1", kind="correlation", ts=T0 + 1, n=1)).suppressed
    suppressor.process(make_alert("y1", kind="yara"))
    assert not suppressor.process(make_alert("y1", kind="yara", ts=T0 + 1, n=1)).suppressed
    suppressor = Suppressor(policy(rules={"c-noisy": {"window": "5m"}}))
    suppressor.process(make_alert("c-noisy", kind="correlation"))
    assert suppressor.process(make_alert("c-noisy", kind="correlation", ts=T0 + 1, n=1)).suppressed


def test_missing_fields_strategy(make_alert: MakeAlert) -> None:
    grouped = Suppressor(policy(fields=["user.name"]))
    grouped.process(make_alert())
    assert grouped.process(make_alert(ts=T0 + 1, n=1)).suppressed  # both have no user: one key

    strict = Suppressor(policy(fields=["host.name", "user.name"], missing_fields="do_not_suppress"))
    decisions = [strict.process(make_alert(ts=T0 + i, n=i)) for i in range(2)]
    assert [d.action for d in decisions] == [Action.NEW, Action.NEW]
    assert decisions[1].reason == "missing key field(s) user.name (missing_fields: do_not_suppress)"
    strict.process(make_alert(user="bob"))
    assert strict.process(make_alert(user="bob", ts=T0 + 1, n=1)).suppressed


# -- determinism


def _stream(make_alert: MakeAlert) -> list[Alert]:
    rng = random.Random(7)
    hosts = ["ws01", "ws02", "srv1"]
    return [make_alert(rng.choice(["r1", "r2"]), ts=T0 + rng.randrange(0, 40 * MINUTE), host=rng.choice(hosts), n=i)
            for i in range(200)]


def _run(alerts: list[Alert]) -> list[tuple[str, str, bytes]]:
    suppressor = Suppressor(policy())
    return [(str(d.action), d.reason, d.alert.to_json()) for d in map(suppressor.process, alerts)]


def test_replay_gives_the_same_representatives_and_counts(make_alert: MakeAlert) -> None:
    alerts = _stream(make_alert)
    assert _run(alerts) == _run(list(alerts))


@pytest.mark.parametrize("seed", range(5), ids=[f"seed-{s}" for s in range(5)])
def test_shuffled_input_within_one_window_gives_the_same_counts(make_alert: MakeAlert, seed: int) -> None:
    alerts = [make_alert(rule, ts=T0 + (i * 7919) % WINDOW, host=host, n=i)
              for i, (rule, host) in enumerate((r, h) for r in ("r1", "r2") for h in ("a", "b", "c") for _ in range(9))]

    def counts(batch: list[Alert]) -> dict[tuple[str, str | None], tuple[int, str, str]]:
        new, updated = Suppressor(policy()).process_many(batch)
        assert updated == []
        return {(a.rule.id, a.host_name): (block(a)["count"], block(a)["start"], block(a)["end"]) for a in new}

    shuffled = list(alerts)
    random.Random(seed).shuffle(shuffled)
    expected = counts(alerts)
    assert len(expected) == 6
    assert {v[0] for v in expected.values()} == {9}
    assert counts(shuffled) == expected


# -- eviction and metrics


def test_advance_evicts_windows_that_ended_before_the_watermark(make_alert: MakeAlert) -> None:
    suppressor = Suppressor(policy())
    first = make_alert(ts=T0)
    suppressor.process(first)
    suppressor.process(make_alert(ts=T0 + 1, n=1))
    other = make_alert(ts=T0 + MINUTE, host="ws02")
    suppressor.process(other)
    assert suppressor.advance(T0 + WINDOW) == []  # window end == watermark: still open
    evicted = suppressor.advance(T0 + WINDOW + 1)
    assert [a.id for a in evicted] == [first.id]
    assert block(evicted[0])["count"] == 2
    assert suppressor.metrics() == SuppressionMetrics(live_keys=1, representatives=1, new_total=2,
                                                      suppressed_total=1, passed_total=0, evicted_total=1)
    assert suppressor.advance(T0) == []  # the watermark never goes back
    assert suppressor.watermark == T0 + WINDOW + 1
    late = suppressor.process(make_alert(ts=T0 + 2, n=2))  # its representative is gone: a new one
    assert late.action is Action.NEW
    assert late.reason == "first alert of its key"
    assert [a.id for a in suppressor.advance(T0 + MINUTE + WINDOW + 1)] == [late.alert.id, other.id]
    assert suppressor.metrics().to_dict() == {"live_keys": 0, "representatives": 0, "new_total": 3,
                                              "suppressed_total": 1, "passed_total": 0, "evicted_total": 3}


# -- snapshots


def test_snapshot_restore_continues_like_an_uninterrupted_run(make_alert: MakeAlert) -> None:
    alerts = _stream(make_alert)
    head, tail = alerts[:120], alerts[120:]
    straight = Suppressor(policy())
    for alert in head:
        straight.process(alert)
    straight.advance(T0 + 15 * MINUTE)
    data = straight.snapshot()
    restarted = Suppressor(policy())
    restarted.restore(data)
    assert restarted.snapshot() == data
    assert restarted.metrics() == straight.metrics()
    assert restarted.watermark == straight.watermark
    assert [a.to_json() for a in restarted.representatives()] == [a.to_json() for a in straight.representatives()]
    assert [d.alert.to_json() for d in map(restarted.process, tail)] == \
        [d.alert.to_json() for d in map(straight.process, tail)]


def test_snapshot_keeps_alert_details(make_alert: MakeAlert) -> None:
    suppressor = Suppressor(policy())
    alert = make_alert(extra={"threat": {"tactic": ["ta0001"]}}, matched={"Image": "C:\\x.exe"})
    alert.rule = MatchedRule(id="r1", title="T", level="high", tags=("attack.t1059",), kind="sigma",
                             namespace="ns", path="rules/r1.yml", description="d", meta=(("author", "x"),))
    alert.origin = EventOrigin(path="a.evtx", offset=4, record_id=9, format="evtx")
    suppressor.process(alert)
    restored = Suppressor(policy())
    restored.restore(suppressor.snapshot())
    assert restored.representatives() == suppressor.representatives()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{", "not a suppression snapshot: invalid JSON at character 1"),
        (b'{"format": "x"}', "not a suppression snapshot: format is not socctl.suppression.snapshot"),
        (b'{"format": "socctl.suppression.snapshot", "version": 2}',
         "unsupported suppression snapshot version 2 (expected 1)"),
        (b'{"format": "socctl.suppression.snapshot", "version": 1, "seq": 0}',
         "corrupt suppression snapshot: missing watermark, counters, representatives"),
        (b'{"format": "socctl.suppression.snapshot", "version": 1, "seq": 0, "watermark": null, "counters": {},'
         b' "representatives": []}', "corrupt suppression snapshot: KeyError: 'new'"),
    ],
    ids=["json", "format", "version", "missing", "counters"],
)
def test_bad_snapshots(data: bytes, message: str) -> None:
    with pytest.raises(SuppressionSnapshotError) as info:
        Suppressor().restore(data)
    assert str(info.value) == message


def test_snapshot_is_versioned_json(make_alert: MakeAlert) -> None:
    suppressor = Suppressor(policy())
    suppressor.process(make_alert())
    doc = orjson.loads(suppressor.snapshot())
    assert (doc["format"], doc["version"]) == ("socctl.suppression.snapshot", 1)
    assert doc["representatives"][0]["count"] == 1


# -- the batch contract


def test_process_many_returns_new_and_updated_once_each(make_alert: MakeAlert) -> None:
    suppressor = Suppressor(policy())
    existing = make_alert(ts=T0, host="ws01")
    new, updated = suppressor.process_many([existing])
    assert ([a.id for a in new], updated) == ([existing.id], [])

    fresh = make_alert(ts=T0 + 1, host="ws02")
    passing = make_alert("c1", kind="correlation", ts=T0 + 2)
    batch = [
        make_alert(ts=T0 + 5, host="ws01", n=1),
        fresh,
        make_alert(ts=T0 + 6, host="ws01", n=2),
        passing,
        make_alert(ts=T0 + 7, host="ws02", n=3),
        make_alert(ts=T0 + 8, host="ws02", n=4),
    ]
    new, updated = suppressor.process_many(batch)
    assert [a.id for a in new] == [fresh.id, passing.id]
    assert block(new[0])["count"] == 3  # opened in this batch: its final count, only in `new`
    assert new[1] is passing
    assert [a.id for a in updated] == [existing.id]
    assert block(updated[0])["count"] == 3
    assert block(updated[0])["end"] == ms_to_iso(T0 + 6)


def test_process_many_prepares_each_alert_that_stands_before_rendering_it(make_alert: MakeAlert) -> None:
    suppressor = Suppressor(policy())
    existing = make_alert(ts=T0, host="ws01")
    suppressor.process_many([existing])
    fresh = make_alert(ts=T0 + 1, host="ws02")
    passing = make_alert("c1", kind="correlation", ts=T0 + 2)
    counted = [make_alert(ts=T0 + 5, host="ws01", n=1), make_alert(ts=T0 + 7, host="ws02", n=3)]
    seen: list[str] = []

    def standing(alert: Alert) -> None:
        seen.append(alert.id)
        alert.extra["risk"] = {"score": len(seen)}

    new, updated = suppressor.process_many([counted[0], fresh, passing, counted[1]], standing=standing)
    assert seen == [fresh.id, passing.id]  # once each, in order; never an alert counted into another
    assert [a.extra["risk"] for a in new] == [{"score": 1}, {"score": 2}]
    assert block(new[0])["count"] == 2  # rendered after the whole batch, with what `standing` wrote
    assert all("risk" not in a.extra for a in counted)
    assert [a.id for a in updated] == [existing.id]


# -- the policy


def test_policy_round_trip() -> None:
    data = {
        "window": "90s",
        "fields": ["user.name", "source.ip"],
        "missing_fields": "do_not_suppress",
        "exempt_kinds": ["correlation", "intel"],
        "max_ids": 3,
        "rules": {"a": {"window": "1h"}, "b": {"fields": ["host.name"]}, "c": {"disabled": True}},
    }
    parsed = SuppressionPolicy.from_dict(data)
    assert parsed.window_ms == 90_000
    assert parsed.rules["a"] == RuleSuppression(window_ms=3_600_000)
    assert parsed.to_dict() == data
    assert SuppressionPolicy.from_dict(parsed.to_dict()) == parsed
    assert SuppressionPolicy.from_dict(None) == DEFAULT_POLICY
    assert SuppressionPolicy.from_dict({"window": 1}).window_ms == 1
    assert DEFAULT_POLICY.to_dict() == {
        "window": "5m", "fields": ["host.name", "user.name", "source.ip", "destination.ip"],
        "missing_fields": "suppress", "exempt_kinds": ["correlation"], "max_ids": 10, "rules": {},
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "policy: must be a mapping, not []"),
        ({"windw": "5m"}, "windw: unknown key (expected one of window, fields, missing_fields, exempt_kinds, "
                          "max_ids, rules)"),
        ({"window": "5 minutes"}, "window: invalid duration '5 minutes': expected a number and a unit "
                                  "(ms, s, m, h, d, w), e.g. 15m"),
        ({"window": "0m"}, "window: invalid duration '0m': must be greater than zero"),
        ({"window": 0}, "window: must be at least 1 ms, not 0"),
        ({"window": True}, "window: must be a duration (10m) or a number of ms, not True"),
        ({"fields": []}, "fields: must be a non-empty list of field names, not ()"),
        ({"fields": ["host.name", " user.name"]}, "fields: invalid field name ' user.name'"),
        ({"fields": ["a", "b", "a"]}, "fields: duplicate field(s) a"),
        ({"fields": {"a": 1}}, "fields: must be a non-empty list of field names, not {'a': 1}"),
        ({"exempt_kinds": ["corelation"]}, "exempt_kinds: unknown rule kind(s) corelation (expected correlation, "
                                           "ids, intel, sigma, yara)"),
        ({"exempt_kinds": [1]}, "exempt_kinds: must be a list of rule kinds, not [1]"),
        ({"missing_fields": "skip"}, "missing_fields: must be suppress or do_not_suppress, not 'skip'"),
        ({"max_ids": -1}, "max_ids: must be a whole number >= 0, not -1"),
        ({"rules": ["a"]}, "rules: must be a mapping of rule id to override, not ['a']"),
        ({"rules": {"r1": {"window": "0s"}}}, "rules.r1.window: invalid duration '0s': must be greater than zero"),
        ({"rules": {"r1": {"windows": "5m"}}}, "rules.r1.windows: unknown key (expected one of window, fields, "
                                               "disabled)"),
        ({"rules": {"r1": {"fields": []}}}, "rules.r1.fields: must be a non-empty list of field names, not ()"),
        ({"rules": {"r1": {"disabled": "yes"}}}, "rules.r1.disabled: must be true or false, not 'yes'"),
        ({"rules": {"r1": "off"}}, "rules.r1: must be a mapping, not 'off'"),
        ({"rules": {"": {}}}, "rules: invalid rule id ''"),
    ],
    ids=["not-mapping", "unknown-key", "bad-duration", "zero-duration", "zero-ms", "bool-window", "no-fields",
         "padded-field", "duplicate-field", "fields-mapping", "unknown-kind", "kind-type", "missing-fields",
         "max-ids", "rules-list", "rule-window", "rule-unknown-key", "rule-fields", "rule-disabled", "rule-str",
         "rule-id"],
)
def test_bad_policy_messages(data: Any, message: str) -> None:
    with pytest.raises(SuppressionPolicyError) as info:
        SuppressionPolicy.from_dict(data)
    assert str(info.value) == f"suppression policy: {message}"


def test_policy_validates_on_construction() -> None:
    with pytest.raises(SuppressionPolicyError, match=r"^suppression policy: window: must be at least 1 ms, not 0$"):
        SuppressionPolicy(window_ms=0)
    with pytest.raises(SuppressionPolicyError, match=r"^suppression policy: window: must be at least 1 ms, not -5$"):
        RuleSuppression(window_ms=-5)
    with pytest.raises(SuppressionPolicyError, match=r"^suppression policy: rules.r1: must be a RuleSuppression"):
        SuppressionPolicy(rules={"r1": {"window": "5m"}})  # type: ignore[dict-item]
    with pytest.raises(TypeError):
        SuppressionPolicy().rules["x"] = RuleSuppression()  # type: ignore[index]
