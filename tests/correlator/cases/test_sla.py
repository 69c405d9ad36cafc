"""SLA deadlines per severity and the overdue flags at their boundaries."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from correlator.cases.commands import Transition
from correlator.cases.definitions import CaseStatus
from correlator.cases.lifecycle import apply
from correlator.cases.model import Case, SlaDeadlines
from correlator.cases.sla import DEFAULT_SLA, Overdue, SlaTarget, breaches, overdue
from correlator.scoring import Severity
from tests.correlator.cases.conftest import HOUR, MINUTE, T0


@pytest.mark.parametrize(
    ("severity", "acknowledge", "contain"),
    [(Severity.CRITICAL, 15 * MINUTE, 4 * HOUR), (Severity.HIGH, HOUR, 8 * HOUR),
     (Severity.MEDIUM, 4 * HOUR, 24 * HOUR), (Severity.LOW, 24 * HOUR, 72 * HOUR)],
    ids=["critical", "high", "medium", "low"],
)
def test_default_targets(severity: Severity, acknowledge: int, contain: int) -> None:
    assert DEFAULT_SLA.deadlines(severity, T0) == SlaDeadlines(T0 + acknowledge, T0 + contain)


def test_default_policy_as_yaml_shape() -> None:
    assert DEFAULT_SLA.to_dict() == {
        "critical": {"acknowledge": "15m", "contain": "4h"}, "high": {"acknowledge": "1h", "contain": "8h"},
        "medium": {"acknowledge": "4h", "contain": "1d"}, "low": {"acknowledge": "1d", "contain": "3d"},
    }


def with_sla(case: Case) -> Case:
    return replace(case, sla=SlaDeadlines(T0 + HOUR, T0 + 8 * HOUR))


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (T0 + HOUR, []),
        (T0 + HOUR + 1, [Overdue("acknowledge", T0 + HOUR, 1)]),
        (T0 + 8 * HOUR, [Overdue("acknowledge", T0 + HOUR, 7 * HOUR)]),
        (T0 + 8 * HOUR + 1, [Overdue("acknowledge", T0 + HOUR, 7 * HOUR + 1), Overdue("contain", T0 + 8 * HOUR, 1)]),
    ],
    ids=["at-ack-deadline", "just-after-ack", "at-contain-deadline", "after-both"],
)
def test_overdue_boundaries_unacknowledged(new_case: Callable[..., Case], now: int,
                                           expected: list[Overdue]) -> None:
    assert list(overdue(with_sla(new_case()), now)) == expected


def test_acknowledged_in_time_only_contain_can_be_overdue(new_case: Callable[..., Case]) -> None:
    case, _ = apply(with_sla(new_case()), Transition(CaseStatus.ACKNOWLEDGED), "alice", T0 + HOUR)
    assert overdue(case, T0 + 8 * HOUR) == ()
    assert overdue(case, T0 + 8 * HOUR + 1) == (Overdue("contain", T0 + 8 * HOUR, 1),)
    assert breaches(case) == ()


def test_late_acknowledgement_is_a_breach_not_overdue(new_case: Callable[..., Case]) -> None:
    case, _ = apply(with_sla(new_case()), Transition(CaseStatus.ACKNOWLEDGED), "alice", T0 + 2 * HOUR)
    assert overdue(case, T0 + 3 * HOUR) == ()
    (breach,) = breaches(case)
    assert breach == Overdue("acknowledge", T0 + HOUR, HOUR, T0 + 2 * HOUR)
    assert breach.describe() == f"acknowledge met by 1h (due {T0 + HOUR})"


@pytest.mark.parametrize(
    ("path", "flagged"),
    [
        ((CaseStatus.ACKNOWLEDGED, CaseStatus.INVESTIGATING, CaseStatus.CONTAINED), False),
        ((CaseStatus.ACKNOWLEDGED, CaseStatus.INVESTIGATING, CaseStatus.CONTAINED, CaseStatus.RESOLVED), False),
        ((CaseStatus.FALSE_POSITIVE,), False),
        ((CaseStatus.ACKNOWLEDGED, CaseStatus.INVESTIGATING), True),
    ],
    ids=["contained", "resolved", "false-positive", "investigating"],
)
def test_clock_stops(new_case: Callable[..., Case], path: tuple[CaseStatus, ...], flagged: bool) -> None:
    case = with_sla(new_case())
    for i, status in enumerate(path):
        case, _ = apply(case, Transition(status), "alice", T0 + i)
    assert bool(overdue(case, T0 + 100 * HOUR)) is flagged


def test_case_without_sla_is_never_overdue(new_case: Callable[..., Case]) -> None:
    assert overdue(replace(new_case(), sla=None), T0 + 1000 * HOUR) == ()


def test_target_validation() -> None:
    with pytest.raises(ValueError, match=r"contain \(30m\) must not be shorter than acknowledge \(1h\)"):
        SlaTarget(HOUR, 30 * MINUTE)
    with pytest.raises(ValueError, match="SLA durations must be at least 1 ms"):
        SlaTarget(0, 1)
