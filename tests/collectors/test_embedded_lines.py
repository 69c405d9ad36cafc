"""Lines shipped inside agents' JSON records (Fluent Bit `log`, Filebeat `message`) become the events the same
lines give when read from their files; labelled lines that do not parse are dead letters; other records are left
to the generic JSON path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from collectors.embedded_lines import embedded_event, embedded_line
from collectors.http_records import BatchSource, batch_items
from collectors.syslog_file import read_file as read_syslog
from correlator.model import Event, EventOrigin, Rejected, event_id_for
from correlator.sigma.engine import SigmaEngine
from correlator.sigma.loader import load_rules
from correlator.sigma.sources import load_sources

SSHD = "Nov 20 01:00:00 web01 sshd[2211]: Failed password for invalid user admin from 203.0.113.5 port 4242 ssh2"
NGINX = ('203.0.113.9 - - [24/Nov/2026:10:01:03 +0700] "GET /index.php?q=@@version HTTP/1.1" 200 512 "-" '
         '"sqlmap/1.7"')
SQUID = ("1732064400.123    245 10.0.0.5 TCP_MISS/200 5120 GET http://www.pastebin.com/raw/abc - "
         "HIER_DIRECT/104.20.67.143 text/plain")
ORIGIN = EventOrigin(path="http://10.0.0.5/v1/events", offset=1, format="json")
RECEIVED_MS = 1_795_500_000_000  # 2026-11-24: the year of the BSD timestamp is chosen against it


def shipped(record: dict[str, Any]) -> Event | Rejected | None:
    return embedded_event(record, orjson.dumps(record).decode(), ORIGIN, RECEIVED_MS)


def test_a_fluent_bit_auth_line_is_the_event_of_the_file_line(tmp_path: Path) -> None:
    record = {"date": 1795500000.5, "log": SSHD}
    event = shipped(record)
    assert isinstance(event, Event)
    log = tmp_path / "auth.log"
    log.write_text(SSHD + "\n", encoding="utf-8")
    (from_file,) = read_syslog(log, year=2026)
    assert isinstance(from_file, Event)
    assert event.fields == from_file.fields  # the same parsed fields, whatever carried the line
    assert event.get("event.dataset") == "system.auth"
    assert event.id == event_id_for(orjson.dumps(record).decode(), event.timestamp_ms)  # the record's own hash
    assert event.raw == orjson.dumps(record).decode()  # the record is what was received and is kept


def test_a_filebeat_nginx_line_takes_the_record_host_and_agent() -> None:
    event = shipped({"@timestamp": "2026-11-24T03:01:03.000Z", "message": NGINX,
                     "event": {"dataset": "nginx.access"}, "host": {"name": "web02"},
                     "agent": {"type": "filebeat", "version": "8.15.0"}, "log": {"file": {"path": "/x.log"}}})
    assert isinstance(event, Event)
    assert {k: event.get(k) for k in ("event.dataset", "url.query", "user_agent.original", "host.name",
                                      "agent.type")} == {
        "event.dataset": "nginx.access", "url.query": "q=@@version", "user_agent.original": "sqlmap/1.7",
        "host.name": "web02", "agent.type": "filebeat"}
    assert event.ecs["host"] == {"name": "web02"}


def test_a_labelled_iis_row_is_read_in_the_default_columns() -> None:
    row = ("2026-11-24 03:01:02 10.0.0.10 GET /portal/news.aspx id=1%27 443 - 203.0.113.9 "
           "sqlmap/1.7 - 500 0 0 31")
    event = shipped({"message": row, "event": {"dataset": "iis.access"}, "host": {"name": "iis01"}})
    assert isinstance(event, Event)
    assert {k: event.get(k) for k in ("cs-uri-query", "sc-status", "url.query", "host.name")} == {
        "cs-uri-query": "id=1%27", "sc-status": "500", "url.query": "id=1'", "host.name": "iis01"}
    short = shipped({"message": "2026-11-24 03:01:02 GET /x", "event": {"dataset": "iis.access"}})
    assert isinstance(short, Rejected)
    assert short.reason.startswith("record 1: its `message` is not a line of iis.access: 4 values for 15 fields")


def test_an_nxlog_im_file_record() -> None:
    event = shipped({"EventReceivedTime": "2026-11-24 10:00:01", "SourceModuleName": "auth",
                     "SourceModuleType": "im_file", "Message": SSHD})
    assert isinstance(event, Event)
    assert (event.get("event.dataset"), event.get("user.name")) == ("system.auth", "admin")


def test_an_unlabelled_squid_line_is_recognised() -> None:
    event = shipped({"log": SQUID})
    assert isinstance(event, Event)
    assert event.get("event.dataset") == "squid.access"


def test_a_labelled_line_that_does_not_parse_is_a_dead_letter() -> None:
    record = {"message": "garbage", "event": {"dataset": "system.auth"}}
    item = shipped(record)
    assert isinstance(item, Rejected)
    assert item.stage == "normalise"
    assert item.raw == orjson.dumps(record).decode()
    assert item.reason == ("record 1: its `message` is not a line of system.auth: no syslog timestamp "
                           "('Mmm dd hh:mm:ss' or RFC 3339) at the start of 'garbage'")


@pytest.mark.parametrize("record", [
    {"message": "just a note from an app"},  # unlabelled, no parser reads it: generic
    {"message": SSHD, "user": {"name": "x"}},  # parsed content beside the line: left as it is
    {"message": SSHD, "event": {"dataset": "system.auth", "action": "ssh_login"}},
    {"log": {"file": {"path": "/var/log/x"}}},  # `log` as ECS's object, no message
], ids=["unparsed", "parsed-fields", "parsed-event", "no-line"])
def test_other_records_are_left_to_the_generic_path(record: dict[str, Any]) -> None:
    assert shipped(record) is None


def test_a_shipped_syslog_line_takes_the_intakes_zone() -> None:
    record = {"log": SSHD}
    raw = orjson.dumps(record).decode()
    utc = embedded_event(record, raw, ORIGIN, RECEIVED_MS)
    local = embedded_event(record, raw, ORIGIN, RECEIVED_MS, tz="Asia/Ho_Chi_Minh")
    assert isinstance(utc, Event)
    assert isinstance(local, Event)
    assert utc.timestamp_ms - local.timestamp_ms == 7 * 3_600_000
    body = orjson.dumps(record)
    (item,) = batch_items(body, BatchSource("10.0.0.5", "fb", None, RECEIVED_MS, "Asia/Ho_Chi_Minh"))
    assert isinstance(item, Event)
    assert item.timestamp_ms == local.timestamp_ms


def test_embedded_line_prefers_fluent_bits_log() -> None:
    assert embedded_line({"log": SSHD + "\n", "message": "other"}) == SSHD


def test_the_intake_keeps_a_mislabelled_record_with_the_reason() -> None:
    record = {"@timestamp": "2026-11-20T01:05:00Z", "message": "agent record", "event": {"dataset": "system.auth"}}
    (item,) = batch_items(orjson.dumps(record), BatchSource("10.0.0.5", "fb", None, RECEIVED_MS))
    assert isinstance(item, Event)
    assert item.get("message") == "agent record"
    assert item.get("error.message") == ("record 1: its `message` is not a line of system.auth: no syslog timestamp "
                                         "('Mmm dd hh:mm:ss' or RFC 3339) at the start of 'agent record'")
    assert item.ecs["error"] == {"message": item.get("error.message")}


def test_the_intake_gives_shipped_lines_their_events_and_hints(tmp_path: Path) -> None:
    body = b"\n".join(orjson.dumps(r) for r in [{"date": 1795500000.5, "log": SSHD}, {"message": "hello"}])
    items = batch_items(body, BatchSource("10.0.0.5", "web01-fluentbit", "so-tttt", RECEIVED_MS))
    auth, generic = items
    assert isinstance(auth, Event)
    assert isinstance(generic, Event)
    assert (auth.get("event.dataset"), auth.get("agent.name"), auth.get("organization.id")) == (
        "system.auth", "web01-fluentbit", "so-tttt")
    assert auth.ecs["organization"] == {"id": "so-tttt"}
    assert generic.get("message") == "hello"
    sources = load_sources()
    rules = load_rules([], sources=sources, cache_dir=tmp_path / "cache")
    assert ("ls", "linux", None, "auth") in (SigmaEngine(rules.rules, sources).route(auth) or ())


def test_a_journaled_batch_keeps_its_zone() -> None:
    from collectors.intake_journal import JournalBatch

    batch = JournalBatch(BatchSource("10.0.0.5", "fb", None, RECEIVED_MS, "Asia/Ho_Chi_Minh"),
                         orjson.dumps({"log": SSHD}))
    again = JournalBatch.decode(batch.encode())
    assert again == batch
    older = JournalBatch.decode(JournalBatch(BatchSource("10.0.0.5", "fb", None, RECEIVED_MS), b"{}").encode())
    assert older.source.timezone is None
    assert b"timezone" not in JournalBatch(BatchSource("p", "a"), b"").encode()  # older readers' header as it was
    bogus = JournalBatch(BatchSource("10.0.0.5", "fb", None, RECEIVED_MS, "Mars/Olympus"), b"{}").encode()
    with pytest.raises(ValueError, match="batch header's timezone is not a known zone"):
        JournalBatch.decode(bogus)
