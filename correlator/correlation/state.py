"""Per-key window state, one small class per kind of correlation, all with the same interface.

A scope holds what one (correlation rule, group key) pair has seen inside its current window. The engine feeds it
matches in event-time order: `expire(floor)` drops what fell out of a sliding window, `add(...)` takes a match,
`metric()` is the number the condition compares (None while there is nothing to compare), `contributors()` the
events behind it. `dump()`/`load()` give a JSON-ready form for snapshots.

Entries are tuples `(ts, event_id, source)` where `source` is the position of the matching rule in the
correlation rule's `rules:` list.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, ClassVar

from correlator.correlation.definitions import CorrelationType

__all__ = [
    "DistinctScope",
    "EventScope",
    "NumericScope",
    "OrderedScope",
    "Scope",
    "TemporalScope",
    "percentile",
    "scope_class",
]

Entry = tuple[int, str, int]


class Scope:
    """State of one (rule, group key): the window start, the newest event's time and context."""

    __slots__ = ("context", "last_ts", "start")
    kind: ClassVar[str] = ""

    def __init__(self, start: int) -> None:
        self.start = start
        self.last_ts = start
        self.context: list[Any] | None = None  # the newest match's [host name, origin] (opaque here)

    def reset(self, start: int) -> None:
        """Empty the scope for reuse as a new window from `start` (engines pool scopes: fewer allocations)."""
        self.start = self.last_ts = start
        self.context = None
        self._clear()

    def _clear(self) -> None:
        raise NotImplementedError

    def expire(self, floor: int) -> None:
        raise NotImplementedError

    def add(self, ts: int, event_id: str, positions: tuple[int, ...], value: Any) -> None:
        """Take a match of the rule at `positions` in `rules:` (highest first)."""
        raise NotImplementedError

    def metric(self) -> float | None:
        raise NotImplementedError

    def offer(self, ts: int, event_id: str, positions: tuple[int, ...], value: Any, floor: int) -> float | None:
        """A sliding window's step in one call: expire what is older than `floor`, add the match, the metric."""
        self.expire(floor)
        self.add(ts, event_id, positions, value)
        return self.metric()

    def contributors(self) -> list[Entry]:
        raise NotImplementedError

    def held(self) -> int:
        raise NotImplementedError

    def dump(self) -> list[Any]:
        return [self.start, self.last_ts, self.context, self._dump()]

    def _dump(self) -> Any:
        raise NotImplementedError

    def _load(self, data: Any) -> None:
        raise NotImplementedError

    def load(self, data: list[Any]) -> Scope:
        """Fill a fresh scope (made by the rule's factory) from `dump()` output; returns it."""
        self.start, self.last_ts, self.context = data[0], data[1], data[2]
        self._load(data[3])
        return self


class EventScope(Scope):
    """event_count: the events of the window. A closing window keeps at most `cap` ids (and counts the rest)."""

    __slots__ = ("cap", "entries", "overflow")
    kind = "events"

    def __init__(self, start: int, cap: int = 10_000) -> None:
        self.start = self.last_ts = start
        self.context = None
        self.entries: deque[Entry] = deque()
        self.overflow = 0
        self.cap = cap

    def _clear(self) -> None:
        self.entries.clear()
        self.overflow = 0

    def expire(self, floor: int) -> None:
        entries = self.entries
        while entries and entries[0][0] < floor:
            entries.popleft()

    def add(self, ts: int, event_id: str, positions: tuple[int, ...], value: Any) -> None:  # noqa: ARG002
        if len(self.entries) >= self.cap:
            self.overflow += 1
        else:
            self.entries.append((ts, event_id, positions[0]))

    def metric(self) -> float | None:
        return len(self.entries) + self.overflow

    def offer(self, ts: int, event_id: str, positions: tuple[int, ...], value: Any, floor: int) -> float | None:  # noqa: ARG002
        entries = self.entries
        while entries and entries[0][0] < floor:
            entries.popleft()
        entries.append((ts, event_id, positions[0]))
        return len(entries)

    def contributors(self) -> list[Entry]:
        return list(self.entries)

    def held(self) -> int:
        return len(self.entries)

    def _dump(self) -> Any:
        return [self.overflow, [list(e) for e in self.entries]]

    def _load(self, data: Any) -> None:
        self.overflow = data[0]
        self.entries = deque((e[0], e[1], e[2]) for e in data[1])


