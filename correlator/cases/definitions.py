"""Constrained values of cases and playbooks, in one place: layers, statuses, incident types and the lifecycle
table (data, not code)."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final

__all__ = [
    "OPEN_STATUSES",
    "SYSTEM_ACTOR",
    "TERMINAL_STATUSES",
    "TRANSITIONS",
    "CaseStatus",
    "IncidentType",
    "Layer",
    "TaskStatus",
    "allowed_transitions",
    "format_duration",
]

SYSTEM_ACTOR: Final = "socctl"  # the actor of changes made by the engine itself (grouping, routing)


class Layer(StrEnum):
    """The four layers of protection (Directive 14/CT-TTg, "mô hình bảo vệ 4 lớp")."""

    L1 = "L1"  # the agency's own IT staff (lực lượng tại chỗ)
    L2 = "L2"  # the 24/7 monitoring and protection provider: the SOC
    L3 = "L3"  # independent periodic assessment (kiểm tra, đánh giá độc lập định kỳ)
    L4 = "L4"  # the national monitoring centre (NCSC / Trung tâm Giám sát an toàn không gian mạng quốc gia)

    @property
    def rank(self) -> int:
        return int(self.value[1])

    @property
    def description(self) -> str:
        return _LAYER_DESCRIPTIONS[self]


_LAYER_DESCRIPTIONS: Final = MappingProxyType({
    Layer.L1: "agency's own IT staff",
    Layer.L2: "24/7 monitoring provider (SOC)",
    Layer.L3: "independent periodic assessment",
    Layer.L4: "national monitoring centre",
})


class CaseStatus(StrEnum):
    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    INVESTIGATING = "investigating"
    CONTAINED = "contained"
    RESOLVED = "resolved"
    CLOSED = "closed"
    FALSE_POSITIVE = "false_positive"


# from -> the statuses a case may move to. Reopening: contained -> investigating (containment failed),
# resolved -> investigating (it came back). closed and false_positive are terminal.
TRANSITIONS: Final[Mapping[CaseStatus, tuple[CaseStatus, ...]]] = MappingProxyType({
    CaseStatus.NEW: (CaseStatus.ACKNOWLEDGED, CaseStatus.FALSE_POSITIVE),
    CaseStatus.ACKNOWLEDGED: (CaseStatus.INVESTIGATING, CaseStatus.FALSE_POSITIVE),
    CaseStatus.INVESTIGATING: (CaseStatus.CONTAINED, CaseStatus.FALSE_POSITIVE),
    CaseStatus.CONTAINED: (CaseStatus.RESOLVED, CaseStatus.INVESTIGATING, CaseStatus.FALSE_POSITIVE),
    CaseStatus.RESOLVED: (CaseStatus.CLOSED, CaseStatus.INVESTIGATING),
    CaseStatus.CLOSED: (),
    CaseStatus.FALSE_POSITIVE: (),
})

# Open: new alerts of the same key join the case and SLA clocks run.
OPEN_STATUSES: Final = frozenset({CaseStatus.NEW, CaseStatus.ACKNOWLEDGED, CaseStatus.INVESTIGATING,
                                  CaseStatus.CONTAINED})
TERMINAL_STATUSES: Final = frozenset(status for status, targets in TRANSITIONS.items() if not targets)


def allowed_transitions(status: CaseStatus) -> tuple[CaseStatus, ...]:
    return TRANSITIONS[status]


class TaskStatus(StrEnum):
    TODO = "todo"
    DOING = "doing"
    DONE = "done"
    SKIPPED = "skipped"


class IncidentType(StrEnum):
    """Incident types with a playbook (the national incident-report categories the provincial SOCs use)."""

    MALWARE = "malware"  # nhiễm mã độc
    BOTNET = "botnet"  # kết nối tới mạng máy tính ma (botnet / C2)
    WEB_ATTACK = "web_attack"  # tấn công ứng dụng web / cổng thông tin
    ACCOUNT_COMPROMISE = "account_compromise"  # dò quét mật khẩu / chiếm đoạt tài khoản
    RANSOMWARE = "ransomware"  # mã độc mã hoá tống tiền
    DATA_EXFILTRATION = "data_exfiltration"  # đánh cắp / rò rỉ dữ liệu
    DEFACEMENT = "defacement"  # thay đổi giao diện trang web


_UNITS: Final = (("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000), ("ms", 1))


def format_duration(ms: int) -> str:
    """The largest unit that divides `ms` exactly: 5400000 -> "90m" (the inverse of `parse_duration_ms`)."""
    for unit, size in _UNITS:
        if ms % size == 0:
            return f"{ms // size}{unit}"
    raise AssertionError("unreachable: 1 ms divides every duration")
