"""The cases package's exception root and its narrow errors. Each names the case, the command or the file and line."""

from __future__ import annotations

from collections.abc import Sequence

from correlator.errors import CorrelatorError
from correlator.located_yaml import LocatedError

__all__ = [
    "CaseError",
    "CasesConfigError",
    "CommandError",
    "InvalidTransitionError",
    "PlaybookError",
    "StaleCaseError",
]


class CaseError(CorrelatorError):
    """Root of every error about cases, their commands, playbooks and configuration."""


class CommandError(CaseError):
    """A command that cannot apply to a case as it is (unknown alert or task, nothing to change, bad argument)."""

    def __init__(self, case_id: str, command: str, reason: str) -> None:
        self.case_id = case_id
        self.command = command
        self.reason = reason
        super().__init__(f"case {case_id}: {command}: {reason}")


class InvalidTransitionError(CommandError):
    """A status change the lifecycle table does not allow; names from, to and the allowed targets."""

    def __init__(self, case_id: str, current: str, target: str, allowed: Sequence[str]) -> None:
        self.current = current
        self.target = target
        self.allowed = tuple(allowed)
        choices = ", ".join(allowed) if allowed else "none (terminal)"
        super().__init__(case_id, "transition",
                         f"cannot go from {current} to {target} (allowed from {current}: {choices})")


class StaleCaseError(CaseError):
    """Optimistic concurrency: the caller's version is not the case's current version."""

    def __init__(self, case_id: str, expected: int, actual: int) -> None:
        self.case_id = case_id
        self.expected = expected
        self.actual = actual
        super().__init__(f"case {case_id}: stale version {expected} (current version is {actual}); reload and retry")


class PlaybookError(LocatedError, CaseError):
    """A playbook that could not be loaded: the file, the line where known, the key and the reason."""


class CasesConfigError(LocatedError, CaseError):
    """An invalid grouping / SLA / routing configuration: the file, the line where known, the key and the reason."""
