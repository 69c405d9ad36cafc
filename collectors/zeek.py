"""Zeek logs (ASCII TSV with its `#` header, or JSON lines) to `Event`, mapped to ECS like Filebeat's zeek module.

    for item in read_file(Path("logs/conn.log")):
        ...  # Event -> rules, Rejected -> dead-letter store

TSV values are typed by the `#types` header, so a TSV row and the same record written by Zeek as JSON give the
same event: `time`/`interval`/`double` are floats, `count`/`int`/`port` ints, `bool` True/False, `set[...]` and
`vector[...]` lists; the unset value (`-`) leaves the field out, the empty value (`(empty)`) is "" or [];
`\\xHH` escapes are decoded. A file may hold several header blocks (rotated logs concatenated).

An event carries the record's own field names (`query`, `id.orig_h`: what SigmaHQ's `product: zeek` rules read),
the ECS fields, and the record again under `zeek.<path>.*`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from collectors.errors import CollectorError, NormalisationError
from collectors.generic import flat_fields, to_epoch_ms
from collectors.suricata import add_ip, is_ip, iso_utc, json_kind, put_url_full, tls_version, url_parts
from correlator.model import Event, EventOrigin, Rejected, event_id_for, ms_to_iso, nest

__all__ = ["FORMAT", "ZeekHeader", "ZeekLineReader", "ZeekLogError", "normalise_record", "parse_row",
           "path_from_name", "read_file", "sniff"]

FORMAT = "zeek"

_UTF8_BOM = b"\xef\xbb\xbf"
_ESCAPE = re.compile(rb"\\x([0-9a-fA-F]{2})")
_JSON_TS = re.compile(rb'"ts"\s*:')
_JSON_CONNECTION = re.compile(rb'"(?:uid|id\.orig_h)"\s*:')
_FLOAT_TYPES = frozenset({"time", "interval", "double"})
_INT_TYPES = frozenset({"count", "int", "port"})
_BOOLS = {"T": True, "F": False}
# The standard logs: a file named after one of these (conn.log, conn.2024-01-01-00-00-00.log) is that log.
_KNOWN_PATHS = frozenset({
    "conn", "dns", "http", "ssl", "files", "notice", "x509", "weird", "kerberos", "smb_files", "smb_mapping",
    "dce_rpc", "rdp", "ssh", "ftp", "smtp", "dhcp", "ntp", "snmp", "sip", "tunnel", "software", "pe", "ocsp",
    "ntlm", "radius", "socks", "irc", "mysql", "syslog", "modbus", "dnp3", "quic", "analyzer", "packet_filter",
    "capture_loss", "stats", "reporter", "loaded_scripts", "known_hosts", "known_services", "known_certs",
    "intel", "signatures", "traceroute", "dpd", "conn_long", "netcontrol", "notice_alarm",
})
# conn_state -> event.type (Filebeat's table).
_CONN_TYPES = {"S0": ["connection", "start"], "S1": ["connection", "start"], "SF": ["connection", "start", "end"],
               "REJ": ["connection", "start", "denied"]}
_DIRECTIONS = {(True, True): "internal", (True, False): "outbound", (False, True): "inbound",
               (False, False): "external"}
_DNS_FLAGS = ("AA", "TC", "RD", "RA")  # dns.log booleans that are also ECS dns.header_flags


class ZeekLogError(CollectorError):
    """A header line or data row of a Zeek TSV log that cannot be read (wrong field count, bad value, ...)."""


def _unescape(value: str) -> str:
    """Zeek's `\\xHH` escapes (separators, non-printable and non-ASCII bytes) decoded; invalid UTF-8 stays
    visible as `\\xHH`."""
    if "\\x" not in value:
        return value
    data = _ESCAPE.sub(lambda match: bytes((int(match[1], 16),)), value.encode("utf-8", "surrogateescape"))
    return data.decode("utf-8", "backslashreplace")


def _scalar(zeek_type: str) -> Callable[[str], Any]:
    if zeek_type in _FLOAT_TYPES:
        return float
    if zeek_type in _INT_TYPES:
        return int
    if zeek_type == "bool":
        return _BOOLS.__getitem__
    return _unescape


@dataclass(frozen=True, slots=True)
class ZeekHeader:
    """The state a TSV log's `#` lines set: separators, the log's path and its fields with their types.
    `converters[i]` turns the text of field i into its value (compiled once per header)."""

    separator: str = "\t"
    set_separator: str = ","
    empty_field: str = "(empty)"
    unset_field: str = "-"
    path: str | None = None
    fields: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    converters: tuple[Callable[[str], Any], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        types = self.types if len(self.types) == len(self.fields) else ("string",) * len(self.fields)
        object.__setattr__(self, "converters", tuple(self._converter(t) for t in types))

    def _converter(self, zeek_type: str) -> Callable[[str], Any]:
        inner = re.fullmatch(r"(?:set|vector|table)\[(.+)\]", zeek_type)
        if inner is None:
            convert = _scalar(zeek_type)
            if convert is _unescape:
                empty = self.empty_field
                return lambda text: "" if text == empty else _unescape(text)
            return convert
        element = _scalar(inner[1])
        empty, unset, separator = self.empty_field, self.unset_field, self.set_separator

        def container(text: str) -> list[Any]:
            if text == empty:
                return []
            return [None if item == unset else element(item) for item in text.split(separator)]

        return container

    def with_line(self, line: str) -> ZeekHeader:
        """The header after one `#` line. `#separator` starts a new block; `#open`, `#close` and unknown
        directives change nothing. Raises `ZeekLogError` for `#types` that do not match `#fields`."""
        if line.startswith("#separator"):
            return ZeekHeader(separator=_unescape(line[len("#separator"):].strip(" ")) or "\t")
        name, found, value = line[1:].partition(self.separator)
        if not found:
            name, _, value = line[1:].partition(" ")
        if name == "set_separator":
            return dataclasses.replace(self, set_separator=_unescape(value))
        if name == "empty_field":
            return dataclasses.replace(self, empty_field=_unescape(value))
        if name == "unset_field":
            return dataclasses.replace(self, unset_field=_unescape(value))
        if name == "path":
            return dataclasses.replace(self, path=value)
        if name == "fields":
            return dataclasses.replace(self, fields=tuple(value.split(self.separator)), types=())
        if name == "types":
            types = tuple(value.split(self.separator))
            if len(types) != len(self.fields):
                raise ZeekLogError(f"#types has {len(types)} entries but #fields has {len(self.fields)}; "
                                   "the values of this block are read as strings")
            return dataclasses.replace(self, types=types)
        return self


def parse_row(line: str, header: ZeekHeader) -> dict[str, Any]:
    """One TSV data row to a record (field name -> typed value; unset fields left out).

    Raises `ZeekLogError` for a row with the wrong number of fields or a value its type rejects."""
    values = line.split(header.separator)
    if len(values) != len(header.fields):
        raise ZeekLogError(f"expected {len(header.fields)} fields, got {len(values)}")
    unset = header.unset_field
    record: dict[str, Any] = {}
    for index, text in enumerate(values):
        if text == unset:
            continue
        try:
            record[header.fields[index]] = header.converters[index](text)
        except (ValueError, KeyError):
            zeek_type = header.types[index] if header.types else "string"
            raise ZeekLogError(f"field {header.fields[index]}: {text!r} is not a valid {zeek_type}") from None
    return record


def sniff(head: bytes) -> bool:
    """Whether a file's first bytes are a Zeek log: TSV (`#separator` first) or JSON lines whose first object
    has `ts` and `uid` or `id.orig_h`."""
    text = head.removeprefix(_UTF8_BOM).lstrip()
    if text.startswith(b"#separator"):
        return True
    if not text.startswith(b"{"):
        return False
    first = text.split(b"\n", 1)[0].strip()
    try:
        record = orjson.loads(first)
    except orjson.JSONDecodeError:  # a first line longer than the head
        return first == text.strip() and bool(_JSON_TS.search(first) and _JSON_CONNECTION.search(first))
    return isinstance(record, dict) and "ts" in record and (
        "uid" in record or "id.orig_h" in record or isinstance(record.get("id"), dict))


def read_file(path: Path) -> Iterator[Event | Rejected]:
    """Every record of a Zeek log (TSV or JSON lines) as an `Event`, or a `Rejected` (reason `line N: ...`) for
    a line that cannot be read or normalised; reading goes on with the next one. The log's path is its
    `#path` header, a JSON record's `_path`, or the file name (`conn.log` -> conn)."""
    where = str(path)
    try:
        with Path(path).open("rb") as handle:
            yield from _read(handle, where, path_from_name(Path(path)))
    except OSError as exc:
        yield Rejected(f"cannot read file: {exc.strerror or exc}", EventOrigin(path=where, format=FORMAT))


