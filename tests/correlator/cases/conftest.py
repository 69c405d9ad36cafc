"""Factories for case tests: alerts from a few fields, risk scores from points, cases opened at a fixed time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from correlator.cases.definitions import Layer
from correlator.cases.grouping import IncomingAlert, case_alert
from correlator.cases.lifecycle import open_case
from correlator.cases.model import Case, CaseAlert
from correlator.model import Alert, EventOrigin, MatchedRule
from correlator.scoring import Factor, RiskScore, ScoringConfig, Severity, load_scoring_config

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
MINUTE = 60_000
HOUR = 60 * MINUTE


@pytest.fixture(scope="session")
def scoring() -> ScoringConfig:
    return load_scoring_config()


@pytest.fixture
def make_risk(scoring: ScoringConfig) -> Callable[[int], RiskScore]:
    """A risk score of `points` (one factor), its severity by the default thresholds."""

    def build(points: int) -> RiskScore:
        severity = scoring.severity_of(points)
        return RiskScore(points, severity, (Factor("rule_level", points, "test"),),
                         f"{severity.value}: test (+{points})")

    return build


@pytest.fixture
def make_alert() -> Callable[..., Alert]:
    def build(rule_id: str = "r1", *, ts: int = T0, host: str | None = "ws01", level: str = "high",
              tags: tuple[str, ...] = (), extra: dict[str, Any] | None = None,
              matched: dict[str, Any] | None = None, title: str | None = None, kind: str = "sigma",
              event_id: str | None = None) -> Alert:
        rule = MatchedRule(id=rule_id, title=title or f"Rule {rule_id}", level=level, tags=tags, kind=kind)
        return Alert(rule=rule, event_id=event_id or f"ev-{rule_id}-{ts}", timestamp_ms=ts, host_name=host,
                     origin=EventOrigin(path="test.jsonl"), matched=matched or {}, extra=extra or {})

    return build


@pytest.fixture
def make_incoming(make_alert: Callable[..., Alert], make_risk: Callable[[int], RiskScore]
                  ) -> Callable[..., IncomingAlert]:
    def build(rule_id: str = "r1", points: int = 60, **kwargs: Any) -> IncomingAlert:
        return IncomingAlert(make_alert(rule_id, **kwargs), make_risk(points))

    return build


@pytest.fixture
def make_case_alert(make_alert: Callable[..., Alert], make_risk: Callable[[int], RiskScore]
                    ) -> Callable[..., CaseAlert]:
    def build(rule_id: str = "r1", points: int = 60, **kwargs: Any) -> CaseAlert:
        return case_alert(make_alert(rule_id, **kwargs), make_risk(points))

    return build


@pytest.fixture
def new_case(make_case_alert: Callable[..., CaseAlert]) -> Callable[..., Case]:
    """A case opened at T0 with one alert of 60 points (high), owned by L2."""

    def build(case_id: str = "case-1", points: int = 60, layer: Layer = Layer.L2) -> Case:
        alert = make_case_alert("r1", points)
        case, _entry = open_case(case_id, "Test case", at_ms=T0, severity=alert.risk.severity, layer=layer,
                                 risk=alert.risk, alerts=(alert,), group_key="host:ws01")
        return case

    return build


__all__ = ["HOUR", "MINUTE", "T0", "Severity"]
