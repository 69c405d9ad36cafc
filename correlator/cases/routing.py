"""Which layer owns a case, who else is told, and what the national centre (L4) and the assessors (L3) receive.

Defaults (`DEFAULT_ROUTING`; override in the cases configuration, see config.py)::

    low -> L1 (the agency's IT officer); medium, high, critical -> L2 (the 24/7 SOC provider)
    serious-incident candidate -> L2 as owner, plus L4 notified (an `L4NotificationDraft` is prepared)
    every case -> listed for L3's periodic assessment (`l3_assessment`)

`route(severity, serious, policy)` gives the target; `routing_commands(case, policy)` the commands that bring a case
there. The engine only moves a case *up* by itself (an `Escalate` with the reason); moving it down is an analyst's
`Deescalate`, with a reason, and is not undone by later alerts unless they raise the severity again past it.
Sending the L4 draft is a later issue: here it is a data object with what a national-centre report needs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from correlator.assets import InformationSystem
from correlator.cases.commands import Command, Escalate, Notify
from correlator.cases.definitions import CaseStatus, Layer, TaskStatus
from correlator.cases.model import Case
from correlator.cases.sla import Overdue, breaches, overdue
from correlator.scoring import IncidentStatus, SeriousIncidentVerdict, Severity

__all__ = [
    "DEFAULT_ROUTING",
    "AssessmentItem",
    "L4NotificationDraft",
    "Route",
    "RoutingPolicy",
    "l3_assessment",
    "l4_draft",
    "route",
    "routing_commands",
]


@dataclass(frozen=True, slots=True)
class RoutingPolicy:
    by_severity: Mapping[Severity, Layer]
    serious_candidate: Layer = Layer.L2  # owner of a serious-incident candidate
    notify_l4: frozenset[IncidentStatus] = frozenset({IncidentStatus.CANDIDATE})
    l3_assessment: bool = True

    def __post_init__(self) -> None:
        missing = [s.value for s in Severity if s not in self.by_severity]
        if missing:
            raise ValueError(f"routing missing for severity {', '.join(missing)}")

    def to_dict(self) -> dict[str, Any]:
        return {
            **{severity.value: self.by_severity[severity].value for severity in Severity},
            "serious_candidate": self.serious_candidate.value,
            "notify_l4": sorted(status.value for status in self.notify_l4),
            "l3_assessment": self.l3_assessment,
        }


DEFAULT_ROUTING: Final = RoutingPolicy(MappingProxyType({
    Severity.LOW: Layer.L1, Severity.MEDIUM: Layer.L2, Severity.HIGH: Layer.L2, Severity.CRITICAL: Layer.L2,
}))


@dataclass(frozen=True, slots=True)
class Route:
    layer: Layer
    notify: tuple[Layer, ...]
    reason: str


def route(severity: Severity, serious: IncidentStatus, policy: RoutingPolicy = DEFAULT_ROUTING) -> Route:
    layer = policy.by_severity[severity]
    reason = f"severity {severity.value} → {layer.value}"
    if serious is IncidentStatus.CANDIDATE and policy.serious_candidate.rank > layer.rank:
        layer = policy.serious_candidate
        reason = f"serious-incident candidate → {layer.value}"
    notify: tuple[Layer, ...] = ()
    if serious in policy.notify_l4 and layer is not Layer.L4:
        notify = (Layer.L4,)
        reason += f"; {serious.value.replace('_', ' ')} → L4 notified"
    return Route(layer, notify, reason)


def routing_commands(case: Case, policy: RoutingPolicy = DEFAULT_ROUTING) -> list[Command]:
    """The commands that route `case` by `policy`: an escalation when it belongs higher, notifications missing."""
    target = route(case.severity, case.serious, policy)
    commands: list[Command] = []
    if target.layer.rank > case.layer.rank:
        commands.append(Escalate(target.layer, f"routing: {target.reason}"))
    owner = target.layer if target.layer.rank > case.layer.rank else case.layer
    commands.extend(Notify(layer, f"routing: {target.reason}") for layer in target.notify
                    if layer not in case.notify and layer is not owner)
    return commands


# -- L4: the national centre


@dataclass(frozen=True, slots=True)
class L4NotificationDraft:
    """A draft initial incident report to the national monitoring centre (the fields of the initial report form
    for incidents under Decision 05/2017/QĐ-TTg and Circular 20/2017/TT-BTTTT): who reports, which system and
    agency, what happened and when, how serious, what is done so far. Sending it is a later issue."""

    id: str  # deterministic: the case id and version it was drafted from
    case_id: str
    case_version: int
    drafted_ms: int
    reporter: str  # the reporting unit (the L2 SOC)
    reporter_contact: str | None
    agency: str | None
    systems: tuple[Mapping[str, Any], ...]  # id, name, security level, critical, operator, contact
    title: str
    incident_type: str | None
    severity: str
    risk_score: int | None
    risk_explanation: str | None
    detected_ms: int | None  # first seen
    last_seen_ms: int | None
    serious_status: str
    serious_conditions: tuple[Mapping[str, Any], ...]  # from the verdict: name, met, reason
    impacts: tuple[str, ...]
    hosts: tuple[str, ...]
    rules: tuple[Mapping[str, str], ...]  # id, title
    alert_count: int
    event_ids: tuple[str, ...]
    status: str  # the case's status
    owner_layer: str
    assignee: str | None
    actions_taken: tuple[str, ...]  # tasks done, by title
    evidence: tuple[Mapping[str, Any], ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            out[name] = [dict(v) if isinstance(v, Mapping) else v for v in value] if isinstance(value, tuple) \
                else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> L4NotificationDraft:
        args: dict[str, Any] = {name: tuple(data[name]) if isinstance(data[name], list) else data[name]
                for name in cls.__dataclass_fields__ if name in data}
        return cls(**args)


def l4_draft(
    case: Case,
    at_ms: int,
    *,
    reporter: str,
    reporter_contact: str | None = None,
    systems: Sequence[InformationSystem] = (),
    verdict: SeriousIncidentVerdict | None = None,
) -> L4NotificationDraft:
    """The L4 draft for `case` as it is at version `case.version`. `systems`: the affected systems from the
    inventory (the case keeps only their ids); `verdict`: the serious-incident assessment behind the flag."""
    known = {s.id: s for s in systems}
    system_docs = tuple(
        known[sid].to_dict() if sid in known else {"id": sid} for sid in case.systems
    ) + tuple(s.to_dict() for s in systems if s.id not in case.systems)
    agency = case.agency or next((s.agency.id for s in systems), None)
    rules = tuple({"id": rule_id, "title": title} for rule_id, title in
                  dict.fromkeys((a.rule_id, a.rule_title) for a in case.alerts))
    digest = hashlib.sha256(f"l4\0{case.id}\0{case.version}".encode()).hexdigest()[:16]
    return L4NotificationDraft(
        id=f"l4-{digest}", case_id=case.id, case_version=case.version, drafted_ms=at_ms, reporter=reporter,
        reporter_contact=reporter_contact, agency=agency, systems=system_docs, title=case.title,
        incident_type=case.incident_type.value if case.incident_type else None, severity=case.severity.value,
        risk_score=case.risk.score if case.risk else None,
        risk_explanation=case.risk.explanation if case.risk else None,
        detected_ms=case.first_seen_ms, last_seen_ms=case.last_seen_ms, serious_status=case.serious.value,
        serious_conditions=tuple({"name": c.name, "met": c.met, "reason": c.reason} for c in verdict.conditions)
        if verdict else (),
        impacts=tuple(i.value for i in verdict.impacts) if verdict else (),
        hosts=tuple(sorted({a.host_name for a in case.alerts if a.host_name})), rules=rules,
        alert_count=len(case.alerts), event_ids=case.event_ids, status=case.status.value,
        owner_layer=case.layer.value, assignee=case.assignee,
        actions_taken=tuple(t.title for t in case.tasks if t.status is TaskStatus.DONE),
        evidence=tuple(e.to_dict() for e in case.evidence),
    )


# -- L3: periodic assessment


@dataclass(frozen=True, slots=True)
class AssessmentItem:
    """One case as L3's periodic assessment sees it."""

    case_id: str
    agency: str | None
    systems: tuple[str, ...]
    incident_type: str | None
    severity: str
    status: str
    layer: str
    created_ms: int
    closed_ms: int | None
    escalations: int
    sla_breaches: tuple[Overdue, ...]
    false_positive: bool

    def to_dict(self) -> dict[str, Any]:
        return {"case_id": self.case_id, "agency": self.agency, "systems": list(self.systems),
                "incident_type": self.incident_type, "severity": self.severity, "status": self.status,
                "layer": self.layer, "created_ms": self.created_ms, "closed_ms": self.closed_ms,
                "escalations": self.escalations, "sla_breaches": [b.to_dict() for b in self.sla_breaches],
                "false_positive": self.false_positive}


def l3_assessment(cases: Iterable[Case], since_ms: int, until_ms: int) -> tuple[AssessmentItem, ...]:
    """The cases flagged for L3 created in [since_ms, until_ms), oldest first (ties by id); SLA breaches are the
    deadlines met late and those still unmet at `until_ms`."""
    chosen = sorted((c for c in cases if c.l3_assessment and since_ms <= c.created_ms < until_ms
                     and c.merged_into is None), key=lambda c: (c.created_ms, c.id))
    return tuple(AssessmentItem(
        case_id=c.id, agency=c.agency, systems=c.systems,
        incident_type=c.incident_type.value if c.incident_type else None, severity=c.severity.value,
        status=c.status.value, layer=c.layer.value, created_ms=c.created_ms, closed_ms=c.closed_ms,
        escalations=sum(1 for e in c.timeline if e.action == "escalate" and e.case_id == c.id),
        sla_breaches=(*breaches(c), *overdue(c, until_ms)), false_positive=c.status is CaseStatus.FALSE_POSITIVE,
    ) for c in chosen)
