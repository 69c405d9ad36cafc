"""Files for YARA: a sample (quarantine) directory watch, and the one pure function that makes any sample, watched
or uploaded by an agent (`collectors.upload_queue`), an `Event` carrying the file's bytes as its `payload` (the
detection stage scans payloads with YARA; the bytes are never stored).

    watch = SampleWatch([Path("/var/quarantine")], state_dir / "samples.json", max_bytes=32 << 20)
    await watch.run(stop, sink)                 # sink: async (Event | Rejected) -> None

Every sample is one ECS event: `event.kind: event`, `event.category: [file]`, `event.type: [info]`,
`event.module: socctl`, `event.dataset: socctl.sample`, `event.action` (`sample-collected` for a watched file,
`sample-uploaded` for an agent's upload), `file.path/name/directory/extension/size/mtime`, `file.hash.md5/sha1/
sha256` (and `related.hash`), `file.type: file` (ECS: file, dir or symlink) with the magic-byte type
(`correlator.yara_scan.guess_filetype`: EXE, ELF, PDF, ZIP, ...) as `sample.type` and its MIME type as
`file.mime_type`, `host.name`; an upload adds `agent.name`, `organization.id`, `source.ip` and `sample.duplicate`.
The event's time is the file's mtime (an upload's: its arrival); its id is `event_id_for` over its summary (`raw`:
path, host, time, hashes, sender), stable when the same file is handed on again after a crash.

The watch polls its directories (recursively; hidden files and directories, whose names start with ".", as copy
tools name their temporary files, and symlinks are left alone). A file is taken once it is stable: the same
device, inode, size and mtime in two polls in a row (a file being copied in grows). It is read and hashed off the
event loop; a file over `max_bytes` is a `Rejected` naming its size, the limit and its hashes (computed
streaming: analysts can look it up); a file that cannot be read is a `Rejected` with the OS's reason (once per
version of the file; it is tried again each poll).

The registry (`registry_path`, `collectors.sample_registry`: JSON written atomically) holds the files already
handed on, by device:inode: path, size, mtime_ns, sha256. A file is recorded only after the
sink returned for it and `barrier()` (when given) returned: at-least-once, a crash hands it on again. A known
file with the same size and mtime is not read again; a renamed one is not handed on again; one whose content
changed (replaced, rewritten) is. Entries of files no longer present are forgotten, so the registry holds at
most the files in the directories.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import os
import socket
import stat
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Final, NamedTuple, Self

import orjson

from collectors.sample_registry import SampleEntry, SampleRegistry
from correlator.model import Event, EventOrigin, Rejected, event_id_for, flatten, ms_to_iso
from correlator.yara_scan import guess_filetype

__all__ = [
    "DEFAULT_MAX_SAMPLE_BYTES",
    "FORMAT",
    "Barrier",
    "Digests",
    "SampleSink",
    "SampleSource",
    "SampleWatch",
    "Sighting",
    "oversize_rejected",
    "sample_event",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_SAMPLE_BYTES: Final = 32 << 20
FORMAT: Final = "sample"
_CHUNK: Final = 1 << 20
_MIME_TYPES: Final = {
    "EXE": "application/x-dosexec", "ELF": "application/x-executable", "PDF": "application/pdf",
    "ZIP": "application/zip", "RAR": "application/vnd.rar", "GZIP": "application/gzip",
    "7Z": "application/x-7z-compressed", "OLE": "application/x-ole-storage", "MDMP": "application/x-dmp",
    "MACHO": "application/x-mach-binary",
}

Item = Event | Rejected
SampleSink = Callable[[Item], Awaitable[None]]
Barrier = Callable[[], Awaitable[None]]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


# -- the event ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Digests:
    """A content's size and hashes."""

    size: int
    md5: str
    sha1: str
    sha256: str

    @classmethod
    def of(cls, data: bytes) -> Self:
        return cls(len(data), hashlib.md5(data).hexdigest(), hashlib.sha1(data).hexdigest(),
                   hashlib.sha256(data).hexdigest())

    @classmethod
    def of_chunks(cls, chunks: Iterable[bytes]) -> Self:
        """The digests of a content read piece by piece (never whole in memory)."""
        md5, sha1, sha256 = hashlib.md5(), hashlib.sha1(), hashlib.sha256()
        size = 0
        for chunk in chunks:
            size += len(chunk)
            md5.update(chunk)
            sha1.update(chunk)
            sha256.update(chunk)
        return cls(size, md5.hexdigest(), sha1.hexdigest(), sha256.hexdigest())


