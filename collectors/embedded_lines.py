"""Log lines that agents ship inside JSON records, read as the file they came from would be: Fluent Bit's tail
input puts the line in `log`, Filebeat and Elastic Agent (without an ingest pipeline) in `message`, NXLog's
im_file with to_json() in `Message`, beside metadata only (`@timestamp`, `agent`, `host`, `log.file.path`,
`event.dataset`, `input`, `fields`, `tags`, NXLog's `EventReceivedTime`/`SourceModuleName`/`SourceModuleType`, ...).
Such a record says nothing a rule can read until its line is parsed: an sshd failure shipped by Fluent Bit must
become the same `system.auth` event as the line read from /var/log/auth.log.

    event = embedded_event(record, raw, origin, received_ms)  # None: not such a record; Event | Rejected else

Which parser: the record's dataset when it names one (`event.dataset`, `data_stream.dataset`, Filebeat's
`fileset.name` with `event.module`): system/linux auth and syslog -> syslog, apache/nginx access -> web access,
iis access -> an IIS row in IIS's default columns (`iis.DEFAULT_FIELDS`: a shipped row has no `#Fields:`),
squid -> Squid; otherwise the first of syslog, web access and Squid that reads the line. A line that the named
dataset's parser cannot read gives a `Rejected` with the reason (the HTTP intake keeps such a record as a generic
event with the reason in `error.message`); a line no parser reads without a named dataset leaves the record to the
generic JSON path (`None`).

The event keeps the record as its raw text and the record's content hash as its id (what the intake has always
used: a batch sent again gives the same ids); its origin is the intake's. The record's `host.name` is the host of
an event whose line names none (web access and Squid lines), and its `agent.*` is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC
from typing import Any, Final
from zoneinfo import ZoneInfo

from collectors import iis, squid, syslog_file, web_access
from collectors.errors import CollectorError
from collectors.syslog_parse import SyslogParseError, parse_syslog
from correlator.model import Event, EventOrigin, Rejected, event_id_for, flatten, nest

__all__ = ["METADATA_KEYS", "embedded_event", "embedded_line"]

# Top-level keys an agent adds around a shipped line; a record with any other key carries parsed content.
METADATA_KEYS: Final = frozenset({
    "@timestamp", "date", "time", "timestamp", "log", "message", "agent", "host", "ecs", "input", "fields",
    "tags", "labels", "event", "fileset", "service", "data_stream", "stream", "container", "kubernetes", "cloud",
    "organization", "log.file.path", "log.offset", "source_type", "file", "path", "offset", "hostname",
    "Message", "EventReceivedTime", "SourceModuleName", "SourceModuleType", "Hostname",
})
_LINE_KEYS: Final = ("log", "message", "Message")
_SYSLOG_DATASETS: Final = frozenset({"system.auth", "system.syslog", "linux.auth", "linux.syslog", "syslog"})
_WEB_DATASETS: Final = {"apache.access": "apache", "nginx.access": "nginx", "web.access": None}
_SQUID_DATASETS: Final = frozenset({"squid.access", "squid.log", "proxy.access"})
_IIS_DATASETS: Final = frozenset({"iis.access"})


def embedded_line(record: Mapping[str, Any]) -> str | None:
    """The line a record carries when it carries nothing else but metadata: its `log` string (Fluent Bit), else
    its `message` (Filebeat, Elastic Agent) or `Message` (NXLog) string; None for any other record."""
    if any(key not in METADATA_KEYS for key in record):
        return None
    event = record.get("event")
    if isinstance(event, Mapping) and any(key not in ("dataset", "module", "timezone", "created", "ingested")
                                          for key in event):
        return None  # an event.* beyond the shipping labels: parsed upstream
    for key in _LINE_KEYS:
        line = record.get(key)
        if isinstance(line, str) and line.strip():
            return line.rstrip("\r\n")
    return None


def _dataset(record: Mapping[str, Any]) -> str | None:
    flat = flatten(dict(record))
    for key in ("event.dataset", "data_stream.dataset"):
        value = flat.get(key)
        if isinstance(value, str) and value:
            return value.lower()
    module, fileset = flat.get("event.module"), flat.get("fileset.name")
    if isinstance(module, str) and isinstance(fileset, str):
        return f"{module}.{fileset}".lower()
    return None


def embedded_event(record: Mapping[str, Any], raw: str, origin: EventOrigin, received_ms: int, *,
                   tz: str | None = None) -> Event | Rejected | None:
    """The event of the line a record ships (see the module doc); None when the record is not a shipped line or
    no parser reads an unlabelled one. `tz`: the IANA zone of a syslog line's time without one (None: UTC)."""
    line = embedded_line(record)
    if line is None:
        return None
    dataset = _dataset(record)
    if dataset in _SYSLOG_DATASETS:
        parsers: tuple[str, ...] = ("syslog",)
    elif dataset in _WEB_DATASETS:
        parsers = ("web-access",)
    elif dataset in _SQUID_DATASETS:
        parsers = ("squid",)
    elif dataset in _IIS_DATASETS:
        parsers = ("iis",)
    else:
        parsers = ("syslog", "web-access", "squid")
        dataset = None
    reasons: list[str] = []
    for parser in parsers:
        try:
            item = _parse(parser, line, raw, origin, (received_ms, tz), dataset)
        except CollectorError as exc:
            reasons.append(exc.reason)
            continue
        if isinstance(item, Rejected):
            return item
        return _with_record(item, record)
    if dataset is None:
        return None
    where = EventOrigin(path=origin.path, offset=origin.offset, format=parsers[0])
    key = next(key for key in _LINE_KEYS if isinstance(record.get(key), str) and record[key].strip())
    return Rejected(f"record {origin.offset}: its `{key}` is not a line of {dataset}: {reasons[0]}", where, raw,
                    stage="normalise")


