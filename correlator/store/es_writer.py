"""Bulk delivery to Elasticsearch with a spool for outages (used by `correlator.store.elasticsearch`).

`BulkWriter.deliver` consumes documents lazily and sends them in chunks, each through the official client's
``streaming_bulk`` helper (which retries 429 items), with `WriterSettings.thread_count` requests in flight while
the next chunk is serialised. Every item is written, a duplicate (409), refused (the document's own fault), or
not delivered (the server is unreachable, timed out, or answered 429/5xx after retries). Documents not
delivered go to the spool, and the server is considered down for a back-off (1 s doubling to 30 s) during which
later documents go straight to the spool behind them: documents reach Elasticsearch in the order they were
written. `drain` replays the spool, oldest first, committing a batch only once every document of it has an
answer.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Final

from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout
from elasticsearch import ApiError, Elasticsearch, helpers

from correlator.store.base import Collection, WriteResult
from correlator.store.errors import BackendUnavailableError, StoreError
from correlator.store.es_bulk import (
    Outcome,
    PendingDocument,
    action_for,
    decode_pending,
    encode_pending,
    item_body,
    item_outcome,
)
from correlator.store.spool import Spool

__all__ = ["UNREACHABLE", "BulkWriter", "UnavailableError", "WriterSettings", "describe_api_error"]

log = logging.getLogger(__name__)

UNREACHABLE: Final = (TransportConnectionError, ConnectionTimeout)
DOWN_STATUSES: Final = frozenset({429, 502, 503, 504})


class UnavailableError(Exception):
    """Elasticsearch could not take the request now (unreachable, timed out, 429/5xx after retries)."""


@dataclass(frozen=True, slots=True)
class WriterSettings:
    """Bulk writing knobs (tuned by bench/es_ingest.py)."""

    chunk_size: int = 2_000
    max_chunk_bytes: int = 16 * 1024 * 1024
    # Bulk requests in flight at once, each through streaming_bulk (which retries 429 items); the next chunk is
    # serialised while they run.
    thread_count: int = 2
    max_retries: int = 3  # per 429 item, inside streaming_bulk
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 8.0
    down_backoff_s: tuple[float, float] = (1.0, 30.0)  # first and longest wait before retrying a down server


@dataclass(slots=True)
class _BulkOutcome:
    written: int = 0
    duplicates: int = 0
    sent: int = 0
    down: bool = False
    failed: list[tuple[PendingDocument, str]] = field(default_factory=list)
    retry: list[PendingDocument] = field(default_factory=list)
    unsent: list[PendingDocument] = field(default_factory=list)
    collections: set[Collection] = field(default_factory=set)


def _chunks(documents: Iterator[PendingDocument], size: int) -> Iterator[list[PendingDocument]]:
    while chunk := list(islice(documents, size)):
        yield chunk


class BulkWriter:
    """Delivers `PendingDocument`s; callbacks tell the store what was written and what was refused."""

    def __init__(
        self,
        url: str,
        client: Callable[[], Elasticsearch],
        settings: WriterSettings,
        spool: Spool | None,
        *,
        prepare: Callable[[], None],
        on_written: Callable[[set[Collection]], None],
        on_refused: Callable[[list[tuple[PendingDocument, str]]], None],
        monotonic: Callable[[], float],
    ) -> None:
        self.url = url
        self.settings = settings
        self.spool = spool
        self._client = client
        self._prepare = prepare
        self._on_written = on_written
        self._on_refused = on_refused
        self._monotonic = monotonic
        self._down_until = 0.0
        self._down_wait = 0.0
        self.replayed = 0  # spooled documents delivered

    @property
    def pending(self) -> int:
        return 0 if self.spool is None else self.spool.pending_items

    def flush(self) -> int:
        """Try to deliver the spool now, back-off or not; the documents still waiting."""
        if self.pending:
            self._down_until = 0.0
            self.drain()
        return self.pending

    def deliver(self, documents: Iterable[PendingDocument]) -> WriteResult:
        """Write `documents` (consumed lazily: the next chunk is serialised while earlier ones are in flight)."""
        stream = iter(documents)
        if self.spool is not None and (self.spool.pending_items or self._is_down()):
            if not self._is_down():
                self.drain()
            if self.spool.pending_items or self._is_down():
                return WriteResult(spooled=self._spool_documents(stream))
        outcome = self._bulk(stream)
        if outcome.unsent:
            if self.spool is None:
                raise BackendUnavailableError(
                    f"{self.url}: Elasticsearch is unavailable and this store has no spool: "
                    f"{len(outcome.unsent)} of {outcome.sent + len(outcome.unsent)} documents not written"
                )
            self._spool_documents(iter(outcome.unsent))
        self._on_refused(outcome.failed)
        return WriteResult(outcome.written, outcome.duplicates, [(d.id, reason) for d, reason in outcome.failed],
                           len(outcome.unsent))

    def _bulk(self, documents: Iterator[PendingDocument]) -> _BulkOutcome:
        """Send `documents` in chunks, `thread_count` bulk requests in flight, each through the client's
        `streaming_bulk` (which retries 429 items). On the first chunk that cannot be delivered the server is
        marked down and every later chunk is kept back, unsent."""
        outcome = _BulkOutcome()
        settings = self.settings
        in_flight: deque[tuple[list[PendingDocument], Future[list[dict[str, Any]]]]] = deque()
        try:
            self._prepare()
        except (*UNREACHABLE, UnavailableError) as exc:
            self._mark_down(str(exc))
            outcome.unsent.extend(documents)
            return outcome
        with ThreadPoolExecutor(max(1, settings.thread_count), thread_name_prefix="socctl-bulk") as pool:
            for chunk in _chunks(documents, settings.chunk_size):
                if outcome.down:
                    outcome.unsent.extend(chunk)
                    continue
                in_flight.append((chunk, pool.submit(self._send, chunk)))
                while len(in_flight) >= max(1, settings.thread_count):
                    self._collect(*in_flight.popleft(), outcome)
            while in_flight:
                self._collect(*in_flight.popleft(), outcome)
        if outcome.written or outcome.duplicates:
            self._on_written(outcome.collections)
        if outcome.retry:
            self._mark_down(f"{len(outcome.retry)} documents refused with 429/5xx after retries")
            outcome.unsent.extend(outcome.retry)
        elif not outcome.down:
            self._down_wait = 0.0
        return outcome

    def _send(self, chunk: list[PendingDocument]) -> list[dict[str, Any]]:
        settings = self.settings
        return [
            item for _ok, item in helpers.streaming_bulk(
                self._client(), (action_for(document) for document in chunk), chunk_size=len(chunk),
                max_chunk_bytes=settings.max_chunk_bytes, raise_on_error=False, raise_on_exception=True,
                max_retries=settings.max_retries, initial_backoff=settings.initial_backoff_s,
                max_backoff=settings.max_backoff_s,
            )
        ]

    def _collect(
        self, chunk: list[PendingDocument], future: Future[list[dict[str, Any]]], outcome: _BulkOutcome
    ) -> None:
        try:
            items = future.result()
        except (*UNREACHABLE, UnavailableError) as exc:
            outcome.unsent.extend(chunk)
            if not outcome.down:
                outcome.down = True
                self._mark_down(str(exc))
            return
        except ApiError as exc:
            if exc.meta.status not in DOWN_STATUSES:
                raise StoreError(f"{self.url}: bulk write: {describe_api_error(exc)}") from exc
            outcome.unsent.extend(chunk)
            if not outcome.down:
                outcome.down = True
                self._mark_down(describe_api_error(exc))
            return
        outcome.sent += len(chunk)
        pending = {(d.index, d.id): d for d in chunk}
        answered: set[tuple[str, str]] = set()
        for item in items:
            body = item_body(item)
            key = (str(body.get("_index", "")), str(body.get("_id", "")))
            answered.add(key)
            _, result, reason = item_outcome(item)
            document = pending.get(key)
            if result is Outcome.WRITTEN:
                outcome.written += 1
            elif result is Outcome.DUPLICATE:
                outcome.duplicates += 1
            elif document is None:
                continue
            elif result is Outcome.RETRY:
                outcome.retry.append(document)
            else:
                outcome.failed.append((document, reason))
        outcome.collections.update(d.collection for d in chunk)
        outcome.unsent.extend(d for key, d in pending.items() if key not in answered)

    def _is_down(self) -> bool:
        return self._monotonic() < self._down_until

    def _mark_down(self, reason: str) -> None:
        first, longest = self.settings.down_backoff_s
        self._down_wait = min(longest, self._down_wait * 2) if self._down_wait else first
        self._down_until = self._monotonic() + self._down_wait
        log.warning("%s: Elasticsearch unavailable (%s); retrying in %.0f s", self.url, reason, self._down_wait)

    def _spool_documents(self, documents: Iterator[PendingDocument]) -> int:
        """Append to the spool, one frame per bulk chunk (a replay reads, and crash recovery checks, a chunk at a
        time); the number spooled. If the spool fills up part-way, what went in stays and the error says so."""
        if self.spool is None:  # pragma: no cover - callers check
            raise BackendUnavailableError(f"{self.url}: no spool")
        count = 0
        for chunk in _chunks(documents, self.settings.chunk_size):
            self.spool.append([encode_pending(document) for document in chunk])
            count += len(chunk)
        return count

    def drain(self) -> None:
        """Deliver spooled documents, oldest first, until the spool is empty or the server is down again."""
        spool = self.spool
        if spool is None:
            return
        while spool.pending_items and not self._is_down():
            batch = spool.peek(self.settings.chunk_size)
            outcome = self._bulk(decode_pending(data) for data in batch)
            if outcome.unsent:
                return  # the whole batch is sent again later; create-only makes that harmless
            spool.commit(len(batch))
            self.replayed += outcome.written + outcome.duplicates
            self._on_refused(outcome.failed)
            log.info("%s: replayed %d spooled documents (%d duplicates, %d refused), %d still spooled",
                     self.url, outcome.written + outcome.duplicates, outcome.duplicates, len(outcome.failed),
                     spool.pending_items)


def describe_api_error(exc: ApiError) -> str:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        root = (error.get("root_cause") or [error])[0]
        return f"HTTP {exc.meta.status} {root.get('type', '')}: {root.get('reason', '')}"
    return f"HTTP {exc.meta.status}: {exc.message}"
