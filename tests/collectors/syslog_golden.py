"""A varied syslog corpus and what the readers make of it, pinned in `data/syslog_events.golden.jsonl`.

The corpus: RFC 3164 (with and without PRI, HOSTNAME, TAG, year, fractions, rsyslog's RFC 3339 time) and RFC 5424
(structured data with escapes, repeats, empty and dotted names, BOM), every Linux auth pattern (sshd, sudo, su,
PAM, account changes, repeats), non-auth programs, malformed lines, BSD times all over the calendar (31 Dec /
1 Jan, 29 Feb), the repository's samples/linux events and, when ../shared/data holds them, the OTRF Log4Shell
syslog rows, rebuilt as syslog lines. It goes through the network intake (`frame_to_event`) and the file reader
(`syslog_file.read_file`, in UTC, a fixed offset and zones with daylight saving time).

The golden file keeps, per input, the event (id, timestamp, raw, origin, the ECS document with its key order) or
the dead letter. `Event.fields` is checked against `flat_fields(ecs)`, which is what it was defined as. It was
first made with the implementation that built the document and flattened it (git 2169810), before the readers
built the flat fields directly and the document on demand.

    .venv/bin/python -m tests.collectors.syslog_golden      # regenerate; read `git diff --stat` before committing
"""

from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from collectors import syslog_file
from collectors.syslog_server import SyslogFrame
from correlator.live.intake import frame_to_event
from correlator.model import Event, Rejected

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "data" / "syslog_events.golden.jsonl"
OTRF_SYSLOG = ROOT.parent / "shared" / "data" / "otrf" / "Log4Shell"
SAMPLES = ROOT / "samples" / "linux"

