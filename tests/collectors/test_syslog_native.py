"""The native syslog reader (`collectors.syslog_native`, correlator/native/src/syslog_auth.rs) gives exactly what the
Python path of `frame_to_event` gives (fields in their order, time, event id, document) or leaves the line to
Python: on the golden syslog corpus and on thousands of lines built to find where two readers part (spacing,
hostnames, IPv6 and leading-zero addresses, users that contain ` from `, odd pids and PRIs, calendar edges,
non-ASCII, firewall lines). It must also read the common lines itself, or it would be a reader nobody uses."""

from __future__ import annotations

import random
from collections.abc import Iterator

import orjson
import pytest

from collectors.linux_auth import nested_factory
from collectors.syslog_native import native_fields
from collectors.syslog_server import SyslogFrame
from correlator.accel import native_available, reread_native_setting
from correlator.live.intake import frame_origin, frame_to_event, python_frame_event
from correlator.model import Event
from correlator.store.documents import (
    PreparedRecord,
    RefusedDocumentError,
    document_text,
    prepare_event,
    python_document_text,
)
from tests.collectors import syslog_golden

pytestmark = pytest.mark.skipif(not native_available(), reason="the native extension is not built (no cargo)")

RECEIVED = (1_764_000_000_000, 1_798_761_599_999, 1_798_761_605_000, 1_835_265_600_000, 1_867_021_201_000)

BENCH_LIKE = (  # what bench/intake.py sends: the reader must take every one of them
    "<38>Nov 24 00:00:{s:02d} host{h:02d} sshd[{p}]: Failed password for invalid user admin{n} from 203.0.113.{a} "
    "port {port} ssh2",
    "<38>Nov 24 00:00:{s:02d} host{h:02d} sshd[{p}]: Accepted publickey for deploy from 10.20.{a}.{b} port {port} "
    "ssh2: RSA SHA256:abc{n}",
    "<38>Nov 24 00:00:{s:02d} host{h:02d} sudo[{p}]:   alice : TTY=pts/{b} ; PWD=/home/alice ; USER=root ; "
    "COMMAND=/usr/bin/systemctl restart app{n}",
    "<38>Nov 24 00:00:{s:02d} host{h:02d} CRON[{p}]: (root) CMD (/usr/local/bin/backup.sh {n})",
    "<38>Nov 24 00:00:{s:02d} host{h:02d} sshd[{p}]: pam_unix(sshd:session): session opened for user deploy{b}"
    "(uid=1001) by (uid=0)",
    "<38>Nov 24 00:00:{s:02d} host{h:02d} systemd[1]: Started Session {n} of User deploy.",
    "<38>Nov 24 00:00:{s:02d} host{h:02d} sshd[{p}]: Connection closed by authenticating user root 198.51.100.{a} "
    "port {port} [preauth]",
    "<38>Nov 24 00:00:{s:02d} host{h:02d} useradd[{p}]: new user: name=svc{n}, UID={u}, GID={u}, home=/home/svc{n}, "
    "shell=/bin/bash",
    "<30>Nov 24 00:00:{s:02d} host{h:02d} nginx[{p}]: GET /index.html 200",
)

# Pieces the fuzzed lines are built from: each is something one reader could read differently from the other.
PRIS = ("<38>", "<86>", "<13>", "<0>", "<191>", "<192>", "<038>", "<1000>", "<x>", "", "<38>1 ")
STAMPS = ("Nov 24 10:00:00", "Nov  4 10:00:00", "nov 24 10:00:00", "NOV 24 10:00:00", "Feb 29 10:00:00",
          "Feb 30 10:00:00", "Dec 31 23:59:59", "Jan  1 00:00:00", "Nov 24 24:00:00", "Nov 24 10:60:00",
          "Nov 0 10:00:00", "Nov 32 10:00:00", "Nov 24 2025 10:00:00", "Nov 24 10:00:00.123", "Foo 24 10:00:00",
          "Nov 124 10:00:00", "2025-11-24T10:00:00Z")
HOSTS = ("web01", "10.0.0.5", "2001:db8::7", "host:1", "ho[st]", "congdvc-web01.example.gov.vn", "")
SEPARATORS = (" ", "  ", "\t", " \t")
TAGS = ("sshd[2211]:", "sshd:", "sshd[]:", "sshd[abc]:", "sshd[12 3]:", "sshd-session[7]:", "sudo:", "sudo[9]:",
        "useradd[1]:", "su[3]:", "CRON[5]:", "kernel:", "filterlog[1]:", "%ASA-4-106023:", "systemd-logind[1]:",
        "sshd[123456789012345678901]:", "sshd[1]x:", "passwd[2]:", "app/x.y(z)[1]:", "")
