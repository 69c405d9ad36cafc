"""The sample directory watch (`collectors.samples.SampleWatch`) over real directories: a dropped file is one event
with its hashes, type and bytes, taken only once stable, remembered across restarts (after the sink and the
barrier), handed on again when its content changes; oversize and unreadable files are dead letters. And the pure
`sample_event`."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from collectors.samples import SampleSource, SampleWatch, sample_event
from correlator.model import Event, Rejected, event_id_for

HOST = "sensor-1"
TAKEN_MS = 1_709_290_000_000
MTIME_NS = 1_709_280_000_123_456_789
EXE = b"MZ\x90\x00" + b"\x00" * 60 + b"This program cannot be run in DOS mode." + bytes(range(256))

Item = Event | Rejected
MakeWatch = Callable[..., SampleWatch]


@pytest.fixture
def quarantine(tmp_path: Path) -> Path:
    path = tmp_path / "quarantine"
    path.mkdir()
    return path


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    return tmp_path / "state" / "samples.json"


@pytest.fixture
def make_watch(quarantine: Path, registry: Path) -> MakeWatch:
    def make(**options: Any) -> SampleWatch:
        options = {"max_bytes": 1 << 20, "poll_interval": 0.01, "clock": lambda: TAKEN_MS, "host": HOST,
                   **options}
        return SampleWatch([quarantine], registry, **options)

    return make


def drop(path: Path, data: bytes, mtime_ns: int = MTIME_NS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def poll(watch: SampleWatch, times: int = 1) -> list[Item]:
    """What `times` polls hand to the sink."""
    items: list[Item] = []

    async def sink(item: Item) -> None:
        items.append(item)

    async def polls() -> None:
        for _ in range(times):
            await watch.poll_once(sink)

    asyncio.run(polls())
    return items


def saved_registry(path: Path) -> dict[str, Any]:
    files = orjson.loads(path.read_bytes())["files"]
    assert isinstance(files, dict)
    return files


# -- a dropped file ------------------------------------------------------------------------------------------------


def test_a_dropped_file_becomes_one_event_with_its_hashes_type_and_bytes(make_watch: MakeWatch,
                                                                          quarantine: Path) -> None:
    path = drop(quarantine / "2024-03-01" / "Invoice.EXE", EXE)
    watch = make_watch()
    assert poll(watch) == []  # seen once: not known to be stable yet
    [event] = poll(watch)
    assert isinstance(event, Event)
    assert event.payload == EXE
    assert event.timestamp_ms == MTIME_NS // 1_000_000
    assert event.id == event_id_for(event.raw, event.timestamp_ms)
    assert (event.origin.path, event.origin.format) == (str(path), "sample")
    assert event.ecs == {
        "event": {"kind": "event", "category": ["file"], "type": ["info"], "module": "socctl",
                  "dataset": "socctl.sample", "action": "sample-collected", "ingested": "2024-03-01T10:46:40.000Z"},
        "file": {"path": str(path), "name": "Invoice.EXE", "directory": str(path.parent), "extension": "exe",
                 "size": len(EXE), "mtime": "2024-03-01T08:00:00.123Z", "type": "file",
                 "mime_type": "application/x-dosexec",
                 "hash": {"md5": hashlib.md5(EXE).hexdigest(), "sha1": hashlib.sha1(EXE).hexdigest(),
                          "sha256": hashlib.sha256(EXE).hexdigest()}},
        "related": {"hash": [hashlib.sha256(EXE).hexdigest(), hashlib.sha1(EXE).hexdigest(),
                             hashlib.md5(EXE).hexdigest()]},
        "host": {"name": HOST},
        "sample": {"type": "EXE"},
    }
    assert event.fields["file.hash.sha256"] == hashlib.sha256(EXE).hexdigest()
    assert orjson.loads(event.raw)["path"] == str(path)
    document = event.to_document()
    assert document["@timestamp"] == "2024-03-01T08:00:00.123Z"
    assert "payload" not in orjson.dumps(document).decode()
    assert poll(watch, 3) == []  # once
    assert watch.handed_on == 1


def test_a_file_being_written_is_taken_only_once_it_is_stable(make_watch: MakeWatch, quarantine: Path) -> None:
    path = quarantine / "dump.bin"
    watch = make_watch()
    with path.open("wb") as handle:
        handle.write(EXE[:100])
        handle.flush()
        assert poll(watch) == []
        handle.write(EXE[100:200])
        handle.flush()
        assert poll(watch) == []  # it grew since the last poll
        handle.write(EXE[200:])
    os.utime(path, ns=(MTIME_NS, MTIME_NS))
    assert poll(watch) == []  # its mtime changed
    [event] = poll(watch)
    assert isinstance(event, Event)
    assert event.payload == EXE
    assert event.fields["file.size"] == len(EXE)


def test_a_restart_does_not_hand_files_on_again(make_watch: MakeWatch, quarantine: Path, registry: Path) -> None:
    path = drop(quarantine / "a.exe", EXE)
    drop(quarantine / "sub" / "b.txt", b"plain text")
    assert len(poll(make_watch(), 2)) == 2
    stat = path.stat()
    assert saved_registry(registry)[f"{stat.st_dev}:{stat.st_ino}"] == {
        "path": str(path), "root": str(quarantine), "size": len(EXE), "mtime_ns": MTIME_NS,
        "sha256": hashlib.sha256(EXE).hexdigest()}
    assert poll(make_watch(), 3) == []


@pytest.mark.parametrize(("replace", "again"), [
    ("rewrite", True), ("rename-over", True), ("touch", False), ("copy-of-itself-over", False),
], ids=["rewritten", "renamed-over", "touched-same-content", "same-content-renamed-over"])
def test_a_file_is_handed_on_again_only_when_its_content_changed(make_watch: MakeWatch, quarantine: Path,
                                                                 replace: str, again: bool) -> None:
    path = drop(quarantine / "a.exe", EXE)
    [first] = poll(make_watch(), 2)
    later = MTIME_NS + 5_000_000_000
    new = EXE + b"appended stage two"
    if replace == "rewrite":
        drop(path, new, later)
    elif replace == "rename-over":
        drop(quarantine / ".incoming.tmp", new, later).replace(path)
    elif replace == "touch":
        os.utime(path, ns=(later, later))
    else:
        drop(quarantine / ".incoming.tmp", EXE, later).replace(path)
    items = poll(make_watch(), 2)  # after a restart too
    if not again:
        assert items == []
        return
    [second] = items
    assert isinstance(first, Event)
    assert isinstance(second, Event)
    assert second.payload == new
    assert second.fields["file.hash.sha256"] == hashlib.sha256(new).hexdigest()
    assert second.timestamp_ms == later // 1_000_000
    assert second.id != first.id


def test_a_renamed_file_is_not_handed_on_again(make_watch: MakeWatch, quarantine: Path, registry: Path) -> None:
    path = drop(quarantine / "a.exe", EXE)
    watch = make_watch()
    assert len(poll(watch, 2)) == 1
    moved = quarantine / "sub" / "renamed.exe"
    moved.parent.mkdir()
    path.rename(moved)
    assert poll(watch, 2) == []
    assert [entry["path"] for entry in saved_registry(registry).values()] == [str(moved)]


def test_a_copy_elsewhere_is_another_sample(make_watch: MakeWatch, quarantine: Path) -> None:
    drop(quarantine / "a.exe", EXE)
    watch = make_watch()
    [first] = poll(watch, 2)
    drop(quarantine / "copy" / "a.exe", EXE)
    [second] = poll(watch, 2)
    assert isinstance(first, Event)
    assert isinstance(second, Event)
    assert second.fields["file.path"] == str(quarantine / "copy" / "a.exe")
    assert second.id != first.id


def test_files_that_are_gone_are_forgotten(make_watch: MakeWatch, quarantine: Path, registry: Path) -> None:
    kept, gone = drop(quarantine / "kept.bin", b"kept"), drop(quarantine / "gone.bin", b"gone")
    watch = make_watch()
    assert len(poll(watch, 2)) == 2
    gone.unlink()
    assert poll(watch) == []
    assert [entry["path"] for entry in saved_registry(registry).values()] == [str(kept)]


def test_a_missing_directory_forgets_nothing(make_watch: MakeWatch, quarantine: Path, registry: Path,
                                             tmp_path: Path) -> None:
    drop(quarantine / "a.bin", b"a")
    watch = make_watch()
    assert len(poll(watch, 2)) == 1
    quarantine.rename(tmp_path / "unmounted")
    assert poll(watch) == []
    assert len(saved_registry(registry)) == 1


def test_hidden_files_directories_and_symlinks_are_left_alone(make_watch: MakeWatch, quarantine: Path,
                                                              tmp_path: Path) -> None:
    drop(quarantine / ".partial.exe", EXE)
    drop(quarantine / ".git" / "objects" / "x", EXE)
    secret = drop(tmp_path / "secret.key", b"do not read")
    (quarantine / "link.key").symlink_to(secret)
    assert poll(make_watch(), 3) == []


# -- dead letters --------------------------------------------------------------------------------------------------


def test_a_file_over_the_limit_is_a_dead_letter_with_its_hashes(make_watch: MakeWatch, quarantine: Path) -> None:
    big = EXE * 20
    path = drop(quarantine / "big.exe", big)
    [rejected] = poll(make_watch(max_bytes=len(EXE)), 2)
    sha256 = hashlib.sha256(big).hexdigest()
    assert isinstance(rejected, Rejected)
    assert rejected.reason == (f"sample of {len(big)} bytes exceeds the limit of {len(EXE)} bytes: not scanned "
                               f"(sha256 {sha256})")
    assert rejected.origin.path == str(path)
    assert rejected.raw is not None
    assert orjson.loads(rejected.raw) == {
        "@timestamp": "2024-03-01T08:00:00.123Z", "path": str(path), "host": HOST, "size": len(big),
        "sha256": sha256, "sha1": hashlib.sha1(big).hexdigest(), "md5": hashlib.md5(big).hexdigest()}
    assert poll(make_watch(max_bytes=len(EXE)), 2) == []  # recorded: not rejected again after a restart


def test_an_unreadable_file_is_a_dead_letter_once_and_taken_when_readable(
        make_watch: MakeWatch, quarantine: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = drop(quarantine / "locked.exe", EXE)
    real_open = os.open

    def refusing_open(name: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if os.fspath(name) == str(path):
            raise PermissionError(errno.EACCES, "Permission denied", str(name))
        return real_open(name, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing_open)
    watch = make_watch()
    [rejected] = poll(watch, 2)
    assert isinstance(rejected, Rejected)
    assert (rejected.reason, rejected.origin.path) == ("cannot read sample: Permission denied", str(path))
    assert poll(watch, 2) == []  # reported once
    monkeypatch.setattr(os, "open", real_open)
    [event] = poll(watch)
    assert isinstance(event, Event)
    assert event.payload == EXE


# -- at-least-once: the sink, the barrier, the registry ------------------------------------------------------------


def test_a_file_is_recorded_only_after_the_sink_and_the_barrier(make_watch: MakeWatch, quarantine: Path,
                                                                registry: Path) -> None:
    drop(quarantine / "a.exe", EXE)
    drop(quarantine / "b.exe", EXE + b"b")
    order: list[str] = []

    async def barrier() -> None:
        order.append("barrier")
        assert not registry.exists()  # nothing recorded before the barrier returned

    items = poll(make_watch(barrier=barrier), 2)
    assert len(items) == 2
    assert order == ["barrier"]  # once for the poll's files
    assert len(saved_registry(registry)) == 2


def test_files_per_save_bounds_what_a_crash_hands_on_again(make_watch: MakeWatch, quarantine: Path) -> None:
    for n in range(5):
        drop(quarantine / f"{n}.bin", f"sample {n}".encode())
    barriers: list[int] = []
    seen: list[Item] = []

    async def barrier() -> None:
        barriers.append(len(seen))

    watch = make_watch(barrier=barrier, files_per_save=2)

    async def sink(item: Item) -> None:
        seen.append(item)

    async def polls() -> None:
        for _ in range(2):
            await watch.poll_once(sink)

    asyncio.run(polls())
    assert barriers == [2, 4, 5]


@pytest.mark.parametrize("failing", ["sink", "barrier"])
def test_a_failing_sink_or_barrier_records_nothing(make_watch: MakeWatch, quarantine: Path, registry: Path,
                                                   failing: str) -> None:
    drop(quarantine / "a.exe", EXE)

    async def barrier() -> None:
        if failing == "barrier":
            raise OSError("store unreachable")

    async def sink(item: Item) -> None:
        if failing == "sink":
            raise OSError("queue closed")

    watch = make_watch(barrier=barrier)

    async def polls() -> None:
        await watch.poll_once(sink)
        await watch.poll_once(sink)

    with pytest.raises(OSError, match=r"store unreachable|queue closed"):
        asyncio.run(polls())
    assert not registry.exists() or saved_registry(registry) == {}
    assert len(poll(make_watch(), 2)) == 1  # handed on again after the restart


def test_a_corrupt_registry_is_moved_aside_and_the_watch_starts_over(make_watch: MakeWatch, quarantine: Path,
                                                                     registry: Path,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    drop(quarantine / "a.exe", EXE)
    registry.parent.mkdir(parents=True)
    registry.write_bytes(b'{"version": 1, "files": {"1:2": {"path": 3}}')
    assert len(poll(make_watch(), 2)) == 1
    assert registry.with_name("samples.json.corrupt").exists()
    assert "sample registry is not JSON" in caplog.text


def test_run_polls_until_stopped(make_watch: MakeWatch, quarantine: Path) -> None:
    drop(quarantine / "a.exe", EXE)
    items: list[Item] = []

    async def main() -> None:
        stop = asyncio.Event()

        async def sink(item: Item) -> None:
            items.append(item)
            stop.set()

        await asyncio.wait_for(make_watch().run(stop, sink), 10)

    asyncio.run(main())
    assert len(items) == 1


# -- sample_event --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("path", "name", "directory", "extension"), [
    ("C:\\Users\\jdoe\\Downloads\\invoice.pdf.exe", "invoice.pdf.exe", "C:\\Users\\jdoe\\Downloads", "exe"),
    ("\\\\fileserver\\share\\drop\\a.DLL", "a.DLL", "\\\\fileserver\\share\\drop", "dll"),
    ("/tmp/.x/payload", "payload", "/tmp/.x", None),
    ("payload.bin", "payload.bin", None, "bin"),
], ids=["windows", "unc", "posix-no-extension", "bare-name"])
def test_file_fields_of_windows_and_posix_paths(path: str, name: str, directory: str | None,
                                                extension: str | None) -> None:
    event = sample_event(b"data", SampleSource(path, None, TAKEN_MS))
    assert (event.get("file.name"), event.get("file.directory"), event.get("file.extension")) == (
        name, directory, extension)
    assert event.get("host.name") is None
    assert event.get("file.mime_type") is None
    assert event.get("sample.type") is None


def test_an_uploaded_sample_names_its_agent_and_peer() -> None:
    source = SampleSource("C:\\Temp\\a.exe", "WS042", TAKEN_MS, agent="edr-ws042", organization="agency-a",
                          peer="192.0.2.7", duplicate=True, origin="http://192.0.2.7/v1/files")
    event = sample_event(EXE, source)
    assert event.timestamp_ms == TAKEN_MS
    assert {name: event.get(name) for name in ("agent.name", "organization.id", "source.ip", "source.address",
                                               "host.name", "sample.duplicate", "event.action", "file.mtime")} == {
        "agent.name": "edr-ws042", "organization.id": "agency-a", "source.ip": "192.0.2.7",
        "source.address": "192.0.2.7", "host.name": "WS042", "sample.duplicate": True,
        "event.action": "sample-uploaded", "file.mtime": None}
    assert event.origin.path == "http://192.0.2.7/v1/files"
    assert sample_event(EXE, source).id == event.id  # the same upload delivered again: the same id
