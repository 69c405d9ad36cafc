"""The on-disk spool: order, commit and reopen, crash recovery (torn tails, SIGKILL), corruption, the size limit
and the lock."""

from __future__ import annotations

import logging
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from correlator.store.errors import InvalidRequestError, StoreError
from correlator.store.spool import (
    FRAME_HEADER_SIZE,
    Spool,
    SpoolCorruptError,
    SpoolError,
    SpoolFullError,
    SpoolLockedError,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
LOGGER = "correlator.store.spool"

# With segment_bytes=70 the frames (36, 30, 42, 30, 36 bytes) fall in three segments: [a, b], [c], [d, e].
BATCHES = [[b"a1", b"a2"], [b"b1"], [b"c1", b"c2", b"c3"], [b"d1"], [b"e1", b"e2"]]
ALL = [item for batch in BATCHES for item in batch]
SEGMENT_BYTES = 70

OpenSpool = Callable[..., Spool]


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return tmp_path / "spool"


@pytest.fixture
def open_spool(directory: Path) -> Iterator[OpenSpool]:
    """`open_spool(**options)`: a `Spool` on `directory`, closed after the test."""
    opened: list[Spool] = []

    def factory(**options: int) -> Spool:
        spool = Spool(directory, **options)
        opened.append(spool)
        return spool

    yield factory
    for spool in opened:
        spool.close()


@pytest.fixture
def filled(open_spool: OpenSpool) -> Spool:
    """A spool holding `BATCHES` in three segments."""
    spool = open_spool(segment_bytes=SEGMENT_BYTES)
    for batch in BATCHES:
        spool.append(batch)
    return spool


def segment_files(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.glob("*.seg"))


def segment(directory: Path, seq: int) -> Path:
    return directory / f"{seq:020d}.seg"


def frame_offsets(path: Path) -> list[int]:
    data = path.read_bytes()
    offsets: list[int] = []
    offset = 0
    while offset < len(data):
        offsets.append(offset)
        (length,) = struct.unpack_from("<Q", data, offset + 8)
        offset += FRAME_HEADER_SIZE + length
    return offsets


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


# -- order, commit, reopen


def test_order_is_kept_across_segments_and_reopen(filled: Spool, directory: Path, open_spool: OpenSpool) -> None:
    assert segment_files(directory) == [segment(directory, n).name for n in (1, 2, 3)]
    assert filled.peek(100) == ALL
    assert filled.peek(4) == ALL[:4]  # peeking consumes nothing
    assert filled.peek(0) == []
    assert (filled.pending_items, filled.pending_bytes) == (9, 18)
    filled.close()
    reopened = open_spool(segment_bytes=SEGMENT_BYTES)
    assert reopened.peek(100) == ALL
    assert (reopened.pending_items, reopened.pending_bytes) == (9, 18)


@pytest.mark.parametrize(
    ("count", "segments_left"),
    [(1, [1, 2, 3]), (3, [2, 3]), (4, [2, 3]), (6, [3]), (9, [3])],
    ids=["inside-first-batch", "end-of-first-segment", "inside-a-batch", "end-of-middle-segment", "everything"],
)
def test_commit_then_reopen_resumes_at_the_next_item(
    filled: Spool, directory: Path, open_spool: OpenSpool, count: int, segments_left: list[int]
) -> None:
    filled.commit(count)
    assert filled.peek(100) == ALL[count:]
    assert (filled.pending_items, filled.pending_bytes) == (9 - count, 2 * (9 - count))
    assert segment_files(directory) == [segment(directory, n).name for n in segments_left]
    filled.close()

    reopened = open_spool(segment_bytes=SEGMENT_BYTES)
    assert reopened.peek(100) == ALL[count:]
    assert (reopened.pending_items, reopened.pending_bytes) == (9 - count, 2 * (9 - count))
    reopened.append([b"f1"])
    reopened.commit(1 if count < 9 else 0)
    assert reopened.peek(100) == [*ALL[count + 1 :], b"f1"]


def test_commits_add_up(filled: Spool, open_spool: OpenSpool) -> None:
    for expected in ALL:
        assert filled.peek(1) == [expected]
        filled.commit(1)
    assert (filled.pending_items, filled.pending_bytes) == (0, 0)
    filled.close()
    assert open_spool(segment_bytes=SEGMENT_BYTES).peek(10) == []


def test_empty_items_and_empty_batches(open_spool: OpenSpool, directory: Path) -> None:
    spool = open_spool()
    spool.append([])  # nothing to write: no frame
    assert segment(directory, 1).stat().st_size == 0
    spool.append([b"", b"x", b""])
    assert spool.peek(10) == [b"", b"x", b""]
    assert (spool.pending_items, spool.pending_bytes) == (3, 1)


def test_matches_a_list_under_random_operations(directory: Path) -> None:
    """Appends, peeks, commits and reopens in a seeded random order behave like a plain list."""
    rng = random.Random(85)
    model: list[bytes] = []
    options = {"segment_bytes": 300, "max_bytes": 2_000}
    spool = Spool(directory, **options)
    try:
        for step in range(600):
            op = rng.random()
            if op < 0.45:
                batch = [rng.randbytes(rng.randrange(0, 60)) for _ in range(rng.randrange(1, 6))]
                if sum(map(len, model)) + sum(map(len, batch)) > options["max_bytes"]:
                    with pytest.raises(SpoolFullError):
                        spool.append(batch)
                else:
                    spool.append(batch)
                    model.extend(batch)
            elif op < 0.65:
                count = rng.randrange(0, 12)
                assert spool.peek(count) == model[:count], f"step {step}"
            elif op < 0.95:
                count = rng.randrange(0, len(model) + 1)
                spool.commit(count)
                del model[:count]
            else:
                spool.close()
                spool = Spool(directory, **options)
            assert (spool.pending_items, spool.pending_bytes) == (len(model), sum(map(len, model))), f"step {step}"
        assert spool.peek(len(model)) == model
        spool.commit(len(model))
        assert len(segment_files(directory)) == 1  # consumed segments are deleted, except the one written to
    finally:
        spool.close()


def test_one_thread_appends_while_another_replays(open_spool: OpenSpool) -> None:
    spool = open_spool(segment_bytes=512, max_bytes=4_096)
    expected = [f"{n}:{j}".encode() for n in range(300) for j in range(n % 4 + 1)]
    failures: list[BaseException] = []

    def write() -> None:
        try:
            for n in range(300):
                batch = [f"{n}:{j}".encode() for j in range(n % 4 + 1)]
                while True:
                    try:
                        spool.append(batch)
                        break
                    except SpoolFullError:
                        time.sleep(0.001)
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    writer = threading.Thread(target=write)
    writer.start()
    replayed: list[bytes] = []
    deadline = time.monotonic() + 60
    while len(replayed) < len(expected) and time.monotonic() < deadline and not failures:
        items = spool.peek(7)
        replayed.extend(items)
        spool.commit(len(items))
    writer.join(timeout=60)
    assert failures == []
    assert replayed == expected
    assert (spool.pending_items, spool.pending_bytes) == (0, 0)


# -- crash recovery


def _cut_in_body(path: Path, last: int, size: int) -> None:
    os.truncate(path, size - 1)


def _cut_in_header(path: Path, last: int, size: int) -> None:
    os.truncate(path, last + 10)


def _zeroed_tail(path: Path, last: int, size: int) -> None:
    with path.open("r+b") as file:
        file.seek(last)
        file.write(bytes(size - last))


def _lost_page(path: Path, last: int, size: int) -> None:
    flip_byte(path, size - 2)


TORN = {
    "cut-in-body": (
        _cut_in_body,
        lambda size, last: f"frame of {size - last} bytes runs past the end of the data ({size - 1} bytes)",
    ),
    "cut-in-header": (_cut_in_header, lambda size, last: "incomplete frame header (10 of 24 bytes)"),
    "zero-filled-tail": (_zeroed_tail, lambda size, last: "bad frame header (wrong magic or header checksum)"),
    "lost-page": (_lost_page, None),
}


@pytest.mark.parametrize("damage", sorted(TORN), ids=sorted(TORN))
def test_torn_last_frame_is_truncated_with_a_warning(
    directory: Path, open_spool: OpenSpool, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    spool = open_spool()
    for batch in BATCHES:
        spool.append(batch)
    spool.close()
    path = segment(directory, 1)
    size = path.stat().st_size
    last = frame_offsets(path)[-1]
    corrupt, reason = TORN[damage]
    corrupt(path, last, size)
    if reason is None:  # lost page: the checksum of what is left
        data = path.read_bytes()
        (stored,) = struct.unpack_from("<I", data, last + 16)
        computed = zlib.crc32(data[last + FRAME_HEADER_SIZE :])
        expected_reason = f"payload checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
    else:
        expected_reason = reason(size, last)
    damaged_size = path.stat().st_size

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        reopened = open_spool()
    assert caplog.messages == [
        f"{path}: torn frame at offset {last} (an append interrupted by a crash; {expected_reason}): "
        f"truncated {damaged_size - last} bytes"
    ]
    assert path.stat().st_size == last
    assert reopened.peek(100) == ALL[:-2]
    reopened.append([b"f1"])
    reopened.close()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert open_spool().peek(100) == [*ALL[:-2], b"f1"]
    assert caplog.messages == []


def test_zeros_after_the_last_frame_are_truncated(
    filled: Spool, directory: Path, open_spool: OpenSpool, caplog: pytest.LogCaptureFixture
) -> None:
    filled.close()
    path = segment(directory, 3)
    size = path.stat().st_size
    with path.open("ab") as file:
        file.write(bytes(4096))  # the file grew but the data never reached the disk
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert open_spool(segment_bytes=SEGMENT_BYTES).peek(100) == ALL
    assert caplog.messages == [
        f"{path}: torn frame at offset {size} (an append interrupted by a crash; bad frame header (wrong magic or "
        f"header checksum)): truncated 4096 bytes"
    ]


def _checksum_reason(path: Path, offset: int) -> str:
    data = path.read_bytes()
    (length,) = struct.unpack_from("<Q", data, offset + 8)
    (stored,) = struct.unpack_from("<I", data, offset + 16)
    computed = zlib.crc32(data[offset + FRAME_HEADER_SIZE : offset + FRAME_HEADER_SIZE + length])
    return f"payload checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"


@pytest.mark.parametrize(
    ("segment_bytes", "seq", "frame", "where", "reason"),
    [
        (1 << 20, 1, 2, FRAME_HEADER_SIZE + 3, None),
        (1 << 20, 1, 2, 5, "bad frame header (wrong magic or header checksum)"),
        (1 << 20, 1, 0, 0, "bad frame header (wrong magic or header checksum)"),
        (SEGMENT_BYTES, 1, 1, FRAME_HEADER_SIZE + 1, None),
        (SEGMENT_BYTES, 2, 0, 9, "bad frame header (wrong magic or header checksum)"),
    ],
    ids=[
        "payload-of-a-middle-frame",
        "header-of-a-middle-frame",
        "magic-of-the-first-frame",
        "last-frame-of-an-older-segment",
        "length-of-a-frame-in-an-older-segment",
    ],
)
def test_flipped_byte_is_corruption_not_a_torn_write(
    directory: Path, open_spool: OpenSpool, segment_bytes: int, seq: int, frame: int, where: int, reason: str | None
) -> None:
    spool = open_spool(segment_bytes=segment_bytes)
    for batch in BATCHES:
        spool.append(batch)
    spool.close()
    path = segment(directory, seq)
    offset = frame_offsets(path)[frame]
    flip_byte(path, offset + where)
    expected = reason or _checksum_reason(path, offset)
    with pytest.raises(SpoolCorruptError) as info:
        Spool(directory, segment_bytes=segment_bytes)
    assert str(info.value) == f"{path}: corrupt frame at offset {offset}: {expected}"
    assert (info.value.path, info.value.offset) == (path, offset)
    assert isinstance(info.value, StoreError)
    with pytest.raises(SpoolCorruptError):  # again: the failed open released its lock
        Spool(directory, segment_bytes=segment_bytes)


def test_damage_after_open_is_found_by_peek(filled: Spool, directory: Path) -> None:
    path = segment(directory, 2)
    flip_byte(path, FRAME_HEADER_SIZE + 2)
    assert filled.peek(3) == ALL[:3]
    with pytest.raises(SpoolCorruptError) as info:
        filled.peek(4)
    assert str(info.value) == f"{path}: corrupt frame at offset 0: {_checksum_reason(path, 0)}"


def test_missing_segment_is_corruption(filled: Spool, directory: Path) -> None:
    filled.close()
    segment(directory, 2).unlink()
    with pytest.raises(SpoolCorruptError) as info:
        Spool(directory)
    assert str(info.value) == f"{segment(directory, 2)}: segment is missing (segments 1..3)"


def test_position_in_a_missing_segment_is_corruption(filled: Spool, directory: Path) -> None:
    filled.commit(3)
    filled.close()
    segment(directory, 2).unlink()
    with pytest.raises(SpoolCorruptError) as info:
        Spool(directory)
    assert str(info.value) == f"{directory / 'position'}: read position is in segment 2, which is missing"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"version": 1, "segment": 1}', "unreadable read position: {'version': 1, 'segment': 1}"),
        ("[1, 0, 0]", "unreadable read position: [1, 0, 0]"),
        (
            '{"version": 1, "segment": 1, "offset": -1, "skip": 0}',
            "unreadable read position: {'version': 1, 'segment': 1, 'offset': -1, 'skip': 0}",
        ),
        ('{"version": 2, "segment": 1, "offset": 0, "skip": 0}', "unsupported read position version 2"),
        (
            '{"version": 1, "segment": 1, "offset": 36, "skip": 5}',
            "read position skips 5 items of the 1 in the frame at offset 36 of SEGMENT-1",
        ),
        (
            '{"version": 1, "segment": 1, "offset": 500, "skip": 0}',
            "read position 500 is past the end of SEGMENT-1 (66 bytes)",
        ),
        (
            '{"version": 1, "segment": 3, "offset": 40, "skip": 0}',
            "read position 40 is not where a frame of SEGMENT-3 begins",
        ),
    ],
    ids=[
        "missing-fields",
        "not-a-mapping",
        "negative-offset",
        "newer-version",
        "skips-past-the-frame",
        "past-the-end",
        "inside-a-frame-of-the-newest-segment",
    ],
)
def test_bad_position_file_is_corruption(filled: Spool, directory: Path, text: str, reason: str) -> None:
    filled.close()
    position = directory / "position"
    position.write_text(text)
    with pytest.raises(SpoolCorruptError) as info:
        Spool(directory)
    for seq in (1, 3):
        reason = reason.replace(f"SEGMENT-{seq}", str(segment(directory, seq)))
    assert str(info.value) == f"{position}: {reason}"


