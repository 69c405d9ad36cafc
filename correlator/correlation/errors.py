"""Errors of the correlation package. Every one says where it came from (rule file and line, snapshot)."""

from __future__ import annotations

from correlator.errors import CorrelatorError, RuleLoadError

__all__ = ["CorrelationError", "CorrelationRuleError", "SnapshotError", "WindowError"]


class CorrelationError(CorrelatorError):
    """Root of every error raised by the correlation package."""


class CorrelationRuleError(RuleLoadError, CorrelationError):
    """A correlation rule that could not be loaded: file, line of its YAML document, rule id, reason."""


class WindowError(CorrelationError, ValueError):
    """An invalid window definition (duration < 1 ms, negative lateness)."""


class SnapshotError(CorrelationError):
    """A snapshot that cannot be restored (not a snapshot, unsupported version, corrupt content)."""