# `tag: text` bodies; the corpus puts headers in front of them.
BODIES: tuple[str, ...] = (
    # sshd
    "sshd[2211]: Accepted password for deploy from 10.20.0.8 port 40100 ssh2",
    "sshd[2211]: Accepted publickey for deploy from 10.20.0.8 port 40100 ssh2: ED25519 SHA256:Qz5m0b+7vXg",
    "sshd-session[2211]: Accepted keyboard-interactive/pam for nguyenvana from 2001:db8::15 port 51000 ssh2",
    "sshd-auth[7]: Accepted password for root from 2001:0db8:0000::0015 port 22",
    "sshd[2211]: Failed password for root from 198.51.100.23 port 40022 ssh2",
    "sshd[2211]: Failed password for invalid user oracle from 198.51.100.23 port 40022 ssh2",
    "sshd[2211]: Failed none for invalid user  from 198.51.100.23 port 40022 ssh2",
    "sshd[2211]: Failed password for root from scanner.example port 40022 ssh2",
    "sshd[2211]: Failed password for root from 010.1.2.3 port 40022 ssh2",
    "sshd[2211]: Failed password for admin from 203.0.113.300 port 1 ssh2",
    "sshd[2211]: Invalid user admin test from 198.51.100.23 port 40022",
    "sshd[2211]: Invalid user pi from 198.51.100.23",
    "sshd[2211]: Connection closed by 198.51.100.23 port 40022 [preauth]",
    "sshd[2211]: Connection closed by invalid user admin 198.51.100.23 port 40022 [preauth]",
    "sshd[2211]: Connection closed by authenticating user root 198.51.100.23 port 40022 [preauth]",
    "sshd[2211]: Connection reset by 198.51.100.23 port 40022",
    "sshd[2211]: Disconnected from user deploy 10.20.0.8 port 40100",
    "sshd[2211]: Disconnected from invalid user oracle 198.51.100.23 port 40022 [preauth]",
    "sshd[2211]: Received disconnect from 198.51.100.23 port 40022:11: Bye Bye [preauth]",
    "sshd[2211]: Received disconnect from 198.51.100.23:11: disconnected by user",
    "sshd[2211]: Did not receive identification string from 203.0.113.50 port 61000",
    "sshd[2211]: Did not receive identification string from 203.0.113.50",
    "sshd[2211]: message repeated 3 times: [ Failed password for root from 198.51.100.23 port 40022 ssh2]",
    "sshd[2211]: message repeated 2 times: [Failed password for root from 198.51.100.23 port 40022 ssh2 ]",
    "sshd[2211]: PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=198.51.100.23  "
    "user=root",
    "sshd[2211]: PAM 1 more authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=bad.example",
    "sshd[2211]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= "
    "rhost=198.51.100.23  user=root",
    "sshd[2211]: pam_unix(sshd:session): session opened for user deploy(uid=1001) by (uid=0)",
    "sshd[2211]: pam_unix(sshd:session): session closed for user deploy",
    "sshd[2211]: Server listening on 0.0.0.0 port 22.",
    "sshd[2211]: error: kex_exchange_identification: Connection closed by remote host",
    # sudo
    "sudo:   nguyenvana : TTY=pts/0 ; PWD=/home/nguyenvana ; USER=root ; COMMAND=/usr/bin/tail -n 5 /a ; b",
    "sudo: deploy : TTY=pts/1 ; PWD=/srv ; USER=postgres ; ENV=PGDATA=/x ; COMMAND=/usr/bin/psql",
    "sudo: ketoan1 : command not allowed ; TTY=pts/2 ; PWD=/home/ketoan1 ; USER=root ; COMMAND=/bin/bash",
    "sudo: ketoan1 : 3 incorrect password attempts ; TTY=pts/2 ; PWD=/home/ketoan1 ; USER=root ; "
    "COMMAND=/usr/bin/id",
    "sudo: deploy : COMMAND=/usr/bin/id",
    "sudo: deploy : TTY=unknown ; PWD=/ ; USER=root ;",
    "sudo[88]: pam_unix(sudo:auth): authentication failure; logname=deploy uid=1001 euid=0 tty=/dev/pts/0 "
    "ruser=deploy rhost=  user=deploy",
    "sudo: pam_unix(sudo:session): session opened for user root(uid=0) by deploy(uid=1001)",
    "sudo: pam_unix(sudo:session): session closed for user root",
    "sudo: unable to resolve host web01: Name or service not known",
    # su
    "su[3100]: Successful su for root by nguyenvana",
    "su[3100]: FAILED su for root by ketoan1",
    "su[3100]: - pts/3 ketoan1:root",
    "su[3100]: + pts/3 ketoan1:root",
    "su: 'su root' failed for lonvick on /dev/pts/8",
    "su: 'su postgres' succeeded for deploy on /dev/pts/1",
    "su[3100]: pam_unix(su:session): session opened for user root by nguyenvana(uid=1000)",
    "su[3100]: pam_unix(su:session): session closed for user root",
    "su[3100]: (to root) deploy on pts/0",
    # PAM from other programs
    "login[900]: pam_unix(login:session): session opened for user root(uid=0) by LOGIN(uid=0)",
    "systemd-logind[500]: New session 12 of user deploy.",
    "polkitd[600]: pam_unix(polkit-1:session): session opened for user root by (uid=1000)",
    "CRON[4000]: pam_unix(cron:session): session opened for user root(uid=0) by root(uid=0)",
    "CRON[4000]: pam_unix(cron:session): session closed for user root",
    "passwd[77]: pam_unix(passwd:chauthtok): password changed for deploy",
    "chpasswd[78]: pam_unix(chpasswd:chauthtok): password changed for svc",
    # account changes
    "useradd[5000]: new user: name=svc1, UID=1002, GID=1002, home=/home/svc1, shell=/bin/bash, from=/dev/pts/0",
    "useradd[5000]: new user: name=svc2, UID=1003, GID=1003, home=/home/svc2, shell=/bin/sh",
    "useradd[5000]: new user: name=svc3, UID=1004, GID=1004",
    "useradd[5000]: new group: name=svc1, GID=1002",
    "useradd[5000]: add 'svc1' to group 'sudo'",
    "useradd[5000]: add 'svc1' to shadow group 'sudo'",
    "useradd[5000]: failed adding user 'svc1', data deleted",
    "groupadd[5001]: group added to /etc/group: name=ops, GID=1500",
    "groupadd[5001]: new group: name=ops, GID=1500",
    "usermod[5002]: add 'deploy' to group 'docker'",
    "usermod[5002]: delete 'deploy' from group 'docker'",
    "usermod[5002]: change user 'deploy' shell from '/bin/sh' to '/bin/bash'",
    "usermod[5002]: lock user 'deploy' password",
    "usermod[5002]: unlock user 'deploy' password",
    "gpasswd[5003]: user deploy added by root to group docker",
    "gpasswd[5003]: user deploy removed by root from group docker",
    "userdel[5004]: delete user 'svc1'",
    "userdel[5004]: removed group 'svc1' owned by 'svc1'",
    "groupdel[5005]: group 'ops' removed",
    "groupdel[5005]: group 'ops' removed from /etc/gshadow",
    "passwd[5006]: password for 'deploy' changed by 'root'",
    "passwd[5006]: password changed for deploy",
    "chage[5007]: changed password expiry for deploy",
    "adduser[5008]: Failed to create home directory",
    "deluser[5009]: removing user",
    "newusers[5010]: something odd",
    "groupmod[5011]: group changed in /etc/group (group ops/1500, new name: ops2)",
    # other programs, some on the auth facility
    "CRON[4001]: (root) CMD (/usr/local/bin/backup.sh 12)",
    "cron[4002]: (CRON) INFO (pidfile fd = 3)",
    "kernel: [12345.678901] audit: type=1400 audit(1700000000.123:45): apparmor=\"DENIED\" operation=\"open\"",
    "kernel: [    0.000000] Linux version 6.1.0-18-amd64",
    "systemd[1]: Started Session 42 of User deploy.",
    "postfix/smtpd[12]: connect from unknown[203.0.113.9]",
    "(sd-pam)[3]: pam_unix(systemd-user:session): session opened for user deploy(uid=1001) by (uid=0)",
    "nginx: 10.0.0.1 - - [24/Nov/2026:00:00:00 +0000] \"GET / HTTP/1.1\" 200 612",
    "dhclient[700]: DHCPACK of 10.0.2.15 from 10.0.2.2",
    "app[]: empty pid",
    "app[12: unclosed pid",
    "unix_chkpwd[99]: password check failed for user (root)",
    "pkexec[1234]: deploy: Executing command [USER=root] [TTY=unknown] [CWD=/home/deploy] [COMMAND=/usr/bin/id]",
    "chsh[55]: changed user 'deploy' shell to '/bin/zsh'",
    "tag-only:",
    "-- MARK --",
    "pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)",
    "message repeated 2 times: [ pam_unix(cron:session): session closed for user root]",
    "sshd[1]: Failed password for r\u00f6\u00f6t from 198.51.100.23 port 1 ssh2",
    "sudo: \u00e9l\u00e8ve : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/ls \u00e9",
)

