"""Routing defaults and overrides, L4 notification drafts, the L3 assessment list."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from types import MappingProxyType

import orjson
import pytest

from correlator.assets import Agency, InformationSystem, SecurityLevel
from correlator.cases.commands import Deescalate, Escalate, Notify, SetTaskStatus, Transition
from correlator.cases.definitions import CaseStatus, IncidentType, Layer, TaskStatus
from correlator.cases.grouping import CaseGrouper, IncomingAlert
from correlator.cases.lifecycle import apply
from correlator.cases.model import Case, SlaDeadlines, Task
from correlator.cases.routing import (
    DEFAULT_ROUTING,
    L4NotificationDraft,
    RoutingPolicy,
    l3_assessment,
    l4_draft,
    route,
    routing_commands,
)
from correlator.model import Alert
from correlator.scoring import (
    IncidentStatus,
    RiskScore,
    ScoringConfig,
    Severity,
    assess_serious_incident,
)
from tests.correlator.cases.conftest import HOUR, T0

N = IncidentStatus.NOT_CANDIDATE
A = IncidentStatus.AWAITING_ANALYST
C = IncidentStatus.CANDIDATE


@pytest.mark.parametrize(
    ("severity", "serious", "layer", "notify"),
    [
        (Severity.LOW, N, Layer.L1, ()), (Severity.MEDIUM, N, Layer.L2, ()), (Severity.HIGH, N, Layer.L2, ()),
        (Severity.CRITICAL, N, Layer.L2, ()), (Severity.LOW, C, Layer.L2, (Layer.L4,)),
        (Severity.HIGH, C, Layer.L2, (Layer.L4,)), (Severity.LOW, A, Layer.L1, ()),
    ],
    ids=["low", "medium", "high", "critical", "low-candidate", "high-candidate", "low-awaiting"],
)
def test_default_routing(severity: Severity, serious: IncidentStatus, layer: Layer,
                         notify: tuple[Layer, ...]) -> None:
    target = route(severity, serious)
    assert (target.layer, target.notify) == (layer, notify)


def test_route_reason() -> None:
    assert route(Severity.LOW, C).reason == "serious-incident candidate → L2; candidate → L4 notified"
    assert route(Severity.HIGH, N).reason == "severity high → L2"


def test_override() -> None:
    policy = RoutingPolicy(MappingProxyType({Severity.LOW: Layer.L1, Severity.MEDIUM: Layer.L1,
                                             Severity.HIGH: Layer.L2, Severity.CRITICAL: Layer.L4}),
                           serious_candidate=Layer.L4, notify_l4=frozenset({A, C}), l3_assessment=False)
    assert route(Severity.MEDIUM, N, policy).layer is Layer.L1
    assert route(Severity.CRITICAL, N, policy).layer is Layer.L4
    assert route(Severity.LOW, C, policy) == route(Severity.LOW, C, policy)
    assert (route(Severity.LOW, C, policy).layer, route(Severity.LOW, C, policy).notify) == (Layer.L4, ())
    assert route(Severity.MEDIUM, A, policy).notify == (Layer.L4,)


def test_missing_severity_in_policy() -> None:
    with pytest.raises(ValueError, match="routing missing for severity critical"):
        RoutingPolicy({Severity.LOW: Layer.L1, Severity.MEDIUM: Layer.L2, Severity.HIGH: Layer.L2})


def test_routing_commands_escalate_then_notify(new_case: Callable[..., Case]) -> None:
    case = replace(new_case(points=10), layer=Layer.L1, serious=C)
    assert routing_commands(case) == [
        Escalate(Layer.L2, "routing: serious-incident candidate → L2; candidate → L4 notified"),
        Notify(Layer.L4, "routing: serious-incident candidate → L2; candidate → L4 notified"),
    ]
    assert routing_commands(replace(case, layer=Layer.L2, notify=(Layer.L4,))) == []


def test_escalation_and_deescalation_are_timeline_events(new_case: Callable[..., Case]) -> None:
    case, up = apply(new_case(), Escalate(Layer.L4, "national-level impact"), "alice", T0 + 1)
    case, down = apply(case, Deescalate(Layer.L2, "NCSC: handle locally"), "bob", T0 + 2)
    assert [(e.action, e.before, e.after, e.reason) for e in (up, down)] == [
        ("escalate", {"layer": "L2"}, {"layer": "L4"}, "national-level impact"),
        ("deescalate", {"layer": "L4"}, {"layer": "L2"}, "NCSC: handle locally"),
    ]


SYSTEM = InformationSystem("dvc", "Cổng dịch vụ công", Agency("so-tttt", "Sở TT&TT"), SecurityLevel(4),
                           operator="TT CNTT", contact="soc@example.gov.vn")


def test_serious_candidate_gets_l4_notified_and_a_draft(make_alert: Callable[..., Alert],
                                                        make_risk: Callable[[int], RiskScore],
                                                        scoring: ScoringConfig) -> None:
    alert = make_alert("r-ransom", tags=("attack.impact", "attack.t1486"), extra={"organization.id": "so-tttt",
                                                                                 "asset.system.id": "dvc"})
    verdict = assess_serious_incident(alert, [SYSTEM], scoring, owner_cannot_contain=True)
    assert verdict.candidate
    result = CaseGrouper().add(IncomingAlert(alert, make_risk(60), verdict), [], T0)
    case = result.case
    assert case is not None
    assert (case.layer, case.notify, case.serious) == (Layer.L2, (Layer.L4,), C)
    assert [e.action for e in result.entries] == ["open", "set_serious", "notify"]
    case, _ = apply(case, Transition(CaseStatus.ACKNOWLEDGED), "alice", T0 + 1)
    case = replace(case, incident_type=IncidentType.RANSOMWARE,
                   tasks=(Task("isolate", "Isolate the hosts", Layer.L1, T0 + HOUR),))
    case, _ = apply(case, SetTaskStatus("isolate", TaskStatus.DONE), "bob", T0 + 2)
    draft = l4_draft(case, T0 + 3, reporter="SOC tỉnh", reporter_contact="soc@tinh.gov.vn", systems=[SYSTEM],
                     verdict=verdict)
    assert draft.to_dict() | {"id": "x", "event_ids": []} == {
        "id": "x", "case_id": case.id, "case_version": case.version, "drafted_ms": T0 + 3, "reporter": "SOC tỉnh",
        "reporter_contact": "soc@tinh.gov.vn", "agency": "so-tttt",
        "systems": [{"id": "dvc", "name": "Cổng dịch vụ công", "agency": {"id": "so-tttt", "name": "Sở TT&TT"},
                     "security_level": 4, "criticality": "medium", "critical": False, "operator": "TT CNTT",
                     "contact": "soc@example.gov.vn"}],
        "title": "Rule r-ransom (ws01)", "incident_type": "ransomware", "severity": "high", "risk_score": 60,
        "risk_explanation": "high: test (+60)", "detected_ms": T0, "last_seen_ms": T0,
        "serious_status": "candidate",
        "serious_conditions": [
            {"name": "system", "met": True, "reason": "system 'dvc' is security level 4 (>= 4 required)"},
            {"name": "impact", "met": True, "reason": "impact service_disruption, data_loss"},
            {"name": "containment", "met": True, "reason": "analyst: the owner cannot contain it"}],
        "impacts": ["service_disruption", "data_loss"], "hosts": ["ws01"],
        "rules": [{"id": "r-ransom", "title": "Rule r-ransom"}], "alert_count": 1, "event_ids": [],
        "status": "acknowledged", "owner_layer": "L2", "assignee": None, "actions_taken": ["Isolate the hosts"],
        "evidence": [],
    }
    assert draft.id == l4_draft(case, T0 + 99, reporter="x").id  # same case version, same draft id
    assert L4NotificationDraft.from_dict(orjson.loads(orjson.dumps(draft.to_dict()))) == draft


def test_l3_assessment_lists_every_flagged_case(new_case: Callable[..., Case]) -> None:
    late = replace(new_case("case-b"), sla=SlaDeadlines(T0 + 1, T0 + 2))
    late, _ = apply(late, Transition(CaseStatus.ACKNOWLEDGED), "alice", T0 + 5)
    late, _ = apply(late, Escalate(Layer.L4, "x"), "alice", T0 + 6)
    fp, _ = apply(new_case("case-a"), Transition(CaseStatus.FALSE_POSITIVE), "alice", T0 + 1)
    unflagged = replace(new_case("case-c"), l3_assessment=False)
    outside = replace(new_case("case-d"), created_ms=T0 + 10 * HOUR)
    items = l3_assessment([late, fp, unflagged, outside], T0, T0 + HOUR)
    assert [(i.case_id, i.escalations, i.false_positive) for i in items] == [("case-a", 0, True),
                                                                            ("case-b", 1, False)]
    assert [b.deadline for b in items[1].sla_breaches] == ["acknowledge", "contain"]
    assert items[1].to_dict()["sla_breaches"][0] == {"deadline": "acknowledge", "due_ms": T0 + 1, "late_by_ms": 4,
                                                     "met_ms": T0 + 5}


def test_default_policy_shape() -> None:
    assert DEFAULT_ROUTING.to_dict() == {"low": "L1", "medium": "L2", "high": "L2", "critical": "L2",
                                         "serious_candidate": "L2", "notify_l4": ["candidate"],
                                         "l3_assessment": True}


def test_refresh_after_an_analyst_confirms_a_serious_incident(new_case: Callable[..., Case]) -> None:
    from correlator.cases.commands import SetSerious

    case = replace(new_case(points=10), layer=Layer.L1)
    case, _ = apply(case, SetSerious(C, "analyst: the owner cannot contain it"), "alice", T0 + 1)
    case, entries = CaseGrouper().refresh(case, "alice", T0 + 2)
    assert [(e.action, e.actor) for e in entries] == [("set_sla", "alice"), ("escalate", "alice"),
                                                      ("notify", "alice")]
    assert (case.layer, case.notify) == (Layer.L2, (Layer.L4,))
