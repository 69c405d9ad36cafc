"""Firewall syslog messages to ECS connection fields: Linux netfilter/UFW, pfSense/OPNsense filterlog, Cisco ASA,
FortiGate traffic logs and Palo Alto Networks PAN-OS traffic and threat logs.

    fields = firewall_fields(parse_syslog(line, received_ms=now_ms))  # None: not a firewall message

Recognised, from the message's program (appname) and text:

- netfilter `LOG` target lines from the kernel (program `kernel`, `ulogd` or none): `[UFW BLOCK] IN=eth0 OUT=
  MAC=.. SRC=.. DST=.. PROTO=TCP SPT=.. DPT=..`, or any `--log-prefix` (`IPTABLES-DROP: IN=...`); the action is
  the UFW word or the first of drop/deny/block/reject/accept/allow/pass in the prefix (`log` when none).
- pfSense/OPNsense `filterlog` CSV ("raw filter log format"): IPv4 and IPv6 headers, tcp/udp/icmp details.
- Cisco ASA (`%ASA-<sev>-<id>:`) denies 106001, 106006, 106007, 106015, 106023, 106100 (also its `permitted`),
  710003 and connection built/teardown 302013-302016. Other ASA messages are not connection events: None.
- FortiGate key=value logs of `type="traffic"` sent without a syslog tag.
- PAN-OS TRAFFIC and THREAT logs in the default syslog format (CSV after the header: FUTURE_USE, receive time,
  serial, type, subtype, ...; the field order of the PAN-OS syslog field descriptions). TRAFFIC: the session's
  verdict (subtype start/end/drop/deny, action allow/deny/drop/reset-*), NAT addresses, zones, application,
  user, bytes and packets, the session end reason. THREAT: the same connection fields as an alert
  (`event.kind: alert`, category intrusion_detection) with the threat name and id, severity, direction and the
  URL or file name. Other PAN-OS log types (SYSTEM, CONFIG, ...) are not connection events: None.

The fields are flat dotted ECS names (event.*, source.*, destination.*, network.*, observer.*, rule.*,
related.ip) and, so that SigmaHQ `category: firewall` rules match, Sigma's generic firewall names `src_ip`,
`src_port`, `dst_ip`, `dst_port`, `action` (the vendor's action word, lower case) and `blocked` (bool, when the
verdict is known). event.outcome is `failure` for a denied connection, `success` for an allowed one.

A message that is one of these formats but cannot be read (a filterlog line with too few fields, an ASA deny
without addresses, a kernel LOG line without SRC/DST) raises `FirewallParseError` naming what is wrong; the
caller makes a dead letter of it.
"""

from __future__ import annotations

import csv
import re
from typing import Any, Final

from collectors.errors import CollectorError
from collectors.linux_auth import canonical_ip
from collectors.syslog_parse import SyslogMessage

__all__ = ["DATASETS", "FirewallParseError", "connection_fields", "firewall_fields"]

Fields = dict[str, Any]  # flat: dotted ECS names

DATASETS: Final = ("iptables.log", "pfsense.log", "cisco_asa.log", "fortinet.firewall", "panw.panos")

_DENIED: Final = frozenset({"block", "drop", "deny", "denied", "reject", "blocked", "dropped"})
_ALLOWED: Final = frozenset({"pass", "allow", "accept", "permit", "permitted", "allowed", "accepted"})
_END_ACTIONS: Final = frozenset({"close", "timeout", "server-rst", "client-rst"})  # FortiGate session ends
# IANA protocol numbers to ECS network.transport (IANA keywords, lower case).
_TRANSPORTS: Final = {1: "icmp", 2: "igmp", 6: "tcp", 17: "udp", 47: "gre", 50: "esp", 51: "ah", 58: "ipv6-icmp",
                      132: "sctp", 136: "udplite"}
_NUMBERS: Final = {name: number for number, name in _TRANSPORTS.items()} | {"icmpv6": 58}


