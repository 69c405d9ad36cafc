"""The files of a SQLite store: opening them, their schema migrations, and which collection lives in which.

A store made by this version is two files: the main file (the path given: alerts, cases, dead letters, the
allowlist, the audit trail) and, beside it, the events file (``socctl.db`` -> ``socctl.events.db``: the events).
SQLite has one write lock per file: with the events in a file of their own, the detection workers storing the
events of one batch no longer wait for the engine storing the alerts and cases of another (at saturation the one
lock was held ~95% of the time: the engine 40%, each worker 18% and waiting ~20% more for it). The main file
records the layout (its ``store_layout`` table); a store made before it keeps its events in the main file (the
single-file layout), as does an in-memory store. The events file is found by name beside the main file: copy or
move both together (`StoreFiles.paths`); a main file that says its events have their own file refuses to open
without it rather than start an empty one.

Each file has its own ``schema_version`` table and migrations (`correlator.store.sqlite_sql`). Writes to both
are not one atomic transaction: a batch commits the events file first, then the main file, so a failure in
between leaves events without their alerts (a batch taken again makes them: event ids are made from the record,
alerts are per rule and event), never alerts without their events.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from correlator.store.documents import Collection
from correlator.store.errors import StoreError
from correlator.store.sqlite_sql import (
    EVENTS_MIGRATIONS,
    EVENTS_SCHEMA_VERSION,
    LAYOUT_TABLE,
    LAYOUT_VERSION,
    SCHEMA_VERSION,
    main_migrations,
)

__all__ = [
    "BUSY_TIMEOUT_MS",
    "MAIN_FILE",
    "MEMORY",
    "OWN_FILE",
    "StoreFiles",
    "connect_file",
    "errors",
    "events_path_of",
    "layout_of",
    "migrate_events_file",
    "open_files",
    "schema_version",
    "write_lock",
]

MEMORY: Final = ":memory:"
BUSY_TIMEOUT_MS: Final = 5_000
# Measured on 100k events: a larger page cache keeps the indexes' hot pages in memory, and fewer, larger
# checkpoints write each hot page back once per checkpoint instead of once per batch.
_PRAGMAS: Final = (
    f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA cache_size = -65536",  # KiB: up to 64 MiB, allocated as used
    "PRAGMA wal_autocheckpoint = 4000",  # pages: 16 MiB at the default page size
)
# The layout the main file records: where its events are.
OWN_FILE: Final = "own file"
MAIN_FILE: Final = "main file"


@contextmanager
def errors(path: str, action: str) -> Iterator[None]:
    """SQLite errors as `StoreError`s naming the file and the action."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: {action}: {exc}") from exc


def events_path_of(path: str) -> str:
    """The events file beside the main file `path`: ``socctl.db`` -> ``socctl.events.db``."""
    main = Path(path)
    return str(main.with_name(f"{main.stem}.events{main.suffix}"))


@dataclass(frozen=True, slots=True)
class StoreFiles:
    """The open connections of a store: `main`, and `events` when the events have a file of their own."""

    path: str
    main: sqlite3.Connection
    journal_mode: str
    events_path: str | None = None
    events: sqlite3.Connection | None = None

    @property
    def paths(self) -> tuple[str, ...]:
        """The store's database files (each with its ``-wal`` and ``-shm`` beside it while open)."""
        return (self.path,) if self.events_path is None else (self.path, self.events_path)

    def connections(self) -> dict[Collection, tuple[str, sqlite3.Connection]]:
        """Each collection's (file, connection)."""
        placed = dict.fromkeys(Collection, (self.path, self.main))
        if self.events is not None and self.events_path is not None:
            placed[Collection.EVENTS] = (self.events_path, self.events)
        return placed

    def by_commit_order(self) -> list[tuple[str, sqlite3.Connection]]:
        """The files in the order a batch commits them: the events first, whose loss is the worse."""
        main = (self.path, self.main)
        return [main] if self.events is None or self.events_path is None else [(self.events_path, self.events), main]

    def close(self) -> None:
        """Close every connection (``PRAGMA optimize`` first); raises the first failure after closing the rest."""
        failure: BaseException | None = None
        for path, conn in reversed(self.by_commit_order()):
            try:
                with errors(path, "close"):
                    try:
                        conn.execute("PRAGMA optimize")
                    finally:
                        conn.close()
            except StoreError as exc:
                failure = failure or exc
        if failure is not None:
            raise failure


