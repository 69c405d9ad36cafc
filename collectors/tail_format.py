"""Tailed lines to `Event | Rejected`: the format of each tailed file is picked once (configured per path, else
`collectors.files.detect_format` on the file's head when its first line arrives), then every line goes through
that format's pure per-line function.

    formats = TailFormats([TailSpec("/var/log/nginx/*.log", "web-access", server="nginx")])
    item = formats.decode(line, origin)  # Event | Rejected | None (blank line)

Per-line formats (`LINE_FORMATS`): syslog (`syslog_parse.parse_syslog` + `syslog_file.to_event`, the received
time is the time the line is read), web-access (`web_access.parse_line`), iis (`iis.IisLineReader`: rows under
the last `#Fields:`, read from the file's start when tailing resumes inside it), windows-firewall (the same, times
in `tz`), squid (`squid.parse_line`), and the JSON-lines formats json, evtx-json, winlogbeat
(`json_reader.normalise_record`: Windows records by `normalise_windows`, the rest by `generic.normalise_json`),
suricata-eve (`suricata.normalise_record`) and zeek
(TSV under its `#` header, kept per file and read from the file's start when tailing resumes inside it, or JSON
lines).

auditd logs are tailed too, though their events are assembled across lines (`auditd.AuditAssembler`): a line may
complete no event or several, so the tailer's sink calls `decode_all`. The lines of an event not out yet are
*held*: `held` tells the tailer where the oldest one starts, and it records no position past it (after a crash
they are read again; event ids are content hashes). An event without EOE comes out when `audit_idle` seconds pass
without a record of it (`expire`, once per poll) or when its file is done (`release`: rotated away and read to its
end, or truncated). Other formats that need the whole file (evtx, a binary layout) are read by watching their
directory with `collectors.tail_watch.DirectoryWatch`; their lines, if tailed anyway, become dead letters that say
so.

A line cut by the tailer (`FileOrigin.cut`) is a dead letter with its start as raw text. Event origins are the
followed path and the line number, as the file readers give them. Syslog event ids are those `syslog_file`
gives (a hash of the line, with the repeat count of identical lines), so a tailed line and the same line read
later from the rotated file are one event; a re-read after a crash can renumber a repeat that straddles it.
"""

from __future__ import annotations

import fnmatch
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any, Final

import orjson

from collectors import auditd, iis, squid, suricata, syslog_file, web_access, windows_firewall, zeek
from collectors.errors import CollectorError, UnsupportedFormatError
from collectors.files import FORMATS, detect_format
from collectors.json_reader import normalise_record
from collectors.syslog_parse import SyslogParseError, parse_syslog
from collectors.tail_lines import FileOrigin
from correlator.model import Event, EventOrigin, Rejected

__all__ = ["AUDIT_IDLE", "LINE_FORMATS", "AuditDecoder", "LineDecoder", "TailFormats", "TailSpec"]

log = logging.getLogger(__name__)

LINE_FORMATS: Final = ("syslog", "web-access", "iis", "squid", "windows-firewall", "json", "evtx-json",
                       "winlogbeat", "suricata-eve", "zeek")
_HEADER_BYTES: Final = 64 * 1024  # where a Zeek or IIS log's header lines are looked for when tailing resumes
AUDIT_IDLE: Final = 2.0  # seconds without a record before an open audit event comes out (auparse's default)
DETECT_ATTEMPTS: Final = 20  # lines a file's format may stay unrecognised before its lines are rejected for good
_MAX_DECODERS: Final = 4096
_UTF8_BOM: Final = b"\xef\xbb\xbf"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class TailSpec:
    """A followed path or glob with its format (None: detected per file) and, for web-access, the server."""

    path: str
    format: str | None = None
    server: str | None = None

    def __post_init__(self) -> None:
        if self.format is not None and self.format not in FORMATS:
            raise UnsupportedFormatError(f"unknown format {self.format!r}; expected one of {', '.join(FORMATS)}",
                                         path=self.path)
        if self.server is not None:
            if self.format not in (None, "web-access"):
                raise UnsupportedFormatError(f"server {self.server!r} applies to web-access, not {self.format}",
                                             path=self.path)
            if self.server not in web_access.SERVERS:
                raise UnsupportedFormatError(f"unknown web server {self.server!r}; expected one of "
                                             f"{', '.join(web_access.SERVERS)}", path=self.path)

    def matches(self, path: str) -> bool:
        return path == self.path or fnmatch.fnmatchcase(path, self.path)


