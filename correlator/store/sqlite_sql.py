"""The SQLite backend's tables and SQL: the layout of each collection, the schema migrations, and the query AST
(`correlator.store.query`) translated to SQL. Pure data and functions; `correlator.store.sqlite` runs them.

Layout per collection::

    <name>      (seq INTEGER PRIMARY KEY, id UNIQUE, ts epoch ms, k_<field> per INDEXED_FIELDS,
                 [version INTEGER, text: versioned collections], doc JSON text)
    <name>_fts  FTS5(text), content='', rowid = <name>.seq

Schema versions of the main file: 1 made ``events``, ``alerts`` and ``deadletter``; 2 adds ``cases``, ``allowlist``
and ``audit``; 3 records the layout (``store_layout``: the events in the main file or in their own, where a new
store puts them, `correlator.store.sqlite_files`). The events file has its own versions: 1 made ``events``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from correlator.store.base import FieldValue, Filter, Sort
from correlator.store.documents import ID_FIELDS, INDEXED_FIELDS, TIMESTAMP_FIELD, VERSIONED, Collection
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

__all__ = [
    "EVENTS_MIGRATIONS",
    "EVENTS_SCHEMA_VERSION",
    "FTS_TOKENIZER",
    "LAYOUT_TABLE",
    "LAYOUT_VERSION",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "TABLES",
    "Table",
    "json_path",
    "json_value",
    "main_migrations",
    "order_sql",
    "where_sql",
]

SCHEMA_VERSION: Final = 3
# FTS5 merges its segments less eagerly than the default (4/16): about 1.4x faster bulk inserts.
_FTS_MERGE: Final = (("automerge", 16), ("crisismerge", 64))
FTS_TOKENIZER: Final = "unicode61 remove_diacritics 0 tokenchars '_'"


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    key_columns: tuple[str, ...]  # aligned with INDEXED_FIELDS[collection] and Record.keys
    columns: dict[str, str]  # dotted field -> column, for the id and the indexed fields
    # Versioned: a `version` column (the document's version, checked by puts) and a `text` column (the free text
    # indexed for the row, which the contentless index needs to forget it when the document changes).
    versioned: bool = False

    @classmethod
    def of(cls, collection: Collection) -> Table:
        keys = tuple("k_" + name.replace(".", "_") for name in INDEXED_FIELDS[collection])
        columns = dict(zip(INDEXED_FIELDS[collection], keys, strict=True))
        columns[ID_FIELDS[collection]] = "id"
        return cls(collection.value, keys, columns, collection in VERSIONED)

    @property
    def fts(self) -> str:
        return f"{self.name}_fts"

    @property
    def value_columns(self) -> tuple[str, ...]:
        """The columns a row is written with, in order: id, ts, the keys, [version, text], doc."""
        return ("id", "ts", *self.key_columns, *(("version", "text") if self.versioned else ()), "doc")

    def ddl(self) -> list[str]:
        keys = "".join(f"    {col} TEXT COLLATE NOCASE,\n" for col in self.key_columns)
        version = "    version INTEGER NOT NULL,\n    text TEXT NOT NULL,\n" if self.versioned else ""
        return [
            f"CREATE TABLE {self.name} (\n"
            "    seq INTEGER PRIMARY KEY,\n"
            "    id TEXT NOT NULL UNIQUE COLLATE NOCASE,\n"
            "    ts INTEGER NOT NULL,\n"
            f"{keys}"
            f"{version}"
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
        """Create-only: a row whose id is stored already is ignored."""
        marks = ", ".join("?" * len(self.value_columns))
        return f"INSERT OR IGNORE INTO {self.name} ({', '.join(self.value_columns)}) VALUES ({marks})"  # noqa: S608

    @property
    def update_sql(self) -> str:
        """Overwrite the row of `seq` (the last parameter) with new values."""
        assignments = ", ".join(f"{col} = ?" for col in self.value_columns if col != "id")
        return f"UPDATE {self.name} SET {assignments} WHERE seq = ?"  # noqa: S608


TABLES: Final = {collection: Table.of(collection) for collection in Collection}

# Schema migrations of the main file: version -> statements that bring the previous version to it. With
# `events_file` the events table is in the events file instead (`EVENTS_MIGRATIONS`).
_FIRST: Final = (Collection.EVENTS, Collection.ALERTS, Collection.DEADLETTER)
LAYOUT_TABLE: Final = "store_layout"
LAYOUT_VERSION: Final = 3


def main_migrations(*, events_file: bool) -> dict[int, list[str]]:
    first = [c for c in _FIRST if not (events_file and c is Collection.EVENTS)]
    return {
        1: [stmt for collection in first for stmt in TABLES[collection].ddl()],
        2: [stmt for collection in Collection if collection not in _FIRST for stmt in TABLES[collection].ddl()],
        LAYOUT_VERSION: [f"CREATE TABLE {LAYOUT_TABLE} (key TEXT PRIMARY KEY, value TEXT NOT NULL)"],
    }


MIGRATIONS: Final = main_migrations(events_file=False)  # the single-file layout
EVENTS_SCHEMA_VERSION: Final = 1
EVENTS_MIGRATIONS: Final[dict[int, list[str]]] = {1: TABLES[Collection.EVENTS].ddl()}


def where_sql(table: Table, where: Filter) -> tuple[str, list[Any]]:
    clause, params = _query_sql(table, where.query)
    clauses = [clause]
    if where.since_ms is not None:
        clauses.append("d.ts >= ?")
        params.append(where.since_ms)
    if where.until_ms is not None:
        clauses.append("d.ts < ?")
        params.append(where.until_ms)
    return " AND ".join(f"({c})" for c in clauses), params


def order_sql(table: Table, sort: Sort) -> str:
    direction = "DESC" if sort.descending else "ASC"
    if sort.field == TIMESTAMP_FIELD:
        return f"d.ts {direction}, d.id"
    column = table.columns.get(sort.field)
    expr = f"d.{column} COLLATE BINARY" if column else f"json_extract(d.doc, '{json_path(sort.field)}')"
    return f"{expr} {direction} NULLS LAST, d.id"


def json_path(field: str) -> str:
    if not is_field_name(field):  # the only text spliced into SQL; the grammar keeps quotes out
        raise AssertionError(f"not a field name: {field!r}")
    return "$" + "".join(f'."{part}"' for part in field.split("."))


def json_value(value: Any, kind: str) -> FieldValue:
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


def _query_sql(table: Table, node: Query) -> tuple[str, list[Any]]:
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


def _field_sql(table: Table, node: FieldExists | FieldMatch) -> tuple[str, list[Any]]:
    column = table.columns.get(node.field)
    if column is not None:
        if isinstance(node, FieldExists):
            return f"d.{column} IS NOT NULL", []
        if node.prefix:
            return f"d.{column} LIKE ? ESCAPE '\\'", [_like_prefix(node.value)]
        return f"d.{column} = ?", [node.value]
    elements = f"SELECT 1 FROM json_each(d.doc, '{json_path(node.field)}') AS j WHERE"  # noqa: S608
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
