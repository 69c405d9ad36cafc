"""Windows event records to `Event`, for the three shapes Windows logs arrive in:

- EVTX and evtx_dump JSON: `{"Event": {"System": {...}, "EventData" | "UserData": {...}}}`
- Winlogbeat / Elastic Agent: ECS documents with a `winlog` object (nested or dotted keys)
- OTRF (Mordor) and other flat exports: EventData fields at the top level beside Channel, EventID,
  Hostname, SourceName, TimeCreated (also Azure Sentinel `SecurityEvent` rows, EventData as XML text)

`fields` gets the System values under Sigma's names (EventID, Channel, Provider_Name, Computer, ...),
every EventData/UserData value under its bare name and every ECS leaf under its dotted name. The ECS
mapping of common data fields is the table `ECS_FIELD_MAP` in `collectors.windows_ecs`: extend it there,
not in code.
"""

from __future__ import annotations

import dataclasses
import re
from html import unescape
from typing import Any

from collectors.errors import NormalisationError
from collectors.generic import first_timestamp_ms, flat_fields, to_epoch_ms
from collectors.windows_ecs import (
    ECS_EVENT_CONSTANTS,
    ECS_FIELD_MAP,
    SECURITY,  # noqa: F401 - re-exported: defined here before the ECS side moved out
    SYSMON,
    Scope,  # noqa: F401 - re-exported, as SECURITY
    _apply_ecs_map,
    _int,
    dataset_for,
)
from correlator.model import Event, EventOrigin, event_id_for, flatten, nest, timed_id

__all__ = [
    "ECS_EVENT_CONSTANTS",
    "ECS_FIELD_MAP",
    "dataset_for",
    "evtx_event",
    "normalise_windows",
    "windows_shape",
]

# Top-level keys of flat exports (OTRF/Mordor, NXLog, Azure Sentinel) that describe the record, not
# its EventData.
_FLAT_SYSTEM_KEYS = frozenset({
    "@timestamp", "@version", "Activity", "Channel", "Computer", "EventData", "EventID", "EventOriginId",
    "EventReceivedTime", "EventRecordID", "EventSourceName", "EventTime", "Hostname", "HostName",
    "Keywords", "Level", "MG", "ManagementGroupName", "Message", "Opcode", "Provider", "ProviderGuid",
    "ProviderName", "Provider_Name", "RecordNumber", "SourceComputerId", "SourceModuleName",
    "SourceModuleType", "SourceName", "SourceSystem", "Task", "TenantId", "TimeCollected", "TimeCreated",
    "TimeGenerated", "Type", "Version", "_ResourceId",
})
_FLAT_PROVIDER_KEYS = ("SourceName", "Provider_Name", "ProviderName", "EventSourceName", "Provider")
_FLAT_TIME_KEYS = ("TimeCreated", "@timestamp", "TimeGenerated", "EventTime")
_FLAT_SYSTEM_AS_IS = ("Channel", "Level", "Task", "Opcode", "Keywords", "Version")

_XML_DATA = re.compile(r'<Data Name="([^"]*)"\s*(?:/>|>(.*?)</Data>)', re.DOTALL)
_EMPTY: dict[str, Any] = {}


# --- XML-ish structure (EventData, UserData) --------------------------------------------------------


def _attributes(node: Any) -> dict[str, Any]:
    """XML attributes of an element as evtx (`#attributes`) or xmltodict (`@Name`) render them."""
    if type(node) is not dict:
        return _EMPTY
    attributes = node.get("#attributes")
    if type(attributes) is dict:
        return attributes
    return {key[1:]: value for key, value in node.items() if key[:1] == "@"}


def _add_data_items(items: Any, out: dict[str, Any]) -> None:
    """EventData's `Data` element(s): named ones by name, unnamed ones collected under `Data`."""
    unnamed = []
    for item in items if type(items) is list else [items]:
        if type(item) is dict:
            name = _attributes(item).get("Name")
            if isinstance(name, str) and name:
                out[name] = item.get("#text")
            else:
                unnamed.append(item.get("#text"))
        elif item is not None:
            unnamed.append(item)
    if unnamed:
        out["Data"] = unnamed if type(items) is list or len(unnamed) > 1 else unnamed[0]


