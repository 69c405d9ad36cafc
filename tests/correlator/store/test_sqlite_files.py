"""The files of a SQLite store (`correlator.store.sqlite_files`): a new store keeps its events in a file of their
own with its own write lock, an older one keeps its single file, the layout survives copying both files and
refuses a missing events file, and a batch over both files commits the events first."""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from correlator.store.errors import StoreError
from correlator.store.sqlite import SqliteStore
from correlator.store.sqlite_files import MAIN_FILE, OWN_FILE, events_path_of
from correlator.store.sqlite_sql import EVENTS_SCHEMA_VERSION, MIGRATIONS
from tests.correlator.store.test_contract import build_alert, build_event
from tests.correlator.store.test_contract_versioned import case_doc


def _layout(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT key, value FROM store_layout").fetchall()


@pytest.mark.parametrize(("path", "events"), [
    ("socctl.db", "socctl.events.db"),
    ("data/store.sqlite3", "data/store.events.sqlite3"),
    ("socctl", "socctl.events"),
    ("a.b.db", "a.b.events.db"),
], ids=["db", "other-suffix", "no-suffix", "dotted-stem"])
def test_the_events_file_is_named_after_the_main_file(path: str, events: str) -> None:
    assert events_path_of(path) == events


def test_a_new_store_keeps_its_events_in_their_own_file(tmp_path: Path) -> None:
    path = tmp_path / "socctl.db"
    with SqliteStore(path) as store:
        assert store.paths == (str(path), str(tmp_path / "socctl.events.db"))
        event = build_event("own file")
        store.write_events([event])
        store.write_alerts([build_alert(event)])
    assert _layout(path) == [("events", OWN_FILE)]
    with sqlite3.connect(tmp_path / "socctl.events.db") as events, sqlite3.connect(path) as main:
        assert events.execute("SELECT count(*) FROM events").fetchone() == (1,)
        assert events.execute("SELECT max(version) FROM schema_version").fetchone() == (EVENTS_SCHEMA_VERSION,)
        assert main.execute("SELECT count(*) FROM alerts").fetchone() == (1,)
        assert main.execute("SELECT count(*) FROM sqlite_master WHERE name = 'events'").fetchone() == (0,)


def schema_2_database(path: Path) -> None:
    """An empty store as socctl made it before the layout was recorded: schema 2, one file."""
    with sqlite3.connect(path, isolation_level=None) as conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_ms INTEGER NOT NULL)")
        for version in (1, 2):
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version VALUES (?, 0)", (version,))
    conn.close()


def test_a_single_file_store_keeps_its_events_where_they_are(tmp_path: Path) -> None:
    """A store made before the layout was recorded (schema 2) is migrated in place: no events file appears."""
    path = tmp_path / "old.db"
    schema_2_database(path)
    for _ in range(2):  # migrated, then opened as it is
        with SqliteStore(path) as store:
            assert store.paths == (str(path),)
            store.write_events([build_event("still in the main file")])
    assert _layout(path) == [("events", MAIN_FILE)]
    assert not Path(events_path_of(str(path))).exists()
    with sqlite3.connect(path) as main:
        assert main.execute("SELECT count(*) FROM events").fetchone() == (1,)


def test_an_in_memory_store_is_one_database() -> None:
    with SqliteStore(":memory:") as store:
        assert store.paths == (":memory:",)
        store.write_events([build_event("volatile")])
        assert store.count("events", "volatile") == 1


def test_a_missing_events_file_is_refused_not_recreated(tmp_path: Path) -> None:
    path = tmp_path / "socctl.db"
    with SqliteStore(path) as store:
        store.write_events([build_event("kept in the events file")])
    events = Path(events_path_of(str(path)))
    events.rename(tmp_path / "elsewhere.db")
    with pytest.raises(StoreError) as info:
        SqliteStore(path)
    assert str(info.value) == (
        f"{events}: missing: {path} keeps its events in this file (copy and move the two files together)"
    )
    assert not events.exists()


def test_both_files_moved_together_open_with_their_data(tmp_path: Path) -> None:
    path = tmp_path / "socctl.db"
    with SqliteStore(path) as store:
        store.write_events([build_event("moved")])
        store.put("cases", case_doc(), expected_version=None)
        old_paths = store.paths
    moved = tmp_path / "archive" / "2026.db"
    moved.parent.mkdir()
    for old, new in zip(old_paths, (moved, events_path_of(str(moved))), strict=True):
        Path(old).rename(new)
    with SqliteStore(moved) as store:
        assert store.count("events", "moved") == 1
        assert store.get("cases", "case-1a2b") is not None


