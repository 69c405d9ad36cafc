"""Windows event records to `Event`, for the three shapes Windows logs arrive in:

- EVTX and evtx_dump JSON: `{"Event": {"System": {...}, "EventData" | "UserData": {...}}}`
- Winlogbeat / Elastic Agent: ECS documents with a `winlog` object (nested or dotted keys)
- OTRF (Mordor) and other flat exports: EventData fields at the top level beside Channel, EventID,
  Hostname, SourceName, TimeCreated (also Azure Sentinel `SecurityEvent` rows, EventData as XML text)

`fields` gets the System values under Sigma's names (EventID, Channel, Provider_Name, Computer, ...),
every EventData/UserData value under its bare name and every ECS leaf under its dotted name. The ECS
mapping of common data fields is the table `ECS_FIELD_MAP`: extend it there, not in code.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from functools import lru_cache
from html import unescape
from typing import Any

from collectors.errors import NormalisationError
from collectors.generic import first_timestamp_ms, flat_fields, to_epoch_ms
from correlator.model import Event, EventOrigin, event_id_for, flatten, nest

__all__ = [
    "ECS_EVENT_CONSTANTS",
    "ECS_FIELD_MAP",
    "dataset_for",
    "normalise_windows",
    "windows_shape",
]

SYSMON = "Microsoft-Windows-Sysmon"
SECURITY = "Microsoft-Windows-Security-Auditing"

Scope = str | tuple[str, int]  # "*" (any event), a provider name, or (provider, EventID)

# EventData name -> ECS field, per scope, with the converter (see `_CONVERTERS`) that reads the value;
# a converter returning a mapping fills sub-fields of the target (`account` -> user.name, user.domain).
# Lookup order: (provider, EventID), provider, "*". A name mapped in a more specific scope is not mapped
# again by a broader one (in Security 4688 `ProcessId` is the parent), and the first value written to an
# ECS field wins. "-" and "" are never mapped.
ECS_FIELD_MAP: dict[Scope, tuple[tuple[str, str, str], ...]] = {
    "*": (
        ("Image", "process.executable", "keep"),
        ("Image", "process.name", "basename"),
        ("CommandLine", "process.command_line", "keep"),
        ("ProcessId", "process.pid", "pid"),
        ("ProcessGuid", "process.entity_id", "keep"),
        ("ParentImage", "process.parent.executable", "keep"),
        ("ParentImage", "process.parent.name", "basename"),
        ("ParentCommandLine", "process.parent.command_line", "keep"),
        ("ParentProcessId", "process.parent.pid", "pid"),
        ("ParentProcessGuid", "process.parent.entity_id", "keep"),
        ("CurrentDirectory", "process.working_directory", "keep"),
        ("User", "user", "account"),
        ("SubjectUserName", "user.name", "keep"),
        ("SubjectDomainName", "user.domain", "keep"),
        ("SubjectUserSid", "user.id", "keep"),
        ("TargetUserName", "user.target.name", "keep"),
        ("TargetDomainName", "user.target.domain", "keep"),
        ("TargetUserSid", "user.target.id", "keep"),
        ("IpAddress", "source.ip", "keep"),
        ("IpPort", "source.port", "port"),
        ("WorkstationName", "source.domain", "keep"),
        ("SourceIp", "source.ip", "keep"),
        ("SourceAddress", "source.ip", "keep"),
        ("SourcePort", "source.port", "port"),
        ("SourceHostname", "source.domain", "keep"),
        ("DestinationIp", "destination.ip", "keep"),
        ("DestAddress", "destination.ip", "keep"),
        ("DestinationPort", "destination.port", "port"),
        ("DestPort", "destination.port", "port"),
        ("DestinationHostname", "destination.domain", "keep"),
        ("Protocol", "network.transport", "transport"),
        ("TargetFilename", "file.path", "keep"),
        ("TargetFilename", "file.name", "basename"),
        ("TargetObject", "registry.path", "keep"),
        ("QueryName", "dns.question.name", "keep"),
        ("ServiceName", "service.name", "keep"),
        ("ScriptBlockText", "powershell.file.script_block_text", "keep"),
    ),
    (SYSMON, 1): (("Hashes", "process.hash", "hashes"),),
    (SYSMON, 6): (("ImageLoaded", "file.path", "keep"), ("Hashes", "file.hash", "hashes")),
    (SYSMON, 7): (("ImageLoaded", "file.path", "keep"), ("Hashes", "file.hash", "hashes")),
    (SYSMON, 8): (
        ("SourceImage", "process.executable", "keep"),
        ("SourceProcessId", "process.pid", "pid"),
        ("SourceProcessGuid", "process.entity_id", "keep"),
    ),
    (SYSMON, 10): (
        ("SourceImage", "process.executable", "keep"),
        ("SourceProcessId", "process.pid", "pid"),
        ("SourceProcessGUID", "process.entity_id", "keep"),
    ),
    (SYSMON, 15): (("Hash", "file.hash", "hashes"),),
    (SYSMON, 23): (("Hashes", "file.hash", "hashes"),),
    (SYSMON, 26): (("Hashes", "file.hash", "hashes"),),
    (SECURITY, 4688): (
        ("NewProcessName", "process.executable", "keep"),
        ("NewProcessName", "process.name", "basename"),
        ("NewProcessId", "process.pid", "pid"),
        ("ProcessId", "process.parent.pid", "pid"),
        ("ParentProcessName", "process.parent.executable", "keep"),
        ("ParentProcessName", "process.parent.name", "basename"),
    ),
}

# Logons and Kerberos/NTLM authentication: the Target account is the user who authenticates.
_LOGON_ACCOUNT = (
    ("TargetUserName", "user.name", "keep"),
    ("TargetDomainName", "user.domain", "keep"),
    ("TargetUserSid", "user.id", "keep"),
)
ECS_FIELD_MAP.update(
    {(SECURITY, code): _LOGON_ACCOUNT for code in (4624, 4625, 4634, 4647, 4768, 4769, 4771, 4776)}
)

_AUTHENTICATION = {"event.category": ["authentication"], "event.type": ["start"]}
# Fixed ECS values per (provider, EventID), set unless the record already has them.
ECS_EVENT_CONSTANTS: dict[tuple[str, int], dict[str, Any]] = {
    (SYSMON, 1): {"event.category": ["process"], "event.type": ["start"]},
    (SYSMON, 3): {"event.category": ["network"], "event.type": ["connection", "start"]},
    (SYSMON, 5): {"event.category": ["process"], "event.type": ["end"]},
    (SYSMON, 11): {"event.category": ["file"], "event.type": ["creation"]},
    (SYSMON, 12): {"event.category": ["registry"], "event.type": ["change"]},
    (SYSMON, 13): {"event.category": ["registry"], "event.type": ["change"]},
    (SYSMON, 22): {"event.category": ["network"], "event.type": ["protocol"], "network.protocol": "dns"},
    (SECURITY, 4624): {**_AUTHENTICATION, "event.outcome": "success"},
    (SECURITY, 4625): {**_AUTHENTICATION, "event.outcome": "failure"},
    (SECURITY, 4688): {"event.category": ["process"], "event.type": ["start"]},
    (SECURITY, 4720): {"event.category": ["iam"], "event.type": ["user", "creation"]},
}

# Channel -> event.dataset where Elastic's name is not the plain slug of the channel.
_CHANNEL_DATASETS = {"Windows PowerShell": "windows.powershell", "ForwardedEvents": "windows.forwarded"}
_IANA_TRANSPORTS = {"1": "icmp", "6": "tcp", "17": "udp", "58": "ipv6-icmp"}

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
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
_EMPTY: dict[str, Any] = {}


# --- converters for ECS_FIELD_MAP ---------------------------------------------------------------------


def _int(value: Any) -> int | None:
    """An int from an int, a decimal string, or evtx's `{"#text": 4624, "#attributes": {...}}`."""
    if type(value) is dict:
        value = value.get("#text")
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


