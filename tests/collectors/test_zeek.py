"""Zeek logs to ECS: the TSV header and its escapes, JSON lines, the per-log mappings, the reader's rejects,
sniffing, the shared lsass-campaign logs and routing to Sigma `category: dns` and `product: zeek` rules."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from collectors.errors import NormalisationError
from collectors.zeek import FORMAT, ZeekHeader, ZeekLogError, normalise_record, parse_row, read_file, sniff
from correlator.model import Event, EventOrigin, Rejected, event_id_for
from correlator.sigma.engine import SigmaEngine
from correlator.sigma.loader import load_rules
from correlator.sigma.sources import load_sources
from tests.collectors.conftest import WriteFile

PREAMBLE = ["#separator \\x09", "#set_separator\t,", "#empty_field\t(empty)", "#unset_field\t-"]
CONN_FIELDS = ("ts uid id.orig_h id.orig_p id.resp_h id.resp_p proto service duration orig_bytes resp_bytes "
               "conn_state local_orig local_resp missed_bytes history orig_pkts orig_ip_bytes resp_pkts "
               "resp_ip_bytes tunnel_parents")
CONN_TYPES = ("time string addr port addr port enum string interval count count string bool bool count string "
              "count count count count set[string]")
CONN_ROW = ("1692161643.549491 CX6po61SVaO8po0uh8 192.168.1.41 55213 10.0.5.13 80 tcp http 1.201128 0 403 SF T F "
            "0 ShADadfF 6 320 5 615 -")
CONN_JSON = {"ts": 1692161643.549491, "uid": "CX6po61SVaO8po0uh8", "id.orig_h": "192.168.1.41", "id.orig_p": 55213,
             "id.resp_h": "10.0.5.13", "id.resp_p": 80, "proto": "tcp", "service": "http", "duration": 1.201128,
             "orig_bytes": 0, "resp_bytes": 403, "conn_state": "SF", "local_orig": True, "local_resp": False,
             "missed_bytes": 0, "history": "ShADadfF", "orig_pkts": 6, "orig_ip_bytes": 320, "resp_pkts": 5,
             "resp_ip_bytes": 615}
DNS_FIELDS = ("ts uid id.orig_h id.orig_p id.resp_h id.resp_p proto trans_id rtt query qclass qclass_name qtype "
              "qtype_name rcode rcode_name AA TC RD RA Z answers TTLs rejected")
DNS_TYPES = ("time string addr port addr port enum count interval string count string count string count string "
             "bool bool bool bool count vector[string] vector[interval] bool")
DNS_ROW = ("1692161622.036086 Cdns1 10.0.0.5 52605 10.0.0.53 53 udp 58519 0.001200 c2.evil.test 1 C_INTERNET 1 A "
           "0 NOERROR F F T T 0 cname.evil.test,203.0.113.7 60.000000,300.000000 F")


def tab(words: str) -> str:
    return words.replace(" ", "\t")


def tsv_log(path: str, fields: str, types: str, *rows: str, close: bool = True) -> str:
    lines = [*PREAMBLE, f"#path\t{path}", "#open\t2023-08-16-01-28-55", "#fields\t" + tab(fields),
             "#types\t" + tab(types), *rows]
    if close:
        lines.append("#close\t2023-08-16-01-28-55")
    return "\n".join(lines) + "\n"


def header(fields: str, types: str, path: str = "conn") -> ZeekHeader:
    return ZeekHeader(path=path, fields=tuple(fields.split()), types=tuple(types.split()))


def event_of(fields: str, types: str, row: str, path: str) -> Event:
    line = tab(row)
    record = parse_row(line, header(fields, types, path))
    return normalise_record(record, line, EventOrigin(path=f"{path}.log", offset=9, format=FORMAT), log_path=path)


def pick(event: Event, *names: str) -> dict[str, Any]:
    return {name: event.fields.get(name) for name in names}


def split(items: list[Event | Rejected]) -> tuple[list[Event], list[Rejected]]:
    return [i for i in items if isinstance(i, Event)], [i for i in items if isinstance(i, Rejected)]


# --- TSV: header and values -----------------------------------------------------------------------------------


def test_header_lines_build_the_header() -> None:
    state = ZeekHeader()
    for line in [*PREAMBLE, "#path\tconn", "#open\t2023-08-16-01-28-55", "#fields\t" + tab(CONN_FIELDS),
                 "#types\t" + tab(CONN_TYPES)]:
        state = state.with_line(line)
    assert (state.separator, state.set_separator, state.empty_field, state.unset_field, state.path) == (
        "\t", ",", "(empty)", "-", "conn")
    assert state.fields[:3] == ("ts", "uid", "id.orig_h")
    assert state.types[-1] == "set[string]"
    assert state.with_line("#close\t2023-08-16-01-28-55") == state
    assert state.with_line("#separator \\x7c") == ZeekHeader(separator="|")  # a new block starts afresh


def test_types_that_do_not_match_the_fields() -> None:
    state = ZeekHeader().with_line("#fields\tts\tuid")
    with pytest.raises(ZeekLogError) as caught:
        state.with_line("#types\ttime")
    assert caught.value.reason == ("#types has 1 entries but #fields has 2; the values of this block are read as "
                                   "strings")


def test_values_are_typed_by_the_header() -> None:
    record = parse_row(tab(CONN_ROW), header(CONN_FIELDS, CONN_TYPES))
    assert record == CONN_JSON  # what Zeek writes for the same connection as JSON (unset tunnel_parents left out)
    assert type(record["ts"]) is float
    assert type(record["id.orig_p"]) is int


@pytest.mark.parametrize(
    ("zeek_type", "text", "expected"),
    [("string", "a\\x09b", "a\tb"),
     ("string", "caf\\xc3\\xa9", "café"),
     ("string", "\\x2d", "-"),
     ("string", "(empty)", ""),
     ("string", "bad\\xff", "bad\\xff"),
     ("string", "C:\\Windows", "C:\\Windows"),
     ("set[string]", "(empty)", []),
     ("set[string]", "a,b\\x2cc", ["a", "b,c"]),
     ("vector[string]", "text/html,-", ["text/html", None]),
     ("vector[interval]", "60.000000,0.5", [60.0, 0.5]),
     ("set[count]", "1,2", [1, 2]),
     ("bool", "T", True),
     ("bool", "F", False),
     ("port", "443", 443),
     ("double", "0.25", 0.25),
     ("addr", "2001:db8::1", "2001:db8::1"),
     ("enum", "udp", "udp")],
    ids=["tab-escape", "utf8-escape", "escaped-unset", "empty-string", "invalid-utf8", "backslash", "empty-set",
         "set-with-escaped-separator", "vector-unset-element", "vector-interval", "set-count", "true", "false",
         "port", "double", "addr", "enum"],
)
def test_value_conversion(zeek_type: str, text: str, expected: Any) -> None:
    assert parse_row(text, ZeekHeader(fields=("f",), types=(zeek_type,))) == {"f": expected}


def test_unset_fields_are_left_out() -> None:
    assert parse_row(tab("- -"), ZeekHeader(fields=("a", "b"), types=("string", "set[string]"))) == {}


@pytest.mark.parametrize(
    ("types", "row", "reason"),
    [(("count", "string"), "1", "expected 2 fields, got 1"),
     (("count", "string"), "1\tb\tc", "expected 2 fields, got 3"),
     (("count", "string"), "abc\tb", "field a: 'abc' is not a valid count"),
     (("bool", "string"), "X\tb", "field a: 'X' is not a valid bool"),
     (("time", "string"), "yesterday\tb", "field a: 'yesterday' is not a valid time")],
    ids=["too-few", "too-many", "bad-count", "bad-bool", "bad-time"],
)
def test_bad_rows(types: tuple[str, str], row: str, reason: str) -> None:
    with pytest.raises(ZeekLogError) as caught:
        parse_row(row, ZeekHeader(fields=("a", "b"), types=types))
    assert caught.value.reason == reason


# --- TSV files ------------------------------------------------------------------------------------------------


def test_read_tsv_file(write: WriteFile) -> None:
    text = tsv_log("conn", CONN_FIELDS, CONN_TYPES, tab(CONN_ROW), tab(CONN_ROW.replace("55213", "55214")))
    path = write("conn.log", text)
    events, rejected = split(list(read_file(path)))
    assert rejected == []
    assert [e.origin.offset for e in events] == [9, 10]
    assert [e.origin.format for e in events] == ["zeek", "zeek"]
    assert [e.raw for e in events] == [tab(CONN_ROW), tab(CONN_ROW.replace("55213", "55214"))]
    assert [e.id for e in events] == [event_id_for(e.raw, e.timestamp_ms) for e in events]
    assert events[1].fields["source.port"] == 55214


def test_bad_rows_are_rejected_and_reading_goes_on(write: WriteFile) -> None:
    short = tab(CONN_ROW.rsplit(" ", 1)[0])
    bad_count = tab(CONN_ROW.replace(" 403 ", " lots "))
    text = tsv_log("conn", CONN_FIELDS, CONN_TYPES, short, "", bad_count, tab(CONN_ROW))
    events, rejected = split(list(read_file(write("conn.log", text.replace("\n", "\r\n")))))
    assert [e.origin.offset for e in events] == [12]
    assert [(r.reason, r.origin.offset, r.raw, r.stage) for r in rejected] == [
        ("line 9: expected 21 fields, got 20", 9, short, "read"),
        ("line 11: field resp_bytes: 'lots' is not a valid count", 11, bad_count, "read"),
    ]


def test_rotated_logs_concatenated_give_each_block_its_header(write: WriteFile) -> None:
    text = (tsv_log("conn", CONN_FIELDS, CONN_TYPES, tab(CONN_ROW))
            + tsv_log("dns", DNS_FIELDS, DNS_TYPES, tab(DNS_ROW), close=False))
    events, rejected = split(list(read_file(write("all.log", text))))
    assert rejected == []
    assert [e.fields["event.dataset"] for e in events] == ["zeek.conn", "zeek.dns"]
    assert events[1].fields["dns.question.name"] == "c2.evil.test"


def test_other_separators(write: WriteFile) -> None:
    text = "\n".join(["#separator \\x7c", "#set_separator|;", "#empty_field|EMPTY", "#unset_field|NONE",
                      "#path|dns", "#fields|ts|uid|query|answers|TTLs",
                      "#types|time|string|string|vector[string]|vector[interval]",
                      "1692161622.5|C1|a\\x7cb.example|1.2.3.4;5.6.7.8|1.0;2.0",
                      "1692161623.5|C2|NONE|EMPTY|NONE"]) + "\n"
    events, rejected = split(list(read_file(write("x.log", text))))
    assert rejected == []
    assert events[0].fields["query"] == "a|b.example"
    assert events[0].fields["dns.resolved_ip"] == ["1.2.3.4", "5.6.7.8"]
    assert "query" not in events[1].fields
    assert events[1].fields["answers"] == []


def test_header_problems_are_rejected(write: WriteFile) -> None:
    text = "\n".join(["1692161622.5\tC1", *PREAMBLE, "#path\tweird", "#fields\tts\tuid\tname",
                      "#types\ttime\tstring", "1692161622.5\tC1\tbad_IP_checksum"]) + "\n"
    events, rejected = split(list(read_file(write("weird.log", text))))
    assert [r.reason for r in rejected] == [
        "line 1: data row before a #fields header",
        "line 8: #types has 2 entries but #fields has 3; the values of this block are read as strings",
    ]
    assert events[0].fields["name"] == "bad_IP_checksum"
    assert events[0].fields["ts"] == "1692161622.5"  # a string, like every value of the block
    assert events[0].timestamp_ms == 1692161622500


def test_a_line_that_is_not_utf8(write: WriteFile) -> None:
    text = tsv_log("conn", CONN_FIELDS, CONN_TYPES, tab(CONN_ROW)).encode()
    text = text.replace(b"ShADadfF", b"Sh\xffAD")
    (item, *_) = (i for i in read_file(write("conn.log", text)) if isinstance(i, Rejected))
    assert item.reason == "line 9: not UTF-8: invalid start byte at column 105"


def test_missing_file(tmp_path: Path) -> None:
    (item,) = read_file(tmp_path / "conn.log")
    assert isinstance(item, Rejected)
    assert item.reason == "cannot read file: No such file or directory"


# --- JSON lines -----------------------------------------------------------------------------------------------


def test_json_and_tsv_give_the_same_event(write: WriteFile) -> None:
    (tsv_event,) = read_file(write("conn.log", tsv_log("conn", CONN_FIELDS, CONN_TYPES, tab(CONN_ROW))))
    (json_event,) = read_file(write("conn.json", orjson.dumps(CONN_JSON).decode() + "\n"))
    assert isinstance(tsv_event, Event)
    assert isinstance(json_event, Event)
    assert json_event.ecs == tsv_event.ecs
    assert json_event.fields == tsv_event.fields
    assert json_event.timestamp_ms == tsv_event.timestamp_ms == 1692161643549


def test_json_lines_variants(write: WriteFile) -> None:
    lines = [
        {"_path": "dns", "ts": "2023-08-16T04:53:42.036086Z", "uid": "C1", "id.orig_h": "10.0.0.5",
         "id.orig_p": 5353, "id.resp_h": "10.0.0.53", "id.resp_p": 53, "proto": "udp", "query": "a.example"},
        {"ts": 1692161622.5, "uid": "C2", "id": {"orig_h": "10.0.0.6", "orig_p": 1, "resp_h": "10.0.0.7",
                                                "resp_p": 443}, "server_name": "x.example", "cipher": "TLS_AES"},
        {"ts": 1692161622.5, "uid": "C3", "id.orig_h": "10.0.0.6", "mystery": 1},
        {"uid": "C4", "_path": "conn"},
        "not json",
        [1],
    ]
    text = "\n".join(line if isinstance(line, str) else orjson.dumps(line).decode() for line in lines) + "\n"
    events, rejected = split(list(read_file(write("zeek.json", text))))
    assert [(e.fields["event.dataset"], e.timestamp_ms) for e in events] == [
        ("zeek.dns", 1692161622036), ("zeek.ssl", 1692161622500)]
    assert events[0].fields["dns.question.name"] == "a.example"  # `_path` names the log
    assert pick(events[1], "source.ip", "destination.port", "tls.client.server_name", "id.orig_h") == {
        "source.ip": "10.0.0.6", "destination.port": 443, "tls.client.server_name": "x.example",
        "id.orig_h": "10.0.0.6"}  # nested `id`, the log guessed from its fields
    assert [(r.reason, r.stage) for r in rejected] == [
        ("line 3: cannot tell which Zeek log this record is from (no _path, #path or known file name)", "normalise"),
        ("line 4: Zeek record has no valid ts: None", "normalise"),
        ("line 5: invalid JSON at column 1: invalid literal, expected 'null'", "read"),
        ("line 6: expected a JSON object, got an array", "read"),
    ]


def test_file_name_names_the_log(write: WriteFile) -> None:
    record = {"ts": 1692161622.5, "uid": "C3", "id.orig_h": "10.0.0.6", "mystery": 1}
    (event,) = read_file(write("weird.2023-08-16-01-00-00.log", orjson.dumps(record).decode() + "\n"))
    assert isinstance(event, Event)
    assert event.fields["event.dataset"] == "zeek.weird"


def test_normalise_record_without_a_log_name() -> None:
    with pytest.raises(NormalisationError) as caught:
        normalise_record({"ts": 1.0}, "{}", EventOrigin(path="<stream>", format=FORMAT))
    assert str(caught.value) == ("<stream>: cannot tell which Zeek log this record is from (no _path, #path or "
                                 "known file name)")


# --- per log --------------------------------------------------------------------------------------------------


def test_conn() -> None:
    event = event_of(CONN_FIELDS, CONN_TYPES, CONN_ROW, "conn")
    assert pick(event, "@timestamp", "event.module", "event.dataset", "event.kind", "event.category", "event.type",
                "source.ip", "source.port", "destination.ip", "destination.port", "related.ip", "network.transport",
                "network.protocol", "network.direction", "event.duration", "source.bytes", "destination.bytes",
                "source.packets", "destination.packets", "network.bytes", "network.packets", "zeek.session_id",
                "zeek.conn.state", "zeek.conn.history", "zeek.conn.orig_bytes") == {
        "@timestamp": "2023-08-16T04:54:03.549Z", "event.module": "zeek", "event.dataset": "zeek.conn",
        "event.kind": "event", "event.category": ["network"], "event.type": ["connection", "start", "end"],
        "source.ip": "192.168.1.41", "source.port": 55213, "destination.ip": "10.0.5.13", "destination.port": 80,
        "related.ip": ["192.168.1.41", "10.0.5.13"], "network.transport": "tcp", "network.protocol": "http",
        "network.direction": "outbound", "event.duration": 1_201_128_000, "source.bytes": 320,
        "destination.bytes": 615, "source.packets": 6, "destination.packets": 5, "network.bytes": 935,
        "network.packets": 11, "zeek.session_id": "CX6po61SVaO8po0uh8", "zeek.conn.state": "SF",
        "zeek.conn.history": "ShADadfF", "zeek.conn.orig_bytes": 0}
    # the record's own names, as SigmaHQ's zeek rules read them
    assert pick(event, "id.resp_h", "conn_state", "uid") == {"id.resp_h": "10.0.5.13", "conn_state": "SF",
                                                               "uid": "CX6po61SVaO8po0uh8"}
    assert event.ecs["zeek"]["conn"]["id"]["orig_h"] == "192.168.1.41"
    assert event.ecs["zeek"]["session_id"] == "CX6po61SVaO8po0uh8"


def test_the_ecs_document_is_built_on_first_use() -> None:
    event = event_of(DNS_FIELDS, DNS_TYPES, DNS_ROW, "dns")
    assert event.ecs_deferred
    assert event.native["event.dataset"] == "zeek.dns"  # routing reads `native`
    document = event.to_document()
    assert document["dns"]["question"]["name"] == "c2.evil.test"
    assert document["zeek"]["dns"]["id"]["resp_p"] == 53
    assert document["zeek"]["session_id"] == "Cdns1"
    assert document["@timestamp"] == "2023-08-16T04:53:42.036Z"


@pytest.mark.parametrize(
    ("local_orig", "local_resp", "expected"),
    [("T", "T", "internal"), ("T", "F", "outbound"), ("F", "T", "inbound"), ("F", "F", "external"),
     ("-", "-", None), ("T", "-", "outbound")],
    ids=["internal", "outbound", "inbound", "external", "unknown", "half-known"],
)
def test_conn_direction(local_orig: str, local_resp: str, expected: str | None) -> None:
    row = CONN_ROW.replace(" SF T F ", f" SF {local_orig} {local_resp} ")
    assert event_of(CONN_FIELDS, CONN_TYPES, row, "conn").fields.get("network.direction") == expected


@pytest.mark.parametrize(
    ("state", "types"),
    [("S0", ["connection", "start"]), ("REJ", ["connection", "start", "denied"]),
     ("RSTRH", ["connection", "info"]), ("OTH", ["connection", "info"])],
    ids=["S0", "REJ", "RSTRH", "OTH"],
)
def test_conn_state_types(state: str, types: list[str]) -> None:
    event = event_of(CONN_FIELDS, CONN_TYPES, CONN_ROW.replace(" SF ", f" {state} "), "conn")
    assert pick(event, "zeek.conn.state", "event.type") == {"zeek.conn.state": state, "event.type": types}


def test_dns() -> None:
    event = event_of(DNS_FIELDS, DNS_TYPES, DNS_ROW, "dns")
    assert pick(event, "event.dataset", "network.protocol", "network.transport", "dns.question.name",
                "dns.question.type", "dns.question.class", "dns.response_code", "dns.id", "dns.type",
                "dns.header_flags", "dns.answers", "dns.resolved_ip", "query", "zeek.dns.TTLs") == {
        "event.dataset": "zeek.dns", "network.protocol": "dns", "network.transport": "udp",
        "dns.question.name": "c2.evil.test", "dns.question.type": "A", "dns.question.class": "C_INTERNET",
        "dns.response_code": "NOERROR", "dns.id": "58519", "dns.type": "answer", "dns.header_flags": ["RD", "RA"],
        "dns.answers": [{"data": "cname.evil.test", "ttl": 60}, {"data": "203.0.113.7", "ttl": 300}],
        "dns.resolved_ip": ["203.0.113.7"], "query": "c2.evil.test", "zeek.dns.TTLs": [60.0, 300.0]}


def test_dns_without_a_response() -> None:
    row = ("1692161622.036086 Cdns2 10.0.0.5 52605 10.0.0.53 53 udp 1 - x.example 1 C_INTERNET 28 AAAA - - F F T F 0 "
           "- - F")
    event = event_of(DNS_FIELDS, DNS_TYPES, row, "dns")
    assert pick(event, "dns.type", "dns.question.type", "dns.response_code", "dns.answers") == {
        "dns.type": "query", "dns.question.type": "AAAA", "dns.response_code": None, "dns.answers": None}


HTTP_FIELDS = ("ts uid id.orig_h id.orig_p id.resp_h id.resp_p trans_depth method host uri referrer version "
               "user_agent request_body_len response_body_len status_code status_msg tags username resp_fuids "
               "resp_mime_types")
HTTP_TYPES = ("time string addr port addr port count string string string string string string count count count "
              "string set[enum] string vector[string] vector[string]")
HTTP_ROW = ("1692161644.001072 Chttp1 192.168.1.41 55213 10.0.5.13 80 1 GET evil.example "
            "/dl/payload.exe?id=7\\x20x \\x2d 1.1 Mozilla/5.0\\x20(caf\\xc3\\xa9) 0 248 404 Not\\x20Found (empty) "
            "admin FrbzTv4YFggdtCloDi,- text/html")


def test_http() -> None:
    event = event_of(HTTP_FIELDS, HTTP_TYPES, HTTP_ROW, "http")
    assert pick(event, "event.category", "event.type", "event.outcome", "network.protocol", "http.request.method",
                "url.domain", "destination.domain", "url.original", "url.path", "url.query",
                "http.response.status_code", "http.version", "user_agent.original", "http.request.referrer",
                "http.request.body.bytes", "http.response.body.bytes", "url.username", "zeek.http.tags",
                "zeek.http.resp_fuids", "zeek.http.status_msg") == {
        "event.category": ["network", "web"], "event.type": ["access", "protocol"], "event.outcome": "failure",
        "network.protocol": "http", "http.request.method": "GET", "url.domain": "evil.example",
        "destination.domain": "evil.example", "url.original": "/dl/payload.exe?id=7 x", "url.path": "/dl/payload.exe",
        "url.query": "id=7 x", "http.response.status_code": 404, "http.version": "1.1",
        "user_agent.original": "Mozilla/5.0 (café)", "http.request.referrer": "-", "http.request.body.bytes": 0,
        "http.response.body.bytes": 248, "url.username": "admin", "zeek.http.tags": [],
        "zeek.http.resp_fuids": ["FrbzTv4YFggdtCloDi", None], "zeek.http.status_msg": "Not Found"}


SSL_FIELDS = ("ts uid id.orig_h id.orig_p id.resp_h id.resp_p version cipher curve server_name resumed "
              "next_protocol established cert_chain_fps ja3 ja3s")
SSL_TYPES = "time string addr port addr port string string string string bool string bool vector[string] string string"


def test_ssl_with_the_ja3_plugin() -> None:
    fingerprint = "b765518127e58d334a3596a6572a09fa727d59c86214c4eb8f499a141ac15579"
    row = (f"1692161674.667337 Cssl1 192.168.1.41 51129 10.0.5.13 8080 TLSv13 TLS_AES_256_GCM_SHA384 x25519 "
           f"c2.evil.test F h2 T {fingerprint} e7d705a3286e19ea42f587b344ee6865 f4febc55ea12b31ae17cfb7e614afda8")
    event = event_of(SSL_FIELDS, SSL_TYPES, row, "ssl")
    assert pick(event, "network.protocol", "tls.client.server_name", "destination.domain", "tls.version",
                "tls.version_protocol", "tls.cipher", "tls.curve", "tls.next_protocol", "tls.resumed",
                "tls.established", "tls.client.ja3", "tls.server.ja3s", "tls.server.hash.sha256") == {
        "network.protocol": "tls", "tls.client.server_name": "c2.evil.test", "destination.domain": "c2.evil.test",
        "tls.version": "1.3", "tls.version_protocol": "tls", "tls.cipher": "TLS_AES_256_GCM_SHA384",
        "tls.curve": "x25519", "tls.next_protocol": "h2", "tls.resumed": False, "tls.established": True,
        "tls.client.ja3": "e7d705a3286e19ea42f587b344ee6865", "tls.server.ja3s": "f4febc55ea12b31ae17cfb7e614afda8",
        "tls.server.hash.sha256": fingerprint.upper()}


def test_ssl_without_the_ja3_plugin() -> None:
    fields = SSL_FIELDS.rsplit(" ", 2)[0]
    types = SSL_TYPES.rsplit(" ", 2)[0]
    row = "1692161674.667337 Cssl1 192.168.1.41 51129 10.0.5.13 8080 TLSv10 - - - F - F (empty)"
    event = event_of(fields, types, row, "ssl")
    assert pick(event, "tls.version", "tls.client.ja3", "tls.client.server_name", "tls.server.hash.sha256") == {
        "tls.version": "1.0", "tls.client.ja3": None, "tls.client.server_name": None, "tls.server.hash.sha256": None}


def test_files() -> None:
    fields = ("ts fuid tx_hosts rx_hosts conn_uids source analyzers mime_type filename seen_bytes total_bytes md5 "
              "sha1 sha256")
    types = ("time string set[addr] set[addr] set[string] string set[string] string string count count string "
             "string string")
    md5, sha1, sha256 = "a" * 32, "b" * 40, "c" * 64
    row = (f"1692161648.333854 FmHW 10.0.5.13 192.168.1.41 CwSL HTTP PE,MD5 application/x-dosexec "
           f"payload.exe 7168 7168 {md5} {sha1} {sha256}")
    event = event_of(fields, types, row, "files")
    assert pick(event, "event.category", "event.type", "file.name", "file.mime_type", "file.size", "file.hash.md5",
                "file.hash.sha1", "file.hash.sha256", "related.hash", "related.ip", "zeek.files.fuid",
                "zeek.files.analyzers") == {
        "event.category": ["file"], "event.type": ["info"], "file.name": "payload.exe",
        "file.mime_type": "application/x-dosexec", "file.size": 7168, "file.hash.md5": md5, "file.hash.sha1": sha1,
        "file.hash.sha256": sha256, "related.hash": [md5, sha1, sha256], "related.ip": ["10.0.5.13", "192.168.1.41"],
        "zeek.files.fuid": "FmHW", "zeek.files.analyzers": ["PE", "MD5"]}


def test_notice() -> None:
    fields = "ts uid id.orig_h id.orig_p id.resp_h id.resp_p proto note msg sub src dst p actions"
    types = "time string addr port addr port enum enum string string addr addr port set[enum]"
    row = ("1692161700.5 - - - - - - Scan::Port_Scan 192.168.1.41\\x20scanned\\x2020\\x20ports ports\\x2022,80 "
           "192.168.1.41 10.0.5.13 22 Notice::ACTION_LOG")
    event = event_of(fields, types, row, "notice")
    assert pick(event, "event.kind", "event.category", "rule.name", "message", "rule.description", "source.ip",
                "destination.ip", "destination.port", "zeek.notice.actions") == {
        "event.kind": "alert", "event.category": ["intrusion_detection"], "rule.name": "Scan::Port_Scan",
        "message": "192.168.1.41 scanned 20 ports", "rule.description": "ports 22,80", "source.ip": "192.168.1.41",
        "destination.ip": "10.0.5.13", "destination.port": 22, "zeek.notice.actions": ["Notice::ACTION_LOG"]}


def test_x509() -> None:
    fields = ("ts fingerprint certificate.version certificate.serial certificate.subject certificate.issuer "
              "certificate.not_valid_before certificate.not_valid_after certificate.key_alg certificate.sig_alg "
              "certificate.key_length certificate.exponent san.dns")
    types = "time string count string string string time time string string count string vector[string]"
    row = ("1692161674.667337 b765 3 8BB00EE CN=evil.example CN=evil.example 1642247370.000000 1926071370.000000 "
           "rsaEncryption sha256WithRSAEncryption 2048 65537 evil.example,www.evil.example")
    event = event_of(fields, types, row, "x509")
    assert pick(event, "x509.serial_number", "x509.subject.distinguished_name", "x509.issuer.distinguished_name",
                "x509.not_before", "x509.not_after", "x509.version_number", "x509.public_key_size",
                "x509.alternative_names", "certificate.serial") == {
        "x509.serial_number": "8BB00EE", "x509.subject.distinguished_name": "CN=evil.example",
        "x509.issuer.distinguished_name": "CN=evil.example", "x509.not_before": "2022-01-15T11:49:30.000000Z",
        "x509.not_after": "2031-01-13T11:49:30.000000Z", "x509.version_number": "3", "x509.public_key_size": 2048,
        "x509.alternative_names": ["evil.example", "www.evil.example"], "certificate.serial": "8BB00EE"}


def test_other_logs_get_the_common_fields() -> None:
    event = event_of("ts uid id.orig_h id.orig_p id.resp_h id.resp_p name", "time string addr port addr port string",
                     "1692161647.497157 Cw 192.168.1.4 49669 192.168.1.41 55215 connection_originator_SYN_ack",
                     "weird")
    assert pick(event, "event.dataset", "event.category", "source.ip", "destination.port", "zeek.session_id",
                "zeek.weird.name", "name") == {
        "event.dataset": "zeek.weird", "event.category": ["network"], "source.ip": "192.168.1.4",
        "destination.port": 55215, "zeek.session_id": "Cw", "zeek.weird.name": "connection_originator_SYN_ack",
        "name": "connection_originator_SYN_ack"}


# --- sniffing -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "expected"),
    [(b"#separator \\x09\n#set_separator\t,\n", True),
     (b"\xef\xbb\xbf#separator \\x09\n", True),
     (orjson.dumps(CONN_JSON) + b"\n", True),
     (b'{"ts": "2023-08-16T04:53:42Z", "id": {"orig_h": "10.0.0.1"}}\n', True),
     (b'{"ts": 1692161622.5, "uid": "C1", "query": "' + b"x" * 5000, True),
     (b'{"ts": 1692161622.5, "fuid": "F1"}\n', False),
     (b'{"timestamp": "2024-03-11T10:00:00Z", "event_type": "dns"}\n', False),
     (b"#fields\tts\tuid\n", False),
     (b"", False)],
    ids=["tsv", "tsv-bom", "json", "json-nested-id", "json-truncated", "json-no-connection", "suricata",
         "no-separator-line", "empty"],
)
def test_sniff(head: bytes, expected: bool) -> None:
    assert sniff(head) is expected


# --- the shared corpus and routing ----------------------------------------------------------------------------


def test_shared_zeek_logs(shared_path: Callable[[str], Path]) -> None:
    files = sorted(shared_path("otrf/lsass_campaign").rglob("*.log"))
    assert files, "no Zeek logs in the shared lsass_campaign corpus"
    problems: list[str] = []
    events = 0
    for path in files:
        data = path.read_bytes()
        if not sniff(data[:65536]):
            problems.append(f"{path}: not sniffed as Zeek")
        rows = sum(1 for line in data.splitlines() if line.strip() and not line.startswith(b"#"))
        items = list(read_file(path))
        problems.extend(item.describe() for item in items if isinstance(item, Rejected))
        read = [item for item in items if isinstance(item, Event)]
        if len(read) != rows:
            problems.append(f"{path}: {rows} rows, {len(read)} events")
        wrong = [e.origin.describe() for e in read if e.fields["event.dataset"] != f"zeek.{path.stem}"]
        problems.extend(f"{where}: dataset is not zeek.{path.stem}" for where in wrong)
        events += len(read)
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:50])
    assert events >= 261  # the twelve logs of the lsass campaign hold 261 rows


RULES = {
    "category-dns.yml": """title: DNS lookup of evil.test
