"""Bulk delivery to Elasticsearch with a spool for outages (used by `correlator.store.elasticsearch`).

`BulkWriter.deliver` sends documents with the official client's bulk helpers (``parallel_bulk`` with
`WriterSettings.thread_count` requests in flight, or ``streaming_bulk``, which retries 429 items itself) and
sorts every item into written, duplicate (409), refused (the document's own fault) or not delivered (the server
is unreachable, timed out, or answered 429/5xx after retries). Documents not delivered go to the spool, and the
server is considered down for a back-off (1 s doubling to 30 s) during which later documents go straight to
the spool behind them: documents reach Elasticsearch in the order they were written. `drain` replays the spool,
oldest first, committing a batch only once every document of it has an answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

from elastic_transport import ConnectionError as TransportConnectionError
from elastic_transport import ConnectionTimeout
from elasticsearch import ApiError, Elasticsearch, helpers

from correlator.store.base import Collection, WriteResult
from correlator.store.errors import BackendUnavailableError, StoreError
from correlator.store.es_bulk import Outcome, PendingDocument, action_for, decode_pending, encode_pending, item_outcome
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
    # Bulk requests in flight at once (parallel_bulk); the next chunk is serialised while they run. With 1,
    # streaming_bulk, which also retries 429 items itself; parallel_bulk leaves them to the spool's back-off.
    thread_count: int = 2
    max_retries: int = 3  # per 429 item, inside streaming_bulk
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 8.0
    down_backoff_s: tuple[float, float] = (1.0, 30.0)  # first and longest wait before retrying a down server


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

    def deliver(self, documents: list[PendingDocument]) -> WriteResult:
        if not documents:
            return WriteResult()
        if self.spool is not None and (self.spool.pending_items or self._is_down()):
            if not self._is_down():
                self.drain()
            if self.spool.pending_items or self._is_down():
                self._spool_documents(documents)
                return WriteResult(spooled=len(documents))
        written, duplicates, failed, unsent = self._bulk(documents)
        if unsent:
            if self.spool is None:
                raise BackendUnavailableError(
                    f"{self.url}: Elasticsearch is unavailable and this store has no spool: "
                    f"{len(unsent)} of {len(documents)} documents not written"
                )
            self._spool_documents(unsent)
        self._on_refused(failed)
        return WriteResult(written, duplicates, [(d.id, reason) for d, reason in failed], len(unsent))

    def _bulk(
        self, documents: list[PendingDocument]
    ) -> tuple[int, int, list[tuple[PendingDocument, str]], list[PendingDocument]]:
        """(written, duplicates, failed with reasons, not delivered) for one batch; marks the server down."""
        pending = {(d.index, d.id): d for d in documents}
        answered: set[tuple[str, str]] = set()
        written = duplicates = 0
        failed: list[tuple[PendingDocument, str]] = []
        retry: list[PendingDocument] = []
        try:
            self._prepare()
            for _ok, item in self._bulk_items(documents):
                body = item.get("create") or {}
                key = (str(body.get("_index", "")), str(body.get("_id", "")))
                answered.add(key)
                _, outcome, reason = item_outcome(item)
                document = pending.get(key)
                if outcome is Outcome.WRITTEN:
                    written += 1
                elif outcome is Outcome.DUPLICATE:
                    duplicates += 1
                elif document is None:
                    continue
                elif outcome is Outcome.RETRY:
                    retry.append(document)
                else:
                    failed.append((document, reason))
        except (*UNREACHABLE, UnavailableError) as exc:
            self._mark_down(str(exc))
        except ApiError as exc:
            if exc.meta.status not in DOWN_STATUSES:
                raise StoreError(f"{self.url}: bulk write: {describe_api_error(exc)}") from exc
            self._mark_down(describe_api_error(exc))
        if written or duplicates:
            self._on_written({d.collection for d in documents})
        unsent = [d for key, d in pending.items() if key not in answered]
        if retry:
            self._mark_down(f"{len(retry)} documents refused with 429/5xx after retries")
        else:
            self._down_wait = 0.0
        return written, duplicates, failed, retry + unsent

    def _bulk_items(self, documents: list[PendingDocument]) -> Iterable[tuple[bool, dict[str, Any]]]:
        actions = (action_for(document) for document in documents)
        settings = self.settings
        if settings.thread_count > 1 and len(documents) > settings.chunk_size:
            return helpers.parallel_bulk(
                self._client(), actions, thread_count=settings.thread_count, queue_size=settings.thread_count,
                chunk_size=settings.chunk_size, max_chunk_bytes=settings.max_chunk_bytes,
                raise_on_error=False, raise_on_exception=True,
            )
        return helpers.streaming_bulk(
            self._client(), actions, chunk_size=settings.chunk_size, max_chunk_bytes=settings.max_chunk_bytes,
            raise_on_error=False, raise_on_exception=True, max_retries=settings.max_retries,
            initial_backoff=settings.initial_backoff_s, max_backoff=settings.max_backoff_s,
        )

    def _is_down(self) -> bool:
        return self._monotonic() < self._down_until

    def _mark_down(self, reason: str) -> None:
        first, longest = self.settings.down_backoff_s
        self._down_wait = min(longest, self._down_wait * 2) if self._down_wait else first
        self._down_until = self._monotonic() + self._down_wait
        log.warning("%s: Elasticsearch unavailable (%s); retrying in %.0f s", self.url, reason, self._down_wait)

    def _spool_documents(self, documents: list[PendingDocument]) -> None:
        if self.spool is None:  # pragma: no cover - callers check
            raise BackendUnavailableError(f"{self.url}: no spool")
        # One frame per bulk chunk: a replay reads (and a crash recovery checks) a chunk at a time. If the spool
        # fills up part-way, what went in stays and the error says so; the caller replays the rest.
        size = self.settings.chunk_size
        for start in range(0, len(documents), size):
            self.spool.append([encode_pending(document) for document in documents[start : start + size]])

    def drain(self) -> None:
        """Deliver spooled documents, oldest first, until the spool is empty or the server is down again."""
        spool = self.spool
        if spool is None:
            return
        while spool.pending_items and not self._is_down():
            batch = spool.peek(self.settings.chunk_size)
            documents = [decode_pending(data) for data in batch]
            written, duplicates, failed, unsent = self._bulk(documents)
            if unsent:
                return  # the whole batch is sent again later; create-only makes that harmless
            spool.commit(len(batch))
            self.replayed += written + duplicates
            self._on_refused(failed)
            log.info("%s: replayed %d spooled documents (%d duplicates, %d refused), %d still spooled",
                     self.url, written + duplicates, duplicates, len(failed), spool.pending_items)


def describe_api_error(exc: ApiError) -> str:
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        root = (error.get("root_cause") or [error])[0]
        return f"HTTP {exc.meta.status} {root.get('type', '')}: {root.get('reason', '')}"
    return f"HTTP {exc.meta.status}: {exc.message}"
