"""Watch a directory for files dropped into it whole (EVTX exports, agents' uploads): each complete file once to
an async sink, remembered in the tail registry (`collectors.tail_state.Registry.dropped`) so that a restart does
not hand it on again and a file whose content changes is handed on again.

    watch = DirectoryWatch("/srv/drop/evtx", "*.evtx", sink, registry, poll_interval=1.0)
    await watch.run(stop)

    async def sink(dropped: DroppedFile) -> None:
        ...  # collectors.files.read_path(dropped.path), off the event loop, each item into the queue

A file is complete when its size and mtime are the same in two polls in a row (a copy in progress grows). It is
then hashed (SHA-256 of its content); a file whose identity (device, inode) and content are known, or whose content
was already handed on under another name in this directory, is not handed on again. The entry is recorded after
the sink returns: a crash or a sink error hands the file on again (at-least-once; event ids are content hashes).
Hidden files (`.name`, as copy tools name their temporary files) are not considered. Entries of files no longer
in the directory are forgotten.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, NamedTuple

from collectors.tail_state import DroppedEntry, FileIdentity, Registry

__all__ = ["DirectoryWatch", "DroppedFile", "FileSink", "Sighting", "is_complete"]

log = logging.getLogger(__name__)

_HASH_CHUNK: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class DroppedFile:
    path: Path
    identity: FileIdentity
    size: int
    mtime_ns: int
    sha256: str


FileSink = Callable[[DroppedFile], Awaitable[None]]


class Sighting(NamedTuple):
    identity: FileIdentity
    size: int
    mtime_ns: int


def is_complete(before: Sighting | None, now: Sighting) -> bool:
    """Whether a file is done being written: seen with the same identity, size and mtime in the previous poll."""
    return before == now


class DirectoryWatch:
    """Hands each complete file matching `pattern` (a glob under `directory`, `**/*.evtx` for subdirectories)
    to `sink` once."""

    def __init__(self, directory: str | os.PathLike[str], pattern: str, sink: FileSink, registry: Registry, *,
                 poll_interval: float = 1.0) -> None:
        if poll_interval <= 0:
            raise ValueError("poll_interval must be > 0")
        self.directory = Path(directory)
        self.pattern = pattern
        self.sink = sink
        self.registry = registry
        self.poll_interval = poll_interval
        self._watch = os.fspath(self.directory)
        self._last_seen: dict[Path, Sighting] = {}
        self._warned: set[Path] = set()
        self._dirty = False

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.poll_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.poll_interval)

    async def poll_once(self) -> list[DroppedFile]:
        """One poll: the files handed to the sink (and recorded)."""
        seen = await asyncio.to_thread(self._scan)
        if seen is None:  # the directory cannot be listed: remember nothing new, forget nothing
            return []
        handed: list[DroppedFile] = []
        self._forget_gone({sighting.identity.key for sighting in seen.values()})
        try:
            for path, sighting in sorted(seen.items()):
                if not is_complete(self._last_seen.get(path), sighting):
                    continue
                dropped = await self._consider(path, sighting)
                if dropped is None:
                    continue
                await self.sink(dropped)
                handed.append(dropped)
                self._remember(dropped)
                await self._save()  # recorded as soon as it is handed on
        finally:
            self._last_seen = seen
            if self._dirty:
                await self._save()
        return handed

    def _scan(self) -> dict[Path, Sighting] | None:
        seen: dict[Path, Sighting] = {}
        if not self.directory.is_dir():
            self._warn_once(self.directory, f"watched directory {self.directory} is missing or not a directory")
            return None
        try:
            paths = sorted(self.directory.glob(self.pattern))
        except OSError as exc:
            self._warn_once(self.directory, f"cannot list {self.directory}: {exc.strerror or exc}")
            return None
        self._warned.discard(self.directory)
        for path in paths:
            if path.name.startswith("."):
                continue
            try:
                info = path.stat()
            except FileNotFoundError:
                continue
            except OSError as exc:
                self._warn_once(path, f"cannot read {path}: {exc.strerror or exc}")
                continue
            if path.is_file():
                seen[path] = Sighting(FileIdentity.of(info), info.st_size, info.st_mtime_ns)
        return seen

    async def _consider(self, path: Path, sighting: Sighting) -> DroppedFile | None:
        """The file to hand on, or None when its content was handed on already."""
        key = sighting.identity.key
        entry = self.registry.dropped.get(key)
        if entry is not None and (entry.size, entry.mtime_ns, entry.path) == (sighting.size, sighting.mtime_ns,
                                                                              os.fspath(path)):
            return None  # unchanged since it was handed on: not even hashed again
        try:
            sha256 = await asyncio.to_thread(_sha256, path)
        except OSError as exc:
            self._warn_once(path, f"cannot read {path}: {exc.strerror or exc}")
            return None
        dropped = DroppedFile(path, sighting.identity, sighting.size, sighting.mtime_ns, sha256)
        known = entry is not None and entry.sha256 == sha256
        copy_of = None if known else next(
            (other.path for other_key, other in self.registry.dropped.items()
             if other.watch == self._watch and other.sha256 == sha256 and other_key != key), None)
        if known or copy_of is not None:
            if copy_of is not None:
                log.info("%s has the content of %s, already handed on: skipped", path, copy_of)
            self._remember(dropped)
            return None
        if entry is not None:
            log.info("%s changed since it was handed on: handing it on again", path)
        return dropped

    def _remember(self, dropped: DroppedFile) -> None:
        self.registry.dropped[dropped.identity.key] = DroppedEntry(
            os.fspath(dropped.path), self._watch, dropped.sha256, dropped.size, dropped.mtime_ns)
        self._dirty = True

    def _forget_gone(self, present: set[str]) -> None:
        gone = [key for key, entry in self.registry.dropped.items() if entry.watch == self._watch
                and key not in present]
        for key in gone:
            del self.registry.dropped[key]
            self._dirty = True

    async def _save(self) -> None:
        self._dirty = False
        await asyncio.to_thread(self.registry.save)

    def _warn_once(self, path: Path, message: str) -> None:
        if path not in self._warned:
            self._warned.add(path)
            log.warning("%s", message)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
