"""The store contract every backend implements (SQLite now, Elasticsearch next), and what both share.

Collections and their documents:

- ``events``: `Event.to_document()`; id = `Event.id` (also at ``event.id``).
- ``alerts``: `Alert.to_dict()`; id = `Alert.id` (also at ``alert.id``; ``event.id`` is the source event's).
- ``deadletter``: `Rejected.to_dict()` plus ``@timestamp`` (time received) and ``event.id`` / ``event.kind``
  (``pipeline_error``); id = `deadletter_id_for(rejected)`, a content hash, so retries do not duplicate.

Writes are create-only and idempotent by id: writing an id that is already stored counts as a duplicate and
leaves the stored document unchanged. Writes are visible to reads when the write call returns. Time ranges are
``since_ms <= @timestamp < until_ms``. Searches page through at most `MAX_RESULT_WINDOW` hits; ties in any
sort are broken by document id, ascending. The query language is in `correlator.store.query`.

A backend subclasses `Store` and implements the `_`-prefixed hooks; the public methods here validate the
arguments, so every backend accepts and rejects exactly the same calls with the same messages.
"""

from __future__ import annotations

import hashlib
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType, TracebackType
from typing import Any, Final, NamedTuple, Self, TypeAlias, TypeVar

import orjson

from correlator.model import Alert, Event, EventOrigin, Rejected, ms_to_iso
from correlator.store.errors import InvalidRequestError, StoreError, UnknownCollectionError
from correlator.store.query import MatchAll, Query, is_field_name, parse_query
from correlator.store.retention import Purge, RetentionPolicy

__all__ = [
    "ID_FIELDS",
    "INDEXED_FIELDS",
    "MAX_BUCKETS",
    "MAX_RESULT_WINDOW",
    "TIMESTAMP_FIELD",
    "Clock",
    "Collection",
    "FieldValue",
    "Filter",
    "Record",
    "SearchPage",
    "Sort",
    "Store",
    "StoreError",
    "WriteResult",
    "alert_record",
    "check_collection",
    "deadletter_id_for",
    "deadletter_record",
    "document_text",
    "event_record",
    "iter_records",
    "refused_dead_letter",
    "storable_text",
    "wall_clock_ms",
]

MAX_RESULT_WINDOW: Final = 10_000  # offset + limit, as Elasticsearch's index.max_result_window
MAX_BUCKETS: Final = 65_536  # date_histogram buckets, as Elasticsearch's search.max_buckets
MAX_DOCUMENT_CHARS: Final = 16 * 1024 * 1024  # a larger document is refused (Elasticsearch takes 100 MB a request)
MAX_DEAD_LETTER_RAW: Final = 64 * 1024  # characters of a refused document's raw record kept in its dead letter
TIMESTAMP_FIELD: Final = "@timestamp"

Clock: TypeAlias = Callable[[], int]  # the current time in epoch milliseconds
FieldValue: TypeAlias = str | int | float | bool
_T = TypeVar("_T")


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class Collection(StrEnum):
    EVENTS = "events"
    ALERTS = "alerts"
    DEADLETTER = "deadletter"


# Keyword fields backends index for fast `field:value`, `terms` and sorting; their values must be scalars.
INDEXED_FIELDS: Final[Mapping[Collection, tuple[str, ...]]] = MappingProxyType({
    Collection.EVENTS: ("host.name", "event.code", "event.dataset"),
    Collection.ALERTS: ("rule.id", "rule.level", "host.name", "event.id"),
    Collection.DEADLETTER: ("stage",),
})

ID_FIELDS: Final[Mapping[Collection, str]] = MappingProxyType({
    Collection.EVENTS: "event.id",
    Collection.ALERTS: "alert.id",
    Collection.DEADLETTER: "event.id",
})


@dataclass(frozen=True, slots=True)
class WriteResult:
    """A batch write: new documents, ids already stored, (id, reason) for each document refused, and documents
    accepted into the backend's spool for later delivery (the backend was unreachable)."""

    written: int = 0
    duplicates: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    spooled: int = 0


