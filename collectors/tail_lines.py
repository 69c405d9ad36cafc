"""Lines out of a growing file's bytes, and where each came from: the pure part of the tailer.

`split_lines` takes the bytes read after the last complete line (the carry-over of the previous read plus the new
chunk) and returns the complete lines, how many bytes they used up, and whether the bytes to come still belong to
a line that was too long and has been cut. The caller keeps `buffer[consumed:]` (an incomplete last line) for the
next read. A line is what ends in LF; a CR before the LF is dropped. A line over `max_line` bytes is handed on cut
to its first `max_line` bytes and flagged, the rest of it skipped: reported, never dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, NamedTuple

__all__ = ["MAX_LINE", "FileOrigin", "LineSplit", "Piece", "split_lines"]

MAX_LINE: Final = 1024 * 1024  # bytes


@dataclass(frozen=True, slots=True)
class FileOrigin:
    """Where a tailed line came from. `offset` is the byte offset of its first byte, `end` where the next line
    starts (reading resumes there once this line is accepted), `line` its 1-based line number in the file."""

    path: str
    device: int
    inode: int
    offset: int
    end: int
    line: int
    cut: bool = False  # longer than the limit: the bytes handed on are its start only (a dead letter)
    partial: bool = False  # no line end: the file was rotated away, truncated or deleted before one was written


class Piece(NamedTuple):
    data: bytes  # the line without its line end
    start: int  # index in the buffer of its first byte
    end: int  # index in the buffer after it (after its LF, or after the bytes skipped)
    cut: bool = False
    partial: bool = False


class LineSplit(NamedTuple):
    lines: list[Piece]
    consumed: int  # bytes at the start of the buffer used up; the rest is an incomplete line
    skipping: bool  # the last line was cut before its end arrived: skip up to the next LF


def split_lines(buffer: bytes, *, max_line: int = MAX_LINE, skipping: bool = False, final: bool = False) -> LineSplit:
    """The complete lines at the start of `buffer`. `skipping`: the buffer starts inside a line already handed on
    cut, whose rest is dropped. `final`: no more bytes will come (the file was rotated away or truncated), so a
    last line without LF is a line too (flagged `partial`)."""
    if max_line < 1:
        raise ValueError(f"max_line must be at least 1, got {max_line}")
    lines: list[Piece] = []
    pos, size = 0, len(buffer)
    if skipping:
        newline = buffer.find(b"\n")
        if newline < 0:
            return LineSplit(lines, size, not final)
        pos = newline + 1
    while pos < size:
        newline = buffer.find(b"\n", pos)
        if newline < 0:
            if size - pos > max_line + 1:  # too long already (one byte more may be the CR of a CR LF)
                lines.append(Piece(buffer[pos:pos + max_line], pos, size, cut=True, partial=final))
                return LineSplit(lines, size, not final)
            if final:
                data = buffer[pos:].removesuffix(b"\r")
                lines.append(Piece(data[:max_line], pos, size, cut=len(data) > max_line, partial=True))
                pos = size
            break
        data = buffer[pos:newline].removesuffix(b"\r")
        lines.append(Piece(data[:max_line], pos, newline + 1, cut=True) if len(data) > max_line
                     else Piece(data, pos, newline + 1))
        pos = newline + 1
    return LineSplit(lines, pos, False)

