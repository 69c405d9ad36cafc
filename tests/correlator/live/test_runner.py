"""The runner in process, without network listeners: files replayed through the intake queue end as events,
dead letters, alerts and cases in the store, exactly like `socctl ingest` of the same files; state is saved at
the end and restored by the next runner."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from collectors.files import read_path
from collectors.tail_format import TailSpec
from correlator.live.app import build_runner
from correlator.live.batching import batch_size
from correlator.live.config import Listen, RunConfig
from correlator.live.runner import ANALYSIS_METRICS_EVERY_S, METRICS_COST_SHARE, Runner, metrics_interval
from correlator.store.config import open_store
from tests.conftest import REPO_ROOT

SAMPLES = REPO_ROOT / "samples"


def _config(tmp_path: Path) -> RunConfig:
    return RunConfig(store=f"sqlite:///{tmp_path / 'socctl.db'}", state_dir=tmp_path / "state",
                     syslog=Listen(udp=None, tcp=None), metrics=Listen(port=None), http=Listen(port=None),
                     batch=7, batch_max=7, batch_wait_ms=20, replay=(SAMPLES,))


def _serve_until_drained(runner: Runner, items: int, timeout: float = 60.0) -> None:
    """Serve until `items` items came in and the queue is empty; an AssertionError after `timeout` seconds."""
    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout

        async def watch() -> bool:
            while sum(runner.counters.events_in.values()) < items or runner.queue.qsize():
                if loop.time() > deadline:
                    stop.set()
                    return False
                await asyncio.sleep(0.02)
            stop.set()
            return True

        watcher = asyncio.create_task(watch())
        await runner.serve(stop)
        assert await watcher, f"{items} items expected in {timeout} s, came: {dict(runner.counters.events_in)}"

    asyncio.run(main())


def serve_and_send(runner: Runner, listener: str, send: Callable[[int], Awaitable[None]],
                   done: Callable[[], bool]) -> None:
    """Serve until `done()`, once `send(port)` has sent to the `listener` port (tcp, tls, ...) the runner opened."""
    async def main() -> None:
        stop = asyncio.Event()
        ports: dict[str, int] = {}
        serving = asyncio.create_task(runner.serve(stop, ready=ports.update))
        while listener not in ports:
            await asyncio.sleep(0.01)
        await send(ports[listener])
        while not done():
            await asyncio.sleep(0.02)
        stop.set()
        await serving

    asyncio.run(main())


def test_replayed_files_end_in_the_store_like_an_ingest(tmp_path: Path) -> None:
    config = _config(tmp_path)
    with open_store(config.store) as store:
        runner, warnings = build_runner(config, store)
        assert warnings == []
        assert runner.restore() is False
        _serve_until_drained(runner, 25)  # samples/: 23 events and 2 malformed lines
        counters = runner.counters
        assert counters.events_in["replay"] == 25
        assert counters.rejected["replay"] == 2
        assert counters.events_processed == 23
        assert counters.batches >= 4  # batches of at most 7
        assert store.count("events") == 23
        assert store.count("deadletter") == 2
        alerts = store.search("alerts", "", limit=100).hits
        assert {a["rule"]["title"] for a in alerts} >= {"Account Discovery Via Whoami /all",
                                                         "Local Account Created Via Net.EXE"}
        assert all("risk" in a for a in alerts)
        assert store.count("cases") == counters.cases_opened >= 1
        live_titles = sorted(a["rule"]["title"] for a in alerts)
    assert (config.state_dir / "analysis.state").is_file()
    ingested = tmp_path / "ingested.db"
    from typer.testing import CliRunner

    from correlator.cli import app

    result = CliRunner().invoke(app, ["ingest", str(SAMPLES), "--store", f"sqlite:///{ingested}", "--quiet",
                                      "--workers", "1", "--cache-dir", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    with open_store(f"sqlite:///{ingested}") as store:
        assert sorted(a["rule"]["title"] for a in store.search("alerts", "", limit=100).hits) == live_titles


def test_the_next_runner_restores_the_state(tmp_path: Path) -> None:
    config = _config(tmp_path)
    with open_store(config.store) as store:
        first, _ = build_runner(config, store)
        _serve_until_drained(first, 25)
    with open_store(config.store) as store:
        second, _ = build_runner(config, store)
        assert second.restore() is True


def test_a_tailed_file_is_followed_across_a_restart_without_loss_or_repeat(tmp_path: Path) -> None:
    log = tmp_path / "auth.log"
    line = "Nov 20 01:00:{:02d} web01 sshd[{}]: Failed password for root from 198.51.100.23 port {} ssh2\n"
    log.write_text("".join(line.format(i, 100 + i, 40_000 + i) for i in range(3)), encoding="utf-8")
    config = RunConfig(store=f"sqlite:///{tmp_path / 'socctl.db'}", state_dir=tmp_path / "state",
                       syslog=Listen(udp=None, tcp=None), metrics=Listen(port=None), http=Listen(port=None),
                       batch_wait_ms=20, tail=(TailSpec(str(log)),), tail_poll_ms=20)
    with open_store(config.store) as store:
        first, _ = build_runner(config, store)
        _serve_until_drained(first, 3)
        assert first.counters.events_in["tail"] == 3
        with log.open("a", encoding="utf-8") as fh:  # written while socctl is down
            fh.write("".join(line.format(i, 100 + i, 40_000 + i) for i in range(3, 5)))
        second, _ = build_runner(config, store)
        _serve_until_drained(second, 2)
        assert second.counters.events_in["tail"] == 2  # only the new lines
        assert store.count("events") == 5
        assert store.count("events", "event.dataset:system.auth") == 5


def test_a_tailed_audit_log_holds_an_open_event_across_a_restart(tmp_path: Path) -> None:
    from tests.collectors.test_auditd import EXEC_LS, eoe, execve, syscall

    log = tmp_path / "audit.log"  # no format configured: recognised as an audit log
    log.write_text("".join(line + "\n" for line in [*EXEC_LS, syscall(4700, comm="cat", exe="/usr/bin/cat"),
                                                   execve(4700, '"cat"', '"/etc/shadow"')]), encoding="utf-8")
    config = RunConfig(store=f"sqlite:///{tmp_path / 'socctl.db'}", state_dir=tmp_path / "state",
                       syslog=Listen(udp=None, tcp=None), metrics=Listen(port=None), http=Listen(port=None),
                       batch_wait_ms=20, tail=(TailSpec(str(log)),), tail_poll_ms=20)
    with open_store(config.store) as store:
        first, _ = build_runner(config, store)
        _serve_until_drained(first, 1)  # the second event's EOE has not come: it is held, not lost
        assert store.count("events", "event.module:auditd") == 1
        with log.open("a", encoding="utf-8") as fh:
            fh.write(eoe(4700) + "\n")
        second, _ = build_runner(config, store)
        _serve_until_drained(second, 1, timeout=10)
        assert store.count("events", "event.module:auditd") == 2
        (shadow,) = store.search("events", 'process.name:cat', limit=5).hits
        assert shadow["process"]["args"] == ["cat", "/etc/shadow"]  # records read before the restart included


def test_a_file_dropped_into_a_watched_directory_is_read_once_across_a_restart(tmp_path: Path) -> None:
    import shutil

    from correlator.live.config import Watch

    drop = tmp_path / "drop"
    drop.mkdir()
    config = RunConfig(store=f"sqlite:///{tmp_path / 'socctl.db'}", state_dir=tmp_path / "state",
                       syslog=Listen(udp=None, tcp=None), metrics=Listen(port=None), http=Listen(port=None),
                       batch_wait_ms=20, tail_poll_ms=20, watch=(Watch(drop, "*.json"),))
    shutil.copy(SAMPLES / "windows" / "security_sample.json", drop / "dc01-security.json")
    (drop / "notes.txt").write_text("not matched by the pattern\n", encoding="utf-8")
    with open_store(config.store) as store:
        first, _ = build_runner(config, store)
        expected = sum(1 for _ in read_path(drop / "dc01-security.json"))
        _serve_until_drained(first, expected)
        assert first.counters.events_in["watch"] == expected > 0
        events = store.count("events")
        second, _ = build_runner(config, store)  # a restart: the file is known
        shutil.copy(SAMPLES / "windows" / "sysmon_sample.json", drop / "ws01-sysmon.json")
        more = sum(1 for _ in read_path(drop / "ws01-sysmon.json"))
        _serve_until_drained(second, more)
        assert second.counters.events_in["watch"] == more  # only the new file
        assert store.count("events") > events


def test_syslog_over_tls_with_a_configured_certificate(tmp_path: Path) -> None:
    import ssl
    import subprocess

    from correlator.live.config import TlsFiles
    from tests.conftest import require_tool

    require_tool("openssl", "openssl")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    config = RunConfig(store=f"sqlite:///{tmp_path / 'socctl.db'}", state_dir=tmp_path / "state",
                       syslog=Listen(udp=None, tcp=None, tls=0, tls_files=TlsFiles(cert, key)),
                       metrics=Listen(port=None), http=Listen(port=None), batch_wait_ms=20)
    message = b"<38>1 2026-11-20T01:02:03Z web01 sshd 77 - - Accepted publickey for deploy from 10.0.0.7 port 2 ssh2"
    with open_store(config.store) as store:
        runner, _ = build_runner(config, store)

        async def send(port: int) -> None:
            client = ssl.create_default_context(cafile=str(cert))
            _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
            writer.write(f"{len(message)} ".encode() + message)
            await writer.drain()
            writer.close()

        serve_and_send(runner, "tls", send, lambda: runner.counters.events_processed >= 1)
        assert runner.counters.events_in["syslog_tls"] == 1
        [event] = store.search("events", "", limit=5).hits
        assert (event["host"]["name"], event["user"]["name"]) == ("web01", "deploy")


@pytest.mark.parametrize("workers", [0, 2], ids=["in-thread", "2-workers"])
def test_syslog_local_times_are_placed_by_the_configured_timezone(tmp_path: Path, workers: int) -> None:
    config = RunConfig(store=f"sqlite:///{tmp_path / 'socctl.db'}", state_dir=tmp_path / "state",
                       syslog=Listen(udp=None, tcp=0), metrics=Listen(port=None), http=Listen(port=None),
                       batch_wait_ms=20, timezone="Asia/Ho_Chi_Minh", workers=workers)
    message = b"<38>Nov 20 10:00:00 web01 sshd[77]: Accepted publickey for deploy from 10.0.0.7 port 2 ssh2"
    with open_store(config.store) as store:
        runner, _ = build_runner(config, store)

        async def send(port: int) -> None:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(message + b"\n")
            await writer.drain()
            writer.close()

        serve_and_send(runner, "tcp", send, lambda: runner.counters.events_processed >= 1)
        [event] = store.search("events", "", limit=5).hits
        assert event["@timestamp"].endswith("T03:00:00.000Z")  # 10:00 in UTC+7


def test_the_engine_expires_stored_uploads_at_start(tmp_path: Path) -> None:
    import hashlib
    import os

    from correlator.live.config import Uploads

    incoming = tmp_path / "state" / "samples" / "incoming"
    incoming.mkdir(parents=True)
    stored = {name: incoming / hashlib.sha256(name.encode()).hexdigest() for name in ("old", "recent")}
    for path in stored.values():
        path.write_bytes(b"sample")
    two_days_ago = stored["old"].stat().st_mtime - 2 * 86_400
    os.utime(stored["old"], (two_days_ago, two_days_ago))
    config = RunConfig(store=f"sqlite:///{tmp_path / 'socctl.db'}", state_dir=tmp_path / "state",
                       syslog=Listen(udp=None, tcp=None), metrics=Listen(port=None), http=Listen(port=0),
                       batch_wait_ms=20, uploads=Uploads(keep_ms=86_400_000))
    with open_store(config.store) as store:
        runner, _ = build_runner(config, store)

        async def main() -> None:
            stop = asyncio.Event()
            serving = asyncio.create_task(runner.serve(stop))
            while runner.counters.samples_expired < 1:
                await asyncio.sleep(0.02)
            stop.set()
            await serving

        asyncio.run(asyncio.wait_for(main(), 30))
    assert not stored["old"].exists()
    assert stored["recent"].exists()


@pytest.mark.parametrize(("walk_s", "expected_s"), [(0.0, ANALYSIS_METRICS_EVERY_S), (0.001, ANALYSIS_METRICS_EVERY_S),
                                                    (0.04, 4.0), (0.5, 50.0)],
                         ids=["instant", "small-state", "large-state", "huge-state"])
def test_metrics_walks_take_a_bounded_share_of_the_pipeline(walk_s: float, expected_s: float) -> None:
    """The analysis metrics walk the correlation state: with a large state they are taken less often, so the
    walks stay within METRICS_COST_SHARE of the pipeline thread's time."""
    interval = metrics_interval(walk_s)
    assert interval == pytest.approx(expected_s)
    assert walk_s / interval <= METRICS_COST_SHARE + 1e-12