class FirewallParseError(CollectorError):
    """A message in a firewall format whose content cannot be read: the reason says which format and what."""


def firewall_fields(message: SyslogMessage) -> Fields | None:
    """The flat ECS fields of a firewall message, None for a message in none of the firewall formats.
    Raises `FirewallParseError` for a message in one of them that cannot be read."""
    program = message.appname
    text = message.message
    if program == "filterlog":
        return _filterlog(text)
    if program is not None and program.startswith("%"):
        asa = _ASA_TAG.fullmatch(program)
        if asa is not None:
            return _asa(int(asa.group("sev")), asa.group("id"), text)
    elif text.startswith(("%", ": %")):
        asa = _ASA_TEXT.match(text)
        if asa is not None:
            return _asa(int(asa.group("sev")), asa.group("id"), text[asa.end():])
    if program in _KERNEL_PROGRAMS and "IN=" in text:
        netfilter = _NETFILTER.search(text)
        if netfilter is not None:
            return _netfilter(text, netfilter)
    if program is None and "srcip=" in text and _FORTIGATE_TRAFFIC.search(text) is not None:
        return _fortigate(text)
    if program is None:
        panos = _PANOS_HEAD.match(text)
        if panos is not None:
            return _panos(text, panos.group("type"))
    return None


# --------------------------------------------------------------------------------------------------- common


def connection_fields(
    dataset: str,
    observer: tuple[str, str],
    action: str,
    verdict: bool | None,
    source: tuple[str, int | None],
    destination: tuple[str, int | None],
    transport: str | None,
    *,
    event_action: str | None = None,
    end: bool = False,
    direction: str | None = None,
    interfaces: tuple[str | None, str | None] = (None, None),
    rule: tuple[str | None, str | None] = (None, None),
    extra: Fields | None = None,
) -> Fields:
    """The fields of one connection event. `verdict`: True allowed, False denied, None unknown; `source` and
    `destination` are (address, port); `interfaces` (ingress, egress); `rule` (id, name)."""
    src_ip, dst_ip = _ip(source[0], "source"), _ip(destination[0], "destination")
    types = ["connection"] if verdict is None else ["connection", "allowed" if verdict else "denied"]
    if end:
        types.append("end")
    fields: Fields = {
        "event.module": dataset.partition(".")[0],
        "event.dataset": dataset,
        "event.kind": "event",
        "event.category": ["network"],
        "event.type": types,
        "event.action": event_action if event_action is not None else f"firewall-{action}",
        "event.outcome": "unknown" if verdict is None else "success" if verdict else "failure",
        "observer.vendor": observer[0],
        "observer.product": observer[1],
        "observer.type": "firewall",
    }
    if interfaces[0]:
        fields["observer.ingress.interface.name"] = interfaces[0]
    if interfaces[1]:
        fields["observer.egress.interface.name"] = interfaces[1]
    fields["source.ip"] = src_ip
    if source[1] is not None:
        fields["source.port"] = source[1]
    fields["destination.ip"] = dst_ip
    if destination[1] is not None:
        fields["destination.port"] = destination[1]
    if transport is not None:
        fields["network.transport"] = transport
        if transport in _NUMBERS:
            fields["network.iana_number"] = str(_NUMBERS[transport])
    fields["network.type"] = "ipv6" if ":" in src_ip else "ipv4"
    if direction is not None:
        fields["network.direction"] = direction
    if rule[0]:
        fields["rule.id"] = rule[0]
    if rule[1]:
        fields["rule.name"] = rule[1]
    if extra:
        fields.update(extra)
    fields["related.ip"] = [src_ip] if src_ip == dst_ip else [src_ip, dst_ip]
    fields["src_ip"] = src_ip
    if source[1] is not None:
        fields["src_port"] = source[1]
    fields["dst_ip"] = dst_ip
    if destination[1] is not None:
        fields["dst_port"] = destination[1]
    fields["action"] = action
    if verdict is not None:
        fields["blocked"] = not verdict
    return fields


