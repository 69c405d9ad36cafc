"""The Sigma taxonomy's web, proxy, DNS and firewall field names meet ECS events (correlator/data/taxonomy_ecs.yml,
applied to every rule that is not a Windows rule): rules written for W3C/proxy logs match the events the web
access parser, the network sensor, Suricata and Zeek give, and events carrying the taxonomy's own names still
match."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from collectors.auditd import assemble_lines
from collectors.suricata import normalise_record
from collectors.web_access import parse_line
from correlator.model import Event, EventOrigin
from correlator.sigma.engine import SigmaEngine
from correlator.sigma.loader import load_rules
from correlator.sigma.sources import SourcesConfigError, load_sources
from tests.correlator.sigma.conftest import make_event, rule

ORIGIN = EventOrigin(path="access.log", format="web")


def access(line: str) -> Event:
    return parse_line(line, ORIGIN)


def eve(record: dict[str, Any]) -> Event:
    return normalise_record(record, orjson.dumps(record).decode(), EventOrigin(path="eve.json", format="suricata"))


def _line(target: str, *, method: str = "GET", status: int = 200, agent: str = "Mozilla/5.0") -> str:
    return f'203.0.113.9 - - [24/Nov/2026:10:01:02 +0700] "{method} {target} HTTP/1.1" {status} 512 "-" "{agent}"'


WEB = "category: webserver"


def test_webserver_rule_matches_a_parsed_access_log_line(load):
    loaded = load(rule("""
sel:
  cs-method: GET
  cs-uri-query|contains: 'union select'
  sc-status: 200
condition: sel
""", logsource=WEB, title="sqli"))
    assert loaded.titles(access(_line("/news.php?id=1%20union%20select%20password%20from%20users"))) == {"sqli"}
    assert not loaded.hits(access(_line("/news.php?id=1%20union%20select%201", method="POST")))
    assert not loaded.hits(access(_line("/news.php?id=1%20union%20select%201", status=404)))
    assert not loaded.hits(access(_line("/news.php?id=12")))


def test_encoded_query_values_match_the_url_as_sent(load):
    """url.query is decoded; rules spell many values percent-encoded, as W3C logs keep the query."""
    loaded = load(rule("sel:\n  cs-uri-query|contains: '%27%20or%20%271%27%3D%271'\ncondition: sel",
                       logsource=WEB, title="tautology"))
    assert loaded.hits(access(_line("/login.php?u=a%27%20or%20%271%27%3D%271")))


def test_events_with_the_taxonomy_names_still_match(load):
    loaded = load(rule("sel:\n  cs-uri-stem|endswith: '/cmd.aspx'\n  c-ip: '198.51.100.7'\ncondition: sel",
                       logsource=WEB, title="w3c"))
    w3c = make_event({"event.dataset": "iis.access", "cs-uri-stem": "/uploads/cmd.aspx", "c-ip": "198.51.100.7"})
    ecs = make_event({"event.dataset": "web.access", "url.path": "/uploads/cmd.aspx", "source.ip": "198.51.100.7"})
    other = make_event({"event.dataset": "web.access", "url.path": "/uploads/cmd.aspx", "source.ip": "10.0.0.1"})
    assert loaded.hits(w3c)
    assert loaded.hits(ecs)
    assert not loaded.hits(other)


def test_a_negated_condition_holds_only_when_no_alternative_has_the_value(load):
    loaded = load(rule("""
sel:
  cs-uri-stem|endswith: '.php'
filter:
  cs-method: GET
condition: sel and not filter
""", logsource=WEB, title="not get"))
    assert loaded.hits(access(_line("/upload.php", method="POST")))
    assert not loaded.hits(access(_line("/upload.php")))
    both = make_event({"event.dataset": "web.access", "url.path": "/a.php", "cs-method": "POST",
                       "http.request.method": "GET"})
    assert not loaded.hits(both)


def test_proxy_rule_matches_a_suricata_http_event(load):
    loaded = load(rule("""
