"""Risk scores (weights from configuration, explained, clamped) and the serious-incident verdict."""

from __future__ import annotations

from pathlib import Path

import pytest

from correlator.assets import Agency, Criticality, InformationSystem, SecurityLevel
from correlator.model import Alert, EventOrigin, MatchedRule
from correlator.scoring import (
    DEFAULT_SCORING_PATH,
    ImpactType,
    IncidentStatus,
    RuleHistory,
    ScoreContext,
    ScoringConfig,
    ScoringConfigError,
    Severity,
    assess_serious_incident,
    impact_types,
    load_scoring_config,
    parse_scoring_config,
    score,
    score_alert,
)

AGENCY = Agency("so-tttt", "Sở TT&TT")


def system(level: int, *, critical: bool = False, criticality: str = "medium", id: str = "sys") -> InformationSystem:
    return InformationSystem(id, id.upper(), AGENCY, SecurityLevel(level), Criticality(criticality), critical=critical)


@pytest.fixture(scope="module")
def config() -> ScoringConfig:
    return load_scoring_config()


@pytest.mark.parametrize(
    ("level", "context", "expected_score", "explanation"),
    [
        ("high", ScoreContext(system(3), related_alerts=2), 65,
         "high: rule level high (+40), asset level 3 (+15), correlated with 2 earlier alerts (+10)"),
        ("informational", ScoreContext(), 10, "low: rule level informational (+5), asset unknown (+5)"),
        ("medium", ScoreContext(system(1, criticality="low")), 25,
         "medium: rule level medium (+25), asset level 1 (+0)"),
        ("critical", ScoreContext(system(5, critical=True), related_alerts=9, chain_depth=2, intel_hits=3), 100,
         "critical: rule level critical (+55), asset level 5 (+35), on the critical list (+10), "
         "correlated with 9 earlier alerts (+25), correlation chain depth 2 (+10), 3 threat-intel hits (+30)"
         " = 165, clamped to 100"),
        ("high", ScoreContext(system(4, criticality="high"), yara_hits=1), 85,
         "critical: rule level high (+40), asset level 4 (+25), criticality high (+5), 1 YARA hit (+15)"),
        ("low", ScoreContext(history=RuleHistory(total=10, false_positives=10)), 0,
         "low: rule level low (+15), asset unknown (+5), 10 of 10 past alerts false positive (-30)"
         " = -10, clamped to 0"),
        ("high", ScoreContext(system(2), history=RuleHistory(total=8, false_positives=3)), 34,
         "medium: rule level high (+40), asset level 2 (+5), 3 of 8 past alerts false positive (-11)"),
        ("high", ScoreContext(system(2), history=RuleHistory(total=4, false_positives=4)), 45,
         "medium: rule level high (+40), asset level 2 (+5)"),
        ("bogus", ScoreContext(system(3)), 15, "low: rule level 'bogus' unknown (+0), asset level 3 (+15)"),
    ],
    ids=["issue-example", "unknown-asset", "medium-threshold", "clamped-high", "criticality-and-yara",
         "clamped-low", "false-positive-history", "too-little-history", "unknown-level"],
)
def test_score_and_explanation(config: ScoringConfig, level: str, context: ScoreContext, expected_score: int,
                               explanation: str) -> None:
    result = score(level, context, config)
    assert (result.score, result.explanation) == (expected_score, explanation)
    assert result.severity == Severity(explanation.split(":", 1)[0])
    assert result == score(level, context, config)  # deterministic


def test_factors_keep_zero_points_and_serialise(config: ScoringConfig) -> None:
    context = ScoreContext(system(2), history=RuleHistory(total=4, false_positives=4))
    result = score_alert(_alert(MatchedRule("r1", "T", "high")), context, config)
    assert [(f.name, f.points) for f in result.factors] == [
        ("rule_level", 40), ("security_level", 5), ("criticality", 0), ("history", 0)]
    assert result.factors[-1].reason == "too few closed alerts to judge (4 < 5)"
    assert result.to_dict()["severity"] == "medium"