def _verdict(action: str) -> bool | None:
    if action in _ALLOWED:
        return True
    if action in _DENIED:
        return False
    return None


def _ip(address: str, role: str) -> str:
    ip = canonical_ip(address)
    if ip is None:
        raise FirewallParseError(f"{role} address {address!r} is not an IP address")
    return ip


def _port(value: str | None, what: str) -> int | None:
    if value is None or value == "":
        return None
    if not value.isascii() or not value.isdigit() or int(value) > 65535:
        raise FirewallParseError(f"{what} {value!r} is not a port number")
    return int(value)


def _transport(value: str) -> str:
    """ECS network.transport for a protocol name or IANA number (`TCP`, `ICMPv6`, `6`, `protocol 47`)."""
    value = value.removeprefix("protocol ").strip().lower()
    if value.isascii() and value.isdigit():
        return _TRANSPORTS.get(int(value), value)
    return "ipv6-icmp" if value == "icmpv6" else value


# ------------------------------------------------------------------------------------------------ netfilter

_KERNEL_PROGRAMS: Final = frozenset({"kernel", "ulogd", None})
_NETFILTER = re.compile(r"(?:^|(?<=\s))IN=(?P<in>\S*) OUT=(?P<out>\S*)(?= |$)")
_KERNEL_TIME = re.compile(r"\[\s*\d+\.\d+\]\s*")
_UFW = re.compile(r"\[UFW (?P<action>[A-Z ]+)\]")
_ACTION_WORD = re.compile(r"drop|deny|block|reject|accept|allow|pass", re.IGNORECASE)


def _netfilter(text: str, match: re.Match[str]) -> Fields:
    prefix = _KERNEL_TIME.sub("", text[:match.start()], count=1).strip()
    ufw = _UFW.search(prefix)
    name: str | None
    if ufw is not None:
        words = ufw.group("action").lower().split()
        action = "block" if "block" in words else words[-1]
        product, name = "ufw", f"UFW {ufw.group('action')}"
    else:
        word = _ACTION_WORD.search(prefix)
        action = word.group().lower() if word is not None else "log"
        product, name = "iptables", prefix.rstrip(":").strip() or None
    pairs: dict[str, str] = {}
    for token in text[match.end():].split():
        if token.startswith("["):  # the quoted packet of an ICMP error: `[SRC=... DST=... ]`
            break
        key, sep, value = token.partition("=")
        if sep and key not in pairs:
            pairs[key] = value
    if "SRC" not in pairs or "DST" not in pairs:
        raise FirewallParseError("netfilter log line without SRC= and DST=")
    inside, outside = match.group("in"), match.group("out")
    direction = "ingress" if inside and not outside else "egress" if outside and not inside else None
    proto = pairs.get("PROTO")
    transport = _transport(proto) if proto else None
    extra: Fields = {}
    if transport in ("icmp", "ipv6-icmp"):
        for key, name_ in (("TYPE", "iptables.icmp.type"), ("CODE", "iptables.icmp.code")):
            if pairs.get(key, "").isdigit():
                extra[name_] = int(pairs[key])
    return connection_fields(
        "iptables.log", ("Linux", product), action, _verdict(action),
        (pairs["SRC"], _port(pairs.get("SPT"), "SPT")), (pairs["DST"], _port(pairs.get("DPT"), "DPT")), transport,
        direction=direction, interfaces=(inside or None, outside or None), rule=(None, name), extra=extra,
    )


# ------------------------------------------------------------------------------------------------ filterlog

_FILTERLOG_HEADER: Final = 9  # rule, sub rule, anchor, tracker, interface, reason, action, direction, ip version
_FILTERLOG_IP: Final = {"4": 11, "6": 8}  # tos ecn ttl id offset flags proto-id proto len src dst | class flow hop ...
_FILTERLOG_PROTO: Final = {"tcp": 9, "udp": 3, "icmp": 1}  # sport dport len flags seq ack window urg options


