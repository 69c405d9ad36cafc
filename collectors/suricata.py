"""Suricata EVE JSON to `Event`, mapped to ECS the way Filebeat's suricata/eve module maps it.

    for item in read_file(Path("/var/log/suricata/eve.json")):
        ...  # Event -> rules, Rejected -> dead-letter store

Every record gets the common fields (`@timestamp`, `source.*`, `destination.*`, `network.*`, `observer.*`,
`event.module: suricata`, `event.dataset: suricata.<event_type>`, `event.kind`, `event.category`, `event.type`)
and those of the app-layer objects it carries (`alert`, `flow`, `dns`, `http`, `tls`, `fileinfo`), whatever its
event type: an alert on an HTTP transaction has `url.*` too. The record itself stays under `suricata.eve`
(nested in `ecs`, one dotted name per leaf in `fields`).

Files are EVE's NDJSON (one record per line, streamed) or a JSON array / pretty-printed records (read whole). The
raw text of a record is its line (its own text in a document), so its event id is stable.

The small network helpers at the end (`add_ip`, `is_ip`, `iso_utc`, `json_kind`, `tls_version`,
`url_parts`) are shared with
`collectors.zeek`.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import orjson

from collectors.errors import CollectorError, NormalisationError
from collectors.generic import flat_fields, to_epoch_ms
from collectors.json_reader import read_json_text
from correlator.model import Event, EventOrigin, Rejected, event_id_for, ms_to_iso, nest

__all__ = ["FORMAT", "add_ip", "is_ip", "iso_utc", "json_kind", "normalise_record", "put_url_full", "read_file",
           "sniff", "tls_version", "url_parts"]

FORMAT = "suricata-eve"

_UTF8_BOM = b"\xef\xbb\xbf"
_EVENT_TYPE_KEY = re.compile(rb'"event_type"\s*:\s*"')
_TIMESTAMP_KEY = re.compile(rb'"timestamp"\s*:')

# event_type -> (event.category, event.type, network.protocol); others are ("network",), (), None.
_PROTOCOL = (("network",), ("protocol",))
_CATEGORISATION: dict[str, tuple[tuple[str, ...], tuple[str, ...], str | None]] = {
    "alert": (("network", "intrusion_detection"), (), None),
    "http": (("network", "web"), ("access", "protocol"), "http"),
    "flow": (("network",), ("connection",), None),
    "netflow": (("network",), ("connection",), None),
    "fileinfo": (("file",), ("info",), None),
    "stats": ((), (), None),
    **{name: (*_PROTOCOL, name) for name in ("dns", "tls", "ftp", "tftp", "smb", "ssh", "rdp", "smtp", "dhcp",
                                              "krb5", "snmp", "sip", "http2", "quic", "mqtt", "rfb", "dcerpc")},
    "ftp_data": (*_PROTOCOL, "ftp"),
}
_NO_PROTOCOL = frozenset({"failed", "template", "template-rust", "unknown"})
_DNS_TYPES = {"query": "query", "request": "query", "answer": "answer", "response": "answer"}
_DNS_FLAGS = (("aa", "AA"), ("tc", "TC"), ("rd", "RD"), ("ra", "RA"), ("ad", "AD"), ("cd", "CD"))
_HASH_NAMES = ("md5", "sha1", "sha256")


def sniff(head: bytes) -> bool:
    """Whether a file's first bytes are Suricata EVE: a JSON record with `event_type` and `timestamp` (the first
    line of NDJSON, or the first record of an array / pretty-printed document)."""
    text = head.removeprefix(_UTF8_BOM).lstrip()
    if text[:1] not in (b"{", b"["):
        return False
    first = text.split(b"\n", 1)[0].strip()
    try:
        record = orjson.loads(first)
    except orjson.JSONDecodeError:
        record = None
    if isinstance(record, dict):
        return isinstance(record.get("event_type"), str) and "timestamp" in record
    # A document, or a first line longer than the head: the keys near the start will do.
    window = text[:16384]
    return bool(_EVENT_TYPE_KEY.search(window) and _TIMESTAMP_KEY.search(window))


def read_file(path: Path) -> Iterator[Event | Rejected]:
    """Every record of an EVE file as an `Event`, or a `Rejected` (reason `line N: ...`) for a line that is not
    JSON, not an object or not an EVE record; reading goes on with the next one."""
    where = str(path)
    try:
        with Path(path).open("rb") as handle:
            if _is_ndjson(handle):
                handle.seek(0)
                yield from _read_lines(handle, where)
                return
            handle.seek(0)
            data = handle.read()
    except OSError as exc:
        yield Rejected(f"cannot read file: {exc.strerror or exc}", EventOrigin(path=where, format=FORMAT))
        return
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        yield Rejected(f"not UTF-8 text: {exc.reason} at byte {exc.start}",
                       EventOrigin(path=where, offset=exc.start, format=FORMAT))
        return
    # The generic JSON reader walks arrays and pretty-printed records (and resynchronises after a broken one);
    # each record it reads is normalised again here, as EVE.
    for item in read_json_text(text, where, FORMAT):
        if isinstance(item, Rejected):
            yield item
        else:
            yield _to_event(json.loads(item.raw), item.raw, item.origin)


def _is_ndjson(handle: BinaryIO) -> bool:
    for line in handle:
        first = line.strip().removeprefix(_UTF8_BOM)
        if first:
            try:
                return isinstance(orjson.loads(first), dict)
            except orjson.JSONDecodeError:
                return False
    return True


def _read_lines(handle: BinaryIO, where: str) -> Iterator[Event | Rejected]:
    for number, line in enumerate(handle, 1):
        data = line.strip()
        if number == 1:
            data = data.removeprefix(_UTF8_BOM)
        if not data:
            continue
        origin = EventOrigin(path=where, offset=number, format=FORMAT)
        try:
            raw = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield Rejected(f"line {number}: not UTF-8: {exc.reason} at column {exc.start + 1}", origin,
                           data.decode("utf-8", "replace"))
            continue
        try:
            record = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            yield Rejected(f"line {number}: invalid JSON at column {exc.colno}: {exc.msg}", origin, raw)
            continue
        yield _to_event(record, raw, origin)


def _to_event(record: Any, raw: str, origin: EventOrigin) -> Event | Rejected:
    where = f"line {origin.offset}: "
    if not isinstance(record, dict):
        return Rejected(f"{where}expected a JSON object, got {json_kind(record)}", origin, raw)
    try:
        return normalise_record(record, raw, origin)
    except CollectorError as exc:
        return Rejected(f"{where}{exc.reason}", origin, raw, stage="normalise")


# --- one record ------------------------------------------------------------------------------------------------


def normalise_record(record: dict[str, Any], raw: str, origin: EventOrigin) -> Event:
    """One EVE record to an `Event`. `raw` is the record's text (its id is `event_id_for(raw, time)`); `record` is not
    modified and becomes `ecs["suricata"]["eve"]`. `fields` (also `native`, which routing reads) hold every ECS
    field and the record's leaves; the nested `ecs` document is built on first use.

    Raises `NormalisationError` for a record without an `event_type` or a parseable `timestamp`."""
    event_type = record.get("event_type")
    if not isinstance(event_type, str) or not event_type:
        raise NormalisationError.at(origin, "not an EVE record: no event_type")
    event_type = event_type.lower()
    timestamp_ms = to_epoch_ms(record.get("timestamp"))
    if timestamp_ms is None:
        raise NormalisationError.at(origin, f"EVE record has no valid timestamp: {record.get('timestamp')!r}")
    out: dict[str, Any] = {"@timestamp": ms_to_iso(timestamp_ms)}
    _common(record, event_type, out)
    parts = {name: part for name, part in record.items() if type(part) is dict}
    if "alert" in parts:
        _alert(parts["alert"], out)
    if "flow" in parts:
        _flow(parts["flow"], event_type, out)
    if "netflow" in parts:
        _netflow(parts["netflow"], out)
    if "dns" in parts:
        _dns(parts["dns"], out)
    if "http" in parts:
        _http(parts["http"], event_type, out)
    if "tls" in parts:
        _tls(parts["tls"], out)
    if "fileinfo" in parts:
        _fileinfo(parts["fileinfo"], parts.get("http"), out)
    fields = flat_fields(record, "suricata.eve.", dict(out))

    def document() -> tuple[dict[str, Any], dict[str, Any]]:  # built when something reads `ecs`
        ecs = nest(out)
        ecs["suricata"] = {"eve": record}
        return ecs, {}

    return Event(id=event_id_for(raw, timestamp_ms), timestamp_ms=timestamp_ms, raw=raw, fields=fields, origin=origin,
                 ecs_factory=document)


def _common(record: dict[str, Any], event_type: str, out: dict[str, Any]) -> None:
    category, types, protocol = _CATEGORISATION.get(event_type, (("network",), (), None))
    out["event.module"] = "suricata"
    out["event.dataset"] = f"suricata.{event_type}"
    out["event.kind"] = "alert" if event_type == "alert" else "metric" if event_type == "stats" else "event"
    if category:
        out["event.category"] = list(category)
    if types:
        out["event.type"] = list(types)
    for side, ip_key, port_key in (("source", "src_ip", "src_port"), ("destination", "dest_ip", "dest_port")):
        address = record.get(ip_key)
        if isinstance(address, str) and address:
            out[f"{side}.address"] = address
            add_ip(out, f"{side}.ip", address)
        port = _int(record.get(port_key))
        if port is not None:
            out[f"{side}.port"] = port
    proto = record.get("proto")
    if proto is not None and proto != "":
        out["network.transport"] = str(proto).lower()
    app_proto = record.get("app_proto")
    if isinstance(app_proto, str) and app_proto.lower() not in _NO_PROTOCOL:
        protocol = "ftp" if app_proto.lower() == "ftp-data" else app_proto.lower()
    if protocol:
        out["network.protocol"] = protocol
    _put(out, "network.community_id", record.get("community_id"))
    sensor = record.get("host")
    if isinstance(sensor, str) and sensor:
        out["observer.name"] = out["observer.hostname"] = sensor
    _put(out, "observer.ingress.interface.name", record.get("in_iface"))
    out["observer.product"] = "Suricata"
    out["observer.vendor"] = "OISF"
    out["observer.type"] = "ids"


def _alert(alert: dict[str, Any], out: dict[str, Any]) -> None:
    signature_id = alert.get("signature_id")
    if signature_id is not None:
        out["rule.id"] = str(signature_id)
    _put(out, "rule.name", alert.get("signature"))
    _put(out, "message", alert.get("signature"))
    _put(out, "rule.category", alert.get("category"))
    if alert.get("rev") is not None:
        out["rule.version"] = str(alert["rev"])
    severity = _int(alert.get("severity"))
    if severity is not None:
        out["event.severity"] = severity
    action = alert.get("action")
    if isinstance(action, str) and action:
        out["event.action"] = action
        out["event.type"] = [*out.get("event.type", ()), "denied" if action == "blocked" else action]


def _flow(flow: dict[str, Any], event_type: str, out: dict[str, Any]) -> None:
    totals = {"bytes": 0, "packets": 0}
    for side, direction in (("source", "toserver"), ("destination", "toclient")):
        for name, key in (("packets", f"pkts_{direction}"), ("bytes", f"bytes_{direction}")):
            value = _int(flow.get(key))
            if value is not None:
                out[f"{side}.{name}"] = value
                totals[name] += value
    for name, total in totals.items():
        if total:
            out[f"network.{name}"] = total
    _times(flow.get("start"), flow.get("end"), out)
    if event_type == "flow":
        state = {"new": "start", "closed": "end"}.get(str(flow.get("state")))
        if state:
            out["event.type"] = [*out.get("event.type", ()), state]


def _netflow(netflow: dict[str, Any], out: dict[str, Any]) -> None:
    for name, key in (("packets", "pkts"), ("bytes", "bytes")):
        value = _int(netflow.get(key))
        if value is not None:
            out[f"source.{name}"] = out[f"network.{name}"] = value
    _times(netflow.get("start"), netflow.get("end"), out)


def _times(start: Any, end: Any, out: dict[str, Any]) -> None:
    begin, finish = _datetime(start), _datetime(end)
    if begin is not None:
        out["event.start"] = _iso(begin)
    if finish is not None:
        out["event.end"] = _iso(finish)
    if begin is not None and finish is not None and finish >= begin:
        delta = finish - begin
        out["event.duration"] = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def _dns(dns: dict[str, Any], out: dict[str, Any]) -> None:
    """EVE v1 (one record per query and per answer), v2 (answers grouped in one record), v3 (`queries` list) and
    the `dns` object of alerts (`query` list, `answer` object)."""
    queries = dns.get("queries", dns.get("query"))
    answer = dns.get("answer") if isinstance(dns.get("answer"), dict) else None
    response: dict[str, Any] = answer or dns
    question = queries[0] if isinstance(queries, list) and queries and isinstance(queries[0], dict) else response
    kind = _DNS_TYPES.get(str(dns.get("type")).lower())
    if kind is None:
        kind = "answer" if answer is not None else "query" if question is not dns else None
    _put(out, "dns.type", kind)
    transaction = dns.get("id", question.get("id", response.get("id")))
    if transaction is not None:
        out["dns.id"] = str(transaction)
    name = question.get("rrname")
    if isinstance(name, str) and name:
        out["dns.question.name"] = name.rstrip(".") if name != "." else name
    _put(out, "dns.question.type", question.get("rrtype"))
    _put(out, "dns.response_code", response.get("rcode"))
    flags = [flag for key, flag in _DNS_FLAGS if response.get(key) is True]
    if flags:
        out["dns.header_flags"] = flags
    answers = _dns_answers(response) if kind != "query" else []
    if answers:
        out["dns.answers"] = answers
        resolved = [a["data"] for a in answers if a.get("type") in ("A", "AAAA") and is_ip(a.get("data"))]
        if resolved:
            out["dns.resolved_ip"] = resolved


def _dns_answers(response: dict[str, Any]) -> list[dict[str, Any]]:
    listed = response.get("answers")
    if isinstance(listed, list):
        return [_dns_answer(item.get("rrname"), item.get("rrtype"), item.get("ttl"), item.get("rdata"))
                for item in listed if isinstance(item, dict)]
    grouped = response.get("grouped")
    if isinstance(grouped, dict):
        return [_dns_answer(None, rrtype, None, data)
                for rrtype, values in grouped.items() if isinstance(values, list) for data in values]
    if "rdata" in response:  # v1: one answer per record
        return [_dns_answer(response.get("rrname"), response.get("rrtype"), response.get("ttl"),
                            response.get("rdata"))]
    return []


def _dns_answer(name: Any, rrtype: Any, ttl: Any, data: Any) -> dict[str, Any]:
    answer = {"name": name, "type": rrtype, "ttl": ttl, "data": data}
    return {key: value for key, value in answer.items() if value is not None}


def _http(http: dict[str, Any], event_type: str, out: dict[str, Any]) -> None:
    host = http.get("hostname")
    url = http.get("url")
    if isinstance(url, str) and url:
        out["url.original"] = url
        parts = url_parts(url)
        out.update(parts)
        if not host:
            host = parts.get("url.domain")
    if isinstance(host, str) and host:
        out["url.domain"] = out["destination.domain"] = host
    port = _int(http.get("http_port"))
    if port is not None:
        out["url.port"] = port
    put_url_full(out)
    _put(out, "http.request.method", http.get("http_method"))
    status = _int(http.get("status"))
    if status is not None:
        out["http.response.status_code"] = status
        if event_type == "http":
            out["event.outcome"] = "success" if status < 400 else "failure"
    _put(out, "user_agent.original", http.get("http_user_agent"))
    _put(out, "http.request.referrer", http.get("http_refer"))
    length = _int(http.get("length"))
    if length is not None:
        out["http.response.body.bytes"] = length
    _put(out, "http.response.mime_type", http.get("http_content_type"))
    protocol = http.get("protocol")
    if isinstance(protocol, str) and protocol.upper().startswith("HTTP/"):
        out["http.version"] = protocol[5:]


def _tls(tls: dict[str, Any], out: dict[str, Any]) -> None:
    sni = tls.get("sni")
    if isinstance(sni, str) and sni:
        sni = sni.removesuffix(".") or sni
        out["tls.client.server_name"] = out["destination.domain"] = sni
    out.update(tls_version(tls.get("version")))
    _put(out, "tls.server.subject", tls.get("subject"))
    _put(out, "tls.server.issuer", tls.get("issuerdn"))
    for key, name in (("notbefore", "tls.server.not_before"), ("notafter", "tls.server.not_after")):
        _put(out, name, iso_utc(tls.get(key)))
    fingerprint = tls.get("fingerprint")
    if isinstance(fingerprint, str) and fingerprint:
        digest = fingerprint.replace(":", "").upper()
        out["tls.server.hash.sha1"] = digest
        _append(out, "related.hash", digest)
    if isinstance(tls.get("session_resumed"), bool):
        out["tls.resumed"] = tls["session_resumed"]
    for key, name in (("ja3", "tls.client.ja3"), ("ja3s", "tls.server.ja3s")):
        value = tls.get(key)
        _put(out, name, value.get("hash") if isinstance(value, dict) else None)
    _put(out, "tls.server.x509.serial_number", tls.get("serial"))
    _put(out, "tls.server.certificate", tls.get("certificate"))
    _put(out, "tls.server.certificate_chain", tls.get("chain"))


def _fileinfo(fileinfo: dict[str, Any], http: dict[str, Any] | None, out: dict[str, Any]) -> None:
    name = fileinfo.get("filename")
    if isinstance(name, str) and name:
        out["file.path"] = name
        out["file.name"] = re.split(r"[/\\]", name)[-1] or name
    size = _int(fileinfo.get("size"))
    if size is not None:
        out["file.size"] = size
    for algorithm in _HASH_NAMES:
        digest = fileinfo.get(algorithm)
        if isinstance(digest, str) and digest:
            out[f"file.hash.{algorithm}"] = digest
            _append(out, "related.hash", digest)
    # EVE's `magic` is libmagic's description, not a MIME type; the transfer's Content-Type is.
    mime = fileinfo.get("mimetype") or (http.get("http_content_type") if http is not None else None)
    _put(out, "file.mime_type", mime)


# --- small helpers (also used by collectors.zeek) --------------------------------------------------------------


def add_ip(out: dict[str, Any], key: str, value: Any) -> None:
    """Set `key` (an ECS `*.ip`) and append to `related.ip` when `value` is an IP address (an ES `ip` field
    refuses anything else)."""
    if is_ip(value):
        out[key] = value
        _append(out, "related.ip", value)


def iso_utc(value: Any) -> str | None:
    """An RFC 3339 UTC time (microseconds) from an ISO 8601 string (no zone: UTC) or epoch seconds; else None."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            return None
        try:
            return _iso(datetime.fromtimestamp(value, tz=UTC))
        except (OverflowError, OSError, ValueError):
            return None
    moment = _datetime(value)
    return _iso(moment) if moment is not None else None


