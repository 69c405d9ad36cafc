"""Sensor records to `Event`s: ECS fields (as Filebeat/Packetbeat name them), a compact JSON summary as `raw`,
and an id that depends on the traffic only (not on the file it was read from).

    event = record_event(record, origin)

Every event has `event.module: network`, `event.dataset: network.<kind>` (flow, dns, http, tls: what
correlator/data/sources.yml routes to the Sigma firewall, dns and proxy categories), `source.*` (the flow's
initiator), `destination.*`, `network.*` (transport, type, community_id, direction) and `related.ip`. Fields
ECS lacks live under `pcap.*`: a flow's TCP flags per side, Zeek-style state and end reason; the JA3 string, JA4_r
and the offered ALPN of a ClientHello; whether a carved HTTP body is truncated.

An HTTP event whose response body was carved (`SensorConfig.carve_bodies`) carries the body as its `payload`
(de-chunked, at most `max_body_bytes`) for the YARA stage; `file.hash.sha256` and `file.size` name the whole body.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from collectors.pcap_dns import DnsMessage
from collectors.pcap_flows import Endpoints, FlowRecord
from collectors.pcap_http import HttpTransaction
from collectors.pcap_sensor import NetworkRecord
from collectors.pcap_tls import ClientHello, ja3, ja3_string, ja4, ja4_raw, version_text
from collectors.suricata import put_url_full, url_parts
from correlator.model import Event, EventOrigin, event_id_for, ms_to_iso, nest

__all__ = ["record_event"]

_TRANSPORTS = {1: "icmp", 2: "igmp", 6: "tcp", 17: "udp", 47: "gre", 50: "esp", 51: "ah", 58: "ipv6-icmp",
               89: "ospf", 103: "pim", 132: "sctp"}
# Zeek conn_state -> event.type, as Filebeat's zeek module maps it.
_STATE_TYPES = {"S0": ["connection", "start"], "S1": ["connection", "start"], "SF": ["connection", "start", "end"],
                "REJ": ["connection", "start", "denied"]}


def record_event(record: NetworkRecord, origin: EventOrigin) -> Event:
    """One sensor record as an `Event`. Its id is `event_id_for` over kind, Community ID, flow start and the
    record's index in its flow; `fields` hold every ECS field (dotted), the nested document is built on use."""
    endpoints = record.endpoints
    out: dict[str, Any] = {
        "@timestamp": ms_to_iso(record.timestamp_us // 1000), "event.module": "network",
        "event.dataset": f"network.{record.kind}", "event.kind": "event", "event.category": ["network"]}
    _endpoints(endpoints, out)
    detail = record.detail
    summary: dict[str, Any] = {"kind": record.kind, "community_id": endpoints.community_id,
                               "flow_start": _iso(endpoints.start_us), "index": record.index,
                               "source": _address(endpoints.source_ip, endpoints.source_port),
                               "destination": _address(endpoints.destination_ip, endpoints.destination_port),
                               "transport": out["network.transport"]}
    if isinstance(detail, FlowRecord):
        _flow(detail, out, summary)
    elif isinstance(detail, DnsMessage):
        _dns(detail, out, summary)
    elif isinstance(detail, HttpTransaction):
        _http(detail, out, summary)
    else:
        _tls(detail, out, summary)
    raw = orjson.dumps(summary).decode()
    identity = f"{record.kind}|{endpoints.community_id}|{endpoints.start_us}|{record.index}"
    timestamp_ms = record.timestamp_us // 1000
    return Event(id=event_id_for(identity, timestamp_ms), timestamp_ms=timestamp_ms, raw=raw, fields=out,
                 origin=origin, ecs_factory=lambda: (nest(out), {}), payload=_payload(detail))


def _payload(detail: object) -> bytes | None:
    """The carved response body of an HTTP transaction (the sensor carves only when asked): the event's
    payload for the YARA stage. None for other records and for bodies not carved."""
    if isinstance(detail, HttpTransaction):
        response = detail.response
        if response is not None and response.body:
            return response.body
    return None


def _endpoints(endpoints: Endpoints, out: dict[str, Any]) -> None:
    # the addresses come from packet headers: valid IPs, so `add_ip`'s check is not needed
    out["source.address"] = out["source.ip"] = endpoints.source_ip
    out["destination.address"] = out["destination.ip"] = endpoints.destination_ip
    out["related.ip"] = list(dict.fromkeys((endpoints.source_ip, endpoints.destination_ip)))
    if endpoints.source_port is not None:
        out["source.port"] = endpoints.source_port
    if endpoints.destination_port is not None:
        out["destination.port"] = endpoints.destination_port
    out["network.transport"] = _TRANSPORTS.get(endpoints.proto, str(endpoints.proto))
    out["network.iana_number"] = str(endpoints.proto)
    out["network.type"] = "ipv6" if ":" in endpoints.source_ip else "ipv4"
    out["network.community_id"] = endpoints.community_id
    out["network.direction"] = endpoints.direction


def _flow(flow: FlowRecord, out: dict[str, Any], summary: dict[str, Any]) -> None:
    out["event.type"] = _STATE_TYPES.get(flow.state or "", ["connection"])
    out["event.start"] = _iso(flow.start_us)
    out["event.end"] = _iso(flow.end_us)
    out["event.duration"] = (flow.end_us - flow.start_us) * 1000
    for index, side in enumerate(("source", "destination")):
        out[f"{side}.packets"] = flow.packets[index]
        out[f"{side}.bytes"] = flow.bytes[index]
    out["network.packets"] = sum(flow.packets)
    out["network.bytes"] = sum(flow.bytes)
    if flow.protocol:
        out["network.protocol"] = flow.protocol
    out["pcap.flow.end_reason"] = flow.end_reason
    if flow.state is not None:
        out["pcap.flow.state"] = flow.state
        out["pcap.flow.source_tcp_flags"], out["pcap.flow.destination_tcp_flags"] = flow.tcp_flags
    summary.update(start=out["event.start"], end=out["event.end"], packets=list(flow.packets),
                   bytes=list(flow.bytes), end_reason=flow.end_reason, protocol=flow.protocol)
    if flow.state is not None:
        summary.update(tcp_flags=list(flow.tcp_flags), state=flow.state)


def _dns(message: DnsMessage, out: dict[str, Any], summary: dict[str, Any]) -> None:
    out["event.type"] = ["protocol"]
    out["network.protocol"] = "dns"
    out["dns.type"] = "answer" if message.response else "query"
    out["dns.id"] = str(message.id)
    out["dns.op_code"] = {0: "QUERY", 1: "IQUERY", 2: "STATUS", 4: "NOTIFY", 5: "UPDATE"}.get(
        message.opcode, str(message.opcode))
    if message.flags:
        out["dns.header_flags"] = list(message.flags)
    if message.questions:
        question = message.questions[0]
        if question.name:
            out["dns.question.name"] = question.name
        out["dns.question.type"] = question.type
        out["dns.question.class"] = question.class_
    answers = [{"name": answer.name, "type": answer.type, "class": answer.class_, "ttl": answer.ttl,
                "data": answer.data} for answer in message.answers]
    if message.response:
        out["dns.response_code"] = message.rcode
        if answers:
            out["dns.answers"] = answers
        resolved = [answer.data for answer in message.answers if answer.type in ("A", "AAAA")]
        if resolved:
            out["dns.resolved_ip"] = resolved
            related = out.setdefault("related.ip", [])
            related.extend(address for address in dict.fromkeys(resolved) if address not in related)
    summary.update(ts=out["@timestamp"], id=message.id, type=out["dns.type"],
                   question=out.get("dns.question.name"), qtype=out.get("dns.question.type"),
                   rcode=out.get("dns.response_code"), answers=[[a["type"], a["data"]] for a in answers])


def _http(transaction: HttpTransaction, out: dict[str, Any], summary: dict[str, Any]) -> None:
    out["event.category"] = ["network", "web"]
    out["event.type"] = ["access", "protocol"]
    out["network.protocol"] = "http"
    request, response = transaction.request, transaction.response
    if request is not None:
        out["http.request.method"] = request.method
        out["http.version"] = request.version
        out["url.original"] = request.target
        if request.method != "CONNECT":  # its target is host:port, not a URL
            out.update(url_parts(request.target))
        host = request.target if request.method == "CONNECT" else request.header("host")
        if host:
            name, port = _authority(host)
            out["url.domain"] = out["destination.domain"] = name
            if port is not None:
                out["url.port"] = port
        if request.method != "CONNECT":
            put_url_full(out)
        for header, key in (("user-agent", "user_agent.original"), ("referer", "http.request.referrer"),
                            ("content-type", "http.request.mime_type")):
            value = request.header(header)
            if value:
                out[key] = value
        out["http.request.body.bytes"] = request.body_bytes
    if response is not None:
        out["http.response.status_code"] = response.status
        out["event.outcome"] = "success" if response.status < 400 else "failure"
        out["http.response.body.bytes"] = response.body_bytes
        out.setdefault("http.version", response.version)
        mime = response.header("content-type")
        if mime:
            out["http.response.mime_type"] = mime
        if response.body_sha256 is not None:
            out["file.hash.sha256"] = response.body_sha256
            out["file.size"] = response.body_bytes
            out["related.hash"] = [response.body_sha256]
            if mime:
                out["file.mime_type"] = mime.split(";", 1)[0].strip()
        if response.body_truncated or not response.complete:
            out["pcap.http.body_truncated"] = True
    summary.update(ts=out["@timestamp"], method=out.get("http.request.method"), host=out.get("url.domain"),
                   uri=out.get("url.original"), user_agent=out.get("user_agent.original"),
                   status=out.get("http.response.status_code"), request_body=out.get("http.request.body.bytes"),
                   response_body=out.get("http.response.body.bytes"), sha256=out.get("file.hash.sha256"))


def _tls(hello: ClientHello, out: dict[str, Any], summary: dict[str, Any]) -> None:
    out["event.type"] = ["protocol"]
    out["network.protocol"] = "tls"
    if hello.server_name:
        out["tls.client.server_name"] = out["destination.domain"] = hello.server_name
    version = version_text(hello.offered_version)
    if version is not None:
        out["tls.version_protocol"], out["tls.version"] = version
    out["tls.client.ja3"] = ja3(hello)
    out["tls.client.ja4"] = ja4(hello)
    out["pcap.tls.ja3_string"] = ja3_string(hello)
    out["pcap.tls.ja4_r"] = ja4_raw(hello)
    if hello.alpn:
        out["pcap.tls.alpn"] = [name.decode("ascii", "backslashreplace") for name in hello.alpn]
    summary.update(ts=out["@timestamp"], server_name=hello.server_name, version=out.get("tls.version"),
                   ja3=out["tls.client.ja3"], ja4=out["tls.client.ja4"])


def _authority(text: str) -> tuple[str, int | None]:
    """Host and port of `host`, `host:port`, `[v6]` or `[v6]:port`."""
    name, _, port = text.rpartition(":")
    if not name or not port.isdigit() or (name.count(":") and not name.endswith("]")):
        return text.strip("[]"), None
    return name.strip("[]"), int(port)


def _iso(timestamp_us: int) -> str:
    seconds, micros = divmod(timestamp_us, 1_000_000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{micros:06d}Z"


def _address(ip: str, port: int | None) -> str:
    if port is None:
        return ip
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
