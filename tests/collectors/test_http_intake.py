"""The HTTP agent intake over loopback with real clients (`http.client`, raw sockets): authentication, size limits,
gzip and chunked bodies, keep-alive, dead letters with line numbers, each agent's flavour, the 200 only after the
fsync, a full journal (503) and the metrics.

The server and its consumer run on an event loop in a background thread; the test thread is the agent."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import http.client
import os
import socket
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import orjson
import pytest

from collectors.http_intake import AgentToken, HttpIntakeServer, IntakeLimits
from collectors.http_records import BatchSource
from collectors.intake_journal import IntakeConsumer, IntakeJournal, JournalBatch
from correlator.model import Event, Rejected, event_id_for
from tests.collectors.test_http_intake_units import (
    ELASTIC_AGENT_SYSMON,
    FLUENT_BIT_KUBERNETES,
    FLUENT_BIT_SYSLOG,
    NXLOG_4625,
    WINLOGBEAT_4624,
    ndjson,
)

T = TypeVar("T")

TOKEN = "tok-dc-winlogbeat-0123456789"
OTHER_TOKEN = "tok-fluent-bit-abcdefghijkl"
TOKENS = [AgentToken("dc-winlogbeat", TOKEN, organization="agency-a"), AgentToken("fluent-bit", OTHER_TOKEN)]
RECEIVED_MS = 1_709_290_000_000
LIMITS = IntakeLimits(max_body=64 << 10, max_line=8 << 10)


class Reply(NamedTuple):
    status: int
    headers: http.client.HTTPMessage
    body: Any


class Intake:
    """A server with its journal in `directory`, and (`consume`) a consumer collecting what it delivers."""

    def __init__(self, directory: Path, *, limits: IntakeLimits = LIMITS, journal_bytes: int = 1 << 20,
                 consume: bool = True) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.journal = IntakeJournal(directory, max_bytes=journal_bytes)
        self.delivered: list[Event | Rejected] = []
        self.server = HttpIntakeServer(self.journal, TOKENS, port=0, limits=limits, clock=lambda: RECEIVED_MS)
        self.run(self.server.start())
        self._stop: asyncio.Event | None = None
        self._consumer: Future[None] | None = None
        if consume:
            self.start_consumer()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def start_consumer(self) -> None:
        async def sink(item: Event | Rejected) -> None:
            self.delivered.append(item)

        async def start() -> None:
            self._stop = asyncio.Event()
            consumer = IntakeConsumer(self.journal, sink)
            self.server.on_journaled = consumer.wake
            self._consumer = asyncio.run_coroutine_threadsafe(consumer.run(self._stop), self.loop)

        self.run(start())

    def wait_delivered(self, count: int, timeout: float = 10) -> list[Event | Rejected]:
        deadline = time.monotonic() + timeout
        while len(self.delivered) < count:
            assert time.monotonic() < deadline, f"{len(self.delivered)} of {count} items delivered"
            time.sleep(0.01)
        return self.delivered

    def connection(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)

    def post(self, body: bytes | Iterable[bytes], *, token: str | None = TOKEN, headers: dict[str, str] | None = None,
             connection: http.client.HTTPConnection | None = None, method: str = "POST",
             path: str = "/v1/events") -> Reply:
        sent = {"Content-Type": "application/x-ndjson"}
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        sent.update(headers or {})
        own = connection is None
        connection = connection or self.connection()
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            data = response.read()
            return Reply(response.status, response.headers, orjson.loads(data) if data else None)
        finally:
            if own:
                connection.close()

    def close(self) -> None:
        if self._consumer is not None and self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
            self._consumer.result(10)
        self.run(self.server.stop())
        self.journal.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@pytest.fixture
def intake_factory(tmp_path: Path) -> Iterator[Callable[..., Intake]]:
    made: list[Intake] = []

    def make(**options: Any) -> Intake:
        made.append(Intake(tmp_path / f"journal{len(made)}", **options))
        return made[-1]

    yield make
    for intake in made:
        intake.close()


@pytest.fixture
def intake(intake_factory: Callable[..., Intake]) -> Intake:
    return intake_factory()


def _raw_exchange(port: int, request: bytes, *, then: bytes | None = None) -> bytes:
    """Send `request` on a raw socket (and, after the first answer, `then`); everything the server sends back."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        answer = sock.recv(65536)
        if then is not None:
            sock.sendall(then)
        sock.shutdown(socket.SHUT_WR)
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


