"""Windows Defender Firewall logs (pfirewall.log): rows to connection events in the host's local time, events-lost
rows, malformed rows as dead letters, detection, tailing, and a Sigma firewall rule."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

from collectors.files import detect_format, read_path
from collectors.tail_format import TailFormats
from collectors.tail_lines import FileOrigin
from collectors.windows_firewall import read_file
from correlator.model import Event, Rejected
from correlator.sigma.engine import SigmaEngine
from correlator.sigma.loader import load_rules
from correlator.sigma.sources import load_sources
from tests.correlator.sigma.conftest import rule

HEADER = ["#Version: 1.5", "#Software: Microsoft Windows Firewall", "#Time Format: Local",
          "#Fields: date time action protocol src-ip dst-ip src-port dst-port size tcpflags tcpsyn tcpack tcpwin "
          "icmptype icmpcode info path pid", ""]
DROP_RDP = "2026-11-24 10:00:01 DROP TCP 203.0.113.5 10.0.0.21 51234 3389 52 S 123456 0 64240 - - - RECEIVE 0"
ALLOW_DNS = "2026-11-24 10:00:02 ALLOW UDP 10.0.0.21 10.0.0.1 53211 53 0 - - - - - - - SEND 1234"
LOST = "2026-11-24 10:00:03 INFO-EVENTS-LOST - - - - - - - - - - - - 17 - -"


def write_log(path: Path, rows: list[str]) -> Path:
    path.write_text("\r\n".join([*HEADER, *rows]) + "\r\n", encoding="utf-8")
    return path


def test_rows_are_connection_events(tmp_path: Path) -> None:
    log = write_log(tmp_path / "pfirewall.log", [DROP_RDP, ALLOW_DNS, LOST])
    drop, allow, lost = read_file(log)
    assert isinstance(drop, Event)
    assert isinstance(allow, Event)
    assert isinstance(lost, Event)
    assert {k: drop.get(k) for k in ("event.dataset", "event.action", "event.type", "event.outcome", "source.ip",
                                     "destination.port", "network.transport", "network.direction", "src_ip",
                                     "dst_port", "blocked", "windows_firewall.tcpflags", "process.pid")} == {
        "event.dataset": "windows_firewall.log", "event.action": "firewall-drop",
        "event.type": ["connection", "denied"], "event.outcome": "failure", "source.ip": "203.0.113.5",
        "destination.port": 3389, "network.transport": "tcp", "network.direction": "ingress",
        "src_ip": "203.0.113.5", "dst_port": 3389, "blocked": True, "windows_firewall.tcpflags": "S",
        "process.pid": 0}
    assert drop.ecs["@timestamp"] == "2026-11-24T10:00:01.000Z"  # UTC unless a zone is given
    assert (allow.get("event.outcome"), allow.get("network.direction"), allow.get("process.pid")) == (
        "success", "egress", 1234)
    assert (lost.get("event.action"), lost.get("windows_firewall.info")) == ("firewall-events-lost", "17")


def test_local_times_take_the_given_zone_and_bad_rows_are_dead_letters(tmp_path: Path) -> None:
    log = write_log(tmp_path / "pfirewall.log", [DROP_RDP, "2026-11-24 10:00:04 DROP TCP 203.0.113.5",
                                                 DROP_RDP.replace("DROP", "BLOCK")])
    assert detect_format(log) == "windows-firewall"
    items = list(read_path(log, tz=ZoneInfo("Asia/Ho_Chi_Minh")))
    assert isinstance(items[0], Event)
    assert items[0].ecs["@timestamp"] == "2026-11-24T03:00:01.000Z"
    assert [(i.reason, i.stage) for i in items[1:] if isinstance(i, Rejected)] == [
        ("line 7: 5 values for 18 fields (" + HEADER[3].removeprefix("#Fields: ") + ")", "normalise"),
        ("line 8: action 'BLOCK' is not ALLOW, DROP or INFO-EVENTS-LOST", "normalise")]


def test_tailing_resumes_with_the_files_fields_and_zone(tmp_path: Path) -> None:
    log = write_log(tmp_path / "pfirewall.log", [DROP_RDP, ALLOW_DNS])
    info = log.stat()
    formats = TailFormats(tz=ZoneInfo("Asia/Ho_Chi_Minh"))
    item = formats.decode(ALLOW_DNS.encode(), FileOrigin(str(log), info.st_dev, info.st_ino, 0, 0, 7))
    assert isinstance(item, Event)
    assert (item.get("process.pid"), item.ecs["@timestamp"]) == (1234, "2026-11-24T03:00:02.000Z")


def test_a_sigma_firewall_rule_matches(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    body = "selection:\n  dst_port: 3389\n  action: drop\ncondition: selection"
    (tmp_path / "rules" / "rdp.yml").write_text(rule(body, logsource="category: firewall", title="Inbound RDP dropped"))
    sources = load_sources()
    engine = SigmaEngine(load_rules([tmp_path / "rules"], sources=sources).rules, sources)
    drop, allow = (i for i in read_file(write_log(tmp_path / "pfirewall.log", [DROP_RDP, ALLOW_DNS])))
    assert isinstance(drop, Event)
    assert isinstance(allow, Event)
    assert [a.rule.title for a in engine.match(drop)] == ["Inbound RDP dropped"]
    assert engine.match(allow) == []
