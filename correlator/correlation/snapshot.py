"""Engine snapshots: versioned JSON (orjson), and what a caller needs to take them periodically.

A snapshot holds the watermark, the matches still waiting for the horizon, the pending window closings and, per
correlation rule (keyed by its semantic hash), every key's window state in eviction order. Restoring it into an
engine with the same rules continues exactly where the snapshot was taken (same alerts as an uninterrupted run);
into an engine with changed rules, only the unchanged rules get their state back.

Taking snapshots is the caller's job: `SnapshotSchedule` says when one is due by an injected clock, and
`write_snapshot` writes one atomically (temporary file, fsync, rename).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from correlator.correlation.errors import SnapshotError

if TYPE_CHECKING:
    from correlator.correlation.engine import CorrelationEngine

__all__ = ["FORMAT", "VERSION", "SnapshotSchedule", "decode", "encode", "read_snapshot", "write_snapshot"]

FORMAT = "socctl.correlation.snapshot"
VERSION = 1
_KEYS = ("watermark", "floor", "now", "seq", "counters", "pending", "timers", "rules")


def encode(state: dict[str, Any]) -> bytes:
    return orjson.dumps({"format": FORMAT, "version": VERSION, **state})


def decode(data: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise SnapshotError(f"not a correlation snapshot: invalid JSON at character {exc.pos}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SnapshotError("not a correlation snapshot: format is not " + FORMAT)
    if doc.get("version") != VERSION:
        raise SnapshotError(f"unsupported correlation snapshot version {doc.get('version')!r} (expected {VERSION})")
    missing = [key for key in _KEYS if key not in doc]
    if missing:
        raise SnapshotError("corrupt correlation snapshot: missing " + ", ".join(missing))
    return doc


def write_snapshot(engine: CorrelationEngine, path: str | Path) -> int:
    """Write the engine's snapshot to `path` atomically; returns its size in bytes."""
    target = Path(path)
    data = engine.snapshot()
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(target)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    return len(data)


def read_snapshot(engine: CorrelationEngine, path: str | Path) -> bool:
    """Restore the engine from `path`; False when there is no snapshot there yet."""
    target = Path(path)
    try:
        data = target.read_bytes()
    except FileNotFoundError:
        return False
    try:
        engine.restore(data)
    except SnapshotError as exc:
        raise SnapshotError(f"{target}: {exc}") from None
    return True


@dataclass(slots=True)
class SnapshotSchedule:
    """When the next periodic snapshot is due, by an injected clock (integer ms; never the wall clock here)."""

    interval_ms: int
    clock: Callable[[], int]
    _last: int | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.interval_ms < 1:
            raise ValueError(f"snapshot interval must be at least 1 ms, not {self.interval_ms}")

    def due(self) -> bool:
        return self._last is None or self.clock() - self._last >= self.interval_ms

    def maybe_write(self, engine: CorrelationEngine, path: str | Path) -> bool:
        """Write a snapshot if one is due; True when it wrote."""
        if not self.due():
            return False
        write_snapshot(engine, path)
        self._last = self.clock()
        return True
