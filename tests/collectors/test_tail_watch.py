"""The directory watch: a dropped file handed on once when complete, not again after a restart, again when its
content changes; copies skipped, files still being written waited for, sink failures retried."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from collectors.files import read_path
from collectors.tail_state import FileIdentity, Registry
from collectors.tail_watch import DirectoryWatch, DroppedFile, Sighting, is_complete
from correlator.model import Event, Rejected


class Sink:
    def __init__(self) -> None:
        self.handed: list[DroppedFile] = []
        self.down = False

    async def __call__(self, dropped: DroppedFile) -> None:
        if self.down:
            raise ConnectionError("pipeline down")
        self.handed.append(dropped)

    def names(self) -> list[str]:
        names = [dropped.path.name for dropped in self.handed]
        self.handed.clear()
        return names


def polls(watch: DirectoryWatch, count: int) -> list[str]:
    """The names handed on over `count` polls."""
    async def main() -> list[str]:
        names: list[str] = []
        for _ in range(count):
            names += [dropped.path.name for dropped in await watch.poll_once()]
        return names

    return asyncio.run(main())


@pytest.fixture
def drop(tmp_path: Path) -> Path:
    directory = tmp_path / "drop"
    directory.mkdir()
    return directory


@pytest.fixture
def make_watch(tmp_path: Path, drop: Path) -> Callable[..., DirectoryWatch]:
    """A watch of `drop/*.evtx`; each call loads the registry from disk, as a restarted process does."""
    def make(sink: Sink, pattern: str = "*.evtx", **options: Any) -> DirectoryWatch:
        registry = Registry.load(tmp_path / "state" / "tail.json")
        return DirectoryWatch(drop, pattern, sink, registry, **{"poll_interval": 0.01, **options})

    return make


def test_is_complete() -> None:
    seen = Sighting(FileIdentity(1, 2), 100, 5)
    assert is_complete(seen, Sighting(FileIdentity(1, 2), 100, 5))
    assert not is_complete(None, seen)
    assert not is_complete(seen, Sighting(FileIdentity(1, 2), 120, 5))
    assert not is_complete(seen, Sighting(FileIdentity(1, 2), 100, 6))
    assert not is_complete(seen, Sighting(FileIdentity(1, 3), 100, 5))


def test_a_dropped_file_is_handed_on_once_across_a_restart_and_again_when_it_changes(
        drop: Path, make_watch: Callable[..., DirectoryWatch]) -> None:
    dropped = drop / "Security.evtx"
    dropped.write_bytes(b"ElfFile\x00" + b"\x01" * 500)
    sink = Sink()
    watch = make_watch(sink)
    assert polls(watch, 1) == []  # seen once: maybe still being copied
    assert polls(watch, 3) == ["Security.evtx"]
    assert sink.handed[0].size == 508
    restarted = make_watch(Sink())
    assert polls(restarted, 3) == []
    with dropped.open("ab") as handle:
        handle.write(b"\x02" * 100)
    assert polls(restarted, 3) == ["Security.evtx"]
    assert polls(make_watch(Sink()), 3) == []


def test_a_file_still_growing_waits_until_it_is_stable(drop: Path, make_watch: Callable[..., DirectoryWatch]) -> None:
    growing = drop / "big.evtx"
    sink = Sink()
    watch = make_watch(sink)
    for size in (100, 200, 300):
        growing.write_bytes(b"x" * size)
        assert polls(watch, 1) == []
    assert polls(watch, 1) == ["big.evtx"]


def test_the_same_content_under_another_name_is_skipped(drop: Path, make_watch: Callable[..., DirectoryWatch]) -> None:
    (drop / "a.evtx").write_bytes(b"same bytes")
    sink = Sink()
    watch = make_watch(sink)
    assert polls(watch, 2) == ["a.evtx"]
    shutil.copyfile(drop / "a.evtx", drop / "copy.evtx")
    (drop / "a.evtx").rename(drop / "renamed.evtx")
    assert polls(watch, 3) == []


def test_a_sink_failure_hands_the_file_on_again(drop: Path, make_watch: Callable[..., DirectoryWatch]) -> None:
    (drop / "a.evtx").write_bytes(b"content")
    sink = Sink()
    sink.down = True
    watch = make_watch(sink)
    with pytest.raises(ConnectionError):
        polls(watch, 2)
    sink.down = False
    assert polls(watch, 1) == ["a.evtx"]
    assert polls(make_watch(Sink()), 2) == []


def test_only_matching_visible_files_are_considered_and_gone_ones_forgotten(
        tmp_path: Path, drop: Path, make_watch: Callable[..., DirectoryWatch]) -> None:
    (drop / "a.evtx").write_bytes(b"a")
    (drop / ".b.evtx.part").write_bytes(b"b")
    (drop / "notes.txt").write_bytes(b"c")
    (drop / "sub.evtx").mkdir()
    watch = make_watch(Sink())
    assert polls(watch, 2) == ["a.evtx"]
    (drop / "a.evtx").unlink()
    polls(watch, 1)
    assert Registry.load(tmp_path / "state" / "tail.json").dropped == {}


def test_a_missing_directory_is_reported_and_watched_for(tmp_path: Path, drop: Path,
                                                         make_watch: Callable[..., DirectoryWatch],
                                                         caplog: pytest.LogCaptureFixture) -> None:
    drop.rmdir()
    watch = make_watch(Sink())
    assert polls(watch, 2) == []
    assert caplog.text.count("is missing or not a directory") == 1
    drop.mkdir()
    (drop / "a.evtx").write_bytes(b"a")
    assert polls(watch, 2) == ["a.evtx"]


def test_a_dropped_file_is_read_whole_by_its_format(drop: Path, make_watch: Callable[..., DirectoryWatch]) -> None:
    (drop / "export.json").write_text('{"@timestamp": "2026-11-20T08:00:00Z", "event": {"action": "x"}}\n'
                                      '{"@timestamp": "2026-11-20T08:00:01Z", "event": {"action": "y"}}\n')
    items: list[Event | Rejected] = []

    async def sink(dropped: DroppedFile) -> None:
        items.extend(await asyncio.to_thread(lambda: list(read_path(dropped.path))))

    polls(make_watch(sink, "*.json"), 2)
    assert [item.get("event.action") for item in items if isinstance(item, Event)] == ["x", "y"]


def test_poll_interval_is_validated(make_watch: Callable[..., DirectoryWatch]) -> None:
    with pytest.raises(ValueError, match="poll_interval must be > 0"):
        make_watch(Sink(), poll_interval=0)