def test_unparsable_position_file_is_corruption(filled: Spool, directory: Path) -> None:
    filled.close()
    (directory / "position").write_text("{half a write")
    with pytest.raises(SpoolCorruptError) as info:
        Spool(directory)
    assert str(info.value).startswith(f"{directory / 'position'}: unreadable read position: Expecting property name")


def test_leftovers_of_an_interrupted_commit_are_cleaned_up(
    filled: Spool, directory: Path, open_spool: OpenSpool, tmp_path: Path
) -> None:
    saved = tmp_path / "saved.seg"
    shutil.copy(segment(directory, 1), saved)
    filled.commit(3)
    filled.close()
    shutil.copy(saved, segment(directory, 1))  # crash after the position was written, before the unlink
    (directory / "position.tmp").write_text("{half a write")  # crash while writing the next position
    reopened = open_spool(segment_bytes=SEGMENT_BYTES)
    assert reopened.peek(100) == ALL[3:]
    assert segment_files(directory) == [segment(directory, n).name for n in (2, 3)]
    assert not (directory / "position.tmp").exists()


# -- a process killed while appending


def kill_batch(number: int) -> list[bytes]:
    """Batch `number` of the kill test: 1-7 items of up to 30 kB, each naming its batch and place."""
    rng = random.Random(number)
    return [f"{number}:{j}:".encode() + rng.randbytes(rng.randrange(30_000)) for j in range(rng.randrange(1, 8))]


