"""The lifecycle table: every allowed transition, every refused one with its exact message, terminal states."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from correlator.cases.commands import Transition
from correlator.cases.definitions import OPEN_STATUSES, TERMINAL_STATUSES, TRANSITIONS, CaseStatus
from correlator.cases.errors import CommandError, InvalidTransitionError
from correlator.cases.lifecycle import apply, case_risk
from correlator.cases.model import Case, CaseAlert
from tests.correlator.cases.conftest import MINUTE, T0

HOUR_LATER = 60 * MINUTE

# the shortest path of allowed transitions from new to each status
PATH: dict[CaseStatus, tuple[CaseStatus, ...]] = {
    CaseStatus.NEW: (),
    CaseStatus.ACKNOWLEDGED: (CaseStatus.ACKNOWLEDGED,),
    CaseStatus.INVESTIGATING: (CaseStatus.ACKNOWLEDGED, CaseStatus.INVESTIGATING),
    CaseStatus.CONTAINED: (CaseStatus.ACKNOWLEDGED, CaseStatus.INVESTIGATING, CaseStatus.CONTAINED),
    CaseStatus.RESOLVED: (CaseStatus.ACKNOWLEDGED, CaseStatus.INVESTIGATING, CaseStatus.CONTAINED,
                          CaseStatus.RESOLVED),
    CaseStatus.CLOSED: (CaseStatus.ACKNOWLEDGED, CaseStatus.INVESTIGATING, CaseStatus.CONTAINED,
                        CaseStatus.RESOLVED, CaseStatus.CLOSED),
    CaseStatus.FALSE_POSITIVE: (CaseStatus.FALSE_POSITIVE,),
}


def walk(case: Case, statuses: tuple[CaseStatus, ...]) -> Case:
    for i, status in enumerate(statuses, start=1):
        case, _ = apply(case, Transition(status), "analyst", T0 + i * MINUTE)
    return case


def test_table_is_the_documented_lifecycle() -> None:
    assert {s: [t.value for t in targets] for s, targets in TRANSITIONS.items()} == {
        CaseStatus.NEW: ["acknowledged", "false_positive"],
        CaseStatus.ACKNOWLEDGED: ["investigating", "false_positive"],
        CaseStatus.INVESTIGATING: ["contained", "false_positive"],
        CaseStatus.CONTAINED: ["resolved", "investigating", "false_positive"],
        CaseStatus.RESOLVED: ["closed", "investigating"],
        CaseStatus.CLOSED: [],
        CaseStatus.FALSE_POSITIVE: [],
    }
    assert set(TRANSITIONS) == set(CaseStatus)
    assert {CaseStatus.CLOSED, CaseStatus.FALSE_POSITIVE} == TERMINAL_STATUSES
    assert all(CaseStatus.FALSE_POSITIVE in TRANSITIONS[s] for s in OPEN_STATUSES)


ALLOWED = [(source, target) for source, targets in TRANSITIONS.items() for target in targets]


@pytest.mark.parametrize(("source", "target"), ALLOWED, ids=[f"{s.value}->{t.value}" for s, t in ALLOWED])
def test_allowed_transition(new_case: Callable[..., Case], source: CaseStatus, target: CaseStatus) -> None:
    case = walk(new_case(), PATH[source])
    after, entry = apply(case, Transition(target, reason="why"), "alice", T0 + HOUR_LATER)
    assert after.status is target
    assert after.version == case.version + 1
    assert entry.action == "transition"
    assert entry.before == {"status": source.value}
    assert entry.after == {"status": target.value}
    assert entry.summary == f"status {source.value} → {target.value}: why"
    assert entry.reason == "why"


REFUSED = [(source, target) for source in CaseStatus for target in CaseStatus
           if target not in TRANSITIONS[source]]


@pytest.mark.parametrize(("source", "target"), REFUSED, ids=[f"{s.value}->{t.value}" for s, t in REFUSED])
def test_refused_transition(new_case: Callable[..., Case], source: CaseStatus, target: CaseStatus) -> None:
    case = walk(new_case(), PATH[source])
    if source in TERMINAL_STATUSES:
        with pytest.raises(CommandError) as terminal:
            apply(case, Transition(target), "alice", T0 + HOUR_LATER)
        assert str(terminal.value) == (f"case case-1: transition: case is {source.value}: only comments, tags and "
                                       "evidence can be added")
        return
    with pytest.raises(InvalidTransitionError) as caught:
        apply(case, Transition(target), "alice", T0 + HOUR_LATER)
    allowed = ", ".join(t.value for t in TRANSITIONS[source])
    assert str(caught.value) == (f"case case-1: transition: cannot go from {source.value} to {target.value} "
                                 f"(allowed from {source.value}: {allowed})")
    assert (caught.value.current, caught.value.target) == (source.value, target.value)


@pytest.mark.parametrize(
    ("statuses", "message"),
    [
        ((CaseStatus.CONTAINED,),
         "case case-1: transition: cannot go from new to contained (allowed from new: acknowledged, false_positive)"),
        ((CaseStatus.ACKNOWLEDGED, CaseStatus.RESOLVED),
         "case case-1: transition: cannot go from acknowledged to resolved "
         "(allowed from acknowledged: investigating, false_positive)"),
    ],
    ids=["new-to-contained", "acknowledged-to-resolved"],
)
def test_invalid_transition_message(new_case: Callable[..., Case], statuses: tuple[CaseStatus, ...],
                                    message: str) -> None:
    with pytest.raises(InvalidTransitionError) as caught:
        walk(new_case(), statuses)
    assert str(caught.value) == message


def test_invalid_transition_error_lists_none_for_terminal() -> None:
    error = InvalidTransitionError("c", "closed", "new", [])
    assert str(error) == "case c: transition: cannot go from closed to new (allowed from closed: none (terminal))"


def test_clock_fields_follow_the_lifecycle(new_case: Callable[..., Case]) -> None:
    case = walk(new_case(), PATH[CaseStatus.CLOSED])
    assert (case.acknowledged_ms, case.contained_ms, case.closed_ms) == (T0 + MINUTE, T0 + 3 * MINUTE,
                                                                         T0 + 5 * MINUTE)
    # reopening keeps the first containment time
    contained = walk(new_case(), PATH[CaseStatus.CONTAINED])
    reopened, _ = apply(contained, Transition(CaseStatus.INVESTIGATING, "came back"), "bob", T0 + HOUR_LATER)
    again, _ = apply(reopened, Transition(CaseStatus.CONTAINED), "bob", T0 + 2 * HOUR_LATER)
    assert again.contained_ms == T0 + 3 * MINUTE


def test_false_positive_stops_everything_but_comments(new_case: Callable[..., Case]) -> None:
    case = walk(new_case(), (CaseStatus.ACKNOWLEDGED, CaseStatus.FALSE_POSITIVE))
    assert case.closed_ms == T0 + 2 * MINUTE
    assert not case.is_open


def test_case_risk_is_the_earliest_of_the_highest_scores_in_any_order(
        make_case_alert: Callable[..., CaseAlert]) -> None:
    rng = random.Random(7)
    alerts = [make_case_alert(f"r{i}", rng.choice((40, 60, 80)), ts=T0 + rng.randrange(20) * MINUTE)
              for i in range(300)]
    top = max(alert.score for alert in alerts)
    expected = min((a for a in alerts if a.score == top), key=lambda a: (a.timestamp_ms, a.id))
    for _ in range(5):
        rng.shuffle(alerts)
        assert case_risk(tuple(alerts)) is expected.risk
    assert case_risk(()) is None