@dataclass(frozen=True, slots=True)
class SampleSource:
    """Where a sample was found and who sent it. A watched file has `mtime_ns`; an upload has the agent (its
    token's name and organization), the peer and `duplicate` (its content was stored already)."""

    path: str  # file.path: the file on this sensor, or the agent's path for it (X-File-Name)
    host: str | None  # host.name: the host the file is on
    received_ms: int  # when socctl took the file (event.ingested)
    mtime_ns: int | None = None
    agent: str | None = None
    organization: str | None = None
    peer: str | None = None
    duplicate: bool = False
    origin: str | None = None  # the event's origin (log.file.path); `path` when None

    @property
    def uploaded(self) -> bool:
        return self.agent is not None

    @property
    def timestamp_ms(self) -> int:
        """The event's time: the file's mtime, else its arrival."""
        return self.mtime_ns // 1_000_000 if self.mtime_ns is not None else self.received_ms


def sample_event(data: bytes, source: SampleSource, digests: Digests | None = None) -> Event:
    """A sample as an `Event` with `payload=data` (see the module doc for its fields). `digests`: those of `data`,
    when the caller has them already. Pure."""
    digests = digests if digests is not None else Digests.of(data)
    filetype = guess_filetype(data)
    file_doc = _file_doc(source.path, digests, source.mtime_ns)
    file_doc["type"] = "file"
    if filetype in _MIME_TYPES:
        file_doc["mime_type"] = _MIME_TYPES[filetype]
    doc: dict[str, Any] = {
        "event": {"kind": "event", "category": ["file"], "type": ["info"], "module": "socctl",
                  "dataset": "socctl.sample", "action": "sample-uploaded" if source.uploaded else "sample-collected",
                  "ingested": ms_to_iso(source.received_ms)},
        "file": file_doc,
        "related": {"hash": [digests.sha256, digests.sha1, digests.md5]},
    }
    if source.host:
        doc["host"] = {"name": source.host}
    if source.agent is not None:
        doc["agent"] = {"name": source.agent}
    if source.organization is not None:
        doc["organization"] = {"id": source.organization}
    if source.peer is not None:
        doc["source"] = _source_doc(source.peer)
    sample: dict[str, Any] = {"type": filetype} if filetype else {}
    if source.uploaded:
        sample["duplicate"] = source.duplicate
    if sample:
        doc["sample"] = sample
    raw = orjson.dumps(_summary(source, digests, filetype)).decode()
    return Event(event_id_for(raw, source.timestamp_ms), source.timestamp_ms, raw, ecs=doc, fields=flatten(doc),
                 origin=EventOrigin(path=source.origin or source.path, format=FORMAT), payload=data)


def oversize_rejected(digests: Digests, source: SampleSource, limit: int) -> Rejected:
    """The dead letter of a sample over the size limit: the reason names its size, the limit and its sha256; `raw`
    is its summary with every hash."""
    reason = (f"sample of {digests.size} bytes exceeds the limit of {limit} bytes: not scanned "
              f"(sha256 {digests.sha256})")
    raw = orjson.dumps(_summary(source, digests, "")).decode()
    return Rejected(reason, EventOrigin(path=source.origin or source.path, format=FORMAT), raw)


def _summary(source: SampleSource, digests: Digests, filetype: str) -> dict[str, Any]:
    """The event's `raw`: what identifies this sighting of the file (not when socctl took it, so that handing it
    on again after a crash gives the same id; an upload's arrival time is its own, fixed when it is queued)."""
    summary: dict[str, Any] = {
        "@timestamp": ms_to_iso(source.timestamp_ms), "path": source.path, "host": source.host,
        "size": digests.size, "sha256": digests.sha256, "sha1": digests.sha1, "md5": digests.md5,
        "type": filetype or None, "agent": source.agent, "organization": source.organization, "peer": source.peer,
    }
    if source.uploaded:
        summary["duplicate"] = source.duplicate
    return {key: value for key, value in summary.items() if value is not None}


