"""SQLite backend: WAL journal, a table per collection and a contentless FTS5 index for free text; the events in a
file of their own beside the main file (`correlator.store.sqlite_files`).

Layout per collection (`correlator.store.sqlite_sql`)::

    <name>      (seq INTEGER PRIMARY KEY, id UNIQUE, ts epoch ms, k_<field> per INDEXED_FIELDS,
                 [version, text: cases, allowlist], doc JSON text)
    <name>_fts  FTS5(text), content='', rowid = <name>.seq

The FTS text of a document is its string and number values, one per line; the tokenizer (``unicode61``, with
``_`` a word character and diacritics kept) makes the words the query language describes. The index is
contentless: the JSON document is already stored once, so the index holds no second copy. Deleting from it
(retention, a document overwritten) needs the original text, which `document_text` recomputes from the stored
document. Parts of a case that are never searched (`correlator.store.documents.NOT_SEARCHED`: its alerts,
timeline, ...) are left out of its text.

`field:value` on an indexed field or the id uses its column (``COLLATE NOCASE``: ASCII case folding); any
other field is read with ``json_each`` over the document, so arrays match by element. Dotted names are JSON
paths: ``a.b`` is ``{"a": {"b": ...}}``; a key that itself contains a dot cannot be addressed.

A versioned document (`Store.put`) is written in one ``BEGIN IMMEDIATE`` transaction that reads the stored
version and inserts, or updates ``WHERE seq = ? AND version = ?``: no other writer can come in between.
Inside `Store.batch` every call is part of the batch's ``BEGIN IMMEDIATE`` transaction on that file instead (no
savepoint per call: a write that fails part-way undoes the whole batch, `SqliteStore._transaction`): a batch
begins a file's transaction when it first uses the file (a batch of alerts and cases never takes the
events file's lock) and commits the events file first. Two batches that each hold one file and want the other
wait for each other until `BUSY_TIMEOUT_MS`, when one fails; the engine's batches take the main file only, or the
events file first.

Thread-safety: a `SqliteStore` owns a connection per file and is used by one thread at a time. Open one store per
thread or process; WAL lets readers run beside the single writer of each file, and a writer waits up to
`BUSY_TIMEOUT_MS` for another's transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from os import PathLike, fspath
from typing import Any

import orjson

from correlator.store.base import (
    VERSIONED,
    Clock,
    Collection,
    FieldValue,
    Filter,
    Record,
    SearchPage,
    Sort,
    Store,
    WriteResult,
    document_text,
)
from correlator.store.documents import NOT_SEARCHED, RETENTION_FIELDS, PreparedRecord, agency_of, searchable
from correlator.store.errors import StoreError, VersionConflictError
from correlator.store.retention import DEFAULT_AGENCY, Purge, RetentionPolicy, agency_slug, cutoff_ms
from correlator.store.sqlite_files import BUSY_TIMEOUT_MS, StoreFiles, errors, open_files, schema_version
from correlator.store.sqlite_sql import (
    SCHEMA_VERSION,
    TABLES,
    Table,
    json_path,
    json_value,
    order_sql,
    where_sql,
)

__all__ = ["BUSY_TIMEOUT_MS", "SCHEMA_VERSION", "SqliteStore", "document_text"]

def _texts(table: Table) -> Callable[[dict[str, Any]], str]:
    """The free text of documents of `table` (their searchable parts), as one function for a batch."""
    text = document_text
    collection = Collection(table.name)
    if collection not in NOT_SEARCHED:
        return text
    return lambda doc: text(searchable(collection, doc))


def _text(table: Table, doc: dict[str, Any]) -> str:
    """The free text of a document of `table`: its searchable parts."""
    return _texts(table)(doc)


def _values(table: Table, record: Record, text: str | None = None) -> tuple[Any, ...]:
    """A record's values for `Table.value_columns`; `text` is its free text, for a versioned table."""
    if not table.versioned:
        return (record.id, record.timestamp_ms, *record.keys, record.source)
    text = _text(table, record.doc) if text is None else text
    return (record.id, record.timestamp_ms, *record.keys, int(record.doc["version"]), text, record.source)


