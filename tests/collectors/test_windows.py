"""Windows records (EVTX/evtx_dump, Winlogbeat, OTRF flat) to Event: Sigma field names, EventData shapes,
ECS mapping."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from collectors.errors import NormalisationError
from collectors.windows import ECS_FIELD_MAP, normalise_windows, windows_shape
from correlator.model import Event, EventOrigin, event_id_for

SYSMON_GUID = "5770385F-C22A-43E0-BF4C-06F5698FFBD9"


def evtx_record(
    event_id: Any = 1,
    *,
    provider: str = "Microsoft-Windows-Sysmon",
    channel: str = "Microsoft-Windows-Sysmon/Operational",
    record_id: int = 6575,
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An evtx-rs rendering of one record; `body` holds EventData / UserData / ProcessingErrorData."""
    system = {
        "Provider": {"#attributes": {"Name": provider, "Guid": SYSMON_GUID}},
        "EventID": event_id,
        "Version": 5,
        "Level": 4,
        "Task": 1,
        "Opcode": 0,
        "Keywords": "0x8000000000000000",
        "TimeCreated": {"#attributes": {"SystemTime": "2019-04-27T15:57:25.8688631Z"}},
        "EventRecordID": record_id,
        "Correlation": None,
        "Execution": {"#attributes": {"ProcessID": 1912, "ThreadID": 996}},
        "Channel": channel,
        "Computer": "IEWIN7",
        "Security": {"#attributes": {"UserID": "S-1-5-18"}},
    }
    event: dict[str, Any] = {"#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"}}
    event["System"] = system
    event.update(body if body is not None else {"EventData": None})
    return {"Event": event}


def normalise(record: dict[str, Any], fmt: str = "evtx") -> Event:
    raw = orjson.dumps(record).decode()
    return normalise_windows(record, raw, EventOrigin(path="test.evtx", format=fmt))


SYSMON_PROCESS = {
    "RuleName": "",
    "UtcTime": "2019-04-27 15:57:25.868",
    "ProcessGuid": "365ABB72-7ACC-5CC4-0000-0010B2470300",
    "ProcessId": 2772,
    "Image": "C:\\Windows\\System32\\cmd.exe",
    "CommandLine": "cmd.exe /c whoami /all",
    "CurrentDirectory": "C:\\Users\\IEUser\\",
    "User": "IEWIN7\\IEUser",
    "TerminalSessionId": 1,
    "Hashes": "SHA1=AAA,MD5=BBB,SHA256=CCC,IMPHASH=DDD",
    "ParentProcessId": 1234,
    "ParentImage": "C:\\Windows\\explorer.exe",
    "ParentCommandLine": "C:\\Windows\\Explorer.EXE",
}