# -- routes and authentication -------------------------------------------------------------------------------------


def test_healthz_reports_the_journal(intake: Intake) -> None:
    reply = intake.post(b"", token=None, method="GET", path="/healthz")
    assert reply.status == 200
    assert reply.body == {"status": "ok", "journal": {"batches": 0, "bytes": 0, "capacity_bytes": 1 << 20}}


@pytest.mark.parametrize(("method", "path", "status", "allow"), [
    ("GET", "/v1/events", 405, "POST"),
    ("POST", "/healthz", 405, "GET"),
    ("POST", "/v1/event", 404, None),
    ("POST", "/", 404, None),
], ids=["get-events", "post-healthz", "typo", "root"])
def test_wrong_routes_and_methods(intake: Intake, method: str, path: str, status: int, allow: str | None) -> None:
    reply = intake.post(b"{}", method=method, path=path)
    assert reply.status == status
    assert reply.headers.get("Allow") == allow
    assert reply.body["error"]


@pytest.mark.parametrize(("authorization", "error", "message"), [
    (None, "invalid_request", "missing bearer token"),
    ("Bearer not-a-known-token-at-all", "invalid_token", "unknown token"),
    (f"Bearer {TOKEN[:-1]}", "invalid_token", "unknown token"),
    (f"Basic {TOKEN}", "invalid_request", "expected Authorization: Bearer <token>"),
    ("Bearer ", "invalid_request", "expected Authorization: Bearer <token>"),
], ids=["none", "unknown", "prefix-of-a-token", "basic", "empty"])
def test_requests_without_a_known_token_are_refused(intake: Intake, authorization: str | None, error: str,
                                                    message: str) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    reply = intake.post(ndjson(WINLOGBEAT_4624), token=None, headers=headers)
    assert reply.status == 401
    assert reply.body == {"error": message}
    assert reply.headers["WWW-Authenticate"] == f'Bearer realm="socctl", error="{error}"'
    assert intake.journal.pending_batches == 0
    assert intake.server.metrics.responses[401] == 1


def test_each_token_names_its_agent(intake: Intake) -> None:
    assert intake.post(ndjson({"message": "from fluent bit"}), token=OTHER_TOKEN).status == 200
    assert intake.post(ndjson({"message": "from winlogbeat's token"})).status == 200
    first, second = intake.wait_delivered(2)
    assert isinstance(first, Event)
    assert isinstance(second, Event)
    assert (first.fields["agent.name"], first.fields.get("organization.id")) == ("fluent-bit", None)
    assert (second.fields["agent.name"], second.fields["organization.id"]) == ("dc-winlogbeat", "agency-a")
    assert intake.server.metrics.records_by_agent == {"fluent-bit": 1, "dc-winlogbeat": 1}


# -- content types and bodies --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("headers", "message"), [
    ({"Content-Type": "application/x-www-form-urlencoded"},
     "unsupported Content-Type 'application/x-www-form-urlencoded' (expected application/x-ndjson or "
     "application/json)"),
    ({"Content-Type": "application/json; charset=utf-16"},
     "unsupported charset in 'application/json; charset=utf-16' (expected utf-8)"),
    ({"Content-Encoding": "br"}, "unsupported Content-Encoding 'br' (expected gzip, deflate or identity)"),
], ids=["form", "utf-16", "brotli"])
def test_unsupported_content_types_and_codings_are_415(intake: Intake, headers: dict[str, str],
                                                       message: str) -> None:
    reply = intake.post(ndjson(WINLOGBEAT_4624), headers=headers)
    assert (reply.status, reply.body) == (415, {"error": message})


@pytest.mark.parametrize(("body", "message"), [
    (b"<Event><System/></Event>", "body is not NDJSON (no JSON object in it): invalid JSON on line 1, column 1: "
                                  "unexpected character, expected a JSON value"),
    (b"1\n2\n", "body is not NDJSON (no JSON object in it): line 1: expected a JSON object, got a number"),
    (b"\n \n", "empty body: no records"),
], ids=["xml", "numbers", "blank"])
def test_a_body_without_any_json_object_is_400_and_not_journaled(intake: Intake, body: bytes, message: str) -> None:
    reply = intake.post(body, headers={"Content-Type": "text/plain"})
    assert (reply.status, reply.body) == (400, {"error": message})
    assert intake.journal.pending_batches == 0


