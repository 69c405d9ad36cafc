"""Window maths, as pure functions over integer epoch milliseconds.

A correlation window is a span of event time `[start, end]`, both ends inclusive, `end - start == duration`: two
events belong to one window when their timestamps differ by at most the rule's timespan.

The engine keeps a watermark `W` (the highest event time it has been told of) and an allowed lateness `L`. The
*horizon* is `W - L`: every match older than the horizon (`ts < W - L`) is final, evaluated in event-time order,
and a match that arrives when it is already older than the horizon is *late*. A window `[start, end]` is *closed*
once `end < W - L`: no event that could still fall into it can arrive without being late.
"""

from __future__ import annotations

from dataclasses import dataclass

from correlator.correlation.errors import WindowError

__all__ = [
    "Window",
    "horizon",
    "is_closed",
    "is_late",
    "window_end",
    "window_floor",
]


@dataclass(frozen=True, slots=True)
class Window:
    """A window definition: its duration (a rule's timespan) and the allowed lateness of its events."""

    duration_ms: int
    lateness_ms: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.duration_ms, bool) or not isinstance(self.duration_ms, int):
            raise WindowError(f"window duration must be an integer number of ms, not {self.duration_ms!r}")
        if isinstance(self.lateness_ms, bool) or not isinstance(self.lateness_ms, int):
            raise WindowError(f"allowed lateness must be an integer number of ms, not {self.lateness_ms!r}")
        if self.duration_ms < 1:
            raise WindowError(f"window duration must be at least 1 ms, not {self.duration_ms}")
        if self.lateness_ms < 0:
            raise WindowError(f"allowed lateness must not be negative, not {self.lateness_ms}")

    def floor(self, ts_ms: int) -> int:
        return window_floor(ts_ms, self.duration_ms)

    def end(self, start_ms: int) -> int:
        return window_end(start_ms, self.duration_ms)

    def horizon(self, watermark_ms: int) -> int:
        return horizon(watermark_ms, self.lateness_ms)


def window_floor(ts_ms: int, duration_ms: int) -> int:
    """The oldest event time still inside the window that ends at `ts_ms`."""
    return ts_ms - duration_ms


def window_end(start_ms: int, duration_ms: int) -> int:
    """The last event time (inclusive) of the window that starts at `start_ms`."""
    return start_ms + duration_ms


def horizon(watermark_ms: int, lateness_ms: int) -> int:
    """Matches older than this are final (evaluated); matches arriving older than this are late."""
    return watermark_ms - lateness_ms


def is_late(ts_ms: int, watermark_ms: int, lateness_ms: int) -> bool:
    return ts_ms < horizon(watermark_ms, lateness_ms)


def is_closed(end_ms: int, horizon_ms: int) -> bool:
    """A window (or the state of a key whose newest entry is `end_ms - duration`) that no future event can reach."""
    return end_ms < horizon_ms
