"""Follow growing log files (like Filebeat's filestream or fluent-bit's tail): every complete line, once it is
written, to an async sink, with the position of the last accepted line kept across restarts.

    registry = Registry.load(state_dir / "tail-registry.json")
    tailer = Tailer(["/var/log/auth.log", "/var/log/nginx/*.log"], sink, registry, poll_interval=0.25)
    await tailer.run(stop)  # or `await tailer.poll_once()` step by step

    async def sink(line: bytes, origin: FileOrigin) -> None:
        await queue.put(("tail", formats.decode(line, origin)))  # collectors.tail_format.TailFormats

Polling, no inotify: each poll expands the globs, follows new files, and reads what was appended. Files are
followed by identity (device, inode), so a file renamed within the globs is still the same file.

- Backpressure: the sink is awaited for each line; a slow pipeline slows the reading.
- At-least-once: after the sink returns, the line counts as accepted; the registry (`collectors.tail_state`) is
  saved at the end of each poll that accepted lines, every `flush_interval` seconds during a long read, and at
  once when the sink raises (the lines it did not accept are read again, by this tailer on its next poll or by
  the next process). A crash loses no line; it may hand on again the lines of the poll it died in. Event ids are
  content hashes, so re-reads are idempotent downstream. With a `barrier` (an awaitable that returns once
  everything the sink took so far is processed and stored, as the running engine gives), positions are saved
  only after it returned: a line is accepted once it is stored, not once it is queued.
- Rotation by rename or deletion: the file's inode is still open; it is read to its end and, once nobody has
  written to it for `rotate_wait` seconds, its last unterminated line is handed on as is (`partial`) and it is
  closed. The new file at the path is read from its start. At start-up a file of the registry renamed while
  socctl was stopped is looked for in its directory (`auth.log` -> `auth.log.1`) and read to its end too.
- copytruncate: a file smaller than what was read, or whose first bytes changed, is read again from its start
  (logged as a warning: lines written between the copy and the truncation are only in the copy).
- A line without LF waits for its end. A line over `max_line` bytes is handed on cut, flagged in its origin.
- Blank lines are skipped (they still count in line numbers).
- Held lines (`LineHolds`, for formats whose events span lines, such as audit logs): no position past the first
  line the decoder still holds is recorded; `tick` runs once per poll (held events that are due come out) and
  `release` when a file is done (read to its end after a rotation, or truncated), before its position goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import glob
import logging
import os
import stat
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Protocol

from collectors.tail_lines import MAX_LINE, FileOrigin, split_lines
from collectors.tail_state import (
    FINGERPRINT_BYTES,
    Change,
    FileIdentity,
    Fingerprint,
    Registry,
    TailEntry,
    drain_finished,
    file_change,
    reconcile,
    resume_position,
)

__all__ = ["MAX_LINE", "FileOrigin", "LineHolds", "LineSink", "Poll", "Tailer"]

log = logging.getLogger(__name__)

LineSink = Callable[[bytes, FileOrigin], Awaitable[None]]


class LineHolds(Protocol):
    """What a sink that assembles items across lines tells the tailer (see the module doc)."""

    def held(self, device: int, inode: int) -> tuple[int, int] | None:
        """(byte offset, line number) of the file's first line whose item is not out yet."""
        ...

    async def tick(self) -> bool:
        """Once per poll: hand on the held items that are due; whether there were any (positions moved)."""
        ...

    async def release(self, device: int, inode: int) -> None:
        """The file is done: hand on everything it holds."""
        ...

READ_SIZE: Final = 64 * 1024
MAX_READ_PER_POLL: Final = 4 * 1024 * 1024  # bytes of one file per poll, so that a backlog does not starve others


@dataclass(frozen=True, slots=True)
class Poll:
    lines: int  # handed to the sink and accepted
    pending: bool  # a file has more to read than one poll reads: poll again without waiting


@dataclass(eq=False, slots=True)
class _Followed:
    identity: FileIdentity
    path: str  # the followed path (kept after the file is renamed away: it names the log)
    fd: int
    fingerprint: Fingerprint
    offset: int  # after the last accepted (or skipped) line
    line: int
    skipping: bool
    carry: bytes = b""  # read after `offset`: the start of a line without its end yet
    size: int = -1  # when the size changes, the first bytes are checked again
    detached_at: float | None = None  # when it was found renamed away or deleted
    last_growth: float = 0.0

    @property
    def read_position(self) -> int:
        return self.offset + len(self.carry)

    def entry(self, held: tuple[int, int] | None = None) -> TailEntry:
        """The registry entry; `held`: (byte offset, line number) of a line not to count as accepted yet."""
        if held is not None and held[0] < self.offset:
            return TailEntry(self.path, held[0], held[1] - 1, False, self.fingerprint)
        return TailEntry(self.path, self.offset, self.line, self.skipping, self.fingerprint)


