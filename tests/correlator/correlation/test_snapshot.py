from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from correlator.correlation import (
    CorrelationEngine,
    CorrelationSet,
    EngineSettings,
    SnapshotError,
    SnapshotSchedule,
    load_correlation_texts,
    read_snapshot,
    write_snapshot,
)
from correlator.model import Alert
from tests.correlator.correlation.conftest import match, rules_text, run, summary
from tests.correlator.correlation.test_engine import MIXED, shuffled_within, stream

Make = Callable[..., CorrelationEngine]


@pytest.mark.parametrize("split", [1, 700, 1_500, 2_999], ids=["after-1", "after-700", "after-1500", "after-2999"])
@pytest.mark.parametrize("shuffle", [False, True], ids=["ordered", "shuffled"])
def test_restore_mid_stream_gives_the_same_alerts(engine_for: Make, split: int, shuffle: bool) -> None:
    matches = stream(11)
    if shuffle:
        matches = shuffled_within(matches, 5_000, 11)
    expected = run(engine_for(MIXED, lateness_ms=5_000), matches)

    first = engine_for(MIXED, lateness_ms=5_000)
    alerts: list[Alert] = run(first, matches[:split], flush=False)
    data = first.snapshot()
    second = engine_for(MIXED, lateness_ms=5_000)
    second.restore(data)
    assert second.snapshot() == data
    alerts += run(second, matches[split:])
    assert [a.id for a in alerts] == [a.id for a in expected]
    assert summary(alerts) == summary(expected)


TWO = """
title: Many failed
name: many_failed
correlation: {{type: event_count, rules: [failed], group-by: [User], timespan: 1m, condition: {{gte: 3}}}}
---
title: Many successes
name: many_success
level: {level}
correlation: {{type: event_count, rules: [success], group-by: [User], timespan: {span}, condition: {{gte: 2}}}}
"""


def rule_set(level: str = "low", span: str = "1m") -> CorrelationSet:
    return load_correlation_texts([("rules/t.yml", rules_text(TWO.format(level=level, span=span)))])


@pytest.mark.parametrize(
    ("level", "span", "success_fires"),
    [("low", "1m", True), ("critical", "1m", True), ("low", "2m", False)],
    ids=["unchanged", "metadata-changed", "changed"],
)
def test_reload_keeps_the_windows_of_unchanged_rules(level: str, span: str, success_fires: bool) -> None:
    engine = CorrelationEngine(rule_set())
    run(engine, [match("failed", "f1", 0, User="u"), match("failed", "f2", 1, User="u"),
                 match("success", "s1", 2, User="u")], flush=False)
    engine.advance(3)  # everything so far is in the windows (none waits for the horizon)
    engine.reload(rule_set(level, span))
    alerts = run(engine, [match("failed", "f3", 3, User="u"), match("success", "s2", 4, User="u")])
    assert sorted(a.rule.id for a in alerts) == (["many_failed", "many_success"] if success_fires
                                                 else ["many_failed"])
    if success_fires:
        assert next(a for a in alerts if a.rule.id == "many_success").rule.level == level


def test_reload_drops_state_of_removed_rules(caplog: pytest.LogCaptureFixture) -> None:
    engine = CorrelationEngine(rule_set())
    run(engine, [match("failed", "f1", 0, User="u"), match("success", "s1", 1, User="u"),
                 match("success", "s2", 2, User="v")], flush=False)
    engine.advance(10)
    first_rule = TWO.format(level="low", span="1m").split("---")[0]
    only_failed = load_correlation_texts([("rules/t.yml", rules_text(first_rule))])
    engine.reload(only_failed)
    assert engine.metrics().live_windows == 1
    assert "state of 1 correlation rule(s) not restored (changed or removed): many_success" in caplog.messages


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{not json", "not a correlation snapshot: invalid JSON at character 1"),
        (b"[]", "not a correlation snapshot: format is not socctl.correlation.snapshot"),
        (orjson.dumps({"format": "socctl.correlation.snapshot", "version": 99}),
         "unsupported correlation snapshot version 99 (expected 1)"),
        (orjson.dumps({"format": "socctl.correlation.snapshot", "version": 1, "watermark": None}),
         "corrupt correlation snapshot: missing floor, now, seq, counters, pending, timers, rules"),
    ],
    ids=["not-json", "not-a-snapshot", "future-version", "missing-parts"],
)
def test_bad_snapshots_are_refused(engine_for: Make, data: bytes, message: str) -> None:
    engine = engine_for(TWO.format(level="low", span="1m"))
    with pytest.raises(SnapshotError) as info:
        engine.restore(data)
    assert str(info.value) == message


def test_periodic_snapshots_by_an_injected_clock(engine_for: Make, tmp_path: Path) -> None:
    now = [1_000]
    schedule = SnapshotSchedule(interval_ms=60_000, clock=lambda: now[0])
    engine = engine_for(TWO.format(level="low", span="1m"))
    target = tmp_path / "correlation.snapshot"
    run(engine, [match("failed", "f1", 0, User="u"), match("failed", "f2", 1, User="u")], flush=False)
    assert schedule.maybe_write(engine, target)
    now[0] += 59_999
    assert not schedule.maybe_write(engine, target)
    now[0] += 1
    assert schedule.maybe_write(engine, target)
    assert [p.name for p in tmp_path.iterdir()] == ["correlation.snapshot"]

    restored = engine_for(TWO.format(level="low", span="1m"))
    assert read_snapshot(restored, target)
    assert [a.rule.id for a in run(restored, [match("failed", "f3", 2, User="u")])] == ["many_failed"]
    assert not read_snapshot(restored, tmp_path / "absent")
    (tmp_path / "bad").write_bytes(b"[]")
    with pytest.raises(SnapshotError) as info:
        read_snapshot(restored, tmp_path / "bad")
    assert str(info.value) == f"{tmp_path / 'bad'}: not a correlation snapshot: format is not " \
                              "socctl.correlation.snapshot"
    assert write_snapshot(restored, tmp_path / "again") == len((tmp_path / "again").read_bytes())


def test_snapshot_schedule_validates_its_interval() -> None:
    with pytest.raises(ValueError, match="snapshot interval must be at least 1 ms, not 0"):
        SnapshotSchedule(interval_ms=0, clock=lambda: 0)


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="allowed lateness must not be negative, not -1"):
        EngineSettings(lateness_ms=-1)