def path_from_name(path: Path) -> str | None:
    stem = path.name.split(".", 1)[0]
    return stem if stem in _KNOWN_PATHS else None


def _read(handle: BinaryIO, where: str, default_path: str | None) -> Iterator[Event | Rejected]:
    reader = ZeekLineReader(where, default_path)
    for number, data in enumerate(handle, 1):
        item = reader.line(number, data.rstrip(b"\r\n"))
        if item is not None:
            yield item


class ZeekLineReader:
    """The lines of one Zeek log, in order: `#` header lines update the header, data rows (TSV under the header,
    or JSON lines) become events. Used by `read_file` and by the tailer (`collectors.tail_format`), which may
    start inside a file (after a restart): `header_from` then reads the header lines at the file's start."""

    def __init__(self, where: str, default_path: str | None) -> None:
        self.where = where
        self.default_path = default_path
        self.header = ZeekHeader()
        self.json_lines: bool | None = None

    def header_from(self, head: bytes) -> None:
        """Take the header of a file from its first bytes (the `#` lines before the first data row)."""
        for data in head.removeprefix(_UTF8_BOM).split(b"\n"):
            text = data.rstrip(b"\r").decode("utf-8", "replace")
            if not text.startswith("#"):
                break
            with contextlib.suppress(ZeekLogError):
                self.header = self.header.with_line(text)

    def line(self, number: int, data: bytes) -> Event | Rejected | None:
        """The item of line `number` (without its line ending); None for a header or blank line."""
        if number == 1:
            data = data.removeprefix(_UTF8_BOM)
        if not data.strip():
            return None
        origin = EventOrigin(path=self.where, offset=number, format=FORMAT)
        try:
            line = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            return Rejected(f"line {number}: not UTF-8: {exc.reason} at column {exc.start + 1}", origin,
                            data.decode("utf-8", "replace"))
        header = self.header
        if line.startswith("#"):
            try:
                self.header = header.with_line(line)
            except ZeekLogError as exc:
                self.header = dataclasses.replace(header, types=())
                return Rejected(f"line {number}: {exc.reason}", origin, line)
            return None
        if not header.fields:
            if self.json_lines is None:  # the first record decides: JSON lines, or TSV rows missing their header
                self.json_lines = line.lstrip().startswith("{")
            if self.json_lines:
                return _json_event(line, origin, self.default_path)
            return Rejected(f"line {number}: data row before a #fields header", origin, line)
        try:
            return normalise_record(parse_row(line, header), line, origin, log_path=header.path or self.default_path)
        except CollectorError as exc:
            stage = "read" if isinstance(exc, ZeekLogError) else "normalise"
            return Rejected(f"line {number}: {exc.reason}", origin, line, stage=stage)


