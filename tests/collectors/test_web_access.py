"""Apache/Nginx access logs: every line shape, escapes, URL decoding, bad lines, the file reader, and the round trip
of the web rule scenarios (tests/data/rules/web_*.ndjson) back into log lines through the Sigma engine."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from collectors.errors import UnsupportedFormatError
from collectors.files import read_path
from collectors.web_access import FORMAT, parse_line, read_file, sniff
from correlator.model import Event, EventOrigin, Rejected, event_id_for
from correlator.sigma.engine import SigmaEngine
from correlator.sigma.loader import load_rules
from correlator.sigma.sources import load_sources
from tests.collectors.conftest import WriteFile

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "rules" / "sigma"
DATA = REPO / "tests" / "data" / "rules"
ORIGIN = EventOrigin(path="/var/log/nginx/access.log", offset=7, format=FORMAT)
TIME = "[20/Nov/2026:08:00:00 +0700]"
TIME_MS = 1795136400000  # 2026-11-20T01:00:00Z



def parse(line: str, **kwargs: Any) -> dict[str, Any]:
    return parse_line(line, ORIGIN, **kwargs).fields


# ------------------------------------------------------------------------------------------------- line shapes

SHAPES = [
    pytest.param(
        f'203.0.113.7 - - {TIME} "GET /index.html HTTP/1.1" 200 5120',
        {"source.ip": "203.0.113.7", "source.address": "203.0.113.7", "http.request.method": "GET",
         "url.original": "/index.html", "url.path": "/index.html", "url.extension": "html", "http.version": "1.1",
         "http.response.status_code": 200, "http.response.body.bytes": 5120, "event.outcome": "success"},
        id="common"),
    pytest.param(
        f'203.0.113.7 - alice {TIME} "POST /dang-nhap HTTP/1.1" 401 17 "https://portal.example/login" '
        f'"Mozilla/5.0 (X11; Linux x86_64)"',
        {"user.name": "alice", "http.request.referrer": "https://portal.example/login",
         "user_agent.original": "Mozilla/5.0 (X11; Linux x86_64)", "http.response.status_code": 401,
         "event.outcome": "failure"},
        id="combined"),
    pytest.param(
        f'203.0.113.7 - - {TIME} "GET / HTTP/1.1" 200 612 "-" "curl/8.5.0" "198.51.100.20, 10.0.0.5"',
        {"user_agent.original": "curl/8.5.0", "network.forwarded_ip": "198.51.100.20",
         "web.access.x_forwarded_for": ["198.51.100.20", "10.0.0.5"], "url.path": "/"},
        id="nginx-main-with-x-forwarded-for"),
    pytest.param(
        f'203.0.113.7 - - {TIME} "GET / HTTP/1.1" 200 612 "-" "curl/8.5.0" "-"',
        {"user_agent.original": "curl/8.5.0"},
        id="nginx-main-without-x-forwarded-for"),
    pytest.param(
        f'portal.example.gov:443 203.0.113.7 - - {TIME} "GET /a HTTP/2.0" 304 - "-" "UA"',
        {"destination.domain": "portal.example.gov", "destination.port": 443, "source.ip": "203.0.113.7",
         "http.version": "2.0", "http.response.status_code": 304},
        id="vhost_combined"),
    pytest.param(
        f'2001:db8::1f - - {TIME} "GET /a HTTP/1.1" 200 1 "-" "UA"',
        {"source.ip": "2001:db8::1f", "source.address": "2001:db8::1f"},
        id="ipv6-client"),
    pytest.param(
        f'portal.example.gov:80 2001:db8::1f - - {TIME} "GET /a HTTP/1.1" 200 1 "-" "UA"',
        {"source.ip": "2001:db8::1f", "destination.domain": "portal.example.gov", "destination.port": 80},
        id="vhost-and-ipv6-client"),
    pytest.param(
        f'::ffff:203.0.113.7 - - {TIME} "GET /a HTTP/1.1" 200 1',
        {"source.ip": "::ffff:cb00:7107", "source.address": "::ffff:203.0.113.7"},
        id="ipv4-mapped-ipv6-client"),
    pytest.param(
        f'crawler.example.net - - {TIME} "GET /a HTTP/1.1" 200 1',
        {"source.address": "crawler.example.net", "source.domain": "crawler.example.net"},
        id="host-name-client"),
    pytest.param(
        f'203.0.113.7 - - {TIME} "GET /q?s=\\"x\\" HTTP/1.1" 200 1 "-" "Mozilla/5.0 \\"quoted\\" \\\\ end"',
        {"url.original": '/q?s="x"', "url.query": 's="x"', "user_agent.original": 'Mozilla/5.0 "quoted" \\ end'},
        id="escaped-quotes-and-backslash"),
    pytest.param(
        f'203.0.113.7 - - {TIME} "GET /a HTTP/1.1" 200 1 "-" "Caf\\xC3\\xA9 Browser"',
        {"user_agent.original": "Café Browser"},
        id="escaped-utf8-user-agent"),
    pytest.param(
        f'203.0.113.7 - - {TIME} "\\x16\\x03\\x01\\x00\\xF7\\x01\\x00\\x00\\xF3\\x03\\x03" 400 157 "-" "-"',
        {"web.access.request": "\\x16\\x03\\x01\\x00\\xF7\\x01\\x00\\x00\\xF3\\x03\\x03",
         "http.response.status_code": 400, "event.outcome": "failure"},
        id="tls-handshake-on-http-port"),
    pytest.param(
        f'203.0.113.7 - - {TIME} "-" 408 0 "-" "-"',
        {"http.response.status_code": 408, "http.response.body.bytes": 0},
        id="dash-request"),
    pytest.param(
        f'203.0.113.7 - - {TIME} "" 400 0 "-" "-"',
        {"http.response.status_code": 400},
        id="empty-request-400"),
    pytest.param(
        f'203.0.113.7 - - {TIME} "GET /" 200 12',
        {"http.request.method": "GET", "url.path": "/"},
        id="http-0.9"),
    pytest.param(
        f'203.0.113.7 - - {TIME} "GET http://evil.example:8080/x.js?a=%41 HTTP/1.1" 200 1',
        {"url.original": "http://evil.example:8080/x.js?a=%41", "url.scheme": "http", "url.domain": "evil.example",
         "url.port": 8080, "url.path": "/x.js", "url.query": "a=A", "url.extension": "js"},
        id="absolute-form"),
    pytest.param(
        f'203.0.113.7 - - {TIME} "CONNECT [2001:db8::5]:443 HTTP/1.1" 200 1',
        {"url.original": "[2001:db8::5]:443", "url.domain": "2001:db8::5", "url.port": 443},
        id="connect-authority-form"),
    pytest.param(
        f'203.0.113.7 - - {TIME} "GET /a b/c.txt HTTP/1.1" 400 1',
        {"url.original": "/a b/c.txt", "url.path": "/a b/c.txt", "http.version": "1.1"},
        id="space-in-target"),
]


@pytest.mark.parametrize(("line", "expected"), SHAPES)
def test_line_shapes(line: str, expected: dict[str, Any]) -> None:
    fields = parse(line)
    assert {name: fields.get(name) for name in expected} == expected
    assert fields["event.category"] == ["web"]
    assert fields["event.type"] == ["access"]
    assert (fields["event.module"], fields["event.dataset"]) == ("web", "web.access")


def test_values_that_are_dashes_are_left_out() -> None:
    fields = parse(f'203.0.113.7 - - {TIME} "-" 400 - "-" "-" "-"')
    absent = ["user.name", "web.access.ident", "http.request.referrer", "user_agent.original", "url.original",
              "http.request.method", "http.response.body.bytes", "network.forwarded_ip", "web.access.request"]
    assert [name for name in absent if name in fields] == []


def test_ident_is_kept() -> None:
    assert parse(f'203.0.113.7 identd-user bob {TIME} "GET / HTTP/1.1" 200 1')["web.access.ident"] == "identd-user"


def test_event_document_time_id_and_origin() -> None:
    line = f'203.0.113.7 - - {TIME} "GET / HTTP/1.1" 200 1'
    event = parse_line(line, ORIGIN)
    assert event.timestamp_ms == TIME_MS
    assert event.fields["@timestamp"] == "2026-11-20T08:00:00.000+07:00"
    assert event.ecs["http"]["response"]["status_code"] == 200
    assert event.ecs["url"] == {"original": "/", "path": "/"}
    assert event.raw == line
    assert event.origin is ORIGIN
    assert event.id == event_id_for(f"/var/log/nginx/access.log\n7\n{line}", event.timestamp_ms)


@pytest.mark.parametrize(
    ("stamp", "iso", "ms"),
    [
        ("[10/Oct/2000:13:55:36 -0700]", "2000-10-10T13:55:36.000-07:00", 971211336000),
        ("[01/Jan/2026:00:00:00 +0000]", "2026-01-01T00:00:00.000+00:00", 1767225600000),
        ("[20/Nov/2026:08:00:00.250 +07:00]", "2026-11-20T08:00:00.250+07:00", TIME_MS + 250),
        ("[20/nov/2026:08:00:00 +0545]", "2026-11-20T08:00:00.000+05:45", TIME_MS + 75 * 60_000),
    ],
    ids=["negative-offset", "utc", "milliseconds-and-colon-offset", "lower-case-month"],
)
def test_time_keeps_its_offset(stamp: str, iso: str, ms: int) -> None:
    event = parse_line(f'203.0.113.7 - - {stamp} "GET / HTTP/1.1" 200 1', ORIGIN)
    assert (event.fields["@timestamp"], event.timestamp_ms) == (iso, ms)


@pytest.mark.parametrize(
    ("server", "module", "dataset"),
    [(None, "web", "web.access"), ("apache", "apache", "apache.access"), ("nginx", "nginx", "nginx.access")],
    ids=["default", "apache", "nginx"],
)
def test_server_names_module_and_dataset(server: str | None, module: str, dataset: str) -> None:
    fields = parse(f'203.0.113.7 - - {TIME} "GET / HTTP/1.1" 200 1', server=server)
    assert (fields["event.module"], fields["event.dataset"]) == (module, dataset)


def test_unknown_server_is_a_programming_error() -> None:
    with pytest.raises(UnsupportedFormatError, match=r"^unknown web server 'iis'; expected one of apache, nginx$"):
        parse(f'203.0.113.7 - - {TIME} "GET / HTTP/1.1" 200 1', server="iis")
    with pytest.raises(UnsupportedFormatError):
        read_file(Path("access.log"), server="iis")


# ------------------------------------------------------------------------------------------------- URL decoding

@pytest.mark.parametrize(
    ("target", "path", "query", "extension"),
    [
        ("/static/%2e%2e/%2e%2e/etc/shadow", "/static/../../etc/shadow", None, None),
        ("/cgi-bin/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/cgi-bin/../../etc/passwd", None, None),
        ("/f/..%252f..%252fetc%252fpasswd", "/f/..%2f..%2fetc%2fpasswd", None, None),
        ("/tim-kiem?q=doan+thanh+nien%2B1", "/tim-kiem", "q=doan thanh nien+1", None),
        ("/a%20b/c.PHP?x=%zz&y=%4", "/a b/c.PHP", "x=%zz&y=%4", "PHP"),
        ("/..%c0%af..%c0%afetc/passwd", "/..\\xc0\\xaf..\\xc0\\xafetc/passwd", None, None),
        ("/tai-lieu/bao-cao..2025.pdf", "/tai-lieu/bao-cao..2025.pdf", None, "pdf"),
        ("/search?", "/search", "", None),
        ("/page.html#top", "/page.html", None, "html"),
        ("/uploads/x.ph%70?%63md=id", "/uploads/x.php", "cmd=id", "php"),
        ("/tin-tuc/%E1%BB%9Di.html", "/tin-tuc/ời.html", None, "html"),
        ("/.htaccess", "/.htaccess", None, "htaccess"),
        ("/dir.d/", "/dir.d/", None, None),
    ],
    ids=["encoded-dots", "encoded-dots-and-slashes", "double-encoded-decoded-once", "plus-is-space-in-query",
         "invalid-escapes-stay", "overlong-utf8-stays-visible", "dots-in-name", "empty-query", "fragment",
         "encoded-extension-and-parameter", "utf8-path", "dot-file", "directory"],
)
def test_url_decoding(target: str, path: str, query: str | None, extension: str | None) -> None:
    fields = parse(f'203.0.113.7 - - {TIME} "GET {target} HTTP/1.1" 200 1')
    assert fields["url.original"] == target
    assert (fields.get("url.path"), fields.get("url.query"), fields.get("url.extension")) == (path, query, extension)


# ------------------------------------------------------------------------------------------------------ bad lines

BAD_LINES = [
    pytest.param("Mar 11 10:00:03 web01 sshd[2211]: Accepted password for alice",
                 "expected 'client ident user [time]' at the start, got 'Mar 11 10:00:03 web01 sshd[2211]: "
                 "Accepted password for alic...'", id="syslog-line"),
    pytest.param('{"@timestamp": "2026-11-20T01:00:00Z"}',
                 "expected 'client ident user [time]' at the start, got '{\"@timestamp\": \"2026-11-20T01:00:00Z\"}'",
                 id="json-line"),
    pytest.param('203.0.113.7 - - [20/Nov/2026 08:00:00] "GET / HTTP/1.1" 200 1',
                 "unreadable time [20/Nov/2026 08:00:00]; expected dd/Mon/yyyy:hh:mm:ss +zzzz",
                 id="time-with-a-space-but-no-offset"),
    pytest.param('203.0.113.7 - - [2026-11-20T08:00:00 +0700] "GET / HTTP/1.1" 200 1',
                 "unreadable time [2026-11-20T08:00:00 +0700]; expected dd/Mon/yyyy:hh:mm:ss +zzzz", id="iso-time"),
    pytest.param('203.0.113.7 - - [31/Feb/2026:08:00:00 +0700] "GET / HTTP/1.1" 200 1',
                 "unreadable time [31/Feb/2026:08:00:00 +0700]: day is out of range for month", id="impossible-date"),
    pytest.param('203.0.113.7 - - [20/Foo/2026:08:00:00 +0700] "GET / HTTP/1.1" 200 1',
                 "unreadable time [20/Foo/2026:08:00:00 +0700]; expected dd/Mon/yyyy:hh:mm:ss +zzzz",
                 id="unknown-month"),
    pytest.param(f'203.0.113.7 - - {TIME} "GET / HTTP/1.1 200 1',
                 "expected a quoted \"request\" after the time, got '\"GET / HTTP/1.1 200 1'",
                 id="unterminated-request"),
    pytest.param(f'203.0.113.7 - - {TIME} "GET / HTTP/1.1" OK 1',
                 "expected the status and the byte count after the request, got ' OK 1'", id="status-not-a-number"),
    pytest.param(f'203.0.113.7 - - {TIME} "GET / HTTP/1.1" 200',
                 "expected the status and the byte count after the request, got ' 200'", id="no-byte-count"),
    pytest.param(f'203.0.113.7 - - {TIME} "GET / HTTP/1.1" 200 1 "-"',
                 "1 quoted fields after the byte count; expected 0 (common), 2 (combined) or 3 (combined with "
                 "X-Forwarded-For)", id="one-quoted-field"),
    pytest.param(f'203.0.113.7 - - {TIME} "GET / HTTP/1.1" 200 1 "-" "UA" 0.004',
                 "unexpected text after the last field: ' 0.004'", id="request-time-appended"),
    pytest.param(f'203.0.113.7 - - {TIME} "GET / HTTP/1.1" 200 1 "-" "UA',
                 "unexpected text after the last field: ' \"UA'", id="unterminated-user-agent"),
]


@pytest.mark.parametrize(("line", "reason"), BAD_LINES)
def test_bad_lines_are_rejected_with_line_number_and_reason(write: WriteFile, line: str, reason: str) -> None:
    path = write("access.log", f'203.0.113.7 - - {TIME} "GET / HTTP/1.1" 200 1\n{line}\n')
    first, rejected = list(read_file(path))
    assert isinstance(first, Event)
    assert rejected == Rejected(f"line 2: {reason}", EventOrigin(path=str(path), offset=2, format=FORMAT), line)


# ---------------------------------------------------------------------------------------------------- the reader

def test_reader_numbers_lines_keeps_raw_and_tells_repeated_lines_apart(write: WriteFile) -> None:
    line = f'203.0.113.7 - - {TIME} "GET / HTTP/1.1" 200 1 "-" "UA"'
    path = write("access.log", f"\ufeff{line}\r\n\n   \n{line}\n{line}")
    items = list(read_file(path))
    events = [e for e in items if isinstance(e, Event)]
    assert events == items
    assert [e.origin.offset for e in events] == [1, 4, 5]
    assert [e.raw for e in events] == [line] * 3
    assert len({e.id for e in events}) == 3
    assert [e.id for e in read_file(path) if isinstance(e, Event)] == [e.id for e in events]  # re-read: same ids
    assert {(e.origin.path, e.origin.format) for e in events} == {(str(path), "web-access")}


def test_reader_server_and_non_utf8_bytes(write: WriteFile) -> None:
    path = write("access.log", f'203.0.113.7 - - {TIME} "GET /\xff HTTP/1.1" 200 1\n'.encode("latin-1"))
    (event,) = read_file(path, server="apache")
    assert isinstance(event, Event)
    assert event.fields["event.dataset"] == "apache.access"
    assert event.fields["url.original"] == "/\\xff"


def test_missing_file_is_one_rejected(tmp_path: Path) -> None:
    path = tmp_path / "missing.log"
    assert list(read_file(path)) == [
        Rejected("cannot read file: No such file or directory", EventOrigin(path=str(path), format=FORMAT))]


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (f'203.0.113.7 - - {TIME} "GET / HTTP/1.1" 200 1\n'.encode(), True),
        (f'\ufeffportal:443 2001:db8::1 - - {TIME} "GET / HTTP/1.1" 200 1 "-" "UA"\n203.0.113.7 - - {TIME} "GE'
         .encode(), True),
        (f'203.0.113.7 - - {TIME} "GET / HTTP/1.1" 200 1'.encode(), True),
        (f'garbage\n203.0.113.7 - - {TIME} "GET / HTTP/1.1" 200 1\n203.0.113.7 - - {TIME} "-" 400 0\n'.encode(), True),
        (f'garbage\nmore garbage\n203.0.113.7 - - {TIME} "GET / HTTP/1.1" 200 1\n'.encode(), False),
        (b'{"@timestamp": "2026-11-20T01:00:00Z"}\n', False),
        (b"type=SYSCALL msg=audit(1732064400.123:4567): arch=c000003e syscall=59\n", False),
        (b"Nov 20 08:00:00 web01 sshd[1]: Accepted password for alice\n", False),
        (b"", False),
        (b"\n\n", False),
    ],
    ids=["common", "vhost-ipv6-with-cut-line", "one-line-no-newline", "most-lines-parse", "most-lines-do-not",
         "json", "auditd", "syslog", "empty", "blank"],
)
def test_sniff(head: bytes, expected: bool) -> None:
    assert sniff(head) is expected


# ------------------------------------------------------------------------------- round trip through the web rules

def rule_id(file: str, title_part: str = "") -> str:
    docs = [d for d in yaml.safe_load_all((RULES / file).read_text(encoding="utf-8")) if d]
    return str(next(d["id"] for d in docs if title_part in d["title"]))


SQLI = rule_id("province/web_sql_injection_query.yml")
TRAVERSAL = rule_id("province/web_path_traversal.yml")
WEBSHELL = rule_id("province/web_webshell_request.yml")
CLIENT_ERROR = rule_id("correlation/mr_web_scan_burst.yml", "Client Error")
WEB_RULES = {SQLI, TRAVERSAL, WEBSHELL, CLIENT_ERROR}


@pytest.fixture(scope="module")
def engine() -> SigmaEngine:
    sources = load_sources()
    ruleset = load_rules([RULES], sources=sources,
                         placeholders={"c2_domains": ["beacon-c2.example"], "c2_ips": ["192.0.2.66"]})
    assert ruleset.errors == [], [str(e) for e in ruleset.errors]
    return SigmaEngine(ruleset.rules, sources)


def fired(engine: SigmaEngine, event: Event) -> set[str]:
    return {alert.rule.id for alert in engine.match(event)} & WEB_RULES


def as_log_line(record: dict[str, Any]) -> str:
    """An NDJSON scenario record as the Nginx `combined` line that would have produced it (time at +07:00)."""
    moment = datetime.fromisoformat(record["@timestamp"]).astimezone(timezone(timedelta(hours=7)))
    agent = record.get("user_agent.original", "-").replace("\\", "\\\\").replace('"', '\\"')
    return (f'{record["source.ip"]} - - [{moment.strftime("%d/%b/%Y:%H:%M:%S %z")}] '
            f'"{record["http.request.method"]} {record["url.original"]} HTTP/1.1" '
            f'{record["http.response.status_code"]} 512 "-" "{agent}"')


@pytest.mark.parametrize(
    ("file", "expected"),
    [
        ("web_sql_injection.ndjson", {SQLI}),
        ("web_path_traversal.ndjson", {TRAVERSAL}),
        ("web_webshell.ndjson", {WEBSHELL}),
        ("web_sql_words_in_searches.ndjson", set()),
        ("web_dots_not_traversal.ndjson", set()),
        ("web_webshell_near_misses.ndjson", {CLIENT_ERROR}),
    ],
    ids=lambda value: value if isinstance(value, str) else None,
)
def test_scenarios_as_log_lines_fire_the_same_rules(engine: SigmaEngine, file: str, expected: set[str]) -> None:
    path = DATA / file
    records = [orjson.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    json_events = [item for item in read_path(path) if isinstance(item, Event)]
    assert len(json_events) == len(records)
    union: set[str] = set()
    for number, (record, json_event) in enumerate(zip(records, json_events, strict=True), 1):
        event = parse_line(as_log_line(record), EventOrigin(path="access.log", offset=number, format=FORMAT),
                           server="nginx")
        assert event.timestamp_ms == json_event.timestamp_ms
        assert fired(engine, event) == fired(engine, json_event), record["url.original"]
        union |= fired(engine, event)
    assert union == expected


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/cgi-bin/%2e%2e%2f%2e%2e%2f%2e%2e%2fbin/sh", {TRAVERSAL}),
        ("/static/..%252f..%252f..%252fapp%252fconfig.yml", {TRAVERSAL}),
        ("/img/%252e%252e%252f%252e%252e%252fsecret.txt", {TRAVERSAL}),
        ("/tin-tuc?id=1%2527%2520or%2520%25271%2527%253d%25271", {SQLI}),
        ("/tin-tuc?id=%31%27%20%6fr%20%271%27%3d%271", {SQLI}),
        ("/tim-kiem?q=1%20UnIoN%20SeLeCt%20mat_khau%20FROM%20nguoi_dung", {SQLI}),
        ("/uploads/x.ph%70?cmd=id", {WEBSHELL}),
        ("/uploads/avatar.php?%63md=id", {WEBSHELL}),
        ("/index.php?q=a%26cmd%3Dx", {WEBSHELL}),
        ("/tim-kiem?q=union+of+youth", set()),
    ],
    ids=["encoded-dot-dot-slash", "double-encoded-slash", "double-encoded-dots-and-slash",
         "double-encoded-tautology", "partly-encoded-tautology", "mixed-case-union-select",
         "encoded-script-extension", "encoded-command-parameter", "decoded-ampersand-splits-parameters",
         "sql-word-in-a-search"],
)
def test_encoded_attacks_fire_after_decoding(engine: SigmaEngine, target: str, expected: set[str]) -> None:
    event = parse_line(f'203.0.113.150 - - {TIME} "GET {target} HTTP/1.1" 200 512 "-" "Mozilla/5.0"', ORIGIN)
    assert fired(engine, event) == expected
