"""Alert suppression that explains itself: the same rule firing for the same key within a window becomes one alert
with a count, first and last seen (Elastic Security's alert suppression); nothing is dropped invisibly. The policy
(window, key fields, per-rule overrides, exempt kinds) is `correlator.suppression_policy.SuppressionPolicy`.

Key: the rule (kind and id), the key fields and each field's value, read from the alert as
`correlator.cases.grouping.alert_value` reads it (`host.name` from the alert, then `extra` flat or nested, then
`matched`). Values are compared exactly; blank values (``""``, ``-``, ``null``, ``none``) count as missing; a list
counts as the sorted set of its values. With ``missing_fields: suppress`` a missing value is part of the key (like
any other value); with ``do_not_suppress`` an alert missing any key field is never suppressed.

Windows, in event time (integer ms; the clock is never read). The first alert of a key is its *representative*
and opens the window ``[start, start + window]`` (both ends inclusive) at its own time. An alert of the same key
at time ``t`` is counted into a representative when

* ``start <= t <= start + window`` (in its window), or
* ``start - window <= t < start`` (out of order: before the representative but at most one window earlier; the
  window does not move, the block's `start` does);

of several representatives of the key, one whose window holds ``t`` (the latest such start), else the nearest
later one. Otherwise the alert becomes a new representative. So a representative spans at most two windows of
event time. The first alert processed is the representative, so replaying the same alerts in the same order gives
the same representatives and counts, and alerts that lie within one window give the same count in any order.
Every alert given is counted: processing the same alert twice counts it twice (pair a snapshot with the input
position it was taken at).

A representative carries in ``extra["suppression"]`` (names after Kibana's ``kibana.alert.suppression.*``)::

    count           alerts it represents, itself included
    docs_count      alerts suppressed into it (count - 1, as Kibana's docs_count)
    start, end      first and last event time of the alerts it represents (RFC 3339, as Kibana's)
    terms           [{"field": ..., "value": ...}] the key (value None when missing; a list for several values)
    window          the window as a duration ("10m")
    window_start, window_end   its window (RFC 3339)
    suppressed_ids  the ids of the first `max_ids` alerts suppressed into it, in processing order

`Suppressor.process` returns a `Decision`: `new` (create this alert) or `suppressed` (overwrite the representative
it returns); `process_many` does a batch. `advance(watermark_ms)` evicts representatives whose window ended before
the watermark (pass the watermark minus any allowed lateness); a later alert of that key opens a new
representative. `snapshot` and `restore` keep the representatives across a restart (versioned JSON; values in
`matched`/`extra` that are not JSON become strings).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Final

import orjson

from correlator.cases.definitions import format_duration
from correlator.model import Alert, EventOrigin, MatchedRule, alert_value, ms_to_iso
from correlator.suppression_policy import (
    DEFAULT_FIELDS,
    DEFAULT_POLICY,
    MISSING_FIELDS,
    RULE_KINDS,
    RuleSuppression,
    SuppressionError,
    SuppressionPolicy,
    SuppressionPolicyError,
    SuppressionScope,
)

__all__ = [
    "DEFAULT_FIELDS",
    "DEFAULT_POLICY",
    "MISSING_FIELDS",
    "RULE_KINDS",
    "SNAPSHOT_FORMAT",
    "SNAPSHOT_VERSION",
    "Action",
    "Decision",
    "RuleSuppression",
    "SuppressionError",
    "SuppressionMetrics",
    "SuppressionPolicy",
    "SuppressionPolicyError",
    "SuppressionScope",
    "SuppressionSnapshotError",
    "Suppressor",
]

SNAPSHOT_FORMAT: Final = "socctl.suppression.snapshot"
SNAPSHOT_VERSION: Final = 1
_EMPTY: Final = frozenset({"", "-", "null", "none"})
_SNAPSHOT_KEYS: Final = ("watermark", "seq", "counters", "representatives")


class SuppressionSnapshotError(SuppressionError):
    """A snapshot that cannot be restored."""


class Action(StrEnum):
    NEW = "new"  # create the alert; when suppressible, it now represents its key
    SUPPRESSED = "suppressed"  # counted into a representative: overwrite the representative returned


@dataclass(frozen=True, slots=True)
class Decision:
    """What one alert did. `alert`: for `new`, the alert to create (with its suppression block when it represents
    a key); for `suppressed`, the representative with its updated block. `representative_id` is None for an
    alert that is not subject to suppression; `reason` says why in words."""

    action: Action
    alert: Alert
    reason: str
    representative_id: str | None = None

    @property
    def suppressed(self) -> bool:
        return self.action is Action.SUPPRESSED


@dataclass(frozen=True, slots=True)
class SuppressionMetrics:
    live_keys: int  # keys with at least one live representative
    representatives: int  # live representatives
    new_total: int  # representatives opened
    suppressed_total: int  # alerts counted into a representative
    passed_total: int  # alerts not subject to suppression (exempt, disabled, missing fields)
    evicted_total: int  # representatives evicted by `advance`

    def to_dict(self) -> dict[str, int]:
        return {"live_keys": self.live_keys, "representatives": self.representatives, "new_total": self.new_total,
                "suppressed_total": self.suppressed_total, "passed_total": self.passed_total,
                "evicted_total": self.evicted_total}


Term = str | tuple[str, ...] | None
Key = tuple[str, str, tuple[str, ...], tuple[Term, ...]]  # rule kind, rule id, fields, values


def _term(value: Any) -> Term:
    """A key value: a stripped string, the sorted distinct strings of a list, or None when missing."""
    if value is None:
        return None
    if value.__class__ is str:
        text = value.strip()
        return None if text.lower() in _EMPTY else text
    if isinstance(value, Mapping):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str).decode() if value else None
    if isinstance(value, list | tuple):
        items = sorted({t for t in (_term(item) for item in value) if isinstance(t, str)})
        if not items:
            return None
        return items[0] if len(items) == 1 else tuple(items)
    text = str(value).strip()
    return None if text.lower() in _EMPTY else text


class _Representative:
    """A live representative: the first alert of its key and what has been counted into it."""

    __slots__ = ("alert", "count", "first_ms", "ids", "key", "last_ms", "seq", "start_ms", "window_ms")

    def __init__(self, alert: Alert, key: Key, window_ms: int, seq: int) -> None:
        self.alert = alert
        self.key = key
        self.window_ms = window_ms
        self.seq = seq
        self.start_ms = self.first_ms = self.last_ms = alert.timestamp_ms
        self.count = 1
        self.ids: list[str] = []

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.window_ms

    def accepts(self, ts_ms: int) -> bool:
        return self.start_ms - self.window_ms <= ts_ms <= self.end_ms

    def render(self) -> Alert:
        _, _, fields, values = self.key
        terms = [{"field": name, "value": list(value) if isinstance(value, tuple) else value}
                 for name, value in zip(fields, values, strict=True)]
        block = {
            "count": self.count,
            "docs_count": self.count - 1,
            "start": ms_to_iso(self.first_ms),
            "end": ms_to_iso(self.last_ms),
            "terms": terms,
            "window": format_duration(self.window_ms),
            "window_start": ms_to_iso(self.start_ms),
            "window_end": ms_to_iso(self.end_ms),
            "suppressed_ids": list(self.ids),
        }
        return replace(self.alert, extra={**self.alert.extra, "suppression": block})


class Suppressor:
    """Suppression state in memory, driven by event time (see the module doc). Not thread-safe."""

    def __init__(self, policy: SuppressionPolicy = DEFAULT_POLICY) -> None:
        self._policy = policy
        # Per rule (kind, id): its scope and exemption under the policy (fixed for a suppressor's life).
        self._scopes: dict[tuple[str, str], tuple[SuppressionScope | None, str | None]] = {}
        self._live: dict[Key, list[_Representative]] = {}
        self._ends: list[tuple[int, int, _Representative]] = []  # heap of (window end, seq, representative)
        self._seq = 0
        self._watermark: int | None = None
        self._new = self._suppressed = self._passed = self._evicted = 0

    @property
    def policy(self) -> SuppressionPolicy:
        return self._policy

    @property
    def watermark(self) -> int | None:
        """The highest watermark given to `advance`; None before the first."""
        return self._watermark

    def key_of(self, alert: Alert) -> Key | None:
        """The alert's suppression key; None when it is not subject to suppression."""
        return self._key(alert)[0]

    def _key(self, alert: Alert) -> tuple[Key | None, int, str]:
        """(key, window, why there is no key)."""
        policy = self._policy
        rule = alert.rule
        cached = self._scopes.get((rule.kind, rule.id))
        if cached is None:
            cached = self._scopes[(rule.kind, rule.id)] = (policy.scope(rule), policy.exemption(rule))
        scope, exemption = cached
        if scope is None:
            return None, 0, exemption or "not suppressed"
        values = tuple([_term(alert_value(alert, name)) for name in scope.fields])
        if policy.missing_fields == "do_not_suppress" and None in values:
            missing = [name for name, value in zip(scope.fields, values, strict=True) if value is None]
            return None, 0, f"missing key field(s) {', '.join(missing)} (missing_fields: do_not_suppress)"
        return (alert.rule.kind, alert.rule.id, scope.fields, values), scope.window_ms, ""

    def process(self, alert: Alert) -> Decision:
        """Count `alert` into its key's representative, or make it one (see the module doc for the rule)."""
        action, rep, reason = self._decide(alert, explain=True)
        if rep is None:
            return Decision(action, alert, reason)
        reason = f"{reason} (count {rep.count})" if action is Action.SUPPRESSED else reason
        return Decision(action, rep.render(), reason, rep.alert.id)

    def _decide(self, alert: Alert, *, explain: bool) -> tuple[Action, _Representative | None, str]:
        """(action, the representative it opened or was counted into, why in words when `explain`)."""
        key, window_ms, why_not = self._key(alert)
        if key is None:
            self._passed += 1
            return Action.NEW, None, why_not
        t = alert.timestamp_ms
        reps = self._live.get(key, ())
        inside = [r for r in reps if r.start_ms <= t <= r.end_ms]
        if inside:
            rep = max(inside, key=lambda r: r.start_ms)
            self._count(rep, alert)
            return Action.SUPPRESSED, rep, f"within the window of representative {rep.alert.id}" if explain else ""
        earlier = [r for r in reps if r.accepts(t)]
        if earlier:
            rep = min(earlier, key=lambda r: r.start_ms)
            self._count(rep, alert)
            reason = (f"out of order: before representative {rep.alert.id}, within one window of its start"
                      if explain else "")
            return Action.SUPPRESSED, rep, reason
        reason = ""
        if explain and not reps:
            reason = "first alert of its key"
        elif explain:
            last = max(reps, key=lambda r: r.end_ms)
            reason = (f"the window of representative {last.alert.id} ended at {ms_to_iso(last.end_ms)}"
                      if t > last.end_ms else "more than one window before the key's representatives")
        rep = _Representative(alert, key, window_ms, self._seq)
        self._add(rep)
        self._new += 1
        return Action.NEW, rep, reason

    def _add(self, rep: _Representative) -> None:
        self._seq = max(self._seq, rep.seq + 1)
        self._live.setdefault(rep.key, []).append(rep)
        heapq.heappush(self._ends, (rep.end_ms, rep.seq, rep))

    def _count(self, rep: _Representative, alert: Alert) -> None:
        rep.count += 1
        rep.first_ms = min(rep.first_ms, alert.timestamp_ms)
        rep.last_ms = max(rep.last_ms, alert.timestamp_ms)
        if len(rep.ids) < self._policy.max_ids:
            rep.ids.append(alert.id)
        self._suppressed += 1

    def process_many(self, alerts: Iterable[Alert],
                     standing: Callable[[Alert], None] | None = None) -> tuple[list[Alert], list[Alert]]:
        """A batch: (new, updated). `new`: the alerts to create in input order, each representative opened in the
        batch with its final count; `updated`: the representatives from before the batch that it changed, each
        once with its latest count, in order of first change. `standing` is called with each alert that is
        created (not counted into another) before it is rendered: what it writes into the alert's `extra`
        (a score) is in the alert returned and stays with a representative. Each representative is rendered
        once, after the whole batch."""
        batch = self.batch()
        fresh = batch.add(alerts, standing)
        return [batch.final(item) for item in fresh], batch.updated()

    def batch(self) -> SuppressionBatch:
        """A batch fed in parts (`SuppressionBatch.add`), rendered once at its end: what `process_many` does for
        alerts that come in groups (the analysis stage scores each event's alerts in turn)."""
        return SuppressionBatch(self)

    def advance(self, watermark_ms: int) -> list[Alert]:
        """Move the watermark (it never goes back) and evict the representatives whose window ended before it
        (``window_end < watermark``); returns them, final, in order of window end."""
        if self._watermark is None or watermark_ms > self._watermark:
            self._watermark = watermark_ms
        horizon = self._watermark
        evicted: list[Alert] = []
        while self._ends and self._ends[0][0] < horizon:
            _, _, rep = heapq.heappop(self._ends)
            reps = self._live[rep.key]
            reps.remove(rep)
            if not reps:
                del self._live[rep.key]
            evicted.append(rep.render())
        self._evicted += len(evicted)
        return evicted

    def representatives(self) -> list[Alert]:
        """Every live representative, as it stands, in order of opening."""
        return [rep.render() for rep in sorted((r for _, _, r in self._ends), key=lambda r: r.seq)]

    def metrics(self) -> SuppressionMetrics:
        return SuppressionMetrics(live_keys=len(self._live), representatives=len(self._ends), new_total=self._new,
                                  suppressed_total=self._suppressed, passed_total=self._passed,
                                  evicted_total=self._evicted)

    # -- snapshots

    def snapshot(self) -> bytes:
        """The state as versioned JSON: restore it into a suppressor (with the same policy) to carry on counting
        into the same representatives."""
        reps = sorted((r for _, _, r in self._ends), key=lambda r: r.seq)
        return orjson.dumps({
            "format": SNAPSHOT_FORMAT,
            "version": SNAPSHOT_VERSION,
            "watermark": self._watermark,
            "seq": self._seq,
            "counters": {"new": self._new, "suppressed": self._suppressed, "passed": self._passed,
                         "evicted": self._evicted},
            "representatives": [_rep_to_dict(rep) for rep in reps],
        }, default=str)

    def restore(self, data: bytes) -> None:
        """Replace the state with a snapshot's. Representatives keep the window and key fields they were opened
        with; after a policy change, new alerts form keys by the new policy."""
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise SuppressionSnapshotError(f"not a suppression snapshot: invalid JSON at character {exc.pos}") from None
        if not isinstance(doc, dict) or doc.get("format") != SNAPSHOT_FORMAT:
            raise SuppressionSnapshotError("not a suppression snapshot: format is not " + SNAPSHOT_FORMAT)
        if doc.get("version") != SNAPSHOT_VERSION:
            raise SuppressionSnapshotError(
                f"unsupported suppression snapshot version {doc.get('version')!r} (expected {SNAPSHOT_VERSION})")
        missing = [key for key in _SNAPSHOT_KEYS if key not in doc]
        if missing:
            raise SuppressionSnapshotError("corrupt suppression snapshot: missing " + ", ".join(missing))
        try:
            reps = [_rep_from_dict(item) for item in doc["representatives"]]
            counters = doc["counters"]
            new, suppressed, passed, evicted = (int(counters[name]) for name in
                                                ("new", "suppressed", "passed", "evicted"))
            seq = int(doc["seq"])
            watermark = None if doc["watermark"] is None else int(doc["watermark"])
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise SuppressionSnapshotError(f"corrupt suppression snapshot: {type(exc).__name__}: {exc}") from None
        self._live, self._ends, self._seq = {}, [], seq
        for rep in reps:
            self._add(rep)
        self._watermark = watermark
        self._new, self._suppressed, self._passed, self._evicted = new, suppressed, passed, evicted


