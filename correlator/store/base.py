"""The store contract every backend implements (SQLite and Elasticsearch), and what both share.

Collections and their documents (`correlator.store.documents` builds them):

- ``events``: `Event.to_document()`; id = `Event.id` (also at ``event.id``).
- ``alerts``: `Alert.to_dict()`; id = `Alert.id` (also at ``alert.id``; ``event.id`` is the source event's).
- ``deadletter``: `Rejected.to_dict()` plus ``@timestamp`` (time received) and ``event.id`` / ``event.kind``
  (``pipeline_error``); id = `deadletter_id_for(rejected)`, a content hash, so retries do not duplicate.
- ``audit``: who did what to which subject (`write_audit`); ``@timestamp`` = ``at_ms``; id = ``id``.
- ``cases``, ``allowlist``: mutable documents with a ``version``, written whole by `put` after a version check
  the backend makes atomically; ``@timestamp`` = ``created_ms``; id = ``id``.

Writes to the append-only collections are create-only and idempotent by id: writing an id that is already stored
counts as a duplicate and leaves the stored document unchanged (except `write_alerts(..., replace=True)`, which
overwrites). Writes are visible to reads when the write call returns. Time ranges are
``since_ms <= @timestamp < until_ms``. Searches page through at most `MAX_RESULT_WINDOW` hits; ties in any
sort are broken by document id, ascending. The query language is in `correlator.store.query`.

A backend subclasses `Store` and implements the `_`-prefixed hooks; the public methods here validate the
arguments, so every backend accepts and rejects exactly the same calls with the same messages.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Self, TypeAlias, TypeVar

import orjson

from correlator.model import Alert, Event, EventOrigin, Rejected
from correlator.store.documents import (
    ID_FIELDS,
    INDEXED_FIELDS,
    TIMESTAMP_FIELD,
    VERSIONED,
    Collection,
    PreparedRecord,
    Record,
    alert_record,
    audit_record,
    check_collection,
    deadletter_id_for,
    deadletter_record,
    document_text,
    event_record,
    iter_records,
    refused_dead_letter,
    storable_text,
    versioned_record,
)
from correlator.store.errors import InvalidRequestError, StoreError, VersionConflictError
from correlator.store.query import MatchAll, Query, is_field_name, parse_query
from correlator.store.retention import Purge, RetentionPolicy

__all__ = [
    "ID_FIELDS",
    "INDEXED_FIELDS",
    "MAX_BUCKETS",
    "MAX_RESULT_WINDOW",
    "TIMESTAMP_FIELD",
    "VERSIONED",
    "Clock",
    "Collection",
    "FieldValue",
    "Filter",
    "Record",
    "SearchPage",
    "Sort",
    "Store",
    "StoreError",
    "VersionConflictError",
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

Clock: TypeAlias = Callable[[], int]  # the current time in epoch milliseconds
FieldValue: TypeAlias = str | int | float | bool
_T = TypeVar("_T")


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


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


def _check_window(since_ms: int | None, until_ms: int | None) -> None:
    if since_ms is not None and until_ms is not None and since_ms > until_ms:
        raise InvalidRequestError(f"empty time range: since_ms {since_ms} is after until_ms {until_ms}")


def _check_field(name: str) -> str:
    if not is_field_name(name):
        raise InvalidRequestError(f"invalid field name {name!r}")
    return name


class Store(ABC):
    """A backend for events, alerts, dead letters, audit entries, cases and allowlist entries. Use as a context
    manager, or call `close()`.

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

    def write_prepared(self, collection: str, records: Sequence[PreparedRecord]) -> WriteResult:
        """Create-only batch write of records prepared elsewhere (`prepare_event`): stored as the items they were
        prepared from would be (their documents come back from the JSON source). Refused items were turned into
        dead letters where they were prepared."""
        name = check_collection(collection)
        if name in VERSIONED:
            raise InvalidRequestError(f"write_prepared {name.value}: a versioned collection is written by put")
        if not records:
            return WriteResult()
        return self._write_prepared(name, records)

    def _write_prepared(self, collection: Collection, records: Sequence[PreparedRecord]) -> WriteResult:
        """Backends that can store a prepared record without its document override this."""
        loads = orjson.loads
        return self._write(collection, [Record(r.id, r.timestamp_ms, loads(r.source), r.source, r.keys)
                                        for r in records])

    def write_alerts(self, alerts: Sequence[Alert], *, replace: bool = False) -> WriteResult:
        """Create-only batch write. A refused alert is reported in `failed` and stored as a dead letter. With
        `replace`, an alert whose id is stored already is overwritten (and counts as written): the suppression
        stage updates its representative alert's count this way."""
        return self._write_items(
            Collection.ALERTS, alerts, alert_record, lambda a: a.id,
            lambda alert, doc_id, reason: refused_dead_letter(Collection.ALERTS, doc_id, reason, alert.origin,
                                                              repr(alert.to_dict())),
            replace=replace,
        )

    def write_audit(self, entries: Sequence[Mapping[str, Any]]) -> WriteResult:
        """Create-only batch write of audit entries (see `correlator.store.documents`), idempotent by ``id``. An
        entry without a string ``id`` or an epoch-ms ``at_ms``, or not storable, is reported in `failed` and
        stored as a dead letter."""
        return self._write_items(
            Collection.AUDIT, entries, audit_record, lambda e: str(e.get("id")),
            lambda entry, doc_id, reason: refused_dead_letter(
                Collection.AUDIT, doc_id, reason, EventOrigin(format="audit"), repr(dict(entry))
            ),
        )

    def put(self, collection: str, doc: Mapping[str, Any], *, expected_version: int | None) -> None:
        """Write a whole versioned document (``cases``, ``allowlist``) if the stored one is at `expected_version`:
        None means there must be no document with this id yet. `doc` needs a string ``id``, an integer ``version``
        (>= 1, and above `expected_version` for an update) and ``created_ms``. The backend checks the version
        atomically: a mismatch raises `VersionConflictError` (reload, reapply, retry), and nothing is written.
        A put whose exact document is stored already (a retried put that had succeeded) is not a conflict.
        Never spooled: an unreachable backend raises."""
        name = check_collection(collection)
        if name not in VERSIONED:
            versioned = ", ".join(c.value for c in Collection if c in VERSIONED)
            raise InvalidRequestError(
                f"put {name.value}: not a versioned collection (put takes one of: {versioned}; "
                f"{name.value} is written by its create-only write method)"
            )
        if not isinstance(doc, Mapping):
            raise InvalidRequestError(f"put {name.value}: the document must be a mapping, not {type(doc).__name__}")
        record = versioned_record(name, doc)
        where = f"put {name.value}/{record.id}"
        if expected_version is not None and (
            not isinstance(expected_version, int) or isinstance(expected_version, bool) or expected_version < 1
        ):
            raise InvalidRequestError(
                f"{where}: expected_version must be None (create) or an integer >= 1, got {expected_version!r}"
            )
        version = int(record.doc["version"])
        if expected_version is not None and version <= expected_version:
            raise InvalidRequestError(
                f"{where}: the new version {version} must be greater than expected_version {expected_version}"
            )
        self._put(name, record, expected_version)

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
        *,
        replace: bool = False,
    ) -> WriteResult:
        """Build the records and write them; backends that can overlap building with sending override this."""
        refused: list[tuple[_T, str, str]] = []
        records = list(iter_records(items, build, describe, refused))
        result = self._write(collection, records, replace=replace) if records else WriteResult()
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

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Make the writes inside one unit where the backend can: on SQLite one transaction (one commit, one
        flush of the free-text index, instead of one per call), undone as a whole when the block raises; each
        call inside still succeeds or fails as without it (a version conflict undoes only its own put). A backend
        that cannot (Elasticsearch) writes as it goes. Nested blocks join the outer one. While a unit is open
        other writers of the same database wait (up to the backend's busy timeout): keep it short."""
        yield

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
    def _write(self, collection: Collection, records: Sequence[Record], *, replace: bool = False) -> WriteResult:
        """Create-only insert of a non-empty batch; ids repeated within the batch count as duplicates. With
        `replace`, a stored id (or one repeated in the batch) is overwritten by the later document, as written."""

    @abstractmethod
    def _put(self, collection: Collection, record: Record, expected_version: int | None) -> None:
        """Write a versioned document after an atomic check of the stored version (see `put`); raise
        `VersionConflictError` on a mismatch, unless the stored document equals `record.doc`."""

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

