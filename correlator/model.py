"""The pipeline's data model: one `Event` type from collectors to store, `Alert` for every detection hit and
`Rejected` for every record that could not be read (the dead-letter entry).

An event keeps the raw record intact (`raw`), an ECS document (`ecs`, nested) and a flat field view (`fields`)
that detection rules address: the record's native field names (Windows `EventID`, `Image`, ...) plus every ECS
field under its dotted name (`process.command_line`). Its id is a content hash of the raw record, so a replay or a
retry of the same record yields the same id and stores stay idempotent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import orjson

__all__ = [
    "Alert",
    "Event",
    "EventOrigin",
    "MatchedRule",
    "Rejected",
    "alert_value",
    "event_id_for",
    "flatten",
    "ms_to_iso",
    "nest",
    "string_values",
    "timed_id",
]


_ID_TIME_MAX: Final = 16**12 - 1  # the largest time an id's 12 hex digits hold (epoch ms, year 10889)


def event_id_for(raw: str | bytes, timestamp_ms: int) -> str:
    """Stable, time-ordered event id of the record `raw` at `timestamp_ms`: `timed_id` over its SHA-256."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    return timed_id(timestamp_ms, hashlib.sha256(data).hexdigest())


def timed_id(timestamp_ms: int, digest: str) -> str:
    """An event id: the event's time in epoch milliseconds as 12 hex digits (clamped to 0 .. 16**12 - 1), then
    the first 80 bits of `digest` (a hex SHA-256 of the record): 32 lowercase hex characters.

    The same record at the same time always gets the same id (stores keep it once), and events close in time have
    ids close in order: a store's unique index on the id then takes each batch on a few pages near its end, where
    a plain hash spreads it over the whole index (a page written per event, and read back once the index no
    longer fits in memory). Elasticsearch's own generated ids are time-based for the same reason."""
    clamped = 0 if timestamp_ms < 0 else min(timestamp_ms, _ID_TIME_MAX)
    return f"{clamped:012x}{digest[:20]}"


_ISO_CACHED_BELOW: Final = 253_402_300_800_000  # 10000-01-01T00:00:00Z in epoch ms
_ISO_CACHE_SIZE: Final = 4096  # entries of each cache below; a full cache starts again empty
_ISO_SECONDS: dict[int, str] = {}  # epoch second -> "YYYY-MM-DDTHH:MM:SS."
_ISO_DAYS: dict[int, str] = {}  # epoch day -> "YYYY-MM-DDT"


def ms_to_iso(ms: int) -> str:
    """Epoch milliseconds to an RFC 3339 UTC timestamp with millisecond precision.

    Stores format one per document, and events come in bursts of the same second and day: each second's text
    (and each day's date) is formatted once and kept in a small cache. UTC has no leap seconds in epoch time, so
    the time of day is plain arithmetic; anything outside 0 <= ms < year 10000 goes through `datetime`."""
    if type(ms) is int and 0 <= ms < _ISO_CACHED_BELOW:
        second, milli = divmod(ms, 1000)
        prefix = _ISO_SECONDS.get(second) or _iso_second(second)
        return f"{prefix}{milli:03d}Z"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _iso_second(second: int) -> str:
    """`ms_to_iso`'s text up to the milliseconds for one epoch second (>= 0), now in the caches."""
    day, second_of_day = divmod(second, 86_400)
    date = _ISO_DAYS.get(day)
    if date is None:
        if len(_ISO_DAYS) >= _ISO_CACHE_SIZE:
            _ISO_DAYS.clear()
        date = _ISO_DAYS[day] = datetime.fromtimestamp(day * 86_400, tz=UTC).strftime("%Y-%m-%dT")
    minute, sec = divmod(second_of_day, 60)
    hour, minute = divmod(minute, 60)
    if len(_ISO_SECONDS) >= _ISO_CACHE_SIZE:
        _ISO_SECONDS.clear()
    prefix = _ISO_SECONDS[second] = f"{date}{hour:02d}:{minute:02d}:{sec:02d}."
    return prefix


