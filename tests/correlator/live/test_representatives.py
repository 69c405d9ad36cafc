"""Suppressed counts written at a steady pace: held renderings of a representative are written when due or forced,
each once at its latest count; in the runner, the stored count catches up after the interval, when the engine
goes quiet and when it saves its state."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from collectors.json_reader import normalise_record
from correlator.live.app import build_runner
from correlator.live.config import Listen, RunConfig
from correlator.live.representatives import RepresentativeUpdates
from correlator.live.runner import Runner
from correlator.model import Alert, Event, EventOrigin, MatchedRule
from correlator.store.base import Store
from correlator.store.config import open_store

RULE = """
title: Marker Seen
id: 0b6f1c7e-3c54-4d0e-8a55-7a1f4c2b9e01
status: test
logsource: {product: test}
detection:
    selection:
        marker: seen
    condition: selection
level: medium
"""


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _alert(alert_id: str, count: int) -> Alert:
    rule = MatchedRule(id="r1", title="R", level="low")
    return Alert(rule=rule, event_id=alert_id, timestamp_ms=1_000, host_name=None, origin=EventOrigin(path="test"),
                 extra={"suppression": {"count": count}})


def _counts(alerts: list[Alert]) -> list[tuple[str, int]]:
    return [(a.event_id, a.extra["suppression"]["count"]) for a in alerts]


def test_renderings_are_held_until_the_interval_has_passed_then_written_once_at_their_latest() -> None:
    clock = Clock()
    updates = RepresentativeUpdates(clock, every_s=2.0)
    assert updates.take([_alert("a", 2), _alert("b", 2)]) == []
    clock.now += 1.0
    assert updates.take([_alert("a", 3)]) == []
    assert len(updates) == 2
    clock.now += 1.0
    assert _counts(updates.take([_alert("a", 4)])) == [("a", 4), ("b", 2)]  # first-held order, latest count
    assert len(updates) == 0
    clock.now += 0.5
    assert updates.take([_alert("b", 5)]) == []  # the interval starts again at the last write
    assert _counts(updates.take([], force=True)) == [("b", 5)]
    assert updates.take([], force=True) == []  # nothing held: nothing to write


def test_after_a_quiet_spell_the_first_change_is_written_at_once() -> None:
    clock = Clock()
    updates = RepresentativeUpdates(clock, every_s=2.0)
    clock.now += 60
    assert _counts(updates.take([_alert("a", 2)])) == [("a", 2)]


def test_an_interval_of_zero_writes_every_change() -> None:
    updates = RepresentativeUpdates(Clock(), every_s=0)
    assert _counts(updates.take([_alert("a", 2)])) == [("a", 2)]
    assert _counts(updates.take([_alert("a", 3)])) == [("a", 3)]


def test_a_negative_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="every_s must be >= 0, got -1"):
        RepresentativeUpdates(Clock(), every_s=-1)


# ------------------------------------------------------------------------------------------------ in the runner


def _event(number: int) -> Event:
    record = {"@timestamp": f"2026-11-20T01:00:{number:02d}Z", "marker": "seen", "host": {"name": "web01"},
              "n": number}
    return normalise_record(record, orjson.dumps(record).decode(), EventOrigin(path="test", offset=number))


def _stored_count(store: Store) -> int:
    (alert,) = store.search("alerts", limit=10).hits  # one representative stands for all
    return int(alert["suppression"]["count"])


def _runner(tmp_path: Path, store: Store, clock: Clock) -> Runner:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "marker.yml").write_text(RULE, encoding="utf-8")
    config = RunConfig(store=f"sqlite:///{tmp_path / 'socctl.db'}", state_dir=tmp_path / "state", rules=(rules,),
                       no_default_rules=True, syslog=Listen(udp=None, tcp=None), metrics=Listen(port=None),
                       http=Listen(port=None))
    runner, warnings = build_runner(config, store)
    assert warnings == []
    runner.representatives = RepresentativeUpdates(clock, every_s=2.0)
    return runner


def test_the_runner_writes_suppressed_counts_when_due_when_quiet_and_when_saving_its_state(tmp_path: Path) -> None:
    clock = Clock()
    numbers = iter(range(60))
    with open_store(f"sqlite:///{tmp_path / 'socctl.db'}") as store:
        runner = _runner(tmp_path, store, clock)

        def batch(size: int) -> None:
            runner.process([("test", _event(next(numbers)), 0.0) for _ in range(size)])

        batch(1)
        assert _stored_count(store) == 1  # a new representative is written with its batch
        batch(2)
        batch(1)
        assert _stored_count(store) == 1  # changed, held
        assert runner.counters.suppressed == 3
        clock.now += 2.0
        batch(1)
        assert _stored_count(store) == 5  # due: written at its latest count
        batch(2)
        assert _stored_count(store) == 5
        runner.idle(1.0)
        assert _stored_count(store) == 7  # quiet: written
        batch(1)
        runner.snapshot()
        assert _stored_count(store) == 8  # saving the state: written
        assert len(runner.representatives) == 0