def _alert_to_dict(alert: Alert) -> dict[str, Any]:
    rule = alert.rule
    origin = alert.origin
    return {
        "rule": {"id": rule.id, "title": rule.title, "level": rule.level, "tags": list(rule.tags), "kind": rule.kind,
                 "namespace": rule.namespace, "path": rule.path, "description": rule.description,
                 "meta": [list(pair) for pair in rule.meta]},
        "event_id": alert.event_id,
        "timestamp_ms": alert.timestamp_ms,
        "host_name": alert.host_name,
        "origin": {"path": origin.path, "offset": origin.offset, "record_id": origin.record_id,
                   "format": origin.format},
        "matched": alert.matched,
        "extra": alert.extra,
    }


def _alert_from_dict(data: Mapping[str, Any]) -> Alert:
    rule = data["rule"]
    origin = data["origin"]
    return Alert(
        rule=MatchedRule(id=rule["id"], title=rule["title"], level=rule["level"], tags=tuple(rule["tags"]),
                         kind=rule["kind"], namespace=rule["namespace"], path=rule["path"],
                         description=rule["description"], meta=tuple((k, v) for k, v in rule["meta"])),
        event_id=data["event_id"],
        timestamp_ms=int(data["timestamp_ms"]),
        host_name=data["host_name"],
        origin=EventOrigin(path=origin["path"], offset=origin["offset"], record_id=origin["record_id"],
                           format=origin["format"]),
        matched=dict(data["matched"]),
        extra=dict(data["extra"]),
    )