def _json_event(line: str, origin: EventOrigin, default_path: str | None) -> Event | Rejected:
    where = f"line {origin.offset}: "
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return Rejected(f"{where}invalid JSON at column {exc.colno}: {exc.msg}", origin, line)
    if not isinstance(record, dict):
        return Rejected(f"{where}expected a JSON object, got {json_kind(record)}", origin, line)
    try:
        return normalise_record(record, line, origin, log_path=default_path)
    except CollectorError as exc:
        return Rejected(f"{where}{exc.reason}", origin, line, stage="normalise")


# --- one record ------------------------------------------------------------------------------------------------


def normalise_record(
    record: dict[str, Any], raw: str, origin: EventOrigin, *, log_path: str | None = None
) -> Event:
    """One Zeek record (from `parse_row`, or a JSON line: flat dotted keys or nested `id`) to an `Event`.

    The log (`event.dataset: zeek.<path>`) is the record's `_path`, else `log_path` (the `#path` header or file
    name), else guessed from its fields. Raises `NormalisationError` for a record without a valid `ts` or whose
    log cannot be told."""
    native = flat_fields(record)
    zeek_path = native.get("_path") or log_path or _guess_path(native)
    if not isinstance(zeek_path, str) or not zeek_path:
        raise NormalisationError.at(origin, "cannot tell which Zeek log this record is from (no _path, #path or "
                                            "known file name)")
    timestamp_ms = _time_ms(native.get("ts"))
    if timestamp_ms is None:
        raise NormalisationError.at(origin, f"Zeek record has no valid ts: {native.get('ts')!r}")
    out: dict[str, Any] = {"@timestamp": ms_to_iso(timestamp_ms), "event.module": "zeek",
                           "event.dataset": f"zeek.{zeek_path}", "event.kind": "event"}
    _common(native, out)
    mapper = _MAPPERS.get(zeek_path)
    if mapper is not None:
        mapper(native, out)
    flat_fields(native, f"zeek.{zeek_path}.", out)
    fields = dict(native)
    fields.update(out)
    return Event(id=event_id_for(raw, timestamp_ms), timestamp_ms=timestamp_ms, raw=raw, fields=fields, origin=origin,
                 ecs_factory=lambda: (nest(out), {}))


