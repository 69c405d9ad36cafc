"""Suricata EVE JSON to ECS: every event type, the DNS formats, the reader's rejects, sniffing, the shared corpus
and routing to a Sigma `category: dns` rule."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from collectors.errors import NormalisationError
from collectors.suricata import (
    FORMAT,
    iso_utc,
    normalise_record,
    put_url_full,
    read_file,
    sniff,
    tls_version,
    url_parts,
)
from correlator.model import Event, EventOrigin, Rejected, event_id_for
from correlator.sigma.engine import SigmaEngine
from correlator.sigma.loader import load_rules
from correlator.sigma.sources import load_sources
from tests.collectors.conftest import WriteFile

ORIGIN = EventOrigin(path="eve.json", offset=1, format=FORMAT)

TS = "2024-03-11T11:00:00.123456+0100"
TUPLE = {"flow_id": 1234567, "in_iface": "eth0", "src_ip": "10.0.0.5", "src_port": 49822,
         "dest_ip": "198.51.100.20", "dest_port": 80, "proto": "TCP"}
HTTP = {"hostname": "www.example.org", "http_port": 8080, "url": "/download/tool.exe?x=1&y=2#top",
        "http_user_agent": "curl/8.4.0", "http_content_type": "application/x-dosexec",
        "http_refer": "http://ref.example/", "http_method": "GET", "protocol": "HTTP/1.1", "status": 200,
        "length": 48213}
MD5, SHA1, SHA256 = "a" * 32, "b" * 40, "c" * 64


def eve(event_type: str, **body: Any) -> dict[str, Any]:
    return {"timestamp": TS, **TUPLE, "event_type": event_type, **body}


def normalise(record: dict[str, Any]) -> Event:
    return normalise_record(record, orjson.dumps(record).decode(), ORIGIN)


def pick(event: Event, *names: str) -> dict[str, Any]:
    return {name: event.fields.get(name) for name in names}


# --- the common fields ----------------------------------------------------------------------------------------


def test_common_fields_and_the_original_record() -> None:
    record = eve("http", host="sensor-01", community_id="1:LQU9qZlK+B5F3KDmev6m5PMibrg=", app_proto="http",
                 http=HTTP)
    event = normalise(record)
    assert event.timestamp_ms == 1710151200123  # 10:00:00.123456 UTC
    assert event.id == event_id_for(event.raw, event.timestamp_ms)
    assert event.origin == ORIGIN
    assert pick(event, "@timestamp", "event.module", "event.dataset", "event.kind", "event.category",
                "event.type") == {
        "@timestamp": "2024-03-11T10:00:00.123Z", "event.module": "suricata", "event.dataset": "suricata.http",
        "event.kind": "event", "event.category": ["network", "web"], "event.type": ["access", "protocol"]}
    assert pick(event, "source.ip", "source.address", "source.port", "destination.ip", "destination.port",
                "related.ip") == {
        "source.ip": "10.0.0.5", "source.address": "10.0.0.5", "source.port": 49822,
        "destination.ip": "198.51.100.20", "destination.port": 80, "related.ip": ["10.0.0.5", "198.51.100.20"]}
    assert pick(event, "network.transport", "network.protocol", "network.community_id") == {
        "network.transport": "tcp", "network.protocol": "http",
        "network.community_id": "1:LQU9qZlK+B5F3KDmev6m5PMibrg="}
    assert pick(event, "observer.name", "observer.hostname", "observer.ingress.interface.name",
                "observer.product") == {"observer.name": "sensor-01", "observer.hostname": "sensor-01",
                                        "observer.ingress.interface.name": "eth0", "observer.product": "Suricata"}
    # the record itself: nested in the document, one dotted name per leaf in the fields
    assert event.ecs["suricata"]["eve"] == record
    assert event.fields["suricata.eve.http.hostname"] == "www.example.org"
    assert event.fields["suricata.eve.flow_id"] == 1234567
    assert event.ecs["source"]["ip"] == "10.0.0.5"


def test_the_ecs_document_is_built_on_first_use() -> None:
    event = normalise(eve("dns", dns={"type": "query", "id": 1, "rrname": "a.example", "rrtype": "A"}))
    assert event.ecs_deferred
    assert event.native["event.dataset"] == "suricata.dns"  # routing reads `native`
    assert event.native["dns.question.name"] == "a.example"
    assert event.ecs_deferred
    document = event.to_document()
    assert not event.ecs_deferred
    assert document["dns"]["question"]["name"] == "a.example"
    assert document["event"]["id"] == event.id
    assert document["@timestamp"] == "2024-03-11T10:00:00.123Z"
    assert document["suricata"]["eve"]["dns"]["rrname"] == "a.example"


@pytest.mark.parametrize(
    ("app_proto", "expected"),
    [("http", "http"), ("TLS", "tls"), ("ftp-data", "ftp"), ("failed", None), ("template", None)],
    ids=["http", "upper-case", "ftp-data", "failed", "template"],
)
def test_network_protocol_from_app_proto(app_proto: str, expected: str | None) -> None:
    assert normalise(eve("anomaly", app_proto=app_proto)).fields.get("network.protocol") == expected


def test_a_record_without_addresses_or_a_non_ip_address() -> None:
    event = normalise({"timestamp": TS, "event_type": "stats", "stats": {"uptime": 30}})
    assert "source.ip" not in event.fields
    assert pick(event, "event.dataset", "event.kind", "event.category") == {
        "event.dataset": "suricata.stats", "event.kind": "metric", "event.category": None}
    assert event.fields["suricata.eve.stats.uptime"] == 30
    odd = normalise(eve("anomaly", src_ip="not-an-ip"))
    assert odd.fields["source.address"] == "not-an-ip"
    assert "source.ip" not in odd.fields  # an Elasticsearch `ip` field would refuse the document
    assert odd.fields["related.ip"] == ["198.51.100.20"]


# --- per event type -------------------------------------------------------------------------------------------


def test_alert() -> None:
    record = eve("alert", host="sensor-01", app_proto="http", http=HTTP,
                 alert={"action": "allowed", "gid": 1, "signature_id": 2024897, "rev": 3,
                        "signature": "ET MALWARE Test Download", "category": "A Network Trojan was detected",
                        "severity": 1})
    event = normalise(record)
    assert pick(event, "event.kind", "event.dataset", "event.category", "event.type", "event.action",
                "event.severity", "rule.id", "rule.name", "rule.category", "rule.version", "message") == {
        "event.kind": "alert", "event.dataset": "suricata.alert", "event.category": ["network", "intrusion_detection"],
        "event.type": ["allowed"], "event.action": "allowed", "event.severity": 1, "rule.id": "2024897",
        "rule.name": "ET MALWARE Test Download", "rule.category": "A Network Trojan was detected",
        "rule.version": "3", "message": "ET MALWARE Test Download"}
    # the alert's app-layer metadata is mapped as well
    assert pick(event, "url.domain", "url.path", "http.request.method") == {
        "url.domain": "www.example.org", "url.path": "/download/tool.exe", "http.request.method": "GET"}
    assert "event.outcome" not in event.fields  # only for http events, as Filebeat does


def test_blocked_alert_is_denied() -> None:
    event = normalise(eve("alert", alert={"action": "blocked", "signature_id": 1, "signature": "x", "severity": 2}))
    assert pick(event, "event.action", "event.type") == {"event.action": "blocked", "event.type": ["denied"]}


def test_flow() -> None:
    event = normalise(eve("flow", app_proto="tls",
                          flow={"pkts_toserver": 10, "pkts_toclient": 12, "bytes_toserver": 1200,
                                "bytes_toclient": 8000, "start": "2024-03-11T11:00:00.000000+0100",
                                "end": "2024-03-11T11:00:02.500001+0100", "age": 2, "state": "closed",
                                "reason": "timeout", "alerted": False},
                          tcp={"tcp_flags": "1b", "tcp_flags_ts": "1b", "tcp_flags_tc": "1a", "syn": True,
                               "fin": True, "psh": True, "ack": True, "state": "closed"}))
    assert pick(event, "source.packets", "source.bytes", "destination.packets", "destination.bytes",
                "network.packets", "network.bytes", "event.start", "event.end", "event.duration",
                "event.category", "event.type", "network.protocol") == {
        "source.packets": 10, "source.bytes": 1200, "destination.packets": 12, "destination.bytes": 8000,
        "network.packets": 22, "network.bytes": 9200, "event.start": "2024-03-11T10:00:00.000000Z",
        "event.end": "2024-03-11T10:00:02.500001Z", "event.duration": 2_500_001_000,
        "event.category": ["network"], "event.type": ["connection", "end"], "network.protocol": "tls"}
    # TCP flags have no ECS field: they stay with the record
    assert pick(event, "suricata.eve.tcp.tcp_flags", "suricata.eve.tcp.syn", "suricata.eve.tcp.tcp_flags_tc") == {
        "suricata.eve.tcp.tcp_flags": "1b", "suricata.eve.tcp.syn": True, "suricata.eve.tcp.tcp_flags_tc": "1a"}


def test_flow_without_end_or_with_end_before_start() -> None:
    started = normalise(eve("flow", flow={"start": "2024-03-11T10:00:00Z", "state": "new"}))
    assert pick(started, "event.start", "event.end", "event.duration", "event.type", "network.bytes") == {
        "event.start": "2024-03-11T10:00:00.000000Z", "event.end": None, "event.duration": None,
        "event.type": ["connection", "start"], "network.bytes": None}
    backwards = normalise(eve("flow", flow={"start": "2024-03-11T10:00:01Z", "end": "2024-03-11T10:00:00Z"}))
    assert "event.duration" not in backwards.fields


DNS_CASES = [
    pytest.param({"type": "query", "id": 4242, "rrname": "c2.evil.test", "rrtype": "A", "tx_id": 0},
                 {"dns.type": "query", "dns.id": "4242", "dns.question.name": "c2.evil.test",
                  "dns.question.type": "A", "dns.response_code": None, "dns.answers": None,
                  "dns.resolved_ip": None},
                 id="v1-query"),
    pytest.param({"type": "answer", "id": 4242, "rcode": "NOERROR", "rrname": "c2.evil.test", "rrtype": "A",
                  "ttl": 300, "rdata": "203.0.113.7"},
                 {"dns.type": "answer", "dns.id": "4242", "dns.question.name": "c2.evil.test",
                  "dns.question.type": "A", "dns.response_code": "NOERROR",
                  "dns.answers": [{"name": "c2.evil.test", "type": "A", "ttl": 300, "data": "203.0.113.7"}],
                  "dns.resolved_ip": ["203.0.113.7"]},
                 id="v1-answer"),
    pytest.param({"type": "answer", "id": 8, "rcode": "NXDOMAIN", "rrname": "nope.example", "rrtype": "A"},
                 {"dns.type": "answer", "dns.id": "8", "dns.question.name": "nope.example",
                  "dns.question.type": "A", "dns.response_code": "NXDOMAIN", "dns.answers": None,
                  "dns.resolved_ip": None},
                 id="v1-nxdomain"),
    pytest.param({"version": 2, "type": "answer", "id": 9, "flags": "8180", "qr": True, "rd": True, "ra": True,
                  "rrname": "www.example.org", "rrtype": "A", "rcode": "NOERROR",
                  "answers": [{"rrname": "www.example.org", "rrtype": "CNAME", "ttl": 60,
                               "rdata": "edge.example.net"},
                              {"rrname": "edge.example.net", "rrtype": "A", "ttl": 20, "rdata": "198.51.100.10"}],
                  "grouped": {"CNAME": ["edge.example.net"], "A": ["198.51.100.10"]}},
                 {"dns.type": "answer", "dns.id": "9", "dns.question.name": "www.example.org",
                  "dns.question.type": "A", "dns.response_code": "NOERROR",
                  "dns.answers": [{"name": "www.example.org", "type": "CNAME", "ttl": 60, "data": "edge.example.net"},
                                  {"name": "edge.example.net", "type": "A", "ttl": 20, "data": "198.51.100.10"}],
                  "dns.resolved_ip": ["198.51.100.10"]},
                 id="v2-answers"),
    pytest.param({"version": 2, "type": "answer", "id": 10, "rrname": "six.example.", "rrtype": "AAAA",
                  "rcode": "NOERROR", "grouped": {"AAAA": ["2001:db8::1"]}},
                 {"dns.type": "answer", "dns.id": "10", "dns.question.name": "six.example",
                  "dns.question.type": "AAAA", "dns.response_code": "NOERROR",
                  "dns.answers": [{"type": "AAAA", "data": "2001:db8::1"}], "dns.resolved_ip": ["2001:db8::1"]},
                 id="v2-grouped-only"),
    pytest.param({"version": 3, "type": "response", "id": 5, "rcode": "NOERROR",
                  "queries": [{"rrname": "a.example", "rrtype": "A"}],
                  "answers": [{"rrname": "a.example", "rrtype": "A", "ttl": 30, "rdata": "192.0.2.1"}]},
                 {"dns.type": "answer", "dns.id": "5", "dns.question.name": "a.example", "dns.question.type": "A",
                  "dns.response_code": "NOERROR",
                  "dns.answers": [{"name": "a.example", "type": "A", "ttl": 30, "data": "192.0.2.1"}],
                  "dns.resolved_ip": ["192.0.2.1"]},
                 id="v3-response"),
    pytest.param({"version": 3, "type": "request", "id": 5, "queries": [{"rrname": "a.example", "rrtype": "A"}]},
                 {"dns.type": "query", "dns.id": "5", "dns.question.name": "a.example", "dns.question.type": "A",
                  "dns.response_code": None, "dns.answers": None, "dns.resolved_ip": None},
                 id="v3-request"),
]


@pytest.mark.parametrize(("dns", "expected"), DNS_CASES)
def test_dns(dns: dict[str, Any], expected: dict[str, Any]) -> None:
    event = normalise(eve("dns", proto="UDP", dest_port=53, dns=dns))
    assert pick(event, *expected) == expected
    assert pick(event, "event.dataset", "network.protocol", "event.type") == {
        "event.dataset": "suricata.dns", "network.protocol": "dns", "event.type": ["protocol"]}


def test_dns_header_flags_and_alert_metadata() -> None:
    answer = normalise(eve("dns", dns={"version": 2, "type": "answer", "id": 1, "rrname": "x.example",
                                       "rrtype": "A", "rcode": "NOERROR", "aa": True, "rd": True, "ra": False}))
    assert answer.fields["dns.header_flags"] == ["AA", "RD"]
    alert = normalise(eve("alert", alert={"signature_id": 1, "signature": "DNS TXT to evil", "severity": 2},
                          dns={"query": [{"type": "query", "id": 77, "rrname": "bad.evil.test", "rrtype": "TXT",
                                          "tx_id": 0}]}))
    assert pick(alert, "dns.type", "dns.id", "dns.question.name", "dns.question.type", "event.dataset") == {
        "dns.type": "query", "dns.id": "77", "dns.question.name": "bad.evil.test", "dns.question.type": "TXT",
        "event.dataset": "suricata.alert"}


def test_http() -> None:
    event = normalise(eve("http", app_proto="http", http=HTTP))
    assert pick(event, "url.original", "url.domain", "url.path", "url.query", "url.fragment", "url.port",
                "destination.domain", "http.request.method", "http.response.status_code", "http.version",
                "user_agent.original", "http.request.referrer", "http.response.body.bytes",
                "http.response.mime_type", "event.outcome") == {
        "url.original": "/download/tool.exe?x=1&y=2#top", "url.domain": "www.example.org",
        "url.path": "/download/tool.exe", "url.query": "x=1&y=2", "url.fragment": "top", "url.port": 8080,
        "destination.domain": "www.example.org", "http.request.method": "GET", "http.response.status_code": 200,
        "http.version": "1.1", "user_agent.original": "curl/8.4.0", "http.request.referrer": "http://ref.example/",
        "http.response.body.bytes": 48213, "http.response.mime_type": "application/x-dosexec",
        "event.outcome": "success"}


def test_http_proxy_request_with_absolute_url_and_a_failure_status() -> None:
    event = normalise(eve("http", http={"url": "http://cdn.example.net/a/b.js?v=2", "http_method": "CONNECT",
                                        "status": "503"}))
    assert pick(event, "url.domain", "url.scheme", "url.path", "url.query", "http.response.status_code",
                "event.outcome") == {"url.domain": "cdn.example.net", "url.scheme": "http", "url.path": "/a/b.js",
                                     "url.query": "v=2", "http.response.status_code": 503,
                                     "event.outcome": "failure"}


def test_tls() -> None:
    event = normalise(eve("tls", dest_port=443, tls={
        "subject": "CN=www.example.org", "issuerdn": "C=US, O=Let's Encrypt, CN=R3", "serial": "04:1A",
        "fingerprint": "5a:93:b4:00:33:84:8e:48:c5:56:99:cb:ac:5c:35:a0:e3:c9:69:02", "sni": "www.example.org.",
        "version": "TLS 1.2", "notbefore": "2024-01-01T00:00:00", "notafter": "2024-03-31T23:59:59",
        "session_resumed": True, "ja3": {"hash": "e7d705a3286e19ea42f587b344ee6865", "string": "771,4865"},
        "ja3s": {"hash": "f4febc55ea12b31ae17cfb7e614afda8", "string": "771,4865"}}))
    assert pick(event, "tls.client.server_name", "destination.domain", "tls.version", "tls.version_protocol",
                "tls.server.subject", "tls.server.issuer", "tls.server.not_before", "tls.server.not_after",
                "tls.server.hash.sha1", "related.hash", "tls.resumed", "tls.client.ja3", "tls.server.ja3s",
                "tls.server.x509.serial_number", "network.protocol") == {
        "tls.client.server_name": "www.example.org", "destination.domain": "www.example.org",
        "tls.version": "1.2", "tls.version_protocol": "tls", "tls.server.subject": "CN=www.example.org",
        "tls.server.issuer": "C=US, O=Let's Encrypt, CN=R3", "tls.server.not_before": "2024-01-01T00:00:00.000000Z",
        "tls.server.not_after": "2024-03-31T23:59:59.000000Z",
        "tls.server.hash.sha1": "5A93B40033848E48C55699CBAC5C35A0E3C96902",
        "related.hash": ["5A93B40033848E48C55699CBAC5C35A0E3C96902"], "tls.resumed": True,
        "tls.client.ja3": "e7d705a3286e19ea42f587b344ee6865", "tls.server.ja3s": "f4febc55ea12b31ae17cfb7e614afda8",
        "tls.server.x509.serial_number": "04:1A", "network.protocol": "tls"}


def test_fileinfo() -> None:
    event = normalise(eve("fileinfo", app_proto="http", http=HTTP, fileinfo={
        "filename": "/download/tool.exe", "magic": "PE32 executable (GUI) Intel 80386, for MS Windows",
        "gaps": False, "state": "CLOSED", "md5": MD5, "sha1": SHA1, "sha256": SHA256, "stored": False,
        "size": 48213, "tx_id": 0}))
    assert pick(event, "file.name", "file.path", "file.size", "file.hash.md5", "file.hash.sha1", "file.hash.sha256",
                "file.mime_type", "related.hash", "event.category", "event.type", "event.dataset") == {
        "file.name": "tool.exe", "file.path": "/download/tool.exe", "file.size": 48213, "file.hash.md5": MD5,
        "file.hash.sha1": SHA1, "file.hash.sha256": SHA256, "file.mime_type": "application/x-dosexec",
        "related.hash": [MD5, SHA1, SHA256], "event.category": ["file"], "event.type": ["info"],
        "event.dataset": "suricata.fileinfo"}
    assert event.fields["suricata.eve.fileinfo.magic"].startswith("PE32")


def test_anomaly_keeps_its_dataset() -> None:
    event = normalise(eve("anomaly", proto="UDP", anomaly={"type": "decode", "event": "decoder.ipv4.trunc_pkt"}))
    assert pick(event, "event.dataset", "event.kind", "event.category", "suricata.eve.anomaly.event") == {
        "event.dataset": "suricata.anomaly", "event.kind": "event", "event.category": ["network"],
        "suricata.eve.anomaly.event": "decoder.ipv4.trunc_pkt"}


def test_unknown_event_type_gets_the_common_fields() -> None:
    event = normalise(eve("SMB", smb={"command": "SMB2_COMMAND_CREATE"}))
    assert pick(event, "event.dataset", "network.protocol", "event.type") == {
        "event.dataset": "suricata.smb", "network.protocol": "smb", "event.type": ["protocol"]}
    odd = normalise(eve("bittorrent-dht"))
    assert pick(odd, "event.dataset", "event.category", "network.protocol") == {
        "event.dataset": "suricata.bittorrent-dht", "event.category": ["network"], "network.protocol": None}


@pytest.mark.parametrize(
    ("record", "reason"),
    [({"timestamp": TS, "src_ip": "10.0.0.1"}, "not an EVE record: no event_type"),
     ({"timestamp": "yesterday", "event_type": "dns"}, "EVE record has no valid timestamp: 'yesterday'"),
     ({"event_type": "dns"}, "EVE record has no valid timestamp: None")],
    ids=["no-event-type", "bad-timestamp", "no-timestamp"],
)
def test_records_that_are_not_eve(record: dict[str, Any], reason: str) -> None:
    with pytest.raises(NormalisationError) as caught:
        normalise(record)
    assert caught.value.reason == reason
    assert str(caught.value) == f"eve.json:1: {reason}"


# --- helpers --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "expected"),
    [("TLS 1.2", ("1.2", "tls")), ("TLS 1.3", ("1.3", "tls")), ("TLSv1", ("1.0", "tls")), ("SSLv3", ("3.0", "ssl")),
     ("TLSv12", ("1.2", "tls")), ("DTLSv10", ("1.0", "dtls")), ("UNDETERMINED", None), (None, None)],
    ids=["suricata-1.2", "suricata-1.3", "old-suricata-1.0", "sslv3", "zeek-1.2", "zeek-dtls", "undetermined",
         "none"],
)
def test_tls_version(version: str | None, expected: tuple[str, str] | None) -> None:
    fields = tls_version(version)
    assert ((fields["tls.version"], fields["tls.version_protocol"]) if fields else None) == expected


def test_iso_utc_and_url_parts() -> None:
    assert iso_utc(1642247370.5) == "2022-01-15T11:49:30.500000Z"
    assert iso_utc("2018-03-24T14:37:19.037299-0600") == "2018-03-24T20:37:19.037299Z"
    assert iso_utc("soon") is None
    assert iso_utc(float("nan")) is None
    assert url_parts("http://[::1/") == {}
    assert url_parts("/a/b") == {"url.path": "/a/b"}


# --- files ----------------------------------------------------------------------------------------------------


def test_read_file_ndjson_keeps_going_after_bad_lines(write: WriteFile) -> None:
    good = orjson.dumps(eve("dns", dns={"type": "query", "id": 1, "rrname": "a.example", "rrtype": "A"})).decode()
    lines = [good, "", "{broken", "[1, 2]", '{"timestamp": "2024-03-11T10:00:00Z"}', good.replace("a.ex", "b.ex")]
    path = write("eve.json", "\n".join(lines) + "\n")
    items = list(read_file(path))
    events = [i for i in items if isinstance(i, Event)]
    rejected = [i for i in items if isinstance(i, Rejected)]
    assert [e.origin.offset for e in events] == [1, 6]
    assert [e.raw for e in events] == [lines[0], lines[5]]
    assert [e.id for e in events] == [event_id_for(lines[0], events[0].timestamp_ms),
                                       event_id_for(lines[5], events[1].timestamp_ms)]
    assert {e.origin.format for e in events} == {"suricata-eve"}
    assert events[1].fields["dns.question.name"] == "b.example"
    assert [(r.reason, r.origin.offset, r.raw, r.stage) for r in rejected] == [
        ("line 3: invalid JSON at column 2: unexpected character, expected a string key", 3, "{broken", "read"),
        ("line 4: expected a JSON object, got an array", 4, "[1, 2]", "read"),
        ("line 5: not an EVE record: no event_type", 5, lines[4], "normalise"),
    ]


def test_read_file_pretty_printed_array(write: WriteFile) -> None:
    records = [eve("alert", alert={"signature_id": n, "signature": f"sig {n}", "severity": 3}) for n in (1, 2)]
    path = write("alerts.json", json.dumps(records, indent=2))
    events = list(read_file(path))
    assert all(isinstance(e, Event) for e in events)
    assert [e.fields["rule.id"] for e in events if isinstance(e, Event)] == ["1", "2"]
    assert [e.origin.offset for e in events] == [2, 18]  # the line each record starts on
    first = events[0]
    assert isinstance(first, Event)
    assert json.loads(first.raw) == records[0]


def test_read_file_array_with_a_broken_record(write: WriteFile) -> None:
    records = [json.dumps(eve("alert", alert={"signature_id": n, "signature": "s", "severity": 3}), indent=2)
               for n in (1, 2)]
    broken = '{\n  "timestamp": oops,\n  "event_type": "alert"\n}'
    path = write("alerts.json", "[\n" + ",\n".join([records[0], broken, records[1]]) + "\n]\n")
    items = list(read_file(path))
    assert [type(i).__name__ for i in items] == ["Event", "Rejected", "Event"]
    rejected = items[1]
    assert isinstance(rejected, Rejected)
    assert (rejected.reason, rejected.origin.offset, rejected.raw) == (
        "invalid JSON at line 19 column 16: Expecting value", 18, broken + ",")  # the generic reader's reject
    assert [i.fields["rule.id"] for i in items if isinstance(i, Event)] == ["1", "2"]


def test_read_file_missing(tmp_path: Path) -> None:
    (item,) = read_file(tmp_path / "nope.json")
    assert isinstance(item, Rejected)
    assert item.reason == "cannot read file: No such file or directory"


@pytest.mark.parametrize(
    ("head", "expected"),
    [(orjson.dumps(eve("flow")) + b"\n", True),
     (b"\xef\xbb\xbf" + orjson.dumps(eve("stats")), True),
     (json.dumps([eve("alert")], indent=2).encode(), True),
     (orjson.dumps(eve("http", http={"url": "/" + "x" * 5000}))[:1000], True),
     (b'{"@timestamp": "2024-03-11T10:00:00Z", "message": "hello"}\n', False),
     (b'{"ts": 1692161622.03, "uid": "C1", "id.orig_h": "10.0.0.1"}\n', False),
     (b'{"event_type": "alert"}\n', False),
     (b"#separator \\x09\n", False),
     (b"", False)],
    ids=["ndjson", "bom", "pretty-array", "truncated-line", "generic-json", "zeek-json", "no-timestamp", "zeek-tsv",
         "empty"],
)
def test_sniff(head: bytes, expected: bool) -> None:
    assert sniff(head) is expected


# --- the shared corpus and routing ----------------------------------------------------------------------------


def test_shared_eve_alerts(shared_path: Callable[[str], Path]) -> None:
    files = sorted(shared_path("network").rglob("*.json"))
    assert files, "no EVE files in the shared network corpus"
    problems: list[str] = []
    events = 0
    for path in files:
        if not sniff(path.read_bytes()[:65536]):
            problems.append(f"{path}: not sniffed as EVE")
        for item in read_file(path):
            if isinstance(item, Rejected):
                problems.append(item.describe())
                continue
            events += 1
            if item.fields.get("event.kind") == "alert":
                missing = [name for name in ("rule.id", "rule.name", "source.ip", "destination.ip", "event.severity")
                           if item.fields.get(name) in (None, "")]
                if missing:
                    problems.append(f"{item.origin.describe()}: alert without {', '.join(missing)}")
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:50])
    assert events >= 548  # the four sample sets hold 548 alerts


DNS_RULE = """title: DNS lookup of evil.test
id: 6d1c2a9e-0a43-4d7e-9a55-3f4b7a2b1c01
status: test
level: high
logsource:
  category: dns
