"""JSON log files: NDJSON, arrays, concatenated pretty-printed objects; bad records become Rejected."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from collectors.json_reader import normalise_record, read_json, read_json_text
from correlator.model import Event, EventOrigin, Rejected, event_id_for
from tests.collectors.conftest import WriteFile

SYSTEM = {
    "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},
    "EventID": 1,
    "EventRecordID": 41,
    "Channel": "Microsoft-Windows-Sysmon/Operational",
    "Computer": "WS01",
    "TimeCreated": {"#attributes": {"SystemTime": "2024-03-11T09:14:02Z"}},
}
EVTX_JSON = {"Event": {"System": SYSTEM,
                       "EventData": {"Image": "C:\\Windows\\System32\\whoami.exe", "CommandLine": "whoami /all"}}}
GENERIC = {"@timestamp": "2024-03-11T10:00:00Z", "event.module": "system", "message": "session opened"}
FLAT_WINDOWS = {"EventID": 4624, "Channel": "Security", "SourceName": "Microsoft-Windows-Security-Auditing",
                "Hostname": "WS01", "TimeCreated": "2024-03-11T10:00:02Z", "TargetUserName": "alice"}


def line(record: Any) -> str:
    return orjson.dumps(record).decode()


def split(items: list[Event | Rejected]) -> tuple[list[Event], list[Rejected]]:
    return [i for i in items if isinstance(i, Event)], [i for i in items if isinstance(i, Rejected)]


def test_ndjson_lines_with_blank_lines_keep_line_numbers_and_raw_text(write: WriteFile) -> None:
    text = f"{line(GENERIC)}\n\n   \n{line(FLAT_WINDOWS)}\r\n{line(EVTX_JSON)}\n"
    events, rejected = split(list(read_json(write("a.json", text), "json")))
    assert rejected == []
    assert [e.origin.offset for e in events] == [1, 4, 5]
    assert [e.raw for e in events] == [line(GENERIC), line(FLAT_WINDOWS), line(EVTX_JSON)]
    assert [e.id for e in events] == [event_id_for(e.raw, e.timestamp_ms) for e in events]
    assert events[0].fields["event.module"] == "system"  # generic
    assert events[1].fields["Computer"] == "WS01"  # Windows flat, picked per record
    assert events[2].origin.record_id == 41  # evtx shape: the record's EventRecordID
    assert {e.origin.format for e in events} == {"json"}
    assert {e.origin.path for e in events} == {str(write("a.json", text))}


def test_malformed_lines_are_rejected_with_line_number_and_reading_goes_on(write: WriteFile) -> None:
    syslog = "Mar 11 10:00:03 web01 sshd[2211]: text"
    text = "\n".join([line(GENERIC), '{"a": 1', "[1, 2]", syslog, '"a string"', line(GENERIC)])
    path = write("bad.json", text + "\n")
    events, rejected = split(list(read_json(path, "json")))
    assert [e.origin.offset for e in events] == [1, 6]
    assert [(r.origin.offset, r.reason) for r in rejected] == [
        (2, "invalid JSON on line 2, column 8: unexpected end of data"),
        (3, "expected a JSON object, got an array"),
        (4, "invalid JSON on line 4, column 1: unexpected character, expected a JSON value"),
        (5, "expected a JSON object, got a string"),
    ]
    assert [r.raw for r in rejected] == ['{"a": 1', "[1, 2]", syslog, '"a string"']
    assert {r.origin.path for r in rejected} == {str(path)}
    assert {r.stage for r in rejected} == {"read"}


def test_invalid_utf8_line_is_rejected(write: WriteFile) -> None:
    path = write("latin1.json", line(GENERIC).encode() + b'\n{"user": "j\xe9r\xf4me"}\n' + line(GENERIC).encode())
    events, rejected = split(list(read_json(path, "json")))
    assert len(events) == 2
    assert len(rejected) == 1
    assert rejected[0].origin.offset == 2
    assert rejected[0].reason.startswith("line 2 is not UTF-8: invalid continuation byte at column")


def test_utf8_bom_is_ignored(write: WriteFile) -> None:
    path = write("bom.json", b"\xef\xbb\xbf" + line(GENERIC).encode() + b"\n")
    (event,) = read_json(path, "json")
    assert isinstance(event, Event)
    assert event.raw == line(GENERIC)


def test_utf16_file_with_bom_is_read(write: WriteFile) -> None:
    path = write("utf16.json", ("\ufeff" + line(GENERIC) + "\r\n" + line(FLAT_WINDOWS) + "\r\n").encode("utf-16-le"))
    events, rejected = split(list(read_json(path, "json")))
    assert rejected == []
    assert [e.origin.offset for e in events] == [1, 2]
    assert events[1].fields["TargetUserName"] == "alice"


def test_json_array_of_pretty_objects(write: WriteFile) -> None:
    text = json.dumps([GENERIC, FLAT_WINDOWS, 7], indent=2)
    events, rejected = split(list(read_json(write("array.json", text), "json")))
    assert len(events) == 2
    assert events[0].origin.offset == 2
    assert events[1].origin.offset == text.splitlines().index("  {", 2) + 1
    assert json.loads(events[1].raw) == FLAT_WINDOWS
    assert [r.reason for r in rejected] == ["expected a JSON object, got a number"]


def test_one_line_json_array(write: WriteFile) -> None:
    events, rejected = split(list(read_json(write("array.json", line([GENERIC, GENERIC])), "json")))
    assert rejected == []
    assert [e.raw for e in events] == [line(GENERIC)] * 2
    assert events[0].id == events[1].id


def test_unclosed_array_is_reported(write: WriteFile) -> None:
    text = "[\n" + line(GENERIC) + ",\n"
    events, rejected = split(list(read_json(write("open.json", text), "json")))
    assert len(events) == 1
    assert [r.reason for r in rejected] == ["JSON array is not closed at end of file"]


def test_concatenated_pretty_objects_with_evtx_dump_record_lines(write: WriteFile) -> None:
    pretty = json.dumps(EVTX_JSON, indent=2)
    text = f"Record 1\n{pretty}\nRecord 2\n{pretty.replace('41', '42')}\n"
    events, rejected = split(list(read_json(write("dump.json", text), "evtx-json")))
    assert rejected == []
    assert [e.origin.record_id for e in events] == [41, 42]
    assert [e.origin.offset for e in events] == [2, 3 + pretty.count("\n") + 1]
    assert events[0].raw == pretty
    assert events[0].fields["CommandLine"] == "whoami /all"
    assert events[0].origin.format == "evtx-json"


def test_broken_pretty_object_is_rejected_and_the_next_one_is_read(write: WriteFile) -> None:
    good = json.dumps(GENERIC, indent=2)
    broken = '{\n  "a": 1,\n  "b": \n'
    text = f"{good}\n{broken}{good}\n"
    items = list(read_json(write("pretty.json", text), "json"))
    events, rejected = split(items)
    assert [e.origin.offset for e in events] == [1, good.count("\n") + 5]
    assert len(rejected) == 1
    assert rejected[0].origin.offset == good.count("\n") + 2
    assert rejected[0].reason.startswith("invalid JSON at line")
    assert rejected[0].raw == broken.rstrip()


def test_windows_formats_reject_non_windows_records_at_normalise_stage(write: WriteFile) -> None:
    path = write("wlb.json", line(EVTX_JSON) + "\n" + line(GENERIC) + "\n")
    events, rejected = split(list(read_json(path, "evtx-json")))
    assert len(events) == 1
    assert [(r.origin.offset, r.stage) for r in rejected] == [(2, "normalise")]
    assert rejected[0].reason.startswith("not a Windows event record")
    assert rejected[0].raw == line(GENERIC)


def test_read_json_text_reads_ndjson_too() -> None:
    items = list(read_json_text(f"{line(GENERIC)}\n{line(FLAT_WINDOWS)}\n", "stream"))
    assert [type(i).__name__ for i in items] == ["Event", "Event"]
    assert [i.origin.offset for i in items] == [1, 2]


def test_empty_and_missing_files(write: WriteFile, tmp_path: Path) -> None:
    assert list(read_json(write("empty.json", "\n \n"), "json")) == []
    (missing,) = read_json(tmp_path / "nope.json", "json")
    assert isinstance(missing, Rejected)
    assert missing.reason == "cannot read file: No such file or directory"
    assert missing.origin.path == str(tmp_path / "nope.json")


@pytest.mark.parametrize(
    ("record", "fmt", "expected_field"),
    [
        (GENERIC, "json", ("event.module", "system")),
        (FLAT_WINDOWS, "json", ("Provider_Name", "Microsoft-Windows-Security-Auditing")),
        (EVTX_JSON, "json", ("EventID", 1)),
    ],
    ids=["generic", "flat-windows", "evtx-shape"],
)
def test_normalise_record_picks_windows_or_generic(record: dict[str, Any], fmt: str,
                                                   expected_field: tuple[str, Any]) -> None:
    event = normalise_record(record, line(record), EventOrigin(path="x", offset=1, format=fmt))
    name, value = expected_field
    assert event.fields[name] == value


@pytest.mark.corpus
def test_otrf_corpus_reads_every_line(shared_path: Callable[[str], Path]) -> None:
    root = shared_path("otrf/windows-host")
    files = sorted(root.glob("*/*.json"))
    assert files, f"no OTRF JSON under {root}"
    problems: list[str] = []
    total = 0
    for path in files:
        lines = [n for n, text in enumerate(path.read_bytes().splitlines(), 1) if text.strip()]
        first = list(read_json(path, "json"))
        second = list(read_json(path, "json"))
        total += len(first)
        if [i.origin.offset for i in first] != lines:
            problems.append(f"{path.name}: records do not match the non-blank lines")
        problems.extend(f"{r.describe()} ({r.stage})" for r in first if isinstance(r, Rejected))
        problems.extend(
            f"{event.origin.describe()}: not normalised as a Windows event"
            for event in first
            if isinstance(event, Event) and "EventID" not in event.fields
        )
        if [i.id for i in first if isinstance(i, Event)] != [i.id for i in second if isinstance(i, Event)]:
            problems.append(f"{path.name}: event ids differ between two reads")
    assert total > 0
    assert not problems, f"{len(problems)} problems in {total} OTRF records:\n" + "\n".join(problems[:50])