def _event_data(node: Any) -> dict[str, Any]:
    """EventData as a flat dict of bare names (values keep their JSON types)."""
    if node is None:
        return {}
    if type(node) is not dict:
        return {"Data": node}
    plain = "Data" not in node and "#attributes" not in node and "#text" not in node
    if plain and dict not in map(type, node.values()):
        return node  # the usual evtx rendering: named values only
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "Data":
            _add_data_items(value, out)
        elif key == "#text":
            out.setdefault("Data", value)
        elif key == "#attributes" or key[:1] == "@":
            continue
        elif type(value) is dict:
            if "#text" in value:
                out[key] = value["#text"]
            else:
                _leaves(value, out)
        else:
            out[key] = value
    return out


def _leaves(node: dict[str, Any], out: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    """Every leaf of an XML-ish tree by its bare element name (UserData, ProcessingErrorData)."""
    for key, value in node.items():
        if key == "#attributes" or key[:1] == "@":
            continue
        if key == "#text":
            if name is not None:
                out[name] = value
        elif type(value) is dict:
            _leaves(value, out, key)
        else:
            out[key] = value
    return out


def _dig(node: Any, *keys: str) -> Any:
    for key in keys:
        if type(node) is not dict:
            return None
        node = node.get(key)
    return node


# --- the three shapes -------------------------------------------------------------------------------


def windows_shape(record: dict[str, Any]) -> str | None:
    """A record's Windows shape: "evtx", "winlogbeat", "flat", or None if it is not a Windows record."""
    event = record.get("Event")
    if type(event) is dict and type(event.get("System")) is dict:
        return "evtx"
    if type(record.get("winlog")) is dict or "winlog.event_id" in record or "winlog.channel" in record:
        return "winlogbeat"
    if "EventID" in record and ("Channel" in record or any(key in record for key in _FLAT_PROVIDER_KEYS)):
        return "flat"
    return None


def normalise_windows(record: dict[str, Any], raw: str, origin: EventOrigin) -> Event:
    """A Windows record in any supported shape to an `Event`.

    Raises `NormalisationError` if the record has none of the shapes or no usable EventID.
    `origin.record_id` is filled from the record's EventRecordID when the caller had none."""
    shape = windows_shape(record)
    if shape == "evtx":
        return _from_evtx(record["Event"], raw, origin)
    if shape == "winlogbeat":
        return _from_winlogbeat(record, raw, origin)
    if shape == "flat":
        return _from_flat(record, raw, origin)
    raise NormalisationError.at(
        origin, "not a Windows event record: no Event.System, no winlog object, no EventID with Channel"
    )


def _required_event_id(value: Any, where: str, origin: EventOrigin) -> int:
    event_id = _int(value)
    if event_id is None:
        detail = "missing" if value is None else f"not a number: {value!r:.60}"
        raise NormalisationError.at(origin, f"{where} is {detail}")
    return event_id


def _from_evtx(event: dict[str, Any], raw: str, origin: EventOrigin) -> Event:
    system: dict[str, Any] = event["System"]
    sigma: dict[str, Any] = {
        "EventID": _required_event_id(system.get("EventID"), "Event.System.EventID", origin)
    }
    provider = _attributes(system.get("Provider"))
    if provider.get("Name") is not None:
        sigma["Provider_Name"] = provider["Name"]
    if provider.get("Guid") is not None:
        sigma["Provider_Guid"] = provider["Guid"]
    for name in ("Channel", "Computer", "EventRecordID", "Level", "Task", "Opcode", "Keywords", "Version"):
        value = system.get(name)
        if value is not None:
            sigma[name] = value.get("#text") if type(value) is dict else value
    if "EventRecordID" in sigma and type(sigma["EventRecordID"]) is not int:
        sigma["EventRecordID"] = _int(sigma["EventRecordID"])
    execution = _attributes(system.get("Execution"))
    for name in ("ProcessID", "ThreadID"):
        if execution.get(name) is not None:
            sigma[name] = execution[name]
    user_id = _attributes(system.get("Security")).get("UserID")
    if user_id is not None:
        sigma["UserID"] = user_id
    time_created = _attributes(system.get("TimeCreated")).get("SystemTime")
    if time_created is not None:
        sigma["TimeCreated"] = time_created

    data = _event_data(event.get("EventData"))
    user_data = event.get("UserData")
    user_leaves = _leaves(user_data, {}) if type(user_data) is dict else {}
    extra = dict(user_leaves)
    processing_error = event.get("ProcessingErrorData")
    if type(processing_error) is dict:
        _leaves(processing_error, extra)
    return _assemble(
        None, sigma, data, extra,
        user_data=user_leaves,
        ecs_source={**extra, **data} if extra else data,
        timestamp_ms=to_epoch_ms(time_created) or 0,
        raw=raw,
        origin=origin,
    )


def _from_winlogbeat(record: dict[str, Any], raw: str, origin: EventOrigin) -> Event:
    ecs = nest(flatten(record))  # a fresh nested copy: dotted and nested keys merged, the input untouched
    winlog = ecs.get("winlog")
    if type(winlog) is not dict:
        winlog = ecs["winlog"] = {}
    event_code = _dig(ecs, "event", "code")
    event_id = _required_event_id(winlog.get("event_id", event_code), "winlog.event_id", origin)
    sigma: dict[str, Any] = {"EventID": event_id}
    for name, value in (
        ("Provider_Name", winlog.get("provider_name", _dig(ecs, "event", "provider"))),
        ("Provider_Guid", winlog.get("provider_guid")),
        ("Channel", winlog.get("channel")),
        ("Computer", winlog.get("computer_name", _dig(ecs, "host", "name"))),
        ("EventRecordID", _int(winlog.get("record_id"))),
        ("Task", winlog.get("task")),
        ("Opcode", winlog.get("opcode")),
        ("Keywords", winlog.get("keywords")),
        ("Version", winlog.get("version")),
        ("ProcessID", _dig(winlog, "process", "pid")),
        ("ThreadID", _dig(winlog, "process", "thread", "id")),
        ("UserID", _dig(winlog, "user", "identifier")),
    ):
        if value is not None:
            sigma[name] = value  # noqa: PERF403 - a comprehension would read worse here
    data = winlog.get("event_data")
    data = data if type(data) is dict else {}
    user_data = winlog.get("user_data")
    extra = _leaves(user_data, {}) if type(user_data) is dict else {}
    timestamp_ms = to_epoch_ms(ecs.get("@timestamp"))
    if timestamp_ms is None:
        timestamp_ms = to_epoch_ms(_dig(ecs, "event", "created")) or 0
    return _assemble(
        ecs, sigma, data, extra,
        user_data=None,
        ecs_source={**extra, **data} if extra else data,
        timestamp_ms=timestamp_ms,
        raw=raw,
        origin=origin,
    )


def _from_flat(record: dict[str, Any], raw: str, origin: EventOrigin) -> Event:
    sigma: dict[str, Any] = {"EventID": _required_event_id(record.get("EventID"), "EventID", origin)}
    for key in _FLAT_PROVIDER_KEYS:
        provider = record.get(key)
        if type(provider) is dict:
            provider = provider.get("Name")
        if isinstance(provider, str) and provider:
            sigma["Provider_Name"] = provider
            break
    computer = record.get("Hostname") or record.get("Computer") or record.get("HostName")
    if computer is not None:
        sigma["Computer"] = computer
    record_id = _int(record.get("EventRecordID", record.get("RecordNumber")))
    if record_id is not None:
        sigma["EventRecordID"] = record_id
    for name in _FLAT_SYSTEM_AS_IS:
        if record.get(name) is not None:
            sigma[name] = record[name]
    data = {key: value for key, value in record.items() if key not in _FLAT_SYSTEM_KEYS}
    embedded = record.get("EventData")
    if isinstance(embedded, str) and "<Data" in embedded:  # Sentinel SecurityEvent: EventData as XML
        for name, value in _XML_DATA.findall(embedded):
            data.setdefault(name, unescape(value))
    elif type(embedded) is dict:
        data.update(_event_data(embedded))
    return _assemble(
        None, sigma, data, record,
        user_data=None,
        ecs_source=data,
        timestamp_ms=first_timestamp_ms(record, _FLAT_TIME_KEYS),
        raw=raw,
        origin=origin,
    )


# --- the document ----------------------------------------------------------------------------------

# winlog.<key> from the Sigma-named System value
_WINLOG_FROM_SYSTEM = (
    ("channel", "Channel"),
    ("computer_name", "Computer"),
    ("record_id", "EventRecordID"),
    ("provider_name", "Provider_Name"),
    ("provider_guid", "Provider_Guid"),
    ("task", "Task"),
    ("opcode", "Opcode"),
    ("keywords", "Keywords"),
    ("version", "Version"),
)


def _skeleton(
    sigma: dict[str, Any], data: dict[str, Any], user_data: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ECS document every Windows event gets (event.*, host.name, winlog.*) and its dotted fields."""
    code = str(sigma["EventID"])
    provider = sigma.get("Provider_Name")
    event: dict[str, Any] = {"code": code, "kind": "event"}
    event["module"] = "sysmon" if provider == SYSMON else "windows"
    if provider is not None:
        event["provider"] = provider
    channel = sigma.get("Channel")
    if isinstance(channel, str) and channel:
        event["dataset"] = dataset_for(channel)
    doc: dict[str, Any] = {"event": event}
    fields = flat_fields(event, "event.")
    if sigma.get("Computer") is not None:
        doc["host"] = {"name": sigma["Computer"]}
        fields["host.name"] = sigma["Computer"]
    winlog: dict[str, Any] = {"event_id": code}
    for key, name in _WINLOG_FROM_SYSTEM:
        value = sigma.get(name)
        if value is not None:
            winlog[key] = value
    flat_fields(winlog, "winlog.", fields)
    if "ProcessID" in sigma or "ThreadID" in sigma:
        process: dict[str, Any] = {}
        if "ProcessID" in sigma:
            process["pid"] = fields["winlog.process.pid"] = sigma["ProcessID"]
        if "ThreadID" in sigma:
            process["thread"] = {"id": sigma["ThreadID"]}
            fields["winlog.process.thread.id"] = sigma["ThreadID"]
        winlog["process"] = process
    if "UserID" in sigma:
        winlog["user"] = {"identifier": sigma["UserID"]}
        fields["winlog.user.identifier"] = sigma["UserID"]
    if data:
        winlog["event_data"] = data
        flat_fields(data, "winlog.event_data.", fields)
    if user_data:
        winlog["user_data"] = user_data
        flat_fields(user_data, "winlog.user_data.", fields)
    doc["winlog"] = winlog
    return doc, fields


def _merge_missing(doc: dict[str, Any], defaults: dict[str, Any]) -> None:
    """Add what `doc` lacks from `defaults`, recursively; values already in `doc` win."""
    for key, value in defaults.items():
        current = doc.get(key)
        if current is None:
            doc[key] = value
        elif type(current) is dict and type(value) is dict:
            _merge_missing(current, value)


def _assemble(
    ecs: dict[str, Any] | None,
    sigma: dict[str, Any],
    data: dict[str, Any],
    extra: dict[str, Any],
    *,
    user_data: dict[str, Any] | None,
    ecs_source: dict[str, Any],
    timestamp_ms: int,
    raw: str,
    origin: EventOrigin,
) -> Event:
    """The ECS document and flat fields for every shape. `ecs` is the record's own document for
    Winlogbeat (completed, never overwritten), None otherwise. Precedence in `fields`: System values
    (Sigma names), then EventData, then `extra` (UserData leaves, or the flat record), then ECS."""
    record_id = sigma.get("EventRecordID")
    if origin.record_id is None and type(record_id) is int:
        origin = dataclasses.replace(origin, record_id=record_id)
    native = dict(extra)
    native.update(data)
    native.update(sigma)
    if ecs is None:  # EVTX and flat records: the ECS document is built on first use
        return _deferred_event(sigma, data, user_data, ecs_source, native, timestamp_ms, raw,
                               event_id_for(raw, timestamp_ms), origin)
    # A Winlogbeat record is ECS already: completed, never overwritten; its fields known after the merge, and
    # everything in it is the record's own.
    doc, ecs_fields = _skeleton(sigma, data, user_data)
    _merge_missing(ecs, doc)
    _apply_ecs_map(ecs, ecs_fields, ecs_source, sigma.get("Provider_Name"), sigma["EventID"])
    ecs_fields = flat_fields(ecs)
    ecs_fields.update(native)
    return Event(id=event_id_for(raw, timestamp_ms), timestamp_ms=timestamp_ms, raw=raw, ecs=ecs, fields=ecs_fields,
                 origin=origin)


def evtx_event(
    native: dict[str, Any],
    user_count: int,
    extra_count: int,
    data_count: int,
    timestamp_ms: int | None,
    raw: str,
    digest: str,
    origin: EventOrigin,
    prefiltered: tuple[object, list[int]] | None = None,
) -> Event:
    """An EVTX record the native reader (correlator/native) has already normalised: `native` is the field view
    `_from_evtx` builds, its sections in order (UserData leaves, the rest of `extra`, EventData, System values)
    with no name in two sections, the counts say where they end; `timestamp_ms` is None when the reader left
    the time to `to_epoch_ms`. The sections are taken apart again only if the ECS document is built. `digest`:
    the hex SHA-256 of `raw` the id is made of with the time (`timed_id`). `prefiltered`: the literal
    prefilter's answer for the record, when the reader ran it (`Event.prefiltered`)."""
    if timestamp_ms is None:
        timestamp_ms = to_epoch_ms(native.get("TimeCreated")) or 0

    def build_ecs() -> tuple[dict[str, Any], dict[str, Any]]:
        items = list(native.items())
        data_end = extra_count + data_count
        sigma, data = dict(items[data_end:]), dict(items[extra_count:data_end])
        extra = dict(items[:extra_count])
        doc, ecs_fields = _skeleton(sigma, data, dict(items[:user_count]))
        _apply_ecs_map(doc, ecs_fields, {**extra, **data} if extra else data, sigma.get("Provider_Name"),
                       sigma["EventID"])
        return doc, ecs_fields

    computer = native.get("Computer")  # the document's host.name, without building it
    return Event(id=timed_id(timestamp_ms, digest), timestamp_ms=timestamp_ms, raw=raw, fields=native,
                 origin=origin, ecs_factory=build_ecs, host_name=computer if isinstance(computer, str) else None,
                 prefiltered=prefiltered)


def _deferred_event(
    sigma: dict[str, Any],
    data: dict[str, Any],
    user_data: dict[str, Any] | None,
    ecs_source: dict[str, Any],
    native: dict[str, Any],
    timestamp_ms: int,
    raw: str,
    event_id: str,
    origin: EventOrigin,
    prefiltered: tuple[object, list[int]] | None = None,
) -> Event:
    """An EVTX or flat record's `Event`: the ECS document is built on first use (stores, outputs, rules on ECS
    names)."""

    def build_ecs() -> tuple[dict[str, Any], dict[str, Any]]:
        doc, ecs_fields = _skeleton(sigma, data, user_data)
        _apply_ecs_map(doc, ecs_fields, ecs_source, sigma.get("Provider_Name"), sigma["EventID"])
        return doc, ecs_fields

    computer = sigma.get("Computer")  # the document's host.name, without building it
    return Event(id=event_id, timestamp_ms=timestamp_ms, raw=raw, fields=native, origin=origin,
                 ecs_factory=build_ecs, host_name=computer if isinstance(computer, str) else None,
                 prefiltered=prefiltered)
