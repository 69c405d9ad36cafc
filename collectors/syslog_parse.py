"""Syslog lines to `SyslogMessage`: RFC 3164 (BSD syslog, /var/log/auth.log) and RFC 5424, pure and I/O-free.

    message = parse_syslog("<38>Mar 11 10:00:03 web01 sshd[2211]: Accepted ...", received_ms=now_ms)
    message.to_ecs()  # {"@timestamp": ..., "log": {"syslog": {...}}, "process": {"name": "sshd", ...}, ...}

Accepted shapes:

- RFC 5424: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA [MSG]`, NILVALUE `-` for any header
  field, structured data with the escapes `\\"`, `\\\\` and `\\]`, a UTF-8 BOM before MSG.
- RFC 3164, with or without `<PRI>`: `Mmm dd hh:mm:ss HOSTNAME TAG[PID]: MSG` (also `Mmm dd yyyy hh:mm:ss` and
  fractional seconds), or with rsyslog's high-precision `2026-11-20T01:00:00.123456+07:00` in place of the BSD
  time. The HOSTNAME may be missing (a line as sent by a local program): the first word is then the tag. A TAG
  is optional (`-- MARK --`). A line with a valid `<PRI>` but no timestamp is a message without header
  (RFC 3164 4.3.3): it takes the receive time.

BSD timestamps carry neither a year nor a zone: the zone is `tz` (UTC unless given), the year is `year_hint` or
the one that puts the time no more than 31 days after `received_ms` (a December line read in January is last
year's). Malformed input raises `SyslogParseError` naming what is wrong; the caller makes a dead letter of it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, tzinfo
from typing import Any

from collectors.syslog_time import SyslogParseError, bsd_ms, iso_ms
from correlator.model import ms_to_iso

__all__ = [
    "FACILITY_NAMES",
    "SEVERITY_NAMES",
    "StructuredElement",
    "SyslogMessage",
    "SyslogParseError",
    "parse_syslog",
]

FACILITY_NAMES: tuple[str, ...] = (
    "kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp", "ntp",
    "security", "console", "solaris-cron", "local0", "local1", "local2", "local3", "local4", "local5", "local6",
    "local7",
)
SEVERITY_NAMES: tuple[str, ...] = (
    "Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Informational", "Debug",
)

_NIL = "-"
_BOM = "\ufeff"

_PRI = re.compile(r"<(\d{1,3})>")
_VERSION = re.compile(r"([1-9]\d{0,2}) ")
_BSD_TIME = (
    r"(?P<stamp>(?P<mon>[A-Za-z]{3}) +(?P<day>\d{1,2}) (?:(?P<year>\d{4}) )?"
    r"(?P<h>\d{2}):(?P<m>\d{2}):(?P<s>\d{2})(?:\.(?P<frac>\d{1,9}))?)(?: |$)"
)
_ISO_TIME = re.compile(
    r"(?P<Y>\d{4})-(?P<M>\d{2})-(?P<D>\d{2})T(?P<h>\d{2}):(?P<m>\d{2}):(?P<s>\d{2})(?:\.(?P<frac>\d{1,9}))?"
    r"(?P<zone>Z|[+-]\d{2}:\d{2})?"
)
_ISO_START = re.compile(r"\d{4}-\d{2}-\d{2}T")
# After the time, any spaces, then the HOSTNAME unless the first word is a tag (its colon followed by a space or
# the end, which tells `sshd[1]: ...` from an IPv6 HOSTNAME such as `2001:db8::7`), then the TAG: `sshd[2211]:`,
# `sudo:`, `postfix/smtpd[12]:`, `(sd-pam)[3]:`; the colon ends the tag, then any spaces. Host and tag are
# optional, so the pattern always matches and each part is what matching it alone at that place would give.
_AFTER_TIME = (
    r" *(?:(?![^\s\[\]:]+(?:\[[^\]\s]*\])?:(?: |$))(?P<host>\S+)(?: +|$))?"
    r"(?:(?P<name>[^\s\[\]:]+)(?:\[(?P<pid>[^\]\s]*)\])?: *)?"
)
_BSD_HEADER = re.compile(_BSD_TIME + _AFTER_TIME)
_HOST_AND_TAG = re.compile(_AFTER_TIME)



@dataclass(frozen=True, slots=True)
class StructuredElement:
    """One RFC 5424 SD-ELEMENT: `[id name="value" ...]`. Parameters keep their order and repeats."""

    id: str
    params: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Parameters by name; a name given more than once maps to the list of its values."""
        out: dict[str, Any] = {}
        for name, value in self.params:
            if name not in out:
                out[name] = value
            elif isinstance(out[name], list):
                out[name].append(value)
            else:
                out[name] = [out[name], value]
        return out


