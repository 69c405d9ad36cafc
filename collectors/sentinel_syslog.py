"""Azure Sentinel / Log Analytics `Syslog` table rows (TenantId, SourceSystem "Linux", Computer, EventTime, Facility,
SeverityLevel, ProcessName, SyslogMessage, HostIP, ...) to `Event`s, by what the row's `SyslogMessage` holds:

- a Sysmon for Linux event, `<Event><System>...</System><EventData><Data Name="Image">...</Data>...</Event>`: its
  fields under Sysmon's names (`EventID` as an int, `Image`, `CommandLine`, `ParentImage`, `User`, `DestinationIp`,
  `TargetFilename`, ... and the System values `Computer`, `EventRecordID`, `Provider_Name`, ...; `Channel` only as
  `winlog.channel`, since a native `Channel` routes an event to Windows rules) and ECS: `event.module` sysmon,
  `event.provider` Linux-Sysmon, `event.code`, `event.category`/`type` by EventID (`SYSMON_CATEGORIES`),
  `host.os.type` linux and the Sysmon mapping of `collectors.windows_ecs` (`process.executable`, `user.name`,
  `destination.ip`, `file.path`, ...). With `host.os.type` the ECS categorisation routes the event to SigmaHQ's
  product linux categories (correlator/data/sources.yml). Sentinel cuts long messages (the syslog daemon's 2 KiB):
  a message cut inside EventData keeps the Data values read, the last one partial, and gets `log.flags: truncated`.
  Sysmon for Linux writes `&quot` without its semicolon; HTML unescaping reads it.
- an auoms record (Azure Monitor's auditd plugin), `type=AUOMS_EXECVE audit(TIME:SERIAL): SchemaVersion="1" ...`:
  taken apart into the kernel records it merges (SYSCALL, EXECVE from `cmdline`, CWD, PATH items from the
  `path_*=[...]` arrays, PROCTITLE) and assembled by `collectors.auditd.assemble`, so the event has the audit names
  SigmaHQ's linux/auditd rules read (`type` lists AUOMS_EXECVE and those record types, `a0`.. are the arguments,
  `SYSCALL` the syscall name, `key` the list of keys, `name` the PATH names, `exe`, `comm`, `cwd`, `proctitle`) and
  Auditbeat's ECS. auoms writes interpreted values under the plain name and raw ones under `<name>_r` (`syscall=execve
  syscall_r=59`) or the kernel's name (`user=tomcat uid=1001`); they become the raw field and its ENRICHED
  translation (`UID`), as in auditd's log_format=ENRICHED. A successful execve is also a process creation: the event
  gets `host.os.type` linux and the Sysmon names `Image`, `CommandLine`, `CurrentDirectory`, `User`, `ProcessId`,
  `ParentProcessId` (auoms has no parent image, so rules on `ParentImage` cannot match it). A failed execve started
  no process: its `event.type` is info, not start, so it is not routed to process_creation.
- a plain audit record forwarded to syslog (audisp-syslog, `type=EXECVE msg=audit(...)`): that one record, as
  `collectors.auditd` reads it.
- anything else: a syslog message with the row's program, facility and severity, made an ECS document by
  `collectors.linux_auth.to_ecs` (sshd, sudo, su, PAM, account changes become `system.auth`, the rest
  `system.syslog`).

The raw record is the row; a `SyslogMessage` that cannot be taken apart raises `NormalisationError` (the reader
makes a `Rejected` of it, with its file and line).
"""

from __future__ import annotations

import json
import re
from html import unescape
from typing import Any

from collectors import linux_auth
from collectors.auditd import AuditRecord, AuditRecordParseError, assemble, parse_record
from collectors.errors import NormalisationError
from collectors.generic import first_timestamp_ms, flat_fields, to_epoch_ms
from collectors.syslog_parse import FACILITY_NAMES, SEVERITY_NAMES, SyslogMessage
from collectors.windows import _XML_DATA, _skeleton
from collectors.windows_ecs import _apply_ecs_map, _int
from correlator.model import Event, EventOrigin, event_id_for, nest

