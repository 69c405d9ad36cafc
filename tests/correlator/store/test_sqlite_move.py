"""`move_events` (`correlator.store.sqlite_move`, `socctl store move-events`): a single-file store's events move
into a file of their own and every search gives what it gave before; a move that cannot or does not finish
leaves the store as it was."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from correlator.store import sqlite_move
from correlator.store.base import Filter, Sort
from correlator.store.documents import Collection
from correlator.store.errors import StoreError
from correlator.store.query import parse_query
from correlator.store.sqlite import SqliteStore
from correlator.store.sqlite_files import events_path_of
from correlator.store.sqlite_move import move_events
from tests.correlator.store.test_contract import T0, build_alert, build_event
from tests.correlator.store.test_contract_versioned import case_doc
from tests.correlator.store.test_sqlite_files import schema_2_database

QUERIES = ("", "powershell", '"failed password"', "host.name:ws-02", "event.code:4625 AND admin*", "NOT ws-01")


def _clock() -> int:
    return T0


def _single_file_store(path: Path, events: int = 12_000) -> None:
    """A store as socctl made it before the events had their own file (schema 2), with events, alerts and a
    case."""
    schema_2_database(path)
    messages = ("powershell.exe -enc AAAA", "Failed password for admin from 203.0.113.9", "cmd.exe /c whoami")
    with SqliteStore(path, clock=_clock) as store:
        batch = [build_event(f"{messages[i % 3]} #{i}", ts=T0 + i, host=f"ws-0{i % 3}",
                             code="4625" if i % 3 == 1 else "4688", extra={"user": {"name": f"admin{i % 7}"}})
                 for i in range(events)]
        store.write_events(batch)
        store.write_alerts([build_alert(batch[1])])
        store.put("cases", case_doc(), expected_version=None)


def _answers(store: SqliteStore) -> list[object]:
    out: list[object] = []
    for query in QUERIES:
        where = Filter(Collection.EVENTS, parse_query(query))
        page = store._search(where, Sort.parse("-@timestamp"), 20, 5)
        out.append((query, page.total, [hit["event"]["id"] for hit in page.hits]))
    out.append(store.terms("events", "host.name"))
    out.append(store.date_histogram("events", 1_000))
    return out


def test_events_move_into_their_own_file_and_answer_as_before(tmp_path: Path) -> None:
    path = tmp_path / "socctl.db"
    _single_file_store(path)
    with SqliteStore(path) as before:
        assert before.paths == (str(path),)
        answers = _answers(before)
        seqs = before._connection(Collection.EVENTS).execute("SELECT seq, id FROM events ORDER BY seq").fetchall()
    moved = move_events(str(path), _clock)
    assert (moved.events, moved.events_path, moved.vacuumed) == (12_000, events_path_of(str(path)), False)
    with SqliteStore(path) as after:
        assert after.paths == (str(path), events_path_of(str(path)))
        assert _answers(after) == answers
        conn = after._connection(Collection.EVENTS)
        assert conn.execute("SELECT seq, id FROM events ORDER BY seq").fetchall() == seqs
        conn.execute("INSERT INTO events_fts (events_fts) VALUES ('integrity-check')")  # raises when corrupt
        assert after.count("alerts") == 1
        assert after.get("cases", "case-1a2b") is not None
        after.write_events([build_event("after the move", ts=T0 + 99_999)])  # new events go to the new file
        assert after.count("events", "move") == 1
    with sqlite3.connect(path) as main:
        assert main.execute("SELECT name FROM sqlite_master WHERE name LIKE 'events%'").fetchall() == []
        assert main.execute("SELECT value FROM store_layout WHERE key = 'events'").fetchone() == ("own file",)


def test_vacuum_gives_the_space_back(tmp_path: Path) -> None:
    path = tmp_path / "socctl.db"
    _single_file_store(path, events=3_000)
    size = path.stat().st_size
    assert move_events(str(path), _clock, vacuum=True).vacuumed
    assert path.stat().st_size < size / 4


def test_a_store_with_its_own_events_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "socctl.db"
    SqliteStore(path).close()
    with pytest.raises(StoreError) as info:
        move_events(str(path), _clock)
    assert str(info.value) == f"{path}: its events are in their own file already ({events_path_of(str(path))})"


def test_an_existing_events_file_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "socctl.db"
    _single_file_store(path, events=10)
    stray = Path(events_path_of(str(path)))
    stray.write_bytes(b"someone's file")
    with pytest.raises(StoreError) as info:
        move_events(str(path), _clock)
    assert str(info.value) == (f"{stray}: exists, but {path} keeps its events in itself: remove it (left by an "
                               "interrupted move?) and move again")
    assert stray.read_bytes() == b"someone's file"
    stray.unlink()
    with SqliteStore(path) as store:
        assert store.paths == (str(path),)
        assert store.count("events") == 10


def test_a_move_that_fails_leaves_the_store_as_it_was(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "socctl.db"
    _single_file_store(path, events=7_000)  # two chunks: the first is written when the second fails

    calls = 0

    def failing(doc: object) -> str:
        nonlocal calls
        calls += 1
        if calls > 6_000:
            raise RuntimeError("disk pulled out")
        return "text"

    monkeypatch.setattr(sqlite_move, "document_text", failing)
    with pytest.raises(RuntimeError, match="disk pulled out"):
        move_events(str(path), _clock)
    assert not Path(events_path_of(str(path))).exists()
    monkeypatch.undo()
    with SqliteStore(path) as store:
        assert store.paths == (str(path),)
        assert store.count("events", "powershell") == 2_334
    assert move_events(str(path), _clock).events == 7_000  # and it can be moved after


def test_an_in_memory_store_has_nothing_to_move() -> None:
    with pytest.raises(StoreError, match="an in-memory store has no files to move events between"):
        move_events(":memory:", _clock)
