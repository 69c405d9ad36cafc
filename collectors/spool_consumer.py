"""The consumer side of a durable intake queue (the HTTP intake's journal, the upload queue): read the oldest
pending entries, hand their items to an async sink in order, await the barrier, then commit.

At least once: nothing is committed until the sink has taken every item of the entries read and `barrier()`
(when given: it returns once everything handed to the sink so far is processed and stored) returned; a crash or
an error before that delivers them again. Subclasses say how to count, read, turn into items and commit."""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from correlator.model import Event, Rejected

__all__ = ["Barrier", "BulkSink", "Item", "ItemSink", "SpoolConsumer"]

Item = Event | Rejected
ItemSink = Callable[[Item], Awaitable[None]]
BulkSink = Callable[[list[Item]], Awaitable[None]]
Barrier = Callable[[], Awaitable[None]]


class SpoolConsumer(ABC):
    """Run `run()` as a task; it returns when `stop` is set, after committing what it delivered, and raises what
    the sink or the barrier raises (nothing is committed then). Up to `per_commit` entries are read, delivered and
    committed together (at most that many entries are held in memory). With `bulk_sink`, the items of an entry
    go to it in one call instead of one `sink` call each."""

    def __init__(self, sink: ItemSink, *, per_commit: int, poll_interval: float, barrier: Barrier | None,
                 thread_name: str, bulk_sink: BulkSink | None = None) -> None:
        if per_commit < 1:
            raise ValueError(f"entries per commit must be >= 1, got {per_commit}")
        self.sink = sink
        self.bulk_sink = bulk_sink
        self.per_commit = per_commit
        self.poll_interval = poll_interval
        self.barrier = barrier
        self.delivered_entries = 0
        self.delivered_items = 0
        self._thread_name = thread_name
        self._wakeup: asyncio.Event | None = None

    @abstractmethod
    def pending(self) -> int:
        """Entries waiting."""

    @abstractmethod
    def peek(self, count: int) -> list[bytes]:
        """Up to `count` of the oldest entries, not consumed (runs in the consumer's thread)."""

    @abstractmethod
    def items(self, entry: bytes) -> list[Item]:
        """The items of one entry (runs in the consumer's thread; never raises for bad content)."""

    @abstractmethod
    def commit(self, count: int) -> None:
        """Durably mark the oldest `count` entries consumed (runs in the consumer's thread)."""

    def wake(self) -> None:
        """An entry was queued: look now rather than at the next poll (call on the consumer's loop)."""
        if self._wakeup is not None:
            self._wakeup.set()

    async def run(self, stop: asyncio.Event | None = None) -> None:
        stop = stop if stop is not None else asyncio.Event()
        self._wakeup = wakeup = asyncio.Event()
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._thread_name) as thread:
            while not stop.is_set():
                if self.pending() == 0:
                    wakeup.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(wakeup.wait(), self.poll_interval)
                    continue
                entries = await loop.run_in_executor(thread, self.peek, self.per_commit)
                for entry in entries:
                    items = await loop.run_in_executor(thread, self.items, entry)
                    if self.bulk_sink is not None:
                        if items:
                            await self.bulk_sink(items)
                    else:
                        for item in items:
                            await self.sink(item)
                    self.delivered_items += len(items)
                if self.barrier is not None:  # what the sink took is processed and stored before it is committed
                    await self.barrier()
                await loop.run_in_executor(thread, self.commit, len(entries))
                self.delivered_entries += len(entries)
