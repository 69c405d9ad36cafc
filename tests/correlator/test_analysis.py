"""The analysis stage: event-time order, correlation, enrichment of correlation alerts, suppression, explained
scores, serious-incident verdicts, and state carried across runs."""

from __future__ import annotations

import random
from typing import Any

import pytest

from correlator.analysis import Analyzer, StateError, chain_depths
from correlator.assets_load import parse_inventory_yaml
from correlator.cases.grouping import DEFAULT_GROUPING, group_key
from correlator.correlation import CorrelationEngine, RuleMatch, load_correlation_texts
from correlator.model import Alert, EventOrigin, MatchedRule
from correlator.scoring import load_scoring_config
from correlator.suppression import SuppressionPolicy, Suppressor

MIN = 60_000
FAILED = "11111111-1111-4111-8111-111111111111"
SUCCESS = "22222222-2222-4222-8222-222222222222"
RULES = f"""
title: Failed logon
id: {FAILED}
name: failed_logon
logsource: {{product: windows, service: security}}
detection: {{sel: {{EventID: 4625}}, condition: sel}}
level: low
---
title: Successful logon
id: {SUCCESS}
name: success_logon
logsource: {{product: windows, service: security}}
detection: {{sel: {{EventID: 4624}}, condition: sel}}
level: low
---
title: Brute force
id: 33333333-3333-4333-8333-333333333333
name: brute_force
level: medium
correlation: {{type: event_count, rules: [failed_logon], group-by: [IpAddress], timespan: 10m,
              condition: {{gte: 3}}}}
---
title: Brute force then success
id: 44444444-4444-4444-8444-444444444444
level: high
tags: [attack.credential-access]
correlation: {{type: temporal_ordered, rules: [brute_force, success_logon], group-by: [IpAddress], timespan: 30m,
              generate: true}}
"""
INVENTORY = """
systems:
  - {id: dvc, name: Cổng dịch vụ công, agency: {id: so-tttt, name: Sở TT&TT}, security_level: 4}
  - {id: office, name: Văn phòng, agency: {id: ubnd, name: UBND}, security_level: 2}
assets:
  - {system: dvc, ips: [10.1.2.0/24], hostnames: [web01]}
  - {system: office, hostnames: [pc01]}
"""


def _rule(rule_id: str, level: str = "medium", kind: str = "sigma", tags: tuple[str, ...] = ()) -> MatchedRule:
    return MatchedRule(id=rule_id, title=f"rule {rule_id[:8]}", level=level, tags=tags, kind=kind)


def _alert(rule: MatchedRule, event_id: str, ts: int, host: str | None = "web01", **extra: Any) -> Alert:
    return Alert(rule, event_id, ts, host, EventOrigin(path="x.json"), matched={}, extra=dict(extra))


def _match(rule_id: str, event_id: str, ts: int, ip: str, host: str = "web01") -> RuleMatch:
    return RuleMatch(rule_id, event_id, ts, {"IpAddress": ip}.get, None, host, EventOrigin(path="sec.json"))


def _analyzer(*, suppress: bool = False, inventory: bool = False) -> Analyzer:
    rules = load_correlation_texts([("rules.yml", RULES)])
    rules.raise_first()
    return Analyzer(
        load_scoring_config(),
        correlation=CorrelationEngine(rules),
        suppressor=Suppressor(SuppressionPolicy()) if suppress else None,
        inventory=parse_inventory_yaml(INVENTORY) if inventory else None,
        key_of=lambda alert: group_key(alert, DEFAULT_GROUPING),
        related_window_ms=DEFAULT_GROUPING.window_ms,
    )


def _brute_force_matches(ip: str = "203.0.113.9") -> list[RuleMatch]:
    failures = [_match(FAILED, f"f{i}", i * MIN, ip) for i in range(4)]
    return [*failures, _match(SUCCESS, "s1", 5 * MIN, ip)]


def _summary(analyzer: Analyzer, matches: list[RuleMatch], alerts: list[Alert] = ()) -> list[tuple[Any, ...]]:
    out = analyzer.run(list(alerts), matches)
    out.extend(analyzer.finish())
    return [(a.alert.rule.id, a.alert.timestamp_ms, a.risk.score, a.risk.explanation) for a in out.alerts]


def test_chain_depths_count_correlation_levels() -> None:
    rules = load_correlation_texts([("rules.yml", RULES)])
    assert chain_depths(rules) == {"33333333-3333-4333-8333-333333333333": 1,
                                   "44444444-4444-4444-8444-444444444444": 2}


def test_correlation_alerts_are_scored_with_their_chain_depth() -> None:
    analyzer = _analyzer()
    out = analyzer.run([], _brute_force_matches())
    out.extend(analyzer.finish())
    by_rule = {a.alert.rule.title: a for a in out.alerts}
    assert set(by_rule) == {"Brute force", "Brute force then success"}
    chained = by_rule["Brute force then success"]
    assert "correlation chain depth 2 (+10)" in chained.risk.explanation
    assert chained.alert.extra["risk"]["score"] == chained.risk.score
    assert "correlation chain depth 1 (+5)" in by_rule["Brute force"].risk.explanation
    assert out.correlation_alerts == 2


