"""Logs in the W3C extended log format (IIS, Windows Firewall): `#` lines are directives, `#Fields:` names the
space-separated columns of the rows after it (a log may write it again, with other columns, when its writer
restarts). `W3cLineReader` takes a log's lines in order and gives each row to its format's `row`; `read_w3c`
reads a whole file with one.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Final

from collectors.errors import CollectorError
from correlator.model import Event, EventOrigin, Rejected

__all__ = ["W3cLineReader", "field_names", "read_w3c"]

_UTF8_BOM: Final = b"\xef\xbb\xbf"


def field_names(directive: str) -> tuple[str, ...]:
    """The columns a `#Fields:` directive names."""
    return tuple(directive.removeprefix("#Fields:").split())


class W3cLineReader:
    """The lines of one log, in order: directives update the fields, rows become events (`row`, raising
    `CollectorError` for one that cannot be read: a `Rejected` "line N: reason" with the row as raw). The tailer
    may start inside a file (after a restart): `header_from` then reads the directives at the file's start."""

    format: str = "w3c"
    reject_stage: str = "read"

    def __init__(self, where: str | None, fields: tuple[str, ...] = ()) -> None:
        self.where = where
        self.fields = fields

    def row(self, text: str, origin: EventOrigin) -> Event:
        raise NotImplementedError

    def header_from(self, head: bytes) -> None:
        """The last `#Fields:` directive of a file's first bytes."""
        for data in head.removeprefix(_UTF8_BOM).split(b"\n"):
            text = data.rstrip(b"\r").decode("utf-8", "replace")
            if text.startswith("#Fields:"):
                self.fields = field_names(text)

    def line(self, number: int, data: bytes) -> Event | Rejected | None:
        """The item of line `number` (without its line ending); None for a directive or a blank line."""
        if number == 1:
            data = data.removeprefix(_UTF8_BOM)
        text = data.rstrip(b"\r").decode("utf-8", "backslashreplace")
        if not text.strip():
            return None
        if text.startswith("#"):
            if text.startswith("#Fields:"):
                self.fields = field_names(text)
            return None
        origin = EventOrigin(path=self.where, offset=number, format=self.format)
        try:
            return self.row(text, origin)
        except CollectorError as exc:
            return Rejected(f"line {number}: {exc.reason}", origin, text, stage=self.reject_stage)


def read_w3c(path: Path, reader: W3cLineReader) -> Iterator[Event | Rejected]:
    """Every row of the file `reader` was made for, as an `Event` or a `Rejected`."""
    try:
        with path.open("rb") as handle:
            for number, data in enumerate(handle, 1):
                item = reader.line(number, data.rstrip(b"\n"))
                if item is not None:
                    yield item
    except OSError as exc:
        yield Rejected(f"cannot read file: {exc.strerror or exc}", EventOrigin(path=str(path), format=reader.format))