class DistinctScope(Scope):
    """value_count: the newest event of every distinct value, oldest first (memory bounded by distinct values)."""

    __slots__ = ("latest",)
    kind = "distinct"

    def __init__(self, start: int) -> None:
        self.start = self.last_ts = start
        self.context = None
        self.latest: dict[Any, Entry] = {}

    def _clear(self) -> None:
        self.latest.clear()

    def expire(self, floor: int) -> None:
        latest = self.latest
        while latest:
            value = next(iter(latest))
            if latest[value][0] >= floor:
                break
            del latest[value]

    def add(self, ts: int, event_id: str, positions: tuple[int, ...], value: Any) -> None:
        latest = self.latest
        latest.pop(value, None)
        latest[value] = (ts, event_id, positions[0])

    def offer(self, ts: int, event_id: str, positions: tuple[int, ...], value: Any, floor: int) -> float | None:
        latest = self.latest
        while latest:
            oldest = next(iter(latest))
            if latest[oldest][0] >= floor:
                break
            del latest[oldest]
        latest.pop(value, None)
        latest[value] = (ts, event_id, positions[0])
        return len(latest)

    def metric(self) -> float | None:
        return len(self.latest)

    def contributors(self) -> list[Entry]:
        return sorted(self.latest.values())

    def held(self) -> int:
        return len(self.latest)

    def _dump(self) -> Any:
        return [[value, list(entry)] for value, entry in self.latest.items()]

    def _load(self, data: Any) -> None:
        self.latest = {value: (e[0], e[1], e[2]) for value, e in data}


