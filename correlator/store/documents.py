"""The store's collections and the documents it keeps in them: building a `Record` (id, time, JSON text, indexed
values) from each kind of input, and the free text of a document. Pure functions, no I/O.

Collections:

- ``events``, ``alerts``, ``deadletter``: append-only, create-only and idempotent by id (see `correlator.store.base`).
- ``audit``: append-only like alerts; who did what to which subject. ``{"id", "at_ms", "actor", "action",
  "subject": {"kind", "id"}, "summary", "before", "after", "reason", "seq"}``; ``@timestamp`` is ``at_ms``.
- ``cases``, ``allowlist``: mutable, versioned documents (`VERSIONED`), written whole by `Store.put` with a
  version check. Each has a string ``id``, an integer ``version`` >= 1 and ``created_ms``, which gives its
  ``@timestamp``. Retention deletes a case ``closed_ms`` and an allowlist entry ``expires_ms`` older than the
  retention (`RETENTION_FIELDS`); a case never closed, or an entry that never expires, is kept.

The store adds ``@timestamp`` (ISO 8601, UTC) to the documents it builds from epoch-millisecond fields, so time
ranges and retention work the same on every collection.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from enum import StrEnum
from functools import cache
from types import MappingProxyType
from typing import Any, Final, NamedTuple, TypeGuard, TypeVar, cast

import orjson

from correlator.accel import native_available
from correlator.model import Alert, Event, EventOrigin, Rejected, ms_to_iso
from correlator.store.errors import InvalidRequestError, UnknownCollectionError

__all__ = [
    "ID_FIELDS",
    "INDEXED_FIELDS",
    "MAX_DEAD_LETTER_RAW",
    "MAX_DOCUMENT_CHARS",
    "MAX_TIME_MS",
    "NOT_SEARCHED",
    "RETENTION_FIELDS",
    "TIMESTAMP_FIELD",
    "TIME_FIELDS",
    "VERSIONED",
    "Collection",
    "PreparedRecord",
    "Record",
    "RefusedDocumentError",
    "agency_of",
    "alert_record",
    "audit_record",
    "check_collection",
    "deadletter_id_for",
    "deadletter_record",
    "document_text",
    "event_record",
    "iter_records",
    "prepare_event",
    "python_document_text",
    "refused_dead_letter",
    "searchable",
    "storable_text",
    "versioned_record",
]

MAX_DOCUMENT_CHARS: Final = 16 * 1024 * 1024  # a larger document is refused (Elasticsearch takes 100 MB a request)
MAX_DEAD_LETTER_RAW: Final = 64 * 1024  # characters of a refused document's raw record kept in its dead letter
MAX_TIME_MS: Final = 253_402_300_800_000  # 10000-01-01T00:00:00Z: epoch-ms fields are 0 <= t < this
TIMESTAMP_FIELD: Final = "@timestamp"
_T = TypeVar("_T")


class Collection(StrEnum):
    EVENTS = "events"
    ALERTS = "alerts"
    DEADLETTER = "deadletter"
    CASES = "cases"
    ALLOWLIST = "allowlist"
    AUDIT = "audit"


VERSIONED: Final = frozenset({Collection.CASES, Collection.ALLOWLIST})

# Keyword fields backends index for fast `field:value`, `terms` and sorting; their values must be scalars.
INDEXED_FIELDS: Final[Mapping[Collection, tuple[str, ...]]] = MappingProxyType({
    Collection.EVENTS: ("host.name", "event.code", "event.dataset"),
    Collection.ALERTS: ("rule.id", "rule.level", "host.name", "event.id"),
    Collection.DEADLETTER: ("stage",),
    Collection.CASES: ("status", "severity", "group_key", "assignee"),
    Collection.ALLOWLIST: (),
    Collection.AUDIT: ("actor", "action", "subject.kind", "subject.id"),
})

ID_FIELDS: Final[Mapping[Collection, str]] = MappingProxyType({
    Collection.EVENTS: "event.id",
    Collection.ALERTS: "alert.id",
    Collection.DEADLETTER: "event.id",
    Collection.CASES: "id",
    Collection.ALLOWLIST: "id",
    Collection.AUDIT: "id",
})

# The epoch-ms field that gives `@timestamp`, for the collections whose documents the store builds from a mapping.
TIME_FIELDS: Final[Mapping[Collection, str]] = MappingProxyType({
    Collection.CASES: "created_ms",
    Collection.ALLOWLIST: "created_ms",
    Collection.AUDIT: "at_ms",
})

# Parts of a document that are stored and read back but never searched, by field or as free text (Elasticsearch
# maps them ``enabled: false``). A case's alerts and timeline grow with every change: re-indexing them on each
# update would make a busy case quadratic to keep.
NOT_SEARCHED: Final[Mapping[Collection, tuple[str, ...]]] = MappingProxyType({
    Collection.CASES: ("timeline", "alerts", "tasks", "evidence", "risk.factors"),
})

# Versioned documents are past retention when this epoch-ms field is older than the cutoff (absent: never).
RETENTION_FIELDS: Final[Mapping[Collection, str]] = MappingProxyType({
    Collection.CASES: "closed_ms",
    Collection.ALLOWLIST: "expires_ms",
})


class Record(NamedTuple):
    """A document ready to store: id, event time, document, its JSON text and its `INDEXED_FIELDS` values."""

    id: str
    timestamp_ms: int
    doc: dict[str, Any]
    source: str
    keys: tuple[str | None, ...]


class PreparedRecord(NamedTuple):
    """A create-only record built where the event was (a detection worker process), to cross to the process that
    stores it: everything of a `Record` but the document itself (its JSON `source` holds it), plus its free
    `text` (`document_text`) and its ``organization.id`` (a backend's agency routing). It pickles as a few
    strings; `Store.write_prepared` stores it as the event's `Record` would be."""

    id: str
    timestamp_ms: int
    source: str
    keys: tuple[str | None, ...]
    text: str
    organization: str | None = None


class RefusedDocumentError(Exception):
    """A document the store cannot keep (not JSON, too large, an indexed field that is not a scalar)."""


def check_collection(name: str) -> Collection:
    try:
        return Collection(name)
    except ValueError:
        known = ", ".join(c.value for c in Collection)
        raise UnknownCollectionError(f"unknown collection {name!r} (expected one of: {known})") from None


_KEY_PATHS: Final = {
    collection: tuple((name, tuple(name.split("."))) for name in names)
    for collection, names in INDEXED_FIELDS.items()
}


def _key(name: str, value: Any) -> str | None:
    """An indexed field's value as its key column holds it."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    raise RefusedDocumentError(f"{name} must be a string or a number, not {type(value).__name__}")


def _checked_size(source: str) -> str:
    if len(source) > MAX_DOCUMENT_CHARS:
        raise RefusedDocumentError(
            f"document is {len(source):,} characters of JSON, over the store's limit of {MAX_DOCUMENT_CHARS:,}"
        )
    return source


def _record(collection: Collection, doc_id: str, timestamp_ms: int, doc: dict[str, Any]) -> Record:
    keys: list[str | None] = []
    for name, path in _KEY_PATHS[collection]:
        value: Any = doc
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        keys.append(_key(name, value))
    try:
        source = orjson.dumps(doc, default=str).decode()
    except orjson.JSONEncodeError as exc:
        raise RefusedDocumentError(f"document is not valid JSON: {exc}") from exc
    return Record(doc_id, timestamp_ms, doc, _checked_size(source), tuple(keys))


def event_record(event: Event) -> Record:
    return _record(Collection.EVENTS, event.id, event.timestamp_ms, event.to_document())


def prepare_event(event: Event) -> PreparedRecord:
    """`event_record` of `event`, prepared (`RefusedDocumentError` for an event the store cannot keep). An event
    whose reader made its stored document (`Event.stored_document`) is prepared from it, with its keys and
    agency from its fields (the same values: the document nests them)."""
    made = event.stored_document
    if made is not None:
        source, text = made
        fields = event.fields
        keys = tuple(_key(name, fields.get(name)) for name, _ in _KEY_PATHS[Collection.EVENTS])
        agency = fields.get("organization.id")
        return PreparedRecord(event.id, event.timestamp_ms, _checked_size(source), keys, text,
                              str(agency) if agency else None)
    record = event_record(event)
    organization = record.doc.get("organization")
    agency = organization.get("id") if isinstance(organization, dict) else None
    return PreparedRecord(record.id, record.timestamp_ms, record.source, record.keys, document_text(record.doc),
                          str(agency) if agency else None)


def alert_record(alert: Alert) -> Record:
    return _record(Collection.ALERTS, alert.id, alert.timestamp_ms, alert.to_dict())


def deadletter_id_for(item: Rejected) -> str:
    """Content hash of (reason, path, offset, record_id, raw): 128 bits of SHA-256, hex (the length of event ids)."""
    origin = item.origin
    key = orjson.dumps([item.reason, origin.path, origin.offset, origin.record_id, item.raw])
    return hashlib.sha256(key).hexdigest()[:32]


def deadletter_record(item: Rejected, received_ms: int) -> Record:
    doc_id = deadletter_id_for(item)
    doc = item.to_dict()
    doc["@timestamp"] = ms_to_iso(received_ms)
    doc["event"] = {"id": doc_id, "kind": "pipeline_error"}
    return _record(Collection.DEADLETTER, doc_id, received_ms, doc)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _problems(collection: Collection, doc: Mapping[str, Any]) -> tuple[str | None, list[str]]:
    """The document's id (None when it has no usable one) and what is wrong with its id and time field."""
    doc_id = doc.get("id")
    problems: list[str] = []
    if not isinstance(doc_id, str) or not doc_id:
        problems.append(f"id must be a non-empty string, got {doc_id!r}")
        doc_id = None
    name = TIME_FIELDS[collection]
    value = doc.get(name)
    if not _is_int(value) or not 0 <= value < MAX_TIME_MS:
        problems.append(f"{name} must be epoch milliseconds (an integer from 0 to {MAX_TIME_MS - 1}), got {value!r}")
    return doc_id, problems


def _timestamped(collection: Collection, doc_id: str, doc: Mapping[str, Any]) -> Record:
    time_ms = int(doc[TIME_FIELDS[collection]])
    return _record(collection, doc_id, time_ms, {**doc, TIMESTAMP_FIELD: ms_to_iso(time_ms)})


def audit_record(entry: Mapping[str, Any]) -> Record:
    """An audit entry as stored: the mapping with ``@timestamp`` from ``at_ms``; refused without an id or time."""
    doc_id, problems = _problems(Collection.AUDIT, entry)
    if problems or doc_id is None:
        raise RefusedDocumentError("; ".join(problems))
    return _timestamped(Collection.AUDIT, doc_id, entry)


def versioned_record(collection: Collection, doc: Mapping[str, Any]) -> Record:
    """A versioned document as stored (``@timestamp`` from ``created_ms``). A document without a string id, an
    integer version >= 1 and a valid ``created_ms``, or one the store cannot keep, is an `InvalidRequestError`."""
    doc_id, problems = _problems(collection, doc)
    version = doc.get("version")
    if not _is_int(version) or version < 1:
        problems.append(f"version must be an integer >= 1, got {version!r}")
    where = f"put {collection.value}" + (f"/{doc_id}" if doc_id else "")
    if problems or doc_id is None:
        raise InvalidRequestError(f"{where}: {'; '.join(problems)}")
    try:
        return _timestamped(collection, doc_id, doc)
    except RefusedDocumentError as exc:
        raise InvalidRequestError(f"{where}: {exc}") from None


def agency_of(doc: Mapping[str, Any]) -> str | None:
    """The agency that owns a document: ``organization.id``, else (cases, allowlist entries) ``agency``."""
    organization = doc.get("organization")
    agency = organization.get("id") if isinstance(organization, Mapping) else None
    if not agency:
        agency = doc.get("agency")
    return str(agency) if agency else None


def iter_records(
    items: Iterable[_T], build: Callable[[_T], Record], describe: Callable[[_T], str],
    refused: list[tuple[_T, str, str]],
) -> Iterator[Record]:
    """The records of `items`, lazily; each item refused (not storable) goes to `refused` as (item, id, reason)."""
    for item in items:
        try:
            yield build(item)
        except RefusedDocumentError as exc:
            refused.append((item, describe(item), str(exc)))


def storable_text(text: str | None, limit: int = MAX_DEAD_LETTER_RAW) -> str | None:
    """`text` cut to `limit` characters, lone surrogates escaped: always encodable as UTF-8 JSON."""
    if text is None:
        return None
    cut = text[:limit]
    safe = cut.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) > limit:
        safe += f"... [{len(text) - limit:,} more characters cut]"
    return safe