def _guess_path(native: dict[str, Any]) -> str | None:
    for path, keys in (("conn", ("conn_state",)), ("dns", ("query", "qtype")), ("dns", ("rcode", "trans_id")),
                       ("http", ("method", "uri")), ("http", ("trans_depth",)), ("ssl", ("server_name", "cipher")),
                       ("ssl", ("cipher", "established")), ("files", ("fuid", "seen_bytes")),
                       ("notice", ("note",)), ("x509", ("certificate.serial",))):
        if all(key in native for key in keys):
            return path
    return None


def _time_ms(value: Any) -> int | None:
    if isinstance(value, float | int) and not isinstance(value, bool):
        # epoch seconds with microseconds: + 0.5 µs so that 1692161643.549 is not read as ...548.999
        return math.floor(value * 1000 + 0.0005) if math.isfinite(value) else None
    return to_epoch_ms(value)


def _common(native: dict[str, Any], out: dict[str, Any]) -> None:
    for side, host_key, port_key in (("source", "id.orig_h", "id.orig_p"), ("destination", "id.resp_h", "id.resp_p")):
        address = native.get(host_key)
        if isinstance(address, str) and address:
            out[f"{side}.address"] = address
            add_ip(out, f"{side}.ip", address)
        port = native.get(port_key)
        if isinstance(port, int) and not isinstance(port, bool):
            out[f"{side}.port"] = port
    if "id.orig_h" in native:
        out["event.category"] = ["network"]
    proto = native.get("proto")
    if isinstance(proto, str) and proto:
        out["network.transport"] = proto.lower()
    uid = native.get("uid")
    if isinstance(uid, str) and uid:
        out["zeek.session_id"] = uid