class SqliteStore(Store):
    """The `Store` contract over the SQLite files of a store (`correlator.store.sqlite_files`), or ``":memory:"``."""

    backend = "sqlite"

    def __init__(self, path: str | PathLike[str], *, clock: Clock | None = None) -> None:
        super().__init__(clock=clock)
        self.path = fspath(path)
        self._in_batch = False  # inside `batch`: each file's transaction begun on first use
        self._failed: BaseException | None = None  # inside `batch`: a write that failed part-way
        self._files: StoreFiles | None = open_files(self.path, self._clock)
        self.journal_mode = self._files.journal_mode
        self._placed = self._files.connections()

    def __repr__(self) -> str:
        return f"SqliteStore({self.path!r})"

    @property
    def paths(self) -> tuple[str, ...]:
        """The store's database files: the main file, and the events file when the events have their own."""
        return self._open_files().paths

    @property
    def schema_version(self) -> int:
        with self._errors("read schema version"):
            return schema_version(self._connection())

    def close(self) -> None:
        files = self._files
        if files is None:
            return
        files.close()  # from another thread this raises, and the store stays open
        self._files = None

    # -- connection and transactions

    def _open_files(self) -> StoreFiles:
        if self._files is None:
            raise StoreError(f"{self.path}: store is closed")
        return self._files

    def _connection(self, collection: Collection | None = None) -> sqlite3.Connection:
        """The connection to `collection`'s file (None: the main file). Inside `batch` the file's write
        transaction is begun on first use, reads included: the batch holds each file it touches until it ends."""
        files = self._open_files()
        if collection is None:
            path, conn = files.path, files.main
        else:
            path, conn = self._placed[collection]
        if self._in_batch and not conn.in_transaction:
            with errors(path, "begin a batch of writes"):
                conn.execute("BEGIN IMMEDIATE")
        return conn

    def _errors(self, action: str, collection: Collection | None = None) -> AbstractContextManager[None]:
        return errors(self.path if collection is None else self._placed[collection][0], action)

    @contextmanager
    def batch(self) -> Iterator[None]:
        if self._in_batch:
            yield
            return
        files = self._open_files()
        self._in_batch = True
        self._failed = None
        try:
            yield
        except BaseException:
            self._in_batch = False
            self._end(files, "ROLLBACK", "undo a batch of writes")
            raise
        self._in_batch = False
        failed, self._failed = self._failed, None
        if failed is not None:  # a write failed part-way and the block went on: none of the batch is kept
            self._end(files, "ROLLBACK", "undo a batch of writes")
            raise StoreError(f"{self.path}: batch undone: a write inside it failed: {failed}") from failed
        self._end(files, "COMMIT", "commit a batch of writes")

    @staticmethod
    def _end(files: StoreFiles, statement: str, action: str) -> None:
        """COMMIT or ROLLBACK each file's open transaction, the events file first; on a failure the files not
        yet committed are rolled back and the error says which were."""
        done: list[str] = []
        for path, conn in files.by_commit_order():
            if not conn.in_transaction:
                continue
            try:
                with errors(path, action):
                    conn.execute(statement)
            except StoreError as exc:
                for _, rest in files.by_commit_order():
                    if rest.in_transaction:
                        rest.execute("ROLLBACK")
                if done:
                    raise StoreError(f"{exc} (committed before the failure: {', '.join(done)})") from exc
                raise
            done.append(path)

    @contextmanager
    def _transaction(self, action: str, collection: Collection | None = None,
                     begin: str = "BEGIN") -> Iterator[sqlite3.Connection]:
        """A read (``BEGIN``) or a write (``BEGIN IMMEDIATE``) of its own, or inside `batch` a part of the
        batch's transaction. There no savepoint undoes a failed call's writes (FTS5 writes its pending index
        data out at every savepoint: a case saved in a savepoint cost twice as much): a call writes only after
        its checks (a version conflict writes nothing), and a write that fails part-way marks the batch, which
        then commits nothing (`batch` raises)."""
        conn = self._connection(collection)
        if self._in_batch:
            try:
                with self._errors(action, collection):
                    yield conn
            except VersionConflictError:
                raise
            except BaseException as exc:
                if begin != "BEGIN" and self._failed is None:
                    self._failed = exc
                raise
            return
        with self._errors(action, collection):
            conn.execute(begin)
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # -- writes

    def _write(self, collection: Collection, records: Sequence[Record], *, replace: bool = False) -> WriteResult:
        table = TABLES[collection]
        if replace:
            with self._transaction(f"write {collection}", collection, "BEGIN IMMEDIATE") as conn:
                for record in records:
                    self._overwrite(conn, table, record)
            return WriteResult(written=len(records))
        text = _texts(table)
        return self._insert(collection, table, [_values(table, r) for r in records],
                            [r.id for r in records], lambda i: text(records[i].doc))

    def _write_prepared(self, collection: Collection, records: Sequence[PreparedRecord]) -> WriteResult:
        table = TABLES[collection]
        return self._insert(collection, table, [(r.id, r.timestamp_ms, *r.keys, r.source) for r in records],
                            [r.id for r in records], lambda i: records[i].text)

    def _insert(self, collection: Collection, table: Table, rows: list[tuple[Any, ...]], ids: list[str],
                text_of: Callable[[int], str]) -> WriteResult:
        """Create-only insert of `rows` (values of `table.value_columns`) with the free text of the new ones
        (`text_of(index)`)."""
        with self._transaction(f"write {collection}", collection, "BEGIN IMMEDIATE") as conn:
            (last_seq,) = conn.execute(f"SELECT coalesce(max(seq), 0) FROM {table.name}").fetchone()  # noqa: S608
            before = conn.total_changes
            conn.executemany(table.insert_sql, rows)
            written = conn.total_changes - before
            if written:
                conn.executemany(f"INSERT INTO {table.fts} (rowid, text) VALUES (?, ?)",  # noqa: S608
                                 self._new_texts(conn, table, ids, text_of, last_seq, written))
        return WriteResult(written=written, duplicates=len(rows) - written)

    @staticmethod
    def _new_texts(conn: sqlite3.Connection, table: Table, ids: list[str], text_of: Callable[[int], str],
                   last_seq: int, written: int) -> list[tuple[int, str]]:
        """(seq, free text) of the rows just inserted (documents `ids`, in order): those past the old max(seq),
        `last_seq` (the transaction holds the write lock)."""
        (max_seq,) = conn.execute(f"SELECT max(seq) FROM {table.name}").fetchone()  # noqa: S608
        if written == len(ids) and max_seq == last_seq + written:
            # Every record is new, and each took the next seq in turn: a new rowid is one past the largest, unless
            # the largest is 2**63 - 1, which the max(seq) test rules out.
            return [(seq, text_of(i)) for i, seq in enumerate(range(last_seq + 1, last_seq + 1 + written))]
        first: dict[str, int] = {}
        for i, doc_id in enumerate(ids):
            first.setdefault(doc_id.lower(), i)
        inserted = conn.execute(
            f"SELECT seq, id FROM {table.name} WHERE seq > ?", (last_seq,)  # noqa: S608
        ).fetchall()
        return [(seq, text_of(first[doc_id.lower()])) for seq, doc_id in inserted]

    def _put(self, collection: Collection, record: Record, expected_version: int | None) -> None:
        table = TABLES[collection]
        text = _text(table, record.doc)
        values = _values(table, record, text)
        with self._transaction(f"put {collection}/{record.id}", collection, "BEGIN IMMEDIATE") as conn:
            row = conn.execute(
                f"SELECT seq, version, text FROM {table.name} WHERE id = ?", (record.id,)  # noqa: S608
            ).fetchone()
            stored = None if row is None else int(row[1])
            if stored != expected_version:
                if row is not None and self._stored_is(conn, table, row[0], record):
                    return  # this very document is stored: a put retried after it had succeeded
                raise VersionConflictError(collection.value, record.id, expected_version, stored)
            if row is None:
                seq = conn.execute(table.insert_sql, values).lastrowid
            else:
                seq = row[0]
                self._forget_texts(conn, table, [(seq, row[2])])
                updated = conn.execute(f"{table.update_sql} AND version = ?", [*values[1:], seq, expected_version])
                if updated.rowcount != 1:  # pragma: no cover - the write lock is held since the read
                    raise VersionConflictError(collection.value, record.id, expected_version, None)
            conn.execute(f"INSERT INTO {table.fts} (rowid, text) VALUES (?, ?)", (seq, text))  # noqa: S608

    @staticmethod
    def _stored_is(conn: sqlite3.Connection, table: Table, seq: int, record: Record) -> bool:
        (doc,) = conn.execute(f"SELECT doc FROM {table.name} WHERE seq = ?", (seq,)).fetchone()  # noqa: S608
        return bool(orjson.loads(doc) == orjson.loads(record.source))

    def _overwrite(self, conn: sqlite3.Connection, table: Table, record: Record) -> None:
        """Insert `record`, or overwrite the stored document with its id (its free text too)."""
        row = conn.execute(f"SELECT seq, doc FROM {table.name} WHERE id = ?", (record.id,)).fetchone()  # noqa: S608
        if row is None:
            seq = conn.execute(table.insert_sql, _values(table, record)).lastrowid
        else:
            seq = row[0]
            self._forget_docs(conn, table, [row])
            conn.execute(table.update_sql, [*_values(table, record)[1:], seq])
        conn.execute(f"INSERT INTO {table.fts} (rowid, text) VALUES (?, ?)",  # noqa: S608
                     (seq, _text(table, record.doc)))

    @classmethod
    def _forget_docs(cls, conn: sqlite3.Connection, table: Table, rows: Sequence[tuple[int, str]]) -> None:
        """Remove stored documents (seq, JSON text) from the contentless free-text index."""
        text = _texts(table)
        cls._forget_texts(conn, table, [(seq, text(orjson.loads(doc))) for seq, doc in rows])

    @staticmethod
    def _forget_texts(conn: sqlite3.Connection, table: Table, rows: Sequence[tuple[int, str]]) -> None:
        """Remove rows (seq, the free text indexed for them) from the contentless free-text index."""
        conn.executemany(
            f"INSERT INTO {table.fts} ({table.fts}, rowid, text) VALUES ('delete', ?, ?)", rows  # noqa: S608
        )

    # -- retention

    def _apply_retention(self, policy: RetentionPolicy, now_ms: int, dry_run: bool) -> list[Purge]:
        """Rows are grouped by agency (``organization.id`` as a slug; none: the default agency)."""
        purges: list[Purge] = []
        for collection in Collection:
            if collection in VERSIONED:
                purges.extend(self._retain_versioned(collection, policy, now_ms, dry_run))
                continue
            table = TABLES[collection]
            latest = max(cutoff_ms(policy, agency, collection.value, now_ms)
                         for agency in (*policy.agencies, DEFAULT_AGENCY))
            agency_sql = "json_extract(doc, '$.organization.id')"
            with self._transaction(f"retention {collection}", collection, "BEGIN IMMEDIATE") as conn:
                groups = conn.execute(
                    f"SELECT {agency_sql}, count(*), max(ts) FROM {table.name} WHERE ts < ? GROUP BY 1",  # noqa: S608
                    (latest,),
                ).fetchall()
                for raw_agency, _, _ in sorted(groups, key=lambda row: str(row[0])):
                    agency = agency_slug(str(raw_agency)) if raw_agency is not None else DEFAULT_AGENCY
                    cutoff = cutoff_ms(policy, agency, collection.value, now_ms)
                    selector = f"ts < ? AND {agency_sql} IS ?"
                    rows = conn.execute(
                        f"SELECT seq, doc FROM {table.name} WHERE {selector}", (cutoff, raw_agency)  # noqa: S608
                    ).fetchall()
                    if not rows:
                        continue
                    if not dry_run:
                        self._forget_docs(conn, table, rows)
                        conn.execute(f"DELETE FROM {table.name} WHERE {selector}", (cutoff, raw_agency))  # noqa: S608
                    purges.append(Purge(f"{self._placed[collection][0]}:{table.name}", collection.value, agency,
                                        policy.level_for(agency), cutoff, len(rows), not dry_run))
        return purges

    def _retain_versioned(
        self, collection: Collection, policy: RetentionPolicy, now_ms: int, dry_run: bool
    ) -> list[Purge]:
        """Cases closed, and allowlist entries expired, before their agency's cutoff (`RETENTION_FIELDS`)."""
        table = TABLES[collection]
        name = RETENTION_FIELDS[collection]
        latest = max(cutoff_ms(policy, agency, collection.value, now_ms)
                     for agency in (*policy.agencies, DEFAULT_AGENCY))
        purges: list[Purge] = []
        with self._transaction(f"retention {collection}", collection, "BEGIN IMMEDIATE") as conn:
            rows = conn.execute(
                f"SELECT seq, text, doc FROM {table.name} "  # noqa: S608
                f"WHERE json_extract(doc, '{json_path(name)}') < ?",
                (latest,),
            ).fetchall()
            expired: dict[str, list[tuple[int, str]]] = {}
            for seq, text, source in rows:
                doc = orjson.loads(source)
                raw = agency_of(doc)
                agency = agency_slug(raw) if raw else DEFAULT_AGENCY
                value = doc.get(name)
                if isinstance(value, int) and value < cutoff_ms(policy, agency, collection.value, now_ms):
                    expired.setdefault(agency, []).append((seq, text))
            for agency, chosen in sorted(expired.items()):
                if not dry_run:
                    self._forget_texts(conn, table, chosen)
                    conn.executemany(f"DELETE FROM {table.name} WHERE seq = ?",  # noqa: S608
                                     [(seq,) for seq, _ in chosen])
                purges.append(Purge(f"{self._placed[collection][0]}:{table.name}", collection.value, agency,
                                    policy.level_for(agency), cutoff_ms(policy, agency, collection.value, now_ms),
                                    len(chosen), not dry_run))
        return purges

    # -- reads

    def _search(self, where: Filter, sort: Sort, limit: int, offset: int) -> SearchPage:
        table = TABLES[where.collection]
        clause, params = where_sql(table, where)
        order = order_sql(table, sort)
        with self._transaction(f"search {where.collection}", where.collection) as conn:
            count_sql = f"SELECT count(*) FROM {table.name} AS d WHERE {clause}"  # noqa: S608
            (total,) = conn.execute(count_sql, params).fetchone()
            rows = []
            if limit and total > offset:
                rows = conn.execute(
                    f"SELECT d.doc FROM {table.name} AS d WHERE {clause} ORDER BY {order} LIMIT ? OFFSET ?",  # noqa: S608
                    [*params, limit, offset],
                ).fetchall()
        return SearchPage(total=total, hits=[orjson.loads(doc) for (doc,) in rows])

    def _count(self, where: Filter) -> int:
        table = TABLES[where.collection]
        clause, params = where_sql(table, where)
        with self._errors(f"count {where.collection}", where.collection):
            sql = f"SELECT count(*) FROM {table.name} AS d WHERE {clause}"  # noqa: S608
            return int(self._connection(where.collection).execute(sql, params).fetchone()[0])

    def _terms(self, where: Filter, field: str, size: int) -> list[tuple[FieldValue, int]]:
        table = TABLES[where.collection]
        clause, params = where_sql(table, where)
        column = table.columns.get(field)
        if column is not None:
            sql = (
                f"SELECT d.{column} COLLATE BINARY AS v, 'text', count(*) AS n FROM {table.name} AS d "  # noqa: S608
                f"WHERE {clause} AND d.{column} IS NOT NULL GROUP BY v ORDER BY n DESC, v LIMIT ?"
            )
        else:
            sql = (
                f"SELECT j.value AS v, j.type AS t, count(DISTINCT d.seq) AS n "  # noqa: S608
                f"FROM {table.name} AS d, json_each(d.doc, '{json_path(field)}') AS j "
                f"WHERE {clause} AND j.type IN ('text', 'integer', 'real', 'true', 'false') "
                "GROUP BY t, v ORDER BY n DESC, v LIMIT ?"
            )
        with self._errors(f"terms {where.collection}.{field}", where.collection):
            rows = self._connection(where.collection).execute(sql, [*params, size]).fetchall()
        return [(json_value(value, kind), count) for value, kind, count in rows]

    def _date_histogram(self, where: Filter, interval_ms: int) -> list[tuple[int, int]]:
        table = TABLES[where.collection]
        clause, params = where_sql(table, where)
        step = int(interval_ms)
        sql = (
            f"SELECT d.ts - ((d.ts % {step}) + {step}) % {step} AS b, count(*) FROM {table.name} AS d "  # noqa: S608
            f"WHERE {clause} GROUP BY b ORDER BY b"
        )
        with self._errors(f"date_histogram {where.collection}", where.collection):
            rows = self._connection(where.collection).execute(sql, params).fetchall()
        return [(int(start), int(count)) for start, count in rows]

    def _get(self, collection: Collection, doc_id: str) -> dict[str, Any] | None:
        table = TABLES[collection]
        with self._errors(f"get {collection}", collection):
            row = self._connection(collection).execute(
                f"SELECT doc FROM {table.name} WHERE id = ?", (doc_id,)  # noqa: S608
            ).fetchone()
        return None if row is None else orjson.loads(row[0])