__all__ = ["SYSMON_CATEGORIES", "SYSMON_LINUX", "is_sentinel_syslog", "normalise_sentinel_syslog"]

SYSMON_LINUX = "Linux-Sysmon"
# Sysmon for Linux EventID -> (event.category, event.type); the Sigma category follows from these and host.os.type.
SYSMON_CATEGORIES: dict[int, tuple[tuple[str, ...], tuple[str, ...]]] = {
    1: (("process",), ("start",)),
    3: (("network",), ("connection", "start")),
    5: (("process",), ("end",)),
    9: (("file",), ("access",)),  # raw access read
    11: (("file",), ("creation",)),
    16: (("configuration",), ("change",)),
    23: (("file",), ("deletion",)),
    26: (("file",), ("deletion",)),
}
_ROW_TIME_KEYS = ("EventTime", "TimeGenerated")
# Sentinel's SeverityLevel names (rsyslog's) -> syslog severity code
_SEVERITIES = {"emerg": 0, "alert": 1, "crit": 2, "err": 3, "error": 3, "warning": 4, "warn": 4, "notice": 5,
               "info": 6, "debug": 7}
_EXCERPT = 60

# --- Sysmon for Linux XML ---------------------------------------------------------------------------------
_SYSTEM = re.compile(r"<System>(.*?)</System>", re.DOTALL)
_ELEMENT = re.compile(r"<(\w+)((?:\s+[\w:]+=\"[^\"]*\")*)\s*(?:/>|>([^<]*)</\1>)")
_ATTRIBUTE = re.compile(r'([\w:]+)="([^"]*)"')
_PARTIAL_DATA = re.compile(r'<Data Name="([^"]*)">(.*)', re.DOTALL)  # the last Data of a cut message
_PARTIAL_TAG = re.compile(r"<[^>]*")
_SYSTEM_TEXT = ("EventID", "Channel", "Computer", "EventRecordID", "Version", "Level", "Task", "Opcode", "Keywords")
# (element, attribute) -> Sigma's name for the System value (Windows spellings, as `collectors.windows` gives them)
_SYSTEM_ATTRIBUTES = {("Provider", "Name"): "Provider_Name", ("Provider", "Guid"): "Provider_Guid",
                      ("TimeCreated", "SystemTime"): "TimeCreated", ("Execution", "ProcessID"): "ProcessID",
                      ("Execution", "ThreadID"): "ThreadID", ("Security", "UserId"): "UserID",
                      ("Security", "UserID"): "UserID"}

# --- auoms ------------------------------------------------------------------------------------------------
_AUOMS = re.compile(r"(?:node=\S+ )?type=\S+ audit\(")
_AUOMS_HEADER = re.compile(
    r"(?:node=(?P<node>\S+) )?type=(?P<type>\S+) audit\((?P<sec>\d+)\.(?P<frac>\d+):(?P<serial>\d+)\):")
_AUDIT = re.compile(r"(?:node=\S+ )?type=\S+ msg=audit\(")
_BOUNDARY = re.compile(r" ([A-Za-z_]\w*)=")
_HEX = re.compile(r"[0-9A-Fa-f]*")
# auoms's interpreted field name -> (the raw field's name, auditd's ENRICHED name for the interpretation)
_INTERPRETED = {"user": ("uid", "UID"), "group": ("gid", "GID"), "effective_user": ("euid", "EUID"),
                "set_user": ("suid", "SUID"), "filesystem_user": ("fsuid", "FSUID"),
                "effective_group": ("egid", "EGID"), "set_group": ("sgid", "SGID"),
                "filesystem_group": ("fsgid", "FSGID"), "audit_user": ("auid", "AUID")}