HOSTS: tuple[str | None, ...] = ("web01", "congdvc-web01.example.gov.vn", "2001:db8::7", "10.0.0.5", None)
PRIS: tuple[int | None, ...] = (38, 86, 13, 0, 191, 30, 9, None)

# Whole lines: RFC 5424, odd RFC 3164 shapes, and lines that are no syslog at all.
LINES: tuple[str, ...] = (
    "<34>1 2026-11-20T01:00:00.003Z mymachine.example.com su - ID47 - BOM'su root' failed for lonvick on /dev/pts/8",
    "<165>1 2026-11-20T22:14:15.003+07:00 mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" "
    "eventSource=\"Application\" eventID=\"1011\"] \ufeffAn application event log entry...",
    "<165>1 2026-11-20T22:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.",
    "<165>1 2026-11-20T22:14:15Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" "
    "eventSource=\"Application\" eventID=\"1011\"][examplePriority@32473 class=\"high\"]",
    "<165>1 - - - - - -",
    "<165>1 - - - - - - ",
    "<38>1 2026-11-20T10:00:00Z web01 sshd 2211 - - Failed password for root from 198.51.100.23 port 40022 ssh2",
    "<86>1 2026-11-20T10:00:00.123456Z web01 sudo - - [meta x=\"a\\\"b\" y=\"c\\\\d\" z=\"e\\]f\" w=\"g\\h\"] "
    "deploy : TTY=pts/1 ; PWD=/srv ; USER=root ; COMMAND=/usr/bin/id",
    "<86>1 2026-11-20T10:00:00Z web01 app - - [a k=\"1\" k=\"2\" k=\"3\"][a j=\"4\"][empty][dots x.y=\"1\" x=\"2\"] m",
    "<14>1 2026-11-20T10:00:00Z web01 app - - [origin ip=\"10.0.0.1\" software=\"rsyslogd\"]",
    "<14>1 2026-02-29T10:00:00Z web01 app - - - not a leap year",
    "<14>1 2028-02-29T10:00:00Z web01 app - - - leap year",
    "<14>1 2026-11-20T10:00:00+24:00 web01 app - - - bad zone",
    "<14>1 2026-11-20 web01 app - - - bad time",
    "<14>2 2026-11-20T10:00:00Z web01 app - - - version 2",
    "<14>1 2026-11-20T10:00:00Z web01 app - -",
    "<14>1 2026-11-20T10:00:00Z web01  app - - - two spaces",
    "<14>1 2026-11-20T10:00:00Z web01 app - - [unclosed a=\"1\"",
    "<14>1 2026-11-20T10:00:00Z web01 app - - [x a=\"1\"]trailing",
    "<14>1 2026-11-20T10:00:00Z web01 app - - [x a=1]",
    "<14>1 2026-11-20T10:00:00Z web01 app - - [x a=\"unterminated]",
    "<14>1 2026-11-20T10:00:00Z web01 app - - [x a",
    "<14>1 2026-11-20T10:00:00Z web01 app - - [ a=\"1\"]",
    "<14>1 2026-11-20T10:00:00Z web01 app - - x",
    "<14>Nov 20 10:00:00 web01 app: plain",
    "<14>Nov 20 2026 10:00:00 web01 app: with a year",
    "<14>Nov 20 10:00:00.123456 web01 app: with a fraction",
    "<14>Nov  2 10:00:00 web01 app: two spaces before a one-digit day",
    "<14>nov 20 10:00:00 web01 app: lower-case month",
    "<14>Xyz 20 10:00:00 web01 app: unknown month",
    "<14>Nov 31 10:00:00 web01 app: 31 November",
    "<14>Feb 29 10:00:00 web01 app: 29 February",
    "<14>Feb 30 10:00:00 web01 app: 30 February",
    "<14>Nov 20 24:00:00 web01 app: hour 24",
    "<14>Nov 20 10:60:00 web01 app: minute 60",
    "<14>Nov 20 10:00:60 web01 app: a leap second",
    "<14>Nov 20 10:00:00",
    "<14>Nov 20 10:00:00 ",
    "<14>Nov 20 10:00:00 web01",
    "<14>Nov 20 10:00:00 web01 ",
    "<14>Nov 20 10:00:00 web01 sshd[2211]:",
    "<14>Nov 20 10:00:00web01 app: no space after the time",
    "<14>2026-11-20T01:00:00.123456+07:00 web01 app: rsyslog high precision",
    "<14>2026-11-20T01:00:00Z web01 app: rsyslog UTC",
    "<14>2026-11-20T01:00:00 web01 app: rsyslog without a zone",
    "<14>2026-11-20T01:00:00",
    "<14>2026-11-20Tjunk web01 app: bad",
    "<14>free text without a header",
    "<14>",
    "<192>Nov 20 10:00:00 web01 app: PRI out of range",
    "<1x>Nov 20 10:00:00 web01 app: bad PRI",
    "<>Nov 20 10:00:00 web01 app: empty PRI",
    "Nov 20 10:00:00 web01 app: no PRI",
    "Nov 20 10:00:00 sshd[2211]: Failed password for root from 198.51.100.23 port 40022 ssh2",
    "Nov 20 10:00:00 2001:db8::7 sshd[2211]: Failed password for root from 198.51.100.23 port 40022 ssh2",
    "just some text",
    "",
    "   ",
    "\ufeffNov 20 10:00:00 web01 app: BOM first",
    "Nov 20 10:00:00 web01 app: trailing CR\r",
    "Nov 20 10:00:00 web01 app: trailing NUL\x00",
    "Nov 20 10:00:00 web01 app:    many spaces after the tag",
    "Nov 20 10:00:00   web01    app: many spaces before the host",
)


