"""Fault tests with real processes on loopback: `socctl ingest` of 200,000 events into Elasticsearch while the
server is frozen (SIGSTOP) mid-way, and while socctl itself is killed (SIGKILL) mid-way and run again. Both end
with the index holding exactly the input's event ids: none lost, none duplicated."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from elasticsearch import ApiError, Elasticsearch, helpers

from collectors.files import read_path
from correlator.model import Event, ms_to_iso
from correlator.store.elasticsearch import ElasticsearchStore
from tests.conftest import ES_PORT, REPO_ROOT

EVENTS = 200_000
T0 = 1_700_000_000_000


@pytest.fixture(scope="module")
def input_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[str]]:
    """200,000 distinct agent events over three days, and their event ids as socctl's reader computes them."""
    path = tmp_path_factory.mktemp("faults") / "agents.ndjson"
    with path.open("wb") as out:
        for i in range(EVENTS):
            out.write(orjson.dumps({
                "@timestamp": ms_to_iso(T0 + i * 1_300),
                "host": {"name": f"ws-{i % 41:02d}"},
                "event": {"code": str(4624 + i % 7), "dataset": "agent.fault"},
                "user": {"name": f"user{i % 97}"},
                "message": f"logon {i} from 10.0.{i % 256}.{i % 200}",
            }) + b"\n")
    ids = {item.id for item in read_path(path) if isinstance(item, Event)}
    assert len(ids) == EVENTS
    return path, ids


@pytest.fixture
def target(elasticsearch_url: str, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    prefix = f"socctl-fault-{uuid.uuid4().hex[:10]}"
    env = {**os.environ, "SOCCTL_ES_PREFIX": prefix, "SOCCTL_SPOOL_DIR": str(tmp_path / "spool"),
           "SOCCTL_ES_TIMEOUT": "3", "SOCCTL_CACHE_DIR": str(tmp_path / "cache")}
    yield prefix, env
    ElasticsearchStore(elasticsearch_url, prefix=prefix).drop_all()


def ingest_command(path: Path, url: str) -> list[str]:
    return [sys.executable, "-m", "correlator.cli", "ingest", str(path), "--store", url, "--store-events",
            "--no-default-rules", "--quiet", "--workers", "1"]


def stored_ids(url: str, prefix: str) -> list[str]:
    with Elasticsearch(url, request_timeout=60) as client:
        client.indices.refresh(index=f"{prefix}-events-*")
        return [hit["_id"] for hit in helpers.scan(client, index=f"{prefix}-events", query={"query": {"match_all": {}}},
                                                    _source=False, size=5_000)]


def wait_for_count(url: str, prefix: str, minimum: int, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with Elasticsearch(url, request_timeout=10) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"ingest ended (status {process.returncode}) before {minimum} events were stored")
            try:
                count = client.count(index=f"{prefix}-events-*", ignore_unavailable=True,
                                     allow_no_indices=True)["count"]
            except ApiError as exc:  # an index created a moment ago has no active shard yet: 503
                if exc.meta.status != 503:
                    raise
                count = 0
            if count >= minimum:
                return
            time.sleep(0.3)
    pytest.fail(f"fewer than {minimum} events stored after {timeout} s")


def es_group() -> int:
    script = REPO_ROOT / "scripts" / "elasticsearch"
    out = subprocess.run([script, "pid"], env={**os.environ, "SOCCTL_ES_PORT": ES_PORT},
                         capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def assert_exactly(url: str, prefix: str, expected: set[str]) -> None:
    ids = stored_ids(url, prefix)
    assert len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} duplicated documents"
    missing, extra = expected - set(ids), set(ids) - expected
    assert not missing, f"{len(missing)} events lost"
    assert not extra, f"{len(extra)} unexpected documents"


def test_server_frozen_mid_ingest_loses_and_duplicates_nothing(
    elasticsearch_url: str, input_file: tuple[Path, set[str]], target: tuple[str, dict[str, str]]
) -> None:
    path, expected = input_file
    prefix, env = target
    process = subprocess.Popen(ingest_command(path, elasticsearch_url), env=env, cwd=REPO_ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    group = es_group()
    try:
        wait_for_count(elasticsearch_url, prefix, 20_000, process, timeout=240)
        os.killpg(group, signal.SIGSTOP)
        time.sleep(8)  # requests time out after 3 s: the writer spools, then backs off
    finally:
        os.killpg(group, signal.SIGCONT)
    output, _ = process.communicate(timeout=600)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text
    flushed = subprocess.run([sys.executable, "-m", "correlator.cli", "store", "flush", "--store", elasticsearch_url],
                             env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=False, timeout=300)
    assert flushed.returncode == 0, flushed.stdout + flushed.stderr
    assert "store: events spooled" in text, text  # the outage was seen and bridged by the spool
    assert_exactly(elasticsearch_url, prefix, expected)


def test_socctl_killed_mid_ingest_and_run_again(
    elasticsearch_url: str, input_file: tuple[Path, set[str]], target: tuple[str, dict[str, str]]
) -> None:
    path, expected = input_file
    prefix, env = target
    command = ingest_command(path, elasticsearch_url)
    process = subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_count(elasticsearch_url, prefix, 50_000, process, timeout=240)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    assert len(stored_ids(elasticsearch_url, prefix)) < EVENTS
    again = subprocess.run(command, env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=False, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    summary = again.stdout + again.stderr
    assert "store: events duplicates" in summary, summary  # what the first run stored was not stored twice
    assert_exactly(elasticsearch_url, prefix, expected)
