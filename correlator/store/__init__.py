"""Storage for events, alerts, dead letters, audit entries, cases and allowlist entries behind one backend-neutral
contract (`Store`).

`open_store()` picks the backend from a URL or the environment; `correlator.store.query` defines the query
language every backend implements.
"""

from correlator.store.base import (
    Collection,
    FieldValue,
    SearchPage,
    Store,
    WriteResult,
    deadletter_id_for,
)
from correlator.store.config import open_store
from correlator.store.errors import (
    BackendUnavailableError,
    InvalidRequestError,
    QuerySyntaxError,
    StoreError,
    UnknownCollectionError,
    VersionConflictError,
)
from correlator.store.query import Query, parse_query
from correlator.store.sqlite import SqliteStore

__all__ = [
    "BackendUnavailableError",
    "Collection",
    "FieldValue",
    "InvalidRequestError",
    "Query",
    "QuerySyntaxError",
    "SearchPage",
    "SqliteStore",
    "Store",
    "StoreError",
    "UnknownCollectionError",
    "VersionConflictError",
    "WriteResult",
    "deadletter_id_for",
    "open_store",
    "parse_query",
]
