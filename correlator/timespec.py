"""Durations and points in time as analysts type them (``15m``, ``1h``, ``7d``, ISO 8601), in epoch milliseconds."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final

from correlator.errors import CorrelatorError

__all__ = ["TimeSpecError", "parse_duration_ms", "parse_time_ms"]

_UNITS_MS: Final = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_DURATION: Final = re.compile(r"(\d+)(ms|s|m|h|d|w)")


class TimeSpecError(CorrelatorError):
    """A duration or time that does not parse."""


def parse_duration_ms(text: str) -> int:
    """``"90s"``, ``"15m"``, ``"1h"``, ``"7d"``, ``"2w"``, ``"250ms"`` (one number and unit) -> milliseconds."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise TimeSpecError(f"invalid duration {text!r}: expected a number and a unit (ms, s, m, h, d, w), e.g. 15m")
    value = int(match.group(1)) * _UNITS_MS[match.group(2)]
    if value <= 0:
        raise TimeSpecError(f"invalid duration {text!r}: must be greater than zero")
    return value


def parse_time_ms(text: str, now_ms: int) -> int:
    """A point in time: a duration back from `now_ms` (``1h`` = an hour ago), ``now``, or an ISO 8601 time
    (a time without a zone is UTC)."""
    stripped = text.strip()
    if stripped == "now":
        return now_ms
    if _DURATION.fullmatch(stripped):
        return now_ms - parse_duration_ms(stripped)
    try:
        moment = datetime.fromisoformat(stripped.replace("Z", "+00:00"))
    except ValueError:
        raise TimeSpecError(
            f"invalid time {text!r}: expected a duration back from now (15m, 1h, 7d), 'now', or ISO 8601"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)
