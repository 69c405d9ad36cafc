"""The durable intake journal of the HTTP agent intake, and its consumer.

The intake (`collectors.http_intake`) appends each accepted request as one batch, fsync'd, before it answers 200;
the consumer reads the batches back in order, hands their `Event | Rejected` items to an async sink (awaiting it
is the backpressure) and only then marks them consumed. A crash (kill -9) between the two loses nothing: the
unconsumed batches are read again on the next start (at least once; event ids are content hashes, so downstream
writes are idempotent).

The journal is a `correlator.store.spool.Spool` (checksummed frames, torn-tail recovery, a byte limit), one spool
item per batch::

    {"v": 1, "peer": "127.0.0.1", "agent": "dc-winlogbeat", "organization": "agency-a", "received_ms": 1709...}\\n
    <the request body, decompressed, as the agent sent it>

Records are made events when read (`collectors.http_records.batch_items`), by the same pure function the intake
used for its answer, so the counts the agent was told are the items delivered.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Final, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from collectors.http_records import BatchSource, batch_items
from collectors.spool_consumer import Barrier, BulkSink, ItemSink, SpoolConsumer
from correlator.model import Event, EventOrigin, Rejected
from correlator.store.spool import DEFAULT_SEGMENT_BYTES, Spool

__all__ = ["DEFAULT_JOURNAL_BYTES", "IntakeConsumer", "IntakeJournal", "JournalBatch"]

DEFAULT_JOURNAL_BYTES: Final = 1 << 30  # 1 GiB of batches waiting to be consumed
_VERSION: Final = 1

Item = Event | Rejected
Sink = ItemSink


@dataclass(frozen=True, slots=True)
class JournalBatch:
    """One accepted request: who sent it, when, and its (decompressed) body."""

    source: BatchSource
    body: bytes

    def encode(self) -> bytes:
        source = self.source
        header = {"v": _VERSION, "peer": source.peer, "agent": source.agent, "organization": source.organization,
                  "received_ms": source.received_ms}
        if source.timezone is not None:  # read again as accepted (older batches have no zone: UTC)
            header["timezone"] = source.timezone
        return orjson.dumps(header) + b"\n" + self.body

    @classmethod
    def decode(cls, item: bytes) -> JournalBatch:
        """The batch in a journal item; `ValueError` naming what is wrong if it is not one."""
        line, newline, body = item.partition(b"\n")
        try:
            header = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"batch header is not JSON: {exc}") from None
        if not newline or not isinstance(header, dict) or header.get("v") != _VERSION:
            raise ValueError(f"not a version {_VERSION} batch header: {line[:200]!r}")
        peer, agent, organization, received = (header.get(key) for key in ("peer", "agent", "organization",
                                                                            "received_ms"))
        if not (isinstance(peer, str) and isinstance(agent, str) and isinstance(received, int)
                and (organization is None or isinstance(organization, str))):
            raise ValueError(f"batch header lacks peer, agent or received_ms: {line[:200]!r}")
        zone = header.get("timezone")
        if zone is not None:
            try:
                ZoneInfo(zone)
            except (TypeError, ValueError, ZoneInfoNotFoundError):
                raise ValueError(f"batch header's timezone is not a known zone: {line[:200]!r}") from None
        return cls(BatchSource(peer, agent, organization, received, zone), body)

    def items(self) -> list[Item]:
        return batch_items(self.body, self.source)


class IntakeJournal:
    """Batches on disk in `directory`, oldest first. `append` is durable when it returns, and raises
    `SpoolFullError` (writing nothing) when the pending batches would pass `max_bytes`: the agent is told to
    retry later. One process at a time (`SpoolLockedError`); thread-safe within it."""

    def __init__(self, directory: Path | str, *, max_bytes: int = DEFAULT_JOURNAL_BYTES,
                 segment_bytes: int = DEFAULT_SEGMENT_BYTES) -> None:
        self._spool = Spool(directory, max_bytes=max_bytes, segment_bytes=segment_bytes)

    @property
    def directory(self) -> Path:
        return self._spool.directory

    @property
    def max_bytes(self) -> int:
        return self._spool.max_bytes

    @property
    def pending_batches(self) -> int:
        return self._spool.pending_items

    @property
    def pending_bytes(self) -> int:
        return self._spool.pending_bytes

    def append(self, batch: JournalBatch) -> None:
        self._spool.append([batch.encode()])

    def peek(self, max_batches: int) -> list[bytes]:
        """Up to `max_batches` of the oldest pending batches, encoded (`JournalBatch.decode`), not consumed."""
        return self._spool.peek(max_batches)

    def commit(self, count: int) -> None:
        """Durably mark the oldest `count` pending batches consumed."""
        self._spool.commit(count)

    def close(self) -> None:
        self._spool.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"IntakeJournal({str(self.directory)!r}, pending_batches={self.pending_batches}, "
                f"pending_bytes={self.pending_bytes}, max_bytes={self.max_bytes})")


def journal_items(item: bytes, where: str) -> list[Item]:
    """The `Event | Rejected` items of one journal item. An item that is not a batch (a header from another
    version) becomes one dead letter holding it, rather than blocking the journal or vanishing."""
    try:
        batch = JournalBatch.decode(item)
    except ValueError as exc:
        origin = EventOrigin(path=where, format="intake-journal")
        return [Rejected(f"unreadable journal batch: {exc}", origin, item.decode("utf-8", "replace"))]
    return batch.items()


class IntakeConsumer(SpoolConsumer):
    """Delivers the journal's batches to `sink`, in order, and commits them once the sink has taken every item
    of them (up to `batches_per_commit` batches are read, delivered and committed together: at most that many
    bodies are held in memory). Run `run()` as a task; it returns when `stop` is set, after committing what it
    delivered, and raises what the sink raises (nothing is committed then: the batch is delivered again). With a
    `barrier` (returns once everything handed to the sink so far is processed and stored), batches are committed
    only after it returned: a kill -9 at any point loses no acknowledged record."""

    def __init__(self, journal: IntakeJournal, sink: Sink, *, batches_per_commit: int = 8,
                 poll_interval: float = 0.05, barrier: Barrier | None = None,
                 bulk_sink: BulkSink | None = None) -> None:
        super().__init__(sink, per_commit=batches_per_commit, poll_interval=poll_interval, barrier=barrier,
                         thread_name="socctl-intake-consumer", bulk_sink=bulk_sink)
        self.journal = journal
        self._where = str(journal.directory)

    @property
    def delivered_batches(self) -> int:
        return self.delivered_entries

    def pending(self) -> int:
        return self.journal.pending_batches

    def peek(self, count: int) -> list[bytes]:
        return self.journal.peek(count)

    def items(self, entry: bytes) -> list[Item]:
        return journal_items(entry, self._where)

    def commit(self, count: int) -> None:
        self.journal.commit(count)
