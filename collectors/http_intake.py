"""HTTP intake for agents: `POST /v1/events` takes NDJSON batches (or a JSON array, or one JSON object) and
answers 200 only once the batch is durably in the intake journal; `POST /v1/files` (with a samples directory)
takes one file for YARA and answers 201 only once it is stored and queued; `GET /healthz` says the intake is up.

    journal = IntakeJournal(state_dir / "http-intake")
    server = HttpIntakeServer(journal, [AgentToken("dc-winlogbeat", secret, organization="agency-a")])
    consumer = IntakeConsumer(journal, sink)          # sink: async (Event | Rejected) -> None
    server.on_journaled = consumer.wake
    await server.start(); task = asyncio.create_task(consumer.run(stop))

An asyncio HTTP/1.1 server without a framework (`collectors.http_wire` reads the requests), loopback by default.
Each request carries `Authorization: Bearer <token>` (`collectors.http_auth`); the token names the agent, whose
name and organization become hints on its events (`collectors.http_records`). The answer says how many records
became events (`accepted`) and how many dead letters (`rejected`, with line numbers and reasons): bad lines do not
refuse the batch, they are journaled with it and delivered as `Rejected`. Nothing accepted is lost, nothing is
dropped silently.

Files (`collectors.upload_queue`): the raw body is the file (`Content-Type: application/octet-stream` or none,
optionally `Content-Encoding: gzip`), `X-File-Name` the agent's path for it (required; UTF-8), `X-Host-Name` the
host it is on (optional). The answer is `201 {"sha256", "size", "type", "duplicate": false}`, or 200 with
`"duplicate": true` for a content stored already (still queued: every upload becomes an event). A body over
`max_file_bytes` (as sent or decompressed) is 413, nothing stored; a full upload queue or disk is 503.

Statuses: 401 without a known token, 413 for a body (as sent or decompressed) over `max_body` or a record over
`max_line`, 400 for a body with no JSON object in it, 411 without a body length, 415 for an unsupported content
type or coding, 404/405 off the routes, 503 (with Retry-After) when the journal is full: backpressure, the
agent retries later. Decompression, parsing and the fsync'd append run in one worker thread, off the event loop,
one batch at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, NamedTuple

import orjson

from collectors.http_auth import AgentToken, AgentTokens
from collectors.http_records import BatchSource, batch_items, split_records
from collectors.http_wire import (
    HttpRequestError,
    RequestHead,
    body_length,
    check_encoding,
    decode_body,
    encode_response,
    read_body,
    read_head,
    text_header,
)
from collectors.intake_journal import IntakeJournal, JournalBatch
from collectors.samples import DEFAULT_MAX_SAMPLE_BYTES
from collectors.upload_queue import Uploader, UploadInbox, UploadReceipt
from correlator.model import Event, Rejected
from correlator.store.spool import SpoolError, SpoolFullError

__all__ = ["AgentToken", "HttpIntakeMetrics", "HttpIntakeServer", "IntakeLimits", "MetricFamily"]

log = logging.getLogger(__name__)

EVENTS_PATH: Final = "/v1/events"
FILES_PATH: Final = "/v1/files"
UPLOADS_IN_FLIGHT: Final = 4  # uploads read and stored at a time (each held in memory while it is)
HEALTH_PATH: Final = "/healthz"
_MEDIA_TYPES: Final = frozenset({
    "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines",
    "application/jsonlines", "application/json", "application/x-json",
    "text/plain",  # NXLog om_http's default ContentType
})
_CHARSETS: Final = frozenset({"utf-8", "utf8", "us-ascii"})
_MAX_FILE_NAME: Final = 4096  # characters of X-File-Name
_NO_SPACE: Final = frozenset({errno.ENOSPC, errno.EDQUOT})
_MAX_ERRORS_SHOWN: Final = 20
_LINGER_SECONDS: Final = 2.0
_RETRY_AFTER_SECONDS: Final = 5


@dataclass(frozen=True, slots=True)
class IntakeLimits:
    max_body: int = 10 << 20  # bytes per request, as sent and once decompressed
    max_line: int = 1 << 20  # bytes per record
    max_head: int = 32 << 10  # request line and headers
    idle_timeout: float = 60.0  # seconds a kept-alive connection may wait for its next request
    request_timeout: float = 60.0  # seconds to receive a request's body

    def __post_init__(self) -> None:
        for name in ("max_body", "max_line", "max_head"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.idle_timeout <= 0 or self.request_timeout <= 0:
            raise ValueError("timeouts must be > 0")


@dataclass
class HttpIntakeMetrics:
    requests: int = 0
    batches: int = 0  # journaled
    records_accepted: int = 0  # became events
    records_rejected: int = 0  # journaled as dead letters
    bytes_received: int = 0  # request bodies as sent
    bytes_decoded: int = 0  # request bodies decompressed
    responses: Counter[int] = field(default_factory=Counter)  # by status code
    records_by_agent: Counter[str] = field(default_factory=Counter)
    connections: int = 0
    open_connections: int = 0
    files_accepted: int = 0  # stored and queued (201)
    files_duplicate: int = 0  # queued, content stored already (200)
    files_rejected: int = 0  # answered 4xx/5xx
    file_bytes_received: int = 0  # upload bodies as sent
    file_bytes_decoded: int = 0  # uploaded files, decompressed


class MetricFamily(NamedTuple):
    name: str  # without the socctl_ prefix
    kind: str  # counter | gauge
    help: str
    samples: list[tuple[dict[str, str], int]]


class _Reply(NamedTuple):
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()
    unread_body: bool = False  # the request's body was not read: the connection must close


def _json(value: Any) -> bytes:
    return orjson.dumps(value) + b"\n"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class HttpIntakeServer:
    """The intake's listener on `host:port` (port 0 picks a free one: `port` after `start`). `on_journaled` is
    called on the loop after each journaled batch (give it `IntakeConsumer.wake`).

    With `samples_dir`, `POST /v1/files` is on: `uploads` is the `UploadInbox` there (give it to an
    `UploadConsumer`, whose `wake` is `on_uploaded`; close it after the consumer stopped); files are limited to
    `max_file_bytes`. Without it `uploads` is None and `/v1/files` answers 404."""

    def __init__(self, journal: IntakeJournal, tokens: Sequence[AgentToken], *, host: str = "127.0.0.1",
                 port: int = 8088, limits: IntakeLimits | None = None, clock: Callable[[], int] = _now_ms,
                 on_journaled: Callable[[], None] | None = None, samples_dir: Path | None = None,
                 max_file_bytes: int = DEFAULT_MAX_SAMPLE_BYTES, on_uploaded: Callable[[], None] | None = None,
                 timezone: str | None = None) -> None:
        if max_file_bytes < 1:
            raise ValueError(f"max_file_bytes must be >= 1, got {max_file_bytes}")
        self.journal = journal
        self.host = host
        self.port = port
        self.timezone = timezone  # of shipped syslog lines' local times (None: UTC)
        self.limits = limits if limits is not None else IntakeLimits()
        self.clock = clock
        self.on_journaled = on_journaled
        self.metrics = HttpIntakeMetrics()
        self._tokens = AgentTokens(tokens)
        self.max_file_bytes = max_file_bytes
        self.on_uploaded = on_uploaded
        self.uploads = UploadInbox(samples_dir) if samples_dir is not None else None
        self._server: asyncio.Server | None = None
        self._worker: ThreadPoolExecutor | None = None
        self._upload_worker: ThreadPoolExecutor | None = None  # its own thread: a large file does not hold batches
        # Uploads in flight are held in memory (up to max_file_bytes each): at most this many are read at a time;
        # the others wait for a slot (their agents wait; nothing is refused for it).
        self._upload_slots = asyncio.Semaphore(UPLOADS_IN_FLIGHT)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._busy: set[asyncio.Task[Any]] = set()  # between a request's head and its response
        self._closing = False
        self._full_logged = -60.0

    async def start(self) -> None:
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="socctl-http-intake")
        if self.uploads is not None:
            self._upload_worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="socctl-http-uploads")
        self._server = await asyncio.start_server(self._connection, self.host, self.port,
                                                  limit=self.limits.max_head)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self, grace: float = 10.0) -> None:
        """Stop listening, let requests under way finish (up to `grace` seconds: an agent told 200 must have its
        batch journaled), then close every connection."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        for task in self._tasks - self._busy:
            task.cancel()
        if self._busy:
            await asyncio.wait(set(self._busy), timeout=grace)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        for worker in (self._worker, self._upload_worker):
            if worker is not None:
                worker.shutdown(wait=True)

    def metric_families(self) -> list[MetricFamily]:
        """The intake's figures for the Prometheus exposition (`correlator.live.metrics`)."""
        m = self.metrics
        errors = sorted((code, n) for code, n in m.responses.items() if code >= 400)
        families = [
            MetricFamily("http_intake_requests_total", "counter", "HTTP intake requests.", [({}, m.requests)]),
            MetricFamily("http_intake_records_total", "counter", "Records journaled, by outcome.",
                         [({"outcome": "accepted"}, m.records_accepted),
                          ({"outcome": "rejected"}, m.records_rejected)]),
            MetricFamily("http_intake_agent_records_total", "counter", "Records journaled, by agent token.",
                         [({"agent": name}, n) for name, n in sorted(m.records_by_agent.items())]
                         or [({"agent": "none"}, 0)]),
            MetricFamily("http_intake_bytes_total", "counter", "Request body bytes, as sent and decompressed.",
                         [({"form": "received"}, m.bytes_received), ({"form": "decoded"}, m.bytes_decoded)]),
            MetricFamily("http_intake_errors_total", "counter", "Requests answered 4xx/5xx, by status code.",
                         [({"code": str(code)}, n) for code, n in errors] or [({"code": "none"}, 0)]),
            MetricFamily("http_intake_journal_batches", "gauge", "Batches waiting in the intake journal.",
                         [({}, self.journal.pending_batches)]),
            MetricFamily("http_intake_journal_bytes", "gauge", "Bytes waiting in the intake journal.",
                         [({}, self.journal.pending_bytes)]),
            MetricFamily("http_intake_journal_capacity_bytes", "gauge", "Size limit of the intake journal.",
                         [({}, self.journal.max_bytes)]),
            MetricFamily("http_intake_open_connections", "gauge", "Open HTTP intake connections.",
                         [({}, m.open_connections)]),
        ]
        if self.uploads is not None:
            families += [
                MetricFamily("http_intake_files_total", "counter", "Files uploaded, by outcome.",
                             [({"outcome": "accepted"}, m.files_accepted),
                              ({"outcome": "duplicate"}, m.files_duplicate),
                              ({"outcome": "rejected"}, m.files_rejected)]),
                MetricFamily("http_intake_file_bytes_total", "counter", "Uploaded bytes, as sent and decompressed.",
                             [({"form": "received"}, m.file_bytes_received),
                              ({"form": "decoded"}, m.file_bytes_decoded)]),
                MetricFamily("http_intake_upload_queue_records", "gauge", "Uploads waiting to become events.",
                             [({}, self.uploads.pending_records)]),
            ]
        return families

    # -- connections

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        peername = writer.get_extra_info("peername")
        peer = str(peername[0]) if peername else "unknown"
        metrics = self.metrics
        metrics.connections += 1
        metrics.open_connections += 1
        limits = self.limits
        try:
            while not self._closing:
                try:
                    async with asyncio.timeout(limits.idle_timeout):
                        head = await read_head(reader, max_bytes=limits.max_head)
                except TimeoutError:
                    break
                except HttpRequestError as exc:
                    await self._send(writer, self._error(exc), keep_alive=False)
                    await _linger(reader, writer)
                    break
                if head is None:
                    break
                self._busy.add(task)
                try:
                    reply = await self._handle(head, reader, writer, peer)
                finally:
                    self._busy.discard(task)
                keep_alive = head.keep_alive and not reply.unread_body and not self._closing
                await self._send(writer, reply, keep_alive=keep_alive)
                if reply.unread_body:
                    await _linger(reader, writer)
                if not keep_alive:
                    break
        except (ConnectionError, TimeoutError) as exc:
            log.info("HTTP intake connection from %s ended: %s", peer, exc or type(exc).__name__)
        finally:
            metrics.open_connections -= 1
            self._tasks.discard(task)
            writer.close()

    async def _send(self, writer: asyncio.StreamWriter, reply: _Reply, *, keep_alive: bool) -> None:
        self.metrics.responses[reply.status] += 1
        writer.write(encode_response(reply.status, reply.body, keep_alive=keep_alive, headers=reply.headers))
        await writer.drain()

    def _log_full(self, exc: SpoolFullError) -> None:
        now = time.monotonic()
        if now - self._full_logged >= 60:  # agents retry every few seconds: once a minute is enough
            self._full_logged = now
            log.warning("HTTP intake: %s; agents are told 503 (retry later) until the consumer catches up", exc)

    def _error(self, exc: HttpRequestError) -> _Reply:
        if exc.status >= 500 and exc.status != 503:
            log.warning("HTTP intake: %d %s", exc.status, exc.reason)
        return _Reply(exc.status, _json({"error": exc.reason}), exc.headers, unread_body=exc.close)

    async def _handle(self, head: RequestHead, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      peer: str) -> _Reply:
        self.metrics.requests += 1
        uploads = head.path == FILES_PATH and self.uploads is not None
        reply = await self._route(head, reader, writer, peer, uploads=uploads)
        if uploads and reply.status >= 400:
            self.metrics.files_rejected += 1
        return reply

    async def _route(self, head: RequestHead, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     peer: str, *, uploads: bool) -> _Reply:
        try:
            if head.path == EVENTS_PATH:
                _allow(head, "POST")
                return await self._events(head, reader, writer, peer)
            if uploads:
                _allow(head, "POST")
                async with self._upload_slots:
                    return await self._files(head, reader, writer, peer)
            if head.path == HEALTH_PATH:
                _allow(head, "GET")
                return self._health()
            reason = ("file uploads are not enabled on this intake (no samples directory)" if head.path == FILES_PATH
                      else f"no such endpoint {head.path[:100]!r}: POST {EVENTS_PATH} or GET {HEALTH_PATH}")
            return self._error(HttpRequestError(404, reason, close=True))
        except HttpRequestError as exc:
            return self._error(exc)
        except Exception:
            log.exception("HTTP intake: %s %s from %s failed", head.method, head.path[:100], peer)
            what = "file not stored" if uploads else "batch not journaled"
            return _Reply(500, _json({"error": f"internal error: {what}"}), unread_body=True)

    def _health(self) -> _Reply:
        journal = self.journal
        doc: dict[str, Any] = {"status": "ok", "journal": {"batches": journal.pending_batches,
                                                           "bytes": journal.pending_bytes,
                                                           "capacity_bytes": journal.max_bytes}}
        if self.uploads is not None:
            doc["uploads"] = {"records": self.uploads.pending_records, "bytes": self.uploads.pending_bytes,
                              "capacity_bytes": self.uploads.max_bytes}
        return _Reply(200, _json(doc))

    async def _events(self, head: RequestHead, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      peer: str) -> _Reply:
        agent = self._tokens.identify(head.header("authorization"))
        _check_content_type(head.header("content-type"))
        coding = head.header("content-encoding")
        check_encoding(coding)
        body = await self._body(head, reader, writer, self.limits.max_body)
        self.metrics.bytes_received += len(body)
        source = BatchSource(peer, agent.name, agent.organization, self.clock(), self.timezone)
        assert self._worker is not None
        loop = asyncio.get_running_loop()
        counts = await loop.run_in_executor(self._worker, self._journal_batch, body, coding, source)
        accepted, rejected, errors = counts
        metrics = self.metrics
        metrics.batches += 1
        metrics.records_accepted += accepted
        metrics.records_rejected += rejected
        metrics.records_by_agent[agent.name] += accepted + rejected
        if self.on_journaled is not None:
            self.on_journaled()
        return _Reply(200, _json({"accepted": accepted, "rejected": rejected, "errors": errors}))

    async def _body(self, head: RequestHead, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    max_bytes: int) -> bytes:
        """The request's body as sent, at most `max_bytes` (413), within the request timeout (408)."""
        limits = self.limits
        length = body_length(head, max_bytes=max_bytes)
        if length == 0 and head.header("content-length") is None:
            raise HttpRequestError(411, "a body with Content-Length or chunked Transfer-Encoding is required",
                                   close=True)
        if head.expects_continue:
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await writer.drain()
        try:
            async with asyncio.timeout(limits.request_timeout):
                return await read_body(reader, length, max_bytes=max_bytes)
        except TimeoutError:
            raise HttpRequestError(408, f"body not received within {limits.request_timeout:g} s",
                                   close=True) from None

    async def _files(self, head: RequestHead, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     peer: str) -> _Reply:
        agent = self._tokens.identify(head.header("authorization"))
        _check_file_type(head.header("content-type"))
        coding = head.header("content-encoding")
        check_encoding(coding)
        name = text_header(head, "X-File-Name", max_chars=_MAX_FILE_NAME)
        if name is None:
            raise HttpRequestError(400, "X-File-Name header is required: the file's path on the agent's host",
                                   close=True)
        host = text_header(head, "X-Host-Name", max_chars=_MAX_FILE_NAME)
        body = await self._body(head, reader, writer, self.max_file_bytes)
        self.metrics.file_bytes_received += len(body)
        uploader = Uploader(name, host, agent.name, agent.organization, peer, self.clock())
        assert self._upload_worker is not None
        loop = asyncio.get_running_loop()
        receipt = await loop.run_in_executor(self._upload_worker, self._store_upload, body, coding, uploader)
        metrics = self.metrics
        metrics.file_bytes_decoded += receipt.size
        if receipt.duplicate:
            metrics.files_duplicate += 1
        else:
            metrics.files_accepted += 1
        if self.on_uploaded is not None:
            self.on_uploaded()
        return _Reply(200 if receipt.duplicate else 201, _json(receipt.to_dict()))

    def _store_upload(self, body: bytes, coding: str | None, uploader: Uploader) -> UploadReceipt:
        """In the upload thread: decompress, store the file and queue its record, durably."""
        assert self.uploads is not None
        data = decode_body(body, coding, max_bytes=self.max_file_bytes)
        try:
            return self.uploads.accept(data, uploader)
        except SpoolFullError as exc:
            self._log_full(exc)
            raise HttpRequestError(503, "upload queue is full: retry later",
                                   headers=(("Retry-After", str(_RETRY_AFTER_SECONDS)),)) from None
        except OSError as exc:
            if exc.errno in _NO_SPACE:
                log.warning("HTTP intake: no space to store an upload in %s: %s", self.uploads.incoming, exc)
                raise HttpRequestError(503, "no space left for files: retry later",
                                       headers=(("Retry-After", str(_RETRY_AFTER_SECONDS)),)) from None
            raise HttpRequestError(500, f"file not stored: {exc.strerror or exc}") from None
        except SpoolError as exc:
            raise HttpRequestError(500, f"file not queued: {exc}") from None

    def _journal_batch(self, body: bytes, coding: str | None,
                       source: BatchSource) -> tuple[int, int, list[dict[str, Any]]]:
        """In the worker thread: decompress, judge every record, append the batch durably. Returns the counts
        and the first rejections."""
        limits = self.limits
        decoded = decode_body(body, coding, max_bytes=limits.max_body)
        self.metrics.bytes_decoded += len(decoded)
        layout, records = split_records(decoded)
        unit = "element" if layout == "array" else "line"
        for record in records:
            if len(record.raw) > limits.max_line:
                raise HttpRequestError(413, f"{unit} {record.offset} is {len(record.raw)} bytes, over the limit "
                                            f"of {limits.max_line} bytes per record")
        if not records:
            raise HttpRequestError(400, "empty body: no records")
        items = batch_items(decoded, source)
        if not any(isinstance(item, Event) or item.stage == "normalise" for item in items):
            first = items[0]
            assert isinstance(first, Rejected)
            raise HttpRequestError(400, f"body is not NDJSON (no JSON object in it): {first.reason}")
        try:
            self.journal.append(JournalBatch(source, decoded))
        except SpoolFullError as exc:
            self._log_full(exc)
            raise HttpRequestError(503, "intake journal is full: retry later",
                                   headers=(("Retry-After", str(_RETRY_AFTER_SECONDS)),)) from None
        except SpoolError as exc:
            raise HttpRequestError(500, f"batch not journaled: {exc}") from None
        rejections = [item for item in items if isinstance(item, Rejected)]
        errors = [{unit: item.origin.offset, "reason": item.reason} for item in rejections[:_MAX_ERRORS_SHOWN]]
        return len(items) - len(rejections), len(rejections), errors