def test_user_file_overrides_defaults_key_by_key(tmp_path: Path) -> None:
    user = tmp_path / "scoring.yml"
    user.write_text("rule_level: {high: 60}\nseverity: {critical: 90}\n"
                    "serious_incident:\n  impact_tags: {attack.t1003: [secret_disclosure]}\n", encoding="utf-8")
    merged = load_scoring_config(user)
    assert merged.rule_level["high"] == 60
    assert merged.rule_level["medium"] == 25
    assert dict(merged.severity) == {"medium": 25, "high": 50, "critical": 90}
    assert merged.impact_tags["attack.t1003"] == (ImpactType.SECRET_DISCLOSURE,)
    assert merged.impact_tags["attack.exfiltration"] == (ImpactType.SECRET_DISCLOSURE,)
    assert merged.sources == (str(DEFAULT_SCORING_PATH), str(user))
    result = score("high", ScoreContext(system(3)), merged)
    assert (result.score, result.severity) == (75, Severity.HIGH)


def test_config_round_trips(config: ScoringConfig) -> None:
    import yaml

    again = parse_scoring_config([("again.yml", yaml.safe_dump(config.to_dict()))])
    assert again.to_dict() == config.to_dict()


_DEFAULT = DEFAULT_SCORING_PATH.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("user", "message"),
    [
        ("rule_level: {hgh: 40}\n",
         "user.yml:1: rule_level.hgh: unknown key (expected one of informational, low, medium, high, critical)"),
        ("\nrule_level:\n  high: lots\n", "user.yml:3: rule_level.high: must be an integer -100..100, not 'lots'"),
        ("security_level: {6: 50}\n",
         "user.yml:1: security_level.6: unknown key (expected one of unknown, 1, 2, 3, 4, 5)"),
        ("correlation: {max_related: -5}\n", "user.yml:1: correlation.max_related: must be an integer 0..100, not -5"),
        ("intel: {per_hit: true}\n", "user.yml:1: intel.per_hit: must be an integer 0..100, not True"),
        ("severity:\n  high: 20\n", "user.yml:1: severity: thresholds must increase: medium < high < critical"),
        ("weights: {}\n", "user.yml:1: weights: unknown section (expected one of rule_level, security_level, "
                          "criticality, correlation, history, intel, yara, severity, serious_incident)"),
        ("rule_level: 5\n", "user.yml:1: rule_level: must be a mapping"),
        ("- a\n", "user.yml:1: must be a mapping of sections"),
        ("rule_level: {high: 1\n", "user.yml:2: invalid YAML: expected ',' or '}', but got '<stream end>'"),
        ("serious_incident: {min_security_level: 0}\n",
         "user.yml:1: serious_incident.min_security_level: must be a level 1-5, not 0"),
        ("serious_incident:\n  impact_tags:\n    attack.t1: [outage]\n",
         "user.yml:3: serious_incident.impact_tags.attack.t1: 'outage' is not a valid ImpactType (expected "
         "service_disruption, secret_disclosure, data_loss, loss_of_control, spread)"),
        ("serious_incident: {impact_tags: {attack.t1: 3}}\n",
         "user.yml:1: serious_incident.impact_tags.attack.t1: must be an impact type or a list of them"),
        ("serious_incident: {notify: yes}\n",
         "user.yml:1: serious_incident.notify: unknown key (expected one of min_security_level, impact_tags)"),
    ],
    ids=["unknown-level", "not-a-number", "unknown-security-level", "negative-cap", "bool", "thresholds-order",
         "unknown-section", "section-not-mapping", "not-a-mapping", "syntax", "min-level", "unknown-impact",
         "impact-not-list", "unknown-policy-key"],
)
def test_config_errors_name_file_line_and_key(user: str, message: str) -> None:
    with pytest.raises(ScoringConfigError) as caught:
        parse_scoring_config([("default.yml", _DEFAULT), ("user.yml", user)])
    assert str(caught.value) == message


def test_incomplete_first_layer_is_reported() -> None:
    with pytest.raises(ScoringConfigError) as caught:
        parse_scoring_config([("only.yml", "rule_level: {high: 40}\n")])
    assert str(caught.value) == "only.yml:1: rule_level: missing key(s) informational, low, medium, critical"


def test_missing_user_file(tmp_path: Path) -> None:
    with pytest.raises(ScoringConfigError, match=r"nope\.yml: cannot read: No such file or directory"):
        load_scoring_config(tmp_path / "nope.yml")


# -- serious incident


def _alert(rule: MatchedRule) -> Alert:
    return Alert(rule=rule, event_id="e1", timestamp_ms=0, host_name="h", origin=EventOrigin())


RANSOMWARE = MatchedRule("r-ransom", "Ransomware", "critical", tags=("attack.impact", "attack.t1486"))
LATERAL = MatchedRule("r-lat", "PsExec", "high", tags=("attack.lateral-movement", "attack.t1021.002"))
DISCOVERY = MatchedRule("r-disc", "Recon", "low", tags=("attack.discovery",))
META_IMPACT = MatchedRule("r-meta", "Exfil", "high", meta=(("impact", ["secret_disclosure", "meltdown"]),))


