"""A bounded, crash-safe on-disk FIFO of byte items: where documents wait while Elasticsearch is unreachable.

The writer `append`s batches; the reader `peek`s the oldest pending items, delivers them, then `commit`s how
many it delivered. `append` and `commit` are durable (fsync'd) when they return. One process at a time: a lock
file makes a second `Spool` on the same directory fail with `SpoolLockedError`. Within that process the calls
are serialised by a mutex, so one thread may append while another replays.

Directory layout::

    lock                      flock(2)'d while open; holds the owner's pid
    position                  the read position (JSON), replaced atomically: temp file, fsync, rename, fsync dir
    00000000000000000001.seg  segments, frames appended in order; the next frame goes to a new segment when it
    00000000000000000002.seg  would take the current one past segment_bytes (a frame is never split)

Frame format: one frame per `append` call, so a batch is all-or-nothing. Integers are little-endian::

    offset  size  field
    0       4     magic b"SPL1"
    4       4     count: number of items
    8       8     length: body length in bytes
    16      4     CRC32 of the body
    20      4     CRC32 of bytes 0..19 (the header)
    24      ...   body: count x (u32 item length, item bytes)

The position file is ``{"version": 1, "segment": n, "offset": o, "skip": k}``: the frame at byte ``o`` of segment
``n`` is the oldest with pending items, and its first ``k`` items are already committed. Segments before it are
deleted once the position is durable (and, should a crash come in between, on the next open).

Recovery on open verifies the checksums of every pending frame. A bad frame at the tail of the newest segment
is the torn write of an append that a crash interrupted when no valid frame follows it: its header is cut
short, it runs past the end of the file, it fails its checksum and ends exactly at the end of the file (a lost
page), or its header is unreadable and nothing after it parses. Such a tail is truncated, with a warning naming
the file and offset. An append interrupted by a crash is therefore visible after recovery either whole or not
at all (it may be visible although the call never returned: replays must be idempotent). Any other bad frame,
a missing segment, or an unreadable position file raises `SpoolCorruptError` naming the file and offset;
nothing is ever skipped.

The limit: `pending_bytes` is the total size of the pending items (their payload, not the framing). An append
that would take it past `max_bytes` raises `SpoolFullError` and writes nothing; the caller keeps (or reports)
the batch and retries once the reader has committed. Disk use is at most `max_bytes`, plus the framing (24 bytes
a batch and 4 an item), plus the already-consumed head of the oldest segment (under `segment_bytes` plus one
batch).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Final, Self

from correlator.store.errors import InvalidRequestError
from correlator.store.spool_frames import (
    FRAME_HEADER_SIZE,
    MAX_ITEM_BYTES,
    BadFrame,
    FrameHeader,
    SpoolCorruptError,
    SpoolError,
    SpoolFullError,
    SpoolLockedError,
    decode_items,
    encode_frame,
    parse_header,
    read_frame,
    valid_frame_after,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_SEGMENT_BYTES",
    "FRAME_HEADER_SIZE",
    "MAX_ITEM_BYTES",
    "Spool",
    "SpoolCorruptError",
    "SpoolError",
    "SpoolFullError",
    "SpoolLockedError",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES: Final = 1 << 30  # 1 GiB
DEFAULT_SEGMENT_BYTES: Final = 64 << 20  # 64 MiB

LOCK_NAME: Final = "lock"
POSITION_NAME: Final = "position"
_POSITION_VERSION: Final = 1
_SEGMENT_NAME: Final = re.compile(r"(\d{20})\.seg")


@dataclass(slots=True)
class _Segment:
    seq: int
    path: Path
    size: int = 0  # end of the last whole frame
    items: int = 0  # pending items
    payload: int = 0  # pending payload bytes


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """A durable FIFO of byte items in `directory` (created if missing); see the module doc for the guarantees.

    Use as a context manager, or call `close()`. After `close()` every call raises `SpoolError`.
    """

    def __init__(
        self,
        directory: Path | str,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        segment_bytes: int = DEFAULT_SEGMENT_BYTES,
    ) -> None:
        if max_bytes < 1 or segment_bytes < 1:
            raise InvalidRequestError(
                f"max_bytes and segment_bytes must be >= 1, got max_bytes={max_bytes}, segment_bytes={segment_bytes}"
            )
        self._directory = Path(directory)
        self._max_bytes = max_bytes
        self._segment_bytes = segment_bytes
        self._mutex = threading.Lock()
        self._segments: list[_Segment] = []  # oldest (the read segment) first; the last is written to
        self._read_offset = 0
        self._read_skip = 0
        self._pending_items = 0
        self._pending_bytes = 0
        self._write_fd: int | None = None
        self._lock_fd: int | None = None
        try:
            self._lock_fd = self._acquire_lock()
            self._recover()
            self._write_fd = os.open(self._segments[-1].path, os.O_WRONLY)
        except OSError as exc:
            self._release()
            raise SpoolError(f"{self._directory}: cannot open spool: {exc}") from exc
        except BaseException:
            self._release()
            raise

    # -- properties

    @property
    def directory(self) -> Path:
        return self._directory

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    @property
    def segment_bytes(self) -> int:
        return self._segment_bytes

    @property
    def pending_items(self) -> int:
        return self._pending_items

    @property
    def pending_bytes(self) -> int:
        """Total size of the pending items' payloads, the quantity `max_bytes` bounds."""
        return self._pending_bytes

    # -- the queue

    def append(self, items: Sequence[bytes]) -> None:
        """Append `items` as one batch, durably; raises `SpoolFullError` (writing nothing) past `max_bytes`."""
        with self._mutex:
            self._check_open()
            if not items:
                return
            batch_bytes = sum(len(item) for item in items)
            if self._pending_bytes + batch_bytes > self._max_bytes:
                raise SpoolFullError(self._directory, self._max_bytes, self._pending_bytes, batch_bytes)
            largest = max(len(item) for item in items)
            if largest > MAX_ITEM_BYTES:
                raise InvalidRequestError(f"spool items are limited to {MAX_ITEM_BYTES} bytes, got {largest}")
            frame = encode_frame(items)
            segment = self._segments[-1]
            if segment.size and segment.size + len(frame) > self._segment_bytes:
                segment = self._start_segment()
            self._write_frame(segment, frame)
            segment.size += len(frame)
            segment.items += len(items)
            segment.payload += batch_bytes
            self._pending_items += len(items)
            self._pending_bytes += batch_bytes

    def peek(self, max_items: int) -> list[bytes]:
        """Up to `max_items` of the oldest pending items, oldest first, without consuming them."""
        if max_items < 0:
            raise InvalidRequestError(f"max_items must be >= 0, got {max_items}")
        out: list[bytes] = []
        with self._mutex:
            self._check_open()
            if max_items == 0:
                return out
            try:
                skip = self._read_skip
                for _, segment, offset, header, body in self._frames():
                    items = decode_items(body, header.count, segment.path, offset)
                    out.extend(items[skip : skip + max_items - len(out)])
                    skip = 0
                    if len(out) >= max_items:
                        break
            except OSError as exc:
                raise SpoolError(f"{self._directory}: cannot read spool: {exc}") from exc
        return out

    def commit(self, count: int) -> None:
        """Durably mark the oldest `count` pending items consumed, and delete the segments that held only them."""
        with self._mutex:
            self._check_open()
            if not 0 <= count <= self._pending_items:
                raise InvalidRequestError(f"cannot commit {count} items: {self._pending_items} are pending")
            if count == 0:
                return
            try:
                self._commit(count)
            except OSError as exc:
                raise SpoolError(f"{self._directory}: cannot commit: {exc}") from exc

    # -- lifecycle

    def close(self) -> None:
        """Release the files and the lock. Closing twice is harmless."""
        with self._mutex:
            self._release()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"Spool({str(self._directory)!r}, pending_items={self._pending_items}, "
            f"pending_bytes={self._pending_bytes}, max_bytes={self._max_bytes})"
        )

    # -- internals

    def _check_open(self) -> None:
        if self._lock_fd is None:
            raise SpoolError(f"{self._directory}: spool is closed")

    def _release(self) -> None:
        for fd in (self._write_fd, self._lock_fd):
            if fd is not None:
                os.close(fd)  # closing the lock file's descriptor releases the flock
        self._write_fd = self._lock_fd = None

    def _acquire_lock(self) -> int:
        if not self._directory.is_dir():
            self._directory.mkdir(parents=True, exist_ok=True)
            _fsync_directory(self._directory.parent)
        path = self._directory / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise SpoolLockedError(
                f"{self._directory}: spool is already open (lock {path} held by pid {holder}); "
                f"one process at a time may use a spool directory"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd

    def _segment_path(self, seq: int) -> Path:
        return self._directory / f"{seq:020d}.seg"

    def _read_position(self) -> tuple[int, int, int] | None:
        path = self._directory / POSITION_NAME
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except ValueError as exc:
            raise SpoolCorruptError(path, None, f"unreadable read position: {exc}") from None
        fields = ("version", "segment", "offset", "skip")
        if not isinstance(data, dict) or not all(type(data.get(name)) is int and data[name] >= 0 for name in fields):
            raise SpoolCorruptError(path, None, f"unreadable read position: {data!r}")
        if data["version"] != _POSITION_VERSION:
            raise SpoolCorruptError(path, None, f"unsupported read position version {data['version']}")
        return data["segment"], data["offset"], data["skip"]

    def _write_position(self, seq: int, offset: int, skip: int) -> None:
        data = {"version": _POSITION_VERSION, "segment": seq, "offset": offset, "skip": skip}
        temp = self._directory / f"{POSITION_NAME}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, json.dumps(data).encode() + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        temp.replace(self._directory / POSITION_NAME)
        _fsync_directory(self._directory)

    def _recover(self) -> None:
        (self._directory / f"{POSITION_NAME}.tmp").unlink(missing_ok=True)
        found = sorted(
            int(match.group(1)) for entry in self._directory.iterdir() if (match := _SEGMENT_NAME.fullmatch(entry.name))
        )
        position = self._read_position()
        if position is None:  # nothing committed yet
            if not found:
                self._segments = [self._create_segment(1)]  # a new spool
                return
            position = (found[0], 0, 0)
        read_seq, offset, skip = position
        if read_seq not in found:
            raise SpoolCorruptError(
                self._directory / POSITION_NAME, None, f"read position is in segment {read_seq}, which is missing"
            )
        for seq in found:
            if seq < read_seq:  # consumed; a crash came between writing the position and deleting it
                self._segment_path(seq).unlink()
        pending = [seq for seq in found if seq >= read_seq]
        for expected, seq in enumerate(pending, start=read_seq):
            if seq != expected:
                raise SpoolCorruptError(
                    self._segment_path(expected), None, f"segment is missing (segments {read_seq}..{pending[-1]})"
                )
        self._segments = [_Segment(seq, self._segment_path(seq)) for seq in pending]
        last = len(self._segments) - 1
        for index, segment in enumerate(self._segments):
            self._scan(segment, offset if index == 0 else 0, skip if index == 0 else 0, newest=index == last)
        self._read_offset, self._read_skip = offset, skip
        self._pending_items = sum(segment.items for segment in self._segments)
        self._pending_bytes = sum(segment.payload for segment in self._segments)
        index, offset, skip = self._past_consumed(0, offset, skip)
        if index:
            self._move_read_position(index, offset, skip)

    def _scan(self, segment: _Segment, start: int, skip: int, *, newest: bool) -> None:
        """Verify the segment's frames from `start`, count its pending items, and truncate a torn tail."""
        with segment.path.open("rb") as file:
            file_size = os.fstat(file.fileno()).st_size
            if start > file_size:
                raise SpoolCorruptError(
                    self._directory / POSITION_NAME,
                    None,
                    f"read position {start} is past the end of {segment.path} ({file_size} bytes)",
                )
            self._check_boundary(file, segment.path, start)
            offset = start
            while offset < file_size:
                try:
                    header, body = read_frame(file, offset, file_size)
                except BadFrame as bad:
                    if not newest or bad.at_tail is False:
                        raise SpoolCorruptError(segment.path, offset, bad.reason) from None
                    if bad.at_tail is None and valid_frame_after(file, offset + 1, file_size):
                        raise SpoolCorruptError(segment.path, offset, bad.reason) from None
                    self._truncate(segment.path, offset, file_size, bad.reason)
                    break
                segment.items += header.count
                segment.payload += header.payload
                if offset == start and skip:
                    if skip >= header.count:
                        raise SpoolCorruptError(
                            self._directory / POSITION_NAME,
                            None,
                            f"read position skips {skip} items of the {header.count} in the frame at offset "
                            f"{offset} of {segment.path}",
                        )
                    skipped = decode_items(body, header.count, segment.path, offset)[:skip]
                    segment.items -= skip
                    segment.payload -= sum(len(item) for item in skipped)
                offset += header.size
            if skip and start >= offset:
                raise SpoolCorruptError(
                    self._directory / POSITION_NAME,
                    None,
                    f"read position skips {skip} items past the end of {segment.path}",
                )
            segment.size = offset

    def _check_boundary(self, file: BinaryIO, path: Path, start: int) -> None:
        """Check that the read position `start` is where a frame begins (walking the consumed frames' headers)."""
        offset = 0
        while offset < start:
            file.seek(offset)
            raw = file.read(FRAME_HEADER_SIZE)
            header = parse_header(raw) if len(raw) == FRAME_HEADER_SIZE else None
            if header is None:
                raise SpoolCorruptError(path, offset, "bad frame header before the read position")
            offset += header.size
        if offset != start:
            raise SpoolCorruptError(
                self._directory / POSITION_NAME, None, f"read position {start} is not where a frame of {path} begins"
            )

    @staticmethod
    def _truncate(path: Path, offset: int, file_size: int, reason: str) -> None:
        with path.open("r+b") as file:
            file.truncate(offset)
            os.fsync(file.fileno())
        log.warning(
            "%s: torn frame at offset %d (an append interrupted by a crash; %s): truncated %d bytes",
            path,
            offset,
            reason,
            file_size - offset,
        )

    def _create_segment(self, seq: int) -> _Segment:
        path = self._segment_path(seq)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.close(fd)
        _fsync_directory(self._directory)
        return _Segment(seq, path)

    def _start_segment(self) -> _Segment:
        try:
            segment = self._create_segment(self._segments[-1].seq + 1)
            fd = os.open(segment.path, os.O_WRONLY)
        except OSError as exc:
            raise SpoolError(f"{self._directory}: cannot start a new segment, nothing was spooled: {exc}") from exc
        self._segments.append(segment)
        if self._write_fd is not None:
            os.close(self._write_fd)
        self._write_fd = fd
        return segment

    def _write_frame(self, segment: _Segment, frame: bytes) -> None:
        assert self._write_fd is not None
        fd, start = self._write_fd, segment.size
        view = memoryview(frame)
        try:
            written = 0
            while written < len(frame):
                written += os.pwrite(fd, view[written:], start + written)
            os.fsync(fd)
        except OSError as exc:
            try:
                os.ftruncate(fd, start)
                os.fsync(fd)
            except OSError as undo:
                self._release()
                raise SpoolError(
                    f"{segment.path}: append failed ({exc}) and could not be undone ({undo}); "
                    f"the spool is closed: reopen it to recover"
                ) from exc
            raise SpoolError(f"{segment.path}: append failed, nothing was spooled: {exc}") from exc

    def _frames(self) -> Iterator[tuple[int, _Segment, int, FrameHeader, bytes]]:
        """(segment index, segment, offset, header, body) of each pending frame, oldest first."""
        offset = self._read_offset
        for index, segment in enumerate(self._segments):
            if index:
                offset = 0
            if offset >= segment.size:
                continue
            with segment.path.open("rb") as file:
                while offset < segment.size:
                    try:
                        header, body = read_frame(file, offset, segment.size)
                    except BadFrame as bad:
                        raise SpoolCorruptError(segment.path, offset, bad.reason) from None
                    yield index, segment, offset, header, body
                    offset += header.size

    def _commit(self, count: int) -> None:
        remaining, skip = count, self._read_skip
        consumed: list[tuple[_Segment, int, int]] = []  # (segment, items, payload bytes) per frame
        for index, segment, offset, header, body in self._frames():
            take = min(header.count - skip, remaining)
            if skip == 0 and take == header.count:
                size = header.payload
            else:
                items = decode_items(body, header.count, segment.path, offset)
                size = sum(len(item) for item in items[skip : skip + take])
            consumed.append((segment, take, size))
            remaining -= take
            if remaining == 0:
                end = skip + take == header.count
                position = (index, offset + header.size, 0) if end else (index, offset, skip + take)
                break
            skip = 0
        else:
            raise SpoolError(f"{self._directory}: {remaining} of the pending items are missing from the segments")
        self._move_read_position(*self._past_consumed(*position))  # durable first: if it fails, nothing changed
        for segment, items_taken, bytes_taken in consumed:
            segment.items -= items_taken
            segment.payload -= bytes_taken
            self._pending_items -= items_taken
            self._pending_bytes -= bytes_taken

    def _past_consumed(self, index: int, offset: int, skip: int) -> tuple[int, int, int]:
        """The read position (segment index, offset, skip) moved past segments it has fully consumed, except the
        newest, which stays as the one written to."""
        while index < len(self._segments) - 1 and offset >= self._segments[index].size:
            index, offset, skip = index + 1, 0, 0
        return index, offset, skip

    def _move_read_position(self, index: int, offset: int, skip: int) -> None:
        """Persist the read position, then forget and delete the segments before segment `index`."""
        self._write_position(self._segments[index].seq, offset, skip)
        consumed, self._segments = self._segments[:index], self._segments[index:]
        self._read_offset, self._read_skip = offset, skip
        for segment in consumed:
            try:
                segment.path.unlink()
            except OSError as exc:
                log.warning("%s: cannot delete consumed segment (retried on next open): %s", segment.path, exc)
