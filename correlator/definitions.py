"""Constrained values shared across the pipeline, in one place to look them up."""

from __future__ import annotations

from enum import IntEnum
from typing import Final

__all__ = ["ALERT_KINDS", "SecurityLevel"]

# What raised an alert (`MatchedRule.kind`): a Sigma rule, a YARA rule, a Sigma correlation rule, a threat-intel
# list, or a network sensor's own detection (a Suricata alert, a Zeek notice).
ALERT_KINDS: Final = frozenset({"sigma", "yara", "correlation", "intel", "ids"})


class SecurityLevel(IntEnum):
    """Cấp độ an toàn hệ thống thông tin under Decree 85/2016/NĐ-CP: 1 (lowest impact) to 5 (highest)."""

    LEVEL_1 = 1
    LEVEL_2 = 2
    LEVEL_3 = 3
    LEVEL_4 = 4
    LEVEL_5 = 5
