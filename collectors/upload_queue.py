"""Files agents upload to the HTTP intake (`POST /v1/files`, `collectors.http_intake`): stored, queued, and made
events by a consumer, the way the intake journal's batches are (`collectors.intake_journal`).

    server = HttpIntakeServer(journal, tokens, samples_dir=state_dir / "samples")   # server.uploads: the inbox
    consumer = UploadConsumer(server.uploads, sink, barrier=barrier)                # sink: async (Event | Rejected)
    server.on_uploaded = consumer.wake
    task = asyncio.create_task(consumer.run(stop))
    ...  # stop the server, set `stop`, await the task, then server.uploads.close()

Under the samples directory::

    incoming/<sha256>   each distinct content once, mode 0600 (temp file, fsync, rename, fsync of the directory)
    queue/              a `correlator.store.spool.Spool`: one record per upload (JSON): the agent's path for the
                        file, its host, the token's agent and organization, the peer, the arrival time, the sha256

`UploadInbox.accept` stores the content, then appends the record, both durable when it returns; the server
answers only then. An upload whose content is stored already is a `duplicate`: it is still queued and becomes an
event (with `sample.duplicate: true` and the payload: the YARA stage's sha256 cache makes the rescan cheap, and
its alerts are linked to this upload, as the same file on a second host is a second finding), so every upload is
on record. A crash between storing and queueing leaves a stored file without a record; the agent got no answer
and retries, and the retry is then a duplicate (its event is the upload's only one).

`UploadConsumer` reads the records in order, reads each content back (checking its sha256), hands its event
(`collectors.samples.sample_event`; `file.path` is the agent's path) to the sink, awaits `barrier()` and only
then commits: a crash delivers the records again, with the same event ids (the record fixes the arrival time).
A record whose stored file is missing or damaged becomes a `Rejected` rather than a stuck queue.

Stored contents are the sample store analysts look files up in by hash. `UploadInbox.expire` deletes those not
uploaded again for a while (a duplicate upload refreshes a content's time), never one a pending record still
needs: `socctl run` sweeps at start and every hour (`uploads: {keep: 365d}`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import orjson

from collectors.sample_registry import write_atomically
from collectors.samples import FORMAT, Barrier, Digests, SampleSink, SampleSource, sample_event
from collectors.spool_consumer import Item, SpoolConsumer
from correlator.model import Event, EventOrigin, Rejected
from correlator.store.spool import Spool
from correlator.yara_scan import guess_filetype

__all__ = ["DEFAULT_QUEUE_BYTES", "UploadConsumer", "UploadInbox", "UploadReceipt", "UploadRecord", "Uploader"]

log = logging.getLogger(__name__)

DEFAULT_QUEUE_BYTES: Final = 64 << 20  # of upload records (a few hundred bytes each), not of file contents
_VERSION: Final = 1
_HEX: Final = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class Uploader:
    """Who sent an upload, and what they call the file: the agent's path for it (`X-File-Name`), its host
    (`X-Host-Name`), the token's agent name and organization, the peer's address, the arrival time."""

    name: str
    host: str | None
    agent: str
    organization: str | None
    peer: str
    received_ms: int

    @property
    def origin(self) -> str:
        """The events' origin (`log.file.path`): ``http://<peer>/v1/files``."""
        host = f"[{self.peer}]" if ":" in self.peer else self.peer
        return f"http://{host}/v1/files"


@dataclass(frozen=True, slots=True)
class UploadRecord:
    """One accepted upload, as queued."""

    uploader: Uploader
    sha256: str
    size: int
    duplicate: bool = False

    def encode(self) -> bytes:
        who = self.uploader
        return orjson.dumps({"v": _VERSION, "sha256": self.sha256, "size": self.size, "duplicate": self.duplicate,
                             "name": who.name, "host": who.host, "agent": who.agent,
                             "organization": who.organization, "peer": who.peer, "received_ms": who.received_ms})

    @classmethod
    def decode(cls, item: bytes) -> UploadRecord:
        """The record in a queue item; `ValueError` naming what is wrong if it is not one."""
        try:
            doc = orjson.loads(item)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"upload record is not JSON: {exc}") from None
        if not isinstance(doc, dict) or doc.get("v") != _VERSION:
            raise ValueError(f"not a version {_VERSION} upload record: {item[:200]!r}")
        strings = {key: doc.get(key) for key in ("sha256", "name", "agent", "peer")}
        optional = {key: doc.get(key) for key in ("host", "organization")}
        size, received, duplicate = doc.get("size"), doc.get("received_ms"), doc.get("duplicate")
        if not (all(isinstance(value, str) for value in strings.values())
                and all(value is None or isinstance(value, str) for value in optional.values())
                and type(size) is int and type(received) is int and isinstance(duplicate, bool)
                and _is_sha256(str(strings["sha256"]))):
            raise ValueError(f"upload record lacks a field or has one of the wrong type: {item[:200]!r}")
        uploader = Uploader(str(strings["name"]), optional["host"], str(strings["agent"]), optional["organization"],
                            str(strings["peer"]), received)
        return cls(uploader, str(strings["sha256"]), size, duplicate)

    def source(self) -> SampleSource:
        who = self.uploader
        return SampleSource(who.name, who.host, who.received_ms, agent=who.agent, organization=who.organization,
                            peer=who.peer, duplicate=self.duplicate, origin=who.origin)


@dataclass(frozen=True, slots=True)
class UploadReceipt:
    """What the agent is told: the content's sha256, size and magic-byte type ("" when unknown)."""

    sha256: str
    size: int
    filetype: str
    duplicate: bool

    def to_dict(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "size": self.size, "type": self.filetype or None,
                "duplicate": self.duplicate}


