"""Errors raised by the collectors. `CollectorError` is the root; every error names its source.

Readers do not let these escape for bad input: `collectors.files.read_path` turns them into `Rejected`
entries. They escape only from the single-purpose entry points (`detect_format`, `normalise_windows`, ...)
and for programming errors such as an unknown format name.
"""

from __future__ import annotations

import os
from typing import Self

from correlator.model import EventOrigin

__all__ = [
    "CollectorError",
    "EmptySourceError",
    "NormalisationError",
    "SourceReadError",
    "UnknownFormatError",
    "UnsupportedFormatError",
]


class CollectorError(Exception):
    """Root of the collector errors: a reason and where it happened (file, line or byte offset, record id)."""

    def __init__(
        self,
        reason: str,
        *,
        path: str | os.PathLike[str] | None = None,
        offset: int | None = None,
        record_id: int | None = None,
    ) -> None:
        self.reason = reason
        self.path = os.fspath(path) if path is not None else None
        self.offset = offset
        self.record_id = record_id
        super().__init__(f"{self.where()}: {reason}" if self.path is not None else reason)

    @classmethod
    def at(cls, origin: EventOrigin, reason: str) -> Self:
        """The error located at a record's origin."""
        return cls(reason, path=origin.path, offset=origin.offset, record_id=origin.record_id)

    def where(self) -> str:
        """`path#record=N`, `path:line` or `path`, like `EventOrigin.describe`."""
        return EventOrigin(path=self.path, offset=self.offset, record_id=self.record_id).describe()


class SourceReadError(CollectorError):
    """A file could not be opened or read (missing, permissions, I/O error)."""


class UnknownFormatError(CollectorError):
    """A file's content is neither EVTX nor JSON."""


class EmptySourceError(UnknownFormatError):
    """A file holds nothing but whitespace, so there is no format to detect (and nothing to read)."""


class UnsupportedFormatError(CollectorError, ValueError):
    """A caller asked for a format name the collectors do not know (a programming error, not bad input)."""


class NormalisationError(CollectorError):
    """A record was read but cannot be made into an `Event` (for example a Windows record without EventID)."""
