"""The intake queue of `socctl run`: a bounded FIFO between the collectors and the batches whose bound is counted
in events, not entries.

An entry weighs what it carries: one event or dead letter 1, the frames of one TCP read (a bulk, put with one
call) their number, a checkpoint nothing. `put` waits while the entry would take the queue past `maxsize`
(backpressure: a TCP connection is then not read); an entry heavier than the whole queue goes in alone, once the
queue is empty, so nothing can wait for ever. `put_nowait` (UDP datagrams) raises `asyncio.QueueFull` instead.

Single event loop, like `asyncio.Queue`; a cancelled `get` or `put` (a timeout) leaves the queue as it was.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["IntakeQueue"]

T = TypeVar("T")


class IntakeQueue(Generic[T]):
    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError(f"intake queue: maxsize must be at least 1, got {maxsize}")
        self.maxsize = maxsize
        self._entries: collections.deque[tuple[T, int]] = collections.deque()
        self._weight = 0
        self._getters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._putters: collections.deque[asyncio.Future[None]] = collections.deque()

    def qsize(self) -> int:
        """The events queued (the sum of the entries' weights)."""
        return self._weight

    def __len__(self) -> int:
        """The entries queued."""
        return len(self._entries)

    def empty(self) -> bool:
        return not self._entries

    def _fits(self, weight: int) -> bool:
        return self._weight + weight <= self.maxsize or not self._entries

    def put_nowait(self, item: T, weight: int = 1) -> None:
        """Queue `item` now, or raise `asyncio.QueueFull` when it would take the queue past its bound (or when
        others wait to put: they come first)."""
        _check(weight)
        if self._putters or not self._fits(weight):
            raise asyncio.QueueFull
        self._append(item, weight)

    async def put(self, item: T, weight: int = 1) -> None:
        """Queue `item`, waiting while it would take the queue past its bound."""
        _check(weight)
        while not self._fits(weight):
            await self._wait(self._putters, lambda: True)  # what this putter was woken for may suit the next
        self._append(item, weight)

    def get_nowait(self) -> T:
        if not self._entries:
            raise asyncio.QueueEmpty
        item, weight = self._entries.popleft()
        self._weight -= weight
        if self._putters and (weight or not self._entries):  # room: each waiting putter checks again
            while self._putters:
                self._wake(self._putters)
        return item

    async def get(self) -> T:
        while not self._entries:
            await self._wait(self._getters, lambda: bool(self._entries))
        return self.get_nowait()

    async def _wait(self, waiters: collections.deque[asyncio.Future[None]], pass_on: Callable[[], bool]) -> None:
        """Wait in `waiters` until woken. Cancelled meanwhile (a timeout), the waiter leaves the line and, when
        `pass_on()` says so, hands a wake-up it may have had to the next one."""
        waiter = asyncio.get_running_loop().create_future()
        waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            waiter.cancel()
            if waiter in waiters:
                waiters.remove(waiter)
            if pass_on():
                self._wake(waiters)
            raise

    def _append(self, item: T, weight: int) -> None:
        self._entries.append((item, weight))
        self._weight += weight
        self._wake(self._getters)

    @staticmethod
    def _wake(waiters: collections.deque[asyncio.Future[None]]) -> None:
        """Wake the first waiter that still waits."""
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


def _check(weight: int) -> None:
    if weight < 0:
        raise ValueError(f"intake queue: weight must not be negative, got {weight}")
