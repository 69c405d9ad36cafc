"""IIS W3C extended logs: rows under `#Fields:` to events with the W3C names SigmaHQ's webserver rules read and
ECS, malformed rows as dead letters, format detection, tailing from inside a file, and real SigmaHQ rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from collectors.files import detect_format, read_path
from collectors.iis import IisLineReader, read_file
from collectors.tail_format import LineDecoder
from collectors.tail_lines import FileOrigin
from correlator.model import Event, Rejected
from correlator.sigma.engine import SigmaEngine
from correlator.sigma.loader import load_rules
from correlator.sigma.sources import load_sources

FIELDS = ("#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) "
          "cs(Referer) sc-status sc-substatus sc-win32-status time-taken")
HEADER = ["#Software: Microsoft Internet Information Services 10.0", "#Version: 1.0",
          "#Date: 2026-11-24 03:00:00", FIELDS]
SQLI = ("2026-11-24 03:01:02 10.0.0.10 GET /portal/news.aspx id=1%20union%20select%20password%20from%20users-- "
        "443 - 203.0.113.9 sqlmap/1.7.2#stable+(https://sqlmap.org) - 500 0 0 31")
BROWSER = ("2026-11-24 03:01:03 10.0.0.10 GET /portal/Default.aspx - 443 CORP\\alice 203.0.113.10 "
           "Mozilla/5.0+(Windows+NT+10.0;+Win64;+x64) https://portal.example.gov.vn/ 200 0 0 15")
TRAVERSAL = "2026-11-24 03:01:04 10.0.0.10 GET /../../../../windows/win.ini - 443 - 203.0.113.9 curl/8.0 - 404 0 2 1"


def write_log(path: Path, lines: list[str]) -> Path:
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")  # IIS writes CRLF
    return path


def test_rows_give_w3c_names_and_ecs(tmp_path: Path) -> None:
    log = write_log(tmp_path / "u_ex261124.log", [*HEADER, SQLI, BROWSER])
    sqli, browser = read_file(log)
    assert isinstance(sqli, Event)
    assert isinstance(browser, Event)
    assert {k: sqli.fields.get(k) for k in ("cs-method", "cs-uri-stem", "cs-uri-query", "sc-status", "c-ip",
                                            "cs-user-agent", "cs(User-Agent)")} == {
        "cs-method": "GET", "cs-uri-stem": "/portal/news.aspx",
        "cs-uri-query": "id=1%20union%20select%20password%20from%20users--", "sc-status": "500",
        "c-ip": "203.0.113.9", "cs-user-agent": "sqlmap/1.7.2#stable (https://sqlmap.org)",
        "cs(User-Agent)": "sqlmap/1.7.2#stable+(https://sqlmap.org)"}
    assert sqli.ecs == {
        "@timestamp": "2026-11-24T03:01:02.000Z",
        "event": {"kind": "event", "category": ["web"], "type": ["access"], "module": "iis",
                  "dataset": "iis.access", "outcome": "failure", "duration": 31_000_000},
        "http": {"request": {"method": "GET"}, "response": {"status_code": 500}},
        "url": {"original": "/portal/news.aspx?id=1%20union%20select%20password%20from%20users--",
                "path": "/portal/news.aspx", "query": "id=1 union select password from users--", "extension": "aspx"},
        "iis": {"access": {"sub_status": 0, "win32_status": 0}},
        "destination": {"port": 443, "ip": "10.0.0.10"}, "source": {"ip": "203.0.113.9"},
        "user_agent": {"original": "sqlmap/1.7.2#stable (https://sqlmap.org)"},
    }
    assert sqli.timestamp_ms == 1_795_489_262_000
    assert browser.get("user.name") == "CORP\\alice"
    assert browser.get("http.request.referrer") == "https://portal.example.gov.vn/"
    assert browser.get("event.outcome") == "success"
    assert [e.id for e in read_file(log) if isinstance(e, Event)] == [sqli.id, browser.id]  # stable ids


def test_bad_rows_are_dead_letters_and_fields_may_change(tmp_path: Path) -> None:
    log = write_log(tmp_path / "u_ex261124.log", [
        "2026-11-24 03:00:59 GET /early",
        *HEADER, "2026-11-24 03:01:00 10.0.0.10 GET /a", TRAVERSAL,
        "#Fields: date time cs-method cs-uri-stem sc-status",  # a site restart with fewer columns
        "2026-11-24 03:02:00 POST /upload.aspx 201",
        "2026-11-24 25:61:00 GET /x 200",
    ])
    items = list(read_file(log))
    reasons = [(i.reason, i.origin.offset) for i in items if isinstance(i, Rejected)]
    assert reasons == [
        ("line 1: a data row before any #Fields: directive", 1),
        ("line 6: 5 values for 15 fields (" + FIELDS.removeprefix("#Fields: ") + ")", 6),
        ("line 10: date and time 2026-11-24 25:61:00 are not YYYY-MM-DD hh:mm:ss", 10),
    ]
    events = [i for i in items if isinstance(i, Event)]
    assert [(e.get("url.path"), e.get("http.response.status_code")) for e in events] == [
        ("/../../../../windows/win.ini", 404), ("/upload.aspx", 201)]


def test_iis_logs_are_detected(tmp_path: Path) -> None:
    log = write_log(tmp_path / "u_ex261124.log", [*HEADER, SQLI])
    assert detect_format(log) == "iis"
    bare = write_log(tmp_path / "site.log", [FIELDS, SQLI])  # no #Software line: told by the columns
    assert detect_format(bare) == "iis"
    assert [type(i) for i in read_path(log)] == [Event]


def test_tailing_resumes_inside_a_file_with_its_fields(tmp_path: Path) -> None:
    log = write_log(tmp_path / "u_ex261124.log", [*HEADER, SQLI, BROWSER])
    info = log.stat()
    decoder = LineDecoder("iis")  # a restarted tailer: first line it sees is line 6
    item = decoder.decode(BROWSER.encode(), FileOrigin(str(log), info.st_dev, info.st_ino, 0, 0, 6))
    assert isinstance(item, Event)
    assert item.get("c-ip") == "203.0.113.10"
    reader = IisLineReader("x.log")
    assert reader.line(1, FIELDS.encode()) is None
    assert isinstance(reader.line(2, SQLI.encode() + b"\r"), Event)


@pytest.mark.parametrize("line", [SQLI, TRAVERSAL], ids=["sqli", "traversal"])
def test_sigmahq_webserver_rules_fire_on_iis_rows(shared_path, tmp_path: Path, line: str) -> None:
    rules_dir = shared_path("sigma/rules/web/webserver_generic")
    sources = load_sources()
    rules = load_rules([rules_dir], sources=sources, cache_dir=tmp_path / "cache")
    engine = SigmaEngine(rules.rules, sources)
    (event,) = read_file(write_log(tmp_path / "u_ex.log", [*HEADER, line]))
    assert isinstance(event, Event)
    expected = {SQLI: "SQL Injection Strings In URI", TRAVERSAL: "Path Traversal Exploitation Attempts"}[line]
    assert expected in {a.rule.title for a in engine.match(event)}
