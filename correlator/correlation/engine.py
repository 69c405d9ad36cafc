"""The streaming correlation engine: base-rule matches in, correlation alerts out, on event time.

Feeding: `process(match)` takes one base-rule match (rule id/name, event id, event time, a field getter);
`advance(watermark_ms)` tells the engine event time has reached a point (idle streams, timers); `flush()` ends the
input. Each returns the alerts that became final.

Time and order (deterministic results): the watermark `W` is the highest event time seen (in a match or an
`advance`). A match is held until it is older than the horizon `W - lateness`; held matches are then evaluated in
event-time order (ties by event id, then rule id), interleaved with window closings. So any arrival order in which
no match comes later than `lateness` behind the newest one gives the same alerts, in the same order. A match that
arrives already older than the horizon is *late*: it is counted, logged (rate-limited) and handed to `late_sink`,
and then the `LatePolicy` decides: `drop` (default) leaves it out; `admit` evaluates it at once at the current
frontier (nothing lost, but the result then depends on arrival order).

Windows (see windows.py): a window is `[start, start + timespan]`, both ends inclusive. State is kept per
(correlation rule, group key): the group key is the tuple of group-by values, each read under the field name that
`aliases` gives for the matching rule. A match missing a group-by field follows the `KeylessPolicy`.

When a rule fires, and again:
- A condition made only of lower bounds (`gt`, `gte`; the default of temporal types) is *eager*: the window
  slides, ending at each match; the condition is checked after each match is added and fires on the match that
  makes it true. The alert's time is that match's time. After firing, the key's state is cleared (reset): the
  same events never fire twice, and the next window begins with the next match. So `event_count gte 5` over 12
  matches in one timespan fires on the 5th and the 10th.
- Any other condition (`lt`, `lte`, `eq`, `neq`, or a range with an upper bound) is decided when the window
  *closes*: the first match of a key opens a window `[t, t + timespan]`; once it is closed (end older than the
  horizon, or at `flush()`) the condition is checked once over everything in it, the alert's time is the window
  end, and the key's state is cleared; the next match opens a new window. Keys with no match get no window:
  "fewer than N" never fires for zero events.
- temporal: the number of distinct referenced rules with a match in the window (default: all of them); the
  newest match of each rule counts. temporal_ordered: a chain of matches of the referenced rules in the given
  order, with strictly increasing event times, first to last within the timespan; for each prefix of the rule
  list the chain that started latest is kept (so a newer first step replaces an older one).
- value_count counts distinct values of `condition.field` (a match without the field is counted in
  `missing_values` and left out); value_sum / value_avg / value_median / value_percentile read it as a number
  (numeric strings too); percentiles interpolate linearly between closest ranks.

Alerts: rule kind `correlation`, the correlation rule's id/title/level/tags; `event_id` is a content hash of
(rule id, group key, ids of the contributing events), so a replay yields the same alert id. `extra["correlation"]`
holds the type, group (field -> value), the value compared, the contributing event ids (at most
`max_listed_events`, oldest first; `events_total` gives the count), the ids of the rules they matched, and the
window. Chains: every correlation alert is fed at once, as a match of its rule at the alert's time (event id:
the alert's `event_id`; fields: its group-by values), to the rules that reference it; it is output only if its
rule emits its own alerts (`generate`, see loader.CorrelationSet).

End of input: `flush()` evaluates every held match and closes every window whatever the watermark; afterwards a
match older than the last evaluated event time is late.

Memory: a sliding key whose newest match is older than `horizon - timespan` can never be reached again and is
evicted (during `advance`/`flush`, and every 4096 matches); a closing window is removed when it closes. Emptied
per-key state is pooled (at most 4096 per rule) and reused for new keys, so key churn allocates little and does
not keep Python's cyclic GC rescanning the state. Snapshots: see snapshot.py (`snapshot()`, `restore()`,
`reload()`).
"""

from __future__ import annotations

import hashlib
import heapq
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NamedTuple

import orjson

