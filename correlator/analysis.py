"""The analysis stage: detections in event-time order -> correlation -> enrichment -> suppression -> risk score.

Input: the alerts of the detection stage (`correlator.pipeline`: Sigma, threat intel; already past the allowlist
and enriched with assets) and the base-rule matches the correlation rules read. `Analyzer.run` orders both by
event time (ties: event id, rule id), so the outcome does not depend on file order, worker count or shuffling;
feeds the matches to the correlation engine; and passes every alert (correlation alerts included, enriched here)
through suppression and scoring. What comes out is data for the shell to store and to group into cases:
`Outcome.alerts` (new alerts, each with its `RiskScore` and serious-incident verdict, written into the alert as
``risk`` and ``serious_incident``) and `Outcome.updated` (representatives whose suppressed count grew).

Score context per alert (see `correlator.scoring`):
- the affected system: the alert's ``asset.system.id`` looked up in the inventory;
- related alerts: earlier alerts of the same grouping key (`correlator.cases.grouping.group_key`) within
  `related_window_ms` - the alerts the case will already hold when this one joins;
- chain depth: 1 for a correlation over base rules, +1 per correlation level below it;
- intel hits: threat-intel alerts on the same event (for the event's other alerts);
- history: the rule's closed alerts and false positives, given by the caller (from the store's cases).

State (`snapshot`/`restore`): the correlation windows, the suppression representatives and the related-alert
tracker, so a restart or a second `socctl ingest --state` run continues where the first stopped.
"""

from __future__ import annotations

import base64
import os
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import orjson

from correlator.correlation import CorrelationEngine, CorrelationSet, RuleMatch
from correlator.model import Alert
from correlator.pipeline import enrich_alert
from correlator.scoring import (
    RiskScore,
    RuleHistory,
    ScoreContext,
    ScoringConfig,
    SeriousIncidentVerdict,
    assess_serious_incident,
    score,
)
from correlator.suppression import Fresh, SuppressionBatch, first_alert

if TYPE_CHECKING:
    from correlator.assets import InformationSystem, Inventory
    from correlator.suppression import Suppressor

__all__ = ["Analyzer", "Outcome", "ScoredAlert", "StateError", "chain_depths", "load_state", "save_state"]

STATE_FORMAT: Final = "socctl.analysis.state"
STATE_VERSION: Final = 1
_ECS_ALIASES: Final = {"IpAddress": "source.ip", "SourceIp": "source.ip", "DestinationIp": "destination.ip",
                       "Computer": "host.name", "TargetUserName": "user.name"}


class StateError(ValueError):
    """A state file that cannot be restored (another format, version or a damaged file)."""


@dataclass(frozen=True, slots=True)
class ScoredAlert:
    alert: Alert
    risk: RiskScore
    verdict: SeriousIncidentVerdict | None = None


@dataclass
class Outcome:
    alerts: list[ScoredAlert] = field(default_factory=list)  # new alerts, in the order they became final
    updated: list[Alert] = field(default_factory=list)  # representatives whose suppression count changed
    correlation_alerts: int = 0
    suppressed: int = 0

    def extend(self, other: Outcome) -> None:
        self.alerts.extend(other.alerts)
        self.updated.extend(other.updated)
        self.correlation_alerts += other.correlation_alerts
        self.suppressed += other.suppressed


class _Batch:
    """What one call of the stage (`run`, `advance`, `finish`) has produced so far. Suppression sees the whole
    call as one batch: a representative counted into by several events of it is rendered once, at the end, with
    its final count (`outcome`)."""

    def __init__(self, suppressor: Suppressor | None) -> None:
        self.suppression = suppressor.batch() if suppressor is not None else None
        self.fresh: list[tuple[Fresh, RiskScore, SeriousIncidentVerdict | None]] = []
        self.correlation_alerts = 0
        self.suppressed = 0

    def outcome(self) -> Outcome:
        final = SuppressionBatch.final
        return Outcome(
            alerts=[ScoredAlert(final(item), risk, verdict) for item, risk, verdict in self.fresh],
            updated=self.suppression.updated() if self.suppression is not None else [],
            correlation_alerts=self.correlation_alerts, suppressed=self.suppressed,
        )


def chain_depths(rules: CorrelationSet) -> dict[str, int]:
    """Correlation rule id -> chain depth: 1 over base rules, 1 + the deepest referenced correlation rule."""
    depth: dict[str, int] = {}
    for rule in rules.rules:  # referenced rules come first
        depth[rule.id] = 1 + max((depth.get(ref, 0) for ref in rule.rules), default=0)
    return depth


def _order(item: Alert | RuleMatch) -> tuple[int, str, int, str]:
    if isinstance(item, RuleMatch):
        return (item.timestamp_ms, item.event_id, 0, item.rule_id)
    return (item.timestamp_ms, item.event_id, 1, item.rule.id)