_PATH_ARRAYS = ("name", "nametype", "mode", "ouid", "ogid")  # path_<x>=[...]: one value per PATH item
_PATH_ITEM = frozenset({"name", "nametype", "inode", "dev", "mode", "o_user", "ouid", "owner_group", "ogid", "rdev",
                        "cap_fp", "cap_fi", "cap_fe", "cap_fver", "cap_frootid"})
_MERGED_TYPES = {"AUOMS_EXECVE": "SYSCALL", "AUOMS_SYSCALL": "SYSCALL", "AUOMS_SYSCALL_FRAGMENT": "SYSCALL"}
_EXEC_SYSCALLS = frozenset({"execve", "execveat"})
# Fields auoms writes after an unquoted proctitle; a proctitle's own ` word=` is not a field boundary.
_FREE_TEXT = "proctitle"
_AFTER_FREE_TEXT = frozenset({"redactors", "containerid", "argc", "cmdline", "key", "cwd", "inode", "dev"})
_ANSI_ESCAPES = {"a": "\a", "b": "\b", "e": "\x1b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
                 "\\": "\\", "'": "'", '"': '"'}


def is_sentinel_syslog(record: dict[str, Any]) -> bool:
    """Whether a JSON record is a Sentinel `Syslog` row: a `SyslogMessage` text with SourceSystem Linux, Type
    Syslog, or the row's ProcessName/Facility columns."""
    if not isinstance(record.get("SyslogMessage"), str):
        return False
    return (record.get("SourceSystem") == "Linux" or record.get("Type") == "Syslog"
            or "ProcessName" in record or "Facility" in record)


def normalise_sentinel_syslog(record: dict[str, Any], raw: str, origin: EventOrigin) -> Event:
    """A Sentinel `Syslog` row to an `Event` (see the module doc); `NormalisationError` for a message that
    cannot be taken apart."""
    message: str = record["SyslogMessage"]
    text = message.strip()
    if text.startswith("<Event"):
        return _sysmon(text, record, raw, origin)
    if _AUOMS.match(text):
        return _auoms(text, record, raw, origin)
    if _AUDIT.match(text):
        try:
            audit = parse_record(text, origin)
        except AuditRecordParseError as exc:
            raise NormalisationError.at(origin, f"audit record in SyslogMessage: {exc.reason}") from exc
        return _audit_event([audit], record, raw, origin)
    return _syslog(message, record, raw, origin)


def _row_ecs(record: dict[str, Any]) -> dict[str, Any]:
    """Dotted ECS fields from the row's own columns: host, syslog facility/severity/program, ingest time."""
    out: dict[str, Any] = {}
    host = record.get("Computer") or record.get("HostName")
    if isinstance(host, str) and host:
        out["host.name"] = out["host.hostname"] = host
    if isinstance(record.get("HostIP"), str) and record["HostIP"]:
        out["host.ip"] = [record["HostIP"]]
    facility, severity = _facility(record), _severity(record)
    if facility is not None:
        out["log.syslog.facility.code"], out["log.syslog.facility.name"] = facility, FACILITY_NAMES[facility]
    if severity is not None:
        out["log.syslog.severity.code"], out["log.syslog.severity.name"] = severity, SEVERITY_NAMES[severity]
    if isinstance(record.get("ProcessName"), str) and record["ProcessName"]:
        out["log.syslog.appname"] = record["ProcessName"]
    if to_epoch_ms(record.get("TimeGenerated")) is not None:
        out["event.ingested"] = record["TimeGenerated"]
    return out


def _facility(record: dict[str, Any]) -> int | None:
    name = record.get("Facility")
    return FACILITY_NAMES.index(name) if name in FACILITY_NAMES else None


def _severity(record: dict[str, Any]) -> int | None:
    name = record.get("SeverityLevel")
    return _SEVERITIES.get(name.lower()) if isinstance(name, str) else None


