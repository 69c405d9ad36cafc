"""The HTTP intake's pure parts: request heads, body lengths and content codings (gzip, a gzip bomb), how a body
splits into records and records become events (each agent's flavour), the journal's batch format, and a consumer
restart that delivers the unconsumed batches again."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import Mapping
from pathlib import Path

import orjson
import pytest

from collectors.http_intake import AgentToken, IntakeLimits
from collectors.http_records import BatchSource, Record, batch_items, split_records
from collectors.http_wire import HttpRequestError, body_length, decode_body, parse_head
from collectors.intake_journal import IntakeConsumer, IntakeJournal, JournalBatch, journal_items
from correlator.model import Event, EventOrigin, Rejected, event_id_for

SOURCE = BatchSource("10.1.2.3", "dc-agent", "agency-a", 1_709_290_000_000)

# -- what agents send (shared with the HTTP tests) -----------------------------------------------------------------

# Winlogbeat 8 (Elasticsearch-style ECS document, nested `winlog`): a network logon.
WINLOGBEAT_4624: dict[str, object] = {
    "@timestamp": "2024-03-01T10:15:22.123Z",
    "agent": {"type": "winlogbeat", "version": "8.12.2", "name": "DC01", "hostname": "DC01",
              "id": "6d1f3a52-7d0c-4b8e-a0a4-0c3f8c1e2b77"},
    "ecs": {"version": "8.0.0"},
    "host": {"name": "dc01.corp.example"},
    "event": {"code": "4624", "kind": "event", "provider": "Microsoft-Windows-Security-Auditing",
              "action": "logged-in", "outcome": "success", "created": "2024-03-01T10:15:23.001Z"},
    "log": {"level": "information"},
    "winlog": {"channel": "Security", "computer_name": "DC01.corp.example", "event_id": "4624",
               "provider_name": "Microsoft-Windows-Security-Auditing", "record_id": 1187431,
               "event_data": {"TargetUserName": "jdoe", "TargetDomainName": "CORP", "LogonType": "3",
                              "IpAddress": "10.20.30.40", "IpPort": "51234", "WorkstationName": "WS042",
                              "AuthenticationPackageName": "NTLM", "LogonProcessName": "NtLmSsp "}},
}

# Elastic Agent, windows integration (data_stream windows.sysmon_operational): Sysmon process creation.
ELASTIC_AGENT_SYSMON: dict[str, object] = {
    "@timestamp": "2024-03-01T10:16:01.870Z",
    "agent": {"type": "filebeat", "name": "WS042", "id": "c1f5e9f0-2a44-4b5e-9d0e-5b1f0c7a9e11", "version": "8.12.2"},
    "data_stream": {"namespace": "default", "type": "logs", "dataset": "windows.sysmon_operational"},
    "event": {"code": "1", "provider": "Microsoft-Windows-Sysmon", "module": "windows",
              "dataset": "windows.sysmon_operational", "kind": "event"},
    "host": {"name": "ws042.corp.example", "os": {"family": "windows"}},
    "winlog": {"channel": "Microsoft-Windows-Sysmon/Operational", "event_id": "1",
               "provider_name": "Microsoft-Windows-Sysmon", "computer_name": "WS042.corp.example",
               "record_id": "88213",
               "event_data": {"Image": r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
                              "CommandLine": "powershell.exe -nop -w hidden -enc SQBFAFgA",
                              "ParentImage": r"C:\Windows\explorer.exe", "User": r"CORP\jdoe",
                              "ProcessId": "4242", "ProcessGuid": "{4a1c2b3d-5e6f-65e1-1a00-000000000a00}",
                              "Hashes": "SHA256=9F914D42706FE215501044ACD85A32D58AAEF1419D404FDDFA5D3B48F66CCD9F"}},
}

# Fluent Bit `http` output, format json_lines (json_date_key date, json_date_format double), tail + kubernetes.
FLUENT_BIT_KUBERNETES: dict[str, object] = {
    "date": 1709288122.5,
    "log": "Accepted publickey for deploy from 10.0.0.7 port 52114 ssh2",
    "stream": "stdout",
    "kubernetes": {"pod_name": "bastion-0", "namespace_name": "ops", "container_name": "sshd",
                   "host": "node-3"},
}

# Fluent Bit `http` output, format json (an array), json_date_format iso8601, syslog parser.
FLUENT_BIT_SYSLOG: dict[str, object] = {
    "date": "2024-03-01T10:15:24.250000Z", "host": "web01", "ident": "sshd", "pid": "2211",
    "message": "Failed password for root from 203.0.113.9 port 4022 ssh2",
}

# NXLog im_msvistalog -> to_json() -> om_http: a flat record, EventData fields at the top level.
NXLOG_4625: dict[str, object] = {
    "EventTime": "2024-03-01 10:15:22", "Hostname": "DC01.corp.example", "Keywords": -9214364837600034816,
    "EventType": "AUDIT_FAILURE", "SeverityValue": 4, "Severity": "ERROR", "EventID": 4625,
    "SourceName": "Microsoft-Windows-Security-Auditing", "ProviderGuid": "{54849625-5478-4994-A5BA-3E3B0328C30D}",
    "Version": 0, "Task": 12544, "OpcodeValue": 0, "RecordNumber": 1187432, "ProcessID": 664, "ThreadID": 712,
    "Channel": "Security", "Message": "An account failed to log on.", "Category": "Logon", "Opcode": "Info",
    "TargetUserName": "administrator", "TargetDomainName": "CORP", "LogonType": "3", "IpAddress": "203.0.113.9",
    "IpPort": "0", "Status": "0xc000006d", "SubStatus": "0xc000006a", "EventReceivedTime": "2024-03-01 10:15:23",
    "SourceModuleName": "eventlog", "SourceModuleType": "im_msvistalog",
}


def ndjson(*records: Mapping[str, object]) -> bytes:
    return b"".join(orjson.dumps(record) + b"\n" for record in records)


# -- request heads -------------------------------------------------------------------------------------------------


def test_parse_head_reads_the_request_line_and_headers() -> None:
    head = parse_head(b"POST /v1/events?pipeline=x HTTP/1.1\r\nHost: intake\r\nContent-Type: application/x-ndjson"
                      b"\r\nX-Tag: a\r\nx-tag: b\r\nContent-Length: 12\r\n\r\n")
    assert (head.method, head.path, head.target, head.version) == ("POST", "/v1/events", "/v1/events?pipeline=x",
                                                                   "HTTP/1.1")
    assert head.header("content-type") == "application/x-ndjson"
    assert head.header("x-tag") == "a, b"
    assert head.keep_alive
    assert body_length(head, max_bytes=100) == 12


@pytest.mark.parametrize(("head", "status", "message"), [
    (b"POST /v1/events\r\n\r\n", 400, "malformed request line: b'POST /v1/events'"),
    (b"POST /v1/events HTTP/2.0\r\n\r\n", 505, "unsupported protocol version 'HTTP/2.0'"),
    (b"POST /v1/events HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400,
     "conflicting content-length headers"),
    (b"POST /v1/events HTTP/1.1\r\nX-A: 1\r\n folded\r\n\r\n", 400, "malformed header line: obsolete line folding"),
    (b"POST /v1/events HTTP/1.1\r\nBad Name: 1\r\n\r\n", 400, "malformed header line: b'Bad Name: 1'"),
], ids=["no-version", "http2", "two-lengths", "folding", "space-in-name"])
def test_parse_head_refuses_malformed_heads(head: bytes, status: int, message: str) -> None:
    with pytest.raises(HttpRequestError) as caught:
        parse_head(head)
    assert (caught.value.status, caught.value.reason, caught.value.close) == (status, message, True)


@pytest.mark.parametrize(("headers", "expected"), [
    (b"Content-Length: 5\r\n", 5),
    (b"Transfer-Encoding: chunked\r\n", None),
    (b"", 0),
], ids=["length", "chunked", "none"])
def test_body_length(headers: bytes, expected: int | None) -> None:
    assert body_length(parse_head(b"POST / HTTP/1.1\r\n" + headers + b"\r\n"), max_bytes=10) == expected


@pytest.mark.parametrize(("headers", "status", "message"), [
    (b"Content-Length: 11\r\n", 413, "body of 11 bytes exceeds the limit of 10 bytes"),
    (b"Content-Length: -1\r\n", 400, "Content-Length is not a number: '-1'"),
    (b"Transfer-Encoding: gzip, chunked\r\n", 501, "unsupported Transfer-Encoding 'gzip, chunked' (only chunked)"),
    (b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n", 400, "both Transfer-Encoding and Content-Length given"),
], ids=["too-long", "negative", "te-gzip", "te-and-length"])
def test_body_length_refusals(headers: bytes, status: int, message: str) -> None:
    with pytest.raises(HttpRequestError) as caught:
        body_length(parse_head(b"POST / HTTP/1.1\r\n" + headers + b"\r\n"), max_bytes=10)
    assert (caught.value.status, caught.value.reason) == (status, message)


# -- content codings -----------------------------------------------------------------------------------------------


def test_gzip_deflate_and_concatenated_gzip_members_are_decoded() -> None:
    data = b'{"a": 1}\n' * 100
    assert decode_body(gzip.compress(data), "gzip", max_bytes=len(data)) == data
    assert decode_body(zlib.compress(data), "deflate", max_bytes=len(data)) == data
    assert decode_body(gzip.compress(data[:450]) + gzip.compress(data[450:]), "x-gzip", max_bytes=1000) == data
    assert decode_body(data, "identity", max_bytes=1) == data  # the wire limit applies to it


def test_a_gzip_bomb_is_cut_off_at_the_decoded_limit() -> None:
    bomb = gzip.compress(b"\0" * (64 << 20), compresslevel=9)  # 64 MiB of zeros in ~64 KiB
    assert len(bomb) < 100_000
    with pytest.raises(HttpRequestError) as caught:
        decode_body(bomb, "gzip", max_bytes=1 << 20)
    assert (caught.value.status, caught.value.reason) == (413, "decompressed body exceeds the limit of 1048576 bytes")
    assert not caught.value.close  # the body was read whole: the connection can carry another request


@pytest.mark.parametrize(("body", "coding", "status", "message"), [
    (gzip.compress(b"x" * 100)[:-12], "gzip", 400, "gzip body is truncated"),
    (b"plain text", "gzip", 400,
     "body is not valid gzip data: Error -3 while decompressing data: incorrect header check"),
    (b"", "br", 415, "unsupported Content-Encoding 'br' (expected gzip, deflate or identity)"),
    (b"", "gzip, gzip", 415, "unsupported Content-Encoding 'gzip, gzip' (expected gzip, deflate or identity)"),
], ids=["truncated", "not-gzip", "brotli", "twice"])
def test_bad_content_codings(body: bytes, coding: str, status: int, message: str) -> None:
    with pytest.raises(HttpRequestError) as caught:
        decode_body(body, coding, max_bytes=1000)
    assert (caught.value.status, caught.value.reason) == (status, message)


# -- records -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "layout", "records"), [
    (b'{"a":1}\r\n\n  \n{"b":2}', "lines", [Record(1, b'{"a":1}'), Record(4, b'{"b":2}')]),
    (b'\xef\xbb\xbf[{"a": 1}, 7]', "array", [Record(1, b'{"a":1}'), Record(2, b"7")]),
    (b'{\n  "a": 1\n}\n', "document", [Record(1, b'{\n  "a": 1\n}')]),
    (b'{"a":1}', "lines", [Record(1, b'{"a":1}')]),
    (b'[1, 2]\n{"a":1}', "lines", [Record(1, b"[1, 2]"), Record(2, b'{"a":1}')]),
], ids=["ndjson", "array-with-bom", "pretty-object", "one-line", "array-line-in-ndjson"])
def test_split_records(body: bytes, layout: str, records: list[Record]) -> None:
    assert split_records(body) == (layout, records)


def test_bad_records_become_dead_letters_with_their_line_and_reason() -> None:
    body = b'{"message": "ok", "@timestamp": "2024-03-01T10:00:00Z"}\n{"broken": \n\xff\xfe\n[1]\n' + \
        orjson.dumps({"winlog": {"channel": "Security"}})
    event, broken, not_utf8, array, no_event_id = batch_items(body, SOURCE)
    assert isinstance(event, Event)
    assert event.id == event_id_for('{"message": "ok", "@timestamp": "2024-03-01T10:00:00Z"}', 1_709_287_200_000)
    assert [(r.origin.offset, r.stage, r.reason) for r in (broken, not_utf8, array, no_event_id)
            if isinstance(r, Rejected)] == [
        (2, "read", "invalid JSON on line 2, column 11: unexpected end of data"),
        (3, "read", "line 3 is not UTF-8: invalid start byte at column 1"),
        (4, "read", "line 4: expected a JSON object, got an array"),
        (5, "normalise", "winlog.event_id is missing"),
    ]
    assert no_event_id.origin == EventOrigin(path="http://10.1.2.3/v1/events", offset=5, format="winlogbeat")
    assert not_utf8.raw == "\ufffd\ufffd"


def _one(record: dict[str, object], source: BatchSource = SOURCE) -> Event:
    (item,) = batch_items(orjson.dumps(record), source)
    assert isinstance(item, Event), item
    return item


@pytest.mark.parametrize(("record", "fmt", "timestamp", "expected"), [
    (WINLOGBEAT_4624, "winlogbeat", "2024-03-01T10:15:22.123Z", {
        "EventID": 4624, "event.code": "4624", "event.dataset": "windows.security", "event.outcome": "success",
        "host.name": "dc01.corp.example", "user.name": "jdoe", "user.domain": "CORP", "source.ip": "10.20.30.40",
        "winlog.event_data.LogonType": "3", "agent.name": "DC01", "organization.id": "agency-a"}),
    (ELASTIC_AGENT_SYSMON, "winlogbeat", "2024-03-01T10:16:01.870Z", {
        "EventID": 1, "Channel": "Microsoft-Windows-Sysmon/Operational", "event.category": ["process"],
        "process.executable": r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
        "process.command_line": "powershell.exe -nop -w hidden -enc SQBFAFgA",
        "process.parent.executable": r"C:\Windows\explorer.exe", "host.name": "ws042.corp.example",
        "agent.name": "WS042"}),
    (FLUENT_BIT_KUBERNETES, "json", "2024-03-01T10:15:22.500Z", {
        "message": "Accepted publickey for deploy from 10.0.0.7 port 52114 ssh2", "kubernetes.pod_name": "bastion-0",
        "agent.name": "dc-agent", "organization.id": "agency-a"}),
    (NXLOG_4625, "json", "2024-03-01T10:15:22.000Z", {
        "EventID": 4625, "Channel": "Security", "Provider_Name": "Microsoft-Windows-Security-Auditing",
        "event.code": "4625", "event.outcome": "failure", "host.name": "DC01.corp.example",
        "user.name": "administrator", "source.ip": "203.0.113.9", "winlog.record_id": 1187432,
        "agent.name": "dc-agent", "organization.id": "agency-a"}),
], ids=["winlogbeat", "elastic-agent-sysmon", "fluent-bit", "nxlog"])
def test_each_agent_flavour_becomes_the_expected_ecs_event(record: dict[str, object], fmt: str, timestamp: str,
                                                            expected: dict[str, object]) -> None:
    event = _one(record)
    assert event.origin.format == fmt
    assert event.origin.path == "http://10.1.2.3/v1/events"
    assert event.id == event_id_for(orjson.dumps(record), event.timestamp_ms)
    assert event.to_document()["@timestamp"] == timestamp
    assert {name: event.fields.get(name) for name in expected} == expected
    document = event.to_document()
    assert document["log"]["file"]["path"] == "http://10.1.2.3/v1/events"
    assert document["organization"] == {"id": "agency-a"}


def test_the_token_organization_wins_and_a_deferred_document_stays_deferred() -> None:
    claimed = {**NXLOG_4625, "organization.id": "someone-else"}
    event = _one(claimed)
    assert event.ecs_deferred  # the flat Windows reader builds the document on first use
    assert event.host_name == "DC01.corp.example"
    assert event.ecs_deferred
    assert event.fields["organization.id"] == "agency-a"
    assert event.ecs["organization"] == {"id": "agency-a"}
    assert event.raw == orjson.dumps(claimed).decode()  # the record itself is kept as sent


def test_a_record_without_a_time_gets_the_arrival_time_and_no_organization_without_one() -> None:
    event = _one({"message": "no time here"}, BatchSource("127.0.0.1", "fluent-bit", None, 1_709_290_000_000))
    assert event.timestamp_ms == 1_709_290_000_000
    assert event.ecs == {"message": "no time here", "agent": {"name": "fluent-bit"}}


def test_agent_tokens_are_validated() -> None:
    with pytest.raises(ValueError, match="must be at least 16 printable ASCII"):
        AgentToken("short", "abc")
    with pytest.raises(ValueError, match="needs a name"):
        AgentToken(" ", "x" * 16)
    assert "secret-token-value" not in repr(AgentToken("a", "secret-token-value"))
    token = AgentToken.from_dict({"name": "agency-b-nxlog", "token": "t" * 32, "organization": "agency-b"})
    assert AgentToken.from_dict(token.to_dict()) == token
    with pytest.raises(ValueError, match="unknown agent token keys: secret"):
        AgentToken.from_dict({"name": "x", "secret": "y" * 16})
    with pytest.raises(ValueError, match="max_line must be >= 1"):
        IntakeLimits(max_line=0)


# -- the journal ---------------------------------------------------------------------------------------------------


def test_journal_batches_round_trip_and_a_foreign_item_is_a_dead_letter() -> None:
    batch = JournalBatch(SOURCE, ndjson(WINLOGBEAT_4624, NXLOG_4625))
    again = JournalBatch.decode(batch.encode())
    assert again == batch
    events = [item for item in again.items() if isinstance(item, Event)]
    assert [item.id for item in events] == [
        event_id_for(orjson.dumps(record), item.timestamp_ms)
        for record, item in zip((WINLOGBEAT_4624, NXLOG_4625), events, strict=True)]
    (dead,) = journal_items(b'{"v": 9}\nbody', "/var/lib/socctl/intake")
    assert isinstance(dead, Rejected)
    assert dead.reason == "unreadable journal batch: not a version 1 batch header: b'{\"v\": 9}'"
    assert dead.raw == '{"v": 9}\nbody'


def test_a_consumer_restart_delivers_the_unconsumed_batches_again(tmp_path: Path) -> None:
    batches = [JournalBatch(SOURCE, ndjson(*({"n": n, "m": m} for m in range(3)))) for n in range(4)]

    class Crash(Exception):
        pass

    async def main() -> tuple[list[str], list[str]]:
        first: list[str] = []

        async def failing(item: Event | Rejected) -> None:
            assert isinstance(item, Event)
            if len(first) == 7:  # the third batch, half delivered
                raise Crash
            first.append(item.raw)

        with IntakeJournal(tmp_path) as journal:
            for batch in batches:
                journal.append(batch)
            with pytest.raises(Crash):
                await IntakeConsumer(journal, failing, batches_per_commit=1).run()
            assert journal.pending_batches == 2
        second: list[str] = []
        stop = asyncio.Event()

        async def collect(item: Event | Rejected) -> None:
            assert isinstance(item, Event)
            second.append(item.raw)
            if len(second) == 6:
                stop.set()

        with IntakeJournal(tmp_path) as journal:  # reopened, as after a restart
            await asyncio.wait_for(IntakeConsumer(journal, collect).run(stop), 10)
            assert (journal.pending_batches, journal.pending_bytes) == (0, 0)
        return first, second

    first, second = asyncio.run(main())
    raws = [orjson.dumps({"n": n, "m": m}).decode() for n in range(4) for m in range(3)]
    assert first == raws[:7]
    assert second == raws[6:]  # the half-delivered batch again, whole; the committed ones not again


def test_a_consumer_with_a_barrier_commits_only_after_it_passed(tmp_path: Path) -> None:
    batches = [JournalBatch(SOURCE, ndjson({"n": n})) for n in range(3)]

    async def main() -> tuple[list[int], int]:
        delivered: list[Event | Rejected] = []
        at_barrier: list[int] = []

        async def sink(item: Event | Rejected) -> None:
            delivered.append(item)

        async def barrier() -> None:
            at_barrier.append(journal.pending_batches)
            if len(delivered) == 3:
                raise RuntimeError("the pipeline has ended")

        with IntakeJournal(tmp_path) as journal:
            for batch in batches[:2]:
                journal.append(batch)
            consumer = IntakeConsumer(journal, sink, barrier=barrier, poll_interval=0.01)
            task = asyncio.create_task(consumer.run())
            while journal.pending_batches:
                await asyncio.sleep(0.01)
            journal.append(batches[2])
            with pytest.raises(RuntimeError, match="ended"):
                await asyncio.wait_for(task, 10)
            return at_barrier, journal.pending_batches

    at_barrier, pending = asyncio.run(main())
    assert at_barrier == [2, 1]  # both first batches were still pending when the barrier was awaited
    assert pending == 1  # the third was delivered but its barrier failed: not committed


def test_a_consumer_with_a_bulk_sink_hands_each_batch_on_in_one_call(tmp_path: Path) -> None:
    batches = [JournalBatch(SOURCE, ndjson(*({"n": n, "m": m} for m in range(n + 1)))) for n in range(3)]

    async def per_item(item: Event | Rejected) -> None:
        raise AssertionError(f"the per-item sink was called with {item}")

    async def main() -> list[list[str]]:
        calls: list[list[str]] = []
        stop = asyncio.Event()

        async def bulk(items: list[Event | Rejected]) -> None:
            calls.append([item.raw for item in items if isinstance(item, Event)])
            if len(calls) == len(batches):
                stop.set()

        with IntakeJournal(tmp_path) as journal:
            for batch in batches:
                journal.append(batch)
            consumer = IntakeConsumer(journal, per_item, bulk_sink=bulk, poll_interval=0.01)
            await asyncio.wait_for(consumer.run(stop), 10)
            assert (journal.pending_batches, consumer.delivered_items) == (0, 6)
        return calls

    calls = asyncio.run(main())
    assert calls == [[orjson.dumps({"n": n, "m": m}).decode() for m in range(n + 1)] for n in range(3)]