@dataclass(frozen=True, slots=True)
class SearchPage:
    """One page of hits (stored documents) and the total number of matches."""

    total: int
    hits: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Filter:
    """What a backend hook selects: a parsed query over one collection within `since_ms <= t < until_ms`."""

    collection: Collection
    query: Query = field(default_factory=MatchAll)
    since_ms: int | None = None
    until_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Sort:
    field: str = TIMESTAMP_FIELD
    descending: bool = True

    @classmethod
    def parse(cls, text: str) -> Sort:
        """`"-@timestamp"` (newest first), `"@timestamp"`, `"host.name"`, `"-rule.level"`, ..."""
        descending = text.startswith("-")
        name = text[1:] if descending else text
        if not is_field_name(name):
            raise InvalidRequestError(f"invalid sort {text!r}: expected a field name, optionally after '-'")
        return cls(name, descending)


class Record(NamedTuple):
    """A document ready to store: id, event time, document, its JSON text and its `INDEXED_FIELDS` values."""

    id: str
    timestamp_ms: int
    doc: dict[str, Any]
    source: str
    keys: tuple[str | None, ...]


class _RefusedError(Exception):
    pass


_KEY_PATHS: Final = {
    collection: tuple((name, tuple(name.split("."))) for name in names)
    for collection, names in INDEXED_FIELDS.items()
}


def _record(collection: Collection, doc_id: str, timestamp_ms: int, doc: dict[str, Any]) -> Record:
    keys: list[str | None] = []
    for name, path in _KEY_PATHS[collection]:
        value: Any = doc
        for part in path:
            value = value.get(part) if isinstance(value, dict) else None
        if value is None or isinstance(value, str):
            keys.append(value)
        elif isinstance(value, bool):
            keys.append("true" if value else "false")
        elif isinstance(value, int | float):
            keys.append(str(value))
        else:
            raise _RefusedError(f"{name} must be a string or a number, not {type(value).__name__}")
    try:
        source = orjson.dumps(doc, default=str).decode()
    except orjson.JSONEncodeError as exc:
        raise _RefusedError(f"document is not valid JSON: {exc}") from exc
    if len(source) > MAX_DOCUMENT_CHARS:
        raise _RefusedError(
            f"document is {len(source):,} characters of JSON, over the store's limit of {MAX_DOCUMENT_CHARS:,}"
        )
    return Record(doc_id, timestamp_ms, doc, source, tuple(keys))


def event_record(event: Event) -> Record:
    return _record(Collection.EVENTS, event.id, event.timestamp_ms, event.to_document())


def alert_record(alert: Alert) -> Record:
    return _record(Collection.ALERTS, alert.id, alert.timestamp_ms, alert.to_dict())


def deadletter_id_for(item: Rejected) -> str:
    """Content hash of (reason, path, offset, record_id, raw): 128 bits of SHA-256, hex, like event ids."""
    origin = item.origin
    key = orjson.dumps([item.reason, origin.path, origin.offset, origin.record_id, item.raw])
    return hashlib.sha256(key).hexdigest()[:32]


def deadletter_record(item: Rejected, received_ms: int) -> Record:
    doc_id = deadletter_id_for(item)
    doc = item.to_dict()
    doc["@timestamp"] = ms_to_iso(received_ms)
    doc["event"] = {"id": doc_id, "kind": "pipeline_error"}
    return _record(Collection.DEADLETTER, doc_id, received_ms, doc)


def iter_records(
    items: Iterable[_T], build: Callable[[_T], Record], describe: Callable[[_T], str],
    refused: list[tuple[_T, str, str]],
) -> Iterator[Record]:
    """The records of `items`, lazily; each item refused (not storable) goes to `refused` as (item, id, reason)."""
    for item in items:
        try:
            yield build(item)
        except _RefusedError as exc:
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


def document_text(doc: Any) -> str:
    """The free text of a document: its string and number values (not booleans or keys), one per line, except
    ``event.original``: the raw record is stored verbatim but not word-indexed (its content is in the parsed
    fields; indexing it twice would double the index and the cost of writing it)."""
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


def check_collection(name: str) -> Collection:
    try:
        return Collection(name)
    except ValueError:
        known = ", ".join(c.value for c in Collection)
        raise UnknownCollectionError(f"unknown collection {name!r} (expected one of: {known})") from None


