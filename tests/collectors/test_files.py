"""Format detection, directory walking and `read_path` over the bundled samples."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from collectors.errors import EmptySourceError, SourceReadError, UnknownFormatError, UnsupportedFormatError
from collectors.files import FORMATS, detect_format, iter_files, read_path
from correlator.model import Event, Rejected
from tests.collectors.conftest import WriteFile

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLES = REPO_ROOT / "samples"


EVTX_JSON = {"Event": {"System": {"EventID": 4624, "Channel": "Security"}, "EventData": {"LogonType": 3}}}
WINLOGBEAT = {"@timestamp": "2024-03-11T08:58:10Z", "winlog": {"event_id": "4625", "channel": "Security"}}
GENERIC = {"@timestamp": "2024-03-11T10:00:00Z", "message": "hello"}


def line(record: object) -> str:
    return orjson.dumps(record).decode()


def test_formats_are_the_public_names() -> None:
    assert FORMATS[:4] == ("evtx", "evtx-json", "winlogbeat", "json")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"ElfFile\x00" + b"\x00" * 200, "evtx"),
        (line(EVTX_JSON) + "\n", "evtx-json"),
        (json.dumps(EVTX_JSON, indent=2), "evtx-json"),
        ("Record 1\n" + json.dumps(EVTX_JSON, indent=2), "evtx-json"),
        (line(WINLOGBEAT), "winlogbeat"),
        (line({"winlog.event_id": "4625", "@timestamp": "2024-03-11T08:58:10Z"}), "winlogbeat"),
        (json.dumps([WINLOGBEAT, GENERIC], indent=1), "winlogbeat"),
        (line(GENERIC), "json"),
        (line({"EventID": 1, "Channel": "Microsoft-Windows-Sysmon/Operational", "Hostname": "WS01"}), "json"),
        ('{"broken": \n' + line(EVTX_JSON), "evtx-json"),
        ('{"broken": \n{"also broken\n', "json"),
        ("\ufeff" + line(GENERIC), "json"),
        (("\ufeff" + line(WINLOGBEAT)).encode("utf-16-le"), "winlogbeat"),
    ],
    ids=["evtx-magic", "evtx-json-ndjson", "evtx-json-pretty", "evtx-dump-record-lines", "winlogbeat",
         "winlogbeat-dotted", "array", "generic", "otrf-flat", "first-line-broken", "json-like-but-broken",
         "utf8-bom", "utf16"],
)
def test_detect_format(write: WriteFile, content: str | bytes, expected: str) -> None:
    assert detect_format(write("log.json", content)) == expected


def test_detect_format_reads_past_the_peek_for_a_huge_first_record(write: WriteFile) -> None:
    record = {"Event": {"System": {"EventID": 1}, "EventData": {"Blob": "x" * 200_000}}}
    assert detect_format(write("big.json", json.dumps(record, indent=2))) == "evtx-json"


def test_detect_format_rejects_text_with_path_and_reason(write: WriteFile) -> None:
    path = write("Security.evtx", "Dear team, the quarterly report is attached.\n")
    with pytest.raises(UnknownFormatError) as caught:
        detect_format(path)
    assert caught.value.path == str(path)
    assert caught.value.reason == (
        "not a known log format (EVTX, JSON, pcap, suricata-eve, zeek, auditd, windows-firewall, iis, squid, "
        "web-access, syslog); "
        "the file starts with 'Dear team, the quarterly report is attac'"
    )
    assert str(caught.value).startswith(f"{path}: not a known log format")


@pytest.mark.parametrize(("name", "content", "fmt"), [
    ("auth.log", "Mar 11 10:00:03 web01 sshd[2211]: Failed password for root from 203.0.113.9 port 22 ssh2\n",
     "syslog"),
    ("access.log", '203.0.113.9 - - [20/Nov/2026:08:00:00 +0700] "GET /index.php?id=1 HTTP/1.1" 200 512 "-" '
     '"curl/8.0"\n', "web-access"),
    ("audit.log", 'type=USER_LOGIN msg=audit(1763600000.123:42): pid=1 uid=0 auid=1000 ses=1 msg=\'op=login '
     'acct="root" exe="/usr/sbin/sshd" hostname=? addr=203.0.113.9 terminal=ssh res=failed\'\n', "auditd"),
    ("eve.json", '{"timestamp":"2026-11-20T01:00:00.000000+0000","event_type":"dns","src_ip":"10.0.0.5",'
     '"dest_ip":"10.0.0.53","proto":"UDP","dns":{"type":"query","rrname":"x.evil.test"}}\n', "suricata-eve"),
    ("dns.log", "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tdns\n",
     "zeek"),
    ("conn.json", '{"ts":1763600000.5,"uid":"CAbc","id.orig_h":"10.0.0.5","id.orig_p":5000,"id.resp_h":'
     '"10.0.0.53","id.resp_p":53,"proto":"udp"}\n', "zeek"),
], ids=["syslog", "web-access", "auditd", "suricata", "zeek-tsv", "zeek-json"])
def test_detect_format_tells_the_agent_and_sensor_formats_apart(write: WriteFile, name: str, content: str,
                                                                 fmt: str) -> None:
    assert detect_format(write(name, content)) == fmt


def test_directory_walks_pick_up_rotated_syslog_files(write: WriteFile, tmp_path: Path) -> None:
    for name in ("auth.log", "auth.log.1", "secure", "messages", "notes.txt", "access.log"):
        write(f"var/log/{name}", "x\n")
    assert {p.name for p in iter_files([tmp_path / "var"])} == {"auth.log", "auth.log.1", "secure", "messages",
                                                                 "access.log"}


def test_detect_format_on_empty_and_missing_files(write: WriteFile, tmp_path: Path) -> None:
    with pytest.raises(EmptySourceError, match="file is empty"):
        detect_format(write("empty.json", " \n\n"))
    with pytest.raises(SourceReadError, match="cannot read file: No such file or directory"):
        detect_format(tmp_path / "missing.json")


def test_iter_files_walks_sorted_and_skips_hidden_and_unknown_suffixes(write: WriteFile, tmp_path: Path) -> None:
    for name in ["b/2.json", "b/1.evtx", "a.ndjson", "c/d/e.jsonl", ".hidden.json", ".git/x.json",
                 "b/.cache/y.json", "README.md", "c/notes.txt", "B.JSON"]:
        write(name, "{}")
    explicit = write("elsewhere/.dotfile.log", "{}")
    found = list(iter_files([tmp_path, explicit]))
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "B.JSON", "a.ndjson", "b/1.evtx", "b/2.json", "c/d/e.jsonl",
        "elsewhere/.dotfile.log",  # named explicitly: always read
    ]
    everything = {p.name for p in iter_files([tmp_path], suffixes=None)}
    assert {"README.md", "notes.txt"} <= everything
    assert ".hidden.json" not in everything


def test_iter_files_survives_a_symlink_loop(write: WriteFile, tmp_path: Path) -> None:
    write("logs/a.json", "{}")
    (tmp_path / "logs" / "again").symlink_to(tmp_path / "logs")
    assert [p.name for p in iter_files([tmp_path / "logs"])] == ["a.json"]


def test_iter_files_yields_missing_paths_for_read_path_to_report(tmp_path: Path) -> None:
    missing = tmp_path / "nope.evtx"
    assert list(iter_files([missing])) == [missing]
    (rejected,) = read_path(missing)
    assert isinstance(rejected, Rejected)
    assert rejected.reason == "cannot read file: No such file or directory"


def test_read_path_rejects_unknown_format_names_at_call_time(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFormatError, match="unknown format 'xml'; expected one of evtx, evtx-json"):
        read_path(tmp_path / "x.json", "xml")


def test_non_evtx_file_with_evtx_extension_is_one_rejected(write: WriteFile) -> None:
    path = write("Security.evtx", "this is not an event log\n" * 50)
    (rejected,) = read_path(path)
    assert isinstance(rejected, Rejected)
    assert rejected.reason.startswith("not a known log format (EVTX, JSON, ")
    assert rejected.origin.path == str(path)
    (forced,) = read_path(path, "evtx")
    assert isinstance(forced, Rejected)
    assert forced.reason.startswith("not a readable EVTX file: ")


def test_read_path_on_directory_and_empty_file(write: WriteFile, tmp_path: Path) -> None:
    (rejected,) = read_path(tmp_path)
    assert isinstance(rejected, Rejected)
    assert rejected.reason == "is a directory, not a log file (walk it with iter_files)"
    assert list(read_path(write("empty.json", ""))) == []


def test_read_path_with_explicit_format_labels_the_origin(write: WriteFile) -> None:
    path = write("x.json", line(WINLOGBEAT) + "\n")
    (detected,) = read_path(path)
    (forced,) = read_path(path, "json")
    assert isinstance(detected, Event)
    assert isinstance(forced, Event)
    assert (detected.origin.format, forced.origin.format) == ("winlogbeat", "json")
    assert detected.fields == forced.fields


def test_broken_array_element_is_skipped_at_its_indentation(write: WriteFile) -> None:
    text = json.dumps([GENERIC, {"a": {"b": 1}}, GENERIC], indent=2).replace('"b": 1', '"b": ')
    items = list(read_path(write("array.json", text)))
    assert [type(i).__name__ for i in items] == ["Event", "Rejected", "Event"]
    assert [i.origin.offset for i in items] == [2, 6, 11]


@pytest.mark.parametrize(
    ("name", "fmt", "events", "rejected_lines"),
    [
        ("windows/sysmon_sample.json", "evtx-json", 8, []),
        ("windows/security_sample.json", "winlogbeat", 7, []),
        ("linux/auth_sample.json", "json", 5, []),
        ("broken/mixed.json", "json", 3, [2, 4]),
    ],
    ids=["sysmon", "security", "linux-auth", "broken"],
)
def test_samples(name: str, fmt: str, events: int, rejected_lines: list[int]) -> None:
    path = SAMPLES / name
    assert detect_format(path) == fmt
    items = list(read_path(path))
    assert sum(isinstance(i, Event) for i in items) == events
    assert [i.origin.offset for i in items if isinstance(i, Rejected)] == rejected_lines
    assert all(i.timestamp_ms > 1_700_000_000_000 for i in items if isinstance(i, Event))


def test_sysmon_sample_content_is_what_rules_expect() -> None:
    events = [i for i in read_path(SAMPLES / "windows/sysmon_sample.json") if isinstance(i, Event)]
    by_id: dict[int, list[Event]] = {}
    for event in events:
        by_id.setdefault(event.fields["EventID"], []).append(event)
    assert sorted(by_id) == [1, 3, 11, 13, 22]
    command_lines = [e.fields["CommandLine"] for e in by_id[1]]
    assert any(c.startswith("C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe -nop -w hidden -enc ")
               for c in command_lines)
    powershell = next(e for e in by_id[1] if e.fields["Image"].endswith("powershell.exe"))
    assert powershell.fields["ParentImage"] == "C:\\Windows\\System32\\cmd.exe"
    assert "whoami /all" in command_lines
    assert any(c.endswith("notepad.exe\" C:\\Users\\alice\\Documents\\todo.txt") for c in command_lines)
    assert by_id[3][0].fields["destination.port"] == 443
    assert by_id[11][0].fields["file.path"].endswith("svchost_update.exe")
    assert len({e.id for e in events}) == len(events)


def test_security_sample_tells_the_brute_force_story() -> None:
    events = [i for i in read_path(SAMPLES / "windows/security_sample.json") if isinstance(i, Event)]
    assert [e.fields["EventID"] for e in events] == [4625, 4625, 4625, 4625, 4624, 4688, 4720]
    assert {e.fields["source.ip"] for e in events[:5]} == {"203.0.113.45"}
    process = events[5]
    assert process.fields["CommandLine"] == "net user backdoor P@ss /add"
    assert process.fields["process.pid"] == 0x1A4
    assert events[6].fields["user.target.name"] == "backdoor"
    assert [e.timestamp_ms for e in events] == sorted(e.timestamp_ms for e in events)


def test_linux_sample_is_generic_ecs() -> None:
    events = [i for i in read_path(SAMPLES / "linux/auth_sample.json") if isinstance(i, Event)]
    assert {e.ecs["event"]["dataset"] for e in events} == {"system.auth"}
    assert [e.fields["event.outcome"] for e in events] == ["failure"] * 4 + ["success"]
    assert events[-1].fields["message"].startswith("Accepted publickey for deploy")
    assert "EventID" not in events[0].fields