def _bsd(moment: datetime, *, year: bool = False, frac: str = "") -> str:
    day = f"{moment.day:2d}"
    stamp = f"{moment:%b} {day} "
    if year:
        stamp += f"{moment.year} "
    return stamp + f"{moment:%H:%M:%S}" + (f".{frac}" if frac else "")


def _headers(rng: random.Random, count: int, received: datetime) -> Iterator[tuple[str, str]]:
    """(PRI and time, host part) pairs around `received`: days before and a little after, all formats."""
    for _ in range(count):
        moment = received + timedelta(seconds=rng.randint(-400 * 86400, 40 * 86400))
        kind = rng.random()
        if kind < 0.7:
            stamp = _bsd(moment)
        elif kind < 0.8:
            stamp = _bsd(moment, year=True)
        elif kind < 0.9:
            stamp = _bsd(moment, frac=str(rng.randint(0, 999999999))[: rng.randint(1, 9)])
        else:
            zone = rng.choice(("Z", "+07:00", "-05:30", ""))
            stamp = f"{moment:%Y-%m-%dT%H:%M:%S}" + (f".{rng.randint(0, 999999):06d}" if rng.random() < 0.5 else "")
            stamp += zone
        pri = rng.choice(PRIS)
        host = rng.choice(HOSTS)
        yield (f"<{pri}>" if pri is not None else "") + stamp, f"{host} " if host is not None else ""


