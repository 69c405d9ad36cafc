"""SLA timers per severity: time to acknowledge and time to contain, counted from the case's creation.

Defaults (`DEFAULT_SLA`; override in the cases configuration, see config.py)::

    severity   acknowledge   contain
    critical   15m           4h
    high       1h            8h
    medium     4h            24h
    low        24h           72h

A deadline is met when the case was acknowledged (contained) at or before it. `overdue(case, now_ms)` lists the
deadlines passed and not met: strictly after the deadline (at the deadline itself the case is not yet overdue), only
while the case is open or resolved (closed and false-positive cases stop every clock). `breaches(case)` lists the
deadlines met late, for reports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from correlator.cases.definitions import TERMINAL_STATUSES, format_duration
from correlator.cases.model import Case, SlaDeadlines
from correlator.scoring import Severity

__all__ = ["DEFAULT_SLA", "Overdue", "SlaPolicy", "SlaTarget", "breaches", "overdue"]

_MINUTE: Final = 60_000
_HOUR: Final = 60 * _MINUTE


@dataclass(frozen=True, slots=True)
class SlaTarget:
    acknowledge_ms: int
    contain_ms: int

    def __post_init__(self) -> None:
        if self.acknowledge_ms < 1 or self.contain_ms < 1:
            raise ValueError("SLA durations must be at least 1 ms")
        if self.contain_ms < self.acknowledge_ms:
            raise ValueError(f"contain ({format_duration(self.contain_ms)}) must not be shorter than acknowledge "
                             f"({format_duration(self.acknowledge_ms)})")

    def to_dict(self) -> dict[str, str]:
        return {"acknowledge": format_duration(self.acknowledge_ms), "contain": format_duration(self.contain_ms)}


@dataclass(frozen=True, slots=True)
class SlaPolicy:
    targets: Mapping[Severity, SlaTarget]

    def __post_init__(self) -> None:
        missing = [s.value for s in Severity if s not in self.targets]
        if missing:
            raise ValueError(f"SLA missing for severity {', '.join(missing)}")

    def deadlines(self, severity: Severity, created_ms: int) -> SlaDeadlines:
        target = self.targets[severity]
        return SlaDeadlines(created_ms + target.acknowledge_ms, created_ms + target.contain_ms)

    def for_case(self, case: Case) -> SlaDeadlines:
        return self.deadlines(case.severity, case.created_ms)

    def to_dict(self) -> dict[str, Any]:
        return {severity.value: self.targets[severity].to_dict() for severity in reversed(Severity)}


DEFAULT_SLA: Final = SlaPolicy(MappingProxyType({
    Severity.CRITICAL: SlaTarget(15 * _MINUTE, 4 * _HOUR),
    Severity.HIGH: SlaTarget(1 * _HOUR, 8 * _HOUR),
    Severity.MEDIUM: SlaTarget(4 * _HOUR, 24 * _HOUR),
    Severity.LOW: SlaTarget(24 * _HOUR, 72 * _HOUR),
}))


@dataclass(frozen=True, slots=True)
class Overdue:
    """A deadline passed (`late_by_ms` > 0). `met_ms`: when it was met late (breaches), None while still unmet."""

    deadline: str  # acknowledge | contain
    due_ms: int
    late_by_ms: int
    met_ms: int | None = None

    def describe(self) -> str:
        state = "met" if self.met_ms is not None else "overdue"
        return f"{self.deadline} {state} by {format_duration(self.late_by_ms)} (due {self.due_ms})"

    def to_dict(self) -> dict[str, Any]:
        return {"deadline": self.deadline, "due_ms": self.due_ms, "late_by_ms": self.late_by_ms,
                "met_ms": self.met_ms}


def _deadlines(case: Case) -> tuple[tuple[str, int, int | None], ...]:
    if case.sla is None:
        return ()
    return (("acknowledge", case.sla.acknowledge_by_ms, case.acknowledged_ms),
            ("contain", case.sla.contain_by_ms, case.contained_ms))


def overdue(case: Case, now_ms: int) -> tuple[Overdue, ...]:
    """The deadlines of `case` that passed before `now_ms` without being met (see the module doc)."""
    if case.status in TERMINAL_STATUSES:
        return ()
    return tuple(Overdue(name, due, now_ms - due) for name, due, met in _deadlines(case)
                 if met is None and now_ms > due)


def breaches(case: Case) -> tuple[Overdue, ...]:
    """The deadlines of `case` met late."""
    return tuple(Overdue(name, due, met - due, met) for name, due, met in _deadlines(case)
                 if met is not None and met > due)