def tls_version(value: Any) -> dict[str, str]:
    """`tls.version` and `tls.version_protocol` from Suricata's `TLS 1.2`/`TLSv1`/`SSLv3` or Zeek's `TLSv12`."""
    match = re.fullmatch(r"(D?TLS|SSL)\s*v?\s*(\d)(?:\.?(\d))?", value.strip(), re.IGNORECASE) \
        if isinstance(value, str) else None
    if match is None:
        return {}
    return {"tls.version": f"{match[2]}.{match[3] or 0}", "tls.version_protocol": match[1].lower()}


def url_parts(url: str) -> dict[str, Any]:
    """`url.path`, `url.query`, `url.fragment` (and `url.domain`, `url.scheme` for an absolute URL)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:  # a malformed authority ("http://[::1/")
        return {}
    found = (("url.path", parts.path), ("url.query", parts.query), ("url.fragment", parts.fragment),
             ("url.scheme", parts.scheme if parts.netloc else ""), ("url.domain", host))
    return {key: value for key, value in found if value}


def put_url_full(out: dict[str, Any]) -> None:
    """`url.full` of an HTTP request from the fields already set: the target itself when it is an absolute URL,
    else ``http://<url.domain>[:<url.port>]<target>`` when the host is known (a sensor sees plain HTTP only)."""
    original, domain = out.get("url.original"), out.get("url.domain")
    if not isinstance(original, str) or not original:
        return
    if out.get("url.scheme"):
        out["url.full"] = original
        return
    if not isinstance(domain, str) or not domain or not original.startswith("/"):
        return
    authority = f"[{domain}]" if ":" in domain else domain
    port = out.get("url.port")
    if isinstance(port, int) and port != 80:
        authority = f"{authority}:{port}"
    out["url.full"] = f"http://{authority}{original}"


def json_kind(value: Any) -> str:
    """How a reject names a JSON value that is not an object: "an array", "a string", "a number", ..."""
    if value is None:
        return "null"
    kinds = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return kinds.get(type(value), type(value).__name__)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _datetime(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def is_ip(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    if value is not None and value != "":
        out[key] = value


def _append(out: dict[str, Any], key: str, value: Any) -> None:
    values = out.setdefault(key, [])
    if value not in values:
        values.append(value)