def _calendar_lines() -> list[str]:
    """Every month's edges and 29 February, for the year guess around a year boundary."""
    return [f"{month} {day:>2} {clock} web01 app: {month} {day} {clock}"
            for month in ("Jan", "Feb", "Mar", "Dec") for day in ("1", "28", "29", "31")
            for clock in ("00:00:00", "23:59:59")]


def _sample_lines() -> list[str]:
    lines = []
    path = SAMPLES / "auth_sample.json"
    for text in path.read_text().splitlines():
        record = orjson.loads(text)
        moment = datetime.fromisoformat(record["@timestamp"].replace("Z", "+00:00"))
        pid = record.get("process.pid")
        tag = record.get("process.name", "app") + (f"[{pid}]" if pid is not None else "")
        lines.append(f"{_bsd(moment)} {record.get('host.name', 'web01')} {tag}: {record['message']}")
    return lines


def _otrf_lines(limit: int = 60) -> list[str]:
    """Sentinel rows of the OTRF Log4Shell data as the syslog lines they were (bodies cut to keep the file small)."""
    lines: list[str] = []
    for path in sorted(OTRF_SYSLOG.glob("syslog_*/*.json")):
        for text in path.read_text().splitlines()[: limit // 2]:
            row = orjson.loads(text)
            moment = datetime.fromisoformat(row["EventTime"].replace("Z", "+00:00"))
            tag = row.get("ProcessName") or "app"
            if row.get("ProcessID"):
                tag += f"[{row['ProcessID']}]"
            lines.append(f"<14>{_bsd(moment)} {row.get('HostName', 'host')} {tag}: {row['SyslogMessage'][:300]}")
    return lines


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


RECEIVED_TIMES: tuple[datetime, ...] = (
    datetime(2026, 11, 24, 5, 0, 0, tzinfo=UTC),
    datetime(2027, 1, 1, 0, 0, 5, tzinfo=UTC),
    datetime(2026, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
    datetime(2028, 2, 29, 12, 0, 0, tzinfo=UTC),
    datetime(2029, 3, 1, 0, 0, 1, tzinfo=UTC),
)
FILE_ZONES: tuple[tuple[str, tzinfo], ...] = (
    ("UTC", UTC),
    ("+07:00", timezone(timedelta(hours=7))),
    ("-03:30", timezone(-timedelta(hours=3, minutes=30))),
    ("America/New_York", ZoneInfo("America/New_York")),
    ("Asia/Ho_Chi_Minh", ZoneInfo("Asia/Ho_Chi_Minh")),
)


def corpus() -> list[dict[str, Any]]:
    """The inputs: network frames (`kind` "frames") and syslog files (`kind` "file")."""
    rng = random.Random(20261124)
    bodies = [*BODIES, *_sample_lines_bodies()]
    network: list[dict[str, Any]] = []
    for index, body in enumerate(bodies):
        received = RECEIVED_TIMES[index % len(RECEIVED_TIMES)]
        for header, host in _headers(rng, 2, received):
            network.append({"line": f"{header} {host}{body}", "received_ms": _ms(received),
                            "peer": rng.choice(("127.0.0.1", "10.1.2.3", "2001:db8::1"))})
    for index, line in enumerate([*LINES, *_calendar_lines(), *_sample_lines(), *_otrf_lines()]):
        network.append({"line": line, "received_ms": _ms(RECEIVED_TIMES[index % len(RECEIVED_TIMES)]),
                        "peer": "192.0.2.10"})
    network.extend({"bytes": data.hex(" "), "received_ms": _ms(RECEIVED_TIMES[0]), "peer": "192.0.2.11"} for data in (
        b"\xff\xfe junk", b"<38>Nov 20 10:00:00 web01 sshd[1]: Failed password for \xffa from ::1 port 2",
        b"<38>Nov 20 10:00:00 web01 sshd[1]: Invalid user \xc3\x28 from 198.51.100.1 port 2\n"))
    full = [*_calendar_lines(), *LINES[24:], "Nov 20 10:00:00 web01 app: again", "Nov 20 10:00:00 web01 app: again",
            *(f"Nov 20 10:00:00 web01 {body}" for body in BODIES[:40])]
    files: list[dict[str, Any]] = [{"lines": full, "mtime_ms": _ms(RECEIVED_TIMES[0]), "tz": "UTC", "year": None}]
    for zone, _tz in FILE_ZONES:  # the year guess and the zone: the calendar lines only
        for received, year in ((RECEIVED_TIMES[1], None), (RECEIVED_TIMES[2], None), (RECEIVED_TIMES[3], 2024)):
            files.append({"lines": _calendar_lines(), "mtime_ms": _ms(received), "tz": zone, "year": year})
    return [{"kind": "frames", "frames": network}, *({"kind": "file", **f} for f in files)]


def _sample_lines_bodies() -> list[str]:
    return [line.split(" ", 4)[4] for line in _sample_lines()]


def outcome(item: Event | Rejected) -> dict[str, Any]:
    """What the golden file keeps of a reader's output (file paths by their name: they are temporary)."""
    origin = item.origin
    where = origin.path if origin.path is None or "://" in origin.path else Path(origin.path).name
    place = {"origin": where, "offset": origin.offset, "format": origin.format}
    if isinstance(item, Rejected):
        return {"rejected": item.reason, "stage": item.stage, "raw": item.raw, **place}
    return {"id": item.id, "timestamp_ms": item.timestamp_ms, "raw": item.raw, **place, "ecs": item.ecs}


def frames_of(case: dict[str, Any]) -> list[SyslogFrame]:
    frames = []
    for frame in case["frames"]:
        data = bytes.fromhex(frame["bytes"]) if "bytes" in frame else frame["line"].encode()
        frames.append(SyslogFrame(data, peer=frame["peer"], transport="tcp", received_ms=frame["received_ms"]))
    return frames


def read_case(case: dict[str, Any], workdir: Path) -> list[Event | Rejected]:
    """What the readers make of one corpus case."""
    if case["kind"] == "frames":
        return [frame_to_event(frame) for frame in frames_of(case)]
    path = workdir / "auth.log"
    path.write_bytes("".join(f"{line}\n" for line in case["lines"]).encode())
    os.utime(path, ns=(case["mtime_ms"] * 1_000_000, case["mtime_ms"] * 1_000_000))
    zone = dict(FILE_ZONES)[case["tz"]]
    return list(syslog_file.read_file(path, tz=zone, year=case["year"]))


def expected() -> Iterator[dict[str, Any]]:
    """The golden records: one line per case, its inputs and outcomes."""
    with tempfile.TemporaryDirectory() as workdir:
        for case in corpus():
            yield {"case": case, "outcomes": [outcome(item) for item in read_case(case, Path(workdir))]}


def load_golden() -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in GOLDEN.read_bytes().splitlines()]


def main() -> None:
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_bytes(b"".join(orjson.dumps(record) + b"\n" for record in expected()))
    records = load_golden()
    events = sum(1 for r in records for o in r["outcomes"] if "id" in o)
    rejected = sum(1 for r in records for o in r["outcomes"] if "rejected" in o)
    print(f"wrote {GOLDEN.relative_to(ROOT)}: {events} events, {rejected} dead letters, "
          f"{GOLDEN.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