def test_evtx_sysmon_process_creation_has_sigma_names_ecs_and_dotted_fields() -> None:
    record = evtx_record(body={"EventData": dict(SYSMON_PROCESS)})
    event = normalise(record)

    fields = event.fields
    assert fields["EventID"] == 1
    assert fields["Channel"] == "Microsoft-Windows-Sysmon/Operational"
    assert fields["Provider_Name"] == "Microsoft-Windows-Sysmon"
    assert fields["Computer"] == "IEWIN7"
    assert fields["EventRecordID"] == 6575
    assert (fields["Level"], fields["Task"], fields["Opcode"], fields["Version"]) == (4, 1, 0, 5)
    assert fields["Keywords"] == "0x8000000000000000"
    assert (fields["ProcessID"], fields["ThreadID"], fields["UserID"]) == (1912, 996, "S-1-5-18")
    assert fields["Image"] == "C:\\Windows\\System32\\cmd.exe"
    assert fields["ProcessId"] == 2772  # JSON types kept
    assert fields["TerminalSessionId"] == 1
    assert fields["winlog.event_data.CommandLine"] == "cmd.exe /c whoami /all"
    assert fields["process.command_line"] == "cmd.exe /c whoami /all"

    ecs = event.ecs
    assert ecs["event"] == {
        "code": "1",
        "kind": "event",
        "module": "sysmon",
        "provider": "Microsoft-Windows-Sysmon",
        "dataset": "windows.sysmon_operational",
        "category": ["process"],
        "type": ["start"],
    }
    assert ecs["host"] == {"name": "IEWIN7"}
    assert ecs["winlog"]["event_id"] == "1"
    assert ecs["winlog"]["record_id"] == 6575
    assert ecs["winlog"]["event_data"]["ParentProcessId"] == 1234
    assert ecs["process"]["executable"] == "C:\\Windows\\System32\\cmd.exe"
    assert ecs["process"]["name"] == "cmd.exe"
    assert ecs["process"]["pid"] == 2772
    assert ecs["process"]["working_directory"] == "C:\\Users\\IEUser\\"
    assert ecs["process"]["parent"] == {
        "executable": "C:\\Windows\\explorer.exe",
        "name": "explorer.exe",
        "command_line": "C:\\Windows\\Explorer.EXE",
        "pid": 1234,
    }
    assert ecs["process"]["hash"] == {"sha1": "AAA", "md5": "BBB", "sha256": "CCC", "imphash": "DDD"}
    assert ecs["user"] == {"name": "IEUser", "domain": "IEWIN7"}

    assert event.timestamp_ms == 1556380645868
    assert event.id == event_id_for(event.raw, event.timestamp_ms)
    assert event.origin.record_id == 6575  # filled from System.EventRecordID
    assert event.host_name == "IEWIN7"


