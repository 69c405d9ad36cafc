"""kill -9: an intake process (a small script: server, journal, a slow consumer that writes what it delivers to a
file) is killed while agents post; restarted, it delivers every record it had answered 200 for."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson

from tests.conftest import REPO_ROOT

TOKEN = "tok-crash-test-0123456789"

SCRIPT = '''
import asyncio, json, sys

from collectors.http_intake import AgentToken, HttpIntakeServer
from collectors.intake_journal import IntakeConsumer, IntakeJournal

token, journal_dir, delivered_path, mode = sys.argv[1:5]


async def main() -> None:
    journal = IntakeJournal(journal_dir)
    delivered = open(delivered_path, "a", encoding="utf-8")

    async def sink(item) -> None:
        delivered.write(json.dumps(item.raw) + "\\n")
        delivered.flush()  # in the kernel: a kill -9 does not lose it
        if mode == "serve":
            await asyncio.sleep(0.02)  # a slow pipeline: batches wait in the journal

    consumer = IntakeConsumer(journal, sink, batches_per_commit=1)
    server = HttpIntakeServer(journal, [AgentToken("agent", token)], port=0, on_journaled=consumer.wake)
    await server.start()
    print(server.port, flush=True)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    if mode == "drain":
        while journal.pending_batches:
            await asyncio.sleep(0.01)
        stop.set()
        await task
        await server.stop()
        journal.close()
        print("drained", flush=True)
    else:
        await task


asyncio.run(main())
'''


def _start(script: Path, journal: Path, delivered: Path, mode: str) -> tuple[subprocess.Popen[str], int]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen([sys.executable, str(script), TOKEN, str(journal), str(delivered), mode],
                               cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.strip().isdigit(), f"the intake process did not start: {line!r}"
    return process, int(line)


def _batch(tag: str, size: int = 10) -> list[bytes]:
    lines = [orjson.dumps({"@timestamp": "2024-03-01T10:00:00Z", "batch": tag, "record": n,
                           "message": f"record {n} of batch {tag}"}) for n in range(size)]
    return [*lines, f"{{broken line of batch {tag}".encode()]  # a dead letter is acknowledged too


def _post(port: int, lines: list[bytes]) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("POST", "/v1/events", body=b"\n".join(lines) + b"\n",
                           headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-ndjson"})
        return connection.getresponse().status
    finally:
        connection.close()


def test_every_acknowledged_record_is_delivered_after_kill_9(tmp_path: Path) -> None:
    script = tmp_path / "intake_process.py"
    script.write_text(SCRIPT, encoding="utf-8")
    journal, delivered = tmp_path / "journal", tmp_path / "delivered.ndjson"
    process, port = _start(script, journal, delivered, "serve")
    acknowledged: list[bytes] = []
    try:
        for n in range(20):
            lines = _batch(str(n))
            assert _post(port, lines) == 200
            acknowledged.extend(lines)

        # Agents keep posting while the process is killed: what was answered 200 counts, the rest is retried.
        lock, stop = threading.Lock(), threading.Event()

        def agent(name: str) -> None:
            count = 0
            while not stop.is_set():
                lines = _batch(f"{name}-{count}")
                count += 1
                try:
                    status = _post(port, lines)
                except (ConnectionError, OSError, http.client.HTTPException):
                    return
                if status == 200:
                    with lock:
                        acknowledged.extend(lines)

        agents = [threading.Thread(target=agent, args=(f"agent{i}",)) for i in range(2)]
        for thread in agents:
            thread.start()
        time.sleep(0.3)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
        stop.set()
        for thread in agents:
            thread.join(10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        if process.stdout is not None:
            process.stdout.close()
    before_restart = delivered.read_text(encoding="utf-8").splitlines()
    assert len(before_restart) < len(acknowledged)  # the slow consumer left batches in the journal

    process, _ = _start(script, journal, delivered, "drain")
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "drained"
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        if process.stdout is not None:
            process.stdout.close()
    raws = {orjson.loads(line) for line in delivered.read_text(encoding="utf-8").splitlines()}
    missing = [line.decode() for line in acknowledged if line.decode() not in raws]
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged records lost, e.g. {missing[:3]}"
    assert len(acknowledged) > 20 * 11  # some of the concurrent posts were acknowledged before the kill