USERS = ("root", "admin test", "x from y", "", "a b c", "u;v", "é", "ad\x1fmin", "user from 1.2.3.4 port 9")
ADDRESSES = ("198.51.100.23", "010.1.2.3", "256.1.1.1", "1.2.3", "2001:db8::15", "scanner.example", "0.0.0.0",
             "1.2.3.4.5", "::ffff:1.2.3.4")
PORTS = ("22", "022", "99999999999999999999999", "")
BODIES = (
    "Failed password for {user} from {ip} port {port} ssh2",
    "Failed password for invalid user {user} from {ip} port {port} ssh2",
    "Accepted publickey for {user} from {ip} port {port} ssh2: RSA SHA256:abc",
    "Accepted password for {user} from {ip} port {port}",
    "Invalid user {user} from {ip} port {port}",
    "Invalid user {user} from {ip}",
    "Connection closed by {ip} port {port} [preauth]",
    "Connection closed by invalid user {user} {ip} port {port} [preauth]",
    "Connection reset by authenticating user {user} {ip} port {port}",
    "Disconnected from user {user} {ip} port {port}",
    "Received disconnect from {ip} port {port}:11: bye [preauth]",
    "Did not receive identification string from {ip} port {port}",
    "pam_unix(sshd:session): session opened for user {user}(uid=1001) by (uid=0)",
    "pam_unix(sudo:session): session closed for user root",
    "pam_unix(su:session): session opened for user root(uid=0) by {user}(uid=1000)",
    "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}  user={user}",
    "pam_unix(sshd:session) session opened",
    "PAM 2 more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost={ip}  user=root",
    "{user} : TTY=pts/1 ; PWD=/home/a ; USER=root ; COMMAND=/bin/ls -l ; echo x",
    "{user} : 3 incorrect password attempts ; TTY=pts/1 ; PWD=/home/a ; USER=root ; COMMAND=/bin/id",
    "{user} : COMMAND=/bin/true",
    "{user} : TTY=pts/1 ; PWD=/ ; USER=root",
    "{user} : USER=root ; TTY=pts/1 ; USER=admin ; COMMAND=/bin/id",
    "{user} : no colon here",
    "new user: name={user}, UID=1001, GID=1001, home=/home/x, shell=/bin/bash, from=/dev/pts/0",
    "new user: name={user}, UID=1001, GID=1001",
    "new group: name={user}, GID=1001",
    "Successful su for root by {user}",
    "message repeated 3 times: [ Failed password for root from {ip} port {port} ssh2]",
    "IN=eth0 OUT= MAC=00 SRC={ip} DST=10.0.0.1 LEN=60 PROTO=TCP SPT={port} DPT=22",
    "%ASA-4-106023: Deny tcp src outside:{ip}/{port} dst inside:10.0.0.1/22",
    "(root) CMD (/usr/bin/backup {user})",
    "",
    "   leading spaces {user}",
)


def _fuzz(count: int, seed: int = 20261124) -> Iterator[str]:
    """Lines of pieces, each piece mostly its first (readable) choice, so that lines reach every pattern."""
    rng = random.Random(seed)

    def pick(choices: tuple[str, ...]) -> str:
        return choices[0] if rng.random() < 0.7 else rng.choice(choices)

    for _ in range(count):
        body = rng.choice(BODIES).format(user=pick(USERS), ip=pick(ADDRESSES), port=pick(PORTS))
        tag = rng.choice(TAGS) if rng.random() < 0.5 else pick(TAGS)
        yield f"{pick(PRIS)}{pick(STAMPS)}{pick(SEPARATORS)}{pick(HOSTS)} {tag} {body}"


def _bench_lines() -> Iterator[str]:
    for i in range(0, 4000, 7):
        for template in BENCH_LIKE:
            yield template.format(s=i % 60, h=i % 41, p=1000 + i, n=i, a=i % 250, b=i // 250 % 250,
                                  port=1024 + i, u=2000 + i)


