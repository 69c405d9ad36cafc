"""IIS logs in the W3C extended log format to ECS `Event`s (like Filebeat's iis module); `read_file` reads a log
file offline, `IisLineReader` takes lines one at a time (the tailer's path).

    #Software: Microsoft Internet Information Services 10.0
    #Version: 1.0
    #Date: 2026-11-24 03:00:00
    #Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) ...
    2026-11-24 03:01:02 10.0.0.10 GET /portal/Default.aspx id=1 443 - 203.0.113.9 Mozilla/5.0+(Windows+NT) ...

`#` lines are directives: `#Fields:` names the columns of the rows after it (IIS writes the header again when it
starts a file or restarts a site, and the columns may change there). A data row has one space-separated value
per field; `-` is "no value". Times are UTC (IIS's W3C logs always are).

An event carries:
- every field under its W3C name, as SigmaHQ's `webserver` rules read them (`cs-method`, `cs-uri-stem`,
  `cs-uri-query`, `sc-status`, `c-ip`, ...), plus `cs-user-agent`, `cs-referer`, `cs-cookie` and `cs-host` for the
  `cs(User-Agent)`-style header columns; the user agent with IIS's `+` turned back into spaces;
- ECS as the web access parser gives it (`collectors.web_access`: `url.original` is stem and query as sent,
  `url.path`/`url.query` decoded once), `source.ip` (c-ip), `destination.ip`/`.port` (s-ip, s-port),
  `user.name`, `user_agent.original`, `http.request.referrer`, `http.response.status_code`, `http.version`,
  `http.request.bytes`/`http.response.bytes` (cs-bytes/sc-bytes), `event.duration` (time-taken, ms),
  `host.name` (s-computername), `iis.access.site_name`/`sub_status`/`win32_status`; event.module `iis`,
  event.dataset `iis.access` (Sigma log source category `webserver`).

A row whose value count differs from the fields, without a date and time, or before any `#Fields:` is a
`Rejected` with the reason. Event id: a hash of the file path, the line number and the line (identical rows stay
distinct; reading the file again gives the same ids).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from collectors.errors import CollectorError
from collectors.w3c import W3cLineReader, field_names, read_w3c
from collectors.web_access import request_fields
from correlator.model import Event, EventOrigin, Rejected, event_id_for, ms_to_iso, nest

__all__ = ["DEFAULT_FIELDS", "FORMAT", "IisLineReader", "IisParseError", "parse_row", "read_file", "sniff"]

FORMAT: Final = "iis"
# The columns IIS logs by default (IIS 8.5 and later): what a row shipped without its file's header is read with.
DEFAULT_FIELDS: Final = ("date", "time", "s-ip", "cs-method", "cs-uri-stem", "cs-uri-query", "s-port",
                         "cs-username", "c-ip", "cs(User-Agent)", "cs(Referer)", "sc-status", "sc-substatus",
                         "sc-win32-status", "time-taken")
_UTF8_BOM: Final = b"\xef\xbb\xbf"
_HEADER_ALIASES: Final = {"cs(user-agent)": "cs-user-agent", "cs(referer)": "cs-referer", "cs(cookie)": "cs-cookie",
                          "cs(host)": "cs-host"}
_PLUS_DECODED: Final = frozenset({"cs-user-agent", "cs-referer", "cs-cookie"})
_INT_FIELDS: Final = {"sc-status": "http.response.status_code", "sc-substatus": "iis.access.sub_status",
                      "sc-win32-status": "iis.access.win32_status", "s-port": "destination.port",
                      "sc-bytes": "http.response.bytes", "cs-bytes": "http.request.bytes"}
_TEXT_FIELDS: Final = {"c-ip": "source.ip", "s-ip": "destination.ip", "cs-username": "user.name",
                       "cs-user-agent": "user_agent.original", "cs-referer": "http.request.referrer",
                       "s-computername": "host.name", "s-sitename": "iis.access.site_name", "cs-host": "url.domain"}
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS: Final = timedelta(milliseconds=1)


class IisParseError(CollectorError):
    """An IIS log row that cannot be read."""


class IisLineReader(W3cLineReader):
    """The lines of one IIS log (`W3cLineReader`), rows by `parse_row`."""

    format = FORMAT

    def row(self, text: str, origin: EventOrigin) -> Event:
        return parse_row(text, self.fields, origin)


def parse_row(line: str, fields: tuple[str, ...], origin: EventOrigin) -> Event:
    """One data row under the `#Fields:` columns `fields`."""
    if not fields:
        raise IisParseError("a data row before any #Fields: directive")
    values = line.split()
    if len(values) != len(fields):
        raise IisParseError(f"{len(values)} values for {len(fields)} fields ({' '.join(fields)})")
    native: dict[str, Any] = {}
    for name, value in zip(fields, values, strict=True):
        if value == "-":
            continue
        native[name] = value
        alias = _HEADER_ALIASES.get(name.lower())
        if alias is not None:
            native[alias] = value.replace("+", " ") if alias in _PLUS_DECODED else value
    if "date" not in native or "time" not in native:
        raise IisParseError("a row without date and time")
    try:
        moment = datetime.fromisoformat(f"{native['date']}T{native['time']}").replace(tzinfo=UTC)
    except ValueError:
        raise IisParseError(f"date and time {native['date']} {native['time']} are not YYYY-MM-DD hh:mm:ss") from None
    timestamp_ms = (moment - _EPOCH) // _ONE_MS
    ecs = _ecs(native, timestamp_ms)
    flat = {**ecs, **native}
    key = f"{origin.path or ''}\n{origin.offset if origin.offset is not None else ''}\n{line}"
    return Event(id=event_id_for(key, timestamp_ms), timestamp_ms=timestamp_ms, raw=line, ecs=nest(ecs), fields=flat,
                 origin=origin)


def _ecs(native: dict[str, Any], timestamp_ms: int) -> dict[str, Any]:
    flat: dict[str, Any] = {"@timestamp": ms_to_iso(timestamp_ms), "event.kind": "event",
                            "event.category": ["web"], "event.type": ["access"], "event.module": "iis",
                            "event.dataset": "iis.access"}
    method = native.get("cs-method")
    if method:
        target = native.get("cs-uri-stem", "")
        if "cs-uri-query" in native:
            target = f"{target}?{native['cs-uri-query']}"
        if target:
            request_fields(flat, f"{method} {target}")
        else:
            flat["http.request.method"] = method
    for name, ecs in _INT_FIELDS.items():
        value = native.get(name)
        if value is not None and value.isdigit():
            flat[ecs] = int(value)
    for name, ecs in _TEXT_FIELDS.items():
        if name in native:
            flat[ecs] = native[name]
    status = flat.get("http.response.status_code")
    if isinstance(status, int):
        flat["event.outcome"] = "success" if status < 400 else "failure"
    taken = native.get("time-taken")
    if taken is not None and taken.isdigit():
        flat["event.duration"] = int(taken) * 1_000_000  # ms -> ns
    version = native.get("cs-version")
    if version:
        flat["http.version"] = version.removeprefix("HTTP/")
    return flat


def sniff(head: bytes) -> bool:
    """Whether a file's first bytes look like an IIS log: W3C directives naming IIS, or a `#Fields:` directive
    with IIS's request columns."""
    text = head.removeprefix(_UTF8_BOM)[:4096].decode("utf-8", "replace")
    if text.startswith("#Software: Microsoft Internet Information Services"):
        return True
    for line in text.splitlines()[:8]:
        if line.startswith("#Fields:"):
            names = set(field_names(line))
            return {"date", "time", "cs-uri-stem"} <= names
        if not line.startswith("#"):
            return False
    return False


def read_file(path: Path) -> Iterator[Event | Rejected]:
    """Every row of an IIS log as an `Event`, or a `Rejected` ("line N: reason", the row as raw)."""
    return read_w3c(Path(path), IisLineReader(str(path)))