def _excerpt(text: str) -> str:
    return text if len(text) <= _EXCERPT else text[:_EXCERPT] + "..."


# --- Sysmon for Linux -------------------------------------------------------------------------------------


def _sysmon(text: str, record: dict[str, Any], raw: str, origin: EventOrigin) -> Event:
    system_match = _SYSTEM.search(text)
    if system_match is None:
        raise NormalisationError.at(origin, f"Sysmon XML in SyslogMessage has no <System> element: "
                                            f"{_excerpt(text)!r}")
    sigma = _system_values(system_match.group(1))
    event_id = _int(sigma.get("EventID"))
    if event_id is None:
        detail = "missing" if "EventID" not in sigma else f"not a number: {sigma['EventID']!r:.60}"
        raise NormalisationError.at(origin, f"Sysmon XML in SyslogMessage: EventID is {detail}")
    sigma["EventID"] = event_id
    if "EventRecordID" in sigma:
        sigma["EventRecordID"] = _int(sigma["EventRecordID"])
    data, truncated = _event_data(text, system_match.end(), origin)

    doc, _ = _skeleton(sigma, data, None)
    doc["event"].update(module="sysmon", provider=sigma.get("Provider_Name") or SYSMON_LINUX,
                        dataset="sysmon_linux.log")
    if event_id in SYSMON_CATEGORIES:
        categories, types = SYSMON_CATEGORIES[event_id]
        doc["event"].update(category=list(categories), type=list(types))
    _apply_ecs_map(doc, {}, data, SYSMON_LINUX, event_id)
    extra = _row_ecs(record)
    extra["host.os.type"] = "linux"
    if truncated:
        extra["log.flags"] = ["truncated"]
    _merge(doc, extra)
    timestamp_ms = to_epoch_ms(data.get("UtcTime"))
    if timestamp_ms is None:
        timestamp_ms = to_epoch_ms(sigma.get("TimeCreated"))
    if timestamp_ms is None:
        timestamp_ms = first_timestamp_ms(record, _ROW_TIME_KEYS)
    fields = flat_fields(doc)
    fields.update(data)
    fields.update({key: value for key, value in sigma.items() if key != "Channel" and value is not None})
    return Event(id=event_id_for(raw, timestamp_ms), timestamp_ms=timestamp_ms, raw=raw, ecs=doc, fields=fields,
                 origin=origin)


def _system_values(system: str) -> dict[str, Any]:
    """The System section's values under Sigma's names (text elements and the attributes that carry values)."""
    sigma: dict[str, Any] = {}
    for name, attributes, value in _ELEMENT.findall(system):
        if name in _SYSTEM_TEXT and value:
            sigma[name] = unescape(value)
        for attribute, attribute_value in _ATTRIBUTE.findall(attributes):
            target = _SYSTEM_ATTRIBUTES.get((name, attribute))
            if target is not None:
                sigma[target] = unescape(attribute_value)
    return sigma


def _event_data(text: str, start: int, origin: EventOrigin) -> tuple[dict[str, Any], bool]:
    """EventData's named values and whether the message was cut; `NormalisationError` for what is not Data."""
    opened = text.find("<EventData>", start)
    closed = text.find("</EventData>", start)
    complete = text.endswith("</Event>")
    if opened == -1:
        if not complete:
            raise NormalisationError.at(origin, "Sysmon XML in SyslogMessage ends before its EventData")
        return {}, False
    if complete and closed == -1:
        raise NormalisationError.at(origin, "Sysmon XML in SyslogMessage: <EventData> is not closed")
    body = text[opened + len("<EventData>"):closed if closed != -1 else len(text)]
    data: dict[str, Any] = {}
    rest: list[str] = []
    position = 0
    for match in _XML_DATA.finditer(body):
        rest.append(body[position:match.start()])
        position = match.end()
        data[match.group(1)] = unescape(match.group(2) or "")
    tail = body[position:]
    if closed == -1:  # the message was cut: keep what the last Data holds
        partial = _PARTIAL_DATA.match(tail.lstrip())
        if partial is not None:
            data[partial.group(1)] = unescape(_PARTIAL_TAG.sub("", partial.group(2)))
            tail = ""
        elif tail.lstrip().startswith("<"):
            tail = ""
    leftover = "".join(rest) + tail
    if leftover.strip():
        raise NormalisationError.at(origin, f"Sysmon XML in SyslogMessage: unreadable EventData "
                                            f"{_excerpt(leftover.strip())!r}")
    return data, closed == -1