@dataclass(frozen=True, slots=True)
class SyslogMessage:
    """One parsed syslog message. `version` is 1 for RFC 5424 and None for RFC 3164; the facility and severity are
    None for a line without `<PRI>` (as in /var/log files)."""

    timestamp_ms: int
    message: str
    hostname: str | None = None
    appname: str | None = None
    procid: str | None = None
    msgid: str | None = None
    facility: int | None = None
    severity: int | None = None
    version: int | None = None
    structured_data: tuple[StructuredElement, ...] = ()
    source_host: str | None = None  # the sender's address, for network receivers

    def __post_init__(self) -> None:
        if self.facility is not None and not 0 <= self.facility < len(FACILITY_NAMES):
            raise ValueError(f"facility {self.facility} is out of range 0-23")
        if self.severity is not None and not 0 <= self.severity < len(SEVERITY_NAMES):
            raise ValueError(f"severity {self.severity} is out of range 0-7")

    @property
    def priority(self) -> int | None:
        if self.facility is None or self.severity is None:
            return None
        return self.facility * 8 + self.severity

    @property
    def pid(self) -> int | None:
        return int(self.procid) if self.procid is not None and self.procid.isascii() and self.procid.isdigit() \
            else None

    @property
    def host(self) -> str | None:
        """The host the message is about: its own HOSTNAME, else the address it came from."""
        return self.hostname or self.source_host

    def to_ecs(self) -> dict[str, Any]:
        """The message as a nested ECS document (event.module `system`, event.dataset `system.syslog`)."""
        syslog: dict[str, Any] = {}
        if self.facility is not None and self.severity is not None:
            syslog["facility"] = {"code": self.facility, "name": FACILITY_NAMES[self.facility]}
            syslog["severity"] = {"code": self.severity, "name": SEVERITY_NAMES[self.severity]}
            syslog["priority"] = self.priority
        if self.version is not None:
            syslog["version"] = str(self.version)
        if self.hostname is not None:
            syslog["hostname"] = self.hostname
        if self.appname is not None:
            syslog["appname"] = self.appname
        if self.procid is not None:
            syslog["procid"] = self.procid
        if self.msgid is not None:
            syslog["msgid"] = self.msgid
        if self.structured_data:
            syslog["structured_data"] = self._structured_data()
        doc: dict[str, Any] = {
            "@timestamp": ms_to_iso(self.timestamp_ms),
            "event": {"module": "system", "dataset": "system.syslog"},
            "message": self.message,
        }
        log: dict[str, Any] = {}
        if syslog:
            log["syslog"] = syslog
        if self.source_host is not None:
            log["source"] = {"address": self.source_host}
        if log:
            doc["log"] = log
        host = self.host
        if host is not None:
            doc["host"] = {"hostname": host, "name": host}
        process: dict[str, Any] = {}
        if self.appname is not None:
            process["name"] = self.appname
        pid = self.pid
        if pid is not None:
            process["pid"] = pid
        if process:
            doc["process"] = process
        return doc

    def to_fields(self, event: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """`to_ecs()` as flat dotted fields, in the order flattening the document gives, without building it.
        `event`: the `event.*` fields in place of this document's (event.module and event.dataset), for a reader
        that adds its own."""
        fields: dict[str, Any] = {"@timestamp": ms_to_iso(self.timestamp_ms)}
        if event is None:
            fields["event.module"] = "system"
            fields["event.dataset"] = "system.syslog"
        else:
            fields.update(event)
        fields["message"] = self.message
        facility, severity = self.facility, self.severity
        if facility is not None and severity is not None:
            fields["log.syslog.facility.code"] = facility
            fields["log.syslog.facility.name"] = FACILITY_NAMES[facility]
            fields["log.syslog.severity.code"] = severity
            fields["log.syslog.severity.name"] = SEVERITY_NAMES[severity]
            fields["log.syslog.priority"] = facility * 8 + severity
        if self.version is not None:
            fields["log.syslog.version"] = str(self.version)
        if self.hostname is not None:
            fields["log.syslog.hostname"] = self.hostname
        if self.appname is not None:
            fields["log.syslog.appname"] = self.appname
        if self.procid is not None:
            fields["log.syslog.procid"] = self.procid
        if self.msgid is not None:
            fields["log.syslog.msgid"] = self.msgid
        if self.structured_data:
            for sd_id, params in self._structured_data().items():
                for name, value in params.items():  # an element without parameters has no leaf
                    fields[f"log.syslog.structured_data.{sd_id}.{name}"] = value
        if self.source_host is not None:
            fields["log.source.address"] = self.source_host
        host = self.host
        if host is not None:
            fields["host.hostname"] = host
            fields["host.name"] = host
        if self.appname is not None:
            fields["process.name"] = self.appname
        pid = self.pid
        if pid is not None:
            fields["process.pid"] = pid
        return fields

    def _structured_data(self) -> dict[str, dict[str, Any]]:
        """Parameters by SD-ID; elements with one id merge."""
        data: dict[str, dict[str, Any]] = {}
        for element in self.structured_data:
            data.setdefault(element.id, {}).update(element.to_dict())
        return data


def parse_syslog(
    line: str | bytes,
    *,
    received_ms: int,
    source_host: str | None = None,
    year_hint: int | None = None,
    tz: tzinfo = UTC,
) -> SyslogMessage:
    """One syslog line (trailing newline allowed) to a `SyslogMessage`; `SyslogParseError` if it is not one.

    `received_ms` is when the line was received or written (a file's mtime): the time of a message without one,
    and what the year of a BSD timestamp is chosen against. `tz` is the zone of timestamps that carry none.
    Bytes that are not UTF-8 are kept as `\\xNN` escapes rather than rejected: an attacker's junk user name
    must not hide a failed logon."""
    text = line.decode("utf-8", "backslashreplace") if isinstance(line, bytes) else line
    text = text.removeprefix(_BOM).rstrip("\r\n\x00")
    if not text or text.isspace():
        raise SyslogParseError("empty line")
    facility = severity = None
    pos = 0
    if text.startswith("<"):
        pri = _PRI.match(text)
        if pri is None:
            raise SyslogParseError(f"invalid PRI: expected '<' 1-3 digits '>', got {_excerpt(text)}")
        value = int(pri.group(1))
        if value > 191:
            raise SyslogParseError(f"invalid PRI <{pri.group(1)}>: {value} is out of range 0-191")
        facility, severity = divmod(value, 8)
        pos = pri.end()
        version = _VERSION.match(text, pos)
        if version is not None:
            return _parse_5424(text, version, facility, severity, received_ms, source_host, tz)
    return _parse_3164(text, pos, facility, severity, received_ms, source_host, year_hint, tz)


# ------------------------------------------------------------------------------------------------- RFC 5424


def _parse_5424(
    text: str, version: re.Match[str], facility: int, severity: int, received_ms: int, source_host: str | None,
    tz: tzinfo,
) -> SyslogMessage:
    if version.group(1) != "1":
        raise SyslogParseError(f"unsupported syslog version {version.group(1)} (RFC 5424 defines version 1)")
    pos = version.end()
    header: list[str] = []
    for name in ("TIMESTAMP", "HOSTNAME", "APP-NAME", "PROCID", "MSGID"):
        end = text.find(" ", pos)
        if end == -1:
            raise SyslogParseError(f"truncated RFC 5424 header: nothing after {name} "
                                   "(expected TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA)")
        token = text[pos:end]
        if not token:
            raise SyslogParseError(f"empty {name} in RFC 5424 header (two spaces; '-' stands for no value)")
        header.append(token)
        pos = end + 1
    stamp, hostname, appname, procid, msgid = header
    if stamp == _NIL:
        timestamp_ms = received_ms
    else:
        iso = _ISO_TIME.fullmatch(stamp)
        if iso is None:
            raise SyslogParseError(f"invalid RFC 5424 TIMESTAMP {_excerpt(stamp)}")
        timestamp_ms = iso_ms(iso, tz)
    elements, pos = _structured_data(text, pos)
    if pos < len(text):
        if text[pos] != " ":
            raise SyslogParseError(f"expected a space after STRUCTURED-DATA, got {_excerpt(text[pos:])}")
        pos += 1
    message = text[pos:].removeprefix(_BOM)
    return SyslogMessage(
        timestamp_ms=timestamp_ms,
        message=message,
        hostname=_value(hostname),
        appname=_value(appname),
        procid=_value(procid),
        msgid=_value(msgid),
        facility=facility,
        severity=severity,
        version=1,
        structured_data=elements,
        source_host=source_host,
    )


def _value(token: str) -> str | None:
    return None if token == _NIL else token


def _structured_data(text: str, pos: int) -> tuple[tuple[StructuredElement, ...], int]:
    """The SD elements starting at `pos` and where they end. `-` is no structured data."""
    if text.startswith(_NIL, pos) and (pos + 1 == len(text) or text[pos + 1] == " "):
        return (), pos + 1
    if pos >= len(text) or text[pos] != "[":
        raise SyslogParseError(f"STRUCTURED-DATA must be '-' or start with '[', got {_excerpt(text[pos:])}")
    elements: list[StructuredElement] = []
    while pos < len(text) and text[pos] == "[":
        element, pos = _sd_element(text, pos + 1)
        elements.append(element)
    return tuple(elements), pos


def _sd_element(text: str, pos: int) -> tuple[StructuredElement, int]:
    """One `[id name="value" ...]` from just after its `[`; returns it and the position after its `]`."""
    sd_id, pos = _sd_name(text, pos, "SD-ID")
    params: list[tuple[str, str]] = []
    while True:
        if pos >= len(text):
            raise SyslogParseError(f"truncated structured data: element [{sd_id} is not closed with ']'")
        char = text[pos]
        if char == "]":
            return StructuredElement(sd_id, tuple(params)), pos + 1
        if char != " ":
            raise SyslogParseError(f"structured data [{sd_id}: expected ' ' or ']', got {_excerpt(text[pos:])}")
        name, pos = _sd_name(text, pos + 1, f"parameter name in [{sd_id}")
        if not text.startswith('="', pos):
            if '="'.startswith(text[pos:]):
                raise SyslogParseError(f"truncated structured data: element [{sd_id} ends after parameter name "
                                       f"{name!r}")
            raise SyslogParseError(f"structured data [{sd_id}: expected '=\"' after parameter name {name!r}")
        value, pos = _sd_value(text, pos + 2, sd_id, name)
        params.append((name, value))


def _sd_name(text: str, pos: int, what: str) -> tuple[str, int]:
    end = pos
    while end < len(text) and text[end] not in ' ="]':
        end += 1
    if end == pos:
        if end >= len(text):
            raise SyslogParseError(f"truncated structured data: missing {what}")
        raise SyslogParseError(f"structured data: empty {what} before {text[end]!r}")
    return text[pos:end], end


def _sd_value(text: str, pos: int, sd_id: str, name: str) -> tuple[str, int]:
    """A PARAM-VALUE from just after its opening quote: `\\"`, `\\\\` and `\\]` unescaped, any other backslash
    kept (RFC 5424 6.3.3); returns it and the position after its closing quote."""
    parts: list[str] = []
    start = pos
    while pos < len(text):
        char = text[pos]
        if char == '"':
            parts.append(text[start:pos])
            return "".join(parts), pos + 1
        if char == "\\" and pos + 1 < len(text) and text[pos + 1] in '"\\]':
            parts.append(text[start:pos])
            start = pos + 1  # keep the escaped character, drop the backslash
            pos += 2
            continue
        pos += 1
    raise SyslogParseError(f"truncated structured data: the value of {name!r} in [{sd_id} has no closing quote")


# ------------------------------------------------------------------------------------------------- RFC 3164


def _parse_3164(
    text: str, pos: int, facility: int | None, severity: int | None, received_ms: int, source_host: str | None,
    year_hint: int | None, tz: tzinfo,
) -> SyslogMessage:
    header = _BSD_HEADER.match(text, pos)
    if header is not None:
        timestamp_ms = bsd_ms(header, received_ms, year_hint, tz)
    elif _ISO_START.match(text, pos):
        end = text.find(" ", pos)
        stamp = text[pos:] if end == -1 else text[pos:end]
        iso = _ISO_TIME.fullmatch(stamp)
        if iso is None:
            raise SyslogParseError(f"invalid timestamp {_excerpt(stamp)}")
        timestamp_ms = iso_ms(iso, tz)
        header = _HOST_AND_TAG.match(text, len(text) if end == -1 else end + 1)
        assert header is not None  # everything in it is optional
    elif facility is not None:  # `<PRI>` and free text: a message without header, timed on receipt
        if pos == len(text):
            raise SyslogParseError("nothing after PRI")
        return SyslogMessage(received_ms, text[pos:], facility=facility, severity=severity,
                             source_host=source_host)
    else:
        raise SyslogParseError(f"no syslog timestamp ('Mmm dd hh:mm:ss' or RFC 3339) at the start of "
                               f"{_excerpt(text)}")
    hostname, appname, procid = header.group("host", "name", "pid")
    return SyslogMessage(
        timestamp_ms=timestamp_ms,
        message=text[header.end():],
        hostname=hostname,
        appname=appname,
        procid=procid or None,
        facility=facility,
        severity=severity,
        source_host=source_host,
    )


def _excerpt(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
