"""Events stored by the detection worker that prepared them (`workers: N` over SQLite): each worker writes its
batch's event rows and free text through a connection of its own, so the engine's pipeline thread, which must do
the analysis, the alerts and the cases of every batch in order, no longer spends a third of its time on them
(at saturation it had become the limit while the workers idled half the time).

The events of a batch are then committed by the worker before the batch's alerts, cases and dead letters are
committed by the engine, no longer in the same transaction. Nothing acknowledged depends on that: a collector
acknowledges once the engine has finished the batch (`Runner.barrier`), and a batch taken again after a crash
finds its events stored already (event ids are made from the record and its time: insert-or-ignore) and makes
its alerts again.
A worker whose store fails (cannot open, disk full, locked past the busy timeout) leaves the prepared events to
the engine, which stores them in its own transaction as before, and says so in the log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from correlator.live.detect import Detected
from correlator.store.base import Store
from correlator.store.errors import StoreError

__all__ = ["EventWriter"]

log = logging.getLogger(__name__)


class EventWriter:
    """Writes the prepared events of a worker's batches into the store `open_store` opens (on first use)."""

    def __init__(self, open_store: Callable[[], Store]) -> None:
        self._open = open_store
        self._store: Store | None = None

    def store(self, detected: Detected) -> None:
        """Store `detected`'s prepared events here and count them in `detected.stored`; on a store error leave
        them in `detected.prepared` for the engine."""
        if not detected.prepared:
            return
        try:
            if self._store is None:
                self._store = self._open()
            self._store.write_prepared("events", detected.prepared)
        except StoreError as exc:
            log.warning("detection worker: %d events left to the engine to store: %s", len(detected.prepared), exc)
            return
        detected.stored += len(detected.prepared)
        detected.prepared = []