def _merge(doc: dict[str, Any], dotted: dict[str, Any]) -> None:
    """Dotted values into a nested document; values already set win."""
    for name, value in dotted.items():
        *parents, leaf = name.split(".")
        node = doc
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node.setdefault(leaf, value)


# --- auoms and forwarded audit records --------------------------------------------------------------------


def _auoms(text: str, record: dict[str, Any], raw: str, origin: EventOrigin) -> Event:
    head = _AUOMS_HEADER.match(text)
    if head is None:
        raise NormalisationError.at(origin, f"auoms record: expected 'type=TYPE audit(TIME:SERIAL):', got "
                                            f"{_excerpt(text)!r}")
    fields = _auoms_fields(text, head.end(), origin)
    timestamp_ms = int(head["sec"]) * 1000 + int(head["frac"].ljust(3, "0")[:3])
    serial = int(head["serial"])
    node = head["node"] or fields.get("node") or None

    def audit(record_type: str, values: dict[str, Any], enriched: dict[str, str] | None = None) -> AuditRecord:
        return AuditRecord(type=record_type, timestamp_ms=timestamp_ms, serial=serial, line=text, fields=values,
                           enriched=enriched or {}, node=node)

    enriched: dict[str, str] = {}
    for name, (raw_name, enriched_name) in _INTERPRETED.items():
        value = fields.get(name)
        if isinstance(value, str) and raw_name in fields:
            enriched[enriched_name] = fields.pop(name)
    if isinstance(fields.get("arch"), str):
        enriched["ARCH"] = fields["arch"]
    if "syscall_r" in fields:  # syscall=execve syscall_r=59: the number as the kernel logs it, the name enriched
        enriched["SYSCALL"] = fields["syscall"]
        fields["syscall"] = fields.pop("syscall_r")
    if "key_r" in fields:
        key_r = fields.pop("key_r")
        keys = bytes.fromhex(key_r).decode("utf-8", "backslashreplace").split("\x01") if _is_hex(key_r) else []
        fields["key"] = keys[0] if len(keys) == 1 else keys or fields.get("key")
    command = fields.pop("cmdline", None)
    argc = fields.pop("argc", None)
    cwd = fields.pop("cwd", None)
    proctitle = fields.pop(_FREE_TEXT, None)
    arrays = {name: fields.pop(f"path_{name}") for name in _PATH_ARRAYS if f"path_{name}" in fields}
    first_item = {name: fields.pop(name) for name in _PATH_ITEM if name in fields} if arrays else {}
    main_type = head["type"]
    records = [audit(_MERGED_TYPES.get(main_type, main_type.removeprefix("AUOMS_")), fields, enriched)]
    if isinstance(command, str):
        args = _shell_words(command, origin)
        records.append(audit("EXECVE", {"argc": argc or str(len(args)),
                                        **{f"a{i}": arg for i, arg in enumerate(args)}}))
    if cwd is not None:
        records.append(audit("CWD", {"cwd": cwd}))
    for item, name in enumerate(arrays.get("name", [])):
        values = {key: arrays[key][item] for key in _PATH_ARRAYS if item < len(arrays.get(key, ()))}
        path_enriched: dict[str, str] = {}
        if item == 0:  # the scalar name=, inode=, ... fields describe the first PATH item
            path_enriched = {upper: first_item.pop(lower) for lower, upper in (("o_user", "OUID"),
                                                                               ("owner_group", "OGID"))
                             if isinstance(first_item.get(lower), str)}
            values = {**{k: v for k, v in first_item.items() if k not in _PATH_ARRAYS}, **values}
        values = {key: value for key, value in values.items() if value != ""}
        records.append(audit("PATH", {"item": str(item), **values, "name": name}, path_enriched))
    if proctitle is not None:
        records.append(audit("PROCTITLE", {"proctitle": proctitle}))
    return _audit_event(records, record, raw, origin, main_type)


