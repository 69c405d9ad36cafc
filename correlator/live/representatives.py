"""Suppressed counts written at a steady pace: a running engine overwrites a suppression representative (the
alert that stands for its suppressed repeats, `correlator.suppression`) at most every `every_s` seconds, not
after every batch that counted into it.

Each overwrite re-writes the whole alert document and its free text; with small batches (a moderate event rate:
a batch every `batch_wait`) the same representatives were re-written several times a second, a fifth of the
engine's time. Elastic Security's alert suppression likewise updates its counts once per rule run.

What is held is the latest rendering of each representative (its count is absolute, not a delta): a newer one
replaces an older one, and a rendering lost (a kill -9 before it was written) is healed by the next. Held
renderings are written when `every_s` has passed since the last write, and whenever the caller forces it: the
engine does when it goes quiet, saves its state and shuts down.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final

from correlator.model import Alert

__all__ = ["DEFAULT_EVERY_S", "RepresentativeUpdates"]

DEFAULT_EVERY_S: Final = 2.0


class RepresentativeUpdates:
    """The representatives whose count moved and is not yet written, by alert id. `clock`: monotonic seconds."""

    def __init__(self, clock: Callable[[], float], every_s: float = DEFAULT_EVERY_S) -> None:
        if every_s < 0:
            raise ValueError(f"every_s must be >= 0, got {every_s}")
        self._clock = clock
        self.every_s = every_s
        self._held: dict[str, Alert] = {}
        self._written = clock()

    def __len__(self) -> int:
        return len(self._held)

    def take(self, updated: Iterable[Alert], *, force: bool = False) -> list[Alert]:
        """Hold `updated` (a batch's changed representatives, oldest first) and return what is to be written
        now: every held representative, once, at its latest count, when forced or when `every_s` has passed
        since the last write; otherwise nothing."""
        held = self._held
        for alert in updated:
            held[alert.id] = alert
        if not held:
            return []
        now = self._clock()
        if not force and now - self._written < self.every_s:
            return []
        due = list(held.values())
        held.clear()
        self._written = now
        return due