KILL_SEGMENT_BYTES = 256 * 1024
APPEND_FOREVER = f"""
import sys
from correlator.store.spool import Spool
from tests.correlator.store.test_spool import kill_batch

number = first = int(sys.argv[2])
with Spool(sys.argv[1], segment_bytes={KILL_SEGMENT_BYTES}) as spool:
    while True:
        spool.append(kill_batch(number))
        if number == first:
            print("appending", flush=True)
        number += 1
"""


def whole_batches(items: list[bytes], first: int) -> int:
    """How many whole batches, numbered from `first`, `items` holds; fails unless it is exactly such a prefix."""
    expected: list[bytes] = []
    number = first
    while len(expected) < len(items):
        expected.extend(kill_batch(number))
        number += 1
    assert items == expected, "the spool does not hold whole batches in order"
    return number - first


def test_sigkill_while_appending_leaves_whole_batches_in_order(directory: Path) -> None:
    rng = random.Random(2016)
    first_pending = next_batch = 0
    for round_ in range(5):
        child = subprocess.Popen(
            [sys.executable, "-c", APPEND_FOREVER, str(directory), str(next_batch)],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert child.stdout is not None
        assert child.stderr is not None
        try:
            started = child.stdout.readline()
            time.sleep(rng.uniform(0.05, 0.4))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
        assert started == b"appending\n", child.stderr.read().decode()
        assert child.returncode == -signal.SIGKILL

        with Spool(directory, segment_bytes=KILL_SEGMENT_BYTES) as spool:
            batches = whole_batches(spool.peek(spool.pending_items), first_pending)
            assert batches > next_batch - first_pending, f"round {round_}: the child's first append is missing"
            next_batch = first_pending + batches
            committed = batches // 2  # the next child appends after a partly replayed spool
            spool.commit(sum(len(kill_batch(n)) for n in range(first_pending, first_pending + committed)))
            first_pending += committed


# -- the limit


def test_full_spool_refuses_the_batch_and_writes_nothing(open_spool: OpenSpool, directory: Path) -> None:
    spool = open_spool(max_bytes=10)
    spool.append([b"12345", b"678"])
    size = segment(directory, 1).stat().st_size
    with pytest.raises(SpoolFullError) as info:
        spool.append([b"a", b"bc"])
    assert str(info.value) == (
        f"{directory}: spool full: 8 bytes pending + 3 in this batch would exceed the limit of 10 bytes; nothing "
        f"was written. Keep the batch and retry after the pending items have been replayed (peek + commit), or "
        f"raise the spool's max_bytes"
    )
    assert (info.value.limit, info.value.pending_bytes, info.value.batch_bytes) == (10, 8, 3)
    assert segment(directory, 1).stat().st_size == size
    assert (spool.pending_items, spool.pending_bytes) == (2, 8)
    assert spool.peek(10) == [b"12345", b"678"]

    spool.append([b"90"])  # exactly at the limit
    spool.commit(1)  # frees 5 bytes
    spool.append([b"a", b"bc"])
    assert spool.peek(10) == [b"678", b"90", b"a", b"bc"]
    spool.close()
    assert open_spool(max_bytes=10).peek(10) == [b"678", b"90", b"a", b"bc"]


def test_batch_larger_than_the_limit_is_refused(open_spool: OpenSpool) -> None:
    spool = open_spool(max_bytes=4)
    with pytest.raises(SpoolFullError) as info:
        spool.append([b"12345"])
    assert "0 bytes pending + 5 in this batch would exceed the limit of 4 bytes" in str(info.value)
    assert spool.pending_items == 0


def test_limit_can_change_between_opens(filled: Spool, open_spool: OpenSpool) -> None:
    filled.close()
    smaller = open_spool(max_bytes=10)  # already over: nothing is lost, appends wait for commits
    assert smaller.peek(100) == ALL
    with pytest.raises(SpoolFullError):
        smaller.append([b""])  # 18 + 0 > 10
    smaller.commit(5)
    smaller.append([b"f1"])
    assert smaller.peek(100) == [*ALL[5:], b"f1"]


# -- the lock, arguments, lifecycle


def test_second_open_in_this_process_is_locked(filled: Spool, directory: Path, open_spool: OpenSpool) -> None:
    with pytest.raises(SpoolLockedError) as info:
        Spool(directory)
    assert str(info.value) == (
        f"{directory}: spool is already open (lock {directory / 'lock'} held by pid {os.getpid()}); one process "
        f"at a time may use a spool directory"
    )
    assert filled.peek(1) == ALL[:1]  # the failed open disturbed nothing
    filled.close()
    assert open_spool().peek(100) == ALL


def test_second_process_is_locked_out(filled: Spool, directory: Path) -> None:
    script = (
        "import sys\n"
        "from correlator.store.spool import Spool, SpoolLockedError\n"
        "try:\n"
        "    Spool(sys.argv[1])\n"
        "except SpoolLockedError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(directory)], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout == (
        f"{directory}: spool is already open (lock {directory / 'lock'} held by pid {os.getpid()}); one process "
        f"at a time may use a spool directory\n"
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda spool: spool.peek(-1), "max_items must be >= 0, got -1"),
        (lambda spool: spool.commit(-1), "cannot commit -1 items: 9 are pending"),
        (lambda spool: spool.commit(10), "cannot commit 10 items: 9 are pending"),
    ],
    ids=["negative-peek", "negative-commit", "commit-more-than-pending"],
)
def test_invalid_arguments(filled: Spool, call: Callable[[Spool], object], message: str) -> None:
    with pytest.raises(InvalidRequestError) as info:
        call(filled)
    assert str(info.value) == message
    assert filled.peek(100) == ALL


def test_invalid_sizes(directory: Path) -> None:
    with pytest.raises(InvalidRequestError) as info:
        Spool(directory, max_bytes=0)
    assert str(info.value) == "max_bytes and segment_bytes must be >= 1, got max_bytes=0, segment_bytes=67108864"
    assert not directory.exists()


def test_closed_spool_refuses_calls(filled: Spool, directory: Path) -> None:
    with filled as spool:
        assert spool.pending_items == 9
    filled.close()  # twice is harmless
    for call in (lambda: filled.append([b"x"]), lambda: filled.peek(1), lambda: filled.commit(0)):
        with pytest.raises(SpoolError) as info:
            call()
        assert str(info.value) == f"{directory}: spool is closed"


def test_new_spool_creates_its_directory(tmp_path: Path) -> None:
    directory = tmp_path / "a" / "b"
    with Spool(directory) as spool:
        assert (spool.pending_items, spool.pending_bytes, spool.max_bytes) == (0, 0, 1 << 30)
        assert spool.peek(5) == []
    assert sorted(path.name for path in directory.iterdir()) == ["00000000000000000001.seg", "lock"]
