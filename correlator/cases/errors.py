"""The cases package's exception root and its narrow errors. Each names the case, the command or the file and line."""

from __future__ import annotations

from collections.abc import Sequence

from correlator.errors import CorrelatorError

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


class _LocatedError(CaseError):
    def __init__(self, reason: str, *, source: str, line: int | None = None, key: str | None = None) -> None:
        self.reason = reason
        self.source = source
        self.line = line
        self.key = key
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {key}: {reason}" if key else f"{where}: {reason}")

    def to_dict(self) -> dict[str, object]:
        """The shape of `socctl rules check --json` failures: path, reason, line and key where known."""
        out: dict[str, object] = {"path": self.source, "reason": self.reason}
        if self.line is not None:
            out["line"] = self.line
        if self.key is not None:
            out["key"] = self.key
        return out


class PlaybookError(_LocatedError):
    """A playbook that could not be loaded: the file, the line where known, the key and the reason."""


class CasesConfigError(_LocatedError):
    """An invalid grouping / SLA / routing configuration: the file, the line where known, the key and the reason."""
