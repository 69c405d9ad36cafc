"""The native EVTX reader (correlator/native) against the `evtx` package's path: the same events (ids, raw
records, timestamps, origins, fields in order, ECS documents) and the same rejected records, on the shared
corpus and on damaged copies of it."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from collectors.evtx_reader import read_evtx
from collectors.generic import to_epoch_ms
from collectors.windows import evtx_event, normalise_windows
from correlator.accel import native_available
from correlator.model import Event, EventOrigin, Rejected

pytestmark = pytest.mark.skipif(not native_available(), reason="the native extension (correlator/native) is not built")

CHUNK_SIZE = 65536
FILE_HEADER_SIZE = 4096


def differences(path: Path) -> list[str]:
    """Where the two readers disagree on one file."""
    native = list(read_evtx(path, native=True))
    package = list(read_evtx(path, native=False))
    if len(native) != len(package):
        return [f"{path}: {len(native)} items natively, {len(package)} with the package"]
    out: list[str] = []
    for mine, theirs in zip(native, package, strict=True):
        where = f"{path} {getattr(theirs, 'origin', None)}"
        if isinstance(theirs, Rejected):
            if mine != theirs:
                out.append(f"{where}: rejected differently: {mine!r} != {theirs!r}")
            continue
        if not isinstance(mine, Event) or not isinstance(theirs, Event):
            out.append(f"{where}: {type(mine).__name__} natively, {type(theirs).__name__} with the package")
            continue
        for what, a, b in (
            ("id", mine.id, theirs.id),
            ("raw", mine.raw, theirs.raw),
            ("timestamp", mine.timestamp_ms, theirs.timestamp_ms),
            ("origin", mine.origin, theirs.origin),
            ("host", mine.host_name, theirs.host_name),
            ("native fields", list(mine.native.items()), list(theirs.native.items())),
            ("fields", list(mine.fields.items()), list(theirs.fields.items())),
            ("document", mine.to_document(), theirs.to_document()),
        ):
            if a != b:
                out.append(f"{where}: {what} differs")
    return out


@pytest.mark.corpus
def test_native_reader_gives_the_packages_events(shared_path: Callable[[str], Path]) -> None:
    files = sorted(shared_path("evtx").rglob("*.evtx"))
    assert files
    problems = [p for path in files for p in differences(path)]
    assert not problems, f"{len(problems)} differences:\n" + "\n".join(problems[:50])


@pytest.mark.corpus
@pytest.mark.parametrize("damage", ["chunk-signature", "scattered-bytes", "truncated"])
def test_native_reader_rejects_what_the_package_rejects(
    shared_path: Callable[[str], Path], tmp_path: Path, damage: str
) -> None:
    source = max(shared_path("evtx").rglob("*.evtx"), key=lambda p: (p.stat().st_size, p.name))
    broken = tmp_path / "broken.evtx"
    shutil.copyfile(source, broken)
    data = bytearray(broken.read_bytes())
    if damage == "chunk-signature":
        data[FILE_HEADER_SIZE + CHUNK_SIZE: FILE_HEADER_SIZE + CHUNK_SIZE + 8] = b"\x00" * 8
    elif damage == "scattered-bytes":
        for offset in range(FILE_HEADER_SIZE + 2512, FILE_HEADER_SIZE + 6512, 97):
            data[offset] = 0xFF
    else:
        del data[FILE_HEADER_SIZE + CHUNK_SIZE + 1000:]
    broken.write_bytes(bytes(data))
    if damage != "truncated":  # a cut file just has fewer chunks
        assert any(isinstance(i, Rejected) for i in read_evtx(broken, native=False))
    assert differences(broken) == []


@pytest.mark.parametrize(
    "content",
    [b"this is a text file, not an event log\n" * 200, b"", b"ElfFile\x00" + b"\x00" * 100],
    ids=["text", "empty", "truncated-header"],
)
def test_file_that_is_not_evtx_is_rejected_alike(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "Security.evtx"
    path.write_bytes(content)
    (native,) = read_evtx(path, native=True)
    (package,) = read_evtx(path, native=False)
    assert native == package
    assert isinstance(native, Rejected)
    assert native.reason.startswith("not a readable EVTX file: ")


@pytest.mark.parametrize(
    "text",
    [
        "2019-04-27T15:57:25.868863Z",
        "2019-04-27T15:57:25Z",
        "1969-12-31T23:59:59.999999Z",
        "1601-01-01T00:00:00.000000Z",
        "0001-01-01T00:00:00.000001Z",
        "2024-02-29T12:00:00.000500Z",
        "9999-12-31T23:59:59.999999Z",
    ],
)
def test_native_system_time_equals_to_epoch_ms(text: str) -> None:
    from correlator._native import system_time_ms

    assert system_time_ms(text) == to_epoch_ms(text)


@pytest.mark.parametrize(
    "text",
    ["2023-02-29T12:00:00.000000Z", "2019-04-27T24:00:00Z", "2019-04-27 15:57:25Z", "2019-04-27T15:57:25.8688Z",
     "2019-04-27T15:57:25.868863+01:00", "0000-01-01T00:00:00Z", "2019-13-01T00:00:00Z", ""],
)
def test_native_system_time_leaves_other_forms_to_python(text: str) -> None:
    from correlator._native import system_time_ms

    assert system_time_ms(text) is None


def _record(event_data: object = None, user_data: object = None, **system: object) -> str:
    base: dict[str, object] = {
        "Provider": {"#attributes": {"Name": "Application Error", "Guid": "{0}"}},
        "EventID": {"#attributes": {"Qualifiers": 0}, "#text": 1000},
        "Channel": "Application", "Computer": "WS01", "EventRecordID": 12, "Level": 2,
        "TimeCreated": {"#attributes": {"SystemTime": "2021-06-09T04:58:49.287418Z"}},
        "Execution": {"#attributes": {"ProcessID": 4, "ThreadID": 8}}, "Security": {"#attributes": {"UserID": "S-1"}},
    }
    base.update(system)
    event: dict[str, object] = {"System": base}
    if event_data is not None:
        event["EventData"] = event_data
    if user_data is not None:
        event["UserData"] = user_data
    return orjson.dumps({"Event": event}).decode()


@pytest.mark.parametrize(
    "raw",
    [
        _record({"Image": "C:\\a.exe", "ProcessId": 4, "Flag": True, "Gone": None, "List": ["a", 1]}),
        _record({"Data": {"#text": ["sa", " Reason: x", " [CLIENT: 10.0.2.17]"]}, "Binary": "1848"}),
        _record({"Data": [{"#attributes": {"Name": "A"}, "#text": "1"}, {"#attributes": {"Name": "B"}},
                          {"#text": "free"}, "bare", None]}),
        _record({"Data": {"@Name": "Only", "#text": "one"}}),
        _record({"Data": [{"#text": "lone"}]}),
        _record({"#text": "text only", "@xmlns": "x", "Nested": {"Deep": {"Leaf": 1}, "#text": None}}),
        _record({"Nested": {"Deep": {"Leaf": 1, "@attr": 2}, "Other": "o"}, "Data": "plain"}),
        _record("just a string"),
        _record({}, user_data={"EventXML": {"@xmlns": "x", "Param1": "p", "Inner": {"#text": "t"}}}),
        _record({"Image": "x"}, user_data={"A": {"Name": "one"}, "B": {"Name": "two"}}),
        _record({"Channel": "mine"}),
        _record({"Image": "x"}, EventID=4688, EventRecordID="12"),
        _record({"Image": "x"}, EventID="4688"),
        _record({"Image": "x"}, TimeCreated={"#attributes": {"SystemTime": "2021-06-09 04:58:49"}}),
        _record({"Image": "x"}, Provider={"@Name": "Old", "@Guid": "{1}"}, Channel={"#text": "Security"}),
    ],
    ids=["plain", "unnamed-list", "named-and-unnamed", "at-name", "one-unnamed-in-list", "text-and-nested",
         "nested-without-text", "string-eventdata", "userdata", "userdata-repeats", "name-in-two-sections",
         "string-record-id", "string-event-id", "other-time-form", "xmltodict-attributes"],
)
def test_native_normalisation_equals_python_on_every_shape(raw: str) -> None:
    from correlator._native import normalise_record

    origin = EventOrigin(path="x.evtx", record_id=12, format="evtx")
    expected = normalise_windows(orjson.loads(raw), raw, origin)
    parts = normalise_record(raw)
    if parts is None:  # left to the Python path, which gives `expected` by definition
        return
    got = evtx_event(*parts, raw, hashlib.sha256(raw.encode()).hexdigest(), origin)
    assert list(got.native.items()) == list(expected.native.items())
    assert list(got.fields.items()) == list(expected.fields.items())
    assert got.to_document() == expected.to_document()
    assert (got.id, got.timestamp_ms, got.host_name) == (expected.id, expected.timestamp_ms, expected.host_name)


def test_haystack_folds_latin_text_as_python_does() -> None:
    """The reader searches a record's values itself (quiet records, `Event.prefiltered`): text it lower-cases
    must be byte for byte what Python's `str.lower` gives, else it leaves the record to Python. Latin blocks
    (the `®` of every Sysmon Product, Vietnamese names) are folded; other scripts are left."""
    from correlator._native import haystack_text

    folded = 0
    for code in [*range(0x80, 0x250), *range(0x1E00, 0x1F00)]:
        text = f"C:\\Users\\Ab{chr(code)}Z"
        mine = haystack_text(text)
        if mine is not None:
            folded += 1
            assert mine == text.lower(), hex(code)
    assert folded == (0x250 - 0x80 - 1) + 0x100  # every character of those blocks but U+0130
    assert haystack_text("Microsoft® Windows® Operating System") == "microsoft® windows® operating system"
    assert haystack_text("Nguyễn Văn Ánh ĐẶNG") == "nguyễn văn ánh đặng"
    assert haystack_text("İstanbul") is None  # special casing: Python decides
    assert haystack_text("Ωmega") is None  # Greek (final sigma and all): Python decides
    assert haystack_text("ADMIN") == "admin"