def refused_dead_letter(collection: Collection, doc_id: str, reason: str, origin: EventOrigin,
                        raw: str | None) -> Rejected:
    """The dead letter of a document a store refused: its reason, its source and (cut) raw record."""
    return Rejected(
        reason=f"{collection.value} document {doc_id} refused by the store: {reason}",
        origin=origin,
        raw=storable_text(raw),
        stage="store",
    )


def searchable(collection: Collection, doc: dict[str, Any]) -> dict[str, Any]:
    """`doc` without its `NOT_SEARCHED` parts (copied where they are cut; `doc` itself is left as it is)."""
    paths = NOT_SEARCHED.get(collection)
    if not paths:
        return doc
    out = dict(doc)
    for path in paths:
        *parents, leaf = path.split(".")
        node = out
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                break
            node[part] = node = dict(child)
        else:
            node.pop(leaf, None)
    return out


def document_text(doc: Any) -> str:
    """The free text of a document: its string and number values (not booleans or keys), one per line, except
    ``event.original``: the raw record is stored verbatim but not word-indexed (its content is in the parsed
    fields; indexing it twice would double the index and the cost of writing it).

    Walked natively (correlator/native) when the extension is available and not disabled (SOCCTL_NATIVE=0). The
    native walk leaves unusual documents (subclasses of dict, list or tuple, deep nesting) to the Python one,
    `python_document_text`, and gives the same text as it for every document."""
    if native_available():
        found = _native_document_text()(doc)
        if found is not None:
            return found
    return python_document_text(doc)


@cache
def _native_document_text() -> Callable[[Any], str | None]:
    from correlator._native import document_text as native

    return cast(Callable[[Any], str | None], native)


def python_document_text(doc: Any) -> str:
    """`document_text` in Python: the reference the native walk is tested against."""
    parts: list[str] = []
    if isinstance(doc, dict) and isinstance(doc.get("event"), dict) and "original" in doc["event"]:
        for key, value in doc.items():
            if key == "event":
                _collect_text({k: v for k, v in value.items() if k != "original"}, parts)
            else:
                _collect_text(value, parts)
    else:
        _collect_text(doc, parts)
    return "\n".join(parts)


def _collect_text(value: Any, parts: list[str]) -> None:
    if isinstance(value, str):
        parts.append(value)
    elif isinstance(value, dict):
        for item in value.values():
            _collect_text(item, parts)
    elif isinstance(value, list | tuple):
        for item in value:
            _collect_text(item, parts)
    elif value is not None and not isinstance(value, bool):
        parts.append(str(value))
