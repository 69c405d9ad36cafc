"""Windows Defender Firewall logs (pfirewall.log) to ECS connection events, like the firewall syslog lines of
`collectors.firewall`; `read_file` reads a log offline, `FirewallLogReader` takes lines one at a time (tailing).

    #Version: 1.5
    #Software: Microsoft Windows Firewall
    #Time Format: Local
    #Fields: date time action protocol src-ip dst-ip src-port dst-port size tcpflags tcpsyn tcpack tcpwin icmptype
             icmpcode info path pid
    2026-11-24 10:00:01 DROP TCP 203.0.113.5 10.0.0.21 51234 3389 52 S 123456 0 64240 - - - RECEIVE 0

`#` lines are directives (`#Fields:` names the columns; Windows writes `pid` since Windows 10 1809). Times are the
host's local time: `tz` places them (UTC when not given; `socctl ingest --timezone`, `timezone:` of `socctl run`).
A row gives `event.action` firewall-allow / firewall-drop, the connection's endpoints, `network.transport`,
`network.direction` (path SEND: egress, RECEIVE: ingress), `process.pid`, the sizes and TCP details under
`windows_firewall.*`, and Sigma's firewall names (`src_ip`, `dst_port`, `action`, `blocked`); event.dataset
`windows_firewall.log` (Sigma log source category `firewall`). INFO-EVENTS-LOST rows say how many events the
firewall could not log: an event of its own (`event.action` firewall-events-lost) without endpoints. A row that
cannot be read is a `Rejected` with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, Final

from collectors.errors import CollectorError
from collectors.firewall import FirewallParseError, connection_fields
from collectors.w3c import W3cLineReader, read_w3c
from correlator.model import Event, EventOrigin, Rejected, event_id_for, ms_to_iso, nest

__all__ = ["DATASET", "FORMAT", "FirewallLogReader", "read_file", "sniff"]

FORMAT: Final = "windows-firewall"
DATASET: Final = "windows_firewall.log"
DEFAULT_FIELDS: Final = ("date", "time", "action", "protocol", "src-ip", "dst-ip", "src-port", "dst-port", "size",
                         "tcpflags", "tcpsyn", "tcpack", "tcpwin", "icmptype", "icmpcode", "info", "path")
_UTF8_BOM: Final = b"\xef\xbb\xbf"
_DIRECTION: Final = {"SEND": "egress", "RECEIVE": "ingress", "FORWARD": "external"}
_EXTRA: Final = ("size", "tcpflags", "tcpsyn", "tcpack", "tcpwin", "icmptype", "icmpcode", "info")


class FirewallLogError(CollectorError):
    """A Windows Firewall log row that cannot be read."""


class FirewallLogReader(W3cLineReader):
    """The lines of one pfirewall.log (`W3cLineReader`; its default columns until a `#Fields:`), rows by
    `parse_row` in the zone `tz`."""

    format = FORMAT
    reject_stage = "normalise"

    def __init__(self, where: str | None, tz: tzinfo = UTC) -> None:
        super().__init__(where, DEFAULT_FIELDS)
        self.tz = tz

    def row(self, text: str, origin: EventOrigin) -> Event:
        return parse_row(text, self.fields, origin, self.tz)


def parse_row(line: str, fields: tuple[str, ...], origin: EventOrigin, tz: tzinfo = UTC) -> Event:
    values = line.split()
    if len(values) != len(fields):
        raise FirewallLogError(f"{len(values)} values for {len(fields)} fields ({' '.join(fields)})")
    row = {name: value for name, value in zip(fields, values, strict=True) if value != "-"}
    try:
        moment = datetime.fromisoformat(f"{row['date']}T{row['time']}").replace(tzinfo=tz)
    except (KeyError, ValueError):
        raise FirewallLogError("no valid date and time (YYYY-MM-DD hh:mm:ss)") from None
    timestamp_ms = int(moment.timestamp() * 1000)
    action = row.get("action", "").upper()
    extra: dict[str, Any] = {f"windows_firewall.{name}": row[name] for name in _EXTRA if name in row}
    if "pid" in row and row["pid"].isdigit():
        extra["process.pid"] = int(row["pid"])
    if action == "INFO-EVENTS-LOST":
        flat: dict[str, Any] = {"event.kind": "event", "event.category": ["network"], "event.type": ["info"],
                                "event.module": "windows_firewall", "event.dataset": DATASET,
                                "event.action": "firewall-events-lost", "observer.vendor": "Microsoft",
                                "observer.product": "Windows Firewall", "observer.type": "firewall", **extra}
    else:
        if action not in ("ALLOW", "DROP"):
            raise FirewallLogError(f"action {action or '-'!r} is not ALLOW, DROP or INFO-EVENTS-LOST")
        if "src-ip" not in row or "dst-ip" not in row:
            raise FirewallLogError("a row without src-ip and dst-ip")
        try:
            flat = connection_fields(
                DATASET, ("Microsoft", "Windows Firewall"), action.lower(), action == "ALLOW",
                (row["src-ip"], _port(row.get("src-port"))), (row["dst-ip"], _port(row.get("dst-port"))),
                _transport(row.get("protocol")), direction=_DIRECTION.get(row.get("path", "").upper()), extra=extra)
        except FirewallParseError as exc:
            raise FirewallLogError(exc.reason) from None
    flat["@timestamp"] = ms_to_iso(timestamp_ms)
    key = f"{origin.path or ''}\n{origin.offset if origin.offset is not None else ''}\n{line}"
    return Event(id=event_id_for(key, timestamp_ms), timestamp_ms=timestamp_ms, raw=line, ecs=nest(flat), fields=flat,
                 origin=origin)


def _port(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() and int(value) <= 65535 else None


def _transport(value: str | None) -> str | None:
    if value is None:
        return None
    return "ipv6-icmp" if value.upper() == "ICMPV6" else value.lower()


def sniff(head: bytes) -> bool:
    """Whether a file's first bytes are a Windows Firewall log: its directives name the software."""
    text = head.removeprefix(_UTF8_BOM)[:2048].decode("utf-8", "replace")
    return any(line.startswith("#Software: Microsoft Windows Firewall") for line in text.splitlines()[:6])


def read_file(path: Path, *, tz: tzinfo = UTC) -> Iterator[Event | Rejected]:
    """Every row of a Windows Firewall log as an `Event`, or a `Rejected` ("line N: reason")."""
    return read_w3c(Path(path), FirewallLogReader(str(path), tz))