class LineDecoder:
    """One tailed file's lines in one format to `Event | Rejected` (None for a blank line)."""

    def __init__(self, fmt: str, *, server: str | None = None, tz: tzinfo = UTC,
                 clock_ms: Callable[[], int] = _now_ms) -> None:
        if fmt not in LINE_FORMATS:
            raise UnsupportedFormatError(f"format {fmt!r} is not read line by line; line formats: "
                                         f"{', '.join(LINE_FORMATS)}")
        self.format = fmt
        self.server = server
        self.tz = tz
        self.clock_ms = clock_ms
        self._repeats: OrderedDict[str, int] = OrderedDict()
        # The header of a Zeek, IIS or Windows Firewall log.
        self._reader: zeek.ZeekLineReader | iis.IisLineReader | windows_firewall.FirewallLogReader | None = None

    def decode(self, line: bytes, origin: FileOrigin) -> Event | Rejected | None:
        if origin.line == 1:
            line = line.removeprefix(_UTF8_BOM)
        where = EventOrigin(path=origin.path, offset=origin.line, format=self.format)
        if origin.cut:
            return Rejected(f"line {origin.line}: longer than {len(line)} bytes, cut (the rest was skipped)",
                            where, line.decode("utf-8", "backslashreplace"))
        if not line.strip():
            return None
        if self.format == "syslog":
            return self._syslog(line, where)
        if self.format in ("zeek", "iis", "windows-firewall"):
            return self._headed_line(line, origin)
        if self.format == "squid":
            raw = line.rstrip(b"\r").decode("utf-8", "backslashreplace")
            try:
                return squid.parse_line(raw, where)
            except squid.SquidParseError as exc:
                return Rejected(f"line {origin.line}: {exc.reason}", where, raw)
        if self.format == "web-access":
            raw = line.rstrip(b"\r").decode("utf-8", "backslashreplace")
            try:
                return web_access.parse_line(raw, where, server=self.server)
            except web_access.AccessLogParseError as exc:
                return Rejected(f"line {origin.line}: {exc.reason}", where, raw)
        return self._json(line.strip(), where)

    def _syslog(self, line: bytes, where: EventOrigin) -> Event | Rejected:
        raw = line.rstrip(b"\r").decode("utf-8", "backslashreplace")
        try:
            message = parse_syslog(raw, received_ms=self.clock_ms(), tz=self.tz)
        except SyslogParseError as exc:
            return Rejected(f"line {where.offset}: {exc.reason}", where, raw)
        # syslog_file's ids: the n-th repeat of a line among the recent distinct lines hashes with its count
        return syslog_file.to_event(message, raw, where,
                                    syslog_file.repeat_id(self._repeats, raw, message.timestamp_ms))

    def _new_reader(self, path: str) -> zeek.ZeekLineReader | iis.IisLineReader | windows_firewall.FirewallLogReader:
        if self.format == "zeek":
            return zeek.ZeekLineReader(path, zeek.path_from_name(Path(path)))
        if self.format == "iis":
            return iis.IisLineReader(path)
        return windows_firewall.FirewallLogReader(path, self.tz)

    def _headed_line(self, line: bytes, origin: FileOrigin) -> Event | Rejected | None:
        """A Zeek, IIS or Windows Firewall log line: `#` lines are the file's header (kept per file); a tailer that
        starts inside the file (after a restart) first reads the header lines at the file's start."""
        reader = self._reader
        if reader is None:
            path = origin.path
            reader = self._reader = self._new_reader(path)
            if origin.line > 1 and not line.startswith(b"#"):
                try:
                    with Path(path).open("rb") as handle:
                        reader.header_from(handle.read(_HEADER_BYTES))
                except OSError as exc:
                    log.warning("%s: cannot read the %s header at the file's start: %s", path, self.format, exc)
        return reader.line(origin.line, line.rstrip(b"\r"))

    def _json(self, data: bytes, where: EventOrigin) -> Event | Rejected:
        number = where.offset
        try:
            raw = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            return Rejected(f"line {number}: not UTF-8: {exc.reason} at column {exc.start + 1}", where,
                            data.decode("utf-8", "replace"))
        try:
            record: Any = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            return Rejected(f"line {number}: invalid JSON at column {exc.colno}: {exc.msg}", where, raw)
        if not isinstance(record, dict):
            return Rejected(f"line {number}: expected a JSON object, got {suricata.json_kind(record)}", where, raw)
        try:
            if self.format == "suricata-eve":
                return suricata.normalise_record(record, raw, where)
            return normalise_record(record, raw, where)
        except CollectorError as exc:
            return Rejected(f"line {number}: {exc.reason}", where, raw, stage="normalise")


