"""The detection stage over a file: read -> normalise -> match. Pure of presentation: it returns what it found,
the CLI (or the running engine) decides where it goes. Runs the same in one process or in a worker pool."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from collectors.files import read_path
from correlator.model import Alert, Event, EventOrigin, Rejected
from correlator.sigma.engine import SigmaEngine

log = logging.getLogger(__name__)


@dataclass
class FileResult:
    """What one file gave: counts, alerts, rejected records and (on request) the serialised events."""

    path: str
    events: int = 0
    alerts: list[Alert] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    event_lines: list[bytes] | None = None
    stored_events: list[Event] | None = None


def detect_events(items: Iterator[Event | Rejected], engine: SigmaEngine, result: FileResult) -> FileResult:
    """Run every event through the engine, collecting alerts and rejects into `result`."""
    lines = result.event_lines
    keep = result.stored_events
    add_alerts, match, count = result.alerts.extend, engine.match, 0
    try:
        for item in items:
            if isinstance(item, Rejected):
                result.rejected.append(item)
                continue
            count += 1
            if lines is not None:
                lines.append(orjson.dumps(item.to_document(), default=str))
            if keep is not None:
                keep.append(item)
            add_alerts(match(item))
    finally:
        result.events += count  # also when a reader fails part way: the summary says how far it got
    return result


def detect_file(
    path: Path, engine: SigmaEngine, fmt: str | None = None, *, event_lines: bool = False, keep_events: bool = False
) -> FileResult:
    result = FileResult(
        str(path), event_lines=[] if event_lines else None, stored_events=[] if keep_events else None
    )
    try:
        return detect_events(read_path(path, fmt), engine, result)
    except Exception as exc:  # a reader bug must not stop the run: what is left of the file is a dead letter
        log.exception("internal error while processing %s after %d events", path, result.events)
        reason = f"internal error after {result.events} events: {type(exc).__name__}: {exc}"
        result.rejected.append(Rejected(reason, EventOrigin(path=str(path), format=fmt or "unknown"), stage="read"))
        return result