def _file_doc(path: str, digests: Digests, mtime_ns: int | None) -> dict[str, Any]:
    """ECS `file.*` of a path, Windows (`C:\\x\\y.exe`, `\\\\server\\share\\y`) or POSIX."""
    pure = PureWindowsPath(path) if "\\" in path or (len(path) > 1 and path[1] == ":") else PurePosixPath(path)
    doc: dict[str, Any] = {"path": path, "name": pure.name or path, "size": digests.size,
                           "hash": {"md5": digests.md5, "sha1": digests.sha1, "sha256": digests.sha256}}
    parent = str(pure.parent)
    if pure.name and parent not in ("", "."):
        doc["directory"] = parent
    if pure.suffix[1:]:
        doc["extension"] = pure.suffix[1:].lower()
    if mtime_ns is not None:
        doc["mtime"] = ms_to_iso(mtime_ns // 1_000_000)
    return doc


def _source_doc(peer: str) -> dict[str, Any]:
    try:
        ipaddress.ip_address(peer)
    except ValueError:
        return {"address": peer}
    return {"address": peer, "ip": peer}


# -- the watch ------------------------------------------------------------------------------------------------------


class Sighting(NamedTuple):
    """A file as one poll saw it: identity, size and mtime."""

    key: str  # device:inode
    root: str  # the watched directory it is under
    size: int
    mtime_ns: int


class _Scan(NamedTuple):
    files: dict[Path, Sighting]
    complete_roots: set[str]  # listed without an error: their vanished files are forgotten


class _Taken(NamedTuple):
    item: Item
    digests: Digests | None  # None: not read (the file could not be)


class SampleWatch:
    """Hands each stable file under `directories` to the sink once (see the module doc). `host` is `host.name`
    (this machine's name by default); `clock` gives the time a file is taken, in epoch ms; `barrier`, when given,
    is awaited before anything handed on is recorded; the registry is saved at the latest every
    `files_per_save` files and at the end of each poll."""

    def __init__(self, directories: Iterable[Path | str], registry_path: Path | str | None, *,
                 max_bytes: int = DEFAULT_MAX_SAMPLE_BYTES, poll_interval: float = 2.0,
                 clock: Callable[[], int] = _now_ms, host: str | None = None, barrier: Barrier | None = None,
                 files_per_save: int = 32) -> None:
        self.directories = [Path(directory) for directory in directories]
        if not self.directories:
            raise ValueError("a sample watch needs at least one directory")
        if max_bytes < 0 or poll_interval <= 0 or files_per_save < 1:
            raise ValueError(f"max_bytes must be >= 0, poll_interval > 0 and files_per_save >= 1, got {max_bytes}, "
                             f"{poll_interval}, {files_per_save}")
        self.registry = SampleRegistry.load(Path(registry_path)) if registry_path is not None else SampleRegistry()
        self.max_bytes = max_bytes
        self.poll_interval = poll_interval
        self.clock = clock
        self.host = host if host is not None else socket.gethostname()
        self.barrier = barrier
        self.files_per_save = files_per_save
        self.handed_on = 0
        self._last_seen: dict[Path, Sighting] = {}
        self._failed: dict[Path, Sighting] = {}  # reported unreadable in this version
        self._warned: set[str] = set()
        self._dirty = False

    async def run(self, stop: asyncio.Event, sink: SampleSink) -> None:
        """Poll until `stop` is set. Raises what the sink or the barrier raises (nothing more is recorded)."""
        while not stop.is_set():
            await self.poll_once(sink, stop)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.poll_interval)

    async def poll_once(self, sink: SampleSink, stop: asyncio.Event | None = None) -> int:
        """One poll; the number of items handed to the sink."""
        scan = await asyncio.to_thread(self._scan)
        self._forget_gone(scan)
        handed: list[tuple[str, SampleEntry]] = []
        count = 0
        try:
            for path, sighting in sorted(scan.files.items()):
                if stop is not None and stop.is_set():
                    break
                if self._known(path, sighting) or self._last_seen.get(path) != sighting:
                    continue  # handed on already, or not stable yet
                taken = await self._take(path, sighting)
                if taken is None:
                    continue
                await sink(taken.item)
                count += 1
                if taken.digests is None:
                    self._failed[path] = sighting
                    continue
                self._failed.pop(path, None)
                handed.append((sighting.key, SampleEntry(os.fspath(path), sighting.root, sighting.size,
                                                         sighting.mtime_ns, taken.digests.sha256)))
                if len(handed) >= self.files_per_save:
                    await self._record(handed)
                    handed = []
            await self._record(handed)
        finally:
            self._last_seen = scan.files
        return count

    def _known(self, path: Path, sighting: Sighting) -> bool:
        """Whether this version of the file was handed on (renamed since, perhaps: the entry follows it)."""
        entry = self.registry.files.get(sighting.key)
        if entry is None or (entry.size, entry.mtime_ns) != (sighting.size, sighting.mtime_ns):
            return False
        if entry.path != os.fspath(path):
            self.registry.files[sighting.key] = SampleEntry(os.fspath(path), sighting.root, entry.size,
                                                            entry.mtime_ns, entry.sha256)
            self._dirty = True
        return True

    async def _take(self, path: Path, sighting: Sighting) -> _Taken | None:
        """The file's event (or dead letter); None when it is not the file the scan saw any more (changed,
        replaced, gone: looked at again next poll), its content was handed on already, or it is unreadable and
        was reported so."""
        source = SampleSource(os.fspath(path), self.host, self.clock(), mtime_ns=sighting.mtime_ns)
        try:
            read = await asyncio.to_thread(_read_sample, path, sighting, self.max_bytes)
        except OSError as exc:
            if self._failed.get(path) == sighting:
                return None
            return _Taken(Rejected(f"cannot read sample: {exc.strerror or exc}",
                                   EventOrigin(path=source.path, format=FORMAT)), None)
        if read is None:
            return None
        data, digests = read
        if self._same_content(path, sighting, digests.sha256):
            return None
        if data is None:
            return _Taken(oversize_rejected(digests, source, self.max_bytes), digests)
        return _Taken(await asyncio.to_thread(sample_event, data, source, digests), digests)

    def _same_content(self, path: Path, sighting: Sighting, sha256: str) -> bool:
        """A file touched, or replaced by a copy of itself: the entry is brought up to date, nothing handed on."""
        known = self.registry.files.get(sighting.key)
        key = sighting.key
        if known is None or known.path != os.fspath(path):
            found = self.registry.by_path(os.fspath(path))
            if found is not None:
                key, known = found
        if known is None or known.sha256 != sha256:
            return False
        self.registry.files.pop(key, None)
        self.registry.files[sighting.key] = SampleEntry(os.fspath(path), sighting.root, sighting.size,
                                                        sighting.mtime_ns, sha256)
        self._dirty = True
        return True

    async def _record(self, handed: list[tuple[str, SampleEntry]]) -> None:
        if handed:
            if self.barrier is not None:
                await self.barrier()
            for key, entry in handed:
                replaced = self.registry.by_path(entry.path)  # the file it replaced (renamed over it)
                if replaced is not None:
                    del self.registry.files[replaced[0]]
                self.registry.files[key] = entry
            self.handed_on += len(handed)
            self._dirty = True
        if self._dirty:
            self._dirty = False
            await asyncio.to_thread(self.registry.save)

    def _forget_gone(self, scan: _Scan) -> None:
        """Forget the entries of files gone from directories listed whole (one whose path holds another file
        now is kept until that file is looked at: it may have the same content)."""
        present = {sighting.key for sighting in scan.files.values()}
        gone = [key for key, entry in self.registry.files.items()
                if key not in present and entry.root in scan.complete_roots and Path(entry.path) not in scan.files]
        for key in gone:
            del self.registry.files[key]
            self._dirty = True
        self._failed = {path: sighting for path, sighting in self._failed.items() if path in scan.files}

    def _scan(self) -> _Scan:
        files: dict[Path, Sighting] = {}
        complete: set[str] = set()
        registry = os.fspath(self.registry.path) if self.registry.path is not None else None
        for directory in self.directories:
            root = os.fspath(directory)
            errors: list[OSError] = []
            if not directory.is_dir():
                self._warn_once(root, f"sample directory {root} is missing or not a directory")
                continue
            for parent, dirs, names in os.walk(directory, onerror=errors.append):
                dirs[:] = sorted(name for name in dirs if not name.startswith("."))
                for name in names:
                    path = Path(parent, name)
                    if name.startswith(".") or path in files or os.fspath(path) == registry:
                        continue
                    try:
                        info = path.lstat()
                    except OSError:
                        continue  # gone since listed
                    if stat.S_ISREG(info.st_mode):
                        files[path] = Sighting(f"{info.st_dev}:{info.st_ino}", root, info.st_size,
                                               info.st_mtime_ns)
            for error in errors:
                self._warn_once(f"{error.filename}", f"cannot list {error.filename}: {error.strerror or error}")
            if not errors:
                complete.add(root)
                self._warned.discard(root)
        return _Scan(files, complete)

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s", message)


def _read_sample(path: Path, sighting: Sighting, limit: int) -> tuple[bytes | None, Digests] | None:
    """The content (None when over `limit`) and digests of the file the scan saw; None when the file at `path`
    is no longer that one, or changed while being read. Symlinks are not followed."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as handle:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode) or _sighting_of(before, sighting.root) != sighting:
            return None
        if before.st_size > limit:
            digests = Digests.of_chunks(iter(lambda: handle.read(_CHUNK), b""))
            data = None
        else:
            content = handle.read(limit + 1)
            if len(content) > limit:
                return None  # grew since the scan
            digests, data = Digests.of(content), content
        if _sighting_of(os.fstat(fd), sighting.root) != sighting:
            return None
    return data, digests


def _sighting_of(info: os.stat_result, root: str) -> Sighting:
    return Sighting(f"{info.st_dev}:{info.st_ino}", root, info.st_size, info.st_mtime_ns)