detection:
  selection:
    dns.question.name|endswith: '.evil.test'
  condition: selection
"""


def test_dns_record_routes_to_a_sigma_dns_rule(tmp_path: Path) -> None:
    (tmp_path / "dns.yml").write_text(DNS_RULE)
    sources = load_sources()
    ruleset = load_rules([tmp_path], sources=sources)
    assert not ruleset.errors
    engine = SigmaEngine(ruleset.rules, sources)
    hit = normalise(eve("dns", dns={"type": "query", "id": 1, "rrname": "c2.evil.test", "rrtype": "A"}))
    miss = normalise(eve("dns", dns={"type": "query", "id": 2, "rrname": "www.example.org", "rrtype": "A"}))
    assert engine.route(hit) is not None  # suricata.dns is a known source: category dns
    assert [a.rule.title for a in engine.match(hit)] == ["DNS lookup of evil.test"]
    assert engine.match(miss) == []
    assert engine.stats.unknown_sources == {}


@pytest.mark.parametrize(("fields", "full"), [
    ({"url.original": "/raw/abc?x=1", "url.domain": "pastebin.com"}, "http://pastebin.com/raw/abc?x=1"),
    ({"url.original": "/a", "url.domain": "portal.gov.vn", "url.port": 8080}, "http://portal.gov.vn:8080/a"),
    ({"url.original": "/a", "url.domain": "2001:db8::1", "url.port": 80}, "http://[2001:db8::1]/a"),
    ({"url.original": "http://x.example/p", "url.scheme": "http", "url.domain": "x.example"}, "http://x.example/p"),
    ({"url.original": "/a"}, None),  # host unknown
    ({"url.original": "*", "url.domain": "h"}, None),  # OPTIONS *: not a path
], ids=["relative", "port", "ipv6", "absolute", "no-host", "asterisk"])
def test_url_full_is_built_from_host_and_target(fields: dict[str, Any], full: str | None) -> None:
    out = dict(fields)
    put_url_full(out)
    assert out.get("url.full") == full