def schema_version(conn: sqlite3.Connection) -> int:
    exists = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").fetchone()
    if not exists:
        return 0
    return int(conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0])


def connect_file(path: str) -> tuple[sqlite3.Connection, str]:
    """A connection to `path` in autocommit mode with the store's pragmas, and its journal mode."""
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)  # one thread at a time
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot open database: {exc}") from exc
    try:
        with errors(path, "open"):
            (journal_mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            for pragma in _PRAGMAS:
                conn.execute(pragma)
    except BaseException:
        conn.close()
        raise
    return conn, str(journal_mode)


def _too_new(path: str, current: int, supported: int) -> StoreError:
    return StoreError(f"{path}: database schema version {current} is newer than this socctl supports ({supported})")


def _apply(conn: sqlite3.Connection, migrations: Mapping[int, list[str]], current: int, target: int,
           now_ms: int) -> None:
    """Migrations after `current` up to `target`, inside the caller's write transaction."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_ms INTEGER NOT NULL)")
    for version in range(current + 1, target + 1):
        for statement in migrations[version]:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_version VALUES (?, ?)", (version, now_ms))


@contextmanager
def write_lock(conn: sqlite3.Connection) -> Iterator[None]:
    """A ``BEGIN IMMEDIATE`` transaction on `conn`: committed when the block ends, rolled back when it raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def migrate_events_file(path: str, conn: sqlite3.Connection, now_ms: int) -> None:
    with errors(path, "open"):
        if schema_version(conn) == EVENTS_SCHEMA_VERSION:
            return
        with write_lock(conn):
            current = schema_version(conn)  # again, under the write lock
            if current > EVENTS_SCHEMA_VERSION:
                raise _too_new(path, current, EVENTS_SCHEMA_VERSION)
            _apply(conn, EVENTS_MIGRATIONS, current, EVENTS_SCHEMA_VERSION, now_ms)


def layout_of(conn: sqlite3.Connection) -> str:
    row = conn.execute(f"SELECT value FROM {LAYOUT_TABLE} WHERE key = 'events'").fetchone()  # noqa: S608
    return MAIN_FILE if row is None else str(row[0])


def _events_file(path: str, clock: Callable[[], int], *, create: bool) -> sqlite3.Connection:
    """The events file of the store at `path`, opened and migrated (`create`: made if missing)."""
    events = events_path_of(path)
    if not create and not Path(events).exists():
        raise StoreError(f"{events}: missing: {path} keeps its events in this file (copy and move the two "
                         "files together)")
    conn = connect_file(events)[0]
    try:
        migrate_events_file(events, conn, clock())
    except BaseException:
        conn.close()
        raise
    return conn


def _events_of(path: str, main: sqlite3.Connection, clock: Callable[[], int]) -> sqlite3.Connection | None:
    """Migrate the main file; the events file's connection, or None when the events are in the main file."""
    with errors(path, "open"):
        current = schema_version(main)
        if current > SCHEMA_VERSION:
            raise _too_new(path, current, SCHEMA_VERSION)
        if current == SCHEMA_VERSION:
            return _events_file(path, clock, create=False) if layout_of(main) == OWN_FILE else None
        events: sqlite3.Connection | None = None
        try:
            with write_lock(main):
                current = schema_version(main)  # again, under the write lock
                # A new store gets the two files; one made before the layout was recorded keeps its events.
                split = path not in (MEMORY, "") if current == 0 else (
                    current >= LAYOUT_VERSION and layout_of(main) == OWN_FILE)
                if split:  # made and migrated before the main file says it exists
                    events = _events_file(path, clock, create=current == 0)
                _apply(main, main_migrations(events_file=split), current, SCHEMA_VERSION, clock())
                if current < LAYOUT_VERSION:
                    main.execute(f"INSERT INTO {LAYOUT_TABLE} VALUES ('events', ?)",  # noqa: S608
                                 (OWN_FILE if split else MAIN_FILE,))
        except BaseException:
            if events is not None:
                events.close()
            raise
        return events


def open_files(path: str, clock: Callable[[], int]) -> StoreFiles:
    """Open (creating and migrating as needed) the files of the store at `path` (or ``":memory:"``)."""
    main, journal_mode = connect_file(path)
    try:
        events = _events_of(path, main, clock)
    except BaseException:
        main.close()
        raise
    if events is None:
        return StoreFiles(path, main, journal_mode)
    return StoreFiles(path, main, journal_mode, events_path_of(path), events)
