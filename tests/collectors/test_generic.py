"""Generic JSON to Event: dotted and nested keys, timestamps, the fast flatten."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from collectors.generic import first_timestamp_ms, flat_fields, normalise_json, to_epoch_ms
from correlator.model import EventOrigin, event_id_for, flatten


def normalise(record: dict[str, Any]) -> Any:
    raw = orjson.dumps(record).decode()
    return normalise_json(record, raw, EventOrigin(path="auth.json", offset=3, format="json"))


NESTED = {
    "@timestamp": "2024-03-11T10:02:11.000Z",
    "event": {"module": "system", "dataset": "system.auth", "category": ["authentication"]},
    "source": {"ip": "203.0.113.77", "port": 52114},
    "message": "Failed password for root from 203.0.113.77 port 52114 ssh2",
}
DOTTED = {
    "@timestamp": "2024-03-11T10:02:11.000Z",
    "event.module": "system",
    "event.dataset": "system.auth",
    "event.category": ["authentication"],
    "source.ip": "203.0.113.77",
    "source.port": 52114,
    "message": "Failed password for root from 203.0.113.77 port 52114 ssh2",
}
MIXED = {
    "@timestamp": "2024-03-11T10:02:11.000Z",
    "event": {"module": "system", "dataset": "system.auth"},
    "event.category": ["authentication"],
    "source": {"ip": "203.0.113.77"},
    "source.port": 52114,
    "message": "Failed password for root from 203.0.113.77 port 52114 ssh2",
}


@pytest.mark.parametrize("record", [NESTED, DOTTED, MIXED], ids=["nested", "dotted", "mixed"])
def test_nested_and_dotted_keys_give_the_same_event(record: dict[str, Any]) -> None:
    event = normalise(record)
    assert event.ecs == {
        "@timestamp": "2024-03-11T10:02:11.000Z",
        "event": {"module": "system", "dataset": "system.auth", "category": ["authentication"]},
        "source": {"ip": "203.0.113.77", "port": 52114},
        "message": "Failed password for root from 203.0.113.77 port 52114 ssh2",
    }
    assert event.fields["event.module"] == "system"
    assert event.fields["source.port"] == 52114
    assert event.fields["event.category"] == ["authentication"]
    assert event.fields["message"].startswith("Failed password")
    assert event.timestamp_ms == 1710151331000
    assert event.id == event_id_for(event.raw, event.timestamp_ms)
    assert event.origin == EventOrigin(path="auth.json", offset=3, format="json")


def test_conflicting_keys_are_all_kept_in_fields() -> None:
    event = normalise({"a": 1, "a.b": 2, "c": {"d": None}})
    assert event.fields == {"a": 1, "a.b": 2, "c.d": None}
    assert event.ecs["c"] == {"d": None}


def test_input_record_is_not_modified() -> None:
    record = {"event": {"module": "system"}, "event.dataset": "system.auth"}
    normalise(record)
    assert record == {"event": {"module": "system"}, "event.dataset": "system.auth"}


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"@timestamp": "2024-03-11T10:02:11.250Z"}, 1710151331250),
        ({"timestamp": "2024-03-11T12:02:11+02:00"}, 1710151331000),
        ({"time": 1710151331}, 1710151331000),
        ({"time": 1710151331.25}, 1710151331250),
        ({"ts": 1710151331250}, 1710151331250),
        ({"ts": 1710151331250000}, 1710151331250),
        ({"TimeGenerated": "2024-03-11 10:02:11.5"}, 1710151331500),
        ({"EventTime": "1710151331"}, 1710151331000),
        ({"event": {"created": "2024-03-11T10:02:11Z"}}, 1710151331000),
        ({"@timestamp": "yesterday", "time": "2024-03-11T10:02:11Z"}, 1710151331000),
        ({"@timestamp": "not a time"}, 0),
        ({"@timestamp": True}, 0),
        ({"message": "no time at all"}, 0),
    ],
    ids=["iso-z", "iso-offset", "epoch-s", "epoch-s-float", "epoch-ms", "epoch-us", "space-separated",
         "numeric-string", "event-created", "falls-through-bad-value", "unparseable", "boolean", "missing"],
)
def test_timestamp_is_found_or_zero(record: dict[str, Any], expected: int) -> None:
    assert normalise(record).timestamp_ms == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2022-05-11T18:10:20.399931000Z", 1652292620399),
        ("2020-10-05T20:43:58.3901903Z", 1601930638390),
        ("1969-12-31T23:59:59.999Z", -1),
        ("", None),
        (None, None),
        ([1], None),
    ],
    ids=["nanoseconds", "windows-7-digits", "before-epoch", "empty", "none", "list"],
)
def test_to_epoch_ms(value: Any, expected: int | None) -> None:
    assert to_epoch_ms(value) == expected


def test_first_timestamp_ms_respects_key_order() -> None:
    flat = {"a": "2024-03-11T10:02:11Z", "b": "2024-03-11T10:02:12Z"}
    assert first_timestamp_ms(flat, ("b", "a")) == 1710151332000
    assert first_timestamp_ms(flat, ("c",)) == 0


@pytest.mark.parametrize(
    "doc",
    [
        {},
        {"a": 1, "b": [1, {"c": 2}]},
        {"a": {"b": {"c": {"d": 1}}, "e": None}, "f": {}},
        {"winlog": {"event_data": {f"k{i}": i for i in range(30)}, "channel": "Security"}, "x": "y"},
    ],
    ids=["empty", "leaves-and-lists", "deep-with-empty", "wide-leaf-mapping"],
)
def test_flat_fields_matches_model_flatten(doc: dict[str, Any]) -> None:
    assert flat_fields(doc) == flatten(doc)
    assert list(flat_fields(doc)) == list(flatten(doc))
