"""The model's values survive pickling (ingest workers ship alerts to the parent) unchanged; event ids are the
record's time and content hash, in time order."""

from __future__ import annotations

import hashlib
import pickle
import random

import orjson
import pytest

from correlator.model import Alert, EventOrigin, MatchedRule, event_id_for, timed_id


@pytest.mark.parametrize(
    "value",
    [
        EventOrigin(path="a.evtx", record_id=7, format="evtx"),
        EventOrigin(path=None, offset=3),
        MatchedRule(id="r1", title="T", level="high", tags=("attack.t1",), kind="yara", namespace="ns",
                    path="p.yml", description="d", meta=(("k", 1),)),
        Alert(rule=MatchedRule(id="r1", title="T", level="low"), event_id="e" * 32, timestamp_ms=5,
              host_name="WS01", origin=EventOrigin(path="a.evtx", record_id=7), matched={"Image": "x"},
              extra={"y": [1]}),
    ],
    ids=["origin", "origin-offset", "rule", "alert"],
)
def test_pickle_round_trip(value: object) -> None:
    copy = pickle.loads(pickle.dumps(value))
    assert copy == value
    assert type(copy) is type(value)


@pytest.mark.parametrize(("field", "value", "kept"), [
    ("event", "user login", "user login"),
    ("log", "GET /index.html 200", "GET /index.html 200"),
    ("event", ["a", 1], '["a",1]'),
], ids=["event-string", "docker-log-string", "event-list"])
def test_a_record_whose_event_or_log_is_not_an_object_keeps_it_in_labels(field: str, value: object,
                                                                          kept: str) -> None:
    from collectors.generic import normalise_json

    record = {"@timestamp": "2026-11-20T01:00:00Z", field: value, "message": "x"}
    event = normalise_json(record, orjson.dumps(record).decode(), EventOrigin(path="agent.json", offset=1))
    doc = event.to_document()
    assert doc["labels"][field] == kept
    assert doc["event"]["id"] == event.id
    assert doc["log"]["file"]["path"] == "agent.json"


def test_an_event_id_is_the_time_in_hex_then_the_records_sha256() -> None:
    raw = "Nov 20 01:00:02 web01 sshd[1]: Failed password for root from 198.51.100.23 port 1 ssh2"
    at = 1_795_136_402_000  # 2026-11-20T01:00:02Z
    event_id = event_id_for(raw, at)
    assert event_id == f"{at:012x}" + hashlib.sha256(raw.encode()).hexdigest()[:20]
    assert len(event_id) == 32
    assert int(event_id[:12], 16) == at
    assert event_id_for(raw.encode(), at) == event_id == timed_id(at, hashlib.sha256(raw.encode()).hexdigest())
    assert event_id_for(raw, at + 1) != event_id  # the same line at another time is another event
    assert event_id_for(raw + " ", at)[:12] == event_id[:12]


def test_event_ids_sort_in_time_order_whatever_their_records() -> None:
    rng = random.Random(5)
    times = sorted(rng.randrange(0, 4_102_444_800_000) for _ in range(2000))  # up to 2100
    ids = [event_id_for(f"record {rng.random()}", at) for at in times]
    assert [int(i[:12], 16) for i in sorted(ids)] == times


@pytest.mark.parametrize(("at", "prefix"), [(-1, "000000000000"), (-10**15, "000000000000"), (0, "000000000000"),
                                            (16**12 - 1, "ffffffffffff"), (16**12, "ffffffffffff"),
                                            (10**20, "ffffffffffff")])
def test_times_outside_twelve_hex_digits_are_clamped(at: int, prefix: str) -> None:
    event_id = event_id_for("x", at)
    assert event_id[:12] == prefix
    assert len(event_id) == 32
