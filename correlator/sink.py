"""The shell after the analysis stage: scored alerts and suppression updates into the store, alerts into cases.

`AlertSink.deliver(outcome)` writes the new alerts (create, idempotent by alert id), overwrites representatives
whose suppressed count grew, and puts the new alerts into cases through the `CaseRepository` in one batch (each
case changed is saved once, its version checked against concurrent analysts). It returns what happened, for
summaries and metrics. In two steps, `plan` groups the alerts into cases in memory (reads only) and `commit`
writes inside the caller's batch: the engine plans before it takes the store's write lock, which SQLite's
other writers (the detection workers storing events) wait for. A store error propagates: the caller stops (the
input can be replayed: every write is idempotent and an alert already in a case does not join it twice).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from correlator.analysis import Outcome
from correlator.cases.grouping import IncomingAlert
from correlator.cases.model import Case
from correlator.cases.repository import AlertsPlan, CaseRepository
from correlator.store.base import Store, WriteResult

__all__ = ["AlertSink", "Delivery", "Planned"]


@dataclass
class Delivery:
    alerts: WriteResult = field(default_factory=WriteResult)
    updated: WriteResult = field(default_factory=WriteResult)
    cases_opened: int = 0
    cases_updated: int = 0
    alerts_in_existing_cases: int = 0  # replays: the alert was already in its case
    case_severity: Counter[str] = field(default_factory=Counter)  # opened cases by severity
    case_layers: Counter[str] = field(default_factory=Counter)  # opened cases by owning layer
    touched: dict[str, Case] = field(default_factory=dict)  # every case opened or updated, as it now is

    def add(self, other: Delivery) -> None:
        self.alerts = _sum(self.alerts, other.alerts)
        self.updated = _sum(self.updated, other.updated)
        self.cases_opened += other.cases_opened
        self.cases_updated += other.cases_updated
        self.alerts_in_existing_cases += other.alerts_in_existing_cases
        self.case_severity.update(other.case_severity)
        self.case_layers.update(other.case_layers)
        self.touched.update(other.touched)


@dataclass
class Planned:
    """An outcome with its alerts grouped into cases in memory (`AlertSink.plan`), to `commit`."""

    outcome: Outcome
    cases: AlertsPlan | None


def _sum(a: WriteResult, b: WriteResult) -> WriteResult:
    return WriteResult(a.written + b.written, a.duplicates + b.duplicates, [*a.failed, *b.failed],
                       a.spooled + b.spooled)


@dataclass
class AlertSink:
    store: Store
    cases: CaseRepository | None
    clock: Callable[[], int]

    def __post_init__(self) -> None:
        if self.cases is not None and self.cases.store is not self.store:
            raise ValueError("AlertSink: the case repository must write to the sink's own store (a delivery is "
                             "one unit of writes: alerts and cases together)")

    def deliver(self, outcome: Outcome) -> Delivery:
        """Alerts, representative updates and cases of `outcome`, written as one unit (`Store.batch`)."""
        planned = self.plan(outcome)
        with self.store.batch():
            return self.commit(planned)

    def plan(self, outcome: Outcome) -> Planned:
        """`outcome` with its alerts grouped into cases, nothing written (`CaseRepository.plan_alerts`)."""
        if self.cases is None or not outcome.alerts:
            return Planned(outcome, None)
        incoming = [IncomingAlert(item.alert, item.risk, item.verdict) for item in outcome.alerts]
        return Planned(outcome, self.cases.plan_alerts(incoming, self.clock()))

    def commit(self, planned: Planned) -> Delivery:
        """Write what `plan` made: the alerts, the representative updates and the changed cases. Call it inside
        a `Store.batch` (with the other writes of the same unit), soon after `plan`: a case an analyst saved
        meanwhile is grouped again."""
        outcome = planned.outcome
        done = Delivery()
        if outcome.alerts:
            done.alerts = self.store.write_alerts([item.alert for item in outcome.alerts])
        if outcome.updated:
            latest = {alert.id: alert for alert in outcome.updated}  # the last update of each representative wins
            done.updated = self.store.write_alerts(list(latest.values()), replace=True)
        if self.cases is None or planned.cases is None:
            return done
        touched: set[str] = set()
        for result in self.cases.save_alerts(planned.cases):
            case = result.case
            if case is None:
                continue
            if result.duplicate:
                done.alerts_in_existing_cases += 1
            elif result.opened:
                done.cases_opened += 1
                done.case_severity[case.severity.value] += 1
                done.case_layers[case.layer.value] += 1
            elif case.id not in touched:
                done.cases_updated += 1
            touched.add(case.id)
            if not result.duplicate:
                done.touched[case.id] = case
        return done