def _pid(value: Any) -> int | None:
    """A process id from an int, a decimal string or a hex string ("0x1a4", as Security logs write it).
    0 ("0x0" in logon events) means no process and maps to nothing."""
    if isinstance(value, str) and value[:2] in ("0x", "0X"):
        try:
            return int(value, 16) or None
        except ValueError:
            return None
    return _int(value) or None


def _basename(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    return value.rsplit("\\", 1)[-1].rsplit("/", 1)[-1] or None


def _account(value: Any) -> dict[str, str] | None:
    """`DOMAIN\\name` to {"name", "domain"}; a bare name to {"name"}."""
    if not isinstance(value, str):
        return None
    domain, _, name = value.rpartition("\\")
    return {"name": name, "domain": domain} if domain and name else {"name": value}


def _hashes(value: Any) -> dict[str, str] | None:
    """Sysmon's `SHA1=..,MD5=..,SHA256=..,IMPHASH=..` to {"sha1": .., "md5": .., ...}."""
    if not isinstance(value, str) or "=" not in value:
        return None
    out = {}
    for item in value.split(","):
        algorithm, _, digest = item.partition("=")
        if digest:
            out[algorithm.strip().lower()] = digest.strip()
    return out or None


def _transport(value: Any) -> str | None:
    """Sysmon writes `tcp`; Security 5156 writes the IANA protocol number `6`."""
    text = str(value).strip().lower()
    if text.isdigit():
        return _IANA_TRANSPORTS.get(text)
    return text or None


_CONVERTERS: dict[str, Callable[[Any], Any] | None] = {
    "keep": None,
    "pid": _pid,
    "port": _int,
    "basename": _basename,
    "account": _account,
    "hashes": _hashes,
    "transport": _transport,
}


@dataclasses.dataclass(frozen=True, slots=True)
class _Plan:
    """ECS_FIELD_MAP and ECS_EVENT_CONSTANTS resolved for one (provider, EventID).

    `steps`: source name -> (rank, source name, ((target path, dotted target, converter or None), ...));
    `constants`: ((target path, dotted target, value), ...)."""

    steps: dict[str, tuple[int, str, tuple[tuple[tuple[str, ...], str, Callable[[Any], Any] | None], ...]]]
    constants: tuple[tuple[tuple[str, ...], str, Any], ...]


_PLANS: dict[tuple[str | None, int], _Plan] = {}


def _plan(provider: str | None, event_id: int) -> _Plan:
    """The resolved mapping for one (provider, EventID), built on first use and cached."""
    plan = _PLANS.get((provider, event_id))
    if plan is not None:
        return plan
    scopes: list[Scope] = ["*"] if provider is None else [(provider, event_id), provider, "*"]
    steps: dict[str, list[tuple[tuple[str, ...], str, Callable[[Any], Any] | None]]] = {}
    claimed: set[str] = set()
    for scope in scopes:
        entries = ECS_FIELD_MAP.get(scope, ())
        for source, target, converter in entries:
            if source not in claimed:
                steps.setdefault(source, []).append((tuple(target.split(".")), target, _CONVERTERS[converter]))
        claimed.update(source for source, _, _ in entries)
    constants = ECS_EVENT_CONSTANTS.get((provider, event_id), {}) if provider is not None else {}
    plan = _PLANS[(provider, event_id)] = _Plan(
        steps={source: (rank, source, tuple(items)) for rank, (source, items) in enumerate(steps.items())},
        constants=tuple((tuple(name.split(".")), name, value) for name, value in constants.items()),
    )
    return plan


def _put(doc: dict[str, Any], path: tuple[str, ...], value: Any) -> bool:
    """Set a nested value unless it is already set (or a non-object value sits on the way); True if set."""
    node = doc
    for part in path[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        elif type(child) is not dict:
            return False
        node = child
    if path[-1] in node:
        return False
    node[path[-1]] = value
    return True


def _apply_ecs_map(
    ecs: dict[str, Any], fields: dict[str, Any], data: dict[str, Any], provider: str | None, event_id: int
) -> None:
    """Add the mapped and constant ECS fields to `ecs`, and under their dotted names to `fields`."""
    plan = _PLANS.get((provider, event_id)) or _plan(provider, event_id)
    steps = plan.steps
    # Only the names present, in table order (so the first value written to a field is deterministic).
    for _, source, targets in sorted(map(steps.__getitem__, steps.keys() & data.keys())):
        value = data[source]
        if value is None or value in ("", "-"):
            continue
        for path, dotted, convert in targets:
            converted = value if convert is None else convert(value)
            if converted is None:
                continue
            if type(converted) is dict:
                for key, item in converted.items():
                    if _put(ecs, (*path, key), item):
                        fields[f"{dotted}.{key}"] = item
            elif _put(ecs, path, converted):
                fields[dotted] = converted
    for path, dotted, value in plan.constants:
        copy = list(value) if type(value) is list else value
        if _put(ecs, path, copy):
            fields[dotted] = copy


@lru_cache(maxsize=256)
def dataset_for(channel: str) -> str:
    """`event.dataset` for a channel: Security -> windows.security, Microsoft-Windows-Sysmon/Operational
    -> windows.sysmon_operational, Windows PowerShell -> windows.powershell."""
    known = _CHANNEL_DATASETS.get(channel)
    if known is not None:
        return known
    slug = channel.lower().removeprefix("microsoft-windows-")
    return "windows." + (_NOT_SLUG.sub("_", slug).strip("_") or "unknown")


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
    provider, event_id = sigma.get("Provider_Name"), sigma["EventID"]

    def build_ecs() -> tuple[dict[str, Any], dict[str, Any]]:
        doc, ecs_fields = _skeleton(sigma, data, user_data)
        if ecs is None:
            _apply_ecs_map(doc, ecs_fields, ecs_source, provider, event_id)
            return doc, ecs_fields
        # the record's own document (Winlogbeat): completed, never overwritten; its fields known after the merge
        _merge_missing(ecs, doc)
        _apply_ecs_map(ecs, ecs_fields, ecs_source, provider, event_id)
        return ecs, flat_fields(ecs)

    if ecs is not None:  # a Winlogbeat record is ECS already: everything in it is the record's own
        doc, ecs_fields = build_ecs()
        ecs_fields.update(native)
        return Event(id=event_id_for(raw), timestamp_ms=timestamp_ms, raw=raw, ecs=doc, fields=ecs_fields,
                     origin=origin)
    # EVTX and flat records: the ECS document is built on first use (stores, outputs, rules on ECS names).
    return Event(id=event_id_for(raw), timestamp_ms=timestamp_ms, raw=raw, fields=native, origin=origin,
                 ecs_factory=build_ecs)
