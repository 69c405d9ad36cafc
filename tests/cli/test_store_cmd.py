"""`socctl search` and `socctl store retention|flush` on the embedded store and on a real Elasticsearch."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from correlator.cli import app
from correlator.model import ms_to_iso
from correlator.store.base import Store, wall_clock_ms
from correlator.store.elasticsearch import ElasticsearchStore
from correlator.store.sqlite import SqliteStore
from tests.correlator.store.test_contract import build_event

DAY = 86_400_000


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _fill(store: Store, now: int) -> None:
    store.write_events([
        build_event("powershell.exe -enc AAAA", ts=now - 60_000, host="ws-01"),
        build_event("cmd.exe /c whoami", ts=now - 2 * 3_600_000, host="ws-02"),
        build_event("very old logon", ts=now - 400 * DAY, host="dc-01"),
    ])


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    db = tmp_path / "socctl.db"
    with SqliteStore(db) as store:
        _fill(store, wall_clock_ms())
    return f"sqlite:///{db}"


@pytest.fixture
def es_url(elasticsearch_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    prefix = f"socctl-test-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("SOCCTL_ES_PREFIX", prefix)
    monkeypatch.setenv("SOCCTL_SPOOL_DIR", str(tmp_path / "spool"))
    with ElasticsearchStore(elasticsearch_url, prefix=prefix) as store:
        _fill(store, wall_clock_ms())
    yield elasticsearch_url
    ElasticsearchStore(elasticsearch_url, prefix=prefix).drop_all()


@pytest.fixture(params=["sqlite", "elasticsearch"])
def store_url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "es_url"))


def test_search_prints_a_table(runner: CliRunner, store_url: str) -> None:
    result = runner.invoke(app, ["search", "host.name:ws-*", "--since", "1d", "--store", store_url],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "events: 2 hits" in result.output
    assert "powershell.exe -enc AAAA" in result.output
    assert "very old logon" not in result.output


def test_search_json_with_fields_of_the_hits(runner: CliRunner, store_url: str) -> None:
    result = runner.invoke(app, ["search", "whoami OR powershell", "--json", "--limit", "1", "--sort", "@timestamp",
                                 "--store", store_url])
    assert result.exit_code == 0, result.output
    page = orjson.loads(result.stdout)
    assert page["total"] == 2
    assert [hit["message"] for hit in page["hits"]] == ["cmd.exe /c whoami"]


@pytest.mark.parametrize(
    ("args", "message"),
    [(["host.name:x AND (", "--since", "1h"], "unclosed '(' at column 17"),
     (["", "--since", "yesterday"], "invalid time 'yesterday'"),
     (["", "--in", "tickets"], "unknown collection 'tickets'")],
    ids=["query", "since", "collection"],
)
def test_search_errors_are_explained(runner: CliRunner, sqlite_url: str, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["search", *args, "--store", sqlite_url])
    assert result.exit_code == 2
    assert message in result.output


def test_retention_dry_run_then_apply(runner: CliRunner, store_url: str, tmp_path: Path) -> None:
    policy = tmp_path / "retention.yml"
    policy.write_text("default_level: 3\n")
    dry = runner.invoke(app, ["store", "retention", "--policy", str(policy), "--dry-run", "--json",
                              "--store", store_url])
    assert dry.exit_code == 0, dry.output
    report = orjson.loads(dry.stdout)
    assert report["dry_run"] is True
    assert [(p["collection"], p["documents"], p["deleted"]) for p in report["purges"]] == [("events", 1, False)]
    applied = runner.invoke(app, ["store", "retention", "--policy", str(policy), "--store", store_url])
    assert applied.exit_code == 0, applied.output
    assert "deleted 1 documents" in applied.output
    after = orjson.loads(runner.invoke(app, ["search", "--json", "--store", store_url]).stdout)
    assert after["total"] == 2
    assert ms_to_iso(0) not in applied.output


def test_flush_with_nothing_spooled(runner: CliRunner, store_url: str) -> None:
    result = runner.invoke(app, ["store", "flush", "--store", store_url])
    assert result.exit_code == 0, result.output
    assert "sent 0 spooled documents; 0 still waiting" in result.output


def test_move_events_of_a_single_file_store(runner: CliRunner, tmp_path: Path) -> None:
    from tests.correlator.store.test_sqlite_move import _single_file_store

    db = tmp_path / "old.db"
    _single_file_store(db, events=300)
    url = f"sqlite:///{db}"
    before = orjson.loads(runner.invoke(app, ["search", "powershell", "--json", "--store", url]).stdout)
    result = runner.invoke(app, ["store", "move-events", "--vacuum", "--store", url], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert f"moved 300 events from {db} into {tmp_path / 'old.events.db'} (main file vacuumed)" in result.output
    after = orjson.loads(runner.invoke(app, ["search", "powershell", "--json", "--store", url]).stdout)
    assert after == before
    assert before["total"] == 100
    again = runner.invoke(app, ["store", "move-events", "--store", url], env={"COLUMNS": "250"})
    assert again.exit_code == 2
    assert "its events are in their own file already" in again.output


def test_move_events_refuses_elasticsearch(runner: CliRunner) -> None:
    result = runner.invoke(app, ["store", "move-events", "--store", "http://127.0.0.1:9"], env={"COLUMNS": "250"})
    assert result.exit_code == 2
    assert "http://127.0.0.1:9: an Elasticsearch store, not a SQLite one" in result.output
