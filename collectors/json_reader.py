"""JSON log files to `Event | Rejected`: NDJSON (one object per line), JSON arrays of objects, or concatenated
pretty-printed objects (`evtx_dump -o json`, with or without its `Record N` lines).

A record's raw text is its own text in the file (the line for NDJSON), so its event id is stable. A bad
line or record becomes a `Rejected` with its line number (`origin.offset`, 1-based) and reading goes on
with the next one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from collectors.errors import CollectorError
from collectors.generic import normalise_json
from collectors.sentinel_syslog import is_sentinel_syslog, normalise_sentinel_syslog
from collectors.windows import normalise_windows, windows_shape
from correlator.model import Event, EventOrigin, Rejected

__all__ = ["json_type", "normalise_record", "read_json", "read_json_text"]

_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_WHITESPACE = re.compile(r"\s*")
_RECORD_HEADER = re.compile(r"Record \d+[^\n]*")  # evtx_dump writes `Record 12` before each object
_RECORD_HEADER_BYTES = re.compile(rb"Record \d+")
_NEXT_RECORD_LINE = re.compile(r"^(?:[ \t]*[{\[]|Record \d+)", re.MULTILINE)
_DECODER = json.JSONDecoder()
_MAX_REJECTED_RAW = 65_536  # characters of a broken multi-line record kept in its dead-letter entry


def normalise_record(record: dict[str, Any], raw: str, origin: EventOrigin) -> Event:
    """A JSON record to an `Event`: Windows records by `normalise_windows`, Azure Sentinel `Syslog` rows by
    `normalise_sentinel_syslog`, everything else generically.

    In the Windows formats ("evtx-json", "winlogbeat") every record must be a Windows record; in a "json"
    file each record is judged on its own (`Event.System`, a `winlog` object, EventID + Channel, ...)."""
    if origin.format in ("evtx-json", "winlogbeat") or windows_shape(record) is not None:
        return normalise_windows(record, raw, origin)
    if is_sentinel_syslog(record):
        return normalise_sentinel_syslog(record, raw, origin)
    return normalise_json(record, raw, origin)


def _to_event(record: Any, raw: str, origin: EventOrigin) -> Event | Rejected:
    if not isinstance(record, dict):
        return Rejected(f"expected a JSON object, got {json_type(record)}", origin, raw)
    try:
        return normalise_record(record, raw, origin)
    except CollectorError as exc:
        return Rejected(exc.reason, origin, raw, stage="normalise")


def json_type(value: Any) -> str:
    """What a JSON value is, for messages: 'an array', 'a string', ..."""
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null" if value is None else type(value).__name__


def read_json(path: Path, fmt: str = "json") -> Iterator[Event | Rejected]:
    """Every record of a JSON log file as an `Event`, or a `Rejected` for what cannot be read/normalised."""
    where = str(path)
    try:
        with path.open("rb") as handle:
            layout = _layout(handle)
            handle.seek(0)
            if layout == "lines":
                yield from _read_lines(handle, where, fmt)
                return
            data = handle.read() if layout == "document" else b""
    except OSError as exc:
        yield Rejected(f"cannot read file: {exc.strerror or exc}", EventOrigin(path=where, format=fmt))
        return
    if data:
        try:
            text = _decode(data)
        except UnicodeDecodeError as exc:
            yield Rejected(f"not UTF-8/UTF-16 text: {exc.reason} at byte {exc.start}",
                           EventOrigin(path=where, offset=exc.start, format=fmt))
            return
        yield from read_json_text(text, where, fmt)


def _decode(data: bytes) -> str:
    if data[:2] in _UTF16_BOMS:
        return data.decode("utf-16")
    return data.decode("utf-8-sig")


def _layout(handle: BinaryIO) -> str:
    """"lines" (NDJSON, streamed), "document" (array or pretty-printed objects, read whole) or "empty"."""
    head = handle.read(2)
    if head in _UTF16_BOMS:
        return "document"
    handle.seek(0)
    for line in handle:
        first = line.strip().removeprefix(_UTF8_BOM).strip()
        if first:
            break
    else:
        return "empty"
    if first[:1] == b"[" or first == b"{" or _RECORD_HEADER_BYTES.match(first):
        return "document"
    if first[:1] == b"{" and first[-1:] in b"{[,":  # `{"Event": {` : the first object spans lines
        try:
            orjson.loads(first)
        except orjson.JSONDecodeError:
            return "document"
    return "lines"


def _read_lines(handle: BinaryIO, where: str, fmt: str) -> Iterator[Event | Rejected]:
    for number, line in enumerate(handle, 1):
        data = line.strip()
        if not data:
            continue
        if number == 1:
            data = data.removeprefix(_UTF8_BOM)
        origin = EventOrigin(path=where, offset=number, format=fmt)
        try:
            raw = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield Rejected(f"line {number} is not UTF-8: {exc.reason} at column {exc.start + 1}", origin,
                           data.decode("utf-8", "replace"))
            continue
        try:
            record = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            yield Rejected(f"invalid JSON on line {number}, column {exc.colno}: {exc.msg}", origin, raw)
            continue
        yield _to_event(record, raw, origin)


def _resync(text: str, start: int, error_at: int) -> int:
    """Where reading resumes after a broken record starting at `start`: the next line that opens an object
    at the broken record's own indentation (or an evtx_dump `Record N` line), else the end of the text."""
    line_start = text.rfind("\n", 0, start) + 1
    indent = text[line_start:start]
    candidates = []
    if indent.isspace() or not indent:
        for opener in (f"\n{indent}{{", "\nRecord "):
            found = text.find(opener, start + 1)
            if found != -1:
                candidates.append(found + 1)
    else:  # the record shares its line with others (a one-line array): resume after the error
        found_match = _NEXT_RECORD_LINE.search(text, max(error_at, start + 1))
        if found_match:
            candidates.append(found_match.start())
    return min(candidates, default=len(text))


def read_json_text(text: str, where: str, fmt: str = "json") -> Iterator[Event | Rejected]:
    """Records from JSON text holding objects and/or arrays of objects, one after another (any whitespace and
    `Record N` lines between them). A broken record is rejected and reading resumes at the next line that can
    start one."""
    end = len(text)
    pos = 0
    line, line_pos = 1, 0
    depth = 0  # 1 inside a top-level array
    while True:
        blank = _WHITESPACE.match(text, pos)
        start = blank.end() if blank else pos
        line += text.count("\n", line_pos, start)
        line_pos = start
        if start >= end:
            if depth:
                yield Rejected("JSON array is not closed at end of file",
                               EventOrigin(path=where, offset=line, format=fmt))
            return
        char = text[start]
        if depth and char == ",":
            pos = start + 1
            continue
        if char == "[" and not depth:
            depth, pos = 1, start + 1
            continue
        if char == "]" and depth:
            depth, pos = 0, start + 1
            continue
        if char == "R" and (header := _RECORD_HEADER.match(text, start)):
            pos = header.end()
            continue
        origin = EventOrigin(path=where, offset=line, format=fmt)
        try:
            record, stop = _DECODER.raw_decode(text, start)
        except json.JSONDecodeError as exc:
            stop = _resync(text, start, exc.pos)
            yield Rejected(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", origin,
                           text[start:stop][:_MAX_REJECTED_RAW].rstrip())
            pos = stop
            continue
        yield _to_event(record, text[start:stop], origin)
        pos = stop