def _filterlog(text: str) -> Fields:
    parts = text.split(",")
    if len(parts) < _FILTERLOG_HEADER:
        raise FirewallParseError(f"filterlog: {len(parts)} fields, the header needs {_FILTERLOG_HEADER}")
    rule, _sub, _anchor, tracker, interface, _reason, action, direction, version = parts[:_FILTERLOG_HEADER]
    if action not in ("pass", "block", "reject"):
        raise FirewallParseError(f"filterlog: unknown action {action!r}")
    if direction not in ("in", "out"):
        raise FirewallParseError(f"filterlog: unknown direction {direction!r}")
    if version not in _FILTERLOG_IP:
        raise FirewallParseError(f"filterlog: unknown IP version {version!r}")
    start = _FILTERLOG_HEADER + _FILTERLOG_IP[version]
    if len(parts) < start:
        raise FirewallParseError(f"filterlog: {len(parts)} fields, an IPv{version} entry needs {start}")
    if version == "4":
        proto_id, proto, src, dst = parts[15], parts[16].lower(), parts[18], parts[19]
    else:
        proto, proto_id, src, dst = parts[12].lower(), parts[13], parts[15], parts[16]
    transport = _transport(proto_id) if proto_id.isdigit() else _transport(proto)
    need = start + _FILTERLOG_PROTO.get(transport, 0)
    if len(parts) < need:
        raise FirewallParseError(f"filterlog: {len(parts)} fields, an IPv{version} {transport} entry needs {need}")
    sport = dport = None
    extra: Fields = {}
    if transport in ("tcp", "udp"):
        sport, dport = _port(parts[start], "source port"), _port(parts[start + 1], "destination port")
    elif transport == "icmp" and parts[start]:
        extra["pfsense.icmp.type"] = parts[start]
    if tracker:
        extra["rule.uuid"] = tracker
    inbound = direction == "in"
    return connection_fields(
        "pfsense.log", ("Netgate", "pfSense"), action, action == "pass", (src, sport), (dst, dport), transport,
        direction="ingress" if inbound else "egress",
        interfaces=(interface, None) if inbound else (None, interface), rule=(rule or None, None), extra=extra,
    )


# ------------------------------------------------------------------------------------------------ Cisco ASA

_ASA_TAG = re.compile(r"%(?:ASA|FTD)-(?P<sev>[0-7])-(?P<id>\d{6})")
_ASA_TEXT = re.compile(r"(?::\s*)?%(?:ASA|FTD)-(?P<sev>[0-7])-(?P<id>\d{6}):\s*")
_IP = r"[0-9A-Fa-f:.]+"
_IF_IP_PORT = r"(?P<{0}if>[^\s:/]+):(?P<{0}ip>" + _IP + r")(?:/(?P<{0}port>\d+))?"
_IP_PORT = r"(?P<{0}ip>" + _IP + r")/(?P<{0}port>\d+)"


def _asa_pattern(template: str) -> re.Pattern[str]:
    return re.compile(template.format(
        src=_IP_PORT.format("s"), dst=_IP_PORT.format("d"),
        isrc=_IF_IP_PORT.format("s"), idst=_IF_IP_PORT.format("d"),
    ))


