"""Squid access logs in Squid's native format to ECS `Event`s (a forward proxy's log: Sigma's `proxy` category);
`read_file` reads a log file offline, `parse_line` is the pure parser of one line.

    1732064400.123    245 10.0.0.5 TCP_MISS/200 5120 GET http://x.example/a - HIER_DIRECT/203.0.113.8 text/plain
    time.ms     elapsed client   result/status bytes method URL    user hierarchy/peer        type

(Squid's `logformat squid`: `%ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt`.) `-` is "no value".
A proxy configured with the `combined` format writes Apache-style lines: `collectors.web_access` reads those.

An event carries `@timestamp` (the request's end, UTC), `event.duration` (elapsed ms), `source.ip`, `user.name`,
`http.request.method`, `http.response.status_code`, `http.response.bytes` (bytes sent to the client),
`http.response.mime_type`, `url.original` (the URL as logged: absolute for plain HTTP, `host:port` for CONNECT)
with `url.full`, `url.scheme`, `url.domain`, `url.port`, `url.path`, `url.query`, `url.extension`, the
`destination.ip` of the server or peer Squid went to, `squid.result_code` (TCP_MISS, TCP_DENIED, ...) and
`squid.hierarchy_code`; event.module `squid`, event.dataset `squid.access`, outcome `failure` for a status of
400 and above or a `*_DENIED` result. Event id: a hash of the file path, line number and line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote, unquote_plus, urlsplit

from collectors.errors import CollectorError
from collectors.linux_auth import canonical_ip
from correlator.model import Event, EventOrigin, Rejected, event_id_for, ms_to_iso, nest

__all__ = ["FORMAT", "SquidParseError", "parse_line", "read_file", "sniff"]

FORMAT: Final = "squid"
_LINE = re.compile(
    r"(?P<ts>\d{9,11})(?:\.(?P<ms>\d{1,3}))?\s+(?P<elapsed>-?\d+)\s+(?P<client>\S+)\s+(?P<result>[A-Z_]+)/"
    r"(?P<status>\d{3})\s+(?P<bytes>\d+)\s+(?P<method>[A-Za-z_-]+|NONE|-)\s+(?P<url>\S+)\s+(?P<user>\S+)\s+"
    r"(?P<hier>[A-Z_]+)/(?P<peer>\S+)\s+(?P<type>\S+)\s*$")
_EXTENSION = re.compile(r"[\w-]{1,16}")
_SNIFF_LINES: Final = 5


class SquidParseError(CollectorError):
    """A line that is not a Squid native access log line."""


def parse_line(line: str, origin: EventOrigin) -> Event:
    match = _LINE.match(line)
    if match is None:
        raise SquidParseError.at(origin, "not a Squid access log line (time elapsed client result/status bytes "
                                         "method URL user hierarchy/peer type)")
    timestamp_ms = int(match["ts"]) * 1000 + int((match["ms"] or "0").ljust(3, "0"))
    status = int(match["status"])
    result = match["result"]
    failed = status >= 400 or result.endswith("_DENIED")
    flat: dict[str, Any] = {
        "@timestamp": ms_to_iso(timestamp_ms), "event.kind": "event", "event.category": ["network", "web"],
        "event.type": ["access", "connection"], "event.module": "squid", "event.dataset": "squid.access",
        "event.outcome": "failure" if failed else "success", "squid.result_code": result,
        "squid.hierarchy_code": match["hier"], "http.response.bytes": int(match["bytes"]),
    }
    if status:
        flat["http.response.status_code"] = status
    elapsed = int(match["elapsed"])
    if elapsed >= 0:
        flat["event.duration"] = elapsed * 1_000_000  # ms -> ns
    client = canonical_ip(match["client"])
    if client is not None:
        flat["source.ip"] = client
    else:
        flat["source.domain"] = match["client"]
    if match["user"] != "-":
        flat["user.name"] = unquote(match["user"])
    method = match["method"]
    if method not in ("-", "NONE"):
        flat["http.request.method"] = method
    _url(flat, match["url"], method)
    peer = canonical_ip(match["peer"])
    if peer is not None:
        flat["destination.ip"] = peer
    if match["type"] != "-":
        flat["http.response.mime_type"] = match["type"]
    key = f"{origin.path or ''}\n{origin.offset if origin.offset is not None else ''}\n{line}"
    return Event(id=event_id_for(key, timestamp_ms), timestamp_ms=timestamp_ms, raw=line, ecs=nest(flat), fields=flat,
                 origin=origin)


def _url(flat: dict[str, Any], url: str, method: str) -> None:
    if url == "-" or url.startswith("error:"):
        return
    flat["url.original"] = url
    if method == "CONNECT" or "://" not in url[:16]:  # host:port of a tunnel
        host, _, tunnel_port = url.rpartition(":")
        flat["url.domain"] = (host or url).strip("[]")
        if tunnel_port.isdigit():
            flat["url.port"] = int(tunnel_port)
        return
    flat["url.full"] = url
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return
    flat["url.scheme"] = parts.scheme
    if parts.hostname:
        flat["url.domain"] = parts.hostname
    if port is not None:
        flat["url.port"] = port
    if parts.path:
        path = unquote(parts.path, errors="backslashreplace")
        flat["url.path"] = path
        name = path.rpartition("/")[2]
        if "." in name and _EXTENSION.fullmatch(extension := name.rpartition(".")[2]):
            flat["url.extension"] = extension
    if parts.query:
        flat["url.query"] = unquote_plus(parts.query, errors="backslashreplace")


def sniff(head: bytes) -> bool:
    """Whether a file's first lines (up to 5 whole ones) are Squid native access log lines, most of them."""
    lines = [data for data in head.removeprefix(b"\xef\xbb\xbf").split(b"\n")[:-1] if data.strip()]
    tried = lines[:_SNIFF_LINES]
    parsed = sum(1 for data in tried if _LINE.match(data.decode("utf-8", "backslashreplace")) is not None)
    return parsed > 0 and parsed * 2 > len(tried)


def read_file(path: Path) -> Iterator[Event | Rejected]:
    """Every line of a Squid access log as an `Event`, or a `Rejected` ("line N: reason") for one that is not."""
    return _read(Path(path))


def _read(path: Path) -> Iterator[Event | Rejected]:
    where = str(path)
    try:
        with path.open("rb") as handle:
            for number, data in enumerate(handle, 1):
                line = data.removeprefix(b"\xef\xbb\xbf").rstrip(b"\r\n").decode("utf-8", "backslashreplace")
                if not line.strip():
                    continue
                origin = EventOrigin(path=where, offset=number, format=FORMAT)
                try:
                    yield parse_line(line, origin)
                except SquidParseError as exc:
                    yield Rejected(f"line {number}: {exc.reason}", origin, line)
    except OSError as exc:
        yield Rejected(f"cannot read file: {exc.strerror or exc}", EventOrigin(path=where, format=FORMAT))
