"""Detection in worker processes (`workers: N`): the store ends with what detection in the pipeline thread gives
(events, dead letters, alerts, cases), syslog frames are parsed in the workers, a worker killed between batches
is replaced with nothing lost, a record that kills its worker or makes detection raise becomes a dead letter
while the rest of its batch is detected, and the worker pool itself: answers, a load that fails, stopping."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import pickle
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from collectors.syslog_server import SyslogFrame
from correlator.live import runner as runner_module
from correlator.live import workers as workers_module
from correlator.live.app import build_runner
from correlator.live.config import Listen, RunConfig, RunConfigError, parse_run_config
from correlator.live.detect import Detected, Intake, detect_batch
from correlator.live.metrics import render
from correlator.live.runner import Runner
from correlator.live.workers import DetectionWorkers, WorkerError, default_count, from_wire, to_wire
from correlator.model import Event, EventOrigin, Rejected
from correlator.pipeline import Detection
from correlator.store.base import Store
from correlator.store.config import open_store
from tests.conftest import REPO_ROOT
from tests.correlator.live.test_runner import _serve_until_drained, serve_and_send
from tests.correlator.live.test_runner_reload import IDS, WORKERS, _event, _rule_ids, _rules, _serve
from tests.correlator.live.test_runner_reload import _config as _marker_config

SAMPLES = REPO_ROOT / "samples"


def _replay_config(tmp_path: Path, workers: int) -> RunConfig:
    return RunConfig(store=f"sqlite:///{tmp_path / 'socctl.db'}", state_dir=tmp_path / "state",
                     syslog=Listen(udp=None, tcp=None), metrics=Listen(port=None), http=Listen(port=None),
                     batch=5, batch_wait_ms=20, replay=(SAMPLES,), workers=workers)


def _stored(store: Store) -> dict[str, object]:
    alerts = store.search("alerts", limit=500).hits
    return {
        "events": sorted(hit["event"]["id"] for hit in store.search("events", limit=500).hits),
        "deadletter": sorted(hit["reason"] for hit in store.search("deadletter", limit=50).hits),
        "alerts": sorted((a["rule"]["id"], a["event"]["id"], a["risk"]["score"]) for a in alerts),
        "cases": sorted((c["group_key"], len(c["alert_ids"])) for c in store.search("cases", limit=50).hits),
    }


def test_workers_store_what_the_pipeline_thread_stores(tmp_path: Path) -> None:
    results = {}
    for workers in (0, 2):
        config = _replay_config(tmp_path / f"w{workers}", workers)
        with open_store(config.store) as store:
            runner, warnings = build_runner(config, store)
            assert warnings == []
            assert (runner.workers is not None) == (workers > 0)
            _serve_until_drained(runner, 25)
            assert runner.counters.events_out["replay"] == 23
            assert runner.counters.rejected["replay"] == 2
            results[workers] = _stored(store)
    assert len(results[0]["events"]) == 23  # type: ignore[arg-type]
    assert results[0]["alerts"]
    assert results[2] == results[0]


def test_syslog_frames_are_parsed_in_the_workers(tmp_path: Path) -> None:
    config = dataclasses.replace(_replay_config(tmp_path, 1), replay=(), syslog=Listen(tcp=0, udp=None))
    lines = [b"<38>Nov 24 08:00:01 web01 sshd[100]: Failed password for root from 203.0.113.7 port 4000 ssh2",
             b"<38>Nov 24 08:00:02 web01 sshd[101]: Accepted password for alice from 10.0.0.5 port 4001 ssh2",
             b"<not syslog at all"]
    with open_store(config.store) as store:
        runner, _ = build_runner(config, store)

        async def send(port: int) -> None:
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(b"".join(b"%d %s" % (len(line), line) for line in lines))

        counters = runner.counters
        serve_and_send(runner, "tcp", send,
                       lambda: counters.events_out["syslog_tcp"] + counters.rejected["syslog_tcp"] >= 3)
        assert "socctl_detection_workers 1\n" in render(runner)
        assert runner.counters.events_out["syslog_tcp"] == 2
        assert runner.counters.rejected["syslog_tcp"] == 1
        assert store.count("events", "event.dataset:system.auth") == 2
        (dead,) = store.search("deadletter").hits
        assert dead["reason"].startswith("not a syslog message")
    pids = runner.workers.pids  # type: ignore[union-attr]
    assert len(pids) == 1
    assert all(not Path(f"/proc/{pid}").exists() for pid in pids)  # stopped with the engine


def test_a_worker_killed_between_batches_is_replaced_and_nothing_is_lost(tmp_path: Path) -> None:
    config = _marker_config(tmp_path, _rules(tmp_path / "rules", "a", "b"), 1)
    with open_store(config.store) as store:
        runner, _ = build_runner(config, store)
        assert runner.workers is not None
        (pid,) = runner.workers.pids

        async def scenario(runner: Runner) -> None:
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            await runner.put("test", _event("b", 1))
            await runner.barrier()

        _serve(runner, scenario)
        assert runner.workers.replaced == 1
        assert runner.workers.pids != [pid]
        assert store.count("events") == 1
        assert _rule_ids(store) == [IDS["b"]]
        assert "socctl_detection_workers_replaced_total 1\n" in render(runner)


def _poisoned(kind: str) -> Callable[..., Detected]:
    """`detect_batch` that dies (kind "exit") or raises (kind "raise") on a batch holding a "poison" marker."""
    real = workers_module.detect_batch

    def detect(batch: Sequence[tuple[str, Intake]], detection: Detection, now_ms: int, *,
               store_events: bool) -> Detected:
        if any(isinstance(item, Event) and item.native.get("marker") == "poison" for _, item in batch):
            if kind == "exit":
                os._exit(3)
            raise ValueError("a normaliser bug")
        return real(batch, detection, now_ms, store_events=store_events)

    return detect


@pytest.mark.parametrize(("kind", "reason", "replaced"), [
    ("exit", "went away (exit code 3)", 5),  # the batch twice, then each half that holds it: 4, 2, 1
    ("raise", "ValueError: a normaliser bug", 0),
], ids=["worker-dies", "detection-raises"])
def test_a_record_detection_cannot_take_becomes_a_dead_letter_and_the_rest_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, reason: str, replaced: int,
) -> None:
    detection, _ = _detection(tmp_path)
    monkeypatch.setattr(workers_module, "detect_batch", _poisoned(kind))  # forked workers inherit it
    batch = [("test", _event("b", n)) for n in range(7)]
    batch.insert(5, ("test", _event("poison", 9)))
    workers = DetectionWorkers(1, detection, lambda _payload: detection)
    try:
        done = workers.detect(0, batch, 0, store_events=True)
        after = workers.detect(0, batch[:2], 0, store_events=False)  # the pool goes on
    finally:
        workers.close()
    assert workers.replaced == replaced
    assert (done.events["test"], done.rejected["test"], len(done.prepared)) == (7, 1, 7)
    assert sorted(a.event_id for a in done.result.alerts) == sorted(e.id for _, e in batch if e.native["marker"] == "b")
    (dead,) = done.result.rejected
    assert dead.stage == "detect"
    assert dead.reason.startswith("detection could not take this record: detection worker")
    assert reason in dead.reason
    assert dead.raw == batch[5][1].raw
    assert len(after.result.alerts) == 2
def _detection(tmp_path: Path) -> tuple[Detection, RunConfig]:
    config = _marker_config(tmp_path, _rules(tmp_path / "rules", "a", "b"))
    with open_store(config.store) as store:
        runner, _ = build_runner(config, store)
    return runner.components.detection, config


def test_a_worker_answers_what_detection_here_gives(tmp_path: Path) -> None:
    detection, _ = _detection(tmp_path)
    batch = [("test", _event("b", 1)), ("test", _event("a", 2)),
             ("syslog_udp", SyslogFrame(b"<13>Nov 24 08:00:00 host1 app: hello", "10.0.0.9", "udp", 0))]
    here = detect_batch(batch, detection, 5, store_events=True)
    workers = DetectionWorkers(1, detection, lambda _payload: detection)
    try:
        there = workers.detect(workers.assign(), batch, 5, store_events=True)
    finally:
        workers.close()
    assert there.prepared == here.prepared
    assert len(there.prepared) == 3
    assert [(a.rule.id, a.event_id) for a in there.result.alerts] == [(a.rule.id, a.event_id)
                                                                      for a in here.result.alerts]
    assert [(m.rule_id, m.event_id) for m in there.result.matches] == [(m.rule_id, m.event_id)
                                                                       for m in here.result.matches]
    assert (there.events, there.rejected, there.newest_ms) == (here.events, here.rejected, here.newest_ms)


def test_a_load_that_fails_keeps_what_the_worker_runs(tmp_path: Path) -> None:
    detection, _ = _detection(tmp_path)

    def loader(payload: object) -> Detection:
        raise ValueError(f"cannot load {payload}")

    workers = DetectionWorkers(2, detection, loader)
    try:
        assert workers.assign() == 0
        assert workers.assign() == 1
        assert workers.assign() == 0
        with pytest.raises(WorkerError, match="ValueError: cannot load rules-v2"):
            workers.load("rules-v2")
        done = workers.detect(1, [("test", _event("b", 1))], 0, store_events=False)
        assert [a.rule.title for a in done.result.alerts] == ["Marker b"]
        assert done.prepared == []
        pids = workers.pids
    finally:
        workers.close()
    assert len(pids) == 2
    assert all(not Path(f"/proc/{pid}").exists() for pid in pids)
    with pytest.raises(ValueError, match="at least 1"):
        DetectionWorkers(0, detection, loader)


@pytest.mark.parametrize(("text", "expected"), [
    ("workers: 3", 3), ("workers: 0", 0), ("workers: auto", default_count()), ("{}", default_count()),
], ids=["number", "zero", "auto", "default"])
def test_workers_setting(text: str, expected: int) -> None:
    assert parse_run_config(text).workers == expected


@pytest.mark.parametrize("text", ["workers: -1", "workers: many", "workers: 65", "workers: true"],
                         ids=["negative", "word", "too-many", "bool"])
def test_bad_workers_setting_names_the_key(text: str) -> None:
    with pytest.raises(RunConfigError, match="workers: expected auto or a whole number from 0 to 64"):
        parse_run_config(text)


def test_the_engine_process_exits_when_it_never_served(tmp_path: Path) -> None:
    """Workers ignore SIGTERM (multiprocessing's way to end daemon children at exit): they are stopped first."""
    script = (
        "import sys, dataclasses; from pathlib import Path\n"
        "from correlator.live.app import build_runner\n"
        "from correlator.store.config import open_store\n"
        "from tests.correlator.live.test_workers import _replay_config\n"
        "config = dataclasses.replace(_replay_config(Path(sys.argv[1]), 2), replay=())\n"
        "store = open_store(config.store).__enter__()\n"
        "runner, _ = build_runner(config, store)\n"
        "print(*runner.workers.pids)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    pids = [int(pid) for pid in done.stdout.split()]
    assert len(pids) == 2
    assert all(not Path(f"/proc/{pid}").exists() for pid in pids)


def test_workers_stop_when_a_listener_cannot_start(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = dataclasses.replace(_replay_config(tmp_path, 1), replay=(), syslog=Listen(tcp=port, udp=None))
        with open_store(config.store) as store:
            runner, _ = build_runner(config, store)
            pids = runner.workers.pids  # type: ignore[union-attr]
            with pytest.raises(OSError, match="address already in use"):
                asyncio.run(runner.serve(asyncio.Event()))
    assert all(not Path(f"/proc/{pid}").exists() for pid in pids)


@WORKERS
def test_the_engine_dead_letters_a_record_detection_cannot_take(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                workers: int) -> None:
    poisoned = _poisoned("raise")
    monkeypatch.setattr(runner_module, "detect_batch", poisoned)  # in the pipeline thread
    monkeypatch.setattr(workers_module, "detect_batch", poisoned)  # in workers forked from now on
    config = _marker_config(tmp_path, _rules(tmp_path / "rules", "a", "b"), workers)
    with open_store(config.store) as store:
        runner, _ = build_runner(config, store)

        async def scenario(runner: Runner) -> None:
            for n, marker in enumerate(["b", "b", "poison", "b"]):
                await runner.put("test", _event(marker, n))
            await runner.barrier()

        _serve(runner, scenario)
        assert store.count("events") == 3
        (dead,) = store.search("deadletter").hits
        assert dead["stage"] == "detect"
        assert "ValueError: a normaliser bug" in dead["reason"]
        assert _rule_ids(store) == [IDS["b"]] * 3
        assert runner.counters.rejected["test"] == 1


def test_auto_is_one_worker_per_core_and_none_on_one_core() -> None:
    assert [default_count(cpus) for cpus in (1, 2, 8)] == [0, 2, 8]


def test_workers_store_into_elasticsearch_what_they_store_into_sqlite(
    tmp_path: Path, elasticsearch_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The production store: prepared events go to Elasticsearch as they go to SQLite (same events, alerts and
    cases from the replayed samples)."""
    import uuid

    from correlator.store.elasticsearch import ElasticsearchStore

    prefix = f"socctl-test-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("SOCCTL_ES_PREFIX", prefix)
    monkeypatch.setenv("SOCCTL_SPOOL_DIR", str(tmp_path / "spool"))
    stored = {}
    try:
        for name, url in (("sqlite", f"sqlite:///{tmp_path / 'socctl.db'}"), ("elasticsearch", elasticsearch_url)):
            config = dataclasses.replace(_replay_config(tmp_path / name, 2), store=url)
            with open_store(config.store) as store:
                runner, _ = build_runner(config, store)
                _serve_until_drained(runner, 25)
                stored[name] = _stored(store)
    finally:
        ElasticsearchStore(elasticsearch_url, prefix=prefix).drop_all()
    assert len(stored["sqlite"]["events"]) == 23  # type: ignore[arg-type]
    assert stored["elasticsearch"] == stored["sqlite"]


def test_a_batch_crosses_to_a_worker_as_plain_tuples_and_comes_back_as_queued() -> None:
    rejected = Rejected("oversized", EventOrigin(path="syslog+tcp://10.0.0.9", format="syslog"), raw="x" * 10)
    items: list[tuple[str, Intake]] = [
        ("syslog_tcp", SyslogFrame(b"<38>Nov 24 00:00:00 h sshd[1]: x", "10.0.0.9", "tcp", 1_700_000_000_000)),
        ("syslog_udp", SyslogFrame(b"<38>x", "10.0.0.8", "udp", 1, "oversized", "Asia/Ho_Chi_Minh", 3)),
        ("http", _event("m", 1)),
        ("syslog_tcp", rejected),
    ]
    wire = to_wire(items)
    assert [type(item) for _, item in wire] == [tuple, tuple, Event, Rejected]
    assert b"SyslogFrame" not in pickle.dumps(wire, protocol=pickle.HIGHEST_PROTOCOL)
    back = from_wire(pickle.loads(pickle.dumps(wire, protocol=pickle.HIGHEST_PROTOCOL)))
    assert [type(item) for _, item in back] == [SyslogFrame, SyslogFrame, Event, Rejected]
    assert back[:2] == items[:2]
    assert [collector for collector, _ in back] == [collector for collector, _ in items]
    assert back[2][1].id == items[2][1].id  # type: ignore[union-attr]