def _audit_event(records: list[AuditRecord], record: dict[str, Any], raw: str, origin: EventOrigin,
                 auoms_type: str | None = None) -> Event:
    """Audit records to an Event: `collectors.auditd.assemble`, the row's columns, and the process-creation names
    for a successful execve."""
    base = assemble(records, origin)
    ecs_flat = flat_fields(base.ecs)
    native = {key: value for key, value in base.fields.items() if key not in ecs_flat}
    extra = _row_ecs(record)
    extra["host.os.type"] = "linux"
    if auoms_type is not None:
        extra["event.provider"] = "auoms"
        native["type"] = list(dict.fromkeys((auoms_type, *(r.type for r in records))))
    for key, value in extra.items():
        ecs_flat.setdefault(key, value)
    if native.get("SYSCALL") in _EXEC_SYSCALLS:
        if ecs_flat.get("event.outcome") != "success":  # no process started (assemble says start, outcome failure)
            ecs_flat["event.type"] = ["info"]
        elif "process.args" in ecs_flat:
            native.update(_process_creation(ecs_flat, native))
    fields = {**ecs_flat, **native}
    return Event(id=event_id_for(raw, base.timestamp_ms), timestamp_ms=base.timestamp_ms, raw=raw, ecs=nest(ecs_flat),
                 fields=fields, origin=origin, host_name=base.host_name)


def _process_creation(ecs: dict[str, Any], native: dict[str, Any]) -> dict[str, Any]:
    """The Sysmon for Linux names of a process creation (SigmaHQ's linux/process_creation rules read these)."""
    names = (("Image", ecs.get("process.executable")), ("CommandLine", ecs.get("process.command_line")),
             ("CurrentDirectory", ecs.get("process.working_directory")), ("User", ecs.get("user.name")),
             ("ProcessId", native.get("pid")), ("ParentProcessId", native.get("ppid")))
    return {name: value for name, value in names if value is not None}


def _auoms_fields(text: str, start: int, origin: EventOrigin) -> dict[str, Any]:
    """`name=value` fields of an auoms record. auoms quotes string values without escaping what they hold
    (`cmdline="bash -c "a|b""`) and writes some unquoted with spaces (`proctitle`), so a value ends at the next
    ` name=` where its quotes (a command line: its shell quoting) or its `[...]` array are complete."""
    bounds = list(_BOUNDARY.finditer(text, start))
    if not bounds or text[start:bounds[0].start()].strip():
        raise NormalisationError.at(origin, f"auoms record: no fields after the header: {_excerpt(text[start:])!r}")
    fields: dict[str, Any] = {}
    index = 0
    while index < len(bounds):
        name = bounds[index][1]
        value_start = bounds[index].end()
        index += 1
        while True:
            end = bounds[index].start() if index < len(bounds) else len(text)
            value = text[value_start:end]
            if _complete(name, value, bounds[index][1] if index < len(bounds) else None):
                break
            if index >= len(bounds):
                raise NormalisationError.at(origin, f"auoms record: unterminated value of {name}: "
                                                    f"{_excerpt(value)!r}")
            index += 1
        fields[name] = _value(value)
    return fields


