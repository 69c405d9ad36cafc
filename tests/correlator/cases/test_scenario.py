"""Scenario replay: brute force -> successful logon -> new admin account -> lateral movement on one host gives
exactly one case with the right severity, layer and playbook, in any arrival order."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest

from correlator.assets import Agency, Criticality, InformationSystem, SecurityLevel
from correlator.cases.definitions import CaseStatus, IncidentType, Layer, TaskStatus
from correlator.cases.grouping import CaseGrouper, IncomingAlert
from correlator.cases.model import Case
from correlator.cases.playbooks import PlaybookSet, load_playbooks
from correlator.model import Alert, EventOrigin, MatchedRule
from correlator.scoring import IncidentStatus, ScoreContext, ScoringConfig, Severity, assess_serious_incident, score
from tests.conftest import REPO_ROOT
from tests.correlator.cases.conftest import HOUR, MINUTE, T0

HOST = "srv-dvc-01"
ATTACKER = "203.0.113.50"
SYSTEM = InformationSystem("dvc-portal", "Cổng dịch vụ công", Agency("so-tttt", "Sở TT&TT"), SecurityLevel(3),
                           Criticality.HIGH)
NOW = T0 + 2 * HOUR  # when the grouping runs (the injected clock)


@dataclass(frozen=True)
class Step:
    rule_id: str
    title: str
    level: str
    kind: str
    tags: tuple[str, ...]
    offset_ms: int


STEPS = (
    Step("corr-bruteforce", "RDP brute force: 30 failed logons from one address", "medium", "correlation",
         ("attack.credential-access", "attack.t1110.001"), 0),
    Step("corr-bf-success", "Successful logon after brute force", "high", "correlation",
         ("attack.initial-access", "attack.t1078"), 4 * MINUTE),
    Step("sigma-new-admin", "New account added to local Administrators", "high", "sigma",
         ("attack.persistence", "attack.t1136.001", "attack.t1098"), 9 * MINUTE),
    Step("sigma-psexec", "Remote service execution (PsExec) to another host", "high", "sigma",
         ("attack.lateral-movement", "attack.t1021.002"), 15 * MINUTE),
)


def alert_of(step: Step) -> Alert:
    extra: dict[str, object] = {"organization.id": SYSTEM.agency.id, "asset.system.id": SYSTEM.id,
                                "source": {"ip": ATTACKER}}
    if step.kind == "correlation":
        extra["correlation"] = {"group": {"host.name": HOST, "source.ip": ATTACKER}}
    rule = MatchedRule(step.rule_id, step.title, step.level, step.tags, step.kind)
    return Alert(rule, f"ev-{step.rule_id}", T0 + step.offset_ms, HOST, EventOrigin(path="replay.jsonl"),
                 matched={"IpAddress": ATTACKER}, extra=extra)


@pytest.fixture(scope="module")
def playbooks() -> PlaybookSet:
    loaded = load_playbooks([REPO_ROOT / "playbooks"])
    assert not loaded.errors
    return loaded


@pytest.fixture(scope="module")
def incoming(scoring: ScoringConfig) -> tuple[IncomingAlert, ...]:
    items = []
    for step in STEPS:
        alert = alert_of(step)
        risk = score(step.level, ScoreContext(system=SYSTEM), scoring)
        items.append(IncomingAlert(alert, risk, assess_serious_incident(alert, [SYSTEM], scoring)))
    noise = Alert(MatchedRule("sigma-scan", "Port scan", "low", ("attack.discovery",)), "ev-noise", T0,
                  "ws-other", EventOrigin(path="replay.jsonl"))
    items.append(IncomingAlert(noise, score("low", ScoreContext(), scoring)))
    return tuple(items)


def the_case(cases: tuple[Case, ...]) -> Case:
    mine = [c for c in cases if c.group_key == f"host:{HOST}"]
    assert len(mine) == 1, [c.group_key for c in cases]
    return mine[0]


def test_in_order(playbooks: PlaybookSet, incoming: tuple[IncomingAlert, ...]) -> None:
    cases = CaseGrouper(playbooks).group_all(incoming, at_ms=NOW)
    assert len(cases) == 2
    case = the_case(cases)
    assert case.alert_ids == tuple(item.alert.id for item in incoming[:4])
    assert (case.severity, case.layer, case.status, case.notify) == (Severity.HIGH, Layer.L2, CaseStatus.NEW, ())
    assert case.risk is not None
    assert case.risk.explanation == "high: rule level high (+40), asset level 3 (+15), criticality high (+5)"
    assert (case.playbook_id, case.incident_type) == ("pb-account-compromise", IncidentType.ACCOUNT_COMPROMISE)
    assert [(t.id, t.layer, t.due_ms - NOW, t.status) for t in case.tasks] == [
        ("triage", Layer.L2, 30 * MINUTE, TaskStatus.TODO), ("block-source", Layer.L1, HOUR, TaskStatus.TODO),
        ("disable-accounts", Layer.L1, 2 * HOUR, TaskStatus.TODO), ("trace", Layer.L2, 8 * HOUR, TaskStatus.TODO),
        ("harden", Layer.L1, 7 * 24 * HOUR, TaskStatus.TODO), ("review", Layer.L3, 30 * 24 * HOUR, TaskStatus.TODO),
    ]
    assert (case.agency, case.systems, case.first_seen_ms, case.last_seen_ms) == (
        "so-tttt", ("dvc-portal",), T0, T0 + 15 * MINUTE)
    assert case.serious is IncidentStatus.NOT_CANDIDATE  # level 3: not a serious-incident candidate
    assert case.l3_assessment
    assert case.sla is not None
    assert (case.sla.acknowledge_by_ms, case.sla.contain_by_ms) == (NOW + HOUR, NOW + 8 * HOUR)
    assert [e.action for e in case.timeline] == ["open", "assign_playbook", "add_alert", "set_sla", "add_alert",
                                                 "add_alert"]
    assert case.timeline[2].summary.endswith(
        "severity raised from medium to high: high: rule level high (+40), asset level 3 (+15), criticality high (+5)")
    noise = next(c for c in cases if c is not case)
    assert (noise.severity, noise.layer, noise.playbook_id) == (Severity.LOW, Layer.L1, None)


def summary(case: Case) -> tuple[object, ...]:
    """What must not depend on arrival order (the id, title and timeline do: they follow the first alert)."""
    return (case.severity, case.risk, case.layer, case.notify, case.status, case.playbook_id, case.incident_type,
            case.tasks, case.sla, frozenset(case.alert_ids), case.first_seen_ms, case.last_seen_ms, case.group_key,
            case.agency, case.systems, case.serious)


ORDERS = list(itertools.permutations(range(4)))


@pytest.mark.parametrize("order", ORDERS, ids=["".join(str(i) for i in order) for order in ORDERS])
def test_shuffled_gives_the_same_case(playbooks: PlaybookSet, incoming: tuple[IncomingAlert, ...],
                                      order: tuple[int, ...]) -> None:
    grouper = CaseGrouper(playbooks)
    expected = summary(the_case(grouper.group_all(incoming, at_ms=NOW)))
    shuffled = [incoming[i] for i in order] + [incoming[4]]
    assert summary(the_case(grouper.group_all(shuffled, at_ms=NOW))) == expected


def test_replaying_the_same_alerts_changes_nothing(playbooks: PlaybookSet,
                                                   incoming: tuple[IncomingAlert, ...]) -> None:
    grouper = CaseGrouper(playbooks)
    case = the_case(grouper.group_all(incoming, at_ms=NOW))
    for item in incoming[:4]:
        result = grouper.add(item, [case], NOW + HOUR)
        assert result.duplicate
        assert result.case == case