class Tailer:
    """Follows the files matching `patterns` (paths or globs) and hands each complete line to `sink`."""

    def __init__(self, patterns: Iterable[str | os.PathLike[str]], sink: LineSink, registry: Registry, *,
                 poll_interval: float = 0.25, max_line: int = MAX_LINE, rotate_wait: float = 5.0,
                 flush_interval: float = 1.0, read_size: int = READ_SIZE,
                 max_read_per_poll: int = MAX_READ_PER_POLL, clock: Callable[[], float] = time.monotonic,
                 barrier: Callable[[], Awaitable[None]] | None = None, holds: LineHolds | None = None) -> None:
        self.patterns = tuple(os.fspath(pattern) for pattern in patterns)
        if not self.patterns:
            raise ValueError("nothing to follow: no path or glob given")
        if poll_interval <= 0 or rotate_wait < 0 or flush_interval < 0 or max_line < 1 or read_size < 1:
            raise ValueError("poll_interval must be > 0, rotate_wait and flush_interval >= 0, max_line and "
                             "read_size >= 1")
        self.sink = sink
        self.registry = registry
        self.poll_interval = poll_interval
        self.max_line = max_line
        self.rotate_wait = rotate_wait
        self.flush_interval = flush_interval
        self.read_size = read_size
        self.max_read_per_poll = max(max_read_per_poll, read_size)
        self.clock = clock
        self._barrier = barrier
        self.holds = holds
        self._followed: dict[FileIdentity, _Followed] = {}
        self._started = False
        self._dirty = False
        self._last_save = clock()
        self._warned: set[tuple[str, str]] = set()

    @property
    def followed(self) -> dict[str, str]:
        """The files followed now: identity key -> followed path."""
        return {identity.key: followed.path for identity, followed in self._followed.items()}

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until `stop` is set, then save the registry and close the files. A sink error ends it (after
        saving what was accepted)."""
        try:
            while not stop.is_set():
                polled = await self.poll_once()
                if not polled.pending:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.poll_interval)
            if self._dirty and self._barrier is not None:
                await self._save()
        finally:
            self.close()

    def close(self) -> None:
        """Save the registry (without a barrier: with one, only `_save` records positions) and close every
        file."""
        if self._barrier is None:
            self._save_now()
        for followed in self._followed.values():
            with contextlib.suppress(OSError):
                os.close(followed.fd)
        self._followed.clear()
        self._started = False

    async def poll_once(self) -> Poll:
        """One poll: find files, read what was appended, finish rotated files, save the registry."""
        try:
            polled = await self._poll()
        except BaseException:
            if self._barrier is not None:  # positions are recorded only once the barrier has passed them
                raise
            try:
                self._save_now()  # what the sink accepted stays accepted
            except OSError as exc:  # the original error matters more; the lines are read again at worst
                log.warning("tail registry %s not saved after a failed poll: %s", self.registry.path, exc)
            raise
        if self._dirty:
            await self._save()
        return polled

    async def _poll(self) -> Poll:
        now = self.clock()
        if self.holds is not None and await self.holds.tick():
            self._dirty = True
        found = await asyncio.to_thread(self._scan)
        for identity, followed in self._followed.items():
            path = found.get(identity)
            if path is None:
                if followed.detached_at is None:
                    log.info("%s was renamed away or deleted: reading it to its end", followed.path)
                    followed.detached_at = followed.last_growth = now
            else:
                followed.detached_at = None
                if path != followed.path:
                    log.info("%s was renamed to %s, which is followed too", followed.path, path)
                    followed.path = path
        for identity, path in found.items():
            if identity not in self._followed:
                await self._follow(identity, path, now)
        if not self._started:
            self._started = True
            await self._recover_renamed(found, now)
        lines, pending = 0, False
        # Files renamed away first, then in the order they were found: a rotated file's last lines come before its
        # successor's first ones.
        for followed in sorted(self._followed.values(), key=lambda f: f.detached_at is None):
            sent, more, at_end = await self._read(followed, now)
            lines += sent
            pending = pending or more
            if followed.detached_at is not None and drain_finished(at_end, now - followed.last_growth,
                                                                   self.rotate_wait):
                lines += await self._finish(followed)
        return Poll(lines, pending)

    # ------------------------------------------------------------------------------------------------ files

    def _scan(self) -> dict[FileIdentity, str]:
        found: dict[FileIdentity, str] = {}
        for pattern in self.patterns:
            for path in sorted(glob.glob(pattern)):  # noqa: PTH207 - absolute patterns, which Path.glob refuses
                try:
                    info = Path(path).stat()
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    self._warn(path, "stat", "cannot follow %s: %s", path, exc.strerror or exc)
                    continue
                if stat.S_ISREG(info.st_mode):
                    found.setdefault(FileIdentity.of(info), path)
        return found

    async def _follow(self, identity: FileIdentity, path: str, now: float, *, detached: bool = False,
                      followed_path: str | None = None) -> None:
        try:
            opened = await asyncio.to_thread(_open, path, identity)
        except OSError as exc:
            self._warn(path, "open", "cannot follow %s: %s", path, exc.strerror or exc)
            return
        if opened is None:  # replaced between the scan and the open: the next poll finds the new file
            return
        fd, size, head = opened
        resume = resume_position(self.registry.tail.get(identity.key), head, size)
        if resume.restart_reason is not None:
            log.warning("%s is read from its start: %s", path, resume.restart_reason)
        elif resume.offset:
            log.info("%s: resuming at byte %d (line %d)", path, resume.offset, resume.line)
        followed = _Followed(identity, followed_path or path, fd, Fingerprint.of(head), resume.offset,
                             resume.line, resume.skipping, size=size)
        if detached:
            followed.detached_at = followed.last_growth = now
        self._followed[identity] = followed
        self._warned = {warned for warned in self._warned if warned[0] != path}

    async def _recover_renamed(self, found: dict[FileIdentity, str], now: float) -> None:
        """At start-up: registry entries of this tailer whose file is no longer under a followed path were
        renamed (read the rest of them) or deleted (forget them)."""
        def in_scope(path: str) -> bool:
            return any(fnmatch.fnmatchcase(path, pattern) for pattern in self.patterns)

        missing = reconcile(self.registry.tail, {identity.key for identity in found}, in_scope).missing
        for key in sorted(missing):
            entry = self.registry.tail[key]
            identity = FileIdentity.from_key(key)
            renamed = await asyncio.to_thread(_find_renamed, entry.path, identity)
            if renamed is not None:
                log.info("%s was renamed to %s while stopped: reading the rest of it", entry.path, renamed)
                await self._follow(identity, renamed, now, detached=True, followed_path=entry.path)
            if identity not in self._followed:
                log.info("%s (%s) is gone: forgotten", entry.path, key)
                del self.registry.tail[key]
                self._dirty = True

    async def _read(self, followed: _Followed, now: float) -> tuple[int, bool, bool]:
        """Hand on the lines appended to one file: (lines accepted, more to read, at its end)."""
        try:
            size, head = await asyncio.to_thread(_probe, followed.fd, followed.size)
        except OSError as exc:
            self._drop(followed, f"cannot read it: {exc.strerror or exc}")
            return 0, False, True
        lines = 0
        if head is not None:
            change = file_change(followed.read_position, size, followed.fingerprint.matches(head))
            if change in (Change.TRUNCATED, Change.REWRITTEN):
                log.warning("%s was %s (%d bytes now, %d read): reading it again from its start", followed.path,
                            change.value, size, followed.read_position)
                lines += await self._hand_on(followed, followed.carry, final=True)
                await self._release(followed)
                followed.offset = followed.line = 0
                followed.skipping, followed.carry = False, b""
                self._dirty = True
            followed.fingerprint = Fingerprint.of(head)
            followed.size = size
        done = 0
        while done < self.max_read_per_poll:
            try:
                chunk = await asyncio.to_thread(os.pread, followed.fd, self.read_size, followed.read_position)
            except OSError as exc:
                self._drop(followed, f"cannot read it: {exc.strerror or exc}")
                return lines, False, True
            if not chunk:
                return lines, False, True
            done += len(chunk)
            followed.last_growth = now
            lines += await self._hand_on(followed, followed.carry + chunk, final=False)
            if len(chunk) < self.read_size:
                return lines, False, True
        return lines, True, False

    async def _hand_on(self, followed: _Followed, buffer: bytes, *, final: bool) -> int:
        """The complete lines of `buffer` (the bytes after `followed.offset`) to the sink, each accepted in turn;
        the rest is kept as the carry. If the sink raises, what it did not accept is read again."""
        split = split_lines(buffer, max_line=self.max_line, skipping=followed.skipping, final=final)
        base, base_line, last = followed.offset, followed.line, len(split.lines) - 1
        sent = 0
        try:
            for index, piece in enumerate(split.lines):
                number = base_line + index + 1
                if not piece.cut and not piece.data.strip():
                    continue
                origin = FileOrigin(followed.path, followed.identity.device, followed.identity.inode,
                                    base + piece.start, base + piece.end, number, piece.cut, piece.partial)
                if piece.cut:
                    log.warning("%s:%d: line longer than %d bytes, cut", followed.path, number, self.max_line)
                await self.sink(piece.data, origin)
                sent += 1
                followed.offset, followed.line = base + piece.end, number
                followed.skipping = split.skipping and index == last
                self._dirty = True
                if self.clock() - self._last_save >= self.flush_interval:
                    await self._save()
        except BaseException:
            followed.carry = b""  # read again from the last accepted line
            raise
        if split.consumed:
            followed.offset, followed.line = base + split.consumed, base_line + len(split.lines)
            self._dirty = True
        followed.skipping = split.skipping
        followed.carry = buffer[split.consumed:]
        return sent

    async def _finish(self, followed: _Followed) -> int:
        """A file renamed away or deleted, read to its end and quiet: its unterminated last line, then close."""
        lines = await self._hand_on(followed, followed.carry, final=True)
        await self._release(followed)
        log.info("%s (renamed away or deleted) read to its end at line %d: closed", followed.path, followed.line)
        self._close(followed)
        self.registry.tail.pop(followed.identity.key, None)
        self._dirty = True
        return lines

    async def _release(self, followed: _Followed) -> None:
        if self.holds is not None:
            await self.holds.release(followed.identity.device, followed.identity.inode)

    def _drop(self, followed: _Followed, reason: str) -> None:
        self._warn(followed.path, "read", "%s: %s; it is opened again on the next poll", followed.path, reason)
        self._close(followed)

    def _close(self, followed: _Followed) -> None:
        self._followed.pop(followed.identity, None)
        with contextlib.suppress(OSError):
            os.close(followed.fd)

    def _warn(self, path: str, what: str, message: str, *args: object) -> None:
        if (path, what) not in self._warned:  # once per path and kind of failure, not once per poll
            self._warned.add((path, what))
            log.warning(message, *args)

    # ------------------------------------------------------------------------------------------------ registry

    def _sync_registry(self) -> None:
        holds = self.holds
        for followed in self._followed.values():
            identity = followed.identity
            held = holds.held(identity.device, identity.inode) if holds is not None else None
            self.registry.tail[identity.key] = followed.entry(held)
        self._dirty = False
        self._last_save = self.clock()

    async def _save(self) -> None:
        if self._barrier is not None:  # the lines handed on so far are processed and stored before they count
            await self._barrier()
        self._sync_registry()
        await asyncio.to_thread(self.registry.save)

    def _save_now(self) -> None:
        self._sync_registry()
        self.registry.save()


def _open(path: str, identity: FileIdentity) -> tuple[int, int, bytes] | None:
    fd = os.open(path, os.O_RDONLY)
    try:
        info = os.fstat(fd)
        if FileIdentity.of(info) != identity:
            os.close(fd)
            return None
        return fd, info.st_size, os.pread(fd, FINGERPRINT_BYTES, 0)
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(fd)
        raise


def _probe(fd: int, last_size: int) -> tuple[int, bytes | None]:
    """The file's size, and its first bytes when the size changed (to tell appends from rewrites)."""
    size = os.fstat(fd).st_size
    return size, (os.pread(fd, FINGERPRINT_BYTES, 0) if size != last_size else None)


def _find_renamed(path: str, identity: FileIdentity) -> str | None:
    """The file of `identity` in the directory of `path`, where logrotate renames files (`auth.log.1`)."""
    directory = Path(path).parent
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.inode() == identity.inode and entry.is_file(follow_symlinks=False):
                    info = entry.stat(follow_symlinks=False)
                    if FileIdentity.of(info) == identity:
                        return entry.path
    except OSError:
        return None
    return None
