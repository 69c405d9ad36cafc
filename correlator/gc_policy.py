"""Garbage collection between batches instead of during them, for the running engine's process and its detection
workers. (`socctl ingest`'s workers, a file at a time, showed no gain from it: they keep no events.)

CPython's cyclic collector runs every few hundred allocations. A batch keeps thousands of objects alive while it is
processed (the events, their documents, the workers' results), so its collections walk them again and again and
promote them into the oldest generation, whose growth then triggers full collections of everything long-lived
(the correlation windows, the cached cases): measured in a detection worker, 10–25% of a batch of 2,000–8,000
events went to the collector. Reference counting frees nearly all of it anyway; the collector is only needed for
cycles.

So while a batch runs the collector is off; after each batch (and when the engine is idle) the young generations
are collected, when what the batch left is garbage already or few survivors, and the whole heap every
`full_every_s` seconds for cycles that outlived their batch. Compiled rules are frozen (`gc.freeze`) and never
walked.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import Final

__all__ = ["FULL_EVERY_S", "BatchCollector"]

FULL_EVERY_S: Final = 60.0


class BatchCollector:
    """`pause()` turns the automatic collector off (process-wide) until `resume()`; `after_batch()` collects."""

    def __init__(self, full_every_s: float = FULL_EVERY_S, clock: Callable[[], float] = time.monotonic) -> None:
        if full_every_s <= 0:
            raise ValueError(f"full_every_s must be positive, got {full_every_s}")
        self.full_every_s = full_every_s
        self._clock = clock
        self._last_full = clock()
        self._was_enabled: bool | None = None
        self.collections = 0  # young-generation collections
        self.full_collections = 0

    def pause(self) -> None:
        if self._was_enabled is None:
            self._was_enabled = gc.isenabled()
        gc.disable()

    def resume(self) -> None:
        """The collector as it was before `pause`."""
        if self._was_enabled:
            gc.enable()
        self._was_enabled = None

    def after_batch(self) -> None:
        now = self._clock()
        if now - self._last_full >= self.full_every_s:
            gc.collect()
            self._last_full = now
            self.full_collections += 1
        else:
            gc.collect(1)
            self.collections += 1