def test_a_post_without_a_body_length_is_411(intake: Intake) -> None:
    answer = _raw_exchange(intake.server.port, f"POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                                               f"{TOKEN}\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 411 Length Required\r\n")
    assert b"Connection: close" in answer


def test_a_request_head_over_the_limit_is_431(intake: Intake) -> None:
    answer = _raw_exchange(intake.server.port, b"POST /v1/events HTTP/1.1\r\nX-Padding: " + b"p" * LIMITS.max_head
                           + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert answer.endswith(b'{"error":"request head exceeds 32768 bytes"}\n')


def test_bad_lines_are_accepted_as_dead_letters_with_their_line_numbers(intake: Intake) -> None:
    body = ndjson(WINLOGBEAT_4624) + b'{"EventID": 4625, "Channel": \n' + b"\n" + ndjson(NXLOG_4625) + \
        b"[1, 2]\n" + orjson.dumps({"winlog": {"channel": "Security"}}) + b"\n"
    reply = intake.post(body)
    assert reply.status == 200
    assert reply.body == {"accepted": 2, "rejected": 3, "errors": [
        {"line": 2, "reason": "invalid JSON on line 2, column 29: unexpected end of data"},
        {"line": 5, "reason": "line 5: expected a JSON object, got an array"},
        {"line": 6, "reason": "winlog.event_id is missing"},
    ]}
    items = intake.wait_delivered(5)
    assert [type(item).__name__ for item in items] == ["Event", "Rejected", "Event", "Rejected", "Rejected"]
    assert [item.origin.offset for item in items] == [1, 2, 4, 5, 6]
    dead = [item for item in items if isinstance(item, Rejected)]
    assert [item.raw for item in dead] == ['{"EventID": 4625, "Channel":', "[1, 2]",
                                           '{"winlog":{"channel":"Security"}}']
    assert {item.origin.path for item in items} == {"http://127.0.0.1/v1/events"}
    metrics = intake.server.metrics
    assert (metrics.records_accepted, metrics.records_rejected, metrics.batches) == (2, 3, 1)


@pytest.mark.parametrize(("records", "as_array", "content_type", "fields"), [
    ([WINLOGBEAT_4624, ELASTIC_AGENT_SYSMON], False, "application/x-ndjson", [
        {"EventID": 4624, "user.name": "jdoe", "source.ip": "10.20.30.40", "agent.name": "DC01"},
        {"EventID": 1, "process.command_line": "powershell.exe -nop -w hidden -enc SQBFAFgA", "agent.name": "WS042"},
    ]),
    ([FLUENT_BIT_KUBERNETES, FLUENT_BIT_SYSLOG], True, "application/json", [
        {"message": "Accepted publickey for deploy from 10.0.0.7 port 52114 ssh2", "kubernetes.namespace_name": "ops",
         "agent.name": "dc-winlogbeat"},
        {"message": "Failed password for root from 203.0.113.9 port 4022 ssh2", "ident": "sshd"},
    ]),
    ([NXLOG_4625], False, "text/plain", [
        {"EventID": 4625, "Computer": "DC01.corp.example", "event.outcome": "failure", "user.name": "administrator"},
    ]),
], ids=["winlogbeat-and-elastic-agent", "fluent-bit-json-array", "nxlog-om-http"])
def test_each_agent_flavour_over_http(intake: Intake, records: list[dict[str, object]], as_array: bool,
                                      content_type: str, fields: list[dict[str, object]]) -> None:
    body = orjson.dumps(records) if as_array else ndjson(*records)
    reply = intake.post(body, headers={"Content-Type": content_type})
    assert reply.body == {"accepted": len(records), "rejected": 0, "errors": []}
    events = intake.wait_delivered(len(records))
    for event, record, expected in zip(events, records, fields, strict=True):
        assert isinstance(event, Event)
        assert event.id == event_id_for(orjson.dumps(record), event.timestamp_ms)
        assert {name: event.fields.get(name) for name in expected} == expected
        assert event.to_document()["organization"] == {"id": "agency-a"}
        assert event.origin.path == "http://127.0.0.1/v1/events"


# -- gzip, chunked, keep-alive -------------------------------------------------------------------------------------


def test_gzip_bodies_as_agents_send_them(intake: Intake) -> None:
    body = ndjson(*([FLUENT_BIT_KUBERNETES] * 50))
    packed = gzip.compress(body)
    reply = intake.post(packed, headers={"Content-Encoding": "gzip"})
    assert reply.body == {"accepted": 50, "rejected": 0, "errors": []}
    assert len(intake.wait_delivered(50)) == 50
    assert (intake.server.metrics.bytes_received, intake.server.metrics.bytes_decoded) == (len(packed), len(body))


def test_a_gzip_bomb_is_413_and_the_connection_carries_on(intake: Intake) -> None:
    bomb = gzip.compress(b"{}\n" + b" " * (LIMITS.max_body * 4), compresslevel=9)
    assert len(bomb) < LIMITS.max_body
    connection = intake.connection()
    reply = intake.post(bomb, headers={"Content-Encoding": "gzip"}, connection=connection)
    assert (reply.status, reply.body) == (413, {"error": f"decompressed body exceeds the limit of {LIMITS.max_body} "
                                                         f"bytes"})
    assert reply.headers["Connection"] == "keep-alive"
    assert intake.post(ndjson(WINLOGBEAT_4624), connection=connection).status == 200
    connection.close()
    assert intake.journal.pending_batches + len(intake.delivered) >= 1


def test_chunked_bodies(intake: Intake) -> None:
    lines = ndjson(WINLOGBEAT_4624, NXLOG_4625, FLUENT_BIT_KUBERNETES)
    chunks = [lines[i:i + 100] for i in range(0, len(lines), 100)]  # a line split across chunks
    reply = intake.post(iter(chunks))  # no Content-Length: http.client sends it chunked
    assert reply.body == {"accepted": 3, "rejected": 0, "errors": []}
    delivered = intake.wait_delivered(3)
    assert all(isinstance(item, Event) for item in delivered), delivered
    assert [item.id for item in delivered] == [
        event_id_for(orjson.dumps(record), item.timestamp_ms)
        for record, item in zip((WINLOGBEAT_4624, NXLOG_4625, FLUENT_BIT_KUBERNETES), delivered, strict=True)]


def test_chunked_gzip_with_expect_100_continue_on_a_raw_socket(intake: Intake) -> None:
    packed = gzip.compress(ndjson(NXLOG_4625))
    head = (f"POST /v1/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Encoding: gzip\r\n"
            f"Transfer-Encoding: chunked\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n").encode()
    body = b"".join(f"{len(part):x};ext=1\r\n".encode() + part + b"\r\n" for part in (packed[:10], packed[10:]))
    answer = _raw_exchange(intake.server.port, head, then=body + b"0\r\nX-Trailer: t\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")
    assert answer.endswith(b'{"accepted":1,"rejected":0,"errors":[]}\n')


def test_keep_alive_two_requests_on_one_connection(intake: Intake) -> None:
    connection = intake.connection()
    first = intake.post(ndjson(WINLOGBEAT_4624), connection=connection)
    sock = connection.sock
    second = intake.post(gzip.compress(ndjson(NXLOG_4625)), headers={"Content-Encoding": "gzip"},
                         connection=connection)
    assert connection.sock is sock  # not reconnected
    connection.close()
    assert (first.status, second.status) == (200, 200)
    assert first.headers["Connection"] == second.headers["Connection"] == "keep-alive"
    assert intake.server.metrics.connections == 1
    assert intake.server.metrics.requests == 2
    assert len(intake.wait_delivered(2)) == 2


# -- size limits ---------------------------------------------------------------------------------------------------


def test_a_request_over_the_size_limit_is_413(intake: Intake) -> None:
    record = orjson.dumps({"message": "x" * 1000}) + b"\n"
    body = record * (LIMITS.max_body // len(record) + 1)
    reply = intake.post(body)
    assert (reply.status, reply.body) == (413, {"error": f"body of {len(body)} bytes exceeds the limit of "
                                                         f"{LIMITS.max_body} bytes"})
    assert reply.headers["Connection"] == "close"
    chunked = intake.post(iter([body[:40_000], body[40_000:]]))
    assert (chunked.status, chunked.body) == (413, {"error": f"chunked body exceeds the limit of {LIMITS.max_body} "
                                                             f"bytes"})
    assert intake.server.metrics.responses[413] == 2
    assert intake.journal.pending_batches == 0


def test_a_record_over_the_line_limit_is_413(intake: Intake) -> None:
    long_line = orjson.dumps({"message": "y" * LIMITS.max_line})
    reply = intake.post(ndjson(WINLOGBEAT_4624) + long_line + b"\n")
    assert (reply.status, reply.body) == (413, {"error": f"line 2 is {len(long_line)} bytes, over the limit of "
                                                         f"{LIMITS.max_line} bytes per record"})
    assert intake.journal.pending_batches == 0


# -- durability and backpressure -----------------------------------------------------------------------------------


def test_the_200_comes_only_after_the_batch_is_fsynced(intake_factory: Callable[..., Intake],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    intake = intake_factory(consume=False)
    body = ndjson(WINLOGBEAT_4624)
    synced, release = threading.Event(), threading.Event()
    real_fsync = os.fsync

    def gated_fsync(fd: int) -> None:
        synced.set()
        assert release.wait(10)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", gated_fsync)
    segments = list(intake.journal.directory.glob("*.seg"))
    with ThreadPoolExecutor(1) as agent:
        answer = agent.submit(intake.post, body)
        assert synced.wait(10)  # the batch is written, its fsync under way
        time.sleep(0.2)
        assert not answer.done()  # ... and no answer yet
        assert body.rstrip(b"\n") in b"".join(path.read_bytes() for path in segments)
        release.set()
        reply = answer.result(10)
    assert reply.status == 200
    assert intake.journal.pending_batches == 1


def test_a_full_journal_is_503_until_the_consumer_catches_up(intake_factory: Callable[..., Intake]) -> None:
    body = ndjson(WINLOGBEAT_4624)
    batch_bytes = len(JournalBatch(BatchSource("127.0.0.1", "dc-winlogbeat", "agency-a", RECEIVED_MS), body).encode())
    intake = intake_factory(consume=False, journal_bytes=3 * batch_bytes + batch_bytes // 2)
    statuses = [intake.post(body).status for _ in range(5)]
    assert statuses == [200, 200, 200, 503, 503]
    refused = intake.post(body)
    assert refused.body == {"error": "intake journal is full: retry later"}
    assert refused.headers["Retry-After"] == "5"
    assert intake.journal.pending_batches == 3
    intake.start_consumer()
    intake.wait_delivered(3)
    deadline = time.monotonic() + 10
    while intake.journal.pending_batches:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert intake.post(body).status == 200
    assert len(intake.wait_delivered(4)) == 4
    assert intake.server.metrics.responses[503] == 3


def test_metrics(intake: Intake) -> None:
    intake.post(ndjson(WINLOGBEAT_4624) + b"not json\n")
    intake.post(b"{}", token=None)
    intake.post(b"{}", path="/nowhere")
    intake.wait_delivered(2)
    families = {family.name: family for family in intake.server.metric_families()}
    assert families["http_intake_requests_total"].samples == [({}, 3)]
    assert families["http_intake_records_total"].samples == [({"outcome": "accepted"}, 1),
                                                            ({"outcome": "rejected"}, 1)]
    assert families["http_intake_errors_total"].samples == [({"code": "401"}, 1), ({"code": "404"}, 1)]
    assert families["http_intake_agent_records_total"].samples == [({"agent": "dc-winlogbeat"}, 2)]
    received = families["http_intake_bytes_total"].samples[0]
    assert received == ({"form": "received"}, len(ndjson(WINLOGBEAT_4624)) + len(b"not json\n"))
    assert {name: families[name].kind for name in ("http_intake_journal_batches", "http_intake_journal_bytes")} == {
        "http_intake_journal_batches": "gauge", "http_intake_journal_bytes": "gauge"}


def test_stop_lets_a_request_under_way_finish(intake_factory: Callable[..., Intake],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    intake = intake_factory(consume=False)
    synced, release = threading.Event(), threading.Event()
    real_fsync = os.fsync

    def gated_fsync(fd: int) -> None:
        synced.set()
        assert release.wait(10)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", gated_fsync)
    with ThreadPoolExecutor(2) as pool:
        answer = pool.submit(intake.post, ndjson(NXLOG_4625))
        assert synced.wait(10)
        stopping = asyncio.run_coroutine_threadsafe(intake.server.stop(), intake.loop)
        time.sleep(0.1)
        release.set()
        reply = answer.result(10)
        stopping.result(10)
    assert (reply.status, reply.headers["Connection"]) == (200, "close")
    assert intake.journal.pending_batches == 1
    with contextlib.suppress(ConnectionError, OSError), socket.create_connection(("127.0.0.1", intake.server.port),
                                                                                 timeout=1):
        pytest.fail("the server still listens after stop")
