"""Apache and Nginx access logs to ECS `Event`s (like Filebeat's apache/nginx modules); `read_file` reads a log
file offline, `parse_line` is the pure parser of one line.

    for item in read_file(Path("/var/log/nginx/access.log"), server="nginx"):
        ...  # Event -> rules, Rejected -> dead-letter store

Accepted lines, after an optional `host:port` virtual host (Apache `vhost_combined`, `%v:%p`):

    client ident user [time] "request" status bytes                                  common
    client ident user [time] "request" status bytes "referrer" "user agent"          combined (Nginx default)
    client ident user [time] "request" status bytes "referrer" "user agent" "xff"    Nginx `main` (X-Forwarded-For)

`client` may be IPv4, IPv6 or a host name; `-` stands for "no value" in every field; `bytes` may be `-`.

Decisions:

- Quoted values are unescaped as Apache and Nginx escape them: `\\"` and `\\\\`; a run of `\\xHH` that makes valid
  UTF-8 without control characters becomes those characters, any other run (a TLS handshake sent to a plain HTTP
  port) stays as logged.
- `url.original` is the request target as sent (percent-encoded). `url.path` and `url.query` (without `?`) are
  percent-decoded once, the query also with `+` as a space; invalid escapes stay, decoded bytes that are not UTF-8
  become `\\xHH`. Rules match the encoded form on `url.original` and the decoded forms on path and query: decoding
  once also turns a double-encoded payload (`%2527`) into the single-encoded one (`%27`) rules list. No raw copy of
  path or query is kept: `url.original` holds them. The cost: an encoded `%26cmd%3D` inside a parameter's value
  reads as a `&cmd=` parameter. `url.extension` is what follows the last dot of the decoded path's last segment
  when it is 1-16 letters, digits, `_` or `-`.
- A request that is not `METHOD TARGET [HTTP/x.y]` (TLS garbage, `-`, empty on a 400) gives no method or url; its
  text, when there is any, is `web.access.request`.
- `source.ip` is the connection's peer; the first address in X-Forwarded-For is `network.forwarded_ip` (a claim of
  the client's, not a fact), the whole list `web.access.x_forwarded_for`. The vhost is `destination.domain`/`.port`.
- `@timestamp` keeps the logged offset (`2026-11-20T08:00:00.000+07:00`); `timestamp_ms` is UTC.
- Event id: a hash of the file path, the line number and the line, so identical lines (the same request twice in a
  second) stay distinct events and reading the same file again gives the same ids. The same content read under
  another path (a rotated `access.log.1`, a relative path) gets other ids. Without path and line number
  (`parse_line` on a stream) the id depends on the line alone.
- Lines are decoded as UTF-8; bytes that are not UTF-8 become `\\xHH` (servers escape them, so this is rare).
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import unquote, unquote_plus, urlsplit

from collectors.errors import CollectorError, UnsupportedFormatError
from correlator.model import Event, EventOrigin, Rejected, event_id_for, nest

__all__ = ["FORMAT", "SERVERS", "AccessLogParseError", "parse_line", "read_file", "request_fields", "sniff"]

FORMAT = "web-access"
SERVERS: tuple[str, ...] = ("apache", "nginx")  # `server=` values; None gives event.module "web"

_MONTHS = {name: number for number, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_SNIFF_LINES = 5
_EXCERPT = 60

_HEAD = re.compile(
    r"(?:(?P<vhost>\S+:\d+)\s+)?(?P<client>\S+)\s+(?P<ident>\S+)\s+(?P<user>\S+)\s+\[(?P<time>[^\]]*)\]\s+")
_TIME = re.compile(
    r"(\d{1,2})/([A-Za-z]{3})/(\d{4}):(\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?\s*([+-])(\d{2}):?(\d{2})")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_STATUS_BYTES = re.compile(r"\s+(\d{3})\s+(\d+|-)")
_NEXT_QUOTED = re.compile(r'\s+"((?:[^"\\]|\\.)*)"')
_ESCAPE = re.compile(r'\\(["\\])|((?:\\x[0-9A-Fa-f]{2})+)')
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_REQUEST = re.compile(r"([!#$%&'*+.^_`|~0-9A-Za-z-]+) (.+?)(?: HTTP/(\d+(?:\.\d+)?))?")
_EXTENSION = re.compile(r"[\w-]{1,16}")  # what follows the last dot of the last segment, if it looks like one
_TAIL_NAMES = {0: (), 2: ("referrer", "agent"), 3: ("referrer", "agent", "xff")}


class AccessLogParseError(CollectorError):
    """A line that is not an access log line in one of the accepted shapes."""


def parse_line(line: str, origin: EventOrigin, *, server: str | None = None) -> Event:
    """One access log line (without its line break) to an `Event`; `AccessLogParseError` names what is wrong.

    `server` ("apache", "nginx") sets `event.module`/`event.dataset` (`nginx`/`nginx.access`); without it they
    are `web`/`web.access`."""
    module = _module(server)
    head = _HEAD.match(line)
    if head is None:
        raise AccessLogParseError.at(origin, f"expected 'client ident user [time]' at the start, got "
                                             f"{_excerpt(line)!r}")
    try:
        timestamp, timestamp_ms = _time(head["time"])
    except ValueError as exc:
        raise AccessLogParseError.at(origin, str(exc)) from None
    pos = head.end()
    request = _QUOTED.match(line, pos)
    if request is None:
        raise AccessLogParseError.at(origin, f'expected a quoted "request" after the time, got '
                                             f"{_excerpt(line[pos:])!r}")
    status = _STATUS_BYTES.match(line, request.end())
    if status is None:
        raise AccessLogParseError.at(origin, f"expected the status and the byte count after the request, got "
                                             f"{_excerpt(line[request.end():])!r}")
    pos = status.end()
    tail: list[str] = []
    while (quoted := _NEXT_QUOTED.match(line, pos)) is not None:
        tail.append(_unescape(quoted[1]))
        pos = quoted.end()
    if line[pos:].strip():
        raise AccessLogParseError.at(origin, f"unexpected text after the last field: {_excerpt(line[pos:])!r}")
    names = _TAIL_NAMES.get(len(tail))
    if names is None:
        raise AccessLogParseError.at(origin, f"{len(tail)} quoted fields after the byte count; expected 0 (common), "
                                             f"2 (combined) or 3 (combined with X-Forwarded-For)")

    code = int(status[1])
    flat: dict[str, Any] = {
        "@timestamp": timestamp,
        "event.kind": "event",
        "event.category": ["web"],
        "event.type": ["access"],
        "event.outcome": "success" if code < 400 else "failure",
        "event.module": module,
        "event.dataset": f"{module}.access",
        "http.response.status_code": code,
    }
    if status[2] != "-":
        flat["http.response.body.bytes"] = int(status[2])
    _client(flat, head["client"])
    _optional(flat, "user.name", head["user"])
    _optional(flat, "web.access.ident", head["ident"])
    if head["vhost"]:
        domain, _, port = head["vhost"].rpartition(":")
        flat["destination.domain"] = domain
        flat["destination.port"] = int(port)
    request_fields(flat, _unescape(request[1]))
    extra = dict(zip(names, tail, strict=True))
    _optional(flat, "http.request.referrer", extra.get("referrer", "-"))
    _optional(flat, "user_agent.original", extra.get("agent", "-"))
    _forwarded(flat, extra.get("xff", "-"))
    key = f"{origin.path or ''}\n{origin.offset if origin.offset is not None else ''}\n{line}"
    return Event(id=event_id_for(key, timestamp_ms), timestamp_ms=timestamp_ms, raw=line, ecs=nest(flat),
                 fields=flat, origin=origin)


def _module(server: str | None) -> str:
    if server is None:
        return "web"
    if server not in SERVERS:
        raise UnsupportedFormatError(f"unknown web server {server!r}; expected one of {', '.join(SERVERS)}")
    return server


def _excerpt(text: str) -> str:
    return text if len(text) <= _EXCERPT else text[:_EXCERPT] + "..."


@lru_cache(maxsize=1024)  # lines of one second share their time
def _time(text: str) -> tuple[str, int]:
    """`@timestamp` (with the logged offset) and epoch milliseconds; ValueError with the reason."""
    match = _TIME.fullmatch(text.strip())
    month = _MONTHS.get(match[2].lower()) if match else None
    if match is None or month is None:
        raise ValueError(f"unreadable time [{_excerpt(text)}]; expected dd/Mon/yyyy:hh:mm:ss +zzzz")
    offset = timedelta(hours=int(match[9]), minutes=int(match[10]))
    try:
        moment = datetime(int(match[3]), month, int(match[1]), int(match[4]), int(match[5]), int(match[6]),
                          int((match[7] or "0").ljust(6, "0")[:6]),
                          tzinfo=timezone(-offset if match[8] == "-" else offset))
    except ValueError as exc:
        raise ValueError(f"unreadable time [{text}]: {exc}") from exc
    return moment.isoformat(timespec="milliseconds"), (moment - _EPOCH) // _ONE_MS


@lru_cache(maxsize=4096)  # clients repeat
def _ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text.strip("[]")))
    except ValueError:
        return None


def _unescape(text: str) -> str:
    """A quoted value as the server received it: `\\"`, `\\\\` and printable UTF-8 `\\xHH` runs unescaped."""
    if "\\" not in text:
        return text

    def replace(match: re.Match[str]) -> str:
        if match[1] is not None:
            return match[1]
        run = match[2]
        try:
            decoded = bytes.fromhex(run.replace("\\x", "")).decode("utf-8")
        except UnicodeDecodeError:
            return run
        return run if _CONTROL.search(decoded) else decoded

    return _ESCAPE.sub(replace, text)


def _optional(flat: dict[str, Any], name: str, value: str) -> None:
    if value and value != "-":
        flat[name] = value


def _client(flat: dict[str, Any], client: str) -> None:
    flat["source.address"] = client
    ip = _ip(client)
    if ip is not None:
        flat["source.ip"] = ip
    elif client != "-":
        flat["source.domain"] = client


def _forwarded(flat: dict[str, Any], header: str) -> None:
    hops = [hop.strip() for hop in header.split(",") if hop.strip() and hop.strip() != "-"]
    if not hops:
        return
    flat["web.access.x_forwarded_for"] = hops
    ip = _ip(hops[0])
    if ip is not None:
        flat["network.forwarded_ip"] = ip


def request_fields(flat: dict[str, Any], request: str) -> None:
    """The request line: method, url.* and http.version, or `web.access.request` for what is not HTTP."""
    match = _REQUEST.fullmatch(request)
    if match is None:
        _optional(flat, "web.access.request", request)
        return
    method, target, version = match.groups()
    flat["http.request.method"] = method
    flat["url.original"] = target
    if version:
        flat["http.version"] = version
    if "://" in target[:16]:  # absolute form (proxies): scheme://host[:port]/path?query
        parts = urlsplit(target)
        _optional(flat, "url.scheme", parts.scheme)
        _optional(flat, "url.domain", parts.hostname or "")
        with contextlib.suppress(ValueError):  # a port out of range
            if parts.port is not None:
                flat["url.port"] = parts.port
        path, query, fragment = parts.path, parts.query, parts.fragment
        has_query = "?" in target
    elif method.upper() == "CONNECT":  # authority form: host:port
        host, _, port = target.rpartition(":")
        flat["url.domain"] = host.strip("[]") or target
        if port.isdigit():
            flat["url.port"] = int(port)
        return
    else:
        rest, _, fragment = target.partition("#")
        path, mark, query = rest.partition("?")
        has_query = bool(mark)
    path = unquote(path, errors="backslashreplace")
    _optional(flat, "url.path", path)
    if has_query:
        flat["url.query"] = unquote_plus(query, errors="backslashreplace")
    _optional(flat, "url.fragment", fragment)
    name = path.rpartition("/")[2]
    if "." in name and _EXTENSION.fullmatch(extension := name.rpartition(".")[2]):
        flat["url.extension"] = extension


def sniff(head: bytes) -> bool:
    """Whether a file's first bytes look like an access log: the first non-blank lines (up to 5) parse, most of
    them at least. A last line cut off by the end of `head` is not judged."""
    lines = head.removeprefix(b"\xef\xbb\xbf").split(b"\n")
    if len(lines) > 1:
        lines = lines[:-1]  # whole lines only; b"a\n" splits into [b"a", b""]
    tried = parsed = 0
    for data in lines:
        text = data.strip().decode("utf-8", "backslashreplace")
        if not text:
            continue
        tried += 1
        try:
            parse_line(text, EventOrigin(format=FORMAT))
            parsed += 1
        except CollectorError:
            pass
        if tried == _SNIFF_LINES:
            break
    return parsed > 0 and parsed * 2 > tried


def read_file(path: Path, *, server: str | None = None) -> Iterator[Event | Rejected]:
    """Every line of an access log as an `Event`, or a `Rejected` ("line N: reason", the line as raw) for a line
    that does not parse; blank lines are skipped. `UnsupportedFormatError` at call time for an unknown `server`."""
    _module(server)
    return _read(Path(path), server)


def _read(path: Path, server: str | None) -> Iterator[Event | Rejected]:
    where = str(path)
    try:
        with path.open("rb") as handle:
            for number, data in enumerate(handle, 1):
                if number == 1:
                    data = data.removeprefix(b"\xef\xbb\xbf")
                line = data.rstrip(b"\r\n").decode("utf-8", "backslashreplace")
                if not line.strip():
                    continue
                origin = EventOrigin(path=where, offset=number, format=FORMAT)
                try:
                    yield parse_line(line, origin, server=server)
                except AccessLogParseError as exc:
                    yield Rejected(f"line {number}: {exc.reason}", origin, line)
    except OSError as exc:
        yield Rejected(f"cannot read file: {exc.strerror or exc}", EventOrigin(path=where, format=FORMAT))
