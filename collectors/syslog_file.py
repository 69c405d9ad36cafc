"""Syslog files to `Event | Rejected`: /var/log/auth.log, secure, messages, syslog and rsyslog's RFC 5424 files.

    if sniff(head):
        for item in read_file(Path("/var/log/auth.log")):
            ...  # Event -> rules, Rejected -> dead-letter store

One event per non-blank line: `raw` is the line as written (without its line ending), `origin.offset` its line
number (1-based), `origin.format` "syslog". The ECS document is `linux_auth.to_ecs`: sshd, sudo, su, PAM and
account changes become `system.auth` events, firewall lines (`firewall.firewall_fields`: netfilter/UFW,
filterlog, Cisco ASA, FortiGate) network connection events, other programs `system.syslog`. A line that is not
syslog, or a firewall line that cannot be read, becomes a `Rejected` ("line N: ...") and reading goes on. BSD
timestamps get their year from the file's mtime (the file was last written after its last line) and the zone
`tz` (UTC unless given).

Event ids: the same line read from a rotated copy (auth.log, then auth.log.1) must keep its id, so the id is a
hash of the line's content and time, not of the path or line number. Identical lines are real in auth logs (the
same failure twice in one second), so the n-th repeat of a line within the last `REPEAT_WINDOW` distinct lines
hashes the line with its repeat count: `event_id_for(line, time)`, then `event_id_for(line + "\\n#1", time)`, ...
Identical lines share a timestamp to the second and so lie close together; the window keeps memory bounded on
large files. A repeat split by a rotation restarts its count in the new file, and merges with the first
occurrence.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from datetime import UTC, tzinfo
from pathlib import Path

from collectors import firewall, linux_auth
from collectors.syslog_parse import SyslogMessage, SyslogParseError, parse_syslog
from correlator.model import Event, EventOrigin, Rejected, event_id_for

__all__ = ["FORMAT", "REPEAT_WINDOW", "is_syslog_name", "read_file", "repeat_id", "sniff", "to_event"]

FORMAT = "syslog"
REPEAT_WINDOW = 4096  # distinct recent lines whose repeats are counted
_SNIFF_LINES = 20
_SNIFF_YEAR = 2000  # a leap year: `Feb 29` lines sniff as syslog
_UTF8_BOM = b"\xef\xbb\xbf"
# File names syslog daemons write, with logrotate's suffixes: auth.log, auth.log.1, secure-20261120, messages.
_SYSLOG_NAME = re.compile(
    r"(?:auth|secure|messages|syslog|kern|daemon|user|cron|mail|maillog|debug)(?:\.log)?(?:[.-]\d+)?",
    re.IGNORECASE,
)


def is_syslog_name(name: str) -> bool:
    """Whether a file name is one syslog daemons write (`auth.log`, `auth.log.1`, `secure-20261120`, `messages`):
    for directory walks, where such files have no `.log` suffix or a rotation number as their suffix."""
    return _SYSLOG_NAME.fullmatch(name) is not None


def sniff(head: bytes) -> bool:
    """Whether the start of a file is syslog: more than half of its first non-blank lines (up to 20) parse as
    RFC 3164/5424. A last line cut off by the peek is not judged."""
    text = head.removeprefix(_UTF8_BOM).decode("utf-8", "backslashreplace")
    lines = text.split("\n")
    if len(lines) > 1 and not text.endswith("\n"):
        lines.pop()
    sample = [line for line in lines if line.strip()][:_SNIFF_LINES]
    if not sample:
        return False
    parsed = 0
    for line in sample:
        try:
            parse_syslog(line, received_ms=0, year_hint=_SNIFF_YEAR)
        except SyslogParseError:
            continue
        parsed += 1
    return parsed * 2 > len(sample)


def to_event(
    message: SyslogMessage, raw: str, origin: EventOrigin, event_id: str | None = None
) -> Event | Rejected:
    """An `Event` for a parsed message: ECS from `linux_auth.to_ecs`, or the connection fields of
    `firewall.firewall_fields` for a firewall message; id `event_id_for(raw, time)` unless given. A firewall message
    that cannot be read is a `Rejected` (stage "normalise") with the reason, "line N: " first for a file line.

    The flat fields (what rules read) are built directly; the nested document only when something reads `ecs`
    (a store, an output)."""
    # Auth first: an attacker's user name such as `IN=x OUT=` must not turn an sshd failure into a dead letter.
    auth = linux_auth.auth_fields(message)
    if auth is None:
        try:
            auth = firewall.firewall_fields(message)
        except firewall.FirewallParseError as exc:
            line = f"line {origin.offset}: " if origin.offset is not None else ""
            return Rejected(f"{line}{exc.reason}", origin, raw, stage="normalise")
    fields = linux_auth.to_fields(message, auth)
    return Event(
        id=event_id if event_id is not None else event_id_for(raw, message.timestamp_ms),
        timestamp_ms=message.timestamp_ms,
        raw=raw,
        fields=fields,
        origin=origin,
        ecs_factory=linux_auth.ecs_factory(message, auth, fields),
        host_name=fields.get("host.name"),
    )


def read_file(path: Path, *, tz: tzinfo = UTC, year: int | None = None) -> Iterator[Event | Rejected]:
    """Every line of a syslog file as an `Event`, or a `Rejected` for a line that is not syslog or a file that
    cannot be read. `year` overrides the year BSD timestamps get from the file's mtime."""
    where = str(path)
    try:
        with path.open("rb") as handle:
            received_ms = _mtime_ms(path)
            yield from _read_lines(handle, where, received_ms, tz, year)
    except OSError as exc:
        yield Rejected(f"cannot read file: {exc.strerror or exc}", EventOrigin(path=where, format=FORMAT))


def _mtime_ms(path: Path) -> int:
    return path.stat().st_mtime_ns // 1_000_000


def _read_lines(
    lines: Iterable[bytes], where: str, received_ms: int, tz: tzinfo, year: int | None
) -> Iterator[Event | Rejected]:
    seen: OrderedDict[str, int] = OrderedDict()  # recent distinct lines (by id) -> times seen
    for number, data in enumerate(lines, 1):
        data = data.rstrip(b"\r\n")
        if number == 1:
            data = data.removeprefix(_UTF8_BOM)
        if not data.strip():
            continue
        # Bytes that are not UTF-8 are kept as \xNN escapes: junk in an attacker's user name must not drop the line.
        raw = data.decode("utf-8", "backslashreplace")
        origin = EventOrigin(path=where, offset=number, format=FORMAT)
        try:
            message = parse_syslog(raw, received_ms=received_ms, year_hint=year, tz=tz)
        except SyslogParseError as exc:
            yield Rejected(f"line {number}: {exc.reason}", origin, raw)
            continue
        yield to_event(message, raw, origin, repeat_id(seen, raw, message.timestamp_ms))


def repeat_id(seen: OrderedDict[str, int], raw: str, timestamp_ms: int) -> str:
    """The id of line `raw` at `timestamp_ms` given the recent distinct lines `seen` (by id -> times seen,
    updated here): the n-th repeat hashes with its count (see the module doc)."""
    base = event_id_for(raw, timestamp_ms)
    count = seen.get(base)
    if count is None:
        seen[base] = 1
        if len(seen) > REPEAT_WINDOW:
            seen.popitem(last=False)
        return base
    seen[base] = count + 1
    seen.move_to_end(base)
    return event_id_for(f"{raw}\n#{count}", timestamp_ms)
