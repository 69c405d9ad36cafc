"""Sigma correlation rules, streaming: loading (loader), rules as data (rule), window maths (windows), per-key
state (state), the event-time engine (engine) and its snapshots (snapshot). Nothing happens at import time."""

from correlator.correlation.definitions import ConditionOp, CorrelationType, KeylessPolicy, LatePolicy
from correlator.correlation.engine import CorrelationEngine
from correlator.correlation.errors import CorrelationError, CorrelationRuleError, SnapshotError, WindowError
from correlator.correlation.loader import (
    BaseRule,
    CorrelationSet,
    load_correlation_collection,
    load_correlation_paths,
    load_correlation_texts,
)
from correlator.correlation.match import CorrelationMetrics, EngineSettings, RuleMatch
from correlator.correlation.rule import Condition, CorrelationRule
from correlator.correlation.snapshot import SnapshotSchedule, read_snapshot, write_snapshot
from correlator.correlation.windows import Window

__all__ = [
    "BaseRule",
    "Condition",
    "ConditionOp",
    "CorrelationEngine",
    "CorrelationError",
    "CorrelationMetrics",
    "CorrelationRule",
    "CorrelationRuleError",
    "CorrelationSet",
    "CorrelationType",
    "EngineSettings",
    "KeylessPolicy",
    "LatePolicy",
    "RuleMatch",
    "SnapshotError",
    "SnapshotSchedule",
    "Window",
    "WindowError",
    "load_correlation_collection",
    "load_correlation_paths",
    "load_correlation_texts",
    "read_snapshot",
    "write_snapshot",
]