def _allow(head: RequestHead, method: str) -> None:
    if head.method != method:
        raise HttpRequestError(405, f"{head.method} not allowed on {head.path}: use {method}", close=True,
                               headers=(("Allow", method),))


def _check_content_type(value: str | None) -> None:
    if value is None:
        return
    media, *parameters = (part.strip().lower() for part in value.split(";"))
    if media not in _MEDIA_TYPES:
        raise HttpRequestError(415, f"unsupported Content-Type {value[:80]!r} (expected application/x-ndjson or "
                                    f"application/json)", close=True)
    for parameter in parameters:
        name, _, charset = parameter.partition("=")
        if name.strip() == "charset" and charset.strip().strip('"') not in _CHARSETS:
            raise HttpRequestError(415, f"unsupported charset in {value[:80]!r} (expected utf-8)", close=True)


def _check_file_type(value: str | None) -> None:
    if value is not None and value.split(";", 1)[0].strip().lower() != "application/octet-stream":
        raise HttpRequestError(415, f"unsupported Content-Type {value[:80]!r} for a file (expected "
                                    f"application/octet-stream)", close=True)


async def _linger(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """After an answer sent before the request's body was read: stop writing, then read and discard what the
    client still sends for a moment, so that closing does not reset the connection before it reads the answer."""
    with contextlib.suppress(OSError, RuntimeError):
        if writer.can_write_eof():
            writer.write_eof()
    deadline = asyncio.get_running_loop().time() + _LINGER_SECONDS
    with contextlib.suppress(OSError, TimeoutError, ConnectionError):
        async with asyncio.timeout_at(deadline):
            while await reader.read(1 << 16):
                pass