def _parse(parser: str, line: str, raw: str, origin: EventOrigin, received: tuple[int, str | None],
           dataset: str | None) -> Event | Rejected:
    """The event of `line` read by `parser`; its id hashes the whole record `raw`."""
    where = EventOrigin(path=origin.path, offset=origin.offset, format=parser)
    if parser == "syslog":
        received_ms, tz = received
        try:
            message = parse_syslog(line, received_ms=received_ms, tz=UTC if tz is None else ZoneInfo(tz))
        except SyslogParseError as exc:
            raise CollectorError(exc.reason) from None
        return syslog_file.to_event(message, raw, where)
    if parser == "web-access":
        event = web_access.parse_line(line, where, server=_WEB_DATASETS.get(dataset or ""))
    elif parser == "iis":
        event = iis.parse_row(line, iis.DEFAULT_FIELDS, where)
    else:
        event = squid.parse_line(line, where)
    return Event(event_id_for(raw, event.timestamp_ms), event.timestamp_ms, raw, ecs=event.ecs, fields=event.fields,
                 origin=where)


def _with_record(event: Event, record: Mapping[str, Any]) -> Event:
    """The record's host (when the line names none) and agent on the event."""
    extra: dict[str, Any] = {}
    host = record.get("host")
    host_name = host.get("name") if isinstance(host, Mapping) else record.get("hostname", record.get("Hostname"))
    if isinstance(host_name, str) and host_name and event.host_name is None:
        extra["host.name"] = host_name
    agent = record.get("agent")
    if isinstance(agent, Mapping):
        extra.update({f"agent.{k}": v for k, v in flatten(dict(agent)).items()})
    if not extra:
        return event
    if event.ecs_deferred:
        fields = {**event.native, **{k: v for k, v in extra.items() if k not in event.native}}
        factory_event = event

        def build() -> tuple[dict[str, Any], dict[str, Any]]:
            doc = _merged(factory_event.ecs, extra)
            return doc, {**factory_event.fields, **extra}

        return Event(event.id, event.timestamp_ms, event.raw, fields=fields, origin=event.origin,
                     ecs_factory=build, host_name=event.host_name or extra.get("host.name"))
    fields = {**event.fields, **{k: v for k, v in extra.items() if k not in event.fields}}
    return Event(event.id, event.timestamp_ms, event.raw, ecs=_merged(event.ecs, extra), fields=fields,
                 origin=event.origin)


def _merged(doc: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    flat = flatten(dict(doc))
    for key, value in extra.items():
        flat.setdefault(key, value)
    return nest(flat)