# id -> (pattern, verdict when the text has no `verdict` group, event.action, whether a teardown)
_ASA: Final[dict[str, tuple[re.Pattern[str], bool | None, str, bool]]] = {
    "106001": (_asa_pattern(r"(?P<dir>Inbound) (?P<proto>TCP) connection denied from {src} to {dst}"
                            r" flags .*? on interface (?P<if>\S+)"), False, "firewall-rule", False),
    "106006": (_asa_pattern(r"Deny (?P<dir>inbound) (?P<proto>UDP) from {src} to {dst} on interface (?P<if>\S+)"),
               False, "firewall-rule", False),
    "106007": (_asa_pattern(r"Deny (?P<dir>inbound) (?P<proto>UDP) from {src} to {dst} due to DNS \w+"),
               False, "firewall-rule", False),
    "106015": (_asa_pattern(r"Deny (?P<proto>TCP) \(no connection\) from {src} to {dst} flags .*?"
                            r" on interface (?P<if>\S+)"), False, "firewall-rule", False),
    "106023": (_asa_pattern(r"Deny (?P<proto>protocol \d+|\w+) src {isrc} dst {idst}"
                            r"(?: \(type (?P<type>\d+), code (?P<code>\d+)\))?"
                            r" by access-group \"(?P<acl>[^\"]*)\".*"), False, "firewall-rule", False),
    "106100": (_asa_pattern(r"access-list (?P<acl>\S+) (?P<verdict>denied|permitted|est-allowed) (?P<proto>\w+)"
                            r" (?P<sif>[^\s/]+)/(?P<sip>" + _IP + r")\((?P<sport>\d+)\).*? ->"
                            r" (?P<dif>[^\s/]+)/(?P<dip>" + _IP + r")\((?P<dport>\d+)\).*"),
               None, "firewall-rule", False),
    "302013": (_asa_pattern(r"Built (?P<dir>inbound|outbound) (?P<proto>TCP) connection (?P<cid>\d+) for {isrc}"
                            r" \(.*?\).*? to {idst} .*"), True, "flow-creation", False),
    "302014": (_asa_pattern(r"Teardown (?P<proto>TCP) connection (?P<cid>\d+) for {isrc} to {idst}\b.*"),
               True, "flow-expiration", True),
    "302015": (_asa_pattern(r"Built (?P<dir>inbound|outbound) (?P<proto>UDP) connection (?P<cid>\d+) for {isrc}"
                            r" \(.*?\).*? to {idst} .*"), True, "flow-creation", False),
    "302016": (_asa_pattern(r"Teardown (?P<proto>UDP) connection (?P<cid>\d+) for {isrc} to {idst}\b.*"),
               True, "flow-expiration", True),
    "710003": (_asa_pattern(r"(?P<proto>TCP|UDP|ICMP) access denied by ACL from {src} to {idst}"),
               False, "firewall-rule", False),
}


def _asa(severity: int, message_id: str, text: str) -> Fields | None:
    known = _ASA.get(message_id)
    if known is None:
        return None
    pattern, verdict, event_action, end = known
    match = pattern.fullmatch(text.rstrip())
    if match is None:
        raise FirewallParseError(f"ASA-{message_id}: not the documented layout (no source and destination)")
    found = match.groupdict()
    if found.get("verdict") is not None:
        verdict = found["verdict"] != "denied"
    rule_verdict = "permit" if verdict else "deny"
    action = rule_verdict if event_action == "firewall-rule" else text.split(None, 1)[0].lower()  # built, teardown
    direction = found.get("dir")
    source = (found["sip"], _port(found.get("sport"), "source port"))
    destination = (found["dip"], _port(found.get("dport"), "destination port"))
    interfaces = (found.get("sif") or found.get("if"), found.get("dif"))
    if direction == "outbound":  # `Built outbound ... for <remote> to <local initiator>`
        source, destination = destination, source
        interfaces = interfaces[1], interfaces[0]
    extra: Fields = {"event.code": message_id, "event.severity": severity}
    if found.get("cid"):
        extra["cisco_asa.connection_id"] = found["cid"]
    if found.get("type") is not None:
        extra["cisco_asa.icmp_type"] = int(found["type"])
        extra["cisco_asa.icmp_code"] = int(found["code"])
    return connection_fields(
        "cisco_asa.log", ("Cisco", "ASA"), action, verdict, source, destination, _transport(found["proto"]),
        event_action=event_action, end=end, direction=direction.lower() if direction else None,
        interfaces=interfaces, rule=(None, found.get("acl")), extra=extra,
    )


# ------------------------------------------------------------------------------------------------ FortiGate