def test_every_ecs_leaf_is_in_fields_under_its_dotted_name() -> None:
    event = normalise(evtx_record(body={"EventData": dict(SYSMON_PROCESS)}))

    def leaves(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in doc.items():
            if isinstance(value, dict):
                out.update(leaves(value, f"{prefix}{key}."))
            else:
                out[f"{prefix}{key}"] = value
        return out

    expected = leaves(event.ecs)
    assert {name: event.fields[name] for name in expected} == expected


def test_event_id_with_qualifiers_is_read_from_text() -> None:
    record = evtx_record({"#attributes": {"Qualifiers": 16384}, "#text": 7036}, provider="Service Control Manager",
                         channel="System", body={"EventData": {"param1": "Windows Update", "param2": "running"}})
    event = normalise(record)
    assert event.fields["EventID"] == 7036
    assert event.fields["param1"] == "Windows Update"
    assert event.ecs["event"]["dataset"] == "windows.system"
    assert event.ecs["event"]["module"] == "windows"


@pytest.mark.parametrize(
    ("event_data", "expected"),
    [
        (
            {"Data": [{"#attributes": {"Name": "TargetUserName"}, "#text": "bob"},
                      {"#attributes": {"Name": "LogonType"}, "#text": "3"}]},
            {"TargetUserName": "bob", "LogonType": "3"},
        ),
        (
            {"Data": [{"@Name": "TargetUserName", "#text": "bob"}, {"@Name": "IpAddress", "#text": "10.0.0.5"}]},
            {"TargetUserName": "bob", "IpAddress": "10.0.0.5"},
        ),
        ({"Data": {"#text": ["sa", " Reason: bad password", " [CLIENT: 10.0.2.17]"]}, "Binary": "1848"},
         {"Data": ["sa", " Reason: bad password", " [CLIENT: 10.0.2.17]"], "Binary": "1848"}),
        ({"Data": {"#attributes": {"Name": "ScriptBlockText"}, "#text": "whoami"}}, {"ScriptBlockText": "whoami"}),
        ({"Data": ["first", "second"]}, {"Data": ["first", "second"]}),
        ({"Data": "only"}, {"Data": "only"}),
        ({"#attributes": {"Name": "EVENT_X"}, "param1": "C:\\lsass.exe"}, {"param1": "C:\\lsass.exe"}),
        ({"Value": {"#text": "v"}, "Plain": 5}, {"Value": "v", "Plain": 5}),
        (None, {}),
    ],
    ids=["data-list-named", "data-list-xmltodict", "data-unnamed-text-list", "data-single-named",
         "data-list-unnamed", "data-scalar", "eventdata-attributes", "text-wrapped-value", "null"],
)
def test_event_data_shapes_become_bare_names(event_data: Any, expected: dict[str, Any]) -> None:
    event = normalise(evtx_record(4625, provider="Microsoft-Windows-Security-Auditing", channel="Security",
                                  body={"EventData": event_data}))
    for name, value in expected.items():
        assert event.fields[name] == value
    assert event.ecs["winlog"].get("event_data", {}) == expected
    assert "#attributes" not in event.fields
    assert not any(name.startswith("winlog.event_data.#") for name in event.fields)


def test_null_event_data_still_gives_an_event_with_system_fields() -> None:
    event = normalise(evtx_record(1155, provider="Microsoft-Windows-TerminalServices-RemoteConnectionManager",
                                  channel="Microsoft-Windows-TerminalServices-RemoteConnectionManager/Operational"))
    assert event.fields["EventID"] == 1155
    assert "event_data" not in event.ecs["winlog"]
    assert event.ecs["event"]["dataset"] == "windows.terminalservices_remoteconnectionmanager_operational"


def test_user_data_leaves_are_flattened_by_bare_name_and_system_wins_collisions() -> None:
    body = {"UserData": {"LogFileCleared": {
        "#attributes": {"xmlns": "http://manifests.microsoft.com/win/2004/08/windows/eventlog"},
        "SubjectUserSid": "S-1-5-21-1-2-3-1108",
        "SubjectUserName": "admin01",
        "SubjectDomainName": "EXAMPLE",
        "Channel": "Application",
    }}}
    event = normalise(evtx_record(1102, provider="Microsoft-Windows-Eventlog", channel="Security", body=body))
    assert event.fields["SubjectUserName"] == "admin01"
    assert event.fields["Channel"] == "Security"  # System.Channel, not the cleared log's name
    assert event.fields["winlog.user_data.Channel"] == "Application"
    assert event.ecs["user"] == {"name": "admin01", "domain": "EXAMPLE", "id": "S-1-5-21-1-2-3-1108"}
    assert "xmlns" not in event.fields


def test_processing_error_data_leaves_are_fields() -> None:
    body = {"ProcessingErrorData": {"ErrorCode": 15005, "DataItemName": "shellId", "EventPayload": "6800"}}
    event = normalise(evtx_record(91, provider="Microsoft-Windows-WinRM", channel="Microsoft-Windows-WinRM/Operational",
                                  body=body))
    assert (event.fields["ErrorCode"], event.fields["DataItemName"]) == (15005, "shellId")


SECURITY_4688 = {
    "SubjectUserSid": "S-1-5-18",
    "SubjectUserName": "PC01$",
    "SubjectDomainName": "EXAMPLE",
    "NewProcessId": "0x1a4",
    "NewProcessName": "C:\\Windows\\System32\\net.exe",
    "ProcessId": "0x9c4",
    "CommandLine": "net user backdoor P@ss /add",
    "ParentProcessName": "C:\\Windows\\System32\\cmd.exe",
    "TargetUserName": "-",
}


def test_security_4688_hex_pids_and_parent_process_id() -> None:
    event = normalise(evtx_record(4688, provider="Microsoft-Windows-Security-Auditing", channel="Security",
                                  body={"EventData": dict(SECURITY_4688)}))
    process = event.ecs["process"]
    assert process["pid"] == 0x1A4
    assert process["parent"]["pid"] == 0x9C4  # 4688's ProcessId is the creator, not the new process
    assert process["executable"] == "C:\\Windows\\System32\\net.exe"
    assert process["name"] == "net.exe"
    assert process["parent"]["executable"] == "C:\\Windows\\System32\\cmd.exe"
    assert process["command_line"] == "net user backdoor P@ss /add"
    assert event.fields["NewProcessId"] == "0x1a4"  # the native field keeps its text
    assert event.fields["process.pid"] == 420
    assert "target" not in event.ecs["user"]  # "-" is never mapped
    assert event.ecs["event"]["dataset"] == "windows.security"


def test_logon_event_maps_the_target_account_and_source_address() -> None:
    data = {"SubjectUserName": "-", "TargetUserName": "administrator", "TargetDomainName": "CORP",
            "TargetUserSid": "S-1-5-21-9-500", "IpAddress": "203.0.113.45", "IpPort": "51234",
            "WorkstationName": "KALI", "ProcessId": "0x0", "LogonType": "3"}
    event = normalise(evtx_record(4625, provider="Microsoft-Windows-Security-Auditing", channel="Security",
                                  body={"EventData": data}))
    assert event.ecs["user"] == {"name": "administrator", "domain": "CORP", "id": "S-1-5-21-9-500"}
    assert event.ecs["source"] == {"ip": "203.0.113.45", "port": 51234, "domain": "KALI"}
    assert event.ecs["event"]["outcome"] == "failure"
    assert "process" not in event.ecs  # pid 0x0 means no process


def test_sysmon_network_dns_file_and_registry_mappings() -> None:
    network = normalise(evtx_record(3, body={"EventData": {
        "Image": "C:\\p.exe", "Protocol": "tcp", "SourceIp": "10.0.0.2", "SourcePort": 50433,
        "DestinationIp": "198.51.100.23", "DestinationPort": 443, "DestinationHostname": "cdn.example.net"}}))
    assert network.ecs["destination"] == {"ip": "198.51.100.23", "port": 443, "domain": "cdn.example.net"}
    assert network.ecs["source"] == {"ip": "10.0.0.2", "port": 50433}
    assert network.ecs["network"] == {"transport": "tcp"}

    dns = normalise(evtx_record(22, body={"EventData": {"QueryName": "evil.example.org", "Image": "C:\\p.exe"}}))
    assert dns.fields["dns.question.name"] == "evil.example.org"
    assert dns.fields["network.protocol"] == "dns"

    created = normalise(evtx_record(11, body={"EventData": {"TargetFilename": "C:\\Temp\\a.exe"}}))
    assert (created.fields["file.path"], created.fields["file.name"]) == ("C:\\Temp\\a.exe", "a.exe")

    registry = normalise(evtx_record(13, body={"EventData": {"TargetObject": "HKLM\\Software\\Run\\x"}}))
    assert registry.fields["registry.path"] == "HKLM\\Software\\Run\\x"


def test_security_5156_protocol_number_becomes_transport() -> None:
    event = normalise(evtx_record(5156, provider="Microsoft-Windows-Security-Auditing", channel="Security",
                                  body={"EventData": {"Protocol": "6", "SourceAddress": "10.1.1.1",
                                                      "DestAddress": "10.1.1.2", "DestPort": "3389"}}))
    assert event.ecs["network"] == {"transport": "tcp"}
    assert event.ecs["destination"] == {"ip": "10.1.1.2", "port": 3389}


WINLOGBEAT = {
    "@timestamp": "2024-03-11T08:58:10.412Z",
    "event": {"code": "4625", "kind": "event", "module": "security", "outcome": "failure"},
    "host": {"name": "dc01.corp.example.com"},
    "winlog": {
        "channel": "Security",
        "computer_name": "dc01.corp.example.com",
        "event_id": "4625",
        "provider_name": "Microsoft-Windows-Security-Auditing",
        "record_id": "48210",
        "keywords": ["Audit Failure"],
        "process": {"pid": 684, "thread": {"id": 1516}},
        "event_data": {"TargetUserName": "administrator", "IpAddress": "203.0.113.45", "LogonType": "3"},
    },
}


def test_winlogbeat_record_keeps_its_ecs_and_gains_sigma_names() -> None:
    event = normalise(WINLOGBEAT, fmt="winlogbeat")
    fields = event.fields
    assert fields["EventID"] == 4625
    assert fields["Channel"] == "Security"
    assert fields["Provider_Name"] == "Microsoft-Windows-Security-Auditing"
    assert fields["Computer"] == "dc01.corp.example.com"
    assert fields["EventRecordID"] == 48210
    assert (fields["ProcessID"], fields["ThreadID"]) == (684, 1516)
    assert fields["Keywords"] == ["Audit Failure"]  # lists stay lists
    assert fields["TargetUserName"] == "administrator"
    assert fields["winlog.event_data.IpAddress"] == "203.0.113.45"
    assert event.ecs["event"]["module"] == "security"  # the record's own values win
    assert event.ecs["event"]["dataset"] == "windows.security"  # missing ones are added
    assert event.ecs["source"]["ip"] == "203.0.113.45"
    assert event.timestamp_ms == 1710147490412
    assert event.origin.record_id == 48210
    assert WINLOGBEAT["event"] == {"code": "4625", "kind": "event", "module": "security", "outcome": "failure"}


def test_winlogbeat_dotted_keys_give_the_same_event_as_nested_keys() -> None:
    dotted = {
        "@timestamp": WINLOGBEAT["@timestamp"],
        "event.code": "4625",
        "event.kind": "event",
        "event.module": "security",
        "event.outcome": "failure",
        "host.name": "dc01.corp.example.com",
        **{f"winlog.{key}": value for key, value in WINLOGBEAT["winlog"].items()},
    }
    assert windows_shape(dotted) == "winlogbeat"
    nested_event = normalise(WINLOGBEAT, fmt="winlogbeat")
    dotted_event = normalise(dotted, fmt="winlogbeat")
    assert dotted_event.fields == nested_event.fields
    assert dotted_event.ecs == nested_event.ecs


OTRF = {
    "SourceName": "Microsoft-Windows-Sysmon",
    "ProviderGuid": "{5770385f-c22a-43e0-bf4c-06f5698ffbd9}",
    "Level": "4",
    "Keywords": "0x8000000000000000",
    "Channel": "Microsoft-Windows-Sysmon/Operational",
    "Hostname": "WORKSTATION5.theshire.local",
    "TimeCreated": "2020-10-22T02:58:08.123Z",
    "@timestamp": "2020-10-22T02:58:08.999Z",
    "EventID": 1,
    "Message": "Process Create: ...",
    "Task": "1",
    "ProcessId": "3108",
    "Image": "C:\\Windows\\System32\\mshta.exe",
    "CommandLine": "mshta vbscript:Execute(\"...\")",
    "ParentProcessId": "0x1a4",
    "User": "THESHIRE\\pgustavo",
}


def test_otrf_flat_record_keeps_its_fields_as_given() -> None:
    event = normalise(OTRF, fmt="json")
    fields = event.fields
    assert fields["Computer"] == "WORKSTATION5.theshire.local"
    assert fields["Hostname"] == "WORKSTATION5.theshire.local"
    assert fields["Provider_Name"] == "Microsoft-Windows-Sysmon"
    assert fields["EventID"] == 1
    assert fields["ProcessId"] == "3108"  # as given
    assert fields["Level"] == "4"
    assert fields["winlog.event_data.Image"] == "C:\\Windows\\System32\\mshta.exe"
    assert "Hostname" not in event.ecs["winlog"]["event_data"]
    assert event.ecs["process"]["pid"] == 3108
    assert event.ecs["process"]["parent"]["pid"] == 420
    assert event.ecs["user"] == {"name": "pgustavo", "domain": "THESHIRE"}
    assert event.ecs["event"]["dataset"] == "windows.sysmon_operational"
    assert event.timestamp_ms == 1603335488123  # TimeCreated before @timestamp


def test_sentinel_security_event_with_xml_event_data() -> None:
    record = {
        "TimeGenerated": "2022-05-13T08:54:05.21Z",
        "Computer": "WORKSTATION5",
        "EventSourceName": "Microsoft-Windows-Security-Auditing",
        "Channel": "Security",
        "EventID": 5156,
        "EventData": '<EventData xmlns="x">\r\n  <Data Name="Application">C:\\a&amp;b.exe</Data>\r\n'
                     '  <Data Name="DestPort">443</Data>\r\n  <Data Name="Empty" />\r\n</EventData>',
    }
    event = normalise(record, fmt="json")
    assert event.fields["Application"] == "C:\\a&b.exe"
    assert event.fields["DestPort"] == "443"
    assert event.fields["Empty"] == ""
    assert event.fields["Provider_Name"] == "Microsoft-Windows-Security-Auditing"
    assert event.ecs["destination"] == {"port": 443}
    assert event.timestamp_ms == 1652432045210


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (evtx_record(None), "Event.System.EventID is missing"),
        (evtx_record("four"), "Event.System.EventID is not a number: 'four'"),
        ({"winlog": {"channel": "Security"}}, "winlog.event_id is missing"),
        ({"EventID": "x", "Channel": "Security"}, "EventID is not a number: 'x'"),
        ({"message": "hello"}, "not a Windows event record"),
    ],
    ids=["evtx-no-eventid", "evtx-bad-eventid", "winlogbeat-no-eventid", "flat-bad-eventid", "not-windows"],
)
def test_records_without_a_usable_event_id_raise_normalisation_error(record: dict[str, Any], message: str) -> None:
    with pytest.raises(NormalisationError) as caught:
        normalise(record)
    assert caught.value.reason.startswith(message)
    assert caught.value.path == "test.evtx"
    assert str(caught.value).startswith("test.evtx: ")


