"""How long events take from intake to the store: a window of the latest measurements and its quantiles (the
`socctl_pipeline_latency_seconds` summary of /metrics, and `bench/intake.py`).

Quantiles sort the window (50,000 values: some 7 ms, holding the GIL the engine's threads share): a reader that
asks often (a scraper every 100 ms) takes them at most every `max_age_s` (`quantiles(max_age_s=...)`); between
two computations it gets the last, computed over the window as it was then."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Iterable

__all__ = ["LatencyWindow"]


class LatencyWindow:
    """The last `size` latencies (seconds), their count and sum since start."""

    def __init__(self, size: int = 50_000, clock: Callable[[], float] = time.monotonic) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self._recent: deque[float] = deque(maxlen=size)
        self.count = 0
        self.total = 0.0
        self._clock = clock
        # The last quantiles computed: when, at which count, for which qs, and what they were.
        self._last: tuple[float, int, tuple[float, ...], dict[float, float]] | None = None

    def add(self, values: Iterable[float]) -> None:
        batch = values if isinstance(values, list) else list(values)
        self._recent.extend(batch)  # a batch at a time: the engine adds every event's latency
        self.count += len(batch)
        self.total += sum(batch)

    def quantiles(self, qs: Iterable[float] = (0.5, 0.9, 0.99), *, max_age_s: float = 0.0) -> dict[float, float]:
        """Nearest-rank quantiles of the window; empty when nothing was measured. With `max_age_s`, the last ones
        computed (for the same `qs`) when they are at most that old, or when nothing was measured since."""
        wanted = tuple(qs)
        now = self._clock()
        last = self._last
        if last is not None and last[2] == wanted and (last[1] == self.count or now - last[0] < max_age_s):
            return dict(last[3])
        ordered = sorted(self._recent)
        if not ordered:
            return {}
        top = len(ordered) - 1
        result = {q: ordered[min(top, max(0, math.ceil(q * len(ordered)) - 1))] for q in wanted}
        self._last = (now, self.count, wanted, result)
        return dict(result)
