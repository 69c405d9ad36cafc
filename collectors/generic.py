"""Generic JSON records (flat or nested, ECS-like) to `Event`, and the timestamp parsing all collectors share.

A record's dotted keys (`"event.module": "system"`) and nested keys (`{"event": {"module": "system"}}`)
mean the same thing: `ecs` holds the nested form, `fields` every leaf under its dotted name.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from correlator.model import Event, EventOrigin, event_id_for, nest

__all__ = ["TIMESTAMP_KEYS", "first_timestamp_ms", "flat_fields", "normalise_json", "to_epoch_ms"]

# Where generic records keep their event time, most specific first (looked up as dotted names).
TIMESTAMP_KEYS: tuple[str, ...] = (
    "@timestamp",
    "timestamp",
    "time",
    "TimeGenerated",
    "EventTime",
    "TimeCreated",
    "event.created",
    "ts",
    "datetime",
    "date",
    "UtcTime",
    "EventReceivedTime",
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def flat_fields(doc: dict[str, Any], prefix: str = "", out: dict[str, Any] | None = None) -> dict[str, Any]:
    """`correlator.model.flatten` with a fast path: a mapping without nested mappings (most of an event's
    leaves, such as winlog.event_data) is copied in one C-level step instead of key by key."""
    if out is None:
        out = {}
    if dict not in map(type, doc.values()):
        if prefix:
            out.update(zip(map(prefix.__add__, doc), doc.values(), strict=True))
        else:
            out.update(doc)
        return out
    for key, value in doc.items():
        if isinstance(value, dict):
            flat_fields(value, f"{prefix}{key}.", out)
        else:
            out[f"{prefix}{key}"] = value
    return out


def _number_to_ms(value: float) -> int:
    """An epoch number in s, ms, µs or ns (guessed from its magnitude) to milliseconds."""
    magnitude = abs(value)
    if magnitude < 1e11:  # seconds up to the year 5138
        return int(value * 1000)
    if magnitude < 1e14:
        return int(value)
    if magnitude < 1e17:
        return int(value // 1000)
    return int(value // 1_000_000)


def to_epoch_ms(value: Any) -> int | None:
    """Epoch milliseconds (UTC) from an ISO 8601 / RFC 3339 string or an epoch number; None if not a time.

    Strings without a zone are taken as UTC. Fractions beyond microseconds are truncated.
    """
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            try:
                return _number_to_ms(float(text))
            except ValueError:
                return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return (moment - _EPOCH) // _ONE_MS
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return _number_to_ms(value)
    return None


def first_timestamp_ms(flat: dict[str, Any], keys: tuple[str, ...] = TIMESTAMP_KEYS) -> int:
    """The first parseable timestamp among `keys` in a flat (dotted) mapping, else 0."""
    for key in keys:
        value = flat.get(key)
        if value is not None:
            ms = to_epoch_ms(value)
            if ms is not None:
                return ms
    return 0


def normalise_json(record: dict[str, Any], raw: str, origin: EventOrigin) -> Event:
    """A generic JSON record to an `Event`: `ecs` is the record in nested form, `fields` its dotted leaves.

    Never raises for odd content; a record without a recognisable time gets `timestamp_ms = 0`.
    """
    flat = flat_fields(record)
    ecs = nest(flat)
    # `flat` already holds every top-level key as given (leaves) and every nested leaf under its dotted name;
    # `nest` may have merged conflicting keys ({"a": 1, "a.b": 2}), `flat` keeps both.
    timestamp_ms = first_timestamp_ms(flat)
    return Event(
        id=event_id_for(raw, timestamp_ms),
        timestamp_ms=timestamp_ms,
        raw=raw,
        ecs=ecs,
        fields=flat,
        origin=origin,
    )
