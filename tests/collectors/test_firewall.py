"""Firewall syslog lines to ECS: netfilter/UFW, pfSense/OPNsense filterlog, Cisco ASA, FortiGate traffic logs and
PAN-OS traffic/threat logs (lines written from the vendors' published formats), malformed lines as dead letters
with their reason, and a Sigma `category: firewall` rule matching events of every vendor read from a syslog file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from collectors.firewall import FirewallParseError, firewall_fields
from collectors.syslog_file import read_file
from collectors.syslog_parse import parse_syslog
from correlator.model import Event, Rejected
from correlator.sigma.engine import SigmaEngine
from correlator.sigma.loader import load_rules
from correlator.sigma.sources import load_sources

UFW_BLOCK = (
    "Nov 20 10:00:00 web01 kernel: [12345.678901] [UFW BLOCK] IN=eth0 OUT="
    " MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=203.0.113.5 DST=10.0.0.5 LEN=60 TOS=0x00 PREC=0x00"
    " TTL=52 ID=54321 DF PROTO=TCP SPT=51234 DPT=22"
    " WINDOW=64240 RES=0x00 SYN URGP=0"
)
FILTERLOG_BLOCK = (
    "<134>Nov 20 10:00:01 fw01 filterlog[12345]: 5,,,1000000103,igb1,match,block,in,4,0x0,,64,0,0,DF,6,tcp,60,"
    "198.51.100.7,203.0.113.10,51234,22,0,S,1234567890,,64240,,mss;sackOK;TS;nop;wscale"
)
ASA_DENY = (
    'Nov 20 10:00:02 asa01 %ASA-4-106023: Deny tcp src outside:203.0.113.5/51234 dst inside:10.0.0.5/22'
    ' by access-group "outside_access_in" [0x0, 0x0]'
)
FORTIGATE_DENY = (
    '<189>date=2026-11-20 time=10:00:03 devname="FGT60E" devid="FGT60ETK18000000" logid="0000000013"'
    ' type="traffic" subtype="forward" level="notice" vd="root" eventtime=1795168803 srcip=203.0.113.5'
    ' srcport=51234 srcintf="wan1" srcintfrole="wan" dstip=10.0.0.5 dstport=22 dstintf="internal"'
    ' dstintfrole="lan" sessionid=1234567 proto=6 action="deny" policyid=0 policytype="policy" service="SSH"'
    ' trandisp="noop" duration=0 sentbyte=0 rcvdbyte=0 sentpkt=0 appcat="unscanned" crscore=30 craction=131072'
)
PANOS_DENY = (
    "<14>Nov 20 10:00:04 PA-3220 1,2026/11/20 10:00:04,012801000000,TRAFFIC,deny,2560,2026/11/20 10:00:04,"
    "203.0.113.5,10.0.0.5,0.0.0.0,0.0.0.0,block-ssh,,,ssh,vsys1,untrust,trust,ethernet1/1,ethernet1/2,fwd,,"
    "98765,1,51234,22,0,0,0x0,tcp,deny,74,74,0,1,2026/11/20 10:00:04,0,any,0,7001,0x0,United States,"
    "10.0.0.0-10.255.255.255,0,1,0,policy-deny"
)
PANOS_TRAFFIC_END = (
    "<14>Nov 20 10:00:05 PA-3220 1,2026/11/20 10:00:05,012801000000,TRAFFIC,end,2560,2026/11/20 10:00:05,"
    "10.0.0.5,203.0.113.10,198.51.100.1,0.0.0.0,allow-web,corp\\alice,,web-browsing,vsys1,trust,untrust,"
    "ethernet1/2,ethernet1/1,fwd,,12345,1,51234,443,40001,0,0x400019,tcp,allow,5000,3000,2000,20,"
    "2026/11/20 09:59:56,9,any,0,123456789,0x0,10.0.0.0-10.255.255.255,United States,0,10,10,tcp-fin"
)
PANOS_THREAT = (
    "<14>Nov 20 10:00:06 PA-3220 1,2026/11/20 10:00:06,012801000000,THREAT,url,2560,2026/11/20 10:00:06,"
    "10.0.0.8,203.0.113.66,198.51.100.1,0.0.0.0,outbound-web,,,web-browsing,vsys1,trust,untrust,ethernet1/2,"
    'ethernet1/1,fwd,,777,1,44321,80,40002,80,0x2000,tcp,block-url,"evil.example/a,b.php",'
    "(9999),malware,high,client-to-server,55,0x0,10.0.0.0-10.255.255.255,United States,0"
)
DENIED_TCP = {
    "event.kind": "event", "event.category": ["network"], "event.type": ["connection", "denied"],
    "event.outcome": "failure", "observer.type": "firewall", "source.ip": "203.0.113.5", "source.port": 51234,
    "destination.ip": "10.0.0.5", "destination.port": 22, "network.transport": "tcp", "network.iana_number": "6",
    "network.type": "ipv4", "related.ip": ["203.0.113.5", "10.0.0.5"], "src_ip": "203.0.113.5",
    "src_port": 51234, "dst_ip": "10.0.0.5", "dst_port": 22, "blocked": True,
}


def fields_of(line: str) -> dict[str, Any] | None:
    return firewall_fields(parse_syslog(line, received_ms=0, year_hint=2026))


def test_ufw_block_gives_every_field() -> None:
    assert fields_of(UFW_BLOCK) == {
        "event.module": "iptables", "event.dataset": "iptables.log", "event.kind": "event",
        "event.category": ["network"], "event.type": ["connection", "denied"], "event.action": "firewall-block",
        "event.outcome": "failure", "observer.vendor": "Linux", "observer.product": "ufw",
        "observer.type": "firewall", "observer.ingress.interface.name": "eth0", "source.ip": "203.0.113.5",
        "source.port": 51234, "destination.ip": "10.0.0.5", "destination.port": 22, "network.transport": "tcp",
        "network.iana_number": "6", "network.type": "ipv4", "network.direction": "ingress",
        "rule.name": "UFW BLOCK", "related.ip": ["203.0.113.5", "10.0.0.5"], "src_ip": "203.0.113.5",
        "src_port": 51234, "dst_ip": "10.0.0.5", "dst_port": 22, "action": "block", "blocked": True,
    }


@pytest.mark.parametrize(("line", "expected"), [
    (FILTERLOG_BLOCK, DENIED_TCP | {
        "event.module": "pfsense", "event.dataset": "pfsense.log", "event.action": "firewall-block",
        "observer.vendor": "Netgate", "observer.product": "pfSense", "observer.ingress.interface.name": "igb1",
        "source.ip": "198.51.100.7", "destination.ip": "203.0.113.10", "network.direction": "ingress",
        "rule.id": "5", "rule.uuid": "1000000103", "related.ip": ["198.51.100.7", "203.0.113.10"],
        "src_ip": "198.51.100.7", "dst_ip": "203.0.113.10", "action": "block",
    }),
    (ASA_DENY, DENIED_TCP | {
        "event.module": "cisco_asa", "event.dataset": "cisco_asa.log", "event.action": "firewall-rule",
        "observer.vendor": "Cisco", "observer.product": "ASA", "observer.ingress.interface.name": "outside",
        "observer.egress.interface.name": "inside", "rule.name": "outside_access_in", "event.code": "106023",
        "event.severity": 4, "action": "deny",
    }),
    (FORTIGATE_DENY, DENIED_TCP | {
        "event.module": "fortinet", "event.dataset": "fortinet.firewall", "event.action": "firewall-deny",
        "observer.vendor": "Fortinet", "observer.product": "FortiGate", "observer.ingress.interface.name": "wan1",
        "observer.egress.interface.name": "internal", "network.direction": "inbound", "rule.id": "0",
        "event.code": "0000000013", "fortinet.firewall.sessionid": "1234567", "network.protocol": "ssh",
        "action": "deny",
    }),
    (PANOS_DENY, DENIED_TCP | {
        "event.module": "panw", "event.dataset": "panw.panos", "event.action": "traffic-deny",
        "observer.vendor": "Palo Alto Networks", "observer.product": "PAN-OS",
        "observer.ingress.interface.name": "ethernet1/1", "observer.egress.interface.name": "ethernet1/2",
        "rule.name": "block-ssh", "observer.serial_number": "012801000000", "network.application": "ssh",
        "observer.ingress.zone": "untrust", "observer.egress.zone": "trust", "panw.panos.session_id": "98765",
        "panw.panos.vsys": "vsys1", "network.bytes": 74, "source.bytes": 74, "destination.bytes": 0,
        "network.packets": 1, "source.packets": 1, "destination.packets": 0, "event.duration": 0,
        "event.reason": "policy-deny", "action": "deny",
    }),
], ids=["filterlog", "asa-106023", "fortigate", "panos"])
def test_denied_ssh_connection_of_each_vendor(line: str, expected: dict[str, Any]) -> None:
    assert fields_of(line) == expected


def test_panos_traffic_end_with_nat_user_and_counters() -> None:
    fields = fields_of(PANOS_TRAFFIC_END)
    assert fields is not None
    assert {k: fields[k] for k in ("event.type", "event.outcome", "event.action", "source.nat.ip",
                                   "source.nat.port", "source.user.name", "network.bytes", "event.duration",
                                   "event.reason", "blocked")} == {
        "event.type": ["connection", "allowed", "end"], "event.outcome": "success", "event.action": "traffic-end",
        "source.nat.ip": "198.51.100.1", "source.nat.port": 40001, "source.user.name": "corp\\alice",
        "network.bytes": 5000, "event.duration": 9_000_000_000, "event.reason": "tcp-fin", "blocked": False}
    assert "destination.nat.ip" not in fields  # 0.0.0.0: no destination NAT


def test_panos_threat_is_an_alert_with_its_url() -> None:
    fields = fields_of(PANOS_THREAT)
    assert fields is not None
    assert {k: fields.get(k) for k in ("event.kind", "event.category", "event.outcome", "url.original",
                                       "panw.panos.threat.id", "panw.panos.threat.name", "event.severity",
                                       "panw.panos.threat.direction", "action")} == {
        "event.kind": "alert", "event.category": ["network", "intrusion_detection"], "event.outcome": "failure",
        "url.original": "evil.example/a,b.php", "panw.panos.threat.id": "9999", "panw.panos.threat.name": None,
        "event.severity": 4, "panw.panos.threat.direction": "client-to-server", "action": "block-url"}


@pytest.mark.parametrize(("line", "expected"), [
    ("Nov 20 10:00:00 web01 kernel: [  99.1] [UFW ALLOW] IN= OUT=eth0 SRC=10.0.0.5 DST=198.51.100.20 LEN=60"
     " TOS=0x00 PREC=0x00 TTL=64 ID=1 DF PROTO=UDP SPT=40000 DPT=53 LEN=40",
     {"event.type": ["connection", "allowed"], "event.action": "firewall-allow", "event.outcome": "success",
      "network.transport": "udp", "network.direction": "egress", "observer.egress.interface.name": "eth0",
      "dst_port": 53, "action": "allow", "blocked": False}),
    ("Nov 20 10:00:00 web01 kernel: [UFW AUDIT] IN=eth0 OUT= MAC=00 SRC=2001:db8::1 DST=2001:db8:0:1::5 LEN=104"
     " TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=ICMPv6 TYPE=128 CODE=0 ID=7 SEQ=1",
     {"event.type": ["connection"], "event.outcome": "unknown", "network.type": "ipv6",
      "network.transport": "ipv6-icmp", "network.iana_number": "58", "source.ip": "2001:db8::1",
      "iptables.icmp.type": 128, "iptables.icmp.code": 0, "action": "audit", "rule.name": "UFW AUDIT"}),
    ("<4>Nov 20 10:00:00 gw kernel: IPTABLES-DROP: IN=eth1 OUT=eth0 SRC=203.0.113.9 DST=10.0.0.7 LEN=84 TOS=0x00"
     " PREC=0x00 TTL=63 ID=0 DF PROTO=ICMP TYPE=8 CODE=0 ID=1 SEQ=1",
     {"event.type": ["connection", "denied"], "event.action": "firewall-drop", "rule.name": "IPTABLES-DROP",
      "observer.product": "iptables", "network.transport": "icmp", "iptables.icmp.type": 8,
      "iptables.icmp.code": 0, "observer.ingress.interface.name": "eth1",
      "observer.egress.interface.name": "eth0", "action": "drop"}),
    # An ICMP error quotes the packet it answers: its SRC/DST must not replace the outer ones.
    ("Nov 20 10:00:00 gw kernel: DROP IN=eth0 OUT= SRC=198.51.100.1 DST=10.0.0.7 LEN=56 PROTO=ICMP TYPE=3 CODE=3"
     " [SRC=10.0.0.7 DST=198.51.100.1 LEN=28 PROTO=UDP SPT=5000 DPT=6000 LEN=8 ]",
     {"source.ip": "198.51.100.1", "destination.ip": "10.0.0.7", "iptables.icmp.type": 3, "action": "drop"}),
    ("<134>Nov 20 10:00:01 fw01 filterlog[1]: 12,,,1000000201,em0,match,pass,out,4,0x0,,64,4242,0,DF,17,udp,60,"
     "10.0.0.5,198.51.100.53,40000,53,40",
     {"event.type": ["connection", "allowed"], "event.action": "firewall-pass", "network.transport": "udp",
      "network.direction": "egress", "observer.egress.interface.name": "em0", "dst_port": 53, "blocked": False}),
    ("<134>Nov 20 10:00:01 fw01 filterlog[1]: 5,,,1000000103,igb1,match,block,in,4,0x0,,64,12345,0,none,1,icmp,84,"
     "198.51.100.7,203.0.113.10,request,1234,1",
     {"network.transport": "icmp", "pfsense.icmp.type": "request", "action": "block"}),
    ("<134>Nov 20 10:00:01 fw01 filterlog[1]: 7,,,1000000105,igb0,match,reject,in,6,0x00,0x00000,64,tcp,6,40,"
     "2001:db8::5,2001:db8:1::10,51000,443,0,S,1111,,64800,,mss",
     {"network.type": "ipv6", "source.ip": "2001:db8::5", "destination.port": 443, "action": "reject",
      "event.action": "firewall-reject", "event.type": ["connection", "denied"]}),
    ("<134>Nov 20 10:00:01 fw01 filterlog[1]: 7,,,1000000105,igb0,match,block,in,6,0x00,0x00000,255,ipv6-icmp,58,"
     "32,fe80::1,ff02::1,",
     {"network.type": "ipv6", "network.transport": "ipv6-icmp", "destination.ip": "ff02::1"}),
    ("<166>Nov 20 2026 10:00:02 asa01 : %ASA-6-302013: Built outbound TCP connection 1 for"
     " outside:198.51.100.20/443 (198.51.100.20/443) to inside:10.0.0.5/51000 (203.0.113.1/51000)",
     {"event.type": ["connection", "allowed"], "event.action": "flow-creation", "source.ip": "10.0.0.5",
      "source.port": 51000, "destination.ip": "198.51.100.20", "destination.port": 443,
      "network.direction": "outbound", "observer.ingress.interface.name": "inside", "action": "built",
      "cisco_asa.connection_id": "1"}),
    ("Nov 20 10:00:02 asa01 %ASA-6-302016: Teardown UDP connection 7890 for outside:198.51.100.53/53 to"
     " inside:10.0.0.5/53211 duration 0:02:01 bytes 120",
     {"event.type": ["connection", "allowed", "end"], "event.action": "flow-expiration",
      "network.transport": "udp", "action": "teardown"}),
    ("Nov 20 10:00:02 asa01 %ASA-4-106023: Deny icmp src outside:203.0.113.5 dst inside:10.0.0.5 (type 8, code 0)"
     ' by access-group "outside_access_in" [0x0, 0x0]',
     {"network.transport": "icmp", "cisco_asa.icmp_type": 8, "cisco_asa.icmp_code": 0, "action": "deny"}),
    ("Nov 20 10:00:02 asa01 %ASA-6-106100: access-list outside_access_in denied tcp"
     " outside/2001:db8::9(51234) -> inside/2001:db8:1::5(22) hit-cnt 1 first hit [0x91c26a3, 0x0]",
     {"network.type": "ipv6", "source.ip": "2001:db8::9", "dst_port": 22, "rule.name": "outside_access_in",
      "event.type": ["connection", "denied"]}),
    ("Nov 20 10:00:02 asa01 %ASA-2-106001: Inbound TCP connection denied from 203.0.113.5/51234 to"
     " 10.0.0.5/22 flags SYN on interface outside",
     {"network.direction": "inbound", "observer.ingress.interface.name": "outside", "dst_port": 22}),
    ("Nov 20 10:00:02 asa01 %ASA-3-710003: TCP access denied by ACL from 203.0.113.5/51234 to"
     " outside:198.51.100.10/22",
     {"destination.ip": "198.51.100.10", "observer.egress.interface.name": "outside", "action": "deny"}),
    ('<189>date=2026-11-20 time=10:05:00 devname="FGT60E" logid="0000000013" type="traffic" subtype="forward"'
     ' srcip=2001:db8::5 srcport=53000 srcintf="internal" srcintfrole="lan" dstip=2001:db8:ffff::1 dstport=443'
     ' dstintf="wan1" dstintfrole="wan" proto=6 action="close" policyid=3 policyname="lan-out"',
     {"event.type": ["connection", "allowed", "end"], "network.type": "ipv6", "network.direction": "outbound",
      "rule.id": "3", "rule.name": "lan-out", "action": "close"}),
    ('<189>date=2026-11-20 time=10:05:00 devname="FGT60E" type="traffic" srcip=10.0.0.5 dstip=198.51.100.1'
     ' proto=1 action="accept" policyid=1',
     {"network.transport": "icmp", "event.type": ["connection", "allowed"], "action": "accept"}),
], ids=["ufw-allow-udp", "ufw-audit-icmpv6", "iptables-prefix-icmp", "iptables-icmp-error", "filterlog-udp-pass",
        "filterlog-icmp", "filterlog-ipv6-reject", "filterlog-icmpv6", "asa-302013-outbound", "asa-302016",
        "asa-106023-icmp", "asa-106100-ipv6", "asa-106001", "asa-710003", "fortigate-ipv6-close",
        "fortigate-icmp"])
def test_recognised_lines(line: str, expected: dict[str, Any]) -> None:
    fields = fields_of(line)
    assert fields is not None
    assert {name: fields.get(name) for name in expected} == expected


@pytest.mark.parametrize(("line", "reason"), [
    ("<134>Nov 20 10:00:01 fw01 filterlog[1]: 5,,,1000000103,igb1,match,block",
     "filterlog: 7 fields, the header needs 9"),
    ("<134>Nov 20 10:00:01 fw01 filterlog[1]: 5,,,1000000103,igb1,match,block,in,4,0x0,,64,0,0,DF,6,tcp,60,"
     "198.51.100.7,203.0.113.10,51234",
     "filterlog: 21 fields, an IPv4 tcp entry needs 29"),
    ("<134>Nov 20 10:00:01 fw01 filterlog[1]: 5,,,1,igb1,match,block,in,4,0x0,,64",
     "filterlog: 12 fields, an IPv4 entry needs 20"),
    ("<134>Nov 20 10:00:01 fw01 filterlog[1]: 5,,,1,igb1,match,nat,in,4", "filterlog: unknown action 'nat'"),
    ("<134>Nov 20 10:00:01 fw01 filterlog[1]: 5,,,1,igb1,match,block,in,4,0x0,,64,0,0,DF,17,udp,60,"
     "198.51.100.999,203.0.113.10,1,2,3",
     "source address '198.51.100.999' is not an IP address"),
    ("Nov 20 10:00:02 asa01 %ASA-4-106023: Deny tcp by access-group \"outside_access_in\"",
     "ASA-106023: not the documented layout (no source and destination)"),
    ("Nov 20 10:00:00 web01 kernel: [UFW BLOCK] IN=eth0 OUT= MAC=00 LEN=60",
     "netfilter log line without SRC= and DST="),
    ('<189>date=2026-11-20 time=10:05:00 devname="FGT60E" type="traffic" srcip=10.0.0.5 action="deny"',
     "FortiGate traffic log without srcip= and dstip="),
    ("<14>Nov 20 10:00:04 PA-3220 1,2026/11/20 10:00:04,012801000000,TRAFFIC,deny,2560,2026/11/20 10:00:04,"
     "203.0.113.5,10.0.0.5", "PAN-OS TRAFFIC: 9 fields, at least 31 expected"),
    ("<14>Nov 20 10:00:04 PA-3220 1,2026/11/20 10:00:04,012801000000,TRAFFIC,deny,2560,2026/11/20 10:00:04,"
     "203.0.113.5,10.0.0.5,0.0.0.0,0.0.0.0,r,,,ssh,vsys1,u,t,e1,e2,fwd,,1,1,51234,22,0,0,0x0,tcp,",
     "PAN-OS TRAFFIC: no action (field 31)"),
    ("<14>Nov 20 10:00:04 PA-3220 1,2026/11/20 10:00:04,012801000000,TRAFFIC,deny," + "x" * 140_000,
     "PAN-OS TRAFFIC: not readable as CSV: field larger than field limit (131072)"),
], ids=["filterlog-header", "filterlog-tcp", "filterlog-ip", "filterlog-action", "filterlog-address", "asa",
        "netfilter", "fortigate", "panos-short", "panos-action", "panos-huge-field"])
def test_malformed_firewall_lines_raise_with_reason(line: str, reason: str) -> None:
    with pytest.raises(FirewallParseError) as caught:
        fields_of(line)
    assert caught.value.reason == reason


@pytest.mark.parametrize("line", [
    "Nov 20 10:00:00 web01 sshd[2211]: Invalid user IN=a OUT=b from 203.0.113.5 port 4242",
    "Nov 20 10:00:00 web01 CRON[1]: (root) CMD (echo IN=eth0 OUT= SRC=1.2.3.4)",
    "Nov 20 10:00:00 asa01 %ASA-4-733100: [ Scanning] drop rate-1 exceeded. Current burst rate is 10 per second",
    "Nov 20 10:00:00 web01 systemd[1]: Started Daily apt upgrade.",
    "<14>Nov 20 10:00:00 PA-3220 1,2026/11/20 10:00:00,012801000000,SYSTEM,general,0,2026/11/20 10:00:00,,"
    "general,,0,0,general,informational,User admin logged in,1,0x0",
], ids=["sshd-user", "other-program", "asa-other-id", "plain", "panos-system"])
def test_other_messages_are_not_firewall_lines(line: str) -> None:
    assert fields_of(line) is None


def test_read_file_makes_events_and_dead_letters(tmp_path: Path) -> None:
    path = tmp_path / "firewall.log"
    path.write_text("\n".join([
        UFW_BLOCK,
        "<134>Nov 20 10:00:01 fw01 filterlog[1]: 5,,,1000000103,igb1,match,block",
        "Nov 20 10:00:00 web01 sshd[2211]: Invalid user IN=a OUT=b from 203.0.113.5 port 4242",
    ]) + "\n")
    items = list(read_file(path, year=2026))
    assert isinstance(items[0], Event)
    assert items[0].fields["event.dataset"] == "iptables.log"
    assert items[0].fields["host.name"] == "web01"
    assert items[0].ecs["destination"] == {"ip": "10.0.0.5", "port": 22}
    rejected = items[1]
    assert isinstance(rejected, Rejected)
    assert (rejected.reason, rejected.stage, rejected.origin.offset) == (
        "line 2: filterlog: 7 fields, the header needs 9", "normalise", 2)
    assert isinstance(items[2], Event)
    assert items[2].fields["event.dataset"] == "system.auth"


def test_sigma_firewall_rule_matches_every_vendor(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "ssh_blocked.yml").write_text("""title: Blocked inbound SSH
id: 6a1e0d6c-3b52-4f0e-9b7e-4c2f1a8d9e01
status: test
level: low
logsource:
  category: firewall
detection:
  selection:
    dst_port: 22
    action:
      - block
      - deny
  condition: selection
""")
    path = tmp_path / "messages"
    path.write_text("\n".join([UFW_BLOCK, FILTERLOG_BLOCK, ASA_DENY, FORTIGATE_DENY, PANOS_DENY,
                               "Nov 20 10:00:00 web01 systemd[1]: Started Daily apt upgrade."]) + "\n")
    sources = load_sources()
    ruleset = load_rules([tmp_path / "rules"], sources=sources)
    assert not ruleset.errors
    engine = SigmaEngine(ruleset.rules, sources)
    events = [item for item in read_file(path, year=2026) if isinstance(item, Event)]
    assert len(events) == 6
    matched = [event.fields["event.dataset"] for event in events for _ in engine.match(event)]
    assert matched == ["iptables.log", "pfsense.log", "cisco_asa.log", "fortinet.firewall", "panw.panos"]
    assert engine.stats.unknown_sources == {}
