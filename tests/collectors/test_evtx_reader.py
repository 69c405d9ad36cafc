"""EVTX reading: record ids from System.EventRecordID, corrupt data reported and skipped, the whole corpus."""

from __future__ import annotations

import shutil
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import evtx
import orjson
import pytest

from collectors import evtx_reader
from collectors.evtx_reader import MAX_CONSECUTIVE_ERRORS, read_evtx
from correlator.model import Event, Rejected, event_id_for

CHUNK_SIZE = 65536
FILE_HEADER_SIZE = 4096


def rendered(record_id: int | None, event_id: int = 1, counter: int = 1) -> dict[str, Any]:
    """What the parser yields for one record: its counter, a timestamp and the record as JSON text."""
    system: dict[str, Any] = {"Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},
                              "EventID": event_id, "Channel": "Microsoft-Windows-Sysmon/Operational",
                              "Computer": "WS01"}
    if record_id is not None:
        system["EventRecordID"] = record_id
    data = orjson.dumps({"Event": {"System": system, "EventData": {"Image": "C:\\a.exe"}}}).decode()
    return {"event_record_id": counter, "timestamp": "2024-03-11 09:14:02.117 UTC", "data": data}


class ResumingIterator:
    """Like the real parser's iterator: raising from `__next__` does not end it."""

    def __init__(self, items: list[Any]) -> None:
        self.items = list(items)

    def __iter__(self) -> ResumingIterator:
        return self

    def __next__(self) -> Any:
        if not self.items:
            raise StopIteration
        item = self.items.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch, native_setting: Callable[[bool], None]) -> Callable[[list[Any]], None]:
    """Replaces `evtx.PyEvtxParser` with one that yields the given records and raises the given errors (and
    keeps the native reader out of the way: these tests script the package's parser)."""
    native_setting(False)

    def install(items: list[Any]) -> None:
        class ScriptedParser:
            def __init__(self, path: str, **_: Any) -> None:
                self.path = path

            def records_json(self) -> ResumingIterator:
                return ResumingIterator(items)

        monkeypatch.setattr(evtx_reader.evtx, "PyEvtxParser", ScriptedParser)

    return install


def test_record_id_comes_from_system_not_the_parser_counter(scripted: Callable[[list[Any]], None]) -> None:
    scripted([rendered(452811, counter=1), rendered(None, counter=2)])
    first, second = read_evtx(Path("sec.evtx"))
    assert isinstance(first, Event)
    assert isinstance(second, Event)
    assert first.origin.record_id == 452811
    assert second.origin.record_id == 2  # no System.EventRecordID: the parser's counter
    assert first.origin.format == "evtx"
    assert first.origin.path == "sec.evtx"
    assert first.raw == rendered(452811)["data"]
    assert first.id == event_id_for(first.raw, first.timestamp_ms)


def test_corrupt_chunk_is_rejected_and_reading_goes_on(scripted: Callable[[list[Any]], None]) -> None:
    scripted([rendered(10), rendered(11), RuntimeError("Failed to parse chunk number 1: bad magic"), rendered(95)])
    items = list(read_evtx(Path("x.evtx")))
    assert [type(i).__name__ for i in items] == ["Event", "Event", "Rejected", "Event"]
    rejected = items[2]
    assert isinstance(rejected, Rejected)
    assert rejected.reason == "corrupt EVTX data after EventRecordID 11: Failed to parse chunk number 1: bad magic"
    assert rejected.origin.path == "x.evtx"
    assert rejected.stage == "read"
    assert items[3].origin.record_id == 95


def test_error_before_first_record_says_so(scripted: Callable[[list[Any]], None]) -> None:
    scripted([RuntimeError("Failed to parse chunk containing record IDs 1..7")])
    (rejected,) = read_evtx(Path("x.evtx"))
    assert isinstance(rejected, Rejected)
    assert rejected.reason.startswith("corrupt EVTX data before the first record: ")


def test_a_parser_that_keeps_failing_is_given_up(scripted: Callable[[list[Any]], None]) -> None:
    scripted([rendered(1), *[RuntimeError("broken")] * (MAX_CONSECUTIVE_ERRORS + 10), rendered(2)])
    items = list(read_evtx(Path("x.evtx")))
    assert isinstance(items[0], Event)
    assert len(items) == 1 + MAX_CONSECUTIVE_ERRORS + 1
    assert items[-1].reason == (  # type: ignore[union-attr]
        f"gave up on the rest of the file after EventRecordID 1: {MAX_CONSECUTIVE_ERRORS} errors in a row"
    )


def test_io_error_mid_file_stops_that_file(scripted: Callable[[list[Any]], None]) -> None:
    scripted([rendered(7), OSError("device not ready"), rendered(8)])
    items = list(read_evtx(Path("x.evtx")))
    assert [type(i).__name__ for i in items] == ["Event", "Rejected"]
    assert items[1].reason == "reading stopped after EventRecordID 7: device not ready"  # type: ignore[union-attr]


