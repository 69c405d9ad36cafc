"""The correlator's exception root. Every error names where it came from (rule file and line, event id, offset)."""

from __future__ import annotations


class CorrelatorError(Exception):
    """Root of every error raised by the correlator package."""


class RuleLoadError(CorrelatorError):
    """A rule (Sigma or YARA) that could not be loaded: the file, the line where known, and the reason."""

    def __init__(self, path: str, reason: str, line: int | None = None, rule_id: str | None = None) -> None:
        self.path = path
        self.reason = reason
        self.line = line
        self.rule_id = rule_id
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {reason}")

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"path": self.path, "reason": self.reason}
        if self.line is not None:
            out["line"] = self.line
        if self.rule_id is not None:
            out["rule_id"] = self.rule_id
        return out


class RuleCompileError(CorrelatorError):
    """A rule parsed but could not be compiled into the evaluator (unsupported or unsafe construct)."""


class UnsafeRegexError(RuleCompileError):
    """A regular expression that cannot be bounded against catastrophic backtracking."""
