"""Moving the events of a single-file SQLite store into a file of their own (`socctl store move-events`): the
layout a new store has (`correlator.store.sqlite_files`), for a store made before it.

The move holds the main file's write lock from start to end, so no engine or analyst writes in between (a
writer waits, up to its busy timeout; stop the engine first). It copies the events in order of storage (their
``seq`` kept) into a new events file with their free text (the index is contentless: the text is made again
from each stored document, as it was when the event was stored), checks the count, and only then drops the
events from the main file and records the new layout, in one transaction. A move that fails leaves the main
file as it was and removes the events file it began; one killed before that commit leaves the main file as it
was too, and its events file (not part of the store) must be removed before a second move starts. The main
file keeps its size until ``VACUUM`` (``--vacuum``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import orjson

from correlator.store.documents import Collection, document_text
from correlator.store.errors import StoreError
from correlator.store.sqlite_files import (
    MAIN_FILE,
    MEMORY,
    OWN_FILE,
    connect_file,
    errors,
    events_path_of,
    layout_of,
    migrate_events_file,
    open_files,
    write_lock,
)
from correlator.store.sqlite_sql import LAYOUT_TABLE, TABLES

__all__ = ["EventsMoved", "move_events"]

_CHUNK: Final = 5_000  # events read, written and indexed at a time


@dataclass(frozen=True, slots=True)
class EventsMoved:
    """What `move_events` did: `events` moved from the main file `path` into `events_path`."""

    path: str
    events_path: str
    events: int
    vacuumed: bool


def move_events(path: str, clock: Callable[[], int], *, vacuum: bool = False) -> EventsMoved:
    """Move the events of the single-file store at `path` into the events file beside it (see the module doc);
    `vacuum`: then give the main file's free pages back to the file system."""
    if path in (MEMORY, ""):
        raise StoreError(f"{path or 'temporary database'}: an in-memory store has no files to move events between")
    open_files(path, clock).close()  # created or migrated to the current schema first; its layout recorded
    target = events_path_of(path)
    main = connect_file(path)[0]
    try:
        with errors(path, "move events"):
            with write_lock(main):
                _check_can_move(path, main, target)
                try:
                    moved = _copy(path, main, target, clock)
                except BaseException:
                    _remove(target)  # made by this move: nothing of the store is in it yet
                    raise
                table = TABLES[Collection.EVENTS]
                main.execute(f"DROP TABLE {table.fts}")
                main.execute(f"DROP TABLE {table.name}")
                main.execute(f"INSERT OR REPLACE INTO {LAYOUT_TABLE} VALUES ('events', ?)", (OWN_FILE,))  # noqa: S608
            if vacuum:
                main.execute("VACUUM")
    finally:
        main.close()
    return EventsMoved(path, target, moved, vacuum)


def _check_can_move(path: str, main: sqlite3.Connection, target: str) -> None:
    if layout_of(main) != MAIN_FILE:
        raise StoreError(f"{path}: its events are in their own file already ({target})")
    if Path(target).exists():
        raise StoreError(f"{target}: exists, but {path} keeps its events in itself: remove it (left by an "
                         "interrupted move?) and move again")


def _remove(database: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(database + suffix).unlink(missing_ok=True)


def _copy(path: str, main: sqlite3.Connection, target: str, clock: Callable[[], int]) -> int:
    """Copy the main file's events (with their free text) into the new events file `target`; their number."""
    table = TABLES[Collection.EVENTS]
    columns = ", ".join(("seq", *table.value_columns))
    events = connect_file(target)[0]
    try:
        migrate_events_file(target, events, clock())
        with errors(target, "move events"), write_lock(events):
            rows = main.execute(f"SELECT {columns} FROM {table.name} ORDER BY seq")  # noqa: S608
            copied = 0
            while chunk := rows.fetchmany(_CHUNK):
                events.executemany(
                    f"INSERT INTO {table.name} ({columns}) VALUES ({', '.join('?' * len(chunk[0]))})",  # noqa: S608
                    chunk)
                events.executemany(f"INSERT INTO {table.fts} (rowid, text) VALUES (?, ?)",  # noqa: S608
                                   [(row[0], document_text(orjson.loads(row[-1]))) for row in chunk])
                copied += len(chunk)
            (stored,) = main.execute(f"SELECT count(*) FROM {table.name}").fetchone()  # noqa: S608
            _check_count(path, stored, copied)
    finally:
        events.close()
    return copied


def _check_count(path: str, stored: int, copied: int) -> None:
    if copied != stored:  # pragma: no cover - the main file's write lock is held throughout
        raise StoreError(f"{path}: {stored} events stored but {copied} copied: nothing moved")
