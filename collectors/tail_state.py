"""What the tailer and the directory watch remember across restarts, and the pure decisions made from it.

The registry is one JSON file, written atomically (temp file, fsync, rename, fsync of the directory):

    {"version": 1,
     "tail":    {"2049:131074": {"path": "/var/log/auth.log", "offset": 8812, "line": 97, "skipping": false,
                                 "fingerprint": {"length": 1024, "sha256": "..."}}},
     "dropped": {"2049:140011": {"path": "/srv/drop/a.evtx", "watch": "/srv/drop", "sha256": "...",
                                 "size": 69632, "mtime_ns": 1732064400123456789}}}

A file is known by its identity, device and inode (`FileIdentity.key`), which a rename keeps. An inode can be
reused by a new file once the old one is gone, so a tailed file also carries a fingerprint of its first bytes (up
to `FINGERPRINT_BYTES`): an entry whose fingerprint does not match the file's head is another file, read from
the start. `offset`/`line` are where the last line the sink accepted ends (the byte after its newline) and its
line number; `skipping`: that line was longer than the limit and cut, the rest of it is skipped on resume.

A registry that cannot be read or parsed is moved aside (`<name>.corrupt`) with a warning and reading starts over
(each file from its start: at-least-once, never a crash). Share one `Registry` object between the tailer and the
watches writing to the same file: each save writes the whole registry.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Final, NamedTuple, Self

import orjson

from collectors.errors import CollectorError

__all__ = [
    "FINGERPRINT_BYTES",
    "REGISTRY_VERSION",
    "Change",
    "DroppedEntry",
    "FileIdentity",
    "Fingerprint",
    "Reconciled",
    "Registry",
    "RegistryError",
    "Resume",
    "TailEntry",
    "drain_finished",
    "file_change",
    "reconcile",
    "resume_position",
]

log = logging.getLogger(__name__)

REGISTRY_VERSION: Final = 1
FINGERPRINT_BYTES: Final = 1024


class RegistryError(CollectorError):
    """A registry file whose content is not a registry (the caller starts over)."""


@dataclass(frozen=True, slots=True, order=True)
class FileIdentity:
    device: int
    inode: int

    @classmethod
    def of(cls, stat: os.stat_result) -> Self:
        return cls(stat.st_dev, stat.st_ino)

    @property
    def key(self) -> str:
        return f"{self.device}:{self.inode}"

    @classmethod
    def from_key(cls, key: str) -> Self:
        device, sep, inode = key.partition(":")
        if not sep or not device.isdigit() or not inode.isdigit():
            raise ValueError(f"not a device:inode key: {key!r}")
        return cls(int(device), int(inode))


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """SHA-256 of a file's first `length` bytes (at most `FINGERPRINT_BYTES`; fewer while the file is smaller)."""

    length: int
    sha256: str

    @classmethod
    def of(cls, head: bytes) -> Self:
        head = head[:FINGERPRINT_BYTES]
        return cls(len(head), hashlib.sha256(head).hexdigest())

    def matches(self, head: bytes) -> bool:
        """Whether a file starting with `head` (its first `FINGERPRINT_BYTES` or all of it) is the file this
        fingerprint was taken of: as long as before, and the same bytes."""
        return len(head) >= self.length and hashlib.sha256(head[: self.length]).hexdigest() == self.sha256


_EMPTY = Fingerprint.of(b"")


@dataclass(frozen=True, slots=True)
class TailEntry:
    path: str
    offset: int = 0
    line: int = 0
    skipping: bool = False
    fingerprint: Fingerprint = _EMPTY

    def __post_init__(self) -> None:
        if self.offset < 0 or self.line < 0:
            raise ValueError(f"negative offset or line: {self.offset}, {self.line}")

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "offset": self.offset, "line": self.line, "skipping": self.skipping,
                "fingerprint": {"length": self.fingerprint.length, "sha256": self.fingerprint.sha256}}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Self:
        fingerprint = doc["fingerprint"]
        return cls(path=_str(doc["path"]), offset=_int(doc["offset"]), line=_int(doc["line"]),
                   skipping=bool(doc.get("skipping", False)),
                   fingerprint=Fingerprint(_int(fingerprint["length"]), _str(fingerprint["sha256"])))


@dataclass(frozen=True, slots=True)
class DroppedEntry:
    """A file a directory watch has handed on: its content hash, and size and mtime to skip re-hashing it."""

    path: str
    watch: str  # the watched directory (its entries are pruned by that watch only)
    sha256: str
    size: int
    mtime_ns: int

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "watch": self.watch, "sha256": self.sha256, "size": self.size,
                "mtime_ns": self.mtime_ns}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Self:
        return cls(path=_str(doc["path"]), watch=_str(doc["watch"]), sha256=_str(doc["sha256"]),
                   size=_int(doc["size"]), mtime_ns=_int(doc["mtime_ns"]))


def _int(value: Any) -> int:
    if type(value) is not int:
        raise TypeError(f"expected an integer, got {value!r}")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


