"""What the sample watch (`collectors.samples.SampleWatch`) remembers across restarts: the files it handed on, by
device:inode, in one JSON file written atomically (temp file, fsync, rename, fsync of the directory)::

    {"version": 1,
     "files": {"2049:140011": {"path": "/var/quarantine/a.exe", "root": "/var/quarantine",
                               "size": 69632, "mtime_ns": 1732064400123456789, "sha256": "..."}}}

`root` is the watched directory the file is under: its entries are forgotten only when that directory was
listed whole. A registry that cannot be read or parsed is moved aside (`<name>.corrupt`) with a warning and the
watch starts over: every file is handed on again (at-least-once, never a crash).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Self

import orjson

from collectors.errors import CollectorError

__all__ = ["REGISTRY_VERSION", "RegistryError", "SampleEntry", "SampleRegistry", "fsync_directory",
           "write_atomically"]

log = logging.getLogger(__name__)

REGISTRY_VERSION: Final = 1


def write_atomically(path: Path, data: bytes) -> None:
    """Write `path` so that a crash leaves the old file or the new one, never half of one: a temp file in the
    same directory (mode 0600), fsync, rename, fsync of the directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        Path(temp).replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(temp).unlink()
        raise
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):  # not every file system syncs directories
            os.fsync(fd)
    finally:
        os.close(fd)


# -- the registry --------------------------------------------------------------------------------------------------


class RegistryError(CollectorError):
    """A sample registry whose content is not one (the watch starts over)."""


@dataclass(frozen=True, slots=True)
class SampleEntry:
    """A file handed on: where, under which watched directory, and the version of it that was."""

    path: str
    root: str
    size: int
    mtime_ns: int
    sha256: str

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Self:
        path, root, size, mtime_ns, sha256 = (doc.get(name) for name in ("path", "root", "size", "mtime_ns",
                                                                         "sha256"))
        if not (isinstance(path, str) and isinstance(root, str) and isinstance(sha256, str)
                and type(size) is int and type(mtime_ns) is int):
            raise ValueError(f"malformed entry {dict(doc)!r}")
        return cls(path, root, size, mtime_ns, sha256)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "root": self.root, "size": self.size, "mtime_ns": self.mtime_ns,
                "sha256": self.sha256}


@dataclass
class SampleRegistry:
    """The files handed on, by `device:inode`. `path` None keeps it in memory only."""

    path: Path | None = None
    files: dict[str, SampleEntry] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Self:
        """The registry at `path`, empty when there is none; an unreadable one is moved aside to
        `<path>.corrupt` (with a warning) and the watch starts over."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return cls(path)
        except OSError as exc:
            log.warning("sample registry %s cannot be read (%s): every sample is handed on again", path,
                        exc.strerror or exc)
            return cls(path)
        try:
            return cls(path, _parse_registry(data, path))
        except RegistryError as exc:
            aside = path.with_name(path.name + ".corrupt")
            with contextlib.suppress(OSError):
                path.replace(aside)
            log.warning("%s; moved to %s: every sample is handed on again", exc, aside)
            return cls(path)

    def save(self) -> None:
        if self.path is None:
            return
        files = {key: entry.to_dict() for key, entry in sorted(self.files.items())}
        doc = {"version": REGISTRY_VERSION, "files": files}
        write_atomically(self.path, orjson.dumps(doc, option=orjson.OPT_INDENT_2))

    def by_path(self, path: str) -> tuple[str, SampleEntry] | None:
        return next(((key, entry) for key, entry in self.files.items() if entry.path == path), None)


def _parse_registry(data: bytes, path: Path) -> dict[str, SampleEntry]:
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise RegistryError(f"sample registry is not JSON: {exc}", path=path) from None
    if not isinstance(doc, dict) or doc.get("version") != REGISTRY_VERSION or not isinstance(doc.get("files"), dict):
        version = doc.get("version") if isinstance(doc, dict) else None
        raise RegistryError(f"not a version {REGISTRY_VERSION} sample registry (version {version!r})", path=path)
    try:
        return {str(key): SampleEntry.from_dict(value) for key, value in doc["files"].items()}
    except (AttributeError, TypeError, ValueError) as exc:
        raise RegistryError(f"malformed sample registry entry: {exc}", path=path) from None