@pytest.mark.parametrize(
    ("rule", "systems", "contain", "status", "reasons"),
    [
        (RANSOMWARE, [system(4)], True, IncidentStatus.CANDIDATE,
         ["system 'sys' is security level 4 (>= 4 required)", "impact service_disruption, data_loss",
          "analyst: the owner cannot contain it"]),
        (RANSOMWARE, [system(4)], None, IncidentStatus.AWAITING_ANALYST,
         ["system 'sys' is security level 4 (>= 4 required)", "impact service_disruption, data_loss",
          "not yet assessed by an analyst"]),
        (RANSOMWARE, [system(4)], False, IncidentStatus.NOT_CANDIDATE,
         ["system 'sys' is security level 4 (>= 4 required)", "impact service_disruption, data_loss",
          "analyst: the owner can contain it"]),
        (RANSOMWARE, [system(2, critical=True)], True, IncidentStatus.CANDIDATE,
         ["system 'sys' is on the critical list (>= 4 required)", "impact service_disruption, data_loss",
          "analyst: the owner cannot contain it"]),
        (RANSOMWARE, [system(3)], True, IncidentStatus.NOT_CANDIDATE,
         ["no system of level >= 4 or on the critical list ('sys' level 3)", "impact service_disruption, data_loss",
          "analyst: the owner cannot contain it"]),
        (RANSOMWARE, [], True, IncidentStatus.NOT_CANDIDATE,
         ["no affected system known (not in the inventory)", "impact service_disruption, data_loss",
          "analyst: the owner cannot contain it"]),
        (DISCOVERY, [system(5)], True, IncidentStatus.NOT_CANDIDATE,
         ["system 'sys' is security level 5 (>= 4 required)",
          "no serious impact type from rule tags, rule meta or analyst", "analyst: the owner cannot contain it"]),
        (LATERAL, [system(3, id="ws"), system(5, id="db")], True, IncidentStatus.CANDIDATE,
         ["system 'db' is security level 5 (>= 4 required)", "impact spread",
          "analyst: the owner cannot contain it"]),
        (LATERAL, [system(5, id="db"), system(2, id="ws")], True, IncidentStatus.NOT_CANDIDATE,
         ["system 'db' is security level 5 (>= 4 required)",
          "no serious impact type from rule tags, rule meta or analyst (spread ignored: no other system of level "
          ">= 4 or on the critical list involved)", "analyst: the owner cannot contain it"]),
        (META_IMPACT, [system(4)], True, IncidentStatus.CANDIDATE,
         ["system 'sys' is security level 4 (>= 4 required)",
          "impact secret_disclosure (unknown impact 'meltdown' in rule meta ignored)",
          "analyst: the owner cannot contain it"]),
    ],
    ids=["all-three", "awaiting-analyst", "owner-can-contain", "critical-list", "level-too-low", "no-system",
         "no-impact", "spread-to-level-5", "spread-to-low-level-ignored", "impact-from-meta"],
)
def test_serious_incident_verdict(config: ScoringConfig, rule: MatchedRule, systems: list[InformationSystem],
                                  contain: bool | None, status: IncidentStatus, reasons: list[str]) -> None:
    verdict = assess_serious_incident(_alert(rule), systems, config, owner_cannot_contain=contain)
    assert verdict.status is status
    assert verdict.candidate is (status is IncidentStatus.CANDIDATE)
    assert [c.reason for c in verdict.conditions] == reasons
    assert verdict.to_dict()["status"] == status.value


def test_analyst_can_add_impact(config: ScoringConfig) -> None:
    verdict = assess_serious_incident(DISCOVERY, [system(4)], config, owner_cannot_contain=True,
                                      impacts=["loss_of_control", "typo"])
    assert verdict.status is IncidentStatus.CANDIDATE
    assert verdict.impacts == (ImpactType.LOSS_OF_CONTROL,)
    assert verdict.impact.reason == "impact loss_of_control (unknown impact 'typo' ignored)"


def test_impact_types_from_tags_case_insensitive(config: ScoringConfig) -> None:
    rule = MatchedRule("r", "t", "high", tags=("ATTACK.Exfiltration", "attack.command-and-control"))
    assert impact_types(rule, config) == ((ImpactType.SECRET_DISCLOSURE, ImpactType.LOSS_OF_CONTROL), ())
