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