class UploadInbox:
    """The stored contents (`incoming/`) and the queue of upload records (`queue/`) under `directory`. One process
    at a time (the queue's lock, `SpoolLockedError`); `accept` is serialised within it."""

    def __init__(self, directory: Path | str, *, queue_bytes: int = DEFAULT_QUEUE_BYTES) -> None:
        self.directory = Path(directory)
        self.incoming = self.directory / "incoming"
        self.incoming.mkdir(mode=0o700, parents=True, exist_ok=True)
        for stale in self.incoming.glob(".*.tmp"):  # a write a crash interrupted
            with contextlib.suppress(OSError):
                stale.unlink()
        self._queue = Spool(self.directory / "queue", max_bytes=queue_bytes)
        self._accepting = threading.Lock()

    @property
    def pending_records(self) -> int:
        return self._queue.pending_items

    @property
    def pending_bytes(self) -> int:
        return self._queue.pending_bytes

    @property
    def max_bytes(self) -> int:
        return self._queue.max_bytes

    def sample_path(self, sha256: str) -> Path:
        if not _is_sha256(sha256):
            raise ValueError(f"not a sha256: {sha256[:80]!r}")
        return self.incoming / sha256

    def accept(self, data: bytes, uploader: Uploader) -> UploadReceipt:
        """Store `data` (unless stored already) and queue its record, durably. Raises `SpoolFullError` when the
        queue is full, `SpoolError` or `OSError` when a write fails; a content stored by this call is then removed
        again, so that the agent's retry is not taken for a duplicate."""
        sha256 = hashlib.sha256(data).hexdigest()
        path = self.sample_path(sha256)
        with self._accepting:
            duplicate = path.is_file()
            if not duplicate:
                write_atomically(path, data)
            else:
                with contextlib.suppress(OSError):  # uploaded again: kept as long as new (`expire`)
                    os.utime(path)
            try:
                self._queue.append([UploadRecord(uploader, sha256, len(data), duplicate).encode()])
            except BaseException:
                if not duplicate:
                    with contextlib.suppress(OSError):
                        path.unlink()
                raise
        return UploadReceipt(sha256, len(data), guess_filetype(data), duplicate)

    def expire(self, older_than_s: float) -> tuple[int, int]:
        """Delete the stored contents last uploaded before `older_than_s` (epoch seconds) that no pending record
        needs; (files, bytes) deleted. Serialised with `accept` (a content cannot go between its check and its
        record)."""
        with self._accepting:
            needed = set()
            for encoded in self._queue.peek(self._queue.pending_items):
                with contextlib.suppress(ValueError):
                    needed.add(UploadRecord.decode(encoded).sha256)
            files = size = 0
            for path in self.incoming.iterdir():
                if not _is_sha256(path.name) or path.name in needed:
                    continue
                try:
                    stat = path.stat()
                    if stat.st_mtime >= older_than_s:
                        continue
                    path.unlink()
                except OSError as exc:
                    log.warning("sample store: cannot expire %s: %s", path, exc.strerror or exc)
                    continue
                files += 1
                size += stat.st_size
        return files, size

    def peek(self, max_records: int) -> list[bytes]:
        return self._queue.peek(max_records)

    def commit(self, count: int) -> None:
        self._queue.commit(count)

    def item(self, encoded: bytes) -> Event | Rejected:
        """The event of one queued record (the stored content as its payload), or a dead letter saying why not."""
        try:
            record = UploadRecord.decode(encoded)
        except ValueError as exc:
            where = EventOrigin(path=str(self._queue.directory), format=FORMAT)
            return Rejected(f"unreadable upload record: {exc}", where, encoded.decode("utf-8", "replace"))
        source = record.source()
        where = EventOrigin(path=source.origin, format=FORMAT)
        raw = encoded.decode("utf-8", "replace")
        path = self.sample_path(record.sha256)
        try:
            data = path.read_bytes()
        except OSError as exc:
            return Rejected(f"stored sample {path} of upload {record.uploader.name!r} cannot be read: "
                            f"{exc.strerror or exc}", where, raw)
        digests = Digests.of(data)
        if digests.sha256 != record.sha256:
            return Rejected(f"stored sample {path} of upload {record.uploader.name!r} is damaged: its sha256 is "
                            f"{digests.sha256}", where, raw)
        return sample_event(data, source, digests)

    def close(self) -> None:
        self._queue.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"UploadInbox({str(self.directory)!r}, pending_records={self.pending_records})"


class UploadConsumer(SpoolConsumer):
    """Delivers the queued uploads to `sink` as events, in order, and commits them once the sink has taken them
    and `barrier()` (when given) returned; up to `records_per_commit` at a time (one content in memory at a
    time). Run `run()` as a task; it returns when `stop` is set, after committing what it delivered, and raises
    what the sink or the barrier raises (nothing is committed then: the uploads are delivered again)."""

    def __init__(self, inbox: UploadInbox, sink: SampleSink, *, barrier: Barrier | None = None,
                 records_per_commit: int = 8, poll_interval: float = 0.05) -> None:
        super().__init__(sink, per_commit=records_per_commit, poll_interval=poll_interval, barrier=barrier,
                         thread_name="socctl-upload-consumer")
        self.inbox = inbox

    @property
    def delivered(self) -> int:
        return self.delivered_entries

    def pending(self) -> int:
        return self.inbox.pending_records

    def peek(self, count: int) -> list[bytes]:
        return self.inbox.peek(count)

    def items(self, entry: bytes) -> list[Item]:
        return [self.inbox.item(entry)]

    def commit(self, count: int) -> None:
        self.inbox.commit(count)


def _is_sha256(text: str) -> bool:
    return len(text) == 64 and set(text) <= _HEX