def test_records_that_cannot_be_normalised_are_rejected(scripted: Callable[[list[Any]], None]) -> None:
    no_event_id = rendered(5)
    no_event_id["data"] = no_event_id["data"].replace('"EventID":1,', "")
    bad_json = {"event_record_id": 6, "timestamp": "", "data": '{"Event": '}
    scripted([no_event_id, bad_json, rendered(7)])
    items = list(read_evtx(Path("x.evtx")))
    assert [type(i).__name__ for i in items] == ["Rejected", "Rejected", "Event"]
    first, second = items[0], items[1]
    assert isinstance(first, Rejected)
    assert isinstance(second, Rejected)
    assert (first.stage, first.reason, first.origin.record_id) == ("normalise", "Event.System.EventID is missing", 5)
    assert first.raw == no_event_id["data"]
    assert second.reason.startswith("parser rendered invalid JSON: ")
    assert second.origin.record_id == 6


@pytest.mark.parametrize(
    "content",
    [b"this is a text file, not an event log\n" * 200, b"", b"ElfFile\x00" + b"\x00" * 100],
    ids=["text", "empty", "truncated-header"],
)
def test_file_that_is_not_evtx_gives_one_rejected(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "Security.evtx"
    path.write_bytes(content)
    (rejected,) = read_evtx(path)
    assert isinstance(rejected, Rejected)
    assert rejected.reason.startswith("not a readable EVTX file: ")
    assert rejected.origin.path == str(path)
    assert rejected.origin.format == "evtx"


def test_missing_file_gives_one_rejected(tmp_path: Path) -> None:
    (rejected,) = read_evtx(tmp_path / "gone.evtx")
    assert isinstance(rejected, Rejected)
    assert rejected.reason.startswith("not a readable EVTX file: ")


def _header_chunk_count(path: Path) -> int:
    return struct.unpack_from("<H", path.read_bytes(), 42)[0]


@pytest.mark.corpus
def test_real_file_with_a_corrupt_chunk(shared_path: Callable[[str], Path], tmp_path: Path) -> None:
    candidates = sorted(shared_path("evtx").rglob("*.evtx"), key=lambda p: (-_header_chunk_count(p), p.name))
    source = candidates[0]
    assert _header_chunk_count(source) >= 3, "the corpus has no EVTX file with three chunks"
    clean = [i for i in read_evtx(source) if isinstance(i, Event)]
    broken = tmp_path / "broken.evtx"
    shutil.copyfile(source, broken)
    with broken.open("r+b") as handle:  # wipe the second chunk's signature
        handle.seek(FILE_HEADER_SIZE + CHUNK_SIZE)
        handle.write(b"\x00" * 8)

    items = list(read_evtx(broken))
    rejected = [(n, i) for n, i in enumerate(items) if isinstance(i, Rejected)]
    events = [i for i in items if isinstance(i, Event)]
    assert len(rejected) == 1
    position, entry = rejected[0]
    assert entry.reason.startswith(f"corrupt EVTX data after EventRecordID {items[position - 1].origin.record_id}: ")
    assert 0 < len(events) < len(clean)
    assert {e.id for e in events} <= {e.id for e in clean}
    assert events[-1].id == clean[-1].id  # records after the broken chunk are still read


@pytest.mark.corpus
def test_evtx_corpus(shared_path: Callable[[str], Path]) -> None:
    """Every record of every shared .evtx file becomes an Event or a Rejected, nothing raises, record ids
    come from System.EventRecordID and event ids are the same on a second read."""
    files = sorted(shared_path("evtx").rglob("*.evtx"))
    assert files
    problems: list[str] = []
    events = rejected = 0
    for path in files:
        records = errors = 0
        parser_iterator = evtx.PyEvtxParser(str(path)).records_json()
        while True:  # an independent count with the bare parser
            try:
                next(parser_iterator)
            except StopIteration:
                break
            except RuntimeError:
                errors += 1
                continue
            records += 1
        first = list(read_evtx(path))
        second = list(read_evtx(path))
        file_events = [i for i in first if isinstance(i, Event)]
        file_rejected = [i for i in first if isinstance(i, Rejected)]
        events += len(file_events)
        rejected += len(file_rejected)
        if len(file_events) + len(file_rejected) != records + errors:
            problems.append(f"{path}: {len(first)} items for {records} records and {errors} parser errors")
        for event in file_events:
            system_id = orjson.loads(event.raw)["Event"]["System"].get("EventRecordID")
            if event.origin.record_id != system_id or event.fields.get("EventRecordID") != system_id:
                problems.append(f"{event.origin.describe()}: record id is not System.EventRecordID {system_id}")
            if not isinstance(event.fields.get("EventID"), int) or "event.code" not in event.fields:
                problems.append(f"{event.origin.describe()}: EventID/event.code missing")
        problems.extend(f"{r.describe()} ({r.stage})" for r in file_rejected if not r.origin.path or not r.reason)
        if [i.id for i in second if isinstance(i, Event)] != [e.id for e in file_events]:
            problems.append(f"{path}: event ids differ between two reads")
    print(f"\nEVTX corpus: {len(files)} files, {events} events, {rejected} rejected")
    assert events > 0
    assert not problems, f"{len(problems)} problems ({events} events, {rejected} rejected):\n" + "\n".join(
        problems[:50]
    )