@dataclass
class Registry:
    """The tailer's offsets (`tail`) and the directory watches' ingested files (`dropped`), keyed by
    `FileIdentity.key`. `path` None keeps it in memory only."""

    path: Path | None = None
    tail: dict[str, TailEntry] = field(default_factory=dict)
    dropped: dict[str, DroppedEntry] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Self:
        """The registry saved at `path`; empty when there is none. A file that cannot be read or is not a
        registry is moved aside to `<path>.corrupt` and an empty registry returned, with a warning."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return cls(path)
        except OSError as exc:
            log.warning("tail registry %s cannot be read (%s): starting over, every file from its start",
                        path, exc.strerror or exc)
            return cls(path)
        try:
            registry = cls.from_dict(_loads(data, path))
        except RegistryError as exc:
            aside = path.with_name(path.name + ".corrupt")
            with contextlib.suppress(OSError):
                path.replace(aside)
            log.warning("%s; moved to %s, starting over: every file is read from its start", exc, aside)
            return cls(path)
        registry.path = path
        return registry

    def to_dict(self) -> dict[str, Any]:
        return {"version": REGISTRY_VERSION,
                "tail": {key: entry.to_dict() for key, entry in sorted(self.tail.items())},
                "dropped": {key: entry.to_dict() for key, entry in sorted(self.dropped.items())}}

    @classmethod
    def from_dict(cls, doc: Any, where: str = "<registry>") -> Self:
        if not isinstance(doc, dict) or doc.get("version") != REGISTRY_VERSION:
            version = doc.get("version") if isinstance(doc, dict) else None
            raise RegistryError(f"not a version {REGISTRY_VERSION} tail registry (version {version!r})", path=where)
        try:
            tail = {_checked_key(key): TailEntry.from_dict(value) for key, value in doc.get("tail", {}).items()}
            dropped = {_checked_key(key): DroppedEntry.from_dict(value)
                       for key, value in doc.get("dropped", {}).items()}
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise RegistryError(f"malformed tail registry entry: {exc!r}", path=where) from exc
        return cls(None, tail, dropped)

    def save(self) -> None:
        """Write the registry atomically: a crash leaves the old or the new file, never half of one."""
        if self.path is None:
            return
        data = orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            with temp.open("wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            temp.replace(self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                temp.unlink()
            raise
        _fsync_directory(self.path.parent)


def _loads(data: bytes, path: Path) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise RegistryError(f"tail registry is not JSON: {exc}", path=path) from exc


def _checked_key(key: str) -> str:
    FileIdentity.from_key(key)
    return key


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):  # not every file system syncs directories
            os.fsync(fd)
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------------------------ decisions


class Resume(NamedTuple):
    offset: int
    line: int
    skipping: bool = False
    restart_reason: str | None = None  # why a known file is read from its start again (to log)


def resume_position(entry: TailEntry | None, head: bytes, size: int) -> Resume:
    """Where to start reading a file first seen (at start-up or when it appears), given its registry entry (by
    identity), its first bytes and its size: the registry's position, or the start of a file the registry does
    not know, whose inode now holds other content, or that was truncated while nobody watched."""
    if entry is None:
        return Resume(0, 0)
    if not entry.fingerprint.matches(head):
        return Resume(0, 0, restart_reason="its inode holds another file now (the first bytes differ)")
    if size < entry.offset:
        return Resume(0, 0, restart_reason=f"it was truncated ({size} bytes, {entry.offset} read before)")
    return Resume(entry.offset, entry.line, entry.skipping)


class Change(StrEnum):
    SAME = "same"  # nothing new
    GROWN = "grown"  # read on
    TRUNCATED = "truncated"  # copytruncate (size below what was read): read from the start
    REWRITTEN = "rewritten"  # the first bytes changed (truncated and written past the old offset): from the start


def file_change(read_position: int, size: int, head_matches: bool) -> Change:
    """What happened to a followed file (same identity) since the last poll, given how far it has been read,
    its size now and whether its first bytes still match its fingerprint."""
    if not head_matches:
        return Change.REWRITTEN
    if size < read_position:
        return Change.TRUNCATED
    if size > read_position:
        return Change.GROWN
    return Change.SAME


def drain_finished(at_end: bool, quiet_seconds: float, rotate_wait: float) -> bool:
    """Whether a file renamed away or deleted is done with: read to its end and not written for `rotate_wait`
    seconds (writers keep writing into a renamed file until they reopen their log)."""
    return at_end and quiet_seconds >= rotate_wait


class Reconciled(NamedTuple):
    present: frozenset[str]  # entries of files seen under the followed paths
    missing: frozenset[str]  # in scope but not seen: renamed away (look for them) or deleted (forget them)


def reconcile(entries: Mapping[str, TailEntry], seen: Collection[str],
              in_scope: Callable[[str], bool]) -> Reconciled:
    """The registry merged with a scan at start-up: which entries are of files found under the followed paths,
    and which belong to this tailer (`in_scope(entry.path)`) but were not found. Entries out of scope belong to
    another tailer sharing the registry and are left alone."""
    present = frozenset(key for key in entries if key in seen)
    missing = frozenset(key for key, entry in entries.items() if key not in seen and in_scope(entry.path))
    return Reconciled(present, missing)
