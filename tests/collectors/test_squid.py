"""Squid native access logs: lines to ECS proxy events (plain HTTP with the URL taken apart, CONNECT tunnels,
denials), malformed lines as dead letters, format detection, tailing, and a real SigmaHQ proxy rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from collectors.files import detect_format, read_path
from collectors.squid import parse_line, read_file
from collectors.tail_format import LineDecoder
from collectors.tail_lines import FileOrigin
from correlator.model import Event, EventOrigin, Rejected
from correlator.sigma.engine import SigmaEngine
from correlator.sigma.loader import load_rules
from correlator.sigma.sources import load_sources

MISS = ("1732064400.123    245 10.0.0.5 TCP_MISS/200 5120 GET http://www.pastebin.com/raw/abc%20x?dl=1&n=a+b "
        "- HIER_DIRECT/104.20.67.143 text/plain")
TUNNEL = "1732064401.456     12 10.0.0.6 TCP_TUNNEL/200 6000 CONNECT www.google.com:443 alice HIER_DIRECT/142.250.1.1 -"
DENIED = ("1732064402.000      0 10.0.0.7 TCP_DENIED/403 3900 GET http://evil.example/payload.exe - HIER_NONE/- "
          "text/html")
ORIGIN = EventOrigin(path="access.log", offset=1, format="squid")


def test_a_plain_http_request_through_the_proxy() -> None:
    event = parse_line(MISS, ORIGIN)
    assert event.ecs == {
        "@timestamp": "2024-11-20T01:00:00.123Z",
        "event": {"kind": "event", "category": ["network", "web"], "type": ["access", "connection"],
                  "module": "squid", "dataset": "squid.access", "outcome": "success", "duration": 245_000_000},
        "squid": {"result_code": "TCP_MISS", "hierarchy_code": "HIER_DIRECT"},
        "http": {"response": {"bytes": 5120, "status_code": 200, "mime_type": "text/plain"},
                 "request": {"method": "GET"}},
        "source": {"ip": "10.0.0.5"},
        "url": {"original": "http://www.pastebin.com/raw/abc%20x?dl=1&n=a+b",
                "full": "http://www.pastebin.com/raw/abc%20x?dl=1&n=a+b", "scheme": "http",
                "domain": "www.pastebin.com", "path": "/raw/abc x", "query": "dl=1&n=a b"},
        "destination": {"ip": "104.20.67.143"},
    }
    assert event.timestamp_ms == 1_732_064_400_123


@pytest.mark.parametrize(("line", "expected"), [
    (TUNNEL, {"http.request.method": "CONNECT", "url.domain": "www.google.com", "url.port": 443, "url.full": None,
              "user.name": "alice", "event.outcome": "success", "http.response.mime_type": None}),
    (DENIED, {"squid.result_code": "TCP_DENIED", "http.response.status_code": 403, "event.outcome": "failure",
              "url.extension": "exe", "destination.ip": None, "user.name": None}),
], ids=["connect", "denied"])
def test_tunnels_and_denials(line: str, expected: dict[str, object]) -> None:
    event = parse_line(line, ORIGIN)
    assert {key: event.get(key) for key in expected} == expected


def test_read_detect_and_dead_letters(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text("\n".join([MISS, TUNNEL, "1732064403 GET http://x.example/", DENIED]) + "\n", encoding="utf-8")
    assert detect_format(log) == "squid"
    items = list(read_path(log))
    assert [type(item) for item in items] == [Event, Event, Rejected, Event]
    rejected = items[2]
    assert isinstance(rejected, Rejected)
    assert rejected.reason.startswith("line 3: not a Squid access log line")
    assert [e.id for e in read_file(log) if isinstance(e, Event)] == [e.id for e in items if isinstance(e, Event)]
    info = log.stat()
    tailed = LineDecoder("squid").decode(TUNNEL.encode(), FileOrigin(str(log), info.st_dev, info.st_ino, 0, 0, 2))
    assert isinstance(tailed, Event)
    assert tailed.id == items[1].id


def test_sigmahq_proxy_rule_fires_on_a_squid_line(shared_path, tmp_path: Path) -> None:
    rules_dir = shared_path("sigma/rules/web/proxy_generic")
    sources = load_sources()
    engine = SigmaEngine(load_rules([rules_dir], sources=sources, cache_dir=tmp_path / "cache").rules, sources)
    titles = {a.rule.title for a in engine.match(parse_line(MISS, ORIGIN))}
    assert "Raw Paste Service Access" in titles
    assert not engine.match(parse_line(MISS.replace("pastebin.com/raw", "example.org/docs"), ORIGIN))
