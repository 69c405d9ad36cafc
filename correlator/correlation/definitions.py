"""What a correlation value may be: the constrained types of the correlation package, in one place.

Correlation types and condition operators follow the Sigma correlation specification (v2.0 types plus the v2.1
metric types that pySigma 1.5 parses). The policies name what the engine does with events it cannot place in a
window: late events (older than the watermark minus the allowed lateness) and key-less events (a group-by field
is missing).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "EAGER_OPERATORS",
    "METRIC_TYPES",
    "TEMPORAL_TYPES",
    "VALUE_TYPES",
    "ConditionOp",
    "CorrelationType",
    "KeylessPolicy",
    "LatePolicy",
]


class CorrelationType(StrEnum):
    EVENT_COUNT = "event_count"
    VALUE_COUNT = "value_count"
    TEMPORAL = "temporal"
    TEMPORAL_ORDERED = "temporal_ordered"
    VALUE_SUM = "value_sum"
    VALUE_AVG = "value_avg"
    VALUE_PERCENTILE = "value_percentile"
    VALUE_MEDIAN = "value_median"


# Types that read a value field (`condition.field`).
VALUE_TYPES = frozenset({
    CorrelationType.VALUE_COUNT, CorrelationType.VALUE_SUM, CorrelationType.VALUE_AVG,
    CorrelationType.VALUE_PERCENTILE, CorrelationType.VALUE_MEDIAN,
})
# Types whose value field must be numeric.
METRIC_TYPES = VALUE_TYPES - {CorrelationType.VALUE_COUNT}
TEMPORAL_TYPES = frozenset({CorrelationType.TEMPORAL, CorrelationType.TEMPORAL_ORDERED})


class ConditionOp(StrEnum):
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    EQ = "eq"
    NEQ = "neq"


# A condition made only of lower bounds can only become true as a window fills: it is decided eagerly, on the
# event that makes it true. Any other operator is decided when the window closes (see engine.py).
EAGER_OPERATORS = frozenset({ConditionOp.GT, ConditionOp.GTE})


class LatePolicy(StrEnum):
    """What happens to a match older than the watermark minus the allowed lateness."""

    DROP = "drop"  # counted, logged, handed to the late sink; not evaluated (results stay order-independent)
    ADMIT = "admit"  # counted, logged, evaluated at once at the current frontier (nothing lost; order-dependent)


class KeylessPolicy(StrEnum):
    """What happens to a match that lacks a group-by field of a correlation rule."""

    SKIP = "skip"  # counted and logged; not evaluated for that rule (what SIEM `by` clauses do)
    NULL = "null"  # evaluated with None in the missing key position