_FORTIGATE_TRAFFIC = re.compile(r"(?:^|\s)type=\"?traffic\"?(?:\s|$)")
_FORTIGATE_PAIR = re.compile(r"([\w-]+)=(?:\"((?:[^\"\\]|\\.)*)\"|(\S*))")
_FORTIGATE_DIRECTION: Final = {("wan", "lan"): "inbound", ("lan", "wan"): "outbound", ("lan", "lan"): "internal",
                               ("wan", "wan"): "external", ("wan", "dmz"): "inbound", ("dmz", "wan"): "outbound"}


def _fortigate(text: str) -> Fields:
    pairs: dict[str, str] = {}
    for key, quoted, bare in _FORTIGATE_PAIR.findall(text):
        pairs.setdefault(key, quoted or bare)
    if not pairs.get("srcip") or not pairs.get("dstip"):
        raise FirewallParseError("FortiGate traffic log without srcip= and dstip=")
    action = pairs.get("action", "").lower()
    if not action:
        raise FirewallParseError("FortiGate traffic log without action=")
    verdict = True if action in _END_ACTIONS or action == "start" else _verdict(action)
    proto = pairs.get("proto")
    extra: Fields = {}
    for key, name in (("logid", "event.code"), ("sessionid", "fortinet.firewall.sessionid"),
                      ("service", "network.protocol"), ("poluuid", "rule.uuid")):
        if pairs.get(key):
            extra[name] = pairs[key].lower() if key == "service" else pairs[key]
    roles = (pairs.get("srcintfrole", ""), pairs.get("dstintfrole", ""))
    return connection_fields(
        "fortinet.firewall", ("Fortinet", "FortiGate"), action, verdict,
        (pairs["srcip"], _port(pairs.get("srcport"), "srcport")),
        (pairs["dstip"], _port(pairs.get("dstport"), "dstport")), _transport(proto) if proto else None,
        end=action in _END_ACTIONS, direction=_FORTIGATE_DIRECTION.get(roles),
        interfaces=(pairs.get("srcintf"), pairs.get("dstintf")),
        rule=(pairs.get("policyid"), pairs.get("policyname")), extra=extra,
    )


# ------------------------------------------------------------------------------------------------ PAN-OS

_PANOS_HEAD = re.compile(r"[^,]*,\d{4}/\d{2}/\d{2} \d{2}:\d{2}:\d{2},[^,]*,(?P<type>TRAFFIC|THREAT),")
# 0-based positions in the CSV (PAN-OS syslog field descriptions; THREAT shares 0..30 with TRAFFIC).
_PANOS_COMMON: Final = 31
_PANOS_TRAFFIC: Final = {"bytes": 31, "bytes_sent": 32, "bytes_received": 33, "packets": 34, "elapsed": 36,
                         "category": 37, "packets_sent": 44, "packets_received": 45, "end_reason": 46}
_PANOS_THREAT: Final = {"misc": 31, "threat": 32, "category": 33, "severity": 34, "direction": 35}
_PANOS_ALLOWED: Final = frozenset({"allow", "alert", "continue", "override"})
_PANOS_SEVERITY: Final = {"informational": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}
_PANOS_THREAT_ID = re.compile(r"^(?P<name>.*?)\s*\((?P<id>\d+)\)$")
_NO_ADDRESS: Final = frozenset({"", "0.0.0.0", "::"})  # noqa: S104 - PAN-OS's "no NAT address", not a bind


