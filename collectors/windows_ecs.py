"""The ECS side of Windows normalisation: which EventData names become which ECS fields.

`ECS_FIELD_MAP` maps EventData names to ECS fields per scope (any event, a provider, or one provider's
EventID), each through a small converter; `ECS_EVENT_CONSTANTS` adds fixed values (event.category,
event.type, ...) per (provider, EventID). Both are data: extend them here, not in code. `_apply_ecs_map`
resolves them once per (provider, EventID) into a cached plan and applies it to one record's data;
`dataset_for` names a channel's `event.dataset`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

__all__ = [
    "ECS_EVENT_CONSTANTS",
    "ECS_FIELD_MAP",
    "SECURITY",
    "SYSMON",
    "dataset_for",
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

_NOT_SLUG = re.compile(r"[^a-z0-9]+")


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