def _rep_to_dict(rep: _Representative) -> dict[str, Any]:
    kind, rule_id, fields, values = rep.key
    return {"alert": _alert_to_dict(rep.alert), "key": [kind, rule_id, list(fields), list(values)],
            "window_ms": rep.window_ms, "seq": rep.seq, "start_ms": rep.start_ms, "first_ms": rep.first_ms,
            "last_ms": rep.last_ms, "count": rep.count, "ids": rep.ids}


def _rep_from_dict(data: Mapping[str, Any]) -> _Representative:
    kind, rule_id, fields, values = data["key"]
    key: Key = (kind, rule_id, tuple(fields), tuple(tuple(v) if isinstance(v, list) else v for v in values))
    rep = _Representative(_alert_from_dict(data["alert"]), key, int(data["window_ms"]), int(data["seq"]))
    rep.start_ms, rep.first_ms, rep.last_ms = int(data["start_ms"]), int(data["first_ms"]), int(data["last_ms"])
    rep.count = int(data["count"])
    rep.ids = [str(i) for i in data["ids"]]
    return rep


Fresh = Alert | _Representative  # an alert created as it is, or a representative opened in the batch


class SuppressionBatch:
    """Alerts suppressed as one batch, in parts: each representative is rendered once, at the end, with its
    final count (`final`, `updated`), however many parts of the batch counted into it."""

    def __init__(self, suppressor: Suppressor) -> None:
        self._suppressor = suppressor
        self._opened: set[int] = set()
        self._updated: dict[int, _Representative] = {}

    def add(self, alerts: Iterable[Alert], standing: Callable[[Alert], None] | None = None) -> list[Fresh]:
        """The alerts of `alerts` to create, in order: an alert not subject to suppression as it is, a
        representative opened here unrendered (`final` renders it). `standing` as in `process_many`."""
        fresh: list[Fresh] = []
        for alert in alerts:
            action, rep, _ = self._suppressor._decide(alert, explain=False)
            if rep is None:
                fresh.append(alert)
            elif action is Action.NEW:
                self._opened.add(id(rep))
                fresh.append(rep)
            elif id(rep) not in self._opened:
                self._updated.setdefault(id(rep), rep)
        if standing is not None:
            for item in fresh:
                standing(first_alert(item))
        return fresh

    @staticmethod
    def final(item: Fresh) -> Alert:
        """A fresh item as it is created: a representative with its count so far (at the batch's end: final)."""
        return item.render() if isinstance(item, _Representative) else item

    def updated(self) -> list[Alert]:
        """The representatives from before the batch that it changed, each once with its latest count, in order
        of first change."""
        return [rep.render() for rep in self._updated.values()]


def first_alert(item: Fresh) -> Alert:
    """The alert a fresh item stands for (a representative's first alert), unrendered."""
    return item.alert if isinstance(item, _Representative) else item
