"""Tailing audit logs: events assembled across lines as they are written, no position recorded past an event
that is not out yet (so a restart loses none of its records), idle and rotated events handed on."""

from __future__ import annotations

import asyncio
from pathlib import Path

from collectors.auditd import read_file
from collectors.tail import Tailer
from collectors.tail_format import TailFormats, TailSpec
from collectors.tail_lines import FileOrigin
from collectors.tail_state import Registry
from correlator.model import Event, Rejected
from tests.collectors.test_auditd import EXEC_LS, eoe, execve, rec, syscall

USER_LOGIN = rec("USER_LOGIN", 4600, "pid=900 uid=0 auid=1000 ses=4 msg='op=login id=1000 exe=\"/usr/sbin/sshd\" "
                                     "hostname=203.0.113.5 addr=203.0.113.5 terminal=ssh res=failed'")
SECOND = [syscall(4700, comm="cat", exe="/usr/bin/cat"), execve(4700, '"cat"', '"/etc/shadow"'), eoe(4700)]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class AuditTail:
    """A tailer over `dir/*.log` with the runner's wiring: `decode_all` as the sink, the formats as its holds."""

    def __init__(self, directory: Path, registry: Path, clock: Clock) -> None:
        self.formats = TailFormats([TailSpec(str(directory / "*.log"), "auditd")], monotonic=clock)
        self.items: list[Event | Rejected] = []
        self.tailer = Tailer([str(directory / "*.log")], self.sink, Registry.load(registry), poll_interval=0.01,
                             rotate_wait=0.0, clock=clock, holds=self)

    async def sink(self, line: bytes, origin: FileOrigin) -> None:
        self.items.extend(self.formats.decode_all(line, origin))

    def held(self, device: int, inode: int) -> tuple[int, int] | None:
        return self.formats.held(device, inode)

    async def tick(self) -> bool:
        due = self.formats.expire()
        self.items.extend(due)
        return bool(due)

    async def release(self, device: int, inode: int) -> None:
        self.items.extend(self.formats.release(device, inode))

    def poll(self) -> list[Event | Rejected]:
        asyncio.run(self.tailer.poll_once())
        out, self.items = self.items, []
        return out


def write(path: Path, lines: list[str], mode: str = "w") -> None:
    with path.open(mode, encoding="utf-8") as handle:
        handle.write("".join(line + "\n" for line in lines))


def ids(items: list[Event | Rejected]) -> list[str]:
    assert all(isinstance(item, Event) for item in items), items
    return [item.id for item in items if isinstance(item, Event)]


def test_a_tailed_audit_log_gives_the_events_of_the_whole_file(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "audit.log"
    log.parent.mkdir()
    write(log, [*EXEC_LS, USER_LOGIN, *SECOND])
    tail = AuditTail(log.parent, tmp_path / "tail.json", Clock())
    tailed = tail.poll()
    assert ids(tailed) == ids(list(read_file(log)))
    assert [e.get("event.action") for e in tailed if isinstance(e, Event)] == ["executed", "logged-in", "executed"]
    assert tailed[1].get("event.outcome") == "failure"


def test_no_position_is_recorded_past_an_open_event_and_a_restart_completes_it(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "audit.log"
    log.parent.mkdir()
    write(log, [*EXEC_LS, *SECOND[:2]])  # the second event's EOE is not written yet
    clock = Clock()
    first = AuditTail(log.parent, tmp_path / "tail.json", clock)
    assert ids(first.poll()) == ids(list(read_file(log)))[:1]
    (entry,) = Registry.load(tmp_path / "tail.json").tail.values()
    held_at = len("".join(line + "\n" for line in EXEC_LS).encode())
    assert (entry.offset, entry.line) == (held_at, len(EXEC_LS))  # before the open event's first line
    first.tailer.close()

    write(log, [SECOND[2]], mode="a")  # its EOE arrives while socctl is down
    restarted = AuditTail(log.parent, tmp_path / "tail.json", clock)
    (event,) = restarted.poll()
    assert isinstance(event, Event)
    assert event.id == ids(list(read_file(log)))[1]
    assert event.get("process.args") == ["cat", "/etc/shadow"]  # records read before the restart are in it
    (entry,) = Registry.load(tmp_path / "tail.json").tail.values()
    assert entry.offset == log.stat().st_size


def test_an_event_without_eoe_comes_out_when_quiet(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "audit.log"
    log.parent.mkdir()
    write(log, [syscall(4800)])  # a kernel record whose EOE never comes
    clock = Clock()
    tail = AuditTail(log.parent, tmp_path / "tail.json", clock)
    assert tail.poll() == []
    clock.now += 1.0
    assert tail.poll() == []  # not quiet long enough (2 s)
    clock.now += 1.5
    (event,) = tail.poll()
    assert isinstance(event, Event)
    assert event.get("auditd.log.sequence") == 4800
    (entry,) = Registry.load(tmp_path / "tail.json").tail.values()
    assert entry.offset == log.stat().st_size


def test_a_rotated_log_hands_on_its_open_event(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "audit.log"
    log.parent.mkdir()
    write(log, [*EXEC_LS[:3]])
    clock = Clock()
    tail = AuditTail(log.parent, tmp_path / "tail.json", clock)
    assert tail.poll() == []
    log.rename(log.with_name("audit.log.1"))  # auditd's own rotation: renamed away, a new file
    write(log, [USER_LOGIN])
    clock.now += 0.5  # not idle: released because its file is done
    items = tail.poll()
    assert [item.get("event.action") for item in items if isinstance(item, Event)] == ["executed", "logged-in"]
    assert items[0].get("process.args") == ["ls", "-la", "/tmp/x y/"]


def test_a_truncated_log_hands_on_its_open_event_first(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "audit.log"
    log.parent.mkdir()
    write(log, [*SECOND[:2]])
    tail = AuditTail(log.parent, tmp_path / "tail.json", Clock())
    assert tail.poll() == []
    write(log, [USER_LOGIN])  # copytruncate, then a new record: shorter than what was read
    items = tail.poll()
    assert [item.get("event.action") for item in items if isinstance(item, Event)] == ["executed", "logged-in"]
    assert items[0].get("process.args") == ["cat", "/etc/shadow"]
