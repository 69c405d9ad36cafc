"""The tailer driven poll by poll on real files: appends, rename and copytruncate rotation, delete and recreate,
restarts from the registry after a sink failure or a crash, partial and oversized lines, globs."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from collectors.tail import FileOrigin, Poll, Tailer
from collectors.tail_state import Registry


class SinkDown(Exception):
    pass


class Sink:
    """Records what it accepts; refuses (raises) when `refuse_after` lines were accepted."""

    def __init__(self, refuse_after: int | None = None) -> None:
        self.accepted: list[tuple[bytes, FileOrigin]] = []
        self.refuse_after = refuse_after

    async def __call__(self, line: bytes, origin: FileOrigin) -> None:
        if self.refuse_after is not None and len(self.accepted) >= self.refuse_after:
            raise SinkDown(line)
        self.accepted.append((line, origin))

    def take(self) -> list[str]:
        lines = [line.decode() for line, _ in self.accepted]
        self.accepted.clear()
        return lines


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run(coro: Callable[[], Coroutine[Any, Any, object]]) -> None:
    asyncio.run(coro())


def append(path: Path, text: str | bytes) -> None:
    with path.open("ab") as handle:
        handle.write(text.encode() if isinstance(text, str) else text)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_tailer(tmp_path: Path, clock: Clock) -> Callable[..., Tailer]:
    """A tailer of `tmp_path/logs/*.log` (or `patterns`) with its registry in `tmp_path/state`: a second call
    is the tailer of a restarted process (the registry loaded from disk)."""
    (tmp_path / "logs").mkdir()

    def make(sink: Sink, patterns: list[str] | None = None, **options: Any) -> Tailer:
        registry = Registry.load(tmp_path / "state" / "tail.json")
        options = {"poll_interval": 0.01, "rotate_wait": 0.0, "clock": clock, **options}
        return Tailer(patterns or [str(tmp_path / "logs" / "*.log")], sink, registry, **options)

    return make


def test_lines_appended_over_time_are_handed_on_once_with_their_origin(tmp_path: Path,
                                                                        make_tailer: Callable[..., Tailer]) -> None:
    log = tmp_path / "logs" / "auth.log"
    log.write_text("one\ntwo\n")
    sink = Sink()
    tailer = make_tailer(sink)

    async def steps() -> None:
        assert await tailer.poll_once() == Poll(lines=2, pending=False)
        assert await tailer.poll_once() == Poll(lines=0, pending=False)
        append(log, "\nthree\n")
        await tailer.poll_once()
        tailer.close()

    run(steps)
    info = log.stat()
    assert [(line, origin) for line, origin in sink.accepted] == [
        (b"one", FileOrigin(str(log), info.st_dev, info.st_ino, 0, 4, 1)),
        (b"two", FileOrigin(str(log), info.st_dev, info.st_ino, 4, 8, 2)),
        (b"three", FileOrigin(str(log), info.st_dev, info.st_ino, 9, 15, 4)),  # line 3 was blank
    ]


def test_rename_rotation_reads_the_old_file_to_its_end_then_the_new_one(tmp_path: Path, clock: Clock,
                                                                        make_tailer: Callable[..., Tailer]) -> None:
    log = tmp_path / "logs" / "app.log"
    rotated = tmp_path / "logs" / "app.log.1"
    log.write_text("a1\n")
    sink = Sink()
    tailer = make_tailer(sink, rotate_wait=5.0)

    async def steps() -> None:
        await tailer.poll_once()
        assert sink.take() == ["a1"]
        log.rename(rotated)
        append(rotated, "a2\n")  # the writer has not reopened its log yet
        log.write_text("b1\n")
        await tailer.poll_once()
        assert sink.take() == ["a2", "b1"]  # the old file's last lines first
        clock.now = 3.0
        append(rotated, "a3\nlast words")  # still written to after the rename
        append(log, "b2\n")
        await tailer.poll_once()
        assert sink.take() == ["a3", "b2"]
        assert len(tailer.followed) == 2
        clock.now = 8.1  # quiet for rotate_wait: the old file is done, its unterminated line handed on as is
        await tailer.poll_once()
        assert sink.take() == ["last words"]
        assert list(tailer.followed.values()) == [str(log)]
        tailer.close()

    run(steps)
    assert list(Registry.load(tmp_path / "state" / "tail.json").tail) == [f"{log.stat().st_dev}:{log.stat().st_ino}"]


def test_lines_of_a_rotated_file_keep_its_identity_and_the_followed_path(tmp_path: Path,
                                                                          make_tailer: Callable[..., Tailer]) -> None:
    log = tmp_path / "logs" / "app.log"
    log.write_text("a1\n")
    old = log.stat()
    sink = Sink()
    tailer = make_tailer(sink)

    async def steps() -> None:
        await tailer.poll_once()
        log.rename(tmp_path / "logs" / "app.log.1")
        append(tmp_path / "logs" / "app.log.1", "a2\nend")
        await tailer.poll_once()
        tailer.close()

    run(steps)
    origins = [origin for _, origin in sink.accepted]
    assert [(o.path, o.inode, o.line, o.partial) for o in origins] == [
        (str(log), old.st_ino, 1, False), (str(log), old.st_ino, 2, False), (str(log), old.st_ino, 3, True)]


def test_a_file_renamed_within_the_globs_is_followed_on(tmp_path: Path, make_tailer: Callable[..., Tailer]) -> None:
    log = tmp_path / "logs" / "app.log"
    log.write_text("a1\n")
    sink = Sink()
    tailer = make_tailer(sink, patterns=[str(tmp_path / "logs" / "app.log*")])

    async def steps() -> None:
        await tailer.poll_once()
        log.rename(tmp_path / "logs" / "app.log.1")
        append(tmp_path / "logs" / "app.log.1", "a2\n")
        log.write_text("b1\n")
        await tailer.poll_once()
        tailer.close()

    run(steps)
    assert [(line, origin.path) for line, origin in sink.accepted] == [
        (b"a1", str(log)), (b"a2", str(tmp_path / "logs" / "app.log.1")), (b"b1", str(log))]


@pytest.mark.parametrize("after", ["c1\n", "c1 is a longer line than all of the old file was\n"],
                         ids=["shorter", "regrown-past-the-offset"])
def test_copytruncate_reads_the_file_again_from_its_start(tmp_path: Path, make_tailer: Callable[..., Tailer],
                                                          after: str, caplog: pytest.LogCaptureFixture) -> None:
    log = tmp_path / "logs" / "app.log"
    log.write_text("a1\na2\n")
    sink = Sink()
    tailer = make_tailer(sink)

    async def steps() -> None:
        await tailer.poll_once()
        shutil.copyfile(log, tmp_path / "logs" / "app.log.1")
        with log.open("r+b") as handle:
            handle.truncate(0)
        append(log, after)
        with caplog.at_level(logging.WARNING, logger="collectors.tail"):
            await tailer.poll_once()
        tailer.close()

    run(steps)
    assert [(line.decode(), origin.offset, origin.line) for line, origin in sink.accepted] == [
        ("a1", 0, 1), ("a2", 3, 2), (after.strip(), 0, 1)]
    assert "reading it again from its start" in caplog.text


def test_a_deleted_and_recreated_file_is_read_from_its_start(tmp_path: Path,
                                                             make_tailer: Callable[..., Tailer]) -> None:
    log = tmp_path / "logs" / "app.log"
    log.write_text("a1\nunfinished")
    sink = Sink()
    tailer = make_tailer(sink)

    async def steps() -> None:
        await tailer.poll_once()
        assert sink.take() == ["a1"]
        log.unlink()
        await tailer.poll_once()  # deleted: read to its end, the unfinished line handed on as is
        assert [(line, origin.partial) for line, origin in sink.accepted] == [(b"unfinished", True)]
        sink.take()
        log.write_text("b1\n")
        await tailer.poll_once()
        tailer.close()

    run(steps)
    assert [(line, origin.line) for line, origin in sink.accepted] == [(b"b1", 1)]


def test_a_sink_failure_loses_and_repeats_nothing_in_this_process_or_the_next(
        tmp_path: Path, make_tailer: Callable[..., Tailer]) -> None:
    log = tmp_path / "logs" / "app.log"
    log.write_text("".join(f"line {n}\n" for n in range(1, 6)))
    refusing = Sink(refuse_after=2)
    tailer = make_tailer(refusing)

    async def crash() -> None:
        with pytest.raises(SinkDown):
            await tailer.poll_once()
        refusing.refuse_after = 3
        with pytest.raises(SinkDown):  # the same tailer again: from the first line not accepted
            await tailer.poll_once()
        # the process dies here: no close(), only what poll_once saved

    run(crash)
    assert refusing.take() == ["line 1", "line 2", "line 3"]
    append(log, "line 6\n")
    sink = Sink()
    restarted = make_tailer(sink)

    async def resume() -> None:
        await restarted.poll_once()
        restarted.close()

    run(resume)
    assert [(line.decode(), origin.line) for line, origin in sink.accepted] == [
        ("line 4", 4), ("line 5", 5), ("line 6", 6)]


def test_a_restart_after_a_crash_resumes_after_the_last_saved_poll(tmp_path: Path,
                                                                   make_tailer: Callable[..., Tailer]) -> None:
    log = tmp_path / "logs" / "app.log"
    log.write_text("a1\na2\n")
    first = Sink()
    tailer = make_tailer(first)
    run(tailer.poll_once)  # no close(): a crash right after the poll
    append(log, "a3\n")
    second = Sink()
    run(make_tailer(second).poll_once)
    assert (first.take(), second.take()) == (["a1", "a2"], ["a3"])


def test_a_file_renamed_while_stopped_is_read_to_its_end_after_a_restart(tmp_path: Path,
                                                                          make_tailer: Callable[..., Tailer]) -> None:
    log = tmp_path / "logs" / "auth.log"
    log.write_text("a1\n")
    tailer = make_tailer(Sink())

    async def first_run() -> None:
        await tailer.poll_once()
        tailer.close()

    run(first_run)
    append(log, "a2\n")  # written after the stop, before the rotation
    log.rename(tmp_path / "logs" / "auth.log.1")
    log.write_text("b1\n")
    sink = Sink()
    restarted = make_tailer(sink)

    async def second_run() -> None:
        await restarted.poll_once()
        restarted.close()

    run(second_run)
    assert [(line, origin.path, origin.line) for line, origin in sink.accepted] == [
        (b"a2", str(log), 2), (b"b1", str(log), 1)]
    assert list(restarted.followed.values()) == []


def test_a_file_gone_while_stopped_is_forgotten(tmp_path: Path, make_tailer: Callable[..., Tailer]) -> None:
    log = tmp_path / "logs" / "auth.log"
    log.write_text("a1\n")
    tailer = make_tailer(Sink())

    async def first_run() -> None:
        await tailer.poll_once()
        tailer.close()

    run(first_run)
    log.unlink()
    restarted = make_tailer(Sink())
    run(restarted.poll_once)
    assert Registry.load(tmp_path / "state" / "tail.json").tail == {}


def test_a_partial_line_waits_for_its_end(tmp_path: Path, make_tailer: Callable[..., Tailer]) -> None:
    log = tmp_path / "logs" / "app.log"
    log.write_text("a1\nhalf of a")
    sink = Sink()
    tailer = make_tailer(sink)

    async def steps() -> None:
        await tailer.poll_once()
        assert sink.take() == ["a1"]
        await tailer.poll_once()
        assert sink.take() == []
        append(log, " line\r\n")
        await tailer.poll_once()
        tailer.close()

    run(steps)
    assert [(line, origin.offset, origin.end, origin.line, origin.partial) for line, origin in sink.accepted] == [
        (b"half of a line", 3, 19, 2, False)]


def test_an_oversized_line_is_cut_flagged_and_its_rest_skipped_across_a_restart(
        tmp_path: Path, make_tailer: Callable[..., Tailer], caplog: pytest.LogCaptureFixture) -> None:
    log = tmp_path / "logs" / "app.log"
    log.write_text("ok\n" + "x" * 40)
    sink = Sink()
    tailer = make_tailer(sink, max_line=16)

    async def steps() -> None:
        with caplog.at_level(logging.WARNING, logger="collectors.tail"):
            await tailer.poll_once()
        tailer.close()

    run(steps)
    assert [(line, origin.cut) for line, origin in sink.accepted] == [(b"ok", False), (b"x" * 16, True)]
    assert f"{log}:2: line longer than 16 bytes, cut" in caplog.text
    append(log, "x" * 10 + "\nnext\n" + "y" * 20 + "\n")
    after = Sink()
    restarted = make_tailer(after, max_line=16)

    async def resume() -> None:
        await restarted.poll_once()
        restarted.close()

    run(resume)
    assert [(line, origin.line, origin.cut) for line, origin in after.accepted] == [
        (b"next", 3, False), (b"y" * 16, 4, True)]


def test_a_glob_picks_up_new_files(tmp_path: Path, make_tailer: Callable[..., Tailer]) -> None:
    (tmp_path / "logs" / "a.log").write_text("a1\n")
    sink = Sink()
    tailer = make_tailer(sink)

    async def steps() -> None:
        await tailer.poll_once()
        (tmp_path / "logs" / "b.log").write_text("b1\n")
        (tmp_path / "logs" / "b.txt").write_text("not followed\n")
        await tailer.poll_once()
        tailer.close()

    run(steps)
    assert [(line, Path(origin.path).name) for line, origin in sink.accepted] == [(b"a1", "a.log"), (b"b1", "b.log")]


def test_a_corrupt_registry_starts_over(tmp_path: Path, make_tailer: Callable[..., Tailer],
                                        caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "logs" / "a.log").write_text("a1\n")
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "tail.json").write_bytes(b"\x00\x00garbage")
    sink = Sink()
    with caplog.at_level(logging.WARNING):
        tailer = make_tailer(sink)
    run(tailer.poll_once)
    assert sink.take() == ["a1"]
    assert "starting over" in caplog.text
    assert len(Registry.load(tmp_path / "state" / "tail.json").tail) == 1


def test_another_file_in_a_known_inode_is_read_from_its_start(tmp_path: Path,
                                                             make_tailer: Callable[..., Tailer]) -> None:
    log = tmp_path / "logs" / "app.log"
    log.write_text("old content, line one\nold two\n")
    run(make_tailer(Sink()).poll_once)
    with log.open("r+b") as handle:  # same inode, other content, longer than the saved offset
        handle.write(b"NEW content, line one\nnew two\nnew three\n")
    sink = Sink()
    run(make_tailer(sink).poll_once)
    assert sink.take() == ["NEW content, line one", "new two", "new three"]


def test_a_large_backlog_is_read_over_several_polls(tmp_path: Path, make_tailer: Callable[..., Tailer]) -> None:
    log = tmp_path / "logs" / "app.log"
    log.write_text("".join(f"{n:03d}\n" for n in range(100)))
    sink = Sink()
    tailer = make_tailer(sink, read_size=64, max_read_per_poll=128)

    async def steps() -> None:
        assert (await tailer.poll_once()).pending
        while (await tailer.poll_once()).pending:
            pass
        tailer.close()

    run(steps)
    assert sink.take() == [f"{n:03d}" for n in range(100)]


def test_run_polls_until_stopped_and_saves(tmp_path: Path, make_tailer: Callable[..., Tailer]) -> None:
    log = tmp_path / "logs" / "app.log"
    log.write_text("a1\n")
    sink = Sink()
    tailer = make_tailer(sink)

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(tailer.run(stop))
        appended = False
        for _ in range(500):
            if len(sink.accepted) == 1 and not appended:  # once: the tailer may not have read it by the next turn
                append(log, "a2\n")
                appended = True
            if len(sink.accepted) == 2:
                break
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, 5)

    run(main)
    assert sink.take() == ["a1", "a2"]
    entry = next(iter(Registry.load(tmp_path / "state" / "tail.json").tail.values()))
    assert (entry.offset, entry.line) == (6, 2)


def test_an_unreadable_file_is_reported_once_and_followed_when_readable(
        tmp_path: Path, make_tailer: Callable[..., Tailer], caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "logs" / "app.log"
    log.write_text("a1\n")
    real_open = os.open
    readable = False

    def guarded_open(path: Any, flags: int, *args: Any) -> int:
        if os.fspath(path) == str(log) and not readable:
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *args)

    monkeypatch.setattr("collectors.tail.os.open", guarded_open)
    sink = Sink()
    tailer = make_tailer(sink)

    async def steps() -> None:
        nonlocal readable
        with caplog.at_level(logging.WARNING, logger="collectors.tail"):
            await tailer.poll_once()
            await tailer.poll_once()
        readable = True
        await tailer.poll_once()
        tailer.close()

    run(steps)
    assert caplog.text.count(f"cannot follow {log}: Permission denied") == 1
    assert sink.take() == ["a1"]


@pytest.mark.parametrize(("options", "message"), [
    ({"poll_interval": 0}, "poll_interval must be > 0"),
    ({"max_line": 0}, "max_line and read_size >= 1"),
], ids=["poll-interval", "max-line"])
def test_options_are_validated(make_tailer: Callable[..., Tailer], options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_tailer(Sink(), **options)


def test_with_a_barrier_positions_are_saved_only_after_it_passed(tmp_path: Path,
                                                                  make_tailer: Callable[..., Tailer]) -> None:
    log = tmp_path / "logs" / "auth.log"
    log.write_text("one\ntwo\n")
    sink = Sink()
    passed: list[int] = []
    refuse = False

    async def barrier() -> None:
        if refuse:
            raise RuntimeError("the pipeline has ended")
        passed.append(len(sink.accepted))

    tailer = make_tailer(sink, barrier=barrier)

    async def steps() -> None:
        nonlocal refuse
        await tailer.poll_once()
        assert passed == [2]  # the save after the poll waited for the two lines to be stored
        append(log, "three\n")
        refuse = True
        with pytest.raises(RuntimeError, match="ended"):
            await tailer.poll_once()
        tailer.close()  # with a barrier, closing records nothing the barrier did not pass

    run(steps)
    restarted = Sink()
    again = make_tailer(restarted)

    async def resume() -> None:
        await again.poll_once()
        again.close()

    run(resume)
    assert restarted.take() == ["three"]  # handed on but never confirmed stored: read again