def _check_window(since_ms: int | None, until_ms: int | None) -> None:
    if since_ms is not None and until_ms is not None and since_ms > until_ms:
        raise InvalidRequestError(f"empty time range: since_ms {since_ms} is after until_ms {until_ms}")


def _check_field(name: str) -> str:
    if not is_field_name(name):
        raise InvalidRequestError(f"invalid field name {name!r}")
    return name


class Store(ABC):
    """A backend for events, alerts and dead letters. Use as a context manager, or call `close()`.

    `clock` supplies the time received for dead letters when the caller passes none.
    """

    backend: str = "abstract"

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock: Clock = clock or wall_clock_ms

    # -- writes

    def write_events(self, events: Sequence[Event]) -> WriteResult:
        """Create-only batch write. A refused event is reported in `failed` and stored as a dead letter."""
        return self._write_items(
            Collection.EVENTS, events, event_record, lambda e: e.id,
            lambda event, doc_id, reason: refused_dead_letter(Collection.EVENTS, doc_id, reason, event.origin,
                                                              event.raw),
        )

    def write_alerts(self, alerts: Sequence[Alert]) -> WriteResult:
        """Create-only batch write. A refused alert is reported in `failed` and stored as a dead letter."""
        return self._write_items(
            Collection.ALERTS, alerts, alert_record, lambda a: a.id,
            lambda alert, doc_id, reason: refused_dead_letter(Collection.ALERTS, doc_id, reason, alert.origin,
                                                              repr(alert.to_dict())),
        )

    def write_rejected(self, items: Sequence[Rejected], *, received_ms: int | None = None) -> WriteResult:
        """Dead letters; `@timestamp` is `received_ms`, or the store's clock when None."""
        received = self._clock() if received_ms is None else received_ms
        return self._write_items(
            Collection.DEADLETTER, items, lambda r: deadletter_record(r, received), deadletter_id_for, None
        )

    def _write_items(
        self,
        collection: Collection,
        items: Sequence[_T],
        build: Callable[[_T], Record],
        describe: Callable[[_T], str],
        dead_letter: Callable[[_T, str, str], Rejected] | None,
    ) -> WriteResult:
        """Build the records and write them; backends that can overlap building with sending override this."""
        refused: list[tuple[_T, str, str]] = []
        records = list(iter_records(items, build, describe, refused))
        result = self._write(collection, records) if records else WriteResult()
        return self._with_refused(result, refused, dead_letter)

    def _with_refused(
        self,
        result: WriteResult,
        refused: list[tuple[_T, str, str]],
        dead_letter: Callable[[_T, str, str], Rejected] | None,
    ) -> WriteResult:
        """`result` with the refused items first in `failed`; each refused item is stored as a dead letter."""
        if not refused:
            return result
        if dead_letter is not None:
            self.write_rejected([dead_letter(item, doc_id, reason) for item, doc_id, reason in refused])
        failed = [(doc_id, reason) for _, doc_id, reason in refused]
        return WriteResult(result.written, result.duplicates, failed + result.failed, result.spooled)

    # -- reads

    def search(
        self,
        collection: str,
        query: str | Query = "",
        *,
        since_ms: int | None = None,
        until_ms: int | None = None,
        limit: int = 100,
        offset: int = 0,
        sort: str = "-@timestamp",
    ) -> SearchPage:
        """Matching documents, `limit` from `offset` in `sort` order ("-field": descending), and the total."""
        where = self._filter(collection, query, since_ms, until_ms)
        if limit < 0 or offset < 0:
            raise InvalidRequestError(f"limit and offset must be >= 0, got limit={limit}, offset={offset}")
        if limit + offset > MAX_RESULT_WINDOW:
            raise InvalidRequestError(
                f"offset + limit = {offset + limit} exceeds the result window of {MAX_RESULT_WINDOW}"
            )
        return self._search(where, Sort.parse(sort), limit, offset)

    def count(
        self,
        collection: str,
        query: str | Query = "",
        *,
        since_ms: int | None = None,
        until_ms: int | None = None,
    ) -> int:
        return self._count(self._filter(collection, query, since_ms, until_ms))

    def terms(
        self,
        collection: str,
        field: str,
        query: str | Query = "",
        size: int = 10,
        *,
        since_ms: int | None = None,
        until_ms: int | None = None,
    ) -> list[tuple[FieldValue, int]]:
        """The `size` most frequent values of `field` among matching documents, as (value, document count),
        most frequent first, ties by value. An array field counts each distinct element; values are grouped
        exactly (case-sensitively) even though `field:value` matching is case-insensitive."""
        where = self._filter(collection, query, since_ms, until_ms)
        if size < 1:
            raise InvalidRequestError(f"terms size must be >= 1, got {size}")
        return self._terms(where, _check_field(field), size)

    def date_histogram(
        self,
        collection: str,
        interval_ms: int,
        query: str | Query = "",
        *,
        since_ms: int | None = None,
        until_ms: int | None = None,
    ) -> list[tuple[int, int]]:
        """(bucket start, count) for fixed buckets aligned to the epoch, from the first non-empty bucket to
        the last, empty buckets in between included with count 0."""
        where = self._filter(collection, query, since_ms, until_ms)
        if interval_ms < 1:
            raise InvalidRequestError(f"interval_ms must be >= 1, got {interval_ms}")
        buckets = self._date_histogram(where, interval_ms)
        if not buckets:
            return []
        first, last = buckets[0][0], buckets[-1][0]
        span = (last - first) // interval_ms + 1
        if span > MAX_BUCKETS:
            raise InvalidRequestError(
                f"date histogram would have {span} buckets (max {MAX_BUCKETS}); use a larger interval"
            )
        counts = dict(buckets)
        return [(start, counts.get(start, 0)) for start in range(first, last + 1, interval_ms)]

    def get(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        """The stored document with this id, or None."""
        return self._get(check_collection(collection), doc_id)

    def _filter(
        self, collection: str, query: str | Query, since_ms: int | None, until_ms: int | None
    ) -> Filter:
        name = check_collection(collection)
        _check_window(since_ms, until_ms)
        parsed = parse_query(query) if isinstance(query, str) else query
        return Filter(name, parsed, since_ms, until_ms)

    # -- maintenance

    def apply_retention(
        self, policy: RetentionPolicy, now_ms: int | None = None, *, dry_run: bool = False
    ) -> list[Purge]:
        """Delete documents past the retention of their agency's security level (`policy`) at `now_ms` (default:
        the store's clock); with `dry_run`, only report what would be deleted."""
        return self._apply_retention(policy, self._clock() if now_ms is None else now_ms, dry_run)

    # -- lifecycle

    def flush(self) -> int:
        """Deliver what the backend holds back (a spool of documents written while its server was unreachable);
        the number still waiting. Backends that write through return 0."""
        return 0

    @property
    def pending(self) -> int:
        """Documents accepted by writes but not yet delivered to the backend (spooled)."""
        return 0

    @abstractmethod
    def close(self) -> None:
        """Release the backend's resources; further calls raise `StoreError`. Closing twice is harmless."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- backend hooks (arguments already validated)

    @abstractmethod
    def _write(self, collection: Collection, records: Sequence[Record]) -> WriteResult:
        """Create-only insert of a non-empty batch; ids repeated within the batch count as duplicates."""

    @abstractmethod
    def _search(self, where: Filter, sort: Sort, limit: int, offset: int) -> SearchPage: ...

    @abstractmethod
    def _count(self, where: Filter) -> int: ...

    @abstractmethod
    def _terms(self, where: Filter, field: str, size: int) -> list[tuple[FieldValue, int]]: ...

    @abstractmethod
    def _date_histogram(self, where: Filter, interval_ms: int) -> list[tuple[int, int]]:
        """Non-empty buckets only, ascending by start."""

    @abstractmethod
    def _get(self, collection: Collection, doc_id: str) -> dict[str, Any] | None: ...

    @abstractmethod
    def _apply_retention(self, policy: RetentionPolicy, now_ms: int, dry_run: bool) -> list[Purge]: ...

