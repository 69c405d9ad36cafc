"""The model's values survive pickling (ingest workers ship alerts to the parent) unchanged."""

from __future__ import annotations

import pickle

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