def _conn(native: dict[str, Any], out: dict[str, Any]) -> None:
    service = native.get("service")
    if isinstance(service, str) and service:
        names = [name.lower() for name in service.split(",") if name]
        out["network.protocol"] = names[0] if len(names) == 1 else names
    _duration(native.get("duration"), out)
    totals = {"bytes": 0, "packets": 0}
    for side, prefix in (("source", "orig"), ("destination", "resp")):
        for name, key in (("bytes", f"{prefix}_ip_bytes"), ("packets", f"{prefix}_pkts")):
            value = native.get(key)
            if isinstance(value, int):
                out[f"{side}.{name}"] = value
                totals[name] += value
    for name, total in totals.items():
        if f"source.{name}" in out or f"destination.{name}" in out:
            out[f"network.{name}"] = total
    state = native.get("conn_state")
    if isinstance(state, str) and state:
        out["zeek.conn.state"] = state
        out["event.type"] = _CONN_TYPES.get(state, ["connection", "info"])
    local_orig, local_resp = native.get("local_orig"), native.get("local_resp")
    if isinstance(local_orig, bool) or isinstance(local_resp, bool):
        out["network.direction"] = _DIRECTIONS[(local_orig is True, local_resp is True)]


def _dns(native: dict[str, Any], out: dict[str, Any]) -> None:
    out["network.protocol"] = "dns"
    out["event.type"] = ["protocol"]
    query = native.get("query")
    if isinstance(query, str) and query:
        out["dns.question.name"] = query
    _put(out, "dns.question.type", native.get("qtype_name"))
    _put(out, "dns.question.class", native.get("qclass_name"))
    _put(out, "dns.response_code", native.get("rcode_name"))
    if native.get("trans_id") is not None:
        out["dns.id"] = str(native["trans_id"])
    answers = native.get("answers")
    answers = answers if isinstance(answers, list) else []
    out["dns.type"] = "answer" if answers or "rcode" in native or "rcode_name" in native else "query"
    flags = [flag for flag in _DNS_FLAGS if native.get(flag) is True]
    if flags:
        out["dns.header_flags"] = flags
    if answers:
        ttls = native.get("TTLs")
        ttls = ttls if isinstance(ttls, list) and len(ttls) == len(answers) else [None] * len(answers)
        out["dns.answers"] = [{"data": data} if ttl is None else {"data": data, "ttl": _seconds(ttl)}
                              for data, ttl in zip(answers, ttls, strict=True)]
        resolved = [data for data in answers if is_ip(data)]
        if resolved:
            out["dns.resolved_ip"] = resolved


def _http(native: dict[str, Any], out: dict[str, Any]) -> None:
    out["network.protocol"] = "http"
    out["event.category"] = ["network", "web"]
    out["event.type"] = ["access", "protocol"]
    _put(out, "http.request.method", native.get("method"))
    uri = native.get("uri")
    if isinstance(uri, str) and uri:
        out["url.original"] = uri
        out.update(url_parts(uri))
    host = native.get("host")
    if isinstance(host, str) and host:
        out["url.domain"] = out["destination.domain"] = host
    put_url_full(out)
    status = native.get("status_code")
    if isinstance(status, int):
        out["http.response.status_code"] = status
        out["event.outcome"] = "success" if status < 400 else "failure"
    _put(out, "http.version", native.get("version"))
    _put(out, "user_agent.original", native.get("user_agent"))
    _put(out, "http.request.referrer", native.get("referrer"))
    for key, name in (("request_body_len", "http.request.body.bytes"),
                      ("response_body_len", "http.response.body.bytes")):
        if isinstance(native.get(key), int):
            out[name] = native[key]
    _put(out, "url.username", native.get("username"))


