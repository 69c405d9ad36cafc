"""How a running engine cuts its intake queue into batches: what a queue entry is (an item, the items of one
read, or a checkpoint), how large the next batch may be, gathering it, and settling the checkpoints a batch
carries once it is stored (or failed).

A batch waits for more entries until `batch_wait` after its first item was queued (as Kafka's `linger.ms`
counts from a batch's first record): an item that already waited behind a busy pipeline goes at once.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from correlator.live.detect import Detected, Intake
from correlator.live.intake_queue import IntakeQueue

__all__ = ["Checkpoint", "Entry", "InFlight", "Queued", "batch_size", "fail_queued_checkpoints", "gather",
           "queued_at", "settle", "waiting"]

Queued = tuple[str, Intake, float]  # collector, item (a syslog frame is parsed by detection), time queued


@dataclass(slots=True)
class Checkpoint:
    """A marker in the intake queue: resolved once everything queued before it is processed and stored."""

    done: asyncio.Future[None]


Entry = Queued | list[Queued] | Checkpoint  # a list: the items of one read or file chunk, weighing its length


@dataclass(slots=True)
class InFlight:
    """A batch handed to a detection worker: its checkpoints resolve once it is finished and stored."""

    batch: list[Queued]
    checkpoints: list[Checkpoint]
    detected: asyncio.Future[Detected] | None  # None: no events, only checkpoints
    started: float


def waiting(queue: IntakeQueue[Entry], first: Entry) -> int:
    """Items waiting: those queued and those of `first`, the entry taken off the queue to start a batch."""
    return queue.qsize() + (len(first) if isinstance(first, list) else 1)


def batch_size(backlog: int, batch: int, largest: int) -> int:
    """Events the next batch takes at most: `batch`, or, with more than that waiting (`backlog`: the engine is
    behind), up to `largest`. A batch's fixed costs (its store transaction, each case it changes saved once, a
    correlation sweep, the hand-over to a worker) then spread over more events, and the backlog drains sooner;
    with a short queue batches stay small, so an event waits no longer than `batch` needs."""
    return max(batch, min(largest, backlog))


def queued_at(first: Entry) -> float:
    """When the first item of a batch was queued (a checkpoint: now)."""
    if isinstance(first, list):
        return first[0][2]
    if isinstance(first, Checkpoint):
        return time.monotonic()
    return first[2]


async def gather(queue: IntakeQueue[Entry], first: Entry, deadline: float, size: int,
                 ) -> tuple[list[Queued], list[Checkpoint], list[Queued]]:
    """A batch starting with `first`: entries until `size` items, a checkpoint (which ends it) or `deadline`
    (monotonic). Returns the batch, its checkpoints and the part of a bulk entry past the batch's size (it
    starts the next batch)."""
    batch: list[Queued] = []
    checkpoints: list[Checkpoint] = []
    entry: Entry | None = first
    while entry is not None:
        if isinstance(entry, Checkpoint):
            checkpoints.append(entry)
            break
        if isinstance(entry, list):
            room = size - len(batch)
            if len(entry) > room:
                batch.extend(entry[:room])
                return batch, checkpoints, entry[room:]
            batch.extend(entry)
        else:
            batch.append(entry)
        if len(batch) >= size:
            break
        entry = await _next(queue, deadline)
    return batch, checkpoints, []


async def _next(queue: IntakeQueue[Entry], deadline: float) -> Entry | None:
    """The next queue entry if one comes before `deadline`."""
    try:
        return queue.get_nowait()
    except asyncio.QueueEmpty:
        pass
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return None
    try:
        return await asyncio.wait_for(queue.get(), timeout=remaining)
    except TimeoutError:
        return None


def settle(checkpoints: list[Checkpoint], failure: BaseException | None = None) -> None:
    """Resolve the checkpoints of a batch: stored, or (`failure`) not stored, saying why."""
    for checkpoint in checkpoints:
        if checkpoint.done.done():
            continue
        if failure is None:
            checkpoint.done.set_result(None)
        else:
            checkpoint.done.set_exception(RuntimeError(f"not stored: {failure}"))


def fail_queued_checkpoints(queue: IntakeQueue[Entry], failure: BaseException) -> None:
    """Empty the queue, failing the checkpoints in it (the pipeline has ended or failed)."""
    while not queue.empty():
        entry = queue.get_nowait()
        if isinstance(entry, Checkpoint):
            settle([entry], failure)
