"""How long events take from intake to the store: a window of the latest measurements and its quantiles (the
`socctl_pipeline_latency_seconds` summary of /metrics, and `bench/intake.py`)."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable

__all__ = ["LatencyWindow"]


class LatencyWindow:
    """The last `size` latencies (seconds), their count and sum since start."""

    def __init__(self, size: int = 50_000) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self._recent: deque[float] = deque(maxlen=size)
        self.count = 0
        self.total = 0.0

    def add(self, values: Iterable[float]) -> None:
        for value in values:
            self._recent.append(value)
            self.count += 1
            self.total += value

    def quantiles(self, qs: Iterable[float] = (0.5, 0.9, 0.99)) -> dict[float, float]:
        """Nearest-rank quantiles of the window; empty when nothing was measured."""
        ordered = sorted(self._recent)
        if not ordered:
            return {}
        last = len(ordered) - 1
        return {q: ordered[min(last, max(0, math.ceil(q * len(ordered)) - 1))] for q in qs}
