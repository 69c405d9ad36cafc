"""Log files in, `Event | Rejected` out: format detection, directory walking and the reader for each format.

    for path in iter_files([Path("logs/")]):
        for item in read_path(path):
            ...  # Event -> rules, Rejected -> dead-letter store

Formats: "evtx" (binary event log), "evtx-json" (evtx_dump JSON: `{"Event": {"System": ...}}`),
"winlogbeat" (ECS documents with `winlog`) and "json" (anything else: OTRF/Mordor flat Windows records,
ECS, plain JSON; each record is judged on its own), plus the sensor and agent formats of `PLUGINS`, each a
module with `sniff(head: bytes) -> bool` and `read_file(path) -> Iterator[Event | Rejected]`, tried in the
table's order after the EVTX signature (JSON flavours such as Suricata EVE before the generic JSON reader; text
formats when the file is not JSON). Plugin modules are imported on first use.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Collection, Iterable, Iterator
from datetime import tzinfo
from pathlib import Path
from typing import Any

import orjson

from collectors.errors import (
    CollectorError,
    EmptySourceError,
    SourceReadError,
    UnknownFormatError,
    UnsupportedFormatError,
)
from collectors.evtx_reader import QuietRecords, read_evtx
from collectors.json_reader import read_json
from correlator.model import Event, EventOrigin, Rejected

__all__ = ["FORMATS", "LOG_SUFFIXES", "detect_format", "iter_files", "read_path"]

# Format name -> module with `sniff` and `read_file`, in detection order: JSON flavours first, text formats after.
# Binary formats (told by their magic number) come first; Zeek is sniffed in both the JSON and the text branch
# (its logs are TSV or JSON); syslog, the loosest text format, comes last.
PLUGINS: dict[str, str] = {
    "pcap": "collectors.pcap",
    "suricata-eve": "collectors.suricata",
    "zeek": "collectors.zeek",
    "auditd": "collectors.auditd",
    "windows-firewall": "collectors.windows_firewall",
    "iis": "collectors.iis",
    "squid": "collectors.squid",
    "web-access": "collectors.web_access",
    "syslog": "collectors.syslog_file",
}
_BINARY_PLUGINS: tuple[str, ...] = ("pcap",)
_JSON_PLUGINS: tuple[str, ...] = ("suricata-eve", "zeek")
_TEXT_PLUGINS: tuple[str, ...] = ("zeek", "auditd", "windows-firewall", "iis", "squid", "web-access", "syslog")
FORMATS: tuple[str, ...] = ("evtx", "evtx-json", "winlogbeat", "json", *PLUGINS)
# What a directory walk picks up (besides syslog files named like auth.log.1, secure, messages); files named
# explicitly are always read.
LOG_SUFFIXES: frozenset[str] = frozenset({".evtx", ".json", ".jsonl", ".ndjson", ".log", ".pcap", ".pcapng",
                                          ".cap"})

EVTX_MAGIC = b"ElfFile\x00"
_PEEK_BYTES = 64 * 1024
_MAX_PEEK_BYTES = 16 * 1024 * 1024
_PEEK_LINES = 50
_OBJECT_LINE = re.compile(r"^[ \t]*\{", re.MULTILINE)
_RECORD_HEADER = re.compile(r"Record \d+")
_DECODER = json.JSONDecoder()


def detect_format(path: Path) -> str:
    """The format of a log file from its content: EVTX by its signature, JSON flavours by the first record.

    Raises `SourceReadError` if the file cannot be read, `EmptySourceError` if it holds only whitespace and
    `UnknownFormatError` if it is neither EVTX nor JSON."""
    try:
        with path.open("rb") as handle:
            head = handle.read(len(EVTX_MAGIC))  # an event log is told by its signature alone
            if head == EVTX_MAGIC:
                return "evtx"
            head += handle.read(_PEEK_BYTES - len(head))
            for name in _BINARY_PLUGINS:
                if _plugin(name).sniff(head):
                    return name
            record = _first_record(_peek_text(head))
            if record is None and len(head) == _PEEK_BYTES:  # a first record longer than the peek
                head += handle.read(_MAX_PEEK_BYTES - _PEEK_BYTES)
                record = _first_record(_peek_text(head))
    except OSError as exc:
        raise SourceReadError(f"cannot read file: {exc.strerror or exc}", path=path) from exc
    if record is not None:
        for name in _JSON_PLUGINS:
            if _plugin(name).sniff(head):
                return name
        return _classify(record)
    text = _peek_text(head).lstrip()
    if not text:
        raise EmptySourceError("file is empty", path=path)
    if text[0] in "{[" or _RECORD_HEADER.match(text):
        return "json"  # JSON-like but no readable record up front: the reader reports each bad record
    for name in _TEXT_PLUGINS:
        if _plugin(name).sniff(head):
            return name
    known = ", ".join(("EVTX", "JSON", *PLUGINS))
    raise UnknownFormatError(f"not a known log format ({known}); the file starts with {text[:40]!r}", path=path)


def _syslog_name(name: str) -> bool:
    from collectors.syslog_file import is_syslog_name

    return is_syslog_name(name)


def _plugin(name: str) -> Any:
    import importlib

    return importlib.import_module(PLUGINS[name])


def _peek_text(head: bytes) -> str:
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return head[: len(head) // 2 * 2].decode("utf-16", "replace")
    return head.decode("utf-8-sig", "replace")


def _first_record(text: str) -> dict[str, Any] | None:
    """The first JSON object in the text: from an NDJSON line, an array or a pretty-printed object."""
    tried = 0
    for line in text.split("\n", 4 * _PEEK_LINES):  # bounded: the peek may be megabytes
        line = line.strip()
        if not line:
            continue
        tried += 1
        if tried > _PEEK_LINES:
            break
        try:
            value = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(value, list):
            value = next((item for item in value if isinstance(item, dict)), None)
        if isinstance(value, dict):
            return value
    for attempt, match in enumerate(_OBJECT_LINE.finditer(text)):
        if attempt >= 5:
            break
        start = match.end() - 1
        try:
            value, _ = _DECODER.raw_decode(text, start)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _classify(record: dict[str, Any]) -> str:
    event = record.get("Event")
    if isinstance(event, dict) and isinstance(event.get("System"), dict):
        return "evtx-json"
    if isinstance(record.get("winlog"), dict) or any(key.startswith("winlog.") for key in record):
        return "winlogbeat"
    return "json"


def iter_files(
    paths: Iterable[Path | str], *, suffixes: Collection[str] | None = LOG_SUFFIXES
) -> Iterator[Path]:
    """Files to read: each path given that is not a directory, and the files under each directory (recursive,
    sorted by name, hidden files and directories skipped, only `suffixes` when given, symlink loops cut).

    A directory that cannot be listed is yielded itself, so that `read_path` reports it rather than it
    vanishing silently.
    """
    wanted = frozenset(suffix.lower() for suffix in suffixes) if suffixes is not None else None
    for path in paths:
        path = Path(path)
        if path.is_dir():
            yield from _walk(path, wanted, set())
        else:
            yield path


def _walk(directory: Path, suffixes: frozenset[str] | None, seen: set[str]) -> Iterator[Path]:
    real = os.path.realpath(directory)
    if real in seen:
        return
    seen.add(real)
    try:
        entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
    except OSError:
        yield directory
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = directory / entry.name
        try:
            is_dir = entry.is_dir()
            is_file = not is_dir and entry.is_file()
        except OSError:
            continue
        if is_dir:
            yield from _walk(path, suffixes, seen)
        elif is_file and (suffixes is None or path.suffix.lower() in suffixes or _syslog_name(entry.name)):
            yield path


def read_path(path: Path, fmt: str | None = None, *, tz: tzinfo | None = None,
              quiet: QuietRecords | None = None) -> Iterator[Event | Rejected]:
    """Every record of one file as an `Event`, or a `Rejected` for what cannot be read or normalised.

    `tz`: the zone of timestamps that carry none (syslog files' BSD timestamps, Windows Firewall logs' local
    times; default UTC). `quiet`: EVTX records no rule can match are counted there, not yielded (see
    `QuietRecords`). Never raises for
    bad content; `UnsupportedFormatError` (at call time) for a format name not in `FORMATS`. An empty file
    yields nothing."""
    if fmt is not None and fmt not in FORMATS:
        expected = ", ".join(FORMATS)
        raise UnsupportedFormatError(f"unknown format {fmt!r}; expected one of {expected}", path=path)
    return _read(Path(path), fmt, tz, quiet)


def _read(path: Path, fmt: str | None, tz: tzinfo | None, quiet: QuietRecords | None = None,
          ) -> Iterator[Event | Rejected]:
    where = str(path)
    if path.is_dir():
        yield Rejected(_directory_reason(path), EventOrigin(path=where, format=fmt or "unknown"))
        return
    if fmt is None:
        try:
            fmt = detect_format(path)
        except EmptySourceError:
            return
        except CollectorError as exc:
            yield Rejected(exc.reason, EventOrigin(path=where, format="unknown"))
            return
    if fmt == "evtx":
        yield from read_evtx(path, quiet=quiet)
    elif fmt in ("syslog", "windows-firewall") and tz is not None:  # local times without a zone
        yield from _plugin(fmt).read_file(path, tz=tz)
    elif fmt in PLUGINS:
        yield from _plugin(fmt).read_file(path)
    else:
        yield from read_json(path, fmt)


def _directory_reason(path: Path) -> str:
    try:
        next(path.iterdir(), None)
    except OSError as exc:
        return f"cannot list directory: {exc.strerror or exc}"
    return "is a directory, not a log file (walk it with iter_files)"