sel:
  c-useragent|contains: 'sqlmap'
  cs-host: 'portal.example.gov.vn'
  c-uri|contains: 'portal.example.gov.vn/admin/'
condition: sel
""", logsource="category: proxy", title="ua"))
    event = eve({"timestamp": "2026-11-24T10:00:00.000000+0700", "event_type": "http", "src_ip": "10.1.1.5",
                 "src_port": 50000, "dest_ip": "10.2.2.2", "dest_port": 80, "proto": "TCP",
                 "http": {"hostname": "portal.example.gov.vn", "url": "/admin/login.php", "http_method": "GET",
                          "http_user_agent": "sqlmap/1.7.2#stable", "status": 200, "length": 10}})
    assert event.get("event.dataset") == "suricata.http"
    assert event.get("url.full") == "http://portal.example.gov.vn/admin/login.php"  # proxy logs' c-uri: the URL
    assert loaded.titles(event) == {"ua"}


def test_dns_rule_matches_ecs_question_names(load):
    loaded = load(rule("sel:\n  query|endswith: '.duckdns.org'\ncondition: sel", logsource="category: dns",
                       title="dyndns"))
    event = eve({"timestamp": "2026-11-24T10:00:00.000000+0700", "event_type": "dns", "src_ip": "10.1.1.5",
                 "src_port": 5353, "dest_ip": "10.0.0.53", "dest_port": 53, "proto": "UDP",
                 "dns": {"type": "query", "id": 7, "rrname": "c2.duckdns.org", "rrtype": "A"}})
    assert event.get("dns.question.name") == "c2.duckdns.org"
    assert loaded.titles(event) == {"dyndns"}
    zeek_named = make_event({"event.dataset": "zeek.dns", "query": "x.duckdns.org"})
    assert loaded.hits(zeek_named)


def test_firewall_rule_matches_flow_records(load):
    loaded = load(rule("sel:\n  dst_port: 3389\n  src_ip|cidr: '203.0.113.0/24'\ncondition: sel",
                       logsource="category: firewall", title="rdp in"))
    flow = eve({"timestamp": "2026-11-24T10:00:00.000000+0700", "event_type": "flow", "src_ip": "203.0.113.50",
                "src_port": 40000, "dest_ip": "10.2.2.9", "dest_port": 3389, "proto": "TCP",
                "flow": {"pkts_toserver": 3, "pkts_toclient": 0, "bytes_toserver": 180, "bytes_toclient": 0,
                         "start": "2026-11-24T10:00:00.000000+0700", "end": "2026-11-24T10:00:03.000000+0700",
                         "state": "new", "reason": "timeout"}})
    assert loaded.titles(flow) == {"rdp in"}


def test_windows_rules_are_not_touched(load):
    """`query` is a Sysmon DNS field name too (QueryName is Sysmon's): the taxonomy pipeline leaves Windows
    rules to their own pipelines."""
    loaded = load(rule("sel:\n  QueryName|endswith: '.duckdns.org'\ncondition: sel",
                       logsource="category: dns_query\n  product: windows", title="sysmon dns"))
    (compiled,) = loaded.ruleset.rules
    assert all("dns.question.name" not in v.reads for v in compiled.variants)


def test_sigmahq_webserver_rules_fire_on_access_log_attacks(shared_path, tmp_path: Path):
    """Real SigmaHQ webserver rules (W3C names) against nginx/Apache combined lines through the parser."""
    web = shared_path("sigma/rules/web/webserver_generic")
    sources = load_sources()
    rules = load_rules([web], sources=sources, cache_dir=tmp_path / "cache")
    assert not rules.errors
    engine = SigmaEngine(rules.rules, sources)
    expected = {
        _line("/products.php?id=1%20order%20by%201--"): "5513deaf-f49a-46c2-a6c8-3f111b5cb453",  # SQL injection
        _line("/static/../../../../etc/passwd"): "7745c2ea-24a5-4290-b680-04359cb84b35",  # path traversal
        _line("/search?q=%3Cscript%3Ealert(1)%3C/script%3E"): "65354b83-a2ea-4ea6-8414-3ab38be0d409",  # XSS
    }
    found = {line: {a.rule.id for a in engine.match(access(line))} for line in expected}
    missing = {line: rid for line, rid in expected.items() if rid not in found[line]}
    assert not missing, f"rules that did not fire: {missing}; fired: {found}"
    assert not engine.match(access(_line("/products.php?id=12")))


def test_other_pipelines_are_validated_and_part_of_the_cache_key(tmp_path: Path):
    base = Path(load_sources().base_dir)
    text = (base / "sources.yml").read_text(encoding="utf-8")
    (tmp_path / "sources.yml").write_text(text.replace("[taxonomy_ecs.yml]", "[missing.yml]"), encoding="utf-8")
    with pytest.raises(SourcesConfigError, match=r"other_pipelines: unknown pipeline 'missing.yml'"):
        load_sources(tmp_path / "sources.yml")
    (tmp_path / "sources.yml").write_text(text, encoding="utf-8")
    (tmp_path / "taxonomy_ecs.yml").write_text((base / "taxonomy_ecs.yml").read_text(encoding="utf-8"))
    first = load_sources(tmp_path / "sources.yml").signature
    pipeline = tmp_path / "taxonomy_ecs.yml"
    pipeline.write_text(pipeline.read_text(encoding="utf-8").replace("url.path]", "url.path, url.original]"))
    assert load_sources(tmp_path / "sources.yml").signature != first


AUDIT_CRONTAB = [
    'type=SYSCALL msg=audit(1732064400.123:4567): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=8 '
    'items=2 ppid=1200 pid=1234 auid=1000 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts0 ses=3 '
    'comm="crontab" exe="/usr/bin/crontab" subj=unconfined key="exec"',
    'type=EXECVE msg=audit(1732064400.123:4567): argc=2 a0="crontab" a1="-r"',
    'type=CWD msg=audit(1732064400.123:4567): cwd="/root"',
    "type=EOE msg=audit(1732064400.123:4567):",
]


def _audit_event(lines: list[str]) -> Event:
    (event,) = assemble_lines(enumerate(lines, 1), "audit.log")
    assert isinstance(event, Event)
    return event


def test_linux_process_creation_rules_match_audit_executions(load):
    loaded = load(rule("sel:\n  Image|endswith: '/crontab'\n  CommandLine|contains: ' -r'\n  CurrentDirectory: /root\n"
                       "condition: sel", logsource="category: process_creation\n  product: linux", title="cron rm"))
    assert loaded.titles(_audit_event(AUDIT_CRONTAB)) == {"cron rm"}
    sysmon_linux = make_event({"event.category": "process", "event.type": "start", "host.os.type": "linux",
                               "Image": "/usr/bin/crontab", "CommandLine": "crontab -r", "CurrentDirectory": "/root"})
    assert loaded.hits(sysmon_linux)  # Sysmon for Linux's own names
    other = _audit_event([line.replace('a1="-r"', 'a1="-l"') for line in AUDIT_CRONTAB])
    assert not loaded.hits(other)


def test_sigmahq_linux_process_creation_rule_fires_on_an_audit_execution(shared_path, tmp_path: Path):
    rules_dir = shared_path("sigma/rules/linux/process_creation")
    sources = load_sources()
    rules = load_rules([rules_dir], sources=sources, cache_dir=tmp_path / "cache")
    engine = SigmaEngine(rules.rules, sources)
    ids = {a.rule.id for a in engine.match(_audit_event(AUDIT_CRONTAB))}
    assert "c2e234de-03a3-41e1-b39a-1e56dc17ba67" in ids  # Remove Scheduled Cron Task/Job