def test_shuffled_input_gives_the_same_outcome() -> None:
    matches = _brute_force_matches() + _brute_force_matches("198.51.100.7")
    expected = _summary(_analyzer(), matches)
    assert len(expected) == 4
    for seed in range(5):
        shuffled = list(matches)
        random.Random(seed).shuffle(shuffled)
        assert _summary(_analyzer(), shuffled) == expected


def test_related_alerts_of_the_same_key_raise_the_score() -> None:
    rule = _rule("55555555-5555-4555-8555-555555555555")
    other = _rule("66666666-6666-4666-8666-666666666666")
    out = _analyzer().run([_alert(rule, "e1", 0), _alert(other, "e2", MIN), _alert(rule, "e3", 2 * MIN, "pc07")])
    first, second, elsewhere = out.alerts
    assert "correlated" not in first.risk.explanation
    assert "correlated with 1 earlier alert (+5)" in second.risk.explanation
    assert second.risk.score == first.risk.score + 5
    assert "correlated" not in elsewhere.risk.explanation


def test_intel_hit_on_the_same_event_corroborates_the_sigma_alert() -> None:
    sigma = _alert(_rule("55555555-5555-4555-8555-555555555555"), "e1", 0, "pc09")
    intel = _alert(_rule("intel-c2-abc", level="high", kind="intel"), "e1", 0, "pc09")
    out = _analyzer().run([sigma, intel])
    scored = {a.alert.rule.kind: a.risk for a in out.alerts}
    assert "1 threat-intel hit (+15)" in scored["sigma"].explanation
    assert "threat-intel" not in scored["intel"].explanation


def test_suppression_counts_repeats_and_keeps_the_first_score() -> None:
    rule = _rule("55555555-5555-4555-8555-555555555555")
    alerts = [_alert(rule, f"e{i}", i * 1_000) for i in range(6)]
    analyzer = _analyzer(suppress=True)
    out = analyzer.run(alerts[:1])
    more = analyzer.run(alerts[1:])
    assert len(out.alerts) == 1
    assert not more.alerts
    assert more.suppressed == 5
    (latest,) = more.updated  # five events counted into it: one update, with the batch's final count
    assert latest.id == out.alerts[0].alert.id
    assert latest.extra["suppression"]["count"] == 6
    assert latest.extra["risk"] == out.alerts[0].alert.extra["risk"]
    assert all("risk" not in a.extra for a in alerts[1:])  # counted into the representative: never scored


def test_suppression_in_one_batch_scores_what_stands_as_scoring_every_alert_would() -> None:
    rule = _rule("55555555-5555-4555-8555-555555555555")
    alerts = [_alert(rule, f"e{i}", i * 1_000) for i in range(4)]
    alone = _analyzer().run(alerts[:1])
    together = _analyzer(suppress=True).run(alerts)
    assert [a.alert.id for a in together.alerts] == [alerts[0].id]
    assert together.suppressed == 3
    assert together.alerts[0].risk == alone.alerts[0].risk
    # The whole batch is one suppression batch: the representative is created once, with its final count.
    assert together.updated == []
    (representative,) = together.alerts
    assert representative.alert.extra["suppression"]["count"] == 4
    assert representative.alert.extra["suppression"]["docs_count"] == 3
    assert representative.alert.extra["risk"] == alone.alerts[0].alert.extra["risk"]


def test_inventory_enriches_correlation_alerts_and_decides_serious_incidents() -> None:
    analyzer = _analyzer(inventory=True)
    out = analyzer.run([], [_match(FAILED, f"f{i}", i * MIN, "10.1.2.5", host="web01") for i in range(3)])
    out.extend(analyzer.finish())
    (alert,) = out.alerts
    assert alert.alert.extra["organization"]["id"] == "so-tttt"
    assert alert.alert.extra["asset"]["security_level"] == 4
    assert "asset level 4 (+25)" in alert.risk.explanation
    assert alert.verdict is not None
    assert alert.verdict.conditions[0].met is True  # level 4 system
    assert alert.alert.extra["serious_incident"]["status"] == alert.verdict.status.value


def test_snapshot_between_two_runs_gives_the_same_alerts_as_one_run() -> None:
    matches = _brute_force_matches()
    expected = _summary(_analyzer(), matches)
    first = _analyzer()
    out = first.run([], matches[:3])
    state = first.snapshot()
    second = _analyzer()
    second.restore(state)
    rest = second.run([], matches[3:])
    rest.extend(second.finish())
    got = [(a.alert.rule.id, a.alert.timestamp_ms, a.risk.score, a.risk.explanation)
           for a in [*out.alerts, *rest.alerts]]
    assert got == expected


@pytest.mark.parametrize(("data", "message"), [
    (b"not json", "not a socctl state file"),
    (b'{"format": "other"}', "not a socctl state file"),
    (b'{"format": "socctl.analysis.state", "version": 9}', "state version 9 is not supported"),
], ids=["garbage", "format", "version"])
def test_bad_state_is_refused_with_a_reason(data: bytes, message: str) -> None:
    with pytest.raises(StateError, match=message):
        _analyzer().restore(data)