id: 6d1c2a9e-0a43-4d7e-9a55-3f4b7a2b1c02
status: test
level: high
logsource:
  category: dns
detection:
  selection:
    dns.question.name|endswith: '.evil.test'
  condition: selection
""",
    "zeek-dns.yml": """title: Zeek query of evil.test
id: 6d1c2a9e-0a43-4d7e-9a55-3f4b7a2b1c03
status: test
level: high
logsource:
  product: zeek
  service: dns
detection:
  selection:
    query|endswith: '.evil.test'
  condition: selection
""",
}


def test_dns_row_routes_to_sigma_dns_rules(tmp_path: Path) -> None:
    for name, text in RULES.items():
        (tmp_path / name).write_text(text)
    sources = load_sources()
    ruleset = load_rules([tmp_path], sources=sources)
    assert not ruleset.errors
    engine = SigmaEngine(ruleset.rules, sources)
    hit = event_of(DNS_FIELDS, DNS_TYPES, DNS_ROW, "dns")
    miss = event_of(DNS_FIELDS, DNS_TYPES, DNS_ROW.replace("c2.evil.test", "www.example.org"), "dns")
    assert sorted(a.rule.title for a in engine.match(hit)) == ["DNS lookup of evil.test", "Zeek query of evil.test"]
    assert engine.match(miss) == []
    conn = event_of(CONN_FIELDS, CONN_TYPES, CONN_ROW, "conn")
    assert engine.match(conn) == []  # zeek.conn is routed (firewall, zeek/conn): no dns rule meets it
    assert engine.stats.unknown_sources == {}
