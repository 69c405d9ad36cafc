"""What the correlation engine takes and reports: a base-rule match (`RuleMatch`), its settings
(`EngineSettings`) and its metrics (`CorrelationMetrics`), plus the conversions of field values it applies."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from correlator.correlation.definitions import KeylessPolicy, LatePolicy
from correlator.model import EventOrigin

__all__ = ["CorrelationMetrics", "EngineSettings", "RuleMatch", "number", "origin_list", "scalar"]


@dataclass(slots=True)
class RuleMatch:
    """One base-rule match: which rule (id and name), which event, its event time, and its fields by flat
    dotted name (`get` returns None for an absent field). Never changed once made, but not frozen: a frozen
    dataclass's constructor sets each field through ``object.__setattr__`` (1.3 against 0.2 us here), and a
    match is made for a third of the events in a detection worker and again when the engine unpickles it."""

    rule_id: str
    event_id: str
    timestamp_ms: int
    get: Callable[[str], Any]
    rule_name: str | None = None
    host_name: str | None = None
    origin: EventOrigin | None = None

    def __reduce__(self) -> tuple[type[RuleMatch], tuple[Any, ...]]:
        # Pickled as constructor arguments: cheaper than the dataclass state protocol (detection workers send the
        # engine thousands per batch).
        return RuleMatch, (self.rule_id, self.event_id, self.timestamp_ms, self.get, self.rule_name,
                           self.host_name, self.origin)

    @classmethod
    def from_event(cls, rule_id: str, event: Any, rule_name: str | None = None) -> RuleMatch:
        """From a `correlator.model.Event`: native fields first, ECS names only when asked for."""
        native = event.native

        def get(name: str) -> Any:
            value = native.get(name)
            return value if value is not None or name in native else event.get(name)

        return cls(rule_id, event.id, event.timestamp_ms, get, rule_name, event.host_name, event.origin)


@dataclass(frozen=True, slots=True)
class EngineSettings:
    lateness_ms: int = 0
    late_policy: LatePolicy = LatePolicy.DROP
    keyless_policy: KeylessPolicy = KeylessPolicy.SKIP
    max_listed_events: int = 50  # contributing event ids listed in an alert
    max_window_events: int = 10_000  # event ids a closing event_count window keeps (beyond: counted only)

    def __post_init__(self) -> None:
        if self.lateness_ms < 0:
            raise ValueError(f"allowed lateness must not be negative, not {self.lateness_ms}")
        if self.max_listed_events < 0 or self.max_window_events < 1:
            raise ValueError("max_listed_events must be >= 0 and max_window_events >= 1")


@dataclass(frozen=True, slots=True)
class CorrelationMetrics:
    live_keys: int  # distinct group keys holding state (over all rules)
    live_windows: int  # (rule, group key) scopes holding an open window
    held_events: int  # entries held in windows
    pending: int  # matches waiting for the horizon
    late_events: int
    late_admitted: int
    keyless_events: int
    missing_values: int
    evictions: int
    alerts: int
    watermark_ms: int | None


# A match waiting for the horizon: (ts, event id, canonical rule id, seq, field values, context). The field values
# are the ones the correlation rules read, copied out of the event (so snapshots can hold it); the context is
# `[host name, origin as a list]` of the event, carried into alerts.
_Pending = tuple[int, str, str, int, dict[str, Any], list[Any] | None]


def scalar(value: Any) -> Any:
    """A hashable, JSON-ready form of a field value (group keys, distinct values)."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str).decode()


def number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def origin_list(origin: EventOrigin | None) -> list[Any] | None:
    if origin is None:
        return None
    return [origin.path, origin.offset, origin.record_id, origin.format]
