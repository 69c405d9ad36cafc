from __future__ import annotations

import pytest

from correlator.timespec import TimeSpecError, parse_duration_ms, parse_time_ms

NOW = 1_700_000_000_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [("250ms", 250), ("90s", 90_000), ("15m", 900_000), ("1h", 3_600_000), ("7d", 604_800_000),
     ("2w", 1_209_600_000)],
    ids=["ms", "s", "m", "h", "d", "w"],
)
def test_durations(text: str, expected: int) -> None:
    assert parse_duration_ms(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [("1", "invalid duration '1': expected a number and a unit (ms, s, m, h, d, w), e.g. 15m"),
     ("1y", "invalid duration '1y': expected a number and a unit (ms, s, m, h, d, w), e.g. 15m"),
     ("0m", "invalid duration '0m': must be greater than zero")],
    ids=["no-unit", "unknown-unit", "zero"],
)
def test_bad_durations(text: str, message: str) -> None:
    with pytest.raises(TimeSpecError) as info:
        parse_duration_ms(text)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1h", NOW - 3_600_000), ("now", NOW), ("2023-11-14T22:13:20Z", NOW),
     ("2023-11-14T22:13:20", NOW), ("2023-11-15T05:13:20+07:00", NOW)],
    ids=["ago", "now", "zulu", "naive-is-utc", "offset"],
)
def test_times(text: str, expected: int) -> None:
    assert parse_time_ms(text, NOW) == expected


def test_bad_time() -> None:
    with pytest.raises(TimeSpecError) as info:
        parse_time_ms("yesterday", NOW)
    assert str(info.value) == (
        "invalid time 'yesterday': expected a duration back from now (15m, 1h, 7d), 'now', or ISO 8601"
    )
