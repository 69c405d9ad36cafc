"""`socctl run` killed with SIGKILL while agents' HTTP batches (acknowledged with 200) and tailed lines are in
flight: the restarted engine stores every one of them, once; and a running engine reloads its rules on
`socctl reload` (SIGHUP) without a restart."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import yaml

from correlator.store.config import open_store
from tests.cli.test_run_cmd import _metrics, _start, _stop, _wait_for
from tests.conftest import REPO_ROOT

CONFIG = """
store: sqlite:///{db}
state_dir: {state}
syslog: {{host: 127.0.0.1, udp: null, tcp: 0}}
metrics: {{host: 127.0.0.1, port: 0}}
http: {{host: 127.0.0.1, port: 0}}
tail: [{{path: {log}}}]
tail_poll: 50ms
batch: 200
batch_wait: 50ms
rules: [{rules}]
"""

BATCHES, PER_BATCH, LINES = 6, 250, 600


def _post(port: int, token: str, body: bytes) -> dict[str, int]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/events", data=body, method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        return json.loads(response.read())  # type: ignore[no-any-return]


def _stored_events(db: Path) -> int:
    with open_store(f"sqlite:///{db}") as store:
        return store.count("events")


def test_kill_9_loses_no_acknowledged_event(tmp_path: Path) -> None:
    db, state, log = tmp_path / "socctl.db", tmp_path / "state", tmp_path / "auth.log"
    rules = tmp_path / "rules"
    rules.mkdir()
    log.write_text("", encoding="utf-8")
    (tmp_path / "run.yml").write_text(CONFIG.format(db=db, state=state, log=log, rules=rules), encoding="utf-8")
    process, ports = _start(tmp_path)
    acknowledged = 0
    try:
        token = yaml.safe_load((state / "intake-tokens.yml").read_text())[0]["token"]
        with log.open("a", encoding="utf-8") as tailed:  # lines first: the tailer reads them while agents post
            for number in range(LINES):
                tailed.write(f"Nov 20 01:00:{number % 60:02d} web01 sshd[{1000 + number}]: Accepted publickey for "
                             f"deploy from 10.0.0.{number % 250} port {20000 + number} ssh2\n")
        for batch in range(BATCHES):
            lines = [json.dumps({"@timestamp": "2026-11-20T01:00:00Z", "host": {"name": f"ws{batch:02d}"},
                                 "message": f"agent record {batch}-{n}"}) for n in range(PER_BATCH)]
            answer = _post(ports["http"], token, "\n".join(lines).encode() + b"\n")
            acknowledged += answer["accepted"]
        # killed at once: what was acknowledged is partly queued, partly processed, partly stored
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
    assert acknowledged == BATCHES * PER_BATCH
    before = _stored_events(db)
    process, ports = _start(tmp_path)
    try:
        _wait_for(lambda: _stored_events(db) >= acknowledged + LINES, timeout=120)
    finally:
        _stop(process)
    after = _stored_events(db)
    assert after == acknowledged + LINES, (before, after)  # every record once: ids are content hashes
    with open_store(f"sqlite:///{db}") as store:
        assert store.count("events", "event.dataset:system.auth") == LINES


RULE = """
title: Reloaded Marker Rule
id: 0e8b7f34-4a3c-4b0e-9d8f-5c2f6a1e7b10
status: test
logsource: {product: linux, service: auth}
detection:
    keywords: ['reload-marker-7731']
    condition: keywords
level: high
"""


def test_socctl_reload_makes_the_running_engine_read_new_rules(tmp_path: Path) -> None:
    db, state, log = tmp_path / "socctl.db", tmp_path / "state", tmp_path / "auth.log"
    rules = tmp_path / "rules"
    rules.mkdir()
    (tmp_path / "run.yml").write_text(CONFIG.format(db=db, state=state, log=log, rules=rules), encoding="utf-8")
    process, ports = _start(tmp_path)

    def send(text: str) -> None:
        frame = f"<38>Nov 20 01:02:03 web01 sshd[77]: {text}".encode()
        with socket.create_connection(("127.0.0.1", ports["tcp"]), timeout=10) as sock:
            sock.sendall(f"{len(frame)} ".encode() + frame)

    try:
        send("before reload-marker-7731")
        _wait_for(lambda: _metrics(ports["metrics"]).get("socctl_events_processed_total", 0) >= 1)
        loaded = _metrics(ports["metrics"])["socctl_rules_loaded"]
        (rules / "marker.yml").write_text(RULE, encoding="utf-8")
        result = subprocess.run([sys.executable, "-m", "correlator.cli", "reload", "--state-dir", str(state)],
                                check=False, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        _wait_for(lambda: _metrics(ports["metrics"]).get("socctl_reloads_total", 0) == 1)
        assert _metrics(ports["metrics"])["socctl_rules_loaded"] == loaded + 1
        send("after reload-marker-7731")
        _wait_for(lambda: _metrics(ports["metrics"]).get("socctl_alerts_total", 0) >= 1)
    finally:
        _stop(process)
    with open_store(f"sqlite:///{db}") as store:
        hits = store.search("alerts", "", limit=10).hits
    assert [hit["rule"]["title"] for hit in hits] == ["Reloaded Marker Rule"]  # the event after the reload only
    assert not (state / "socctl-run.pid").exists()


def test_socctl_reload_does_not_signal_a_process_a_stale_pid_file_names(tmp_path: Path) -> None:
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "socctl-run.pid").write_text(f"{sleeper.pid}\n", encoding="utf-8")
        result = subprocess.run([sys.executable, "-m", "correlator.cli", "reload", "--state-dir", str(tmp_path)],
                                check=False, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
        assert result.returncode == 1
        assert "is not socctl run (a stale pid file)" in " ".join(result.stderr.split())
        assert sleeper.poll() is None  # not signalled
    finally:
        sleeper.kill()
        sleeper.wait()