def percentile(values: list[float], pct: float) -> float:
    """Linear interpolation between closest ranks (numpy's default): pct 50 of an even count is the mean of the
    two middle values."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


class NumericScope(Scope):
    """value_sum, value_avg, value_percentile, value_median: the numeric values of the window."""

    __slots__ = ("entries", "measure", "pct")
    kind = "numeric"

    def __init__(self, start: int, measure: CorrelationType = CorrelationType.VALUE_SUM, pct: int = 50) -> None:
        self.start = self.last_ts = start
        self.context = None
        self.entries: deque[tuple[int, str, int, float]] = deque()
        self.measure = measure
        self.pct = pct

    def _clear(self) -> None:
        self.entries.clear()

    def expire(self, floor: int) -> None:
        entries = self.entries
        while entries and entries[0][0] < floor:
            entries.popleft()

    def add(self, ts: int, event_id: str, positions: tuple[int, ...], value: Any) -> None:
        self.entries.append((ts, event_id, positions[0], value))

    def metric(self) -> float | None:
        if not self.entries:
            return None
        values = [e[3] for e in self.entries]
        if self.measure == CorrelationType.VALUE_SUM:
            return math.fsum(values)
        if self.measure == CorrelationType.VALUE_AVG:
            return math.fsum(values) / len(values)
        return percentile(values, self.pct)

    def contributors(self) -> list[Entry]:
        return [(e[0], e[1], e[2]) for e in self.entries]

    def held(self) -> int:
        return len(self.entries)

    def _dump(self) -> Any:
        return [list(e) for e in self.entries]

    def _load(self, data: Any) -> None:
        self.entries = deque((e[0], e[1], e[2], e[3]) for e in data)


class TemporalScope(Scope):
    """temporal: the newest event of each referenced rule; the metric is how many rules are in the window."""

    __slots__ = ("latest",)
    kind = "temporal"

    def __init__(self, start: int, width: int = 1) -> None:
        self.start = self.last_ts = start
        self.context = None
        self.latest: list[Entry | None] = [None] * width

    def _clear(self) -> None:
        latest = self.latest
        for i in range(len(latest)):
            latest[i] = None

    def expire(self, floor: int) -> None:
        latest = self.latest
        for i, entry in enumerate(latest):
            if entry is not None and entry[0] < floor:
                latest[i] = None

    def add(self, ts: int, event_id: str, positions: tuple[int, ...], value: Any) -> None:  # noqa: ARG002
        for source in positions:
            self.latest[source] = (ts, event_id, source)

    def metric(self) -> float | None:
        latest = self.latest
        return len(latest) - latest.count(None)

    def offer(self, ts: int, event_id: str, positions: tuple[int, ...], value: Any, floor: int) -> float | None:  # noqa: ARG002
        latest = self.latest
        for source in positions:
            latest[source] = (ts, event_id, source)
        count = 0
        for i, entry in enumerate(latest):
            if entry is not None:
                if entry[0] < floor:
                    latest[i] = None
                else:
                    count += 1
        return count

    def contributors(self) -> list[Entry]:
        return sorted(entry for entry in self.latest if entry is not None)

    def held(self) -> int:
        return sum(1 for entry in self.latest if entry is not None)

    def _dump(self) -> Any:
        return [list(e) if e is not None else None for e in self.latest]

    def _load(self, data: Any) -> None:
        self.latest = [(e[0], e[1], e[2]) if e is not None else None for e in data]


class OrderedScope(Scope):
    """temporal_ordered: for each prefix of the rule list, the matching chain (strictly increasing times) that
    started latest. `chains[i]` is `(start_ts, entries)` of a chain through rules 0..i; the metric is the length
    of the longest live chain."""

    __slots__ = ("chains",)
    kind = "ordered"

    def __init__(self, start: int, width: int = 1) -> None:
        self.start = self.last_ts = start
        self.context = None
        self.chains: list[tuple[int, tuple[Entry, ...]] | None] = [None] * width

    def _clear(self) -> None:
        chains = self.chains
        for i in range(len(chains)):
            chains[i] = None

    def expire(self, floor: int) -> None:
        chains = self.chains
        for i, chain in enumerate(chains):
            if chain is not None and chain[0] < floor:
                chains[i] = None

    def add(self, ts: int, event_id: str, positions: tuple[int, ...], value: Any) -> None:  # noqa: ARG002
        # Positions are taken highest first, so one event never fills two positions of the same chain.
        chains = self.chains
        for source in positions:
            entry = (ts, event_id, source)
            if source == 0:
                chains[0] = (ts, (entry,))
                continue
            previous = chains[source - 1]
            if previous is None or previous[1][-1][0] >= ts:
                continue
            current = chains[source]
            if current is None or current[0] <= previous[0]:
                chains[source] = (previous[0], (*previous[1], entry))

    def metric(self) -> float | None:
        for i in range(len(self.chains) - 1, -1, -1):
            if self.chains[i] is not None:
                return i + 1
        return 0

    def contributors(self) -> list[Entry]:
        for chain in reversed(self.chains):
            if chain is not None:
                return list(chain[1])
        return []

    def held(self) -> int:
        return sum(len(chain[1]) for chain in self.chains if chain is not None)

    def _dump(self) -> Any:
        return [[c[0], [list(e) for e in c[1]]] if c is not None else None for c in self.chains]

    def _load(self, data: Any) -> None:
        self.chains = [(c[0], tuple((e[0], e[1], e[2]) for e in c[1])) if c is not None else None for c in data]


def scope_class(kind: CorrelationType) -> type[Scope]:
    if kind == CorrelationType.EVENT_COUNT:
        return EventScope
    if kind == CorrelationType.VALUE_COUNT:
        return DistinctScope
    if kind == CorrelationType.TEMPORAL:
        return TemporalScope
    if kind == CorrelationType.TEMPORAL_ORDERED:
        return OrderedScope
    return NumericScope
