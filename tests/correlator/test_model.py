"""The model's values survive pickling (ingest workers ship alerts to the parent) unchanged."""

from __future__ import annotations

import pickle

import orjson
import pytest

from correlator.model import Alert, EventOrigin, MatchedRule


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