def test_a_newer_events_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "socctl.db"
    SqliteStore(path).close()
    events = events_path_of(str(path))
    with sqlite3.connect(events) as conn:
        conn.execute("INSERT INTO schema_version VALUES (99, 0)")
    with pytest.raises(StoreError) as info:
        SqliteStore(path)
    assert str(info.value) == (
        f"{events}: database schema version 99 is newer than this socctl supports ({EVENTS_SCHEMA_VERSION})"
    )


def test_stores_opened_at_once_agree_on_one_layout(tmp_path: Path) -> None:
    """The engine and its workers open a new store at about the same time: one makes it, all use it."""
    path = tmp_path / "socctl.db"
    opened: list[Any] = []
    start = threading.Barrier(6)

    def open_one(n: int) -> None:
        start.wait()
        try:
            with SqliteStore(path) as store:
                store.write_events([build_event(f"writer {n}")])
                opened.append(store.paths)
        except Exception as exc:  # handed back to the test thread
            opened.append(exc)

    threads = [threading.Thread(target=open_one, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert opened == [(str(path), events_path_of(str(path)))] * 6
    assert _layout(path) == [("events", OWN_FILE)]
    with SqliteStore(path) as store:
        assert store.count("events", "writer") == 6


def test_events_are_written_while_another_batch_holds_the_main_file(tmp_path: Path) -> None:
    """A detection worker stores its events while the engine's batch stores alerts and cases, and the
    other way round: each file has its own write lock, and a batch locks only the files it uses."""
    path = tmp_path / "socctl.db"
    with SqliteStore(path) as engine, SqliteStore(path) as worker:
        event = build_event("alerting")
        with engine.batch():
            engine.write_alerts([build_alert(event)])
            engine.put("cases", case_doc(), expected_version=None)
            started = time.monotonic()
            assert worker.write_events([event]).written == 1  # before: waited 5 s for the lock, then failed
            assert time.monotonic() - started < 2
        with worker.batch():
            worker.write_events([build_event("next batch")])
            engine.put("cases", case_doc(version=2), expected_version=1)
        assert engine.count("events") == 2


def test_a_batch_over_both_files_commits_both_or_neither(tmp_path: Path) -> None:
    path = tmp_path / "socctl.db"
    with SqliteStore(path) as store, SqliteStore(path) as reader:
        event = build_event("both")
        with store.batch():
            store.write_events([event])
            store.write_alerts([build_alert(event)])
            assert (reader.count("events"), reader.count("alerts")) == (0, 0)
        assert (reader.count("events"), reader.count("alerts")) == (1, 1)

        def failing_unit() -> None:
            with store.batch():
                store.write_events([build_event("undone")])
                store.write_alerts([build_alert(build_event("undone"))])
                raise RuntimeError("analysis failed")

        with pytest.raises(RuntimeError, match="analysis failed"):
            failing_unit()
        assert (reader.count("events"), reader.count("alerts")) == (1, 1)


class _FailingCommit:
    """A connection whose COMMIT fails (as a full disk would make it)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, *args: Any) -> Any:
        if sql == "COMMIT":
            raise sqlite3.OperationalError("database or disk is full")
        return self._conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def test_a_failed_commit_says_what_was_committed_before_it(tmp_path: Path) -> None:
    path = tmp_path / "socctl.db"
    with SqliteStore(path) as store, SqliteStore(path) as reader:
        files = store._open_files()
        store._files = dataclasses.replace(files, main=_FailingCommit(files.main))  # type: ignore[arg-type]
        store._placed = store._files.connections()
        event = build_event("events first")

        def unit() -> None:
            with store.batch():
                store.write_events([event])
                store.write_alerts([build_alert(event)])

        with pytest.raises(StoreError) as info:
            unit()
        assert str(info.value) == (
            f"{path}: commit a batch of writes: database or disk is full "
            f"(committed before the failure: {events_path_of(str(path))})"
        )
        assert not files.main.in_transaction  # the main file's writes undone, not left open
        assert (reader.count("events"), reader.count("alerts")) == (1, 0)
        store._files = files


def test_an_events_file_that_is_no_database_is_named(tmp_path: Path) -> None:
    path = tmp_path / "socctl.db"
    SqliteStore(path).close()
    events = Path(events_path_of(str(path)))
    events.write_bytes(b"not a database at all, " * 200)
    for suffix in ("-wal", "-shm"):
        Path(f"{events}{suffix}").unlink(missing_ok=True)
    with pytest.raises(StoreError) as info:
        SqliteStore(path)
    assert str(info.value) == f"{events}: open: file is not a database"
