"""SQLite specifics the contract does not cover: file layout, pragmas, migrations, threads, atomicity, and
`open_store` choosing the backend."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from correlator.store import StoreError, open_store
from correlator.store import sqlite as sqlite_module
from correlator.store.base import Collection, Filter
from correlator.store.config import default_db_path, sqlite_path_from_url, sqlite_target
from correlator.store.query import parse_query
from correlator.store.sqlite import BUSY_TIMEOUT_MS, SCHEMA_VERSION, SqliteStore, document_text
from correlator.store.sqlite_files import events_path_of
from correlator.store.sqlite_sql import EVENTS_SCHEMA_VERSION, MIGRATIONS, TABLES, where_sql
from tests.correlator.store.test_contract import T0, build_event

CLOCK_MS = T0 + 42


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "socctl.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[SqliteStore]:
    with SqliteStore(db_path, clock=lambda: CLOCK_MS) as opened:
        yield opened


def raw_connection(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def events_db(path: Path) -> Path:
    return Path(events_path_of(str(path)))


def test_pragmas(store: SqliteStore) -> None:
    assert store.journal_mode == "wal"
    for conn in (store._connection(), store._connection(Collection.EVENTS)):
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
        assert conn.execute("PRAGMA busy_timeout").fetchone() == (BUSY_TIMEOUT_MS,)


def test_schema_version_is_recorded_once(db_path: Path, store: SqliteStore) -> None:
    store.close()
    with SqliteStore(db_path, clock=lambda: CLOCK_MS + 1) as reopened:
        assert reopened.schema_version == SCHEMA_VERSION
    rows = raw_connection(db_path).execute("SELECT version, applied_ms FROM schema_version").fetchall()
    assert rows == [(version, CLOCK_MS) for version in range(1, SCHEMA_VERSION + 1)]
    rows = raw_connection(events_db(db_path)).execute("SELECT version, applied_ms FROM schema_version").fetchall()
    assert rows == [(version, CLOCK_MS) for version in range(1, EVENTS_SCHEMA_VERSION + 1)]


def test_newer_schema_is_refused(db_path: Path, store: SqliteStore) -> None:
    store.close()
    raw_connection(db_path).execute("INSERT INTO schema_version VALUES (99, 0)")
    with pytest.raises(StoreError) as info:
        SqliteStore(db_path)
    assert str(info.value) == (
        f"{db_path}: database schema version 99 is newer than this socctl supports ({SCHEMA_VERSION})"
    )


def _names(path: Path) -> set[str]:
    conn = raw_connection(path)
    return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")}


def test_tables_indexes_and_contentless_fts(db_path: Path, store: SqliteStore) -> None:
    main, events = _names(db_path), _names(events_db(db_path))
    assert {"alerts", "deadletter", "alerts_fts", "deadletter_fts", "cases", "audit", "store_layout"} <= main
    assert {"alerts_k_rule_id", "alerts_k_rule_level", "alerts_k_host_name", "alerts_k_event_id"} <= main
    assert {"events", "events_fts", "events_k_host_name", "events_k_event_code", "events_k_event_dataset",
            "events_ts"} <= events
    assert not {name for name in main if name.startswith("events")}  # in their own file only
    assert events.isdisjoint({"alerts", "cases", "store_layout"})
    (fts_sql,) = raw_connection(events_db(db_path)).execute(
        "SELECT sql FROM sqlite_master WHERE name = 'events_fts'").fetchone()
    assert "content=''" in fts_sql


def test_rows_keep_extracted_columns(db_path: Path, store: SqliteStore) -> None:
    event = build_event("hello", host="WS-01", code="4624", dataset="windows.security")
    store.write_events([event])
    row = raw_connection(events_db(db_path)).execute(
        "SELECT id, ts, k_host_name, k_event_code, k_event_dataset FROM events"
    ).fetchone()
    assert row == (event.id, T0, "WS-01", "4624", "windows.security")


def test_indexed_field_query_uses_its_index(store: SqliteStore) -> None:
    table = TABLES[Collection.EVENTS]
    clause, params = where_sql(table, Filter(Collection.EVENTS, parse_query("host.name:ws-01")))
    plan = store._connection(Collection.EVENTS).execute(
        f"EXPLAIN QUERY PLAN SELECT d.doc FROM events AS d WHERE {clause} ORDER BY d.ts DESC", params
    ).fetchall()
    assert any("USING INDEX events_k_host_name" in row[-1] for row in plan), plan


def test_data_survives_reopen(db_path: Path, store: SqliteStore) -> None:
    events = [build_event(f"event {i}", ts=T0 + i) for i in range(5)]
    store.write_events(events)
    store.close()
    with SqliteStore(db_path) as reopened:
        assert reopened.count("events") == 5
        assert reopened.count("events", "event AND 3") == 1
        assert reopened.write_events(events).duplicates == 5


def test_failed_batch_rolls_back(monkeypatch: pytest.MonkeyPatch, store: SqliteStore) -> None:
    def broken(doc: object) -> str:
        raise RuntimeError("tokenizer exploded")

    monkeypatch.setattr(sqlite_module, "document_text", broken)
    with pytest.raises(RuntimeError, match="tokenizer exploded"):
        store.write_events([build_event("one"), build_event("two")])
    monkeypatch.undo()
    assert store.count("events") == 0
    assert store.write_events([build_event("one")]).written == 1


def test_many_batches(store: SqliteStore) -> None:
    events = [build_event(f"bulk {i}", ts=T0 + i * 10) for i in range(5_000)]
    written = sum(store.write_events(events[k : k + 1_000]).written for k in range(0, len(events), 1_000))
    assert written == 5_000
    assert store.count("events", "bulk") == 5_000
    assert store.count("events", "4999") == 1
    assert T0 % 10_000 == 0
    assert store.date_histogram("events", 10_000)[:2] == [(T0, 1_000), (T0 + 10_000, 1_000)]


def test_a_store_can_be_handed_to_another_thread(store: SqliteStore) -> None:
    """The running engine opens the store, then uses it from its pipeline thread (one thread at a time)."""
    results: list[object] = []

    def use() -> None:
        try:
            results.append(store.count("events"))
        except Exception as exc:  # handed back to the test thread
            results.append(exc)

    thread = threading.Thread(target=use)
    thread.start()
    thread.join()
    assert results == [store.count("events")]


def test_second_store_on_the_same_file_sees_committed_writes(db_path: Path, store: SqliteStore) -> None:
    with SqliteStore(db_path) as reader:
        store.write_events([build_event("shared")])
        assert reader.count("events", "shared") == 1


def test_in_memory_store() -> None:
    with SqliteStore(":memory:") as memory:
        assert memory.journal_mode == "memory"
        memory.write_events([build_event("volatile")])
        assert memory.count("events", "volatile") == 1


def test_unopenable_path_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir" / "x.db"
    with pytest.raises(StoreError) as info:
        SqliteStore(missing)
    assert str(info.value).startswith(f"{missing}: ")


def test_document_text_takes_strings_and_numbers() -> None:
    doc = {"a": "one", "b": {"c": 2, "d": [3.5, "four", None, True]}, "e": None}
    assert document_text(doc) == "one\n2\n3.5\nfour"


# -- open_store ----------------------------------------------------------------------------------------------


@pytest.fixture
def data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    target = tmp_path / "data"
    monkeypatch.setattr("platformdirs.user_data_dir", lambda appname: str(target / appname))
    return target


def test_default_store_is_sqlite_in_the_user_data_dir(data_dir: Path) -> None:
    assert default_db_path() == data_dir / "socctl" / "socctl.db"
    with open_store(environ={}) as opened:
        assert isinstance(opened, SqliteStore)
        assert opened.path == str(data_dir / "socctl" / "socctl.db")
    assert (data_dir / "socctl" / "socctl.db").is_file()


def test_socctl_db_overrides_the_default(tmp_path: Path, data_dir: Path) -> None:
    target = tmp_path / "custom" / "events.db"
    with open_store(environ={"SOCCTL_DB": str(target)}) as opened:
        assert isinstance(opened, SqliteStore)
        assert opened.path == str(target)
    assert not data_dir.exists()


def test_url_argument_wins_over_the_environment(tmp_path: Path) -> None:
    target = tmp_path / "url.db"
    env = {"SOCCTL_DB": str(tmp_path / "env.db"), "SOCCTL_ES_URL": "http://localhost:9200"}
    with open_store(f"sqlite:///{target}", environ=env) as opened:
        assert isinstance(opened, SqliteStore)
        assert opened.path == str(target)


def test_sqlite_target_is_the_file_open_store_opens(tmp_path: Path, data_dir: Path) -> None:
    env = {"SOCCTL_DB": str(tmp_path / "env" / "x.db")}
    assert sqlite_target(environ=env) == str(tmp_path / "env" / "x.db")
    assert (tmp_path / "env").is_dir()
    assert sqlite_target(f"sqlite:///{tmp_path / 'u.db'}", environ=env) == str(tmp_path / "u.db")
    assert sqlite_target(environ={}) == str(data_dir / "socctl" / "socctl.db")
    assert sqlite_target("sqlite://", environ={}) == ":memory:"
    with pytest.raises(StoreError, match=r"^http://es:9200: an Elasticsearch store, not a SQLite one$"):
        sqlite_target(environ={"SOCCTL_ES_URL": "http://es:9200", **env})


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///relative/x.db", "relative/x.db"),
        ("sqlite:////abs/x.db", "/abs/x.db"),
        ("sqlite://", ":memory:"),
        ("sqlite:///:memory:", ":memory:"),
    ],
)
def test_sqlite_urls(url: str, path: str) -> None:
    assert sqlite_path_from_url(url) == path


def test_memory_url_opens_an_in_memory_store() -> None:
    with open_store("sqlite://", environ={}) as opened:
        assert isinstance(opened, SqliteStore)
        assert opened.path == ":memory:"


@pytest.mark.parametrize(
    ("url", "environ", "expected_url"),
    [
        ("http://localhost:9200", {}, "http://localhost:9200"),
        ("https://es.example:9200", {}, "https://es.example:9200"),
        (None, {"SOCCTL_ES_URL": "http://localhost:9200", "SOCCTL_DB": "/tmp/ignored.db"}, "http://localhost:9200"),
    ],
    ids=["http", "https", "env"],
)
def test_http_urls_open_elasticsearch(
    url: str | None, environ: dict[str, str], expected_url: str, tmp_path: Path
) -> None:
    from correlator.store.elasticsearch import ElasticsearchStore

    env = {**environ, "SOCCTL_SPOOL_DIR": str(tmp_path / "spool"), "SOCCTL_ES_PREFIX": "socctl-x",
           "SOCCTL_AGENCY": "So TT&TT"}
    with open_store(url, environ=env) as opened:  # opening does not contact the server
        assert isinstance(opened, ElasticsearchStore)
        assert (opened.url, opened.prefix, opened.agency) == (expected_url, "socctl-x", "so-tt-tt")
        assert (tmp_path / "spool").is_dir()


def test_bad_elasticsearch_option(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as info:
        open_store("http://localhost:9200", environ={"SOCCTL_ES_TIMEOUT": "soon",
                                                      "SOCCTL_SPOOL_DIR": str(tmp_path)})
    assert str(info.value) == "SOCCTL_ES_TIMEOUT='soon': expected a number"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (
            "postgres://db/socctl",
            "unsupported store URL scheme 'postgres': expected sqlite:///path or http(s)://host:port",
        ),
        (
            "sqlite:/x.db",
            "invalid sqlite URL 'sqlite:/x.db': expected sqlite:///relative.db or sqlite:////abs.db",
        ),
    ],
    ids=["scheme", "sqlite-form"],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(StoreError) as info:
        open_store(url, environ={})
    assert str(info.value) == message


# -- versioned collections and the schema migration


def test_a_version_1_database_is_migrated_and_keeps_its_data(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = raw_connection(path)
    conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_ms INTEGER NOT NULL)")
    for statement in MIGRATIONS[1]:
        conn.execute(statement)
    conn.execute("INSERT INTO schema_version VALUES (1, 5)")
    conn.close()
    with SqliteStore(path, clock=lambda: CLOCK_MS) as old:
        assert old.write_events([build_event("before the upgrade")]).written == 1
    with SqliteStore(path, clock=lambda: CLOCK_MS) as migrated:
        assert migrated.schema_version == SCHEMA_VERSION == 3
        assert migrated.paths == (str(path),)  # its events stay where they are
        assert migrated.count("events", "upgrade") == 1
        migrated.put("cases", {"id": "case-1", "version": 1, "created_ms": T0}, expected_version=None)
        assert migrated.write_audit([{"id": "e1", "at_ms": T0}]).written == 1
    names = {row[0] for row in raw_connection(path).execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"cases", "cases_fts", "allowlist", "allowlist_fts", "audit", "audit_fts"} <= names
    rows = raw_connection(path).execute("SELECT version, applied_ms FROM schema_version").fetchall()
    assert rows == [(1, 5), (2, CLOCK_MS), (3, CLOCK_MS)]
    assert not Path(events_path_of(str(path))).exists()


def test_the_version_column_follows_the_document(db_path: Path, store: SqliteStore) -> None:
    store.put("cases", {"id": "case-1", "version": 1, "created_ms": T0, "status": "new"}, expected_version=None)
    store.put("cases", {"id": "case-1", "version": 4, "created_ms": T0, "status": "acknowledged"},
              expected_version=1)
    row = raw_connection(db_path).execute("SELECT id, ts, k_status, version FROM cases").fetchone()
    assert row == ("case-1", T0, "acknowledged", 4)


def test_a_failed_put_rolls_back(monkeypatch: pytest.MonkeyPatch, store: SqliteStore) -> None:
    store.put("cases", {"id": "case-1", "version": 1, "created_ms": T0, "title": "first"}, expected_version=None)

    def broken(doc: object) -> str:
        raise RuntimeError("tokenizer exploded")

    monkeypatch.setattr(sqlite_module, "document_text", broken)
    with pytest.raises(RuntimeError, match="tokenizer exploded"):
        store.put("cases", {"id": "case-1", "version": 2, "created_ms": T0, "title": "second"}, expected_version=1)
    monkeypatch.undo()
    assert store.get("cases", "case-1")["version"] == 1  # type: ignore[index]
    assert store.count("cases", "first") == 1
