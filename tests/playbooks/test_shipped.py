"""The playbooks shipped in playbooks/: every one loads, every incident type has one, and each is sound."""

from __future__ import annotations

import pytest

from correlator.cases.definitions import IncidentType, Layer
from correlator.cases.playbooks import PlaybookSet, load_playbooks
from tests.conftest import REPO_ROOT

PLAYBOOKS = REPO_ROOT / "playbooks"


@pytest.fixture(scope="module")
def shipped() -> PlaybookSet:
    return load_playbooks([PLAYBOOKS])


def test_every_shipped_playbook_loads(shipped: PlaybookSet) -> None:
    files = sorted(p.name for p in PLAYBOOKS.glob("*.yaml"))
    failures = "\n".join(str(error) for error in shipped.errors)
    assert not shipped.errors, f"{len(shipped.errors)} of {len(files)} playbooks failed:\n{failures}"
    assert len(shipped.playbooks) == len(files)


@pytest.mark.parametrize("incident_type", list(IncidentType), ids=[t.value for t in IncidentType])
def test_every_incident_type_has_a_playbook(shipped: PlaybookSet, incident_type: IncidentType) -> None:
    playbook = shipped.for_type(incident_type)
    assert playbook is not None
    assert playbook.title_vi
    assert playbook.steps[0].layer is Layer.L2  # the SOC triages first
    assert any(step.layer is Layer.L1 for step in playbook.steps)  # the agency acts on its own systems
    assert playbook.steps[-1].layer is Layer.L3  # every incident feeds the periodic assessment


@pytest.mark.parametrize(
    ("tags", "incident_type"),
    [
        (("attack.credential-access", "attack.t1110.001"), IncidentType.ACCOUNT_COMPROMISE),
        (("attack.impact", "attack.t1486"), IncidentType.RANSOMWARE),
        (("attack.command-and-control", "intel"), IncidentType.BOTNET),
        (("attack.initial-access", "attack.t1190"), IncidentType.WEB_ATTACK),
        (("attack.persistence", "attack.t1505.003"), IncidentType.WEB_ATTACK),
        (("attack.impact", "attack.t1491.002"), IncidentType.DEFACEMENT),
        (("attack.exfiltration", "attack.t1567.002"), IncidentType.DATA_EXFILTRATION),
        (("attack.execution", "attack.t1204.002"), IncidentType.MALWARE),
    ],
    ids=["brute-force", "ransomware", "botnet-intel", "sqli", "webshell", "defacement", "exfiltration", "malware"],
)
def test_typical_alert_tags_pick_the_expected_playbook(shipped: PlaybookSet, tags: tuple[str, ...],
                                                       incident_type: IncidentType) -> None:
    from correlator.cases.model import CaseAlert
    from correlator.scoring import RiskScore, Severity

    alert = CaseAlert("a", "e", "rule", "Rule", "high", 0, RiskScore(50, Severity.HIGH, (), "high"), tags=tags)
    chosen = shipped.select([alert])
    assert chosen is not None
    assert chosen.incident_type is incident_type