def _panos(text: str, log_type: str) -> Fields:
    """A PAN-OS TRAFFIC or THREAT log line (the CSV after the syslog header)."""
    try:
        row = next(csv.reader([text]), [])
    except csv.Error as exc:  # a field over the csv module's limit (128 KiB)
        raise FirewallParseError(f"PAN-OS {log_type}: not readable as CSV: {exc}") from None
    if len(row) < _PANOS_COMMON:
        raise FirewallParseError(f"PAN-OS {log_type}: {len(row)} fields, at least {_PANOS_COMMON} expected")

    def at(index: int) -> str:
        return row[index].strip() if index < len(row) else ""

    subtype, action = at(4).lower(), at(30).lower()
    if not action:
        raise FirewallParseError(f"PAN-OS {log_type}: no action (field 31)")
    # allow (TRAFFIC), alert/continue/override (THREAT): the session went on; deny, drop, reset-*, block-*, sinkhole
    verdict = action in _PANOS_ALLOWED and subtype not in ("drop", "deny")
    extra: Fields = {"observer.serial_number": at(2)} if at(2) else {}
    for index, name in ((12, "source.user.name"), (13, "destination.user.name"), (14, "network.application"),
                        (16, "observer.ingress.zone"), (17, "observer.egress.zone"),
                        (22, "panw.panos.session_id"), (15, "panw.panos.vsys")):
        if at(index):
            extra[name] = at(index)
    for side, ip_index, port_index in (("source", 9, 26), ("destination", 10, 27)):
        if at(ip_index) not in _NO_ADDRESS:
            extra[f"{side}.nat.ip"] = _ip(at(ip_index), f"{side} NAT")
            port = _port(at(port_index), f"{side} NAT port")
            if port:
                extra[f"{side}.nat.port"] = port
    if log_type == "TRAFFIC":
        _panos_traffic(row, extra)
    else:
        _panos_threat(row, subtype, extra)
    return connection_fields(
        "panw.panos", ("Palo Alto Networks", "PAN-OS"), action, verdict,
        (at(7), _port(at(24), "source port")), (at(8), _port(at(25), "destination port")),
        _transport(at(29)) if at(29) else None,
        event_action=f"{log_type.lower()}-{subtype}" if subtype else None, end=subtype == "end",
        interfaces=(at(18) or None, at(19) or None), rule=(None, at(11) or None), extra=extra,
    )


def _panos_traffic(row: list[str], extra: Fields) -> None:
    values = {name: row[index].strip() for name, index in _PANOS_TRAFFIC.items() if index < len(row)}
    for name, field in (("bytes", "network.bytes"), ("bytes_sent", "source.bytes"),
                        ("bytes_received", "destination.bytes"), ("packets", "network.packets"),
                        ("packets_sent", "source.packets"), ("packets_received", "destination.packets")):
        value = values.get(name, "")
        if value.isdigit():
            extra[field] = int(value)
    elapsed = values.get("elapsed", "")
    if elapsed.isdigit():
        extra["event.duration"] = int(elapsed) * 1_000_000_000  # seconds -> ns
    if values.get("category") and values["category"] != "any":
        extra["panw.panos.url.category"] = values["category"]
    if values.get("end_reason") and values["end_reason"] != "n/a":
        extra["event.reason"] = values["end_reason"]


def _panos_threat(row: list[str], subtype: str, extra: Fields) -> None:
    values = {name: row[index].strip() for name, index in _PANOS_THREAT.items() if index < len(row)}
    extra["event.kind"] = "alert"
    extra["event.category"] = ["network", "intrusion_detection"]
    threat = _PANOS_THREAT_ID.match(values.get("threat", ""))
    if threat is not None:  # "name(id)"; URL and file logs give "(9999)" only
        if threat.group("name"):
            extra["panw.panos.threat.name"] = threat.group("name")
        extra["panw.panos.threat.id"] = threat.group("id")
    elif values.get("threat"):
        extra["panw.panos.threat.name"] = values["threat"]
    severity = _PANOS_SEVERITY.get(values.get("severity", "").lower())
    if severity is not None:
        extra["event.severity"] = severity
        extra["log.level"] = values["severity"].lower()
    if values.get("direction"):
        extra["panw.panos.threat.direction"] = values["direction"]
    if values.get("category"):
        extra["panw.panos.threat.category"] = values["category"]
    misc = values.get("misc", "")
    if misc:
        if subtype == "url":
            extra["url.original"] = misc
        elif subtype in ("file", "virus", "wildfire", "wildfire-virus", "data"):
            extra["file.name"] = misc