from correlator.correlation.definitions import (
    METRIC_TYPES,
    VALUE_TYPES,
    CorrelationType,
    KeylessPolicy,
    LatePolicy,
)
from correlator.correlation.loader import CorrelationSet
from correlator.correlation.match import CorrelationMetrics, EngineSettings, RuleMatch, number, origin_list, scalar
from correlator.correlation.rule import CorrelationRule
from correlator.correlation.state import EventScope, NumericScope, OrderedScope, Scope, TemporalScope, scope_class
from correlator.correlation.windows import Window, horizon, is_closed, window_end
from correlator.model import Alert, EventOrigin, MatchedRule

__all__ = ["CorrelationEngine"]

log = logging.getLogger(__name__)

_EVICT_EVERY = 4096
_LOG_FIRST = 20
_LOG_EVERY = 10_000
_FAR_FUTURE = 2**62
_NO_ORIGIN = EventOrigin()
_POOL_MAX = 4096

# A match waiting for the horizon: (ts, event id, canonical rule id, seq, field values, context). The field values
# are the ones the correlation rules read, copied out of the event (so snapshots can hold it); the context is
# `[host name, origin as a list]` of the event, carried into alerts.
_Pending = tuple[int, str, str, int, dict[str, Any], list[Any] | None]


class _Live:
    """A loaded correlation rule with its state."""

    __slots__ = ("check", "duration", "eager", "emit", "factory", "matched_rule", "pool", "rule", "scopes",
                 "single", "type_name", "window")

    def __init__(self, rule: CorrelationRule, emit: bool, settings: EngineSettings) -> None:
        self.rule = rule
        self.emit = emit
        self.window = Window(rule.timespan_ms, settings.lateness_ms)  # validated; the hot path inlines its maths
        self.duration = self.window.duration_ms
        self.eager = rule.eager
        self.check = rule.condition.compile()
        self.type_name = rule.type.value
        # Group key -> state, oldest touched first. With one group-by field the key is the bare value (no tuple
        # to allocate per match); otherwise the tuple of values.
        self.scopes: OrderedDict[Any, Scope] = OrderedDict()
        self.single = len(rule.group_by) == 1
        # Emptied scopes kept for reuse: a key's churn then allocates nothing new, which keeps Python's
        # cyclic GC from re-scanning the whole state over and over (bounded: at most _POOL_MAX per rule).
        self.pool: list[Scope] = []
        self.matched_rule = MatchedRule(id=rule.id, title=rule.title, level=rule.level or "informational",
                                        tags=rule.tags, kind="correlation", path=rule.path,
                                        description=rule.description)
        width = len(rule.rules)
        cls = scope_class(rule.type)
        self.factory: Callable[[int], Scope]
        if cls is EventScope:
            self.factory = partial(EventScope, cap=settings.max_window_events if not rule.eager else 2**62)
        elif cls is NumericScope:
            pct = 50 if rule.condition.percentile is None or rule.type != CorrelationType.VALUE_PERCENTILE \
                else rule.condition.percentile
            self.factory = partial(NumericScope, measure=rule.type, pct=pct)
        elif cls in (TemporalScope, OrderedScope):
            self.factory = partial(cls, width=width)
        else:
            self.factory = cls

    def new_scope(self, start: int) -> Scope:
        pool = self.pool
        if pool:
            scope = pool.pop()
            scope.reset(start)
            return scope
        return self.factory(start)

    def release(self, scope: Scope) -> None:
        if len(self.pool) < _POOL_MAX:
            self.pool.append(scope)

    def load_scope(self, data: list[Any]) -> Scope:
        return self.factory(0).load(data)

    def key_values(self, key: Any) -> tuple[Any, ...]:
        return (key,) if self.single else key

    def make_key(self, values: list[Any]) -> Any:
        return values[0] if self.single else tuple(values)


class _Route(NamedTuple):
    """How a match of one referenced rule reaches one correlation rule (a tuple: the hot path unpacks it)."""

    live: _Live
    positions: tuple[int, ...]  # positions of the rule in `rules:`, highest first
    key_fields: tuple[str, ...]  # group-by fields, alias-resolved for this rule
    value_field: str | None  # condition field, alias-resolved
    numeric: bool