class AuditDecoder:
    """One tailed audit log's lines to its events, assembled across lines (see the module doc)."""

    format = auditd.FORMAT

    def __init__(self, path: str) -> None:
        self.assembler = auditd.AuditAssembler(path)

    def decode_all(self, line: bytes, origin: FileOrigin, now: float) -> list[Event | Rejected]:
        if origin.line == 1:
            line = line.removeprefix(_UTF8_BOM)
        if origin.cut:
            where = EventOrigin(path=origin.path, offset=origin.line, format=self.format)
            return [Rejected(f"line {origin.line}: longer than {len(line)} bytes, cut (the rest was skipped)",
                             where, line.decode("utf-8", "backslashreplace"))]
        return self.assembler.add(origin.line, line.decode("utf-8", "backslashreplace"), offset=origin.offset,
                                  now=now)

    @property
    def held(self) -> tuple[int, int] | None:
        """(byte offset, line number) of the first line of the oldest event not out yet."""
        held = self.assembler.held
        if held is None:
            return None
        line, offset = held
        return None if offset is None else (offset, line)


class _Refusal:
    """The decoder of a file whose lines cannot be decoded: each becomes a dead letter with the reason."""

    def __init__(self, fmt: str, reason: str) -> None:
        self.format = fmt
        self.reason = reason

    def decode(self, line: bytes, origin: FileOrigin) -> Rejected | None:
        if not origin.cut and not line.strip():
            return None
        return Rejected(f"line {origin.line}: {self.reason}", EventOrigin(path=origin.path, offset=origin.line,
                        format=self.format), line.decode("utf-8", "backslashreplace"))


