"""SQLite backend: one file, WAL journal, a table per collection and a contentless FTS5 index for free text.

Layout per collection (``events``, ``alerts``, ``deadletter``)::

    <name>      (seq INTEGER PRIMARY KEY, id UNIQUE, ts epoch ms, k_<field> per INDEXED_FIELDS, doc JSON text)
    <name>_fts  FTS5(text), content='', rowid = <name>.seq

The FTS text of a document is its string and number values, one per line; the tokenizer (``unicode61``, with
``_`` a word character and diacritics kept) makes the words the query language describes. The index is
contentless: the JSON document is already stored once, so the index holds no second copy. Deleting from it
(retention) needs the original text, which `document_text` recomputes from the stored document.

`field:value` on an indexed field or the id uses its column (``COLLATE NOCASE``: ASCII case folding); any
other field is read with ``json_each`` over the document, so arrays match by element. Dotted names are JSON
paths: ``a.b`` is ``{"a": {"b": ...}}``; a key that itself contains a dot cannot be addressed.

Thread-safety: a `SqliteStore` owns one connection and must be used from the thread that opened it (other
threads get a `StoreError`). Open one store per thread or process; WAL lets readers run beside the single
writer, and a writer waits up to `BUSY_TIMEOUT_MS` for another's transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from os import PathLike, fspath
from typing import Any, Final

import orjson

from correlator.store.base import (
    ID_FIELDS,
    INDEXED_FIELDS,
    TIMESTAMP_FIELD,
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
from correlator.store.errors import StoreError
from correlator.store.query import (
    And,
    FieldExists,
    FieldMatch,
    MatchAll,
    Not,
    Or,
    Query,
    Text,
    is_field_name,
    parse_number,
)
from correlator.store.retention import DEFAULT_AGENCY, Purge, RetentionPolicy, agency_slug, cutoff_ms

__all__ = ["BUSY_TIMEOUT_MS", "SCHEMA_VERSION", "SqliteStore", "document_text"]

SCHEMA_VERSION: Final = 1
BUSY_TIMEOUT_MS: Final = 5_000
# Measured on 100k events: a larger page cache keeps the random-keyed id index in memory, and fewer, larger
# checkpoints write each hot page back once per checkpoint instead of once per batch.
_PRAGMAS: Final = (
    f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}",
    "PRAGMA synchronous = NORMAL",
    "PRAGMA cache_size = -65536",  # KiB: up to 64 MiB, allocated as used
    "PRAGMA wal_autocheckpoint = 4000",  # pages: 16 MiB at the default page size
)
# FTS5 merges its segments less eagerly than the default (4/16): about 1.4x faster bulk inserts.
_FTS_MERGE: Final = (("automerge", 16), ("crisismerge", 64))
FTS_TOKENIZER: Final = "unicode61 remove_diacritics 0 tokenchars '_'"


@dataclass(frozen=True, slots=True)
class _Table:
    name: str
    key_columns: tuple[str, ...]  # aligned with INDEXED_FIELDS[collection] and Record.keys
    columns: dict[str, str]  # dotted field -> column, for the id and the indexed fields

    @classmethod
    def of(cls, collection: Collection) -> _Table:
        keys = tuple("k_" + name.replace(".", "_") for name in INDEXED_FIELDS[collection])
        columns = dict(zip(INDEXED_FIELDS[collection], keys, strict=True))
        columns[ID_FIELDS[collection]] = "id"
        return cls(collection.value, keys, columns)

    @property
    def fts(self) -> str:
        return f"{self.name}_fts"

    def ddl(self) -> list[str]:
        keys = "".join(f"    {col} TEXT COLLATE NOCASE,\n" for col in self.key_columns)
        return [
            f"CREATE TABLE {self.name} (\n"
            "    seq INTEGER PRIMARY KEY,\n"
            "    id TEXT NOT NULL UNIQUE COLLATE NOCASE,\n"
            "    ts INTEGER NOT NULL,\n"
            f"{keys}"
            "    doc TEXT NOT NULL\n"
            ")",
            f"CREATE INDEX {self.name}_ts ON {self.name} (ts, id)",  # the default sort, ties by id
            *(f"CREATE INDEX {self.name}_{col} ON {self.name} ({col}, ts)" for col in self.key_columns),
            f"CREATE VIRTUAL TABLE {self.fts} USING fts5(text, content='', columnsize=0, "
            f'tokenize="{FTS_TOKENIZER}")',
            *(
                f"INSERT INTO {self.fts} ({self.fts}, rank) VALUES ('{key}', {value})"  # noqa: S608
                for key, value in _FTS_MERGE
            ),
        ]

    @property
    def insert_sql(self) -> str:
        columns = ", ".join(("id", "ts", *self.key_columns, "doc"))
        marks = ", ".join("?" * (len(self.key_columns) + 3))
        return f"INSERT OR IGNORE INTO {self.name} ({columns}) VALUES ({marks})"  # noqa: S608


_TABLES: Final = {collection: _Table.of(collection) for collection in Collection}

# Schema migrations: version -> statements that bring the previous version to it.
_MIGRATIONS: Final[dict[int, list[str]]] = {
    1: [stmt for table in _TABLES.values() for stmt in table.ddl()],
}


class SqliteStore(Store):
    """The `Store` contract over one SQLite database file (or ``":memory:"``)."""

    backend = "sqlite"

    def __init__(self, path: str | PathLike[str], *, clock: Clock | None = None) -> None:
        super().__init__(clock=clock)
        self.path = fspath(path)
        try:
            self._conn: sqlite3.Connection | None = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open database: {exc}") from exc
        try:
            with self._errors("open"):
                (self.journal_mode,) = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()
                for pragma in _PRAGMAS:
                    self._conn.execute(pragma)
                self._migrate(self._conn)
        except BaseException:
            self._conn.close()
            self._conn = None
            raise

    def __repr__(self) -> str:
        return f"SqliteStore({self.path!r})"

    @property
    def schema_version(self) -> int:
        with self._errors("read schema version"):
            return self._schema_version(self._connection())

    def close(self) -> None:
        conn = self._conn
        if conn is None:
            return
        with self._errors("close"):
            try:
                conn.execute("PRAGMA optimize")
            finally:
                conn.close()  # from another thread this raises, and the store stays open
                self._conn = None

    # -- connection and transactions

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"{self.path}: store is closed")
        return self._conn

    @contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: {action}: {exc}") from exc

    @contextmanager
    def _transaction(self, action: str, begin: str = "BEGIN") -> Iterator[sqlite3.Connection]:
        conn = self._connection()
        with self._errors(action):
            conn.execute(begin)
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @staticmethod
    def _schema_version(conn: sqlite3.Connection) -> int:
        exists = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        ).fetchone()
        if not exists:
            return 0
        return int(conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0])

    def _migrate(self, conn: sqlite3.Connection) -> None:
        current = self._schema_version(conn)
        if current == SCHEMA_VERSION:
            return
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: database schema version {current} is newer than this socctl supports "
                f"({SCHEMA_VERSION})"
            )
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version "
                "(version INTEGER PRIMARY KEY, applied_ms INTEGER NOT NULL)"
            )
            current = self._schema_version(conn)  # again, under the write lock
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in _MIGRATIONS[version]:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version VALUES (?, ?)", (version, self._clock()))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    # -- writes

    def _write(self, collection: Collection, records: Sequence[Record]) -> WriteResult:
        table = _TABLES[collection]
        with self._transaction(f"write {collection}", "BEGIN IMMEDIATE") as conn:
            (last_seq,) = conn.execute(f"SELECT coalesce(max(seq), 0) FROM {table.name}").fetchone()  # noqa: S608
            before = conn.total_changes
            conn.executemany(table.insert_sql, [(r.id, r.timestamp_ms, *r.keys, r.source) for r in records])
            written = conn.total_changes - before
            if written:
                # New rows are exactly those past the old max(seq): this transaction holds the write lock.
                first: dict[str, Record] = {}
                for record in records:
                    first.setdefault(record.id.lower(), record)
                inserted = conn.execute(
                    f"SELECT seq, id FROM {table.name} WHERE seq > ?", (last_seq,)  # noqa: S608
                ).fetchall()
                conn.executemany(
                    f"INSERT INTO {table.fts} (rowid, text) VALUES (?, ?)",  # noqa: S608
                    [(seq, document_text(first[doc_id.lower()].doc)) for seq, doc_id in inserted],
                )
        return WriteResult(written=written, duplicates=len(records) - written)

    # -- retention

    def _apply_retention(self, policy: RetentionPolicy, now_ms: int, dry_run: bool) -> list[Purge]:
        """Rows are grouped by agency (``organization.id`` as a slug; none: the default agency)."""
        purges: list[Purge] = []
        for collection in Collection:
            table = _TABLES[collection]
            latest = max(cutoff_ms(policy, agency, collection.value, now_ms)
                         for agency in (*policy.agencies, DEFAULT_AGENCY))
            agency_sql = "json_extract(doc, '$.organization.id')"
            with self._transaction(f"retention {collection}", "BEGIN IMMEDIATE") as conn:
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
                        conn.executemany(
                            f"INSERT INTO {table.fts} ({table.fts}, rowid, text) VALUES ('delete', ?, ?)",  # noqa: S608
                            [(seq, document_text(orjson.loads(doc))) for seq, doc in rows],
                        )
                        conn.execute(f"DELETE FROM {table.name} WHERE {selector}", (cutoff, raw_agency))  # noqa: S608
                    purges.append(Purge(f"{self.path}:{table.name}", collection.value, agency,
                                        policy.level_for(agency), cutoff, len(rows), not dry_run))
        return purges

    # -- reads

    def _search(self, where: Filter, sort: Sort, limit: int, offset: int) -> SearchPage:
        table = _TABLES[where.collection]
        clause, params = _where_sql(table, where)
        order = _order_sql(table, sort)
        with self._transaction(f"search {where.collection}") as conn:
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
        table = _TABLES[where.collection]
        clause, params = _where_sql(table, where)
        with self._errors(f"count {where.collection}"):
            sql = f"SELECT count(*) FROM {table.name} AS d WHERE {clause}"  # noqa: S608
            return int(self._connection().execute(sql, params).fetchone()[0])

    def _terms(self, where: Filter, field: str, size: int) -> list[tuple[FieldValue, int]]:
        table = _TABLES[where.collection]
        clause, params = _where_sql(table, where)
        column = table.columns.get(field)
        if column is not None:
            sql = (
                f"SELECT d.{column} COLLATE BINARY AS v, 'text', count(*) AS n FROM {table.name} AS d "  # noqa: S608
                f"WHERE {clause} AND d.{column} IS NOT NULL GROUP BY v ORDER BY n DESC, v LIMIT ?"
            )
        else:
            sql = (
                f"SELECT j.value AS v, j.type AS t, count(DISTINCT d.seq) AS n "  # noqa: S608
                f"FROM {table.name} AS d, json_each(d.doc, '{_json_path(field)}') AS j "
                f"WHERE {clause} AND j.type IN ('text', 'integer', 'real', 'true', 'false') "
                "GROUP BY t, v ORDER BY n DESC, v LIMIT ?"
            )
        with self._errors(f"terms {where.collection}.{field}"):
            rows = self._connection().execute(sql, [*params, size]).fetchall()
        return [(_json_value(value, kind), count) for value, kind, count in rows]

    def _date_histogram(self, where: Filter, interval_ms: int) -> list[tuple[int, int]]:
        table = _TABLES[where.collection]
        clause, params = _where_sql(table, where)
        step = int(interval_ms)
        sql = (
            f"SELECT d.ts - ((d.ts % {step}) + {step}) % {step} AS b, count(*) FROM {table.name} AS d "  # noqa: S608
            f"WHERE {clause} GROUP BY b ORDER BY b"
        )
        with self._errors(f"date_histogram {where.collection}"):
            rows = self._connection().execute(sql, params).fetchall()
        return [(int(start), int(count)) for start, count in rows]

    def _get(self, collection: Collection, doc_id: str) -> dict[str, Any] | None:
        table = _TABLES[collection]
        with self._errors(f"get {collection}"):
            row = self._connection().execute(
                f"SELECT doc FROM {table.name} WHERE id = ?", (doc_id,)  # noqa: S608
            ).fetchone()
        return None if row is None else orjson.loads(row[0])


# -- query AST -> SQL (pure functions) -----------------------------------------------------------------------


def _where_sql(table: _Table, where: Filter) -> tuple[str, list[Any]]:
    clause, params = _query_sql(table, where.query)
    clauses = [clause]
    if where.since_ms is not None:
        clauses.append("d.ts >= ?")
        params.append(where.since_ms)
    if where.until_ms is not None:
        clauses.append("d.ts < ?")
        params.append(where.until_ms)
    return " AND ".join(f"({c})" for c in clauses), params


def _order_sql(table: _Table, sort: Sort) -> str:
    direction = "DESC" if sort.descending else "ASC"
    if sort.field == TIMESTAMP_FIELD:
        return f"d.ts {direction}, d.id"
    column = table.columns.get(sort.field)
    expr = f"d.{column} COLLATE BINARY" if column else f"json_extract(d.doc, '{_json_path(sort.field)}')"
    return f"{expr} {direction} NULLS LAST, d.id"


def _json_path(field: str) -> str:
    if not is_field_name(field):  # the only text spliced into SQL; the grammar keeps quotes out
        raise AssertionError(f"not a field name: {field!r}")
    return "$" + "".join(f'."{part}"' for part in field.split("."))


def _json_value(value: Any, kind: str) -> FieldValue:
    if kind in ("true", "false"):
        return kind == "true"
    return value


def _fts_expression(node: Query) -> str | None:
    """The FTS5 MATCH string for a subtree of free text only (joined by AND/OR), else None."""
    match node:
        case Text(text=text, prefix=prefix):
            quoted = '"' + text.replace('"', '""') + '"'
            return quoted + " *" if prefix else quoted
        case And(items=items) | Or(items=items):
            parts = [_fts_expression(item) for item in items]
            if any(part is None for part in parts):
                return None
            operator = " AND " if isinstance(node, And) else " OR "
            return "(" + operator.join(part for part in parts if part is not None) + ")"
    return None


def _query_sql(table: _Table, node: Query) -> tuple[str, list[Any]]:
    """A boolean SQL expression over the row alias `d`. NULL counts as false: NOT uses `IS NOT 1`."""
    fts = _fts_expression(node)
    if fts is not None:
        return f"d.seq IN (SELECT rowid FROM {table.fts} WHERE {table.fts} MATCH ?)", [fts]  # noqa: S608
    match node:
        case MatchAll():
            return "1", []
        case Not(item=item):
            clause, params = _query_sql(table, item)
            return f"({clause}) IS NOT 1", params
        case And(items=items) | Or(items=items):
            operator = " AND " if isinstance(node, And) else " OR "
            text = [item for item in items if _fts_expression(item) is not None]
            rest = [item for item in items if _fts_expression(item) is None]
            # Free-text siblings go to FTS5 as one MATCH rather than one subquery each.
            grouped: list[Query] = [type(node)(tuple(text))] if len(text) > 1 else text
            clauses, params = [], []
            for item in [*grouped, *rest]:
                clause, item_params = _query_sql(table, item)
                clauses.append(f"({clause})")
                params.extend(item_params)
            return operator.join(clauses), params
        case FieldExists() | FieldMatch():
            return _field_sql(table, node)
    raise TypeError(f"not a query node: {node!r}")


def _like_prefix(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _field_sql(table: _Table, node: FieldExists | FieldMatch) -> tuple[str, list[Any]]:
    column = table.columns.get(node.field)
    if column is not None:
        if isinstance(node, FieldExists):
            return f"d.{column} IS NOT NULL", []
        if node.prefix:
            return f"d.{column} LIKE ? ESCAPE '\\'", [_like_prefix(node.value)]
        return f"d.{column} = ?", [node.value]
    elements = f"SELECT 1 FROM json_each(d.doc, '{_json_path(node.field)}') AS j WHERE"  # noqa: S608
    if isinstance(node, FieldExists):
        return f"EXISTS ({elements} j.type <> 'null')", []
    if node.prefix:
        prefix = _like_prefix(node.value)
        return f"EXISTS ({elements} j.type = 'text' AND j.value LIKE ? ESCAPE '\\')", [prefix]
    conditions = ["(j.type = 'text' AND j.value = ? COLLATE NOCASE)"]
    params: list[Any] = [node.value]
    number = parse_number(node.value)
    if number is not None:
        conditions.append("(j.type IN ('integer', 'real') AND j.value = ?)")
        params.append(number)
    if node.value.lower() in ("true", "false"):
        conditions.append(f"j.type = '{node.value.lower()}'")
    return f"EXISTS ({elements} ({' OR '.join(conditions)}))", params