class _Related:
    """Earlier alerts per grouping key within a window (event time)."""

    def __init__(self, key_of: Callable[[Alert], str | None], window_ms: int) -> None:
        self.key_of = key_of
        self.window_ms = window_ms
        self.times: dict[str, deque[int]] = {}

    def _times(self, alert: Alert) -> deque[int] | None:
        key = self.key_of(alert)
        if key is None:
            return None
        times = self.times.setdefault(key, deque())
        horizon = alert.timestamp_ms - self.window_ms
        while times and times[0] < horizon:
            times.popleft()
        return times

    def count(self, alert: Alert) -> int:
        """Alerts of the same key at or before this one's time, within the window."""
        times = self._times(alert)
        if not times:
            return 0
        t = alert.timestamp_ms
        return len(times) if times[-1] <= t else bisect_right(times, t)

    def add(self, alert: Alert) -> None:
        times = self._times(alert)
        if times is None:
            return
        t = alert.timestamp_ms
        if not times or times[-1] <= t:
            times.append(t)
        else:  # out of order: keep the deque sorted
            times.insert(bisect_right(times, t), t)

    def evict(self, watermark_ms: int) -> None:
        horizon = watermark_ms - self.window_ms
        for key in [k for k, v in self.times.items() if not v or v[-1] < horizon]:
            del self.times[key]

    def dump(self) -> dict[str, list[int]]:
        return {key: list(times) for key, times in self.times.items()}

    def load(self, data: Mapping[str, list[int]]) -> None:
        self.times = {key: deque(int(t) for t in times) for key, times in data.items()}


