"""The store's exceptions. `StoreError` is the root: callers catch it and nothing else.

Kept apart from `base` so that the pure query parser (`query`) can raise `QuerySyntaxError` without importing
the store contract.
"""

from __future__ import annotations

__all__ = [
    "BackendUnavailableError",
    "InvalidRequestError",
    "QuerySyntaxError",
    "StoreError",
    "UnknownCollectionError",
    "VersionConflictError",
]


class StoreError(Exception):
    """Root of every error a store raises; backend errors (sqlite3, HTTP) are wrapped in it."""


class BackendUnavailableError(StoreError):
    """The configured backend cannot be used (not implemented yet, or its dependencies are missing)."""


class UnknownCollectionError(StoreError):
    """A collection name that is not one of `Collection`."""


class InvalidRequestError(StoreError):
    """A well-formed call with an argument out of range: bad sort, page window, interval or field name."""


class QuerySyntaxError(StoreError):
    """A query string that does not parse. `position` is the 0-based offset of the offending character."""

    def __init__(self, reason: str, query: str, position: int) -> None:
        self.reason = reason
        self.query = query
        self.position = position
        super().__init__(f"{reason} at column {position + 1}: {query!r}")

    @property
    def column(self) -> int:
        """1-based column, as shown in the message."""
        return self.position + 1


class VersionConflictError(StoreError):
    """`Store.put` found another version than the caller expected: `expected` is the caller's (None: the document
    must not exist yet), `actual` the stored one (None: there is no such document). Reload and retry."""

    def __init__(self, collection: str, doc_id: str, expected: int | None, actual: int | None) -> None:
        self.collection = collection
        self.doc_id = doc_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"{collection}/{doc_id}: version conflict: expected {_version(expected)}, stored {_version(actual)}"
        )


def _version(version: int | None) -> str:
    return "none" if version is None else str(version)