@pytest.mark.parametrize(("backlog", "expected"), [(0, 7), (7, 7), (12, 12), (20, 20), (5_000, 20)],
                         ids=["empty", "one-batch", "behind", "at-most", "far-behind"])
def test_batches_grow_with_the_backlog_up_to_the_largest(backlog: int, expected: int) -> None:
    assert batch_size(backlog, 7, 20) == expected


@pytest.mark.parametrize(("workers", "largest"), [(0, 7), (2, 7), (0, 20), (2, 20)],
                         ids=["in-thread", "2-workers", "in-thread-growing", "2-workers-growing"])
def test_the_frames_of_one_read_are_cut_into_batches_in_order(tmp_path: Path, workers: int, largest: int) -> None:
    config = RunConfig(store=f"sqlite:///{tmp_path / 'socctl.db'}", state_dir=tmp_path / "state",
                       syslog=Listen(udp=None, tcp=0), metrics=Listen(port=None), http=Listen(port=None),
                       batch=7, batch_max=largest, batch_wait_ms=20, workers=workers)
    messages = [f"<38>Nov 20 10:00:{i:02d} web01 sshd[77]: Accepted publickey for u{i} from 10.0.0.7 port 2 ssh2"
                .encode() for i in range(50)]
    with open_store(config.store) as store:
        runner, _ = build_runner(config, store)
        batches: list[list[bytes]] = []
        finish = runner.finish

        def recording(batch: list[Any], detected: Any, started: float) -> None:
            batches.append([item.data for _, item, _ in batch])
            finish(batch, detected, started)

        runner.finish = recording  # type: ignore[method-assign]

        async def send(port: int) -> None:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"".join(f"{len(m)} ".encode() + m for m in messages))  # one write: one or a few reads
            await writer.drain()
            writer.close()

        serve_and_send(runner, "tcp", send, lambda: runner.counters.events_processed >= 50)
        assert [data for batch in batches for data in batch] == messages
        assert max(len(batch) for batch in batches) == largest  # 50 waiting: the first batch is as large as allowed
        assert runner.counters.events_in["syslog_tcp"] == 50
        assert store.count("events", "") == 50
        # The garbage collector ran after each batch, not during them, and is back on once the engine stopped.
        assert runner.collector.collections + runner.collector.full_collections >= len(batches)
        assert gc.isenabled()


