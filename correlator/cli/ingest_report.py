"""What `socctl ingest` tallies and how it prints them: the summary table and the `--summary-json` document."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from correlator.cases.model import Case
from correlator.sink import Delivery
from correlator.store.base import WriteResult

__all__ = ["IngestTotals", "print_summary", "summary_doc"]

_LEVELS = ("critical", "high", "medium", "low", "informational")


@dataclass
class IngestTotals:
    files: int = 0
    events: int = 0
    alerts: int = 0
    by_level: Counter[str] = field(default_factory=Counter)
    by_severity: Counter[str] = field(default_factory=Counter)
    by_rule: Counter[str] = field(default_factory=Counter)
    rejected: int = 0
    rejected_reasons: Counter[str] = field(default_factory=Counter)
    unknown_sources: Counter[str] = field(default_factory=Counter)
    rule_errors: Counter[str] = field(default_factory=Counter)  # rule id -> evaluations that raised
    stored: Counter[str] = field(default_factory=Counter)  # "<collection> <outcome>" -> documents
    correlation_alerts: int = 0
    suppressed: int = 0  # alerts counted into a representative alert
    excepted: Counter[str] = field(default_factory=Counter)  # allowlist entry id -> alerts excepted
    withheld: int = 0  # matches of rules that only feed correlation rules
    yara_rules: int = 0  # YARA rules loaded for event payloads (0: no YARA stage)
    payloads: int = 0  # event payloads scanned (carved HTTP bodies, ...), cache hits included
    payload_cache_hits: int = 0
    yara_alerts: int = 0  # YARA hits on payloads, before allowlist and suppression
    delivery: Delivery = field(default_factory=Delivery)
    analysis: dict[str, Any] = field(default_factory=dict)  # the analysis stage's metrics at the end
    seconds: float = 0.0

    def add_write(self, collection: str, result: WriteResult) -> None:
        self.stored[f"{collection} written"] += result.written
        self.stored[f"{collection} duplicates"] += result.duplicates
        self.stored[f"{collection} refused"] += len(result.failed)
        self.stored[f"{collection} spooled"] += result.spooled


def print_summary(console: Console, totals: IngestTotals, rules_loaded: int, rules_failed: int,
                  correlation_rules: int) -> None:
    rate = totals.events / totals.seconds if totals.seconds > 0 else 0.0
    table = Table(title="socctl ingest", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("files", str(totals.files))
    table.add_row("events", f"{totals.events} ({rate:,.0f}/s)")
    table.add_row("alerts", str(totals.alerts))
    for level in _LEVELS:
        if totals.by_level.get(level):
            table.add_row(f"  rule level {level}", str(totals.by_level[level]))
    for severity in ("critical", "high", "medium", "low"):
        if totals.by_severity.get(severity):
            table.add_row(f"  severity {severity}", str(totals.by_severity[severity]))
    table.add_row("correlation alerts", str(totals.correlation_alerts))
    table.add_row("suppressed into earlier alerts", str(totals.suppressed))
    if totals.excepted:
        table.add_row("excepted by the allowlist", str(sum(totals.excepted.values())))
    if totals.withheld:
        table.add_row("matches that only feed correlation", str(totals.withheld))
    delivery = totals.delivery
    if delivery.cases_opened or delivery.cases_updated:
        table.add_row("cases opened", str(delivery.cases_opened))
        table.add_row("cases updated", str(delivery.cases_updated))
    table.add_row("rejected records", str(totals.rejected))
    if totals.yara_rules:
        table.add_row("payloads scanned with YARA", f"{totals.payloads} ({totals.payload_cache_hits} from cache)")
        table.add_row("YARA alerts on payloads", str(totals.yara_alerts))
    table.add_row("rules loaded", f"{rules_loaded} Sigma, {correlation_rules} correlation"
                  + (f", {totals.yara_rules} YARA" if totals.yara_rules else ""))
    table.add_row("rules not loaded", str(rules_failed))
    if totals.unknown_sources:
        table.add_row("events of unknown log source", str(sum(totals.unknown_sources.values())))
    if totals.rule_errors:
        table.add_row("rule evaluations that failed", str(sum(totals.rule_errors.values())))
    for key, count in sorted(totals.stored.items()):
        if count:
            table.add_row(f"store: {key}", str(count))
    console.print(table)
    if delivery.touched:
        console.print(cases_table(list(delivery.touched.values())))
    if totals.by_rule:
        top = Table(title="Top rules")
        top.add_column("rule")
        top.add_column("alerts", justify="right")
        for title, count in totals.by_rule.most_common(10):
            top.add_row(title, str(count))
        console.print(top)
    if totals.rejected_reasons:
        rej = Table(title="Rejected records by reason")
        rej.add_column("reason")
        rej.add_column("records", justify="right")
        for reason, count in totals.rejected_reasons.most_common(10):
            rej.add_row(reason, str(count))
        console.print(rej)


_SEVERITY_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}


def case_row(case: Case) -> dict[str, Any]:
    return {"id": case.id, "title": case.title, "severity": case.severity.value, "score": case.risk.score
            if case.risk is not None else None, "layer": case.layer.value, "status": case.status.value,
            "playbook": case.playbook_id, "alerts": len(case.alerts), "serious": case.serious.value,
            "notify": [layer.value for layer in case.notify]}


def cases_table(cases: list[Case], limit: int = 15) -> Table:
    """The cases a run opened or changed, most severe first."""
    ranked = sorted(cases, key=lambda c: (_SEVERITY_ORDER.get(c.severity.value, 9),
                                          -(c.risk.score if c.risk else 0), c.id))
    table = Table(title=f"Cases opened or updated ({len(cases)}; `socctl cases show ID` for one)")
    for name in ("id", "severity", "layer", "alerts", "playbook", "title"):
        table.add_column(name)
    for case in ranked[:limit]:
        notify = "+" + ",".join(layer.value for layer in case.notify) if case.notify else ""
        table.add_row(case.id, case.severity.value, case.layer.value + notify, str(len(case.alerts)),
                      case.playbook_id or "", case.title)
    return table


def summary_doc(totals: IngestTotals, rules_loaded: int, rules_failed: int, workers: int,
                correlation_rules: int) -> dict[str, Any]:
    delivery = totals.delivery
    return {
        "files": totals.files,
        "events": totals.events,
        "alerts": totals.alerts,
        "alerts_by_level": dict(totals.by_level),
        "alerts_by_severity": dict(totals.by_severity),
        "top_rules": totals.by_rule.most_common(10),
        "correlation_alerts": totals.correlation_alerts,
        "suppressed": totals.suppressed,
        "excepted": dict(totals.excepted),
        "withheld": totals.withheld,
        "yara": {"rules_loaded": totals.yara_rules, "payloads_scanned": totals.payloads,
                 "payload_cache_hits": totals.payload_cache_hits, "alerts": totals.yara_alerts},
        "analysis": totals.analysis,
        "cases": {"opened": delivery.cases_opened, "updated": delivery.cases_updated,
                  "opened_by_severity": dict(delivery.case_severity),
                  "opened_by_layer": dict(delivery.case_layers),
                  "touched": [case_row(case) for case in delivery.touched.values()]},
        "rejected": totals.rejected,
        "rejected_by_reason": dict(totals.rejected_reasons),
        "unknown_sources": dict(totals.unknown_sources),
        "rule_errors": dict(totals.rule_errors),
        "rules_loaded": rules_loaded,
        "correlation_rules_loaded": correlation_rules,
        "rules_failed": rules_failed,
        "workers": workers,
        "store": {key: count for key, count in sorted(totals.stored.items()) if count},
        "seconds": round(totals.seconds, 3),
        "events_per_second": round(totals.events / totals.seconds) if totals.seconds > 0 else 0,
    }
