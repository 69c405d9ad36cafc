"""`socctl run` as a subprocess on loopback: syslog over TCP (the real `logger`) and UDP in, events, alerts,
dead letters and cases in the store, Prometheus metrics, a clean stop that saves the state, and a restart that
restores it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from correlator.store.config import open_store
from tests.conftest import REPO_ROOT, require_tool

CONFIG = """
store: sqlite:///{db}
state_dir: {state}
syslog: {{host: 127.0.0.1, udp: 0, tcp: 0}}
metrics: {{host: 127.0.0.1, port: 0}}
http: {{host: 127.0.0.1, port: 0}}
batch_wait: 50ms
snapshot_every: 1s
"""


def _start(tmp_path: Path, *, replay: bool = False) -> tuple[subprocess.Popen[bytes], dict[str, int]]:
    """`socctl run --config tmp_path/run.yml`, once listening (without the configured replay unless `replay`)."""
    ports_file = tmp_path / "ports.json"
    ports_file.unlink(missing_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "correlator.cli", "run", "--config", str(tmp_path / "run.yml"),
         *([] if replay else ["--no-replay"]), "--ports-file", str(ports_file)],
        cwd=REPO_ROOT, env={**os.environ, "SOCCTL_CACHE_DIR": str(tmp_path / "cache")},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while not ports_file.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"socctl run did not start: {process.communicate()[0].decode(errors='replace')}")
        time.sleep(0.1)
    return process, json.loads(ports_file.read_text())


def _stop(process: subprocess.Popen[bytes]) -> str:
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=60)[0].decode(errors="replace")
    assert process.returncode == 0, output
    return output


def _metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line and not line.startswith("#")}


def _wait_for(predicate: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    pytest.fail("timed out")


def test_syslog_in_alerts_and_cases_out_then_a_clean_restart(tmp_path: Path) -> None:
    require_tool("logger", "bsdutils")
    db, state = tmp_path / "socctl.db", tmp_path / "state"
    (tmp_path / "run.yml").write_text(CONFIG.format(db=db, state=state), encoding="utf-8")
    process, ports = _start(tmp_path)
    try:
        for i in range(12):  # a brute force over TCP: base matches that only feed the correlation rules
            subprocess.run(["logger", "-n", "127.0.0.1", "-P", str(ports["tcp"]), "-T", "--octet-count",
                            "--rfc3164", "-p", "auth.info", "-t", "sshd",
                            f"Failed password for root from 198.51.100.23 port {40000 + i} ssh2"],
                           check=True, timeout=10)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"not syslog at all", ("127.0.0.1", ports["udp"]))
            sock.sendto(b"<38>Nov 20 01:02:03 web01 useradd[77]: new user: name=backdoor, UID=1005, GID=1005, "
                        b"home=/home/backdoor, shell=/bin/bash", ("127.0.0.1", ports["udp"]))
        token = yaml.safe_load((state / "intake-tokens.yml").read_text())[0]["token"]
        assert (state / "intake-tokens.yml").stat().st_mode & 0o777 == 0o600
        agent = {"@timestamp": "2026-11-20T01:05:00Z", "host": {"name": "web01"}, "event": {"dataset": "system.auth"},
                 "message": "agent record"}
        request = urllib.request.Request(
            f"http://127.0.0.1:{ports['http']}/v1/events", data=json.dumps(agent).encode() + b"\n{broken\n",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"}, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            answer = json.loads(response.read())
        assert (answer["accepted"], answer["rejected"]) == (1, 1)  # the broken line is kept as a dead letter
        _wait_for(lambda: _metrics(ports["metrics"]).get("socctl_events_processed_total", 0) >= 14)
        _wait_for(lambda: _metrics(ports["metrics"]).get("socctl_correlation_alerts_total", 0) >= 1)
        figures = _metrics(ports["metrics"])
        assert figures['socctl_events_in_total{collector="syslog_tcp"}'] == 12
        assert figures['socctl_events_in_total{collector="syslog_udp"}'] == 2
        assert figures['socctl_rejected_total{collector="syslog_udp"}'] == 1
        assert figures['socctl_events_in_total{collector="http"}'] == 2
        assert figures['socctl_rejected_total{collector="http"}'] == 1
        assert figures['socctl_events_out_total{collector="syslog_tcp"}'] == 12
        assert figures['socctl_events_out_total{collector="http"}'] == 1
        assert figures["socctl_queue_capacity"] == 10_000
    finally:
        output = _stop(process)
    assert "state saved" in output
    assert (state / "analysis.state").is_file()
    with open_store(f"sqlite:///{db}") as store:
        assert store.count("events") == 14
        reasons = sorted(hit["reason"] for hit in store.search("deadletter", "").hits)
        assert len(reasons) == 2
        assert any(reason.startswith("not a syslog message") for reason in reasons), reasons
        titles = {hit["rule"]["title"] for hit in store.search("alerts", "", limit=100).hits}
        assert "Logon Brute Force From One Source" in titles
        assert any("Account Created" in title or "account" in title.lower() for title in titles), titles
        assert store.count("cases") >= 1
    process, ports = _start(tmp_path)
    output = _stop(process)
    assert "restored from" in " ".join(output.split())
