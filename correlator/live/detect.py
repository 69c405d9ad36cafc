"""The detection half of a `socctl run` batch, as one pure stage that runs in the pipeline thread or in a
detection worker process (`correlator.live.workers`): syslog frames to events (`frame_to_event`), the detection
stage (`correlator.pipeline.detect_events`: Sigma, sensor alerts, threat intel, YARA on payloads, allowlist,
correlation inputs, asset enrichment), and the events' store records prepared (`prepare_event`: the ECS document
as JSON and its free text), so the process that stores them only inserts rows.

What it returns (`Detected`) pickles small: alerts, correlation inputs, dead letters and prepared records, never
the events. The analysis and the store stay with the caller, in batch order.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from collectors.syslog_server import SyslogFrame
from correlator.live.intake import frame_origin, frame_to_event
from correlator.model import Event, Rejected
from correlator.pipeline import Detection, FileResult, detect_events
from correlator.store.documents import (
    Collection,
    PreparedRecord,
    RefusedDocumentError,
    prepare_event,
    refused_dead_letter,
)

__all__ = ["Detected", "Intake", "detect_batch", "detect_isolating", "merge_detected", "undetected"]

log = logging.getLogger(__name__)

Intake = SyslogFrame | Event | Rejected  # what a collector queues: a syslog frame is parsed by the detection stage


@dataclass
class Detected:
    """One batch through detection: the stage's result (alerts, correlation inputs, dead letters (read, parse and
    refused by the store), allowlist and payload counts; no events), the events' prepared store records (when
    events are stored, and not by the worker itself: `stored`), per collector the events and the dead letters it
    gave, and the newest event time."""

    result: FileResult
    prepared: list[PreparedRecord] = field(default_factory=list)
    stored: int = 0  # events the detection worker stored itself (`correlator.live.worker_events`)
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


def undetected(item: tuple[str, Intake], reason: str) -> Detected:
    """What a batch of one item gives when detection cannot take it (it crashed or killed its worker): the item
    as a dead letter with `reason`, its raw record kept."""
    collector, intake = item
    if isinstance(intake, Rejected):
        dead = intake
    elif isinstance(intake, SyslogFrame):
        dead = Rejected(reason, frame_origin(intake), raw=intake.data.decode("utf-8", "backslashreplace"),
                        stage="detect")
    else:
        dead = Rejected(reason, intake.origin, raw=intake.raw, stage="detect")
    detected = Detected(FileResult("live", rejected=[dead]))
    detected.rejected[collector] += 1
    return detected


def merge_detected(parts: Sequence[Detected]) -> Detected:
    """The parts of one batch (detected apart, in order) as one."""
    merged = Detected(FileResult("live"))
    for part in parts:
        merged.result.add(part.result)
        merged.prepared.extend(part.prepared)
        merged.stored += part.stored
        merged.events.update(part.events)
        merged.rejected.update(part.rejected)
        if part.newest_ms is not None and (merged.newest_ms is None or part.newest_ms > merged.newest_ms):
            merged.newest_ms = part.newest_ms
    return merged


def detect_isolating(items: list[tuple[str, Intake]], detect: Callable[[list[tuple[str, Intake]]], Detected],
                     failure: Exception, errors: type[Exception] | tuple[type[Exception], ...] = Exception,
                     describe: Callable[[Exception], str] = lambda exc: f"{type(exc).__name__}: {exc}",
                     ) -> Detected:
    """`items` whose detection failed with `failure`, detected again by halves (`detect`) until each item that
    fails (raises one of `errors`; anything else propagates) is alone and becomes a dead letter naming its
    failure (`describe`); the others are detected as usual."""
    if len(items) == 1:
        reason = f"detection could not take this record: {describe(failure).splitlines()[0]}"
        log.error("%s (%s)", reason, items[0][0])
        return undetected(items[0], reason)
    parts = []
    middle = len(items) // 2
    for half in (items[:middle], items[middle:]):
        try:
            parts.append(detect(half))
        except errors as exc:
            parts.append(detect_isolating(half, detect, exc, errors, describe))
    return merge_detected(parts)