class TailFormats:
    """Picks the format of each tailed file once and decodes its lines. `specs` give formats per path or glob
    (the first matching spec wins); a file no spec names gets the format `detect_format` finds when its first
    line arrives (retried with later lines, up to `DETECT_ATTEMPTS`, while the head is not recognised)."""

    def __init__(self, specs: Iterable[TailSpec] = (), *, tz: tzinfo = UTC, clock_ms: Callable[[], int] = _now_ms,
                 detect: Callable[[Path], str] = detect_format, audit_idle: float = AUDIT_IDLE,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.specs = tuple(specs)
        self.tz = tz
        self.clock_ms = clock_ms
        self.detect = detect
        self.audit_idle = audit_idle
        self.monotonic = monotonic
        self._decoders: OrderedDict[tuple[int, int], LineDecoder | AuditDecoder | _Refusal] = OrderedDict()
        self._attempts: dict[tuple[int, int], int] = {}

    def format_of(self, origin: FileOrigin) -> str | None:
        """The format picked for the file of `origin`, if any yet."""
        decoder = self._decoders.get((origin.device, origin.inode))
        return decoder.format if decoder is not None else None

    def decode(self, line: bytes, origin: FileOrigin) -> Event | Rejected | None:
        """One line of a per-line format to its item (None: a blank line). An audit log's line can complete
        several events: its lines go through `decode_all` (here they raise `UnsupportedFormatError`)."""
        decoder = self._decoder(line, origin)
        if decoder is None or isinstance(decoder, Rejected):
            return decoder
        if isinstance(decoder, AuditDecoder):
            raise UnsupportedFormatError("audit log lines are assembled into events: use decode_all",
                                         path=origin.path)
        return decoder.decode(line, origin)

    def decode_all(self, line: bytes, origin: FileOrigin) -> list[Event | Rejected]:
        """Every item one line gives, whatever the file's format."""
        decoder = self._decoder(line, origin)
        if decoder is None:
            return []
        if isinstance(decoder, Rejected):
            return [decoder]
        if isinstance(decoder, AuditDecoder):
            return decoder.decode_all(line, origin, self.monotonic())
        item = decoder.decode(line, origin)
        return [] if item is None else [item]

    def held(self, device: int, inode: int) -> tuple[int, int] | None:
        """(byte offset, line number) of the first line of the file (device, inode) whose item is not out yet."""
        decoder = self._decoders.get((device, inode))
        return decoder.held if isinstance(decoder, AuditDecoder) else None

    def expire(self) -> list[Event | Rejected]:
        """The audit events no record has come for in `audit_idle` seconds, of every file."""
        now = self.monotonic()
        out: list[Event | Rejected] = []
        for decoder in self._decoders.values():
            if isinstance(decoder, AuditDecoder):
                out.extend(decoder.assembler.expire(now, self.audit_idle))
        return out

    def release(self, device: int, inode: int) -> list[Event | Rejected]:
        """Everything the file (device, inode) still holds: it is done (rotated away and read, or truncated)."""
        decoder = self._decoders.get((device, inode))
        return decoder.assembler.flush() if isinstance(decoder, AuditDecoder) else []

    def _decoder(self, line: bytes, origin: FileOrigin) -> LineDecoder | AuditDecoder | _Refusal | Rejected | None:
        key = (origin.device, origin.inode)
        decoder = self._decoders.get(key)
        if decoder is None:
            if not origin.cut and not line.strip():
                return None
            picked = self._pick(origin)
            if isinstance(picked, str):  # not recognised yet: this line is a dead letter, the next one tries again
                return Rejected(f"line {origin.line}: {picked}", EventOrigin(
                    path=origin.path, offset=origin.line, format="unknown"), line.decode("utf-8", "backslashreplace"))
            decoder = picked
            self._decoders[key] = decoder
            if len(self._decoders) > _MAX_DECODERS:
                self._evict()
        return decoder

    def _evict(self) -> None:
        """Forget the least recently picked decoder that holds nothing (an audit log's open events stay)."""
        for key, decoder in self._decoders.items():
            if not isinstance(decoder, AuditDecoder) or decoder.held is None:
                del self._decoders[key]
                return

    def _pick(self, origin: FileOrigin) -> LineDecoder | AuditDecoder | _Refusal | str:
        spec = next((spec for spec in self.specs if spec.matches(origin.path)), None)
        fmt = spec.format if spec is not None else None
        if fmt is None:
            try:
                fmt = self.detect(Path(origin.path))
            except CollectorError as exc:
                return self._unrecognised(origin, f"format not recognised: {exc.reason}")
        self._attempts.pop((origin.device, origin.inode), None)
        if fmt == auditd.FORMAT:
            log.info("%s: tailed as auditd (records assembled into events)", origin.path)
            return AuditDecoder(origin.path)
        if fmt not in LINE_FORMATS:
            reason = (f"{fmt} files are read whole, not line by line: watch their directory for complete files "
                      f"instead of tailing them")
            log.error("%s: %s; its lines are dead letters", origin.path, reason)
            return _Refusal(fmt, reason)
        log.info("%s: tailed as %s", origin.path, fmt)
        return LineDecoder(fmt, server=spec.server if spec is not None else None, tz=self.tz,
                           clock_ms=self.clock_ms)

    def _unrecognised(self, origin: FileOrigin, reason: str) -> _Refusal | str:
        key = (origin.device, origin.inode)
        attempts = self._attempts[key] = self._attempts.get(key, 0) + 1
        if attempts < DETECT_ATTEMPTS:
            return reason
        del self._attempts[key]
        log.error("%s: %s; its lines are dead letters (configure its format)", origin.path, reason)
        return _Refusal("unknown", reason)
