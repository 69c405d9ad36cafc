"""`socctl ingest` writes through the store contract: the same run into SQLite and into a real Elasticsearch stores
the same events, alerts and dead letters (including documents only Elasticsearch refuses)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from correlator.cli import app
from correlator.store.config import open_store
from correlator.store.elasticsearch import ElasticsearchStore

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    lines = [
        orjson.dumps({"@timestamp": "2026-11-20T10:00:00Z", "host": {"name": "a"}, "labels": {"n": 5},
                      "message": "first"}),
        orjson.dumps({"@timestamp": "2026-11-20T10:00:01Z", "host": {"name": "a"}, "labels": {"n": {"x": 1}},
                      "message": "conflicting type"}),
        b'{"@timestamp":"2026-11-20T10:00:02Z","message":"bad \xff\xfe utf8"}',
    ]
    (folder / "agent.ndjson").write_bytes(b"\n".join(lines) + b"\n")
    for sample in (ROOT / "samples" / "windows").iterdir():
        (folder / sample.name).write_bytes(sample.read_bytes())
    return folder


@pytest.fixture
def es_target(elasticsearch_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    prefix = f"socctl-test-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("SOCCTL_ES_PREFIX", prefix)
    monkeypatch.setenv("SOCCTL_SPOOL_DIR", str(tmp_path / "spool"))
    yield elasticsearch_url
    ElasticsearchStore(elasticsearch_url, prefix=prefix).drop_all()


def ingest(url: str, inputs: Path, tmp_path: Path) -> dict[str, int]:
    summary = tmp_path / f"summary-{uuid.uuid4().hex[:6]}.json"
    result = CliRunner().invoke(app, ["ingest", str(inputs), "--store", url, "--store-events", "--quiet",
                                      "--workers", "1", "--cache-dir", str(tmp_path / "cache"),
                                      "--summary-json", str(summary)])
    assert result.exit_code == 0, result.output
    return dict(orjson.loads(summary.read_bytes())["store"])


def test_ingest_writes_the_same_into_sqlite_and_elasticsearch(es_target: str, inputs: Path, tmp_path: Path) -> None:
    sqlite_url = f"sqlite:///{tmp_path / 'socctl.db'}"
    into_sqlite = ingest(sqlite_url, inputs, tmp_path)
    into_es = ingest(es_target, inputs, tmp_path)
    assert into_sqlite["alerts written"] == into_es["alerts written"] > 0
    assert into_sqlite["deadletter written"] == into_es["deadletter written"] == 1  # the line that is not UTF-8
    assert into_sqlite["events written"] == into_es["events written"] + 1  # Elasticsearch refuses the conflict
    assert into_es["events refused"] == 1
    with open_store(es_target, spool=False) as es, open_store(sqlite_url) as sqlite:
        for collection in ("alerts", "events"):
            assert sorted(h["event"]["id"] for h in es.search(collection, limit=1000).hits) == sorted(
                h["event"]["id"] for h in sqlite.search(collection, limit=1000).hits
                if h.get("message") != "conflicting type")
        refused = es.search("deadletter", "stage:store").hits
        assert len(refused) == 1
        assert "labels.n" in refused[0]["reason"]
        assert "conflicting type" in refused[0]["raw"]
    again = ingest(es_target, inputs, tmp_path)  # a replay stores nothing twice
    assert again.get("events written", 0) == 0
    assert again.get("alerts written", 0) == 0
    assert again["events duplicates"] == into_es["events written"]
