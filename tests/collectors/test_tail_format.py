"""Tailed lines to events: the format picked once per file, the same events as the offline readers give for the
whole file (streaming vs batch), cut lines and unknown or whole-file formats as dead letters."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import orjson
import pytest

from collectors.errors import UnsupportedFormatError
from collectors.files import read_path
from collectors.tail import Tailer
from collectors.tail_format import DETECT_ATTEMPTS, LineDecoder, TailFormats, TailSpec
from collectors.tail_lines import FileOrigin
from collectors.tail_state import Registry
from correlator.model import Event, Rejected
from tests.collectors.test_zeek import CONN_FIELDS, CONN_JSON, CONN_ROW, CONN_TYPES, PREAMBLE, tab

AUTH_LOG = """\
Nov 20 01:00:00 web01 sshd[4001]: Invalid user oracle from 198.51.100.23 port 40010
Nov 20 01:00:02 web01 sshd[4001]: Failed password for invalid user oracle from 198.51.100.23 port 40010 ssh2
Nov 20 01:00:02 web01 sshd[4001]: Failed password for invalid user oracle from 198.51.100.23 port 40010 ssh2
<999>Nov 20 01:00:03 web01 sshd[1]: x

Nov 20 01:00:05 web01 sudo:   deploy : TTY=pts/0 ; PWD=/home/deploy ; USER=root ; COMMAND=/usr/bin/id
"""
ACCESS_LOG = """\
203.0.113.7 - - [20/Nov/2026:08:00:00 +0700] "GET /index.html HTTP/1.1" 200 5120 "-" "curl/8.5.0"
203.0.113.7 - - [20/Nov/2026:08:00:00 +0700] "GET /index.html HTTP/1.1" 200 5120 "-" "curl/8.5.0"
203.0.113.8 - alice [20/Nov/2026:08:00:01 +0700] "POST /login HTTP/1.1" 401 17 "-" "Mozilla/5.0"
"""
EVE = "".join(orjson.dumps(record).decode() + "\n" for record in [
    {"timestamp": "2024-03-11T11:00:00.123456+0100", "event_type": "dns", "src_ip": "10.0.0.5",
     "dest_ip": "10.0.0.53", "proto": "UDP", "dns": {"type": "query", "rrname": "example.org"}},
    {"timestamp": "2024-03-11T11:00:01.000000+0100", "event_type": "alert", "src_ip": "10.0.0.5",
     "dest_ip": "198.51.100.20", "proto": "TCP", "alert": {"signature_id": 1, "signature": "test", "severity": 2}},
])
NDJSON = '{"@timestamp": "2026-11-20T01:00:00Z", "event": {"action": "a"}}\n[1]\n{"@timestamp": 5, "x": 1}\n'
ZEEK_CONN = "\n".join([*PREAMBLE, "#path\tconn", "#fields\t" + tab(CONN_FIELDS), "#types\t" + tab(CONN_TYPES),
                       tab(CONN_ROW), tab(CONN_ROW.replace("55213", "55214")), "not\ta\trow"]) + "\n"
ZEEK_JSON = orjson.dumps(CONN_JSON).decode() + "\n"


def tail(path: Path, formats: TailFormats) -> list[Event | Rejected]:
    """Everything a tailer and `formats` make of the file now."""
    items: list[Event | Rejected] = []

    async def sink(line: bytes, origin: FileOrigin) -> None:
        item = formats.decode(line, origin)
        if item is not None:
            items.append(item)

    async def main() -> None:
        tailer = Tailer([str(path.parent / "*.log")], sink, Registry(), poll_interval=0.01)
        await tailer.poll_once()
        tailer.close()

    asyncio.run(main())
    return items


def summary(item: Event | Rejected) -> tuple[object, ...]:
    if isinstance(item, Event):
        return "event", item.id, item.timestamp_ms, item.raw, item.origin, item.fields
    return "rejected", item.origin, item.raw


@pytest.mark.parametrize(("name", "content", "fmt"), [
    ("auth.log", AUTH_LOG, "syslog"),
    ("access.log", ACCESS_LOG, "web-access"),
    ("eve.log", EVE, "suricata-eve"),
    ("events.log", NDJSON, "json"),
    ("conn.log", ZEEK_CONN, "zeek"),
    ("conn-json.log", ZEEK_JSON, "zeek"),
], ids=["syslog", "web-access", "suricata-eve", "json-lines", "zeek-tsv", "zeek-json"])
def test_tailing_gives_the_events_reading_the_whole_file_gives(tmp_path: Path, name: str, content: str,
                                                               fmt: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    mtime_ms = path.stat().st_mtime_ns // 1_000_000  # what the offline syslog reader takes as received time
    formats = TailFormats(clock_ms=lambda: mtime_ms)
    tailed = tail(path, formats)
    assert [summary(item) for item in tailed] == [summary(item) for item in read_path(path)]
    assert any(isinstance(item, Event) for item in tailed)
    assert {item.origin.format for item in tailed} == {fmt}


def test_a_configured_format_and_server_win_over_detection(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    path.write_text(ACCESS_LOG)
    formats = TailFormats([TailSpec(str(tmp_path / "*.log"), "web-access", server="nginx")],
                          detect=lambda _: pytest.fail("detection is not needed"))
    events = tail(path, formats)
    assert [event.get("event.dataset") for event in events if isinstance(event, Event)] == ["nginx.access"] * 3


def test_the_format_is_picked_once_per_file(tmp_path: Path) -> None:
    path = tmp_path / "auth.log"
    path.write_text(AUTH_LOG)
    detected: list[Path] = []

    def detect(where: Path) -> str:
        detected.append(where)
        return "syslog"

    formats = TailFormats(detect=detect)
    tail(path, formats)
    assert detected == [path]


def test_a_cut_line_is_a_dead_letter_with_its_start() -> None:
    origin = FileOrigin("/var/log/auth.log", 1, 2, 0, 5000, 7, cut=True)
    item = LineDecoder("syslog").decode(b"Nov 20 01:00:00 web01 sshd[1]: AAAA", origin)
    assert isinstance(item, Rejected)
    assert item.reason == "line 7: longer than 35 bytes, cut (the rest was skipped)"
    assert item.raw == "Nov 20 01:00:00 web01 sshd[1]: AAAA"
    assert item.origin.describe() == "/var/log/auth.log:7"


def test_an_unrecognised_file_is_retried_then_refused(caplog: pytest.LogCaptureFixture) -> None:
    formats = TailFormats()
    origins = [FileOrigin("/nonexistent/x.log", 1, 2, 0, 1, number) for number in range(1, DETECT_ATTEMPTS + 2)]
    with caplog.at_level(logging.ERROR, logger="collectors.tail_format"):
        items = [formats.decode(b"some words", origin) for origin in origins]
    assert all(isinstance(item, Rejected) for item in items)
    assert items[0] == Rejected("line 1: format not recognised: cannot read file: No such file or directory",
                                items[0].origin, "some words")  # type: ignore[union-attr]
    assert caplog.text.count("its lines are dead letters (configure its format)") == 1
    assert formats.format_of(origins[0]) == "unknown"


def test_a_zeek_log_tailed_from_inside_takes_its_header_from_the_file_start(tmp_path: Path) -> None:
    path = tmp_path / "conn.log"
    path.write_text(ZEEK_CONN)
    whole = [item for item in read_path(path) if isinstance(item, Event)]
    lines = ZEEK_CONN.encode().split(b"\n")
    number = len(PREAMBLE) + 5  # the second data row: as after a restart that had handed on the first
    info = path.stat()
    resumed = TailFormats().decode(lines[number - 1], FileOrigin(str(path), info.st_dev, info.st_ino, 0, 0, number))
    assert isinstance(resumed, Event)
    assert summary(resumed) == summary(whole[1])
    assert resumed.fields["source.port"] == 55214


def test_a_whole_file_format_is_refused_line_by_line(tmp_path: Path) -> None:
    formats = TailFormats([TailSpec("/var/log/windows/*.evtx", "evtx")])
    item = formats.decode(b"ElfFile", FileOrigin("/var/log/windows/a.evtx", 1, 2, 0, 8, 1))
    assert isinstance(item, Rejected)
    assert item.reason == ("line 1: evtx files are read whole, not line by line: watch their directory for "
                           "complete files instead of tailing them")


def test_audit_lines_are_decoded_all_at_once() -> None:
    formats = TailFormats([TailSpec("/var/log/audit/*.log", "auditd")])
    origin = FileOrigin("/var/log/audit/audit.log", 1, 2, 0, 27, 1)
    with pytest.raises(UnsupportedFormatError, match="audit log lines are assembled into events: use decode_all"):
        formats.decode(b"type=EOE msg=audit(1.0:1):", origin)
    assert formats.decode_all(b"type=EOE msg=audit(1.0:1):", origin) == []  # a lone EOE says nothing


def test_blank_lines_are_nothing() -> None:
    assert TailFormats().decode(b"  ", FileOrigin("/x.log", 1, 2, 0, 3, 1)) is None


@pytest.mark.parametrize(("spec", "message"), [
    (lambda: TailSpec("/x", "cef"), "/x: unknown format 'cef'; expected one of evtx, "),
    (lambda: TailSpec("/x", "syslog", server="nginx"), "/x: server 'nginx' applies to web-access, not syslog"),
    (lambda: TailSpec("/x", "web-access", server="iis"), "/x: unknown web server 'iis'; expected one of apache, nginx"),
    (lambda: LineDecoder("evtx"), "format 'evtx' is not read line by line; line formats: syslog, web-access, "),
], ids=["unknown-format", "server-without-web", "unknown-server", "decoder-of-whole-file-format"])
def test_specs_and_decoders_are_validated(spec: object, message: str) -> None:
    with pytest.raises(UnsupportedFormatError) as caught:
        spec()  # type: ignore[operator]
    assert str(caught.value).startswith(message)


def test_real_zeek_logs_tail_as_they_read_whole(shared_data: Path, tmp_path: Path) -> None:
    import shutil

    logs = sorted((shared_data / "otrf").rglob("*.log"))
    assert logs, "the OTRF corpus has Zeek logs"
    checked = 0
    for source in logs:
        folder = tmp_path / str(checked)
        folder.mkdir()
        path = folder / source.name
        shutil.copy(source, path)
        tailed = tail(path, TailFormats())
        assert [summary(item) for item in tailed] == [summary(item) for item in read_path(path)], source
        assert {item.origin.format for item in tailed} == {"zeek"}, source
        checked += 1
    assert checked >= 10