class Analyzer:
    def __init__(
        self,
        scoring: ScoringConfig,
        *,
        correlation: CorrelationEngine | None = None,
        suppressor: Suppressor | None = None,
        inventory: Inventory | None = None,
        key_of: Callable[[Alert], str | None] | None = None,
        related_window_ms: int = 3_600_000,
        history: Mapping[str, RuleHistory] | None = None,
    ) -> None:
        self.scoring = scoring
        self.correlation = correlation
        self.suppressor = suppressor
        self.inventory = inventory
        self.history = dict(history or {})
        self._depths = chain_depths(correlation.rules) if correlation is not None else {}
        self._related = _Related(key_of or (lambda _alert: None), related_window_ms)

    # ------------------------------------------------------------------------------------------------ input

    def run(self, alerts: Iterable[Alert], matches: Iterable[RuleMatch] = ()) -> Outcome:
        """One batch of detections (any order within the batch)."""
        out = _Batch(self.suppressor)
        items: list[Alert | RuleMatch] = [*alerts, *matches]
        items.sort(key=_order)
        group: list[Alert] = []
        for item in items:
            if group and (item.timestamp_ms, item.event_id) != (group[0].timestamp_ms, group[0].event_id):
                self._emit(group, out)
                group = []
            if isinstance(item, RuleMatch):
                if self.correlation is not None:
                    self._correlated(self.correlation.process(item), out)
            else:
                group.append(item)
        if group:
            self._emit(group, out)
        return out.outcome()

    def advance(self, watermark_ms: int) -> Outcome:
        """Event time has reached `watermark_ms` (live input): close what is final, evict expired state."""
        out = _Batch(self.suppressor)
        if self.correlation is not None:
            self._correlated(self.correlation.advance(watermark_ms), out)
        outcome = out.outcome()
        if self.suppressor is not None:
            self.suppressor.advance(watermark_ms)
        self._related.evict(watermark_ms)
        return outcome

    def finish(self) -> Outcome:
        """End of input (a complete replay): every open correlation window closes."""
        out = _Batch(self.suppressor)
        if self.correlation is not None:
            self._correlated(self.correlation.flush(), out)
        return out.outcome()

    # ------------------------------------------------------------------------------------------------ stages

    def _correlated(self, alerts: list[Alert], out: _Batch) -> None:
        if not alerts:
            return
        out.correlation_alerts += len(alerts)
        if self.inventory is not None:
            for alert in alerts:
                flat = {_ECS_ALIASES.get(k, k): v for k, v in alert.matched.items() if isinstance(v, str)}
                if alert.host_name:
                    flat.setdefault("host.name", alert.host_name)
                enrich_alert(alert, self.inventory, flat)
        alerts.sort(key=lambda a: (a.timestamp_ms, a.event_id, a.rule.id))
        self._emit(alerts, out)

    def _emit(self, alerts: list[Alert], out: _Batch) -> None:
        """Alerts of one event (or correlation alerts that closed together): suppression, then the scores of the
        alerts that stand (written into each, so a representative keeps its own; an alert counted into a
        representative is not scored); only alerts that stand alone count as related. Intel and YARA hits count
        every alert of the group, suppressed or not."""
        intel_hits = sum(1 for a in alerts if a.rule.kind == "intel")
        yara_hits = sum(1 for a in alerts if a.rule.kind == "yara")
        scored: dict[str, tuple[RiskScore, SeriousIncidentVerdict | None]] = {}

        def score_one(alert: Alert) -> None:
            kind = alert.rule.kind
            context = ScoreContext(
                system=self._system(alert),
                related_alerts=self._related.count(alert),
                chain_depth=self._depths.get(alert.rule.id, 0) if kind == "correlation" else 0,
                history=self.history.get(alert.rule.id),
                intel_hits=intel_hits if kind != "intel" else 0,
                yara_hits=yara_hits if kind != "yara" else 0,
            )
            risk = score(alert.rule.level, context, self.scoring)
            verdict = self._verdict(alert)
            alert.extra["risk"] = risk.to_dict()
            if verdict is not None:
                alert.extra["serious_incident"] = verdict.to_dict()
            scored[alert.id] = (risk, verdict)

        fresh: list[Fresh]
        if out.suppression is not None:
            fresh = out.suppression.add(alerts, standing=score_one)
            out.suppressed += len(alerts) - len(fresh)
        else:
            fresh = list(alerts)
            for alert in alerts:
                score_one(alert)
        for item in fresh:
            alert = first_alert(item)
            self._related.add(alert)
            risk, verdict = scored[alert.id]
            out.fresh.append((item, risk, verdict))

    def _systems(self, alert: Alert) -> list[InformationSystem]:
        if self.inventory is None:
            return []
        asset = alert.extra.get("asset")
        if not isinstance(asset, dict):
            return []
        ids = asset.get("involved") or []
        system = asset.get("system")
        first = system.get("id") if isinstance(system, dict) else None
        ordered = dict.fromkeys([first, *ids] if first else ids)
        systems = self.inventory.systems
        return [systems[i] for i in ordered if i in systems]

    def _system(self, alert: Alert) -> InformationSystem | None:
        systems = self._systems(alert)
        return systems[0] if systems else None

    def _verdict(self, alert: Alert) -> SeriousIncidentVerdict | None:
        systems = self._systems(alert)
        if not systems:
            return None
        return assess_serious_incident(alert, systems, self.scoring)

    def metrics(self) -> dict[str, Any]:
        """The stage's gauges and counters: correlation (live keys and windows, held events, late and keyless
        matches, evictions) and suppression (live representatives, suppressed totals)."""
        out: dict[str, Any] = {"related_keys": len(self._related.times)}
        if self.correlation is not None:
            m = self.correlation.metrics()
            out["correlation"] = {
                "live_keys": m.live_keys, "live_windows": m.live_windows, "held_events": m.held_events,
                "pending": m.pending, "late_events": m.late_events, "late_admitted": m.late_admitted,
                "keyless_events": m.keyless_events, "missing_values": m.missing_values, "evictions": m.evictions,
                "alerts": m.alerts, "watermark_ms": m.watermark_ms,
            }
        if self.suppressor is not None:
            out["suppression"] = self.suppressor.metrics().to_dict()
        return out

    # ------------------------------------------------------------------------------------------------ state

    def snapshot(self) -> bytes:
        state: dict[str, Any] = {"format": STATE_FORMAT, "version": STATE_VERSION,
                                 "related": self._related.dump()}
        if self.correlation is not None:
            state["correlation"] = base64.b64encode(self.correlation.snapshot()).decode()
        if self.suppressor is not None:
            state["suppression"] = base64.b64encode(self.suppressor.snapshot()).decode()
        return orjson.dumps(state)

    def restore(self, data: bytes) -> None:
        try:
            state = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise StateError(f"not a socctl state file: {exc}") from exc
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise StateError("not a socctl state file (format is not socctl.analysis.state)")
        if state.get("version") != STATE_VERSION:
            raise StateError(f"state version {state.get('version')!r} is not supported (expected {STATE_VERSION})")
        self._related.load(state.get("related") or {})
        if self.correlation is not None and state.get("correlation"):
            self.correlation.restore(base64.b64decode(state["correlation"]))
        if self.suppressor is not None and state.get("suppression"):
            self.suppressor.restore(base64.b64decode(state["suppression"]))


def save_state(analyzer: Analyzer, path: Path) -> None:
    """Write the analyzer's state atomically (a temporary file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as fh:
        fh.write(analyzer.snapshot())
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


def load_state(analyzer: Analyzer, path: Path) -> bool:
    """Restore the state saved at `path`; False when there is none. `StateError` for a file that is not one."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise StateError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        analyzer.restore(data)
    except StateError as exc:
        raise StateError(f"{path}: {exc}") from exc
    return True