def _ssl(native: dict[str, Any], out: dict[str, Any]) -> None:
    out["network.protocol"] = "tls"
    out["event.type"] = ["protocol"]
    server_name = native.get("server_name")
    if isinstance(server_name, str) and server_name:
        out["tls.client.server_name"] = out["destination.domain"] = server_name
    out.update(tls_version(native.get("version")))
    for key, name in (("cipher", "tls.cipher"), ("curve", "tls.curve"), ("next_protocol", "tls.next_protocol"),
                      ("ja3", "tls.client.ja3"), ("ja3s", "tls.server.ja3s"), ("subject", "tls.server.subject"),
                      ("issuer", "tls.server.issuer"), ("client_subject", "tls.client.subject"),
                      ("client_issuer", "tls.client.issuer")):
        _put(out, name, native.get(key))
    for key, name in (("resumed", "tls.resumed"), ("established", "tls.established")):
        if isinstance(native.get(key), bool):
            out[name] = native[key]
    chain = native.get("cert_chain_fps")
    if isinstance(chain, list) and chain and isinstance(chain[0], str):
        kind = {32: "md5", 40: "sha1", 64: "sha256"}.get(len(chain[0]))
        if kind:
            out[f"tls.server.hash.{kind}"] = chain[0].upper()


def _files(native: dict[str, Any], out: dict[str, Any]) -> None:
    out["event.category"] = ["file"]
    out["event.type"] = ["info"]
    _put(out, "file.name", native.get("filename"))
    _put(out, "file.mime_type", native.get("mime_type"))
    size = native.get("total_bytes", native.get("seen_bytes"))
    if isinstance(size, int):
        out["file.size"] = size
    for algorithm in ("md5", "sha1", "sha256"):
        digest = native.get(algorithm)
        if isinstance(digest, str) and digest:
            out[f"file.hash.{algorithm}"] = digest
            out.setdefault("related.hash", []).append(digest)
    for key in ("tx_hosts", "rx_hosts"):  # before Zeek 5 files.log has no id.*
        hosts = native.get(key)
        for host in hosts if isinstance(hosts, list) else ():
            if is_ip(host) and host not in out.get("related.ip", ()):
                out.setdefault("related.ip", []).append(host)


def _notice(native: dict[str, Any], out: dict[str, Any]) -> None:
    out["event.kind"] = "alert"
    out["event.category"] = ["intrusion_detection"]
    out["event.type"] = ["info"]
    _put(out, "rule.name", native.get("note"))
    _put(out, "message", native.get("msg"))
    _put(out, "rule.description", native.get("sub"))
    for key, side in (("src", "source"), ("dst", "destination")):
        if f"{side}.ip" not in out:
            add_ip(out, f"{side}.ip", native.get(key))
    if isinstance(native.get("p"), int) and "destination.port" not in out:
        out["destination.port"] = native["p"]


def _x509(native: dict[str, Any], out: dict[str, Any]) -> None:
    out["event.type"] = ["info"]
    for key, name in (("certificate.serial", "x509.serial_number"),
                      ("certificate.subject", "x509.subject.distinguished_name"),
                      ("certificate.issuer", "x509.issuer.distinguished_name"),
                      ("certificate.key_alg", "x509.public_key_algorithm"),
                      ("certificate.sig_alg", "x509.signature_algorithm"),
                      ("certificate.curve", "x509.public_key_curve"),
                      ("certificate.exponent", "x509.public_key_exponent"),
                      ("certificate.key_length", "x509.public_key_size"),
                      ("san.dns", "x509.alternative_names")):
        _put(out, name, native.get(key))
    if native.get("certificate.version") is not None:
        out["x509.version_number"] = str(native["certificate.version"])
    for key, name in (("certificate.not_valid_before", "x509.not_before"),
                      ("certificate.not_valid_after", "x509.not_after")):
        _put(out, name, iso_utc(native.get(key)))


_MAPPERS: dict[str, Callable[[dict[str, Any], dict[str, Any]], None]] = {
    "conn": _conn, "dns": _dns, "http": _http, "ssl": _ssl, "files": _files, "notice": _notice, "x509": _x509,
}


def _duration(value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, float | int) and not isinstance(value, bool) and math.isfinite(value) and value >= 0:
        out["event.duration"] = round(value * 1_000_000_000)


def _seconds(value: Any) -> Any:
    """A TTL in whole seconds when it is one (Zeek writes intervals as floats: 300.000000)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    if value is not None and value != "":
        out[key] = value
