"""Syslog timestamps to epoch milliseconds: BSD (RFC 3164: no year, no zone: the year comes from the receive time
or a hint, the zone from the configuration) and RFC 3339 (RFC 5424). Times in UTC or a fixed-offset zone are
computed with arithmetic over cached days; other zones, and anything invalid, go through `datetime` (whose
errors the parser reports)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from functools import lru_cache

from collectors.errors import CollectorError

__all__ = ["SyslogParseError", "bsd_ms", "iso_ms"]


class SyslogParseError(CollectorError):
    """A line that is not an RFC 3164/5424 syslog message; `reason` says what is wrong with it."""


_MONTHS = {name: number for number, name in enumerate(
    ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_ONE_US = timedelta(microseconds=1)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_DAY_US = 86_400_000_000
_MAX_RECEIVED_MS = 253_402_041_600_000  # 9999-12-29: a receive time whose year `bsd_ms` can work out
_DAYS_CACHE = 4_096  # (year, month, day) -> epoch day, for BSD and RFC 3339 times
_FUTURE_SLACK_MS = 31 * 24 * 3600 * 1000  # a BSD time may be at most this far after its receive time


# The last BSD time worked out, with what it was worked out from: a sender's messages come in bursts of one
# second, and the frames of one read share their receive time. One tuple, rebound whole (readers in other
# threads see an old pair or a new one, never half of each).
_LAST: tuple[tuple[str, int, int | None, tzinfo] | None, int] = (None, 0)


def bsd_ms(match: re.Match[str], received_ms: int, year_hint: int | None, tz: tzinfo) -> int:
    """A BSD time's epoch ms: the year given, `year_hint`, or the latest year that puts it no more than
    `_FUTURE_SLACK_MS` after `received_ms`. UTC and fixed offsets by arithmetic over cached days; other zones
    (daylight saving time) and anything invalid through `datetime` (which words the errors). The same stamp
    with the same receive time, hint and zone as the call before gives its answer again."""
    global _LAST  # noqa: PLW0603 - the one-entry memo above
    key = (match.group("stamp"), received_ms, year_hint, tz)
    last = _LAST
    if last[0] == key:
        return last[1]
    ms = _bsd_ms_fixed(match, received_ms, year_hint, tz) if type(tz) is timezone else None
    if ms is None:
        ms = _bsd_ms_zoned(match, received_ms, year_hint, tz)
    _LAST = (key, ms)
    return ms


def _bsd_ms_fixed(match: re.Match[str], received_ms: int, year_hint: int | None, tz: timezone) -> int | None:
    """`_bsd_ms_zoned` for a fixed-offset zone, or None where it would raise or its figures are out of range."""
    mon, day_text, hour_text, minute_text, second_text, frac, given = match.group(
        "mon", "day", "h", "m", "s", "frac", "year")
    month = _MONTHS.get(mon.lower())
    day, hour, minute, second = int(day_text), int(hour_text), int(minute_text), int(second_text)
    if month is None or hour > 23 or minute > 59 or second > 59:
        return None
    offset_us = 0 if tz is UTC else tz.utcoffset(None) // _ONE_US
    clock_us = ((hour * 60 + minute) * 60 + second) * 1_000_000 + _micro(frac) - offset_us
    year = int(given) if given is not None else year_hint
    if year is not None:
        days = _epoch_day(year, month, day)
        return None if days is None else (days * _DAY_US + clock_us) // 1000
    if not 0 <= received_ms <= _MAX_RECEIVED_MS:
        return None
    limit = received_ms + _FUTURE_SLACK_MS
    for days in _candidate_days(_year_of((received_ms * 1000 + offset_us) // _DAY_US), month, day):
        ms = (days * _DAY_US + clock_us) // 1000
        if ms <= limit:
            return ms
    return None


@lru_cache(maxsize=_DAYS_CACHE)


def _candidate_days(received_year: int, month: int, day: int) -> tuple[int, ...]:
    """The date in the years a BSD time may be in, latest first: next year (a January line received on
    31 December), then back to eight years before (Feb 29); years without the date left out."""
    found = (_epoch_day(year, month, day) for year in range(received_year + 1, received_year - 9, -1))
    return tuple(days for days in found if days is not None)


@lru_cache(maxsize=_DAYS_CACHE)


def _epoch_day(year: int, month: int, day: int) -> int | None:
    """Days from 1970-01-01 to the date; None for no such date."""
    try:
        return date(year, month, day).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        return None


@lru_cache(maxsize=64)


def _year_of(epoch_day: int) -> int:
    """The calendar year of a day (days from 1970-01-01)."""
    return (_EPOCH + timedelta(days=epoch_day)).year


def _bsd_ms_zoned(match: re.Match[str], received_ms: int, year_hint: int | None, tz: tzinfo) -> int:
    month = _MONTHS.get(match.group("mon").lower())
    stamp = match.group("stamp")
    if month is None:
        raise SyslogParseError(f"invalid month {match.group('mon')!r} in timestamp {stamp!r}")
    day, hour, minute, second = (int(match.group(k)) for k in ("day", "h", "m", "s"))
    micro = _micro(match.group("frac"))

    def at(year: int) -> int:
        try:
            return _to_ms(datetime(year, month, day, hour, minute, second, micro, tzinfo=tz))
        except ValueError as exc:
            raise SyslogParseError(f"invalid timestamp {stamp!r}: {exc}") from None

    given = match.group("year")
    if given is not None:
        return at(int(given))
    if year_hint is not None:
        return at(year_hint)
    limit = received_ms + _FUTURE_SLACK_MS
    received_year = datetime.fromtimestamp(received_ms / 1000, tz).year
    error: SyslogParseError | None = None
    # Next year first (a January line received on 31 December), then back to eight years before (Feb 29).
    for year in range(received_year + 1, received_year - 9, -1):
        try:
            ms = at(year)
        except SyslogParseError as exc:  # Feb 29 outside a leap year: an earlier year may have it
            error = error or exc
            continue
        if ms <= limit:
            return ms
    raise error or SyslogParseError(f"timestamp {stamp!r} fits no year before the receive time")


def iso_ms(match: re.Match[str], tz: tzinfo) -> int:
    zone_text = match.group("zone")
    zone: tzinfo = tz
    if zone_text == "Z":
        zone = UTC
    elif zone_text is not None:
        hours, minutes = int(zone_text[1:3]), int(zone_text[4:6])
        if hours > 23 or minutes > 59:
            raise SyslogParseError(f"invalid time zone offset {zone_text!r} in {match.group(0)!r}")
        offset = timedelta(hours=hours, minutes=minutes)
        zone = timezone(-offset if zone_text[0] == "-" else offset)
    year, month, day, hour, minute, second = map(int, match.group("Y", "M", "D", "h", "m", "s"))
    micro = _micro(match.group("frac"))
    if type(zone) is timezone and hour <= 23 and minute <= 59 and second <= 59:
        days = _epoch_day(year, month, day)
        if days is not None:
            clock_us = ((hour * 60 + minute) * 60 + second) * 1_000_000 + micro - zone.utcoffset(None) // _ONE_US
            return (days * _DAY_US + clock_us) // 1000
    try:
        moment = datetime(year, month, day, hour, minute, second, micro, tzinfo=zone)
    except ValueError as exc:
        raise SyslogParseError(f"invalid timestamp {match.group(0)!r}: {exc}") from None
    return _to_ms(moment)


def _micro(frac: str | None) -> int:
    return int(frac[:6].ljust(6, "0")) if frac else 0


def _to_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // _ONE_MS