def test_cases_are_grouped_before_the_batch_takes_the_write_lock(tmp_path: Path) -> None:
    """The open cases are read (and alerts grouped into them) before `Store.batch` begins: SQLite's other
    writers (detection workers storing events) wait only for the writes."""
    from correlator.store.sqlite import SqliteStore

    reads: list[bool] = []

    class Watched(SqliteStore):
        def search(self, collection: str, *args: Any, **kwargs: Any) -> Any:
            if collection == "cases":
                reads.append(self._in_batch)
            return super().search(collection, *args, **kwargs)

    config = _config(tmp_path)
    with Watched(tmp_path / "socctl.db") as store:
        runner, _ = build_runner(config, store)
        _serve_until_drained(runner, 25)
        assert runner.counters.cases_opened >= 1
    assert reads
    assert not any(reads), f"{reads.count(True)} of {len(reads)} case reads inside a write batch"


@pytest.mark.parametrize("workers", [0, 2], ids=["in-thread", "2-workers"])
def test_two_identical_syslog_lines_are_two_events(tmp_path: Path, workers: int) -> None:
    """The same failure twice in one second from one host: both are stored (and both alert)."""
    config = RunConfig(store=f"sqlite:///{tmp_path / 'socctl.db'}", state_dir=tmp_path / "state",
                       syslog=Listen(udp=None, tcp=0), metrics=Listen(port=None), http=Listen(port=None),
                       batch_wait_ms=20, workers=workers)
    message = b"<38>Nov 20 10:00:00 web01 sshd[77]: Failed password for root from 198.51.100.23 port 2 ssh2"
    with open_store(config.store) as store:
        runner, _ = build_runner(config, store)

        async def send(port: int) -> None:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(message + b"\n" + message + b"\n")
            await writer.drain()
            writer.close()

        serve_and_send(runner, "tcp", send, lambda: runner.counters.events_processed >= 2)
        events = store.search("events", "", limit=5).hits
        assert len(events) == 2
        assert len({event["event"]["id"] for event in events}) == 2
        assert {event["event"]["original"] for event in events} == {message.decode()}
