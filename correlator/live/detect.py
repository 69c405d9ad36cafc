"""The detection half of a `socctl run` batch, as one pure stage that runs in the pipeline thread or in a
detection worker process (`correlator.live.workers`): syslog frames to events (`frame_to_event`), the detection
stage (`correlator.pipeline.detect_events`: Sigma, sensor alerts, threat intel, YARA on payloads, allowlist,
correlation inputs, asset enrichment), and the events' store records prepared (`prepare_event`: the ECS document
as JSON and its free text), so the process that stores them only inserts rows.

What it returns (`Detected`) pickles small: alerts, correlation inputs, dead letters and prepared records, never
the events. The analysis and the store stay with the caller, in batch order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

from collectors.syslog_server import SyslogFrame
from correlator.live.intake import frame_to_event
from correlator.model import Event, Rejected
from correlator.pipeline import Detection, FileResult, detect_events
from correlator.store.documents import (
    Collection,
    PreparedRecord,
    RefusedDocumentError,
    prepare_event,
    refused_dead_letter,
)

__all__ = ["Detected", "Intake", "detect_batch"]

Intake = SyslogFrame | Event | Rejected  # what a collector queues: a syslog frame is parsed by the detection stage


@dataclass
class Detected:
    """One batch through detection: the stage's result (alerts, correlation inputs, dead letters (read, parse and
    refused by the store), allowlist and payload counts; no events), the events' prepared store records (when
    events are stored), per collector the events and the dead letters it gave, and the newest event time."""

    result: FileResult
    prepared: list[PreparedRecord] = field(default_factory=list)
    events: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    newest_ms: int | None = None


def _parsed(batch: Sequence[tuple[str, Intake]], detected: Detected) -> Iterator[Event | Rejected]:
    newest = None
    for collector, item in batch:
        if isinstance(item, SyslogFrame):
            item = frame_to_event(item)
        if isinstance(item, Rejected):
            detected.rejected[collector] += 1
        else:
            detected.events[collector] += 1
            if newest is None or item.timestamp_ms > newest:
                newest = item.timestamp_ms
        yield item
    detected.newest_ms = newest


def detect_batch(batch: Sequence[tuple[str, Intake]], detection: Detection, now_ms: int, *,
                 store_events: bool) -> Detected:
    """`batch` (collector, item) through detection at wall-clock `now_ms` (the allowlist's expiry clock)."""
    result = FileResult("live", stored_events=[] if store_events else None)
    detected = Detected(result)
    detect_events(_parsed(batch, detected), replace(detection, now_ms=now_ms), result)
    events, result.stored_events = result.stored_events or [], None
    for event in events:
        try:
            detected.prepared.append(prepare_event(event))
        except RefusedDocumentError as exc:
            result.rejected.append(refused_dead_letter(Collection.EVENTS, event.id, str(exc), event.origin,
                                                       event.raw))
    return detected