def _complete(name: str, value: str, next_name: str | None) -> bool:
    """Whether `value` is the whole value of field `name`, the next field (None at the end) being `next_name`."""
    if value.startswith('"'):
        return len(value) >= 2 and value.endswith('"') and (name != "cmdline" or _balanced(value[1:-1]))
    if value.startswith("["):
        try:
            return isinstance(json.loads(value), list)
        except ValueError:
            return False
    return name != _FREE_TEXT or next_name is None or next_name in _AFTER_FREE_TEXT


def _value(value: str) -> Any:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    if value.startswith("["):
        return [str(item) for item in json.loads(value)]
    return value


def _is_hex(value: Any) -> bool:
    return isinstance(value, str) and len(value) % 2 == 0 and _HEX.fullmatch(value) is not None


def _balanced(command: str) -> bool:
    try:
        _shell_words(command, None)
    except NormalisationError:
        return False
    return True


def _shell_words(command: str, origin: EventOrigin | None) -> list[str]:
    """An auoms `cmdline` back to its arguments: auoms quotes each one as bash would read it (bare, "...", '...'
    or $'...' with \\xNN escapes)."""
    words: list[str] = []
    word: list[str] | None = None
    i, size = 0, len(command)
    while i < size:
        char = command[i]
        if char == " ":
            if word is not None:
                words.append("".join(word))
                word = None
            i += 1
            continue
        word = word if word is not None else []
        if char == '"':
            i = _quoted(command, i + 1, '"', "\\\"$`", word, origin)
        elif char == "'":
            end = command.find("'", i + 1)
            if end == -1:
                raise NormalisationError.at(origin or EventOrigin(), f"unterminated ' in cmdline {_excerpt(command)!r}")
            word.append(command[i + 1:end])
            i = end + 1
        elif char == "$" and command.startswith("'", i + 1):
            i = _quoted(command, i + 2, "'", "", word, origin)
        elif char == "\\" and i + 1 < size:
            word.append(command[i + 1])
            i += 2
        else:
            word.append(char)
            i += 1
    if word is not None:
        words.append("".join(word))
    return words


def _quoted(command: str, i: int, close: str, escapable: str, word: list[str], origin: EventOrigin | None) -> int:
    """Read a "..." (backslash escapes only `escapable`) or $'...' (ANSI-C escapes) string from `i`; the position
    after its closing quote."""
    while i < len(command):
        char = command[i]
        if char == close:
            return i + 1
        if char == "\\" and i + 1 < len(command):
            following = command[i + 1]
            if close == '"':
                word.append(following if following in escapable else "\\" + following)
                i += 2
            elif following == "x" and _is_hex(command[i + 2:i + 4]) and len(command[i + 2:i + 4]) == 2:
                word.append(chr(int(command[i + 2:i + 4], 16)))
                i += 4
            else:
                word.append(_ANSI_ESCAPES.get(following, "\\" + following))
                i += 2
            continue
        word.append(char)
        i += 1
    raise NormalisationError.at(origin or EventOrigin(), f"unterminated {close} in cmdline {_excerpt(command)!r}")


# --- other syslog messages ---------------------------------------------------------------------------------


def _syslog(text: str, record: dict[str, Any], raw: str, origin: EventOrigin) -> Event:
    program = record.get("ProcessName")
    procid = record.get("ProcessID")
    host = record.get("HostName") or record.get("Computer")
    message = SyslogMessage(
        timestamp_ms=first_timestamp_ms(record, _ROW_TIME_KEYS),
        message=text,
        hostname=host if isinstance(host, str) and host else None,
        appname=program if isinstance(program, str) and program else None,
        procid=str(procid) if isinstance(procid, int | str) and str(procid) not in ("", "0") else None,
        facility=_facility(record),
        severity=_severity(record),
    )
    doc = linux_auth.to_ecs(message)
    _merge(doc, _row_ecs(record))
    return Event(id=event_id_for(raw, message.timestamp_ms), timestamp_ms=message.timestamp_ms, raw=raw, ecs=doc,
                 fields=flat_fields(doc), origin=origin)
