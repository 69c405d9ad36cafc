"""Syslog files: sniffing, one Event per line (ids, origins, years from the file's mtime), Rejected for bad lines,
and auth.log events routed to the Linux Sigma rules and correlated as a brute force."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from collectors.syslog_file import FORMAT, REPEAT_WINDOW, is_syslog_name, read_file, sniff
from correlator.correlation import CorrelationEngine, CorrelationSet, RuleMatch, load_correlation_paths
from correlator.model import Alert, Event, EventOrigin, Rejected, event_id_for
from correlator.sigma.engine import SigmaEngine
from correlator.sigma.loader import load_rules
from correlator.sigma.sources import load_sources

RULES = Path(__file__).resolve().parents[2] / "rules" / "sigma"
LNX_SSHD_FAILURE = "cb380351-fb28-4c9e-a480-de7d9d6b82da"  # province_lnx_sshd_failure
LNX_SSHD_SUCCESS = "b5afd9be-5135-4459-b667-abf29b374d4c"  # province_lnx_sshd_success

WriteFile = Callable[..., Path]

AUTH_LOG = """\
Nov 20 01:00:00 congdvc-web01 sshd[4001]: Invalid user oracle from 198.51.100.23 port 40010
Nov 20 01:00:02 congdvc-web01 sshd[4001]: Failed password for invalid user oracle from 198.51.100.23 port 40010 ssh2
Nov 20 01:00:05 congdvc-web01 sudo:   deploy : TTY=pts/0 ; PWD=/home/deploy ; USER=root ; COMMAND=/usr/bin/id
Nov 20 01:00:07 congdvc-web01 CRON[4100]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)
Nov 20 01:00:09 congdvc-web01 systemd-logind[612]: New session 12 of user deploy.
"""


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp()) * 1000


@pytest.fixture
def write(tmp_path: Path) -> WriteFile:
    def _write(name: str, content: str | bytes, *, mtime_ms: int = ms(2026, 11, 21)) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        os.utime(path, ns=(mtime_ms * 1_000_000, mtime_ms * 1_000_000))
        return path

    return _write


def split(items: list[Event | Rejected]) -> tuple[list[Event], list[Rejected]]:
    return [i for i in items if isinstance(i, Event)], [i for i in items if isinstance(i, Rejected)]


# ------------------------------------------------------------------------------------------------------ sniff


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        pytest.param(AUTH_LOG.encode(), True, id="auth-log"),
        pytest.param(b"\xef\xbb\xbf" + AUTH_LOG.encode(), True, id="auth-log-with-bom"),
        pytest.param(b'<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [a@1 b="c"] msg\n',
                     True, id="rfc5424"),
        pytest.param(b"2026-11-20T01:00:00.123456+07:00 web01 sshd[7]: Accepted publickey for a\n", True,
                     id="rsyslog-high-precision"),
        pytest.param(b"Feb 29 10:00:00 web01 kernel: leap day\n", True, id="feb-29"),
        pytest.param(AUTH_LOG.encode() + b"Nov 20 01:0", True, id="cut-last-line-not-judged"),
        pytest.param(b"Nov 20 01:00:00 web01 a: x\nnot syslog\nNov 20 01:00:01 web01 a: y\n", True,
                     id="majority"),
        pytest.param(b"Nov 20 01:00:00 web01 a: x\nnot syslog\n", False, id="half-is-not-most"),
        pytest.param(b'{"@timestamp": "2026-11-20T01:00:00Z", "message": "x"}\n', False, id="ndjson"),
        pytest.param(b"just some text\nand more\n", False, id="text"),
        pytest.param(b"ElfFile\x00" + b"\x00" * 64, False, id="evtx"),
        pytest.param(b"", False, id="empty"),
        pytest.param(b"\n \n", False, id="blank"),
    ],
)
def test_sniff(head: bytes, expected: bool) -> None:
    assert sniff(head) is expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [("auth.log", True), ("auth.log.1", True), ("secure", True), ("secure-20261120", True), ("messages", True),
     ("syslog.3", True), ("kern.log", True), ("auth.log.2.gz", False), ("nginx.log", False), ("a.json", False)],
)
def test_is_syslog_name(name: str, expected: bool) -> None:
    assert is_syslog_name(name) is expected


# ----------------------------------------------------------------------------------------------------- reading


def test_each_line_is_an_event_with_its_origin_and_ecs(write: WriteFile) -> None:
    path = write("auth.log", AUTH_LOG)
    events, rejected = split(list(read_file(path)))
    assert rejected == []
    lines = AUTH_LOG.splitlines()
    assert [e.raw for e in events] == lines
    assert [e.id for e in events] == [event_id_for(line, e.timestamp_ms) for line, e in zip(lines, events, strict=True)]
    assert [e.origin for e in events] == [EventOrigin(path=str(path), offset=n, format="syslog") for n in range(1, 6)]
    assert FORMAT == "syslog"
    assert [e.timestamp_ms for e in events] == [ms(2026, 11, 20, 1, 0, s) for s in (0, 2, 5, 7, 9)]
    assert [e.fields["event.dataset"] for e in events] == ["system.auth"] * 5
    assert [e.host_name for e in events] == ["congdvc-web01"] * 5
    failed = events[1]
    assert failed.fields["source.ip"] == "198.51.100.23"
    assert failed.fields["user.name"] == "oracle"
    assert failed.fields["process.name"] == "sshd"
    assert failed.fields["process.pid"] == 4001
    assert failed.ecs["event"]["outcome"] == "failure"
    assert events[2].fields["system.auth.sudo.command"] == "/usr/bin/id"
    assert failed.to_document()["log"] == {"syslog": {"hostname": "congdvc-web01", "appname": "sshd",
                                                      "procid": "4001"},
                                           "file": {"path": str(path)}, "offset": 2}


def test_a_corrupt_line_is_rejected_and_the_rest_read(write: WriteFile) -> None:
    lines = AUTH_LOG.splitlines()
    corrupt = "\x00\x00\x00\x00 rotated garbage"
    content = "\n".join([*lines[:2], corrupt, "<999>Nov 20 01:00:03 congdvc-web01 sshd[1]: x", *lines[2:]]) + "\n"
    path = write("auth.log", content)
    items = list(read_file(path))
    events, rejected = split(items)
    assert [e.origin.offset for e in events] == [1, 2, 5, 6, 7]
    assert [e.raw for e in events] == lines
    assert rejected == [
        Rejected("line 3: no syslog timestamp ('Mmm dd hh:mm:ss' or RFC 3339) at the start of "
                 "'\\x00\\x00\\x00\\x00 rotated garbage'",
                 EventOrigin(path=str(path), offset=3, format="syslog"), corrupt),
        Rejected("line 4: invalid PRI <999>: 999 is out of range 0-191",
                 EventOrigin(path=str(path), offset=4, format="syslog"),
                 "<999>Nov 20 01:00:03 congdvc-web01 sshd[1]: x"),
    ]
    assert [type(i).__name__ for i in items] == ["Event", "Event", "Rejected", "Rejected", "Event", "Event", "Event"]


def test_december_lines_read_in_january_are_last_years(write: WriteFile) -> None:
    content = ("Dec 31 23:59:58 web01 sshd[1]: Failed password for root from 198.51.100.23 port 1 ssh2\n"
               "Jan  1 00:00:03 web01 sshd[1]: Failed password for root from 198.51.100.23 port 1 ssh2\n")
    events, _ = split(list(read_file(write("auth.log", content, mtime_ms=ms(2027, 1, 2)))))
    assert [e.timestamp_ms for e in events] == [ms(2026, 12, 31, 23, 59, 58), ms(2027, 1, 1, 0, 0, 3)]
    assert [e.ecs["@timestamp"] for e in events] == ["2026-12-31T23:59:58.000Z", "2027-01-01T00:00:03.000Z"]
    events, _ = split(list(read_file(write("auth.log", content, mtime_ms=ms(2027, 1, 2)), year=2019)))
    assert [e.timestamp_ms for e in events] == [ms(2019, 12, 31, 23, 59, 58), ms(2019, 1, 1, 0, 0, 3)]


def test_identical_lines_get_distinct_ids_that_survive_rotation(write: WriteFile) -> None:
    line = "Nov 20 01:00:02 congdvc-web01 sshd[4001]: Failed password for root from 198.51.100.23 port 40010 ssh2"
    other = "Nov 20 01:00:03 congdvc-web01 sshd[4001]: Connection closed by 198.51.100.23 port 40010 [preauth]"
    content = f"{line}\n{line}\n{other}\n{line}\n"
    events = [e for e in read_file(write("auth.log", content)) if isinstance(e, Event)]
    first = [e.id for e in events]
    at = {e.raw: e.timestamp_ms for e in events}
    assert first == [event_id_for(line, at[line]), event_id_for(f"{line}\n#1", at[line]),
                     event_id_for(other, at[other]), event_id_for(f"{line}\n#2", at[line])]
    assert len(set(first)) == 4
    rotated = [e.id for e in read_file(write("auth.log.1", content)) if isinstance(e, Event)]
    assert rotated == first
    grown = [e.id for e in read_file(write("auth.log", content + other + "\n")) if isinstance(e, Event)]
    assert grown[:4] == first
    assert grown[4] == event_id_for(f"{other}\n#1", at[other])


def test_repeats_are_counted_within_a_bounded_window(write: WriteFile) -> None:
    line = "Nov 20 01:00:02 web01 a: same"
    fillers = [f"Nov 20 01:00:02 web01 a: filler {i}" for i in range(REPEAT_WINDOW)]
    events = [e for e in read_file(write("syslog", "\n".join([line, *fillers, line]) + "\n")) if isinstance(e, Event)]
    ids = [e.id for e in events]
    assert ids[0] == ids[-1] == event_id_for(line, events[0].timestamp_ms)  # forgotten after the window


def test_blank_lines_crlf_bom_and_invalid_utf8(write: WriteFile) -> None:
    content = (b"\xef\xbb\xbfNov 20 01:00:00 web01 sshd[1]: Invalid user \xff\xfe from 198.51.100.23 port 1\r\n"
               b"\r\n   \n"
               b"Nov 20 01:00:01 web01 sshd[1]: Connection closed by 198.51.100.23 port 1 [preauth]\r\n")
    events, rejected = split(list(read_file(write("auth.log", content))))
    assert rejected == []
    assert [e.origin.offset for e in events] == [1, 4]
    assert events[0].raw == "Nov 20 01:00:00 web01 sshd[1]: Invalid user \\xff\\xfe from 198.51.100.23 port 1"
    assert events[0].fields["user.name"] == "\\xff\\xfe"
    assert events[0].fields["event.outcome"] == "failure"
    assert events[1].raw.endswith("[preauth]")


def test_an_unreadable_file_is_one_rejected(tmp_path: Path) -> None:
    path = tmp_path / "missing.log"
    assert list(read_file(path)) == [
        Rejected("cannot read file: No such file or directory", EventOrigin(path=str(path), format="syslog"))]


def test_an_empty_file_yields_nothing(write: WriteFile) -> None:
    assert list(read_file(write("auth.log", ""))) == []


# ------------------------------------------------------------------------------------------- rules and routing

BRUTE_FORCE_LOG = "".join(
    f"Nov 20 01:{minute:02d}:{second:02d} congdvc-web01 sshd[{5000 + minute}]: {text}\n"
    for minute, second, text in [
        *((i // 2, (i % 2) * 30,
           f"Failed password for {'invalid user ' if i % 3 == 0 else ''}{'root' if i % 2 else 'admin'} "
           f"from 198.51.100.23 port {41000 + i} ssh2") for i in range(10)),
        (4, 50, "Invalid user ftpuser from 198.51.100.23 port 41020"),
        (5, 0, "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= "
               "rhost=198.51.100.23  user=root"),
        (5, 10, "Connection closed by authenticating user root 198.51.100.23 port 41009 [preauth]"),
        (6, 0, "Accepted password for root from 198.51.100.23 port 41030 ssh2"),
        (6, 1, "pam_unix(sshd:session): session opened for user root(uid=0) by (uid=0)"),
    ]
)


@pytest.fixture(scope="module")
def engine() -> SigmaEngine:
    sources = load_sources()
    ruleset = load_rules([RULES / "correlation"], sources=sources)
    assert ruleset.errors == [], [str(e) for e in ruleset.errors]
    return SigmaEngine(ruleset.rules, sources)


def test_auth_events_route_to_the_linux_auth_log_source(engine: SigmaEngine, write: WriteFile) -> None:
    events, _ = split(list(read_file(write("auth.log", BRUTE_FORCE_LOG + AUTH_LOG))))
    for event in events:
        assert event.fields["event.dataset"] == "system.auth"
        assert ("ls", "linux", None, "auth") in (engine.route(event) or ()), event.raw
    kernel = next(read_file(write("syslog", "Nov 20 01:00:00 web01 kernel: eth0 link up\n")))
    assert isinstance(kernel, Event)
    assert ("ls", "linux", None, "syslog") in (engine.route(kernel) or ())


def test_sshd_failure_rule_matches_each_failed_line(engine: SigmaEngine, write: WriteFile) -> None:
    events, rejected = split(list(read_file(write("auth.log", BRUTE_FORCE_LOG))))
    assert rejected == []
    hits = {event.origin.offset: {a.rule.id for a in engine.match(event)} for event in events}
    failures = [n for n, ids in hits.items() if LNX_SSHD_FAILURE in ids]
    successes = [n for n, ids in hits.items() if LNX_SSHD_SUCCESS in ids]
    assert failures == list(range(1, 12))  # ten "Failed password" lines and one "Invalid user"
    assert successes == [14]


def test_brute_force_log_raises_the_brute_force_correlations(engine: SigmaEngine, write: WriteFile) -> None:
    correlations: CorrelationSet = load_correlation_paths([RULES])
    assert correlations.errors == ()
    names = {rule.id: rule.name for rule in correlations.rules}
    correlator = CorrelationEngine(dataclasses.replace(correlations, withheld=frozenset()))
    events, _ = split(list(read_file(write("auth.log", BRUTE_FORCE_LOG))))
    alerts: list[Alert] = []
    for event in sorted(events, key=lambda e: e.timestamp_ms):
        for alert in engine.match(event):
            alerts.extend(correlator.process(RuleMatch.from_event(alert.rule.id, event)))
    alerts.extend(correlator.flush())
    fired = {names[a.rule.id] for a in alerts if a.rule.id in names}
    assert {"province_brute_force", "province_brute_force_step", "province_brute_force_success"} <= fired
    assert "province_password_spraying" not in fired  # three accounts only
    brute_force = next(a for a in alerts if names.get(a.rule.id) == "province_brute_force")
    assert brute_force.host_name == "congdvc-web01"
    assert brute_force.extra["correlation"]["group"] == {"source.ip": "198.51.100.23"}
    assert brute_force.extra["correlation"]["events"] == [e.id for e in events[:10]]