def _same(line: str, received_ms: int, peer: str) -> bool:
    """Whether the native reader took `line`; asserts that what it gave is what Python gives: fields (order and
    types), time, id, and the stored document (byte for byte) and its free text."""
    frame = SyslogFrame(line.encode(), peer=peer, transport="tcp", received_ms=received_ms)
    origin = frame_origin(frame)
    found = native_fields(line, received_ms, peer, origin.path)
    if found is None:
        return False
    python = python_frame_event(frame, line, origin)
    assert isinstance(python, Event), f"native read a line Python rejects: {line!r} ({python})"
    timestamp_ms, fields, event_id, document, text = found
    assert nested_factory(fields) is not None, line  # what `deferred_nested_factory` relies on
    assert (timestamp_ms, event_id) == (python.timestamp_ms, python.id), line
    assert list(fields.items()) == list(python.fields.items()), line
    assert [type(v) for v in fields.values()] == [type(v) for v in python.fields.values()], line
    expected = python.to_document()
    assert document == orjson.dumps(expected).decode(), line
    assert text == document_text(expected) == python_document_text(expected), line
    return True


def _prepared(event: Event) -> PreparedRecord | str:
    """The event's prepared store record, or why the store refuses it (a port past 64 bits, in Python too)."""
    try:
        return prepare_event(event)
    except RefusedDocumentError as exc:
        return str(exc)


def test_the_golden_corpus_reads_the_same_natively() -> None:
    taken = total = 0
    for case in syslog_golden.corpus():
        if case["kind"] != "frames":
            continue
        for frame in syslog_golden.frames_of(case):
            total += 1
            taken += _same(frame.data.decode("utf-8", "backslashreplace"), frame.received_ms, frame.peer)
    assert taken >= 40, f"the native reader took only {taken} of {total} golden lines"


@pytest.mark.parametrize("received_ms", RECEIVED, ids=["nov-2025", "31-dec", "1-jan", "leap-day", "1-mar"])
def test_fuzzed_lines_read_the_same_natively_or_go_to_python(received_ms: int) -> None:
    taken = sum(_same(line, received_ms, "192.0.2.7") for line in _fuzz(3000, seed=received_ms))
    assert taken >= 400, f"the native reader took only {taken} of 3000 fuzzed lines"


def test_the_native_reader_takes_every_common_line() -> None:
    lines = list(_bench_lines())
    left = [line for line in lines if not _same(line, RECEIVED[0], "127.0.0.1")]
    assert left == []


def test_frame_to_event_gives_the_same_event_and_document_with_and_without_the_native_reader(
        monkeypatch: pytest.MonkeyPatch) -> None:
    frames = [SyslogFrame(line.encode(), peer="10.1.2.3", transport="udp", received_ms=RECEIVED[0])
              for line in [*list(_bench_lines())[:50], *_fuzz(300)]]
    native = [frame_to_event(frame) for frame in frames]
    monkeypatch.setenv("SOCCTL_NATIVE", "0")
    reread_native_setting()
    try:
        assert native_fields(BENCH_LIKE[5].format(s=1, h=1, n=1), RECEIVED[0], "x") is None  # disabled
        python = [frame_to_event(frame) for frame in frames]
    finally:
        monkeypatch.delenv("SOCCTL_NATIVE")
        reread_native_setting()
    assert all(isinstance(a, Event) and a.stored_document is not None for a in native[:50])  # the bench's lines
    for a, b in zip(native, python, strict=True):
        assert type(a) is type(b)
        if isinstance(a, Event) and isinstance(b, Event):
            assert b.stored_document is None
            assert _prepared(a) == _prepared(b)  # from the reader's document, and the long way
            assert (a.id, a.timestamp_ms, a.raw, a.origin, a.host_name) == (b.id, b.timestamp_ms, b.raw, b.origin,
                                                                             b.host_name)
            assert list(a.fields.items()) == list(b.fields.items())
            assert a.to_document() == b.to_document()
        else:
            assert a == b


def test_a_repeated_frame_gets_its_own_id_natively_and_in_python() -> None:
    """`SyslogFrame.repeat` goes into the id on both paths: the n-th identical frame of a sender is its own event."""
    line = BENCH_LIKE[0].format(s=1, h=1, p=1000, n=1, a=1, b=1, port=1024, u=2000)
    ids = set()
    for repeat in (0, 1, 7):
        frame = SyslogFrame(line.encode(), peer="10.1.2.3", transport="tcp", received_ms=RECEIVED[0], repeat=repeat)
        origin = frame_origin(frame)
        found = native_fields(line, RECEIVED[0], "10.1.2.3", origin.path, repeat)
        python = python_frame_event(frame, line, origin)
        assert found is not None
        assert isinstance(python, Event)
        assert found[2] == python.id
        assert orjson.loads(found[3])["event"]["id"] == python.id
        event = frame_to_event(frame)
        assert isinstance(event, Event)
        assert event.id == python.id
        ids.add(python.id)
    assert len(ids) == 3