@pytest.mark.parametrize(
    ("record", "shape"),
    [
        (evtx_record(), "evtx"),
        (WINLOGBEAT, "winlogbeat"),
        (OTRF, "flat"),
        ({"EventID": 4624, "Provider": {"Name": "x"}}, "flat"),
        ({"EventID": 4624}, None),
        ({"Event": {"Data": 1}}, None),
        ({"event": {"code": "4624"}}, None),
    ],
    ids=["evtx", "winlogbeat", "otrf", "provider-object", "eventid-alone", "event-without-system", "ecs-only"],
)
def test_windows_shape(record: dict[str, Any], shape: str | None) -> None:
    assert windows_shape(record) == shape


def test_record_is_not_modified_and_same_raw_gives_same_id() -> None:
    record = evtx_record(body={"EventData": dict(SYSMON_PROCESS)})
    before = orjson.dumps(record)
    first = normalise(record)
    second = normalise(orjson.loads(before))
    assert orjson.dumps(record) == before
    assert first.id == second.id
    assert first.fields == second.fields


SAMPLE_VALUES = {"keep": "C:\\x\\y.exe", "basename": "C:\\x\\y.exe", "pid": "0x1a4", "port": "443",
                 "account": "DOM\\user", "hashes": "SHA256=AB12", "transport": "6"}


@pytest.mark.parametrize("scope", [scope for scope in ECS_FIELD_MAP if isinstance(scope, tuple)], ids=str)
def test_every_scoped_mapping_applies(scope: tuple[str, int]) -> None:
    provider, event_id = scope
    entries = ECS_FIELD_MAP[scope]
    data = {source: SAMPLE_VALUES[converter] for source, _, converter in entries}
    event = normalise(evtx_record(event_id, provider=provider, channel="Security", body={"EventData": data}))
    missing = [target for _, target, _ in entries
               if target not in event.fields and not any(name.startswith(f"{target}.") for name in event.fields)]
    assert not missing