@dataclass(slots=True)
class _Counters:
    late: int = 0
    admitted: int = 0
    keyless: int = 0
    missing: int = 0
    evictions: int = 0
    alerts: int = 0
    logged: dict[str, int] = field(default_factory=dict)

def _merged_context(held: list[Any] | None, new: list[Any] | None) -> list[Any] | None:
    """The context a window carries into its alert: the latest event's origin, and its host only while every
    event of the window came from that host (a correlation over several hosts names none)."""
    if held is None or new is None:
        return new if new is not None else held
    if held[0] == new[0]:
        return new
    return [None, new[1]]


class CorrelationEngine:
    """Streaming Sigma correlation over base-rule matches, on event time (never the wall clock)."""

    def __init__(self, rules: CorrelationSet, settings: EngineSettings | None = None, *,
                 late_sink: Callable[[RuleMatch, str], None] | None = None) -> None:
        self.settings = settings or EngineSettings()
        self.late_sink = late_sink
        self._skip_keyless = self.settings.keyless_policy == KeylessPolicy.SKIP
        self._lateness = self.settings.lateness_ms
        self._watermark: int | None = None
        self._floor = -_FAR_FUTURE  # a match older than this is late: max(watermark - lateness, last evaluated time)
        self._now = -_FAR_FUTURE  # event time of the last evaluated match or closing
        self._seq = 0
        self._pending: list[_Pending] = []
        self._timers: list[tuple[int, int, str, Any]] = []
        self._out: list[Alert] = []
        self._counters = _Counters()
        self._since_evict = 0
        self._install(rules)

    # ------------------------------------------------------------------------------------------------ rules

    def _install(self, rules: CorrelationSet) -> None:
        self.rules = rules
        self._live: dict[str, _Live] = {}  # by semantic hash
        self._routes: dict[str, list[_Route]] = {}  # by canonical id of the referenced rule
        self._needed: dict[str, tuple[str, ...]] = {}
        self._canonical: dict[str, str] = {}  # id or name of a referenced rule -> canonical id
        for base in rules.base_rules:
            for key in (base.id, base.name):
                if key:
                    self._canonical[key] = base.canonical
        for rule in rules.rules:
            self._canonical[rule.id] = rule.id
            if rule.name:
                self._canonical[rule.name] = rule.id
        for rule in rules.rules:
            live = _Live(rule, rule.id not in rules.withheld, self.settings)
            self._live[rule.semantic_hash] = live
            for source in dict.fromkeys(rule.rules):
                positions = tuple(sorted((i for i, r in enumerate(rule.rules) if r == source), reverse=True))
                key_fields = tuple(rule.field_for(name, source) for name in rule.group_by)
                value_field = rule.field_for(rule.condition.field, source) \
                    if rule.type in VALUE_TYPES and rule.condition.field else None
                self._routes.setdefault(source, []).append(
                    _Route(live, positions, key_fields, value_field, rule.type in METRIC_TYPES))
        self._canonical = {key: source for key, source in self._canonical.items() if source in self._routes}
        for source, routes in self._routes.items():
            names: dict[str, None] = {}
            for route in routes:
                names.update(dict.fromkeys(route.key_fields))
                if route.value_field:
                    names[route.value_field] = None
            self._needed[source] = tuple(names)

    def reload(self, rules: CorrelationSet) -> None:
        """Swap the rule set; rules whose semantic content is unchanged keep their windows, the rest start fresh."""
        data = self.snapshot()
        self._install(rules)
        self.restore(data)

    # ------------------------------------------------------------------------------------------------ input

    def process(self, match: RuleMatch) -> list[Alert]:
        """Take one base-rule match; returns the alerts that became final (often none until later matches)."""
        source = self._canonical.get(match.rule_id)
        if source is None and (match.rule_name is None or (source := self._canonical.get(match.rule_name)) is None):
            return []
        get = match.get
        values = {}
        for name in self._needed[source]:
            value = get(name)
            values[name] = value if value is None or type(value) is str or type(value) is int else scalar(value)
        origin = match.origin
        context = None if match.host_name is None and origin is None else [match.host_name, origin_list(origin)]
        ts = match.timestamp_ms
        if ts < self._floor:
            self._late(match, source, values, context)
        else:
            self._seq += 1
            pending = self._pending
            heapq.heappush(pending, (ts, match.event_id, source, self._seq, values, context))
            watermark = self._watermark
            if watermark is None or ts > watermark:
                self._watermark = ts
                floor = self._floor = ts - self._lateness
                if pending[0][0] < floor or (self._timers and self._timers[0][0] < floor):
                    self._sweep(floor)
        self._since_evict += 1
        if self._since_evict >= _EVICT_EVERY:
            self._evict()
        if not self._out:
            return []
        out, self._out = self._out, []
        return out

    def process_many(self, matches: Iterable[RuleMatch]) -> list[Alert]:
        out: list[Alert] = []
        for match in matches:
            out.extend(self.process(match))
        return out

    def advance(self, watermark_ms: int) -> list[Alert]:
        """Event time has reached `watermark_ms`: evaluate what became final, close windows, evict expired keys."""
        if self._watermark is None or watermark_ms > self._watermark:
            self._watermark = watermark_ms
            self._floor = max(self._floor, watermark_ms - self.settings.lateness_ms)
            self._sweep(self._floor)
        self._evict()
        return self._drain()

    def flush(self) -> list[Alert]:
        """End of input (file replay): evaluate everything held and close every window. A later match older than
        the last evaluated event time is late."""
        self._sweep(_FAR_FUTURE)
        self._floor = max(self._floor, self._now)
        self._evict()
        return self._drain()

    @property
    def watermark_ms(self) -> int | None:
        return self._watermark

    def fields_for(self, rule_id: str, rule_name: str | None = None) -> tuple[str, ...] | None:
        """The fields the correlation rules read of a base rule's matches (group-by, value and alias fields), or
        None when no correlation rule references it. A caller that ships matches elsewhere (worker processes,
        a broker) copies just these values out of the event."""
        source = self._canonical.get(rule_id)
        if source is None and rule_name is not None:
            source = self._canonical.get(rule_name)
        return None if source is None else self._needed[source]

    # ------------------------------------------------------------------------------------------------ evaluation

    def _late(self, match: RuleMatch, source: str, values: dict[str, Any], context: list[Any] | None) -> None:
        counters = self._counters
        counters.late += 1
        policy = self.settings.late_policy
        reason = (f"late match: event {match.event_id} of rule {source} at {match.timestamp_ms} is older than "
                  f"{self._floor} (watermark {self._watermark} - lateness {self.settings.lateness_ms}); "
                  f"policy {policy.value}")
        self._log("late", reason)
        if self.late_sink is not None:
            self.late_sink(match, reason)
        if policy == LatePolicy.ADMIT:
            counters.admitted += 1
            self._apply(max(match.timestamp_ms, self._now), match.event_id, source, values, context)

    def _log(self, kind: str, message: str) -> None:
        logged = self._counters.logged
        n = logged.get(kind, 0) + 1
        logged[kind] = n
        if n <= _LOG_FIRST or n % _LOG_EVERY == 0:
            log.warning("%s (%d so far)", message, n)

    def _sweep(self, horizon: int) -> None:
        """Evaluate held matches and close windows older than `horizon`, in event-time order."""
        pending, timers = self._pending, self._timers
        pop = heapq.heappop
        while True:
            if pending and pending[0][0] < horizon and not (timers and timers[0][0] < pending[0][0]):
                ts, event_id, source, _, values, context = pop(pending)
                self._now = ts
                self._apply(ts, event_id, source, values, context)
            elif timers and timers[0][0] < horizon:
                end, _, digest, key = pop(timers)
                # max: an admitted late match may have opened a window that is already over
                self._now = max(self._now, end)
                self._close(digest, key, end)
            else:
                return

    def _apply(self, ts: int, event_id: str, source: str, values: dict[str, Any], context: list[Any] | None) -> None:
        """Feed one final match to every correlation rule that references its rule (the hot path)."""
        for live, positions, key_fields, value_field, numeric in self._routes.get(source, ()):
            if len(key_fields) == 1:
                key: Any = values.get(key_fields[0])
                keyless = key is None
            else:
                key = tuple([values.get(f) for f in key_fields])
                keyless = None in key
            if keyless and self._skip_keyless:
                self._counters.keyless += 1
                self._log("keyless", f"match of rule {source} (event {event_id}) lacks a group-by field of "
                                     f"correlation {live.rule.id} {list(live.rule.group_by)}; skipped")
                continue
            value: Any = None
            if value_field is not None:
                value = values.get(value_field)
                if numeric:
                    value = number(value)
                if value is None:
                    self._counters.missing += 1
                    self._log("missing", f"match of rule {source} (event {event_id}) has no "
                                         f"{'numeric ' if numeric else ''}value in "
                                         f"{value_field!r} for correlation {live.rule.id}; skipped")
                    continue
            scopes = live.scopes
            scope = scopes.get(key)
            if live.eager:
                if scope is None:
                    scope = scopes[key] = live.new_scope(ts)
                else:
                    scopes.move_to_end(key)
                metric = scope.offer(ts, event_id, positions, value, ts - live.duration)
                scope.last_ts = ts
                scope.context = _merged_context(scope.context, context)
                if metric is not None and live.check(metric):
                    del scopes[key]
                    self._fire(live, key, scope, metric, ts)
                    live.release(scope)
                continue
            if scope is None:
                scope = scopes[key] = live.new_scope(ts)
                self._seq += 1
                heapq.heappush(self._timers, (ts + live.duration, self._seq, live.rule.semantic_hash, key))
            scope.add(ts, event_id, positions, value)
            scope.last_ts = ts
            scope.context = _merged_context(scope.context, context)

    def _close(self, digest: str, key: Any, end: int) -> None:
        live = self._live.get(digest)
        if live is None:
            return
        scope = live.scopes.get(key)
        if scope is None or scope.start + live.duration != end:
            return
        del live.scopes[key]
        metric = scope.metric()
        if metric is not None and live.check(metric):
            self._fire(live, key, scope, metric, end)
        live.release(scope)

    def _fire(self, live: _Live, key: Any, scope: Scope, metric: float, ts: int) -> None:
        rule = live.rule
        contributors = scope.contributors()
        event_ids = [entry[1] for entry in contributors]
        digest = hashlib.sha256(
            orjson.dumps([rule.id, list(live.key_values(key)), event_ids], default=str)
        ).hexdigest()[:32]
        group = dict(zip(rule.group_by, live.key_values(key), strict=True))
        self._counters.alerts += 1
        if live.emit:  # a chain step whose alerts are withheld feeds the rules above it and nothing else
            self._out.append(self._alert(live, scope, contributors, event_ids, digest, group, metric, ts))
        if rule.id in self._routes:  # chained: the alert is a match of this rule for the rules above it
            needed = self._needed[rule.id]
            self._apply(ts, digest, rule.id, {n: group.get(n) for n in needed}, scope.context)

    def _alert(self, live: _Live, scope: Scope, contributors: list[Any], event_ids: list[str], digest: str,
               group: dict[str, Any], metric: float, ts: int) -> Alert:
        rule = live.rule
        listed = event_ids[: self.settings.max_listed_events]
        value: float | int = int(metric) if float(metric).is_integer() else metric
        host, origin_list = scope.context if scope.context is not None else (None, None)
        origin = EventOrigin(*origin_list) if origin_list is not None else _NO_ORIGIN
        return Alert(
            rule=live.matched_rule,
            event_id=digest,
            timestamp_ms=ts,
            host_name=host,
            origin=origin,
            matched=dict(group),
            extra={"correlation": {
                "type": live.type_name,
                "group": group,
                "value": value,
                "events": listed,
                "events_total": len(event_ids) + getattr(scope, "overflow", 0),
                "rules": sorted({rule.rules[p] for p in {entry[2] for entry in contributors}}),
                "window": {"start": contributors[0][0] if contributors else scope.start, "end": ts},
            }},
        )

    def _evict(self) -> None:
        self._since_evict = 0
        if self._watermark is None:
            return
        now = horizon(self._watermark, self.settings.lateness_ms)
        for live in self._live.values():
            if not live.eager:
                continue
            scopes = live.scopes
            duration = live.duration
            expired = []
            for key, scope in scopes.items():  # oldest first: scopes move to the end when touched
                if not is_closed(window_end(scope.last_ts, duration), now):
                    break
                expired.append(key)
            release = live.release
            for key in expired:
                release(scopes.pop(key))
            self._counters.evictions += len(expired)

    def _drain(self) -> list[Alert]:
        if not self._out:
            return []
        out, self._out = self._out, []
        return out

    # ------------------------------------------------------------------------------------------------ metrics

    def metrics(self) -> CorrelationMetrics:
        keys: set[tuple[Any, ...]] = set()
        windows = held = 0
        for live in self._live.values():
            keys.update(live.key_values(key) for key in live.scopes)
            windows += len(live.scopes)
            held += sum(scope.held() for scope in live.scopes.values())
        c = self._counters
        return CorrelationMetrics(
            live_keys=len(keys), live_windows=windows, held_events=held, pending=len(self._pending),
            late_events=c.late, late_admitted=c.admitted, keyless_events=c.keyless, missing_values=c.missing,
            evictions=c.evictions, alerts=c.alerts, watermark_ms=self._watermark,
        )

    # ------------------------------------------------------------------------------------------------ snapshots

    def snapshot(self) -> bytes:
        from correlator.correlation.snapshot import encode

        return encode(self._state())

    def restore(self, data: bytes) -> None:
        """Load a snapshot. Unchanged rules (same semantic hash) get their windows back; state of rules that
        changed or went away is dropped and logged."""
        from correlator.correlation.snapshot import decode

        self._load_state(decode(data))

    def _state(self) -> dict[str, Any]:
        c = self._counters
        return {
            "watermark": self._watermark,
            "floor": self._floor,
            "now": self._now,
            "seq": self._seq,
            "counters": [c.late, c.admitted, c.keyless, c.missing, c.evictions, c.alerts],
            "pending": [list(item) for item in sorted(self._pending, key=lambda i: i[:4])],
            "timers": [[end, seq, digest, list(self._live[digest].key_values(key))]
                       for end, seq, digest, key in sorted(self._timers, key=lambda t: t[:3])],
            "rules": {
                digest: {"id": live.rule.id,
                         "scopes": [[list(live.key_values(key)), scope.dump()] for key, scope in live.scopes.items()]}
                for digest, live in self._live.items()
            },
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        self._watermark = state["watermark"]
        self._floor = state["floor"]
        self._now = state["now"]
        self._seq = state["seq"]
        c = self._counters
        c.late, c.admitted, c.keyless, c.missing, c.evictions, c.alerts = state["counters"]
        self._pending = []
        for ts, event_id, source, seq, values, context in state["pending"]:
            self._pending.append((ts, event_id, source, seq, values, context))
        heapq.heapify(self._pending)
        for live in self._live.values():
            live.scopes.clear()
        dropped: list[str] = []
        for digest, saved in state["rules"].items():
            target = self._live.get(digest)
            if target is None:
                dropped.append(saved["id"])
                continue
            for key, dump in saved["scopes"]:
                target.scopes[target.make_key(key)] = target.load_scope(dump)
        if dropped:
            log.warning("state of %d correlation rule(s) not restored (changed or removed): %s",
                        len(dropped), ", ".join(sorted(dropped)))
        self._timers = [(end, seq, digest, self._live[digest].make_key(key))
                        for end, seq, digest, key in state["timers"]
                        if digest in self._live]
        heapq.heapify(self._timers)
