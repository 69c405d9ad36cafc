"""Linux audit logs: record parsing (hex values, PROCTITLE, ENRICHED, ausearch -i), assembly of an event's records
(interleaved serials, missing EOE, lookahead), ECS and the audit names SigmaHQ's linux/auditd rules read, and those
rules firing on parsed events."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from collectors.auditd import (
    FORMAT,
    assemble,
    assemble_lines,
    parse_record,
    read_file,
    sniff,
    syscall_name,
)
from correlator.model import Event, EventOrigin, Rejected, event_id_for
from correlator.sigma.engine import SigmaEngine
from correlator.sigma.loader import load_rules
from correlator.sigma.sources import load_sources
from tests.collectors.conftest import WriteFile

ORIGIN = EventOrigin(path="audit.log", offset=1, format=FORMAT)
T = "1732064400.123"  # 2024-11-20T01:00:00.123Z



def rec(record_type: str, serial: int, body: str, time: str = T) -> str:
    return f"type={record_type} msg=audit({time}:{serial}): {body}".rstrip()


def syscall(serial: int, body: str = "", *, number: int = 59, comm: str = "ls", exe: str = "/usr/bin/ls",
            key: str = '"exec"', euid: int = 0, time: str = T) -> str:
    return rec("SYSCALL", serial,
               f"arch=c000003e syscall={number} success=yes exit=0 a0=55d0c2a1b2c0 a1=55d0c2a1b300 a2=55d0c2a1b340 "
               f"a3=8 items=2 ppid=1200 pid=1234 auid=1000 uid=0 gid=0 euid={euid} suid=0 fsuid=0 egid=0 sgid=0 "
               f"fsgid=0 tty=pts0 ses=3 comm=\"{comm}\" exe=\"{exe}\" subj=unconfined key={key} {body}", time)


def execve(serial: int, *args: str, time: str = T) -> str:
    return rec("EXECVE", serial, f"argc={len(args)} " + " ".join(f"a{i}={a}" for i, a in enumerate(args)), time)


def path_item(serial: int, item: int, name: str, nametype: str = "NORMAL", time: str = T) -> str:
    return rec("PATH", serial, f"item={item} name={name} inode=1234 dev=08:01 mode=0100755 ouid=0 ogid=0 "
                               f"rdev=00:00 nametype={nametype} cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0", time)


def eoe(serial: int, time: str = T) -> str:
    return rec("EOE", serial, "", time)


EXEC_LS = [
    syscall(4567),
    execve(4567, '"ls"', '"-la"', "2F746D702F7820792F"),
    rec("CWD", 4567, 'cwd="/root"'),
    path_item(4567, 0, '"/usr/bin/ls"'),
    path_item(4567, 1, '"/lib64/ld-linux-x86-64.so.2"'),
    rec("PROCTITLE", 4567, "proctitle=6C73002D6C61002F746D702F7820792F"),
    eoe(4567),
]


def events_of(lines: list[str], **kwargs: Any) -> list[Event | Rejected]:
    return list(assemble_lines(enumerate(lines, 1), "audit.log", **kwargs))


def one_event(lines: list[str]) -> Event:
    (event,) = events_of(lines)
    assert isinstance(event, Event), event
    return event


# -------------------------------------------------------------------------------------------------------- records

def test_raw_syscall_record() -> None:
    record = parse_record(EXEC_LS[0], ORIGIN)
    assert (record.type, record.serial, record.timestamp_ms, record.node) == ("SYSCALL", 4567, 1732064400123, None)
    assert record.event_key == (1732064400123, 4567)
    assert record.fields["comm"] == "ls"
    assert record.fields["a0"] == "55d0c2a1b2c0"  # registers are never decoded
    assert record.fields["key"] == "exec"
    assert (record.enriched, record.message, record.interpreted) == ({}, None, False)


@pytest.mark.parametrize(
    ("line", "name", "value"),
    [
        (execve(1, '"ls"', "2F746D702F7820792F"), "a1", "/tmp/x y/"),
        (execve(1, '"--opt=a b"'), "a0", "--opt=a b"),
        (rec("EXECVE", 1, "argc=12 a0=6C73"), "argc", "12"),
        (rec("EXECVE", 1, 'argc=2 a0="cat" a1_len=10 a1[0]=6162636465 a1[1]="fghij"'), "a1", "abcdefghij"),
        (rec("EXECVE", 1, 'argc=2 a0="cat" a1_len=10 a1[0]=6162636465 a1[1]="fghij"'), "a1_len", "10"),
        (rec("PROCTITLE", 1, "proctitle=62617368002D630069640A00"), "proctitle", "bash -c id\n"),
        (rec("PROCTITLE", 1, 'proctitle="sshd"'), "proctitle", "sshd"),
        (path_item(1, 0, "2F746D702F2E782079"), "name", "/tmp/.x y"),
        (path_item(1, 0, "(null)"), "name", "(null)"),
        (syscall(1, key="657865630170726976"), "key", ["exec", "priv"]),
        (syscall(1, key="(null)"), "key", "(null)"),
        (syscall(1, comm="x", exe="2F746D702F2E6D696E6572"), "exe", "2F746D702F2E6D696E6572"),
        (rec("SYSCALL", 1, "arch=c000003e syscall=103 a0=4 a1=0 comm=6D7920636D64 exe=\"/usr/bin/dmesg\""),
         "comm", "my cmd"),
        (rec("SYSCALL", 1, "arch=c000003e syscall=103 a0=4 a1=0 comm=6D7920636D64 exe=\"/usr/bin/dmesg\""),
         "a0", "4"),
        (rec("USER_AUTH", 1, "pid=1 uid=0 msg='op=PAM:authentication acct=726F6F74 exe=\"/usr/sbin/sshd\" "
                             "hostname=? addr=203.0.113.5 terminal=ssh res=failed'"), "acct", "root"),
        (rec("ADD_USER", 1, "pid=1 uid=0 msg='op=adding user id=1001 exe=\"/usr/sbin/useradd\" res=success'"),
         "op", "adding user"),
        (rec("AVC", 1, 'avc:  denied  { read } for  pid=812 comm="cat" name="shadow" dev="sda1" ino=1 '
                       "tclass=file permissive=0"), "name", "shadow"),
        (rec("CONFIG_CHANGE", 1, "auid=1000 ses=3 op=add_rule key=(null) list=4 res=1"), "res", "1"),
    ],
    ids=["execve-hex-argument", "execve-quoted-argument-with-equals", "argc-is-not-hex",
         "long-argument-chunks-joined", "long-argument-length-kept", "proctitle-hex-nuls-are-spaces",
         "proctitle-quoted", "path-name-hex", "path-name-null", "several-keys", "no-key",
         "quoted-hex-looking-value-is-literal", "comm-hex", "syscall-register-not-decoded",
         "user-space-acct-hex", "op-with-spaces", "avc-free-text-dropped", "config-change"],
)
def test_field_values(line: str, name: str, value: Any) -> None:
    assert parse_record(line, ORIGIN).fields[name] == value


def test_user_space_message_fields_are_the_records_own() -> None:
    line = rec("USER_LOGIN", 9, "pid=2211 uid=0 auid=1000 ses=4 subj=unconfined msg='op=login id=1000 "
                                'exe="/usr/sbin/sshd" hostname=? addr=203.0.113.5 terminal=/dev/pts/1 res=success\'')
    record = parse_record(line, ORIGIN)
    assert record.message == ('op=login id=1000 exe="/usr/sbin/sshd" hostname=? addr=203.0.113.5 '
                              "terminal=/dev/pts/1 res=success")
    assert record.fields == {"pid": "2211", "uid": "0", "auid": "1000", "ses": "4", "subj": "unconfined",
                             "op": "login", "id": "1000", "exe": "/usr/sbin/sshd", "hostname": "?",
                             "addr": "203.0.113.5", "terminal": "/dev/pts/1", "res": "success"}


def test_enriched_record() -> None:
    line = syscall(7) + '\x1dARCH=x86_64 SYSCALL=execve AUID="alice" UID="root" GID="root" EUID="root"'
    record = parse_record(line, ORIGIN)
    assert record.enriched == {"ARCH": "x86_64", "SYSCALL": "execve", "AUID": "alice", "UID": "root",
                               "GID": "root", "EUID": "root"}
    assert record.fields["key"] == "exec"
    event = one_event([line, eoe(7)])
    assert event.fields["SYSCALL"] == "execve"
    assert (event.fields["user.name"], event.fields["user.audit.name"]) == ("root", "alice")
    assert event.fields["user.effective.name"] == "root"
    assert event.fields["auditd.log.UID"] == "root"


def test_node_names_the_host() -> None:
    event = one_event([f"node=web01 {syscall(8)}", f"node=web01 {eoe(8)}"])
    assert event.fields["host.name"] == "web01"
    assert event.host_name == "web01"


def test_ausearch_interpreted_output() -> None:
    lines = [
        "----",
        "type=PROCTITLE msg=audit(11/20/2024 01:00:00.123:4567) : proctitle=ls -la /tmp ",
        "type=EXECVE msg=audit(11/20/2024 01:00:00.123:4567) : argc=3 a0=ls a1=-la a2=/tmp ",
        "type=SYSCALL msg=audit(11/20/2024 01:00:00.123:4567) : arch=x86_64 syscall=execve success=yes exit=0 "
        "a0=0x55d0c2a1b2c0 a1=0x55d0c2a1b300 a2=0x55d0c2a1b340 a3=0x8 items=2 ppid=1200 pid=1234 auid=alice "
        "uid=root gid=root euid=root tty=pts0 ses=3 comm=ls exe=/usr/bin/ls key=exec ",
        "----",
    ]
    event = one_event(lines)
    assert event.timestamp_ms == 1732064400123  # taken as UTC
    assert event.fields["SYSCALL"] == "execve"
    assert event.fields["proctitle"] == "ls -la /tmp"
    assert event.fields["process.args"] == ["ls", "-la", "/tmp"]
    assert (event.fields["user.name"], event.fields["user.audit.name"]) == ("root", "alice")
    assert "user.id" not in event.fields
    assert event.fields["event.action"] == "executed"
    assert event.fields["host.architecture"] == "x86_64"
    assert event.origin.offset == 2


BAD_RECORDS = [
    pytest.param("hello world", "expected 'type=... msg=audit(TIME:SERIAL):', got 'hello world'", id="not-audit"),
    pytest.param("type=SYSCALL msg=audit(1732064400.123): arch=c000003e",
                 "expected 'type=... msg=audit(TIME:SERIAL):', got 'type=SYSCALL msg=audit(1732064400.123): "
                 "arch=c000003e'", id="no-serial"),
    pytest.param('Nov 20 01:00:00 web01 audispd: type=SYSCALL msg=audit(1732064400.123:1): arch=c000003e',
                 "expected 'type=... msg=audit(TIME:SERIAL):', got 'Nov 20 01:00:00 web01 audispd: "
                 "type=SYSCALL msg=audit(173206...'", id="syslog-prefixed"),
    pytest.param(rec("EXECVE", 1, 'argc=1 a0="ls'),
                 "unterminated quote or stray character at column 49: 'a0=\"ls'", id="unterminated-double-quote"),
    pytest.param(rec("USER_AUTH", 1, "pid=1 msg='op=PAM:authentication acct=\"root\""),
                 "unterminated quote or stray character at column 51: 'msg=\\'op=PAM:authentication "
                 "acct=\"root\"'", id="unterminated-single-quote"),
    pytest.param(rec("PATH", 1, 'item=0 "name"=x'),
                 "unterminated quote or stray character at column 47: '\"name\"=x'", id="quoted-key"),
    pytest.param("type=SYSCALL msg=audit(13/45/2024 01:00:00.123:4567) : arch=x86_64",
                 "unreadable time in 'type=SYSCALL msg=audit(13/45/2024 01:00:00.123:4567) :': month must be in "
                 "1..12", id="impossible-interpreted-date"),
]


@pytest.mark.parametrize(("line", "reason"), BAD_RECORDS)
def test_bad_records_are_rejected_and_reading_goes_on(line: str, reason: str) -> None:
    items = events_of([*EXEC_LS[:2], line, *EXEC_LS[2:]])
    assert items[0] == Rejected(f"line 3: {reason}", EventOrigin(path="audit.log", offset=3, format=FORMAT), line)
    assert isinstance(items[1], Event)
    assert items[1].raw == "\n".join(EXEC_LS)
    assert len(items) == 2


# ------------------------------------------------------------------------------------------------------ assembly

def test_exec_event_ecs() -> None:
    event = one_event(EXEC_LS)
    expected = {
        "@timestamp": "2024-11-20T01:00:00.123Z", "event.module": "auditd", "event.dataset": "auditd.log",
        "event.kind": "event", "event.sequence": 4567, "event.action": "executed", "event.outcome": "success",
        "event.category": ["process"], "event.type": ["start"], "auditd.log.record_type": "SYSCALL",
        "auditd.log.sequence": 4567, "auditd.log.key": "exec", "auditd.log.a0": "55d0c2a1b2c0",
        "host.architecture": "x86_64", "process.pid": 1234, "process.ppid": 1200, "process.parent.pid": 1200,
        "process.executable": "/usr/bin/ls", "process.name": "ls", "process.working_directory": "/root",
        "process.args": ["ls", "-la", "/tmp/x y/"], "process.args_count": 3, "process.exit_code": 0,
        "process.command_line": "ls -la /tmp/x y/", "process.title": "ls -la /tmp/x y/",
        "user.id": "0", "user.effective.id": "0", "user.group.id": "0", "user.audit.id": "1000",
        "user.terminal": "pts0", "file.path": ["/usr/bin/ls", "/lib64/ld-linux-x86-64.so.2"], "tags": ["exec"],
    }
    assert {name: event.fields.get(name) for name in expected} == expected
    assert event.ecs["process"]["args"] == ["ls", "-la", "/tmp/x y/"]
    assert "type" not in event.ecs  # audit names are rule fields, not ECS
    assert event.timestamp_ms == 1732064400123
    assert event.raw == "\n".join(EXEC_LS)
    assert event.id == event_id_for(event.raw, event.timestamp_ms)
    assert event.origin == EventOrigin(path="audit.log", offset=1, record_id=4567, format=FORMAT)


def test_exec_event_audit_names_for_sigma() -> None:
    fields = one_event(EXEC_LS).fields
    expected = {
        "type": ["SYSCALL", "EXECVE", "CWD", "PATH", "PROCTITLE"], "key": "exec", "SYSCALL": "execve",
        "syscall": "59", "exe": "/usr/bin/ls", "comm": "ls", "a0": "ls", "a1": "-la", "a2": "/tmp/x y/",
        "a3": None, "argc": "3", "cwd": "/root", "name": ["/usr/bin/ls", "/lib64/ld-linux-x86-64.so.2"],
        "nametype": "NORMAL", "item": ["0", "1"], "proctitle": "ls -la /tmp/x y/", "euid": "0",
    }
    assert {name: fields.get(name) for name in expected} == expected


def test_relative_path_names_are_made_absolute_with_cwd() -> None:
    event = one_event([syscall(3, number=2, comm="cat", exe="/usr/bin/cat"), rec("CWD", 3, 'cwd="/srv/www"'),
                       path_item(3, 0, '"uploads/.x.php"'), eoe(3)])
    assert event.fields["file.path"] == "/srv/www/uploads/.x.php"
    assert event.fields["name"] == "uploads/.x.php"
    assert event.fields["event.action"] == "open"
    assert "event.category" not in event.fields
    assert event.fields["a0"] == "55d0c2a1b2c0"  # no EXECVE: the registers are a0..a3
    assert "process.command_line" not in event.fields  # neither EXECVE nor PROCTITLE


def test_interleaved_serials_are_assembled_in_order_of_first_record() -> None:
    lines = [syscall(10, comm="id", exe="/usr/bin/id"), syscall(11, comm="w", exe="/usr/bin/w"),
             execve(11, '"w"'), execve(10, '"id"'), eoe(11), rec("CWD", 10, 'cwd="/tmp"'), eoe(10)]
    first, second = events_of(lines)
    assert isinstance(first, Event)
    assert isinstance(second, Event)
    assert (first.fields["event.sequence"], first.fields["a0"], first.fields["cwd"]) == (10, "id", "/tmp")
    assert (second.fields["event.sequence"], second.fields["a0"], "cwd" in second.fields) == (11, "w", False)
    assert first.raw == "\n".join([lines[0], lines[3], lines[5], lines[6]])
    assert (first.origin.offset, second.origin.offset) == (1, 2)


def test_same_serial_at_another_time_is_another_event() -> None:
    lines = [syscall(5), eoe(5), syscall(5, time="1732150800.000"), eoe(5, time="1732150800.000")]
    assert [e.timestamp_ms for e in events_of(lines) if isinstance(e, Event)] == [1732064400123, 1732150800000]


def test_missing_eoe_is_emitted_at_the_end_of_the_file() -> None:
    (event,) = events_of(EXEC_LS[:-1])
    assert isinstance(event, Event)
    assert event.raw == "\n".join(EXEC_LS[:-1])
    assert event.fields["a2"] == "/tmp/x y/"


def test_missing_eoe_is_emitted_after_the_lookahead() -> None:
    lines = [syscall(20), execve(20, '"ls"'),  # no EOE
             syscall(21), eoe(21), syscall(22), eoe(22), syscall(23), eoe(23), execve(20, '"late"')]
    items = events_of(lines, lookahead=3)
    assert [(e.fields["event.sequence"], e.fields.get("a0")) for e in items if isinstance(e, Event)] == [
        (20, "ls"), (21, "55d0c2a1b2c0"), (22, "55d0c2a1b2c0"), (23, "55d0c2a1b2c0"), (20, "late")]
    assert len(events_of(lines)) == 4  # the default lookahead waits: the late record joins its event


def test_user_space_message_is_emitted_at_once() -> None:
    login = rec("USER_LOGIN", 30, "pid=1 uid=0 auid=1000 ses=4 msg='op=login id=1000 exe=\"/usr/sbin/sshd\" "
                                  "hostname=? addr=203.0.113.5 terminal=ssh res=success'")

    def lines() -> Iterator[tuple[int, str]]:
        yield 1, login
        raise AssertionError("read past a complete event")

    event = next(assemble_lines(lines(), "audit.log"))
    assert isinstance(event, Event)
    assert event.fields["event.action"] == "logged-in"


def test_lone_eoe_after_its_event_was_emitted_is_dropped() -> None:
    lines = [syscall(40), execve(40, '"ls"'), syscall(41), eoe(41), eoe(40)]
    assert [e.fields["event.sequence"] for e in events_of(lines, lookahead=1) if isinstance(e, Event)] == [40, 41]


def test_lookahead_must_be_positive() -> None:
    with pytest.raises(ValueError, match=r"^lookahead must be at least 1, got 0$"):
        read_file(Path("audit.log"), lookahead=0)
    with pytest.raises(ValueError, match="at least one record"):
        assemble([], ORIGIN)


# ---------------------------------------------------------------------------------------- user-space messages

def user_msg(record_type: str, inner: str, outer: str = "pid=2211 uid=0 auid=1000 ses=4") -> str:
    return rec(record_type, 50, f"{outer} msg='{inner}'")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (user_msg("USER_AUTH", 'op=PAM:authentication grantors=? acct="root" exe="/usr/sbin/sshd" '
                               "hostname=203.0.113.5 addr=203.0.113.5 terminal=ssh res=failed"),
         {"event.action": "authenticated", "event.outcome": "failure", "event.category": ["authentication"],
          "user.name": "root", "user.id": "0", "source.ip": "203.0.113.5", "source.domain": None,
          "process.executable": "/usr/sbin/sshd", "process.pid": 2211, "user.terminal": "ssh", "type": "USER_AUTH"}),
        (user_msg("USER_LOGIN", 'op=login id=1000 exe="/usr/sbin/sshd" hostname=? addr=2001:db8::77 '
                                "terminal=/dev/pts/1 res=success") + '\x1dUID="root" AUID="alice" ID="alice"',
         {"event.action": "logged-in", "event.outcome": "success", "user.name": "alice",
          "source.ip": "2001:db8::77", "event.category": ["authentication", "session"]}),
        (user_msg("USER_ACCT", 'op=PAM:accounting grantors=pam_unix acct="alice" exe="/usr/sbin/sshd" '
                               "hostname=gw.example addr=203.0.113.5 terminal=ssh res=success"),
         {"event.action": "was-authorized", "source.domain": "gw.example", "user.name": "alice"}),
        (user_msg("CRED_ACQ", 'op=PAM:setcred grantors=pam_unix acct="alice" exe="/usr/sbin/sshd" hostname=? '
                              "addr=? terminal=ssh res=success"),
         {"event.action": "acquired-credentials", "source.address": None}),
        (user_msg("USER_START", 'op=PAM:session_open grantors=pam_unix acct="alice" exe="/usr/sbin/sshd" '
                                "hostname=203.0.113.5 addr=203.0.113.5 terminal=ssh res=success"),
         {"event.action": "started-session", "event.category": ["session"], "event.type": ["start"]}),
        (user_msg("USER_END", 'op=PAM:session_close grantors=pam_unix acct="alice" exe="/usr/sbin/sshd" '
                              "hostname=203.0.113.5 addr=203.0.113.5 terminal=ssh res=success"),
         {"event.action": "ended-session", "event.type": ["end"]}),
        (user_msg("ADD_USER", 'op=add-user acct="backdoor" exe="/usr/sbin/useradd" hostname=web01 addr=? '
                              "terminal=pts/0 res=success id=1001"),
         {"event.action": "added-user-account", "event.type": ["user", "creation"], "user.target.name": "backdoor",
          "user.target.id": "1001", "user.name": None, "user.id": "0", "user.audit.id": "1000"}),
        (user_msg("ADD_GROUP", 'op=add-group acct="devs" exe="/usr/sbin/groupadd" hostname=web01 addr=? '
                               "terminal=pts/0 res=success id=1002"),
         {"event.action": "added-group-account", "group.name": "devs", "group.id": "1002",
          "event.type": ["group", "creation"]}),
        (user_msg("USER_CHAUTHTOK", 'op=PAM:chauthtok grantors=pam_unix acct="alice" exe="/usr/bin/passwd" '
                                    "hostname=web01 addr=? terminal=pts/0 res=success"),
         {"event.action": "changed-password", "user.target.name": "alice", "event.category": ["iam"]}),
        (user_msg("USER_CMD", 'cwd="/home/alice" cmd=636174202F6574632F736861646F77 exe="/usr/bin/sudo" '
                              "terminal=pts/0 res=success"),
         {"event.action": "ran-command", "process.command_line": "cat /etc/shadow",
          "process.args": ["cat", "/etc/shadow"], "cmd": "cat /etc/shadow",
          "process.working_directory": "/home/alice"}),
        (user_msg("USER_LOGIN", 'op=login acct="(unknown)" exe="/usr/sbin/sshd" hostname=? addr=203.0.113.5 '
                                "terminal=sshd res=failed", outer="pid=2211 uid=0 auid=4294967295 ses=4294967295"),
         {"event.outcome": "failure", "user.audit.id": None, "user.name": "(unknown)"}),
    ],
    ids=["user-auth-failed", "user-login-enriched-ipv6", "user-acct-hostname", "cred-acq", "user-start",
         "user-end", "add-user", "add-group", "user-chauthtok", "user-cmd", "login-unset-auid"],
)
def test_user_space_messages(line: str, expected: dict[str, Any]) -> None:
    fields = one_event([line]).fields
    assert {name: fields.get(name) for name in expected} == expected
    assert fields["message"].startswith(("op=", "cwd="))


def test_syscall_names() -> None:
    assert [syscall_name("c000003e", n) for n in ("0", "59", "322", "334", "335", "424", "450", "451", "x")] == [
        "read", "execve", "execveat", "rseq", None, "pidfd_send_signal", "set_mempolicy_home_node", None, None]
    assert syscall_name("c00000b7", "59") is None  # only the x86_64 table


# ---------------------------------------------------------------------------------------------------- the reader

def test_read_file(write: WriteFile) -> None:
    login = user_msg("USER_LOGIN", 'op=login id=1000 exe="/usr/sbin/sshd" hostname=? addr=? terminal=ssh res=success')
    path = write("audit.log", "\ufeff" + "\r\n".join([*EXEC_LS, "", login, "garbage"]) + "\n")
    items = list(read_file(path))
    assert [type(i).__name__ for i in items] == ["Event", "Event", "Rejected"]
    exec_event, login_event, rejected = items
    assert isinstance(exec_event, Event)
    assert isinstance(login_event, Event)
    assert exec_event.origin == EventOrigin(path=str(path), offset=1, record_id=4567, format=FORMAT)
    assert login_event.origin.offset == 9
    assert exec_event.raw == "\n".join(EXEC_LS)
    assert [i.id for i in read_file(path) if isinstance(i, Event)] == [exec_event.id, login_event.id]
    assert rejected == Rejected("line 10: expected 'type=... msg=audit(TIME:SERIAL):', got 'garbage'",
                                EventOrigin(path=str(path), offset=10, format=FORMAT), "garbage")


def test_non_utf8_bytes_become_escapes(write: WriteFile) -> None:
    path = write("audit.log", rec("PATH", 1, 'item=0 name="/tmp/\xff"').encode("latin-1"))
    (event,) = read_file(path)
    assert isinstance(event, Event)
    assert event.fields["name"] == "/tmp/\\xff"


def test_missing_file_is_one_rejected(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    assert list(read_file(path)) == [
        Rejected("cannot read file: No such file or directory", EventOrigin(path=str(path), format=FORMAT))]


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (EXEC_LS[0].encode(), True),
        (f"node=web01 {EXEC_LS[0]}\n".encode(), True),
        (b"\n----\ntype=PROCTITLE msg=audit(11/20/2024 01:00:00.123:4567) : proctitle=ls\n", True),
        (b"\xef\xbb\xbftype=DAEMON_START msg=audit(1732064400.000:1): op=start ver=3.1.2 format=enriched", True),
        (b'203.0.113.7 - - [20/Nov/2026:08:00:00 +0700] "GET / HTTP/1.1" 200 1\n', False),
        (b'{"type": "SYSCALL"}\n', False),
        (b"Nov 20 01:00:00 web01 audispd: type=SYSCALL msg=audit(1732064400.123:1): arch=c000003e\n", False),
        (b"", False),
    ],
    ids=["raw", "node", "ausearch-interpreted", "bom-daemon-start", "access-log", "json", "syslog-forwarded",
         "empty"],
)
def test_sniff(head: bytes, expected: bool) -> None:
    assert sniff(head) is expected


# ---------------------------------------------------------------------------------- SigmaHQ linux/auditd rules

SIGMAHQ_CASES = [
    pytest.param("lnx_auditd_susp_c2_commands.yml",
                 [syscall(60, comm="wget", exe="/usr/bin/wget", key='"susp_activity"'),
                  execve(60, '"wget"', '"http://203.0.113.9/x.sh"'), eoe(60)], True, id="key-susp-activity"),
    pytest.param("lnx_auditd_susp_c2_commands.yml", EXEC_LS, False, id="key-exec-is-not-susp-activity"),
    pytest.param("execve/lnx_auditd_user_discovery.yml",
                 [syscall(61, comm="whoami", exe="/usr/bin/whoami"), execve(61, "77686F616D69"), eoe(61)], True,
                 id="execve-a0-whoami-hex"),
    pytest.param("execve/lnx_auditd_user_discovery.yml",
                 [syscall(62, comm="sudo", exe="/usr/bin/sudo"), execve(62, '"sudo"', '"whoami"'), eoe(62)], False,
                 id="execve-whoami-as-a1"),
    pytest.param("execve/lnx_auditd_susp_cmds.yml",
                 [syscall(63, comm="chmod", exe="/usr/bin/chmod"), execve(63, '"chmod"', '"777"', '"/tmp/x"'),
                  eoe(63)], True, id="execve-chmod-777-number"),
    pytest.param("syscall/lnx_auditd_web_rce.yml",
                 [syscall(64, comm="sh", exe="/usr/bin/dash", euid=33), execve(64, '"sh"', '"-c"', '"id"'), eoe(64)],
                 True, id="syscall-number-59-by-www-data"),
    pytest.param("syscall/lnx_auditd_web_rce.yml",
                 [syscall(65, comm="sh", exe="/usr/bin/dash", euid=1000), execve(65, '"sh"'), eoe(65)], False,
                 id="syscall-execve-by-a-user"),
    pytest.param("syscall/lnx_auditd_create_account.yml",
                 [user_msg("ADD_USER", 'op=add-user acct="backdoor" exe="/usr/sbin/useradd" hostname=web01 addr=? '
                                       "terminal=pts/0 res=success id=1001")], True, id="add-user-record"),
    pytest.param("path/lnx_auditd_hidden_binary_execution.yml",
                 [syscall(66, comm="miner", exe="/tmp/.x/miner"), execve(66, '"./miner"'),
                  path_item(66, 0, '"/tmp/.x/miner"'), path_item(66, 1, '"/lib64/ld-linux-x86-64.so.2"'), eoe(66)],
                 True, id="path-name-hidden-directory"),
]


@pytest.fixture(scope="module")
def sigma_sources() -> Any:
    return load_sources()


@pytest.mark.parametrize(("rule", "lines", "fires"), SIGMAHQ_CASES)
def test_sigmahq_auditd_rule(shared_path: Callable[[str], Path], sigma_sources: Any, rule: str, lines: list[str],
                             fires: bool) -> None:
    ruleset = load_rules([shared_path(f"sigma/rules/linux/auditd/{rule}")], sources=sigma_sources)
    assert ruleset.errors == []
    assert len(ruleset.rules) == 1
    engine = SigmaEngine(ruleset.rules, sigma_sources)
    event = one_event(lines)
    assert bool(engine.match(event)) is fires