def flatten(doc: dict[str, Any], prefix: str = "", out: dict[str, Any] | None = None) -> dict[str, Any]:
    """Nested mapping to dotted keys (`{"a": {"b": 1}}` -> `{"a.b": 1}`); lists are kept as values."""
    if out is None:
        out = {}
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flatten(value, name + ".", out)
        else:
            out[name] = value
    return out


def nest(flat: dict[str, Any]) -> dict[str, Any]:
    """Dotted keys back to a nested mapping (the inverse of `flatten` for non-conflicting keys)."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        parts = key.split(".")
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = value
    return out


@dataclass(frozen=True, slots=True)
class EventOrigin:
    """Where a record came from: the file (or collector) and its position there."""

    path: str | None = None
    offset: int | None = None  # byte offset or line number (1-based) in the source
    record_id: int | None = None  # the source's own record number (EVTX `System.EventRecordID`)
    format: str = "unknown"

    def __reduce__(self) -> tuple[type[EventOrigin], tuple[Any, ...]]:
        # Pickled as constructor arguments: cheaper than the dataclass state protocol (ingest workers ship
        # alerts to the parent, each with its origin, rule and event fields).
        return EventOrigin, (self.path, self.offset, self.record_id, self.format)

    def describe(self) -> str:
        where = self.path or "<stream>"
        if self.record_id is not None:
            return f"{where}#record={self.record_id}"
        if self.offset is not None:
            return f"{where}:{self.offset}"
        return where


EcsFactory = Callable[[], tuple[dict[str, Any], dict[str, Any]]]


class Event:
    """One normalised event. `fields` is what rules see; `ecs` is what stores and outputs see.

    A reader may defer the ECS document: it passes the record's own fields (`native`, the names rules use,
    such as Windows `Image`) and an `ecs_factory` returning `(ecs_document, ecs_dotted_fields)`. The document is
    built on first use of `ecs` or `fields`; `native` never builds it. The detection hot path reads `native`
    unless a rule needs an ECS name, so events whose ECS nobody reads never pay for it.
    """

    __slots__ = ("_document", "_ecs", "_ecs_factory", "_fields", "_host_name", "id", "native", "origin", "payload",
                 "prefiltered", "raw", "timestamp_ms")

    def __init__(
        self,
        id: str,
        timestamp_ms: int,
        raw: str,
        ecs: dict[str, Any] | None = None,
        fields: dict[str, Any] | None = None,
        origin: EventOrigin | None = None,
        *,
        ecs_factory: EcsFactory | None = None,
        host_name: str | None = None,
        payload: bytes | None = None,
        prefiltered: tuple[object, list[int]] | None = None,
        fields_complete: bool = False,
        stored_document: tuple[str, str] | None = None,
    ) -> None:
        if ecs is None and ecs_factory is None:
            raise ValueError("an Event needs an ECS document or an ecs_factory")
        self.id = id
        self.timestamp_ms = timestamp_ms
        self.raw = raw
        self.native: dict[str, Any] = fields if fields is not None else {}
        self.origin = origin if origin is not None else EventOrigin()
        self._ecs = ecs
        self._ecs_factory = ecs_factory
        self._host_name = host_name  # known without building a deferred ECS document (its host.name)
        # Content carried with the event for the YARA stage (a carved HTTP body, an uploaded or dropped file);
        # never stored: the document names it by `file.hash.sha256` and `file.size`.
        self.payload = payload
        # The literal prefilter's answer when the reader already ran it over the record: (the prefilter of the
        # event's source, the candidate variants it found). Never pickled (a worker's prefilter stays there).
        self.prefiltered = prefiltered
        # Without a factory the given fields are complete: `fields` and `native` are the same dict. A reader whose
        # factory adds no ECS fields of its own says so (`fields_complete`): reading `fields` then builds nothing.
        self._fields: dict[str, Any] | None = self.native if ecs_factory is None or fields_complete else None
        # (document JSON, free text) as the reader made them for the store (`stored_document`): kept while the ECS
        # document is deferred; building it drops them (whoever builds it may change it, as enrichment does).
        self._document = stored_document if ecs_factory is not None else None

    def _materialise(self) -> None:
        factory = self._ecs_factory
        if factory is None:
            return
        doc, ecs_fields = factory()
        if self._fields is None or ecs_fields:
            merged = dict(ecs_fields)
            merged.update(self.native)  # the record's own values win over derived ECS ones
            self._fields = merged
        self._ecs = doc
        self._ecs_factory = None
        self._document = None

    @property
    def ecs(self) -> dict[str, Any]:
        if self._ecs_factory is not None:
            self._materialise()
        assert self._ecs is not None
        return self._ecs

    @property
    def fields(self) -> dict[str, Any]:
        """Native fields plus every ECS field under its dotted name (builds the ECS document if deferred)."""
        if self._fields is None:
            self._materialise()
        assert self._fields is not None
        return self._fields

    @property
    def ecs_deferred(self) -> bool:
        return self._ecs_factory is not None

    @property
    def stored_document(self) -> tuple[str, str] | None:
        """The store's JSON document of this event and its free text, as the reader made them (`to_document`
        serialised, `document_text` of it); None when it made none or the ECS document has been built since."""
        return self._document

    def get(self, name: str) -> Any:
        """A field by native or dotted ECS name; None when absent."""
        return self.fields.get(name)

    @property
    def host_name(self) -> str | None:
        if self._host_name is not None:
            return self._host_name
        host = self.ecs.get("host")
        return host.get("name") if isinstance(host, dict) else None

    def __getstate__(self) -> dict[str, Any]:
        self._materialise()  # factories are closures: ship the built document instead
        return {name: getattr(self, name) for name in self.__slots__ if name != "prefiltered"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        object.__setattr__(self, "payload", None)  # pickles from before the payload slot
        object.__setattr__(self, "prefiltered", None)
        object.__setattr__(self, "_document", None)
        for name, value in state.items():
            object.__setattr__(self, name, value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Event):
            return NotImplemented
        return (self.id, self.timestamp_ms, self.raw, self.origin, self.ecs, self.fields) == (
            other.id, other.timestamp_ms, other.raw, other.origin, other.ecs, other.fields
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Event(id={self.id!r}, timestamp_ms={self.timestamp_ms}, origin={self.origin!r})"

    def to_document(self, *, with_original: bool = True) -> dict[str, Any]:
        """The ECS document for stores and `--events-out`: ECS fields, event id, origin and the raw record."""
        doc = dict(self.ecs)
        doc["@timestamp"] = ms_to_iso(self.timestamp_ms)
        event = _object_field(doc, "event")
        event["id"] = self.id
        if with_original:
            event["original"] = self.raw
        doc["event"] = event
        log = _object_field(doc, "log")
        if self.origin.path is not None:
            file_value = log.get("file")
            log_file = dict(file_value) if isinstance(file_value, dict) else {}
            log_file["path"] = self.origin.path
            log["file"] = log_file
        if self.origin.offset is not None:
            log["offset"] = self.origin.offset
        if log:
            doc["log"] = log
        return doc


def _object_field(doc: dict[str, Any], name: str) -> dict[str, Any]:
    """A copy of the ECS object `doc[name]`. A record whose `event` or `log` is not an object (a Docker `log`
    string, an agent's own `event` string) keeps that value under `labels.<name>` instead of breaking."""
    value = doc.get(name)
    if isinstance(value, dict):
        return dict(value)
    if value is not None and value != "":
        labels = doc.get("labels")
        labels = dict(labels) if isinstance(labels, dict) else {}
        labels[name] = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
        doc["labels"] = labels
    return {}


@dataclass(frozen=True, slots=True)
class MatchedRule:
    """The rule side of an alert: enough to name, rank and look up the rule."""

    id: str
    title: str
    level: str
    tags: tuple[str, ...] = ()
    kind: str = "sigma"  # sigma | yara | correlation
    namespace: str | None = None
    path: str | None = None
    description: str | None = None
    meta: tuple[tuple[str, Any], ...] = ()

    def __reduce__(self) -> tuple[type[MatchedRule], tuple[Any, ...]]:
        return MatchedRule, (self.id, self.title, self.level, self.tags, self.kind, self.namespace, self.path,
                             self.description, self.meta)


@dataclass(slots=True)
class Alert:
    """A detection hit. Its id is stable for (rule, event), so replays do not duplicate alerts."""

    rule: MatchedRule
    event_id: str
    timestamp_ms: int
    host_name: str | None
    origin: EventOrigin
    matched: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def __reduce__(self) -> tuple[type[Alert], tuple[Any, ...]]:
        return Alert, (self.rule, self.event_id, self.timestamp_ms, self.host_name, self.origin, self.matched,
                       self.extra)

    @property
    def id(self) -> str:
        return hashlib.sha256(f"{self.rule.kind}:{self.rule.id}:{self.event_id}".encode()).hexdigest()[:32]

    def to_dict(self) -> dict[str, Any]:
        rule: dict[str, Any] = {
            "id": self.rule.id,
            "name": self.rule.title,
            "title": self.rule.title,
            "level": self.rule.level,
            "tags": list(self.rule.tags),
            "kind": self.rule.kind,
        }
        if self.rule.namespace is not None:
            rule["namespace"] = self.rule.namespace
        if self.rule.path is not None:
            rule["path"] = self.rule.path
        if self.rule.description:
            rule["description"] = self.rule.description
        if self.rule.meta:
            rule["meta"] = dict(self.rule.meta)
        out: dict[str, Any] = {
            "@timestamp": ms_to_iso(self.timestamp_ms),
            "alert": {"id": self.id},
            "rule": rule,
            "event": {"id": self.event_id, "kind": "alert"},
            "host": {"name": self.host_name},
            "log": {"file": {"path": self.origin.path}},
            "matched": self.matched,
        }
        if self.origin.record_id is not None:
            out["log"]["record_id"] = self.origin.record_id
        if self.origin.offset is not None:
            out["log"]["offset"] = self.origin.offset
        out.update(self.extra)
        return out

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict(), default=str)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record that could not be read or normalised: the dead-letter entry, with its reason and source."""

    reason: str
    origin: EventOrigin
    raw: str | None = None
    stage: str = "read"  # read | normalise | detect | store

    def describe(self) -> str:
        return f"{self.origin.describe()}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "stage": self.stage,
            "log": {"file": {"path": self.origin.path}, "offset": self.origin.offset,
                    "record_id": self.origin.record_id},
            "format": self.origin.format,
            "raw": self.raw,
        }


def string_values(value: Any) -> Iterator[str]:
    """The non-empty strings of a field value: the value itself, or the string elements of a list."""
    if isinstance(value, str):
        if value:
            yield value
    elif isinstance(value, list | tuple):
        for item in value:
            if isinstance(item, str) and item:
                yield item


def alert_value(alert: Alert, name: str) -> Any:
    """A field of the alert: `host.name` from the alert, else `extra` (flat dotted key, then nested path), else
    `matched`. None when absent."""
    if name == "host.name" and alert.host_name:
        return alert.host_name
    extra = alert.extra
    if extra:  # most Sigma alerts have none (suppression reads four fields of every alert)
        if name in extra:
            return extra[name]
        node: Any = extra
        for part in name.split("."):
            if not (node.__class__ is dict or isinstance(node, Mapping)) or part not in node:  # dict: no ABC check
                node = None
                break
            node = node[part]
        if node is not None:
            return node
    return alert.matched.get(name)
