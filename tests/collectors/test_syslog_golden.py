"""Syslog to `Event` is pinned: the network intake and the file reader give, for a varied corpus
(`syslog_golden`), the events and dead letters of the golden file, made with the implementation that built the
ECS document first and flattened it. Ids, times, raw lines, the document (key order included) and the flat fields
(`flat_fields` of the document, key order included) must not move. Fast paths (fixed-offset time arithmetic, the
flat field layout) are checked against the long way over random input too."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any

import orjson
import pytest

from collectors import linux_auth
from collectors.generic import flat_fields
from collectors.syslog_parse import SyslogParseError, parse_syslog
from correlator.model import Event
from tests.collectors import syslog_golden
from tests.conftest import _missing

GOLDEN = syslog_golden.load_golden()


def _describe(record: dict[str, Any]) -> str:
    case = record["case"]
    if case["kind"] == "frames":
        return "network frames"
    return f"file in {case['tz']}, mtime {case['mtime_ms']}, year {case['year']}"


def _differences(record: dict[str, Any], got: list[Event | Any]) -> list[str]:
    expected = record["outcomes"]
    if len(got) != len(expected):
        return [f"{len(got)} outcomes, golden has {len(expected)}"]
    problems = []
    for want, item in zip(expected, got, strict=True):
        have = syslog_golden.outcome(item)
        # Byte-equal JSON: values and key order of the document.
        if orjson.dumps(have) != orjson.dumps(want):
            problems.append(f"{want.get('raw')!r}:\n  golden {orjson.dumps(want).decode()}\n"
                            f"  now    {orjson.dumps(have).decode()}")
            continue
        if isinstance(item, Event):
            fields = flat_fields(want["ecs"])
            if list(item.fields.items()) != list(fields.items()):
                problems.append(f"{want['raw']!r}: fields {item.fields} != flattened document {fields}")
    return problems


@pytest.mark.parametrize("record", GOLDEN, ids=[f"{i}-{_describe(r)}" for i, r in enumerate(GOLDEN)])
def test_readers_give_the_golden_events(record: dict[str, Any], tmp_path: Path) -> None:
    got = syslog_golden.read_case(record["case"], tmp_path)
    problems = _differences(record, got)
    assert not problems, f"{len(problems)} differences from the golden file:\n" + "\n".join(problems[:20])


def test_the_corpus_is_the_golden_corpus() -> None:
    """The golden file was made from this corpus (else regenerate it: see `syslog_golden`)."""
    if not syslog_golden.OTRF_SYSLOG.is_dir():
        _missing(f"{syslog_golden.OTRF_SYSLOG} is missing: the corpus lacks its lines (the golden file has them)")
    assert [record["case"] for record in GOLDEN] == orjson.loads(orjson.dumps(syslog_golden.corpus()))


def test_the_golden_file_is_varied() -> None:
    outcomes = [o for record in GOLDEN for o in record["outcomes"]]
    datasets = {o["ecs"]["event"]["dataset"] for o in outcomes if "ecs" in o}
    actions = {o["ecs"]["event"].get("action") for o in outcomes if "ecs" in o}
    assert datasets == {"system.auth", "system.syslog"}
    assert {"ssh_login", "ssh_disconnect", "ssh_dropped_connection", "sudo", "su", "session_opened",
            "session_closed", "pam_authentication_failure", "user_created", "group_created", "user_added_to_group",
            "user_removed_from_group", "user_deleted", "group_deleted", "password_changed", "user_changed"} <= actions
    assert sum(1 for o in outcomes if "rejected" in o) >= 30
    assert any("structured_data" in o["ecs"].get("log", {}).get("syslog", {}) for o in outcomes if "ecs" in o)


def test_events_defer_the_document_and_build_it_once() -> None:
    line = "<38>Nov 24 05:00:00 web01 sshd[7]: Failed password for root from 198.51.100.23 port 40022 ssh2"
    frame = syslog_golden.SyslogFrame(line.encode(), peer="127.0.0.1", transport="tcp", received_ms=1_795_000_000_000)
    event = syslog_golden.frame_to_event(frame)
    assert isinstance(event, Event)
    assert event.ecs_deferred
    assert event.native["source.ip"] == "198.51.100.23"
    assert event.host_name == "web01"
    assert event.ecs_deferred  # neither the rules' fields nor the host name built the document
    doc = event.ecs
    assert not event.ecs_deferred
    assert event.ecs is doc
    assert event.fields == event.native
    assert doc["source"] == {"ip": "198.51.100.23", "port": 40022}


# -- fast paths against the long way ---------------------------------------------------------------------------

ZONES: list[tzinfo] = [UTC, timezone(timedelta(hours=7)), timezone(-timedelta(hours=9, minutes=30)),
                       timezone(timedelta(hours=5, minutes=45, seconds=30, microseconds=7))]


def _pick(rng: random.Random, valid: range, edges: tuple[int, ...], invalid: tuple[int, ...]) -> int:
    """Mostly a valid value (often an edge), sometimes an invalid one."""
    roll = rng.random()
    if roll < 0.05:
        return rng.choice(invalid)
    return rng.choice(edges) if roll < 0.4 else rng.randrange(valid.start, valid.stop)


def _bsd_line(rng: random.Random) -> str:
    month = rng.choice(("Jan", "Feb", "Feb", "Mar", "Jun", "Nov", "Dec", "Dec", "jan", "Foo"))
    day = _pick(rng, range(1, 32), (1, 28, 29, 30, 31), (0, 32))
    clock = f"{_pick(rng, range(24), (0, 23), (24, 99)):02d}:{_pick(rng, range(60), (0, 59), (60,)):02d}:" \
            f"{_pick(rng, range(60), (0, 59), (60,)):02d}"
    year = f"{rng.choice((1999, 2024, 2026, 2027, 9999, 0))} " if rng.random() < 0.2 else ""
    frac = f".{rng.randint(0, 10**9 - 1):0{rng.randint(1, 9)}d}"[:10] if rng.random() < 0.3 else ""
    return f"{month} {day:>2} {year}{clock}{frac} web01 app: x"


def _iso_line(rng: random.Random) -> str:
    stamp = f"{rng.choice((1970, 2024, 2026, 2027, 9999, 1))}-{_pick(rng, range(1, 13), (1, 2, 12), (0, 13)):02d}-" \
            f"{_pick(rng, range(1, 32), (1, 28, 29, 30, 31), (0, 32)):02d}T" \
            f"{_pick(rng, range(24), (0, 23), (24,)):02d}:{_pick(rng, range(60), (0, 59), (60,)):02d}:" \
            f"{_pick(rng, range(60), (0, 59), (60,)):02d}"
    if rng.random() < 0.5:
        stamp += f".{rng.randint(0, 999999)}"
    stamp += rng.choice(("", "Z", "Z", "+07:00", "-09:30", "+23:59", "+24:00", "-00:00"))
    return f"<14>1 {stamp} web01 app - - - x" if rng.random() < 0.5 else f"{stamp} web01 app: x"


def _outcome(parse: Callable[[], Any]) -> Any:
    try:
        message = parse()
    except SyslogParseError as exc:
        return ("error", exc.reason)
    except (ValueError, OverflowError, OSError) as exc:
        return ("crash", type(exc).__name__)
    return message.timestamp_ms


@pytest.mark.parametrize("zone", ZONES, ids=str)
def test_fixed_offset_arithmetic_equals_datetime(zone: tzinfo) -> None:
    """UTC and fixed offsets by arithmetic give the time or the error `datetime` gives (the long way: the same
    offset in a zone class of its own)."""
    rng = random.Random(7)
    lines = [_bsd_line(rng) for _ in range(3000)] + [_iso_line(rng) for _ in range(1500)]
    received = [0, 1, 1_798_761_599_000, 1_798_761_600_000, 1_830_297_600_000, 1_795_000_000_000, 253_402_000_000_000,
                *(rng.randint(0, 2_000_000_000_000) for _ in range(20))]
    for at in received[2:6]:  # exactly the latest time a BSD line may have, and a second later
        limit = datetime.fromtimestamp(at // 1000 + 31 * 86400, zone)
        lines += [f"{limit:%b %e %H:%M:%S} web01 app: x", f"{limit + timedelta(seconds=1):%b %e %H:%M:%S} web01 app: x"]
    long_way = _LongWay(zone)
    mismatches = []
    for index, line in enumerate(lines):
        at = received[index % len(received)] if index < 4500 else received[2 + (index - 4500) // 2]
        hint = 2024 if index % 11 == 0 else None
        fast = _outcome(lambda: parse_syslog(line, received_ms=at, year_hint=hint, tz=zone))  # noqa: B023
        slow = _outcome(lambda: parse_syslog(line, received_ms=at, year_hint=hint, tz=long_way))  # noqa: B023
        if fast != slow:
            mismatches.append(f"{line!r} at {at} (hint {hint}): {fast} != {slow}")
    assert not mismatches, "\n".join(mismatches[:20])


class _LongWay(tzinfo):
    """A fixed offset that is not a `datetime.timezone`: parsed the long way."""

    def __init__(self, zone: tzinfo) -> None:
        self.zone = zone

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return self.zone.utcoffset(dt)

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, dt: datetime | None) -> str | None:
        return "long-way"

    def fromutc(self, dt: datetime) -> datetime:
        offset = self.zone.utcoffset(None)
        assert offset is not None
        return (dt + offset).replace(tzinfo=self)


def test_flat_fields_equal_the_flattened_document() -> None:
    """`linux_auth.to_fields` against `flat_fields(to_ecs(...))` (values and order) for every golden input, and
    odd auth field names that nest under or replace syslog fields (the fallback)."""
    lines = [o["raw"] for record in syslog_golden.load_golden() for o in record["outcomes"] if "ecs" in o]
    for line in lines:
        message = parse_syslog(line, received_ms=1_795_000_000_000, source_host="192.0.2.1")
        auth = linux_auth.auth_fields(message)
        assert list(linux_auth.to_fields(message, auth).items()) == list(
            flat_fields(linux_auth.ecs_document(message, auth)).items()), line
    message = parse_syslog("<86>Nov 20 10:00:00 web01 sshd[1]: x", received_ms=1_795_000_000_000)
    for auth in ({"event.module": "system", "event.dataset": "system.auth", "event.module.x": 1, "user.name": "a"},
                 {"event.kind": "event", "process.name": "other", "message": "m", "user": "b", "user.name": "a"},
                 {"log.syslog.appname": "x", "host": "h", "event": "e"},
                 {"user.name": "a", "user": "b", "group.name": "g"}):
        assert list(linux_auth.to_fields(message, auth).items()) == list(
            flat_fields(linux_auth.ecs_document(message, auth)).items()), auth


# The pieces of the RFC 3164 header as they were matched one after the other, before one pattern took them.
_OLD_TAG = re.compile(r"(?P<name>[^\s\[\]:]+)(?:\[(?P<pid>[^\]\s]*)\])?: *")
_OLD_TAG_FIRST = re.compile(r"[^\s\[\]:]+(?:\[[^\]\s]*\])?:(?: |$)")
_OLD_HOSTNAME = re.compile(r"(?P<host>\S+)(?: +|$)")


def _old_host_and_tag(text: str, pos: int) -> tuple[str | None, str | None, str | None, str]:
    while pos < len(text) and text[pos] == " ":
        pos += 1
    hostname = None
    if _OLD_TAG_FIRST.match(text, pos) is None:
        host = _OLD_HOSTNAME.match(text, pos)
        if host is not None:
            hostname, pos = host.group("host"), host.end()
    appname = procid = None
    tag = _OLD_TAG.match(text, pos)
    if tag is not None:
        appname, procid, pos = tag.group("name"), tag.group("pid"), tag.end()
    return hostname, appname, procid or None, text[pos:]


@pytest.mark.parametrize("stamp", ["Nov 20 10:00:00", "Nov 20 2026 10:00:00.5", "2026-11-20T10:00:00Z"])
def test_host_and_tag_as_matched_one_after_the_other(stamp: str) -> None:
    rng = random.Random(11)
    pieces = ("web01", "2001:db8::7", "::1", "sshd", "sshd[22]", "sshd[]", "sshd[2 2]", "a:b", "x:", "sshd[1]:",
              "sudo:", "(sd-pam)[3]:", "postfix/smtpd[12]:", "[", "]", ":", "::", "\t", "tab\tbed", "-", "h.example",
              "msg", "a=b", "")
    parsed = 0
    for _ in range(4000):
        rest = "".join(rng.choice(pieces) + rng.choice((" ", "  ", "", ":", ": ")) for _ in range(rng.randint(0, 4)))
        line = f"{stamp} {rest}"
        try:
            message = parse_syslog(line, received_ms=1_795_000_000_000)
        except SyslogParseError:
            continue
        parsed += 1
        assert (message.hostname, message.appname, message.procid, message.message) == \
            _old_host_and_tag(line, len(stamp) + 1), line
    assert parsed > 3000
