"""HTTP intake for agents: `POST /v1/events` takes NDJSON batches (or a JSON array, or one JSON object) and
answers 200 only once the batch is durably in the intake journal; `GET /healthz` says the intake is up.

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

Statuses: 401 without a known token, 413 for a body (as sent or decompressed) over `max_body` or a record over
`max_line`, 400 for a body with no JSON object in it, 411 without a body length, 415 for an unsupported content
type or coding, 404/405 off the two routes, 503 (with Retry-After) when the journal is full: backpressure, the
agent retries later. Decompression, parsing and the fsync'd append run in one worker thread, off the event loop,
one batch at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
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
)
from collectors.intake_journal import IntakeJournal, JournalBatch
from correlator.model import Event, Rejected
from correlator.store.spool import SpoolError, SpoolFullError

__all__ = ["AgentToken", "HttpIntakeMetrics", "HttpIntakeServer", "IntakeLimits", "MetricFamily"]

log = logging.getLogger(__name__)

EVENTS_PATH: Final = "/v1/events"
HEALTH_PATH: Final = "/healthz"
_MEDIA_TYPES: Final = frozenset({
    "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines",
    "application/jsonlines", "application/json", "application/x-json",
    "text/plain",  # NXLog om_http's default ContentType
})
_CHARSETS: Final = frozenset({"utf-8", "utf8", "us-ascii"})
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
    called on the loop after each journaled batch (give it `IntakeConsumer.wake`)."""

    def __init__(self, journal: IntakeJournal, tokens: Sequence[AgentToken], *, host: str = "127.0.0.1",
                 port: int = 8088, limits: IntakeLimits | None = None, clock: Callable[[], int] = _now_ms,
                 on_journaled: Callable[[], None] | None = None) -> None:
        self.journal = journal
        self.host = host
        self.port = port
        self.limits = limits if limits is not None else IntakeLimits()
        self.clock = clock
        self.on_journaled = on_journaled
        self.metrics = HttpIntakeMetrics()
        self._tokens = AgentTokens(tokens)
        self._server: asyncio.Server | None = None
        self._worker: ThreadPoolExecutor | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._busy: set[asyncio.Task[Any]] = set()  # between a request's head and its response
        self._closing = False
        self._full_logged = -60.0

    async def start(self) -> None:
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="socctl-http-intake")
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
        if self._worker is not None:
            self._worker.shutdown(wait=True)

    def metric_families(self) -> list[MetricFamily]:
        """The intake's figures for the Prometheus exposition (`correlator.live.metrics`)."""
        m = self.metrics
        errors = sorted((code, n) for code, n in m.responses.items() if code >= 400)
        return [
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
        try:
            if head.path == EVENTS_PATH:
                _allow(head, "POST")
                return await self._events(head, reader, writer, peer)
            if head.path == HEALTH_PATH:
                _allow(head, "GET")
                return self._health()
            return self._error(HttpRequestError(
                404, f"no such endpoint {head.path[:100]!r}: POST {EVENTS_PATH} or GET {HEALTH_PATH}", close=True))
        except HttpRequestError as exc:
            return self._error(exc)
        except Exception:
            log.exception("HTTP intake: %s %s from %s failed", head.method, head.path[:100], peer)
            return _Reply(500, _json({"error": "internal error: batch not journaled"}), unread_body=True)

    def _health(self) -> _Reply:
        journal = self.journal
        return _Reply(200, _json({"status": "ok", "journal": {"batches": journal.pending_batches,
                                                              "bytes": journal.pending_bytes,
                                                              "capacity_bytes": journal.max_bytes}}))

    async def _events(self, head: RequestHead, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      peer: str) -> _Reply:
        limits = self.limits
        agent = self._tokens.identify(head.header("authorization"))
        _check_content_type(head.header("content-type"))
        coding = head.header("content-encoding")
        check_encoding(coding)
        length = body_length(head, max_bytes=limits.max_body)
        if length == 0 and head.header("content-length") is None:
            raise HttpRequestError(411, "a body with Content-Length or chunked Transfer-Encoding is required",
                                   close=True)
        if head.expects_continue:
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await writer.drain()
        try:
            async with asyncio.timeout(limits.request_timeout):
                body = await read_body(reader, length, max_bytes=limits.max_body)
        except TimeoutError:
            raise HttpRequestError(408, f"body not received within {limits.request_timeout:g} s",
                                   close=True) from None
        self.metrics.bytes_received += len(body)
        source = BatchSource(peer, agent.name, agent.organization, self.clock())
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

