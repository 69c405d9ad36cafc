"""Capture files to network events, end to end: scenarios written as pcap/pcapng with scapy (a port scan, DNS
lookups of a C2-looking domain, an HTTP download over out-of-order segments, a TLS ClientHello, an SSH brute
force), truncated and corrupt files, event order and ids, idle timeouts, and routing to a Sigma dns rule."""

from __future__ import annotations

import hashlib
import random
import shutil
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6ND_NS, ICMPv6ND_RA, IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet
from scapy.utils import EDecimal, wrpcap, wrpcapng

from collectors.pcap import FORMAT, CaptureFile, read_capture, read_file, read_http_bodies, sniff
from collectors.pcap_packets import Frame
from collectors.pcap_sensor import NetworkSensor, SensorConfig
from correlator.model import Event, Rejected
from correlator.sigma.engine import SigmaEngine
from correlator.sigma.loader import load_rules
from correlator.sigma.sources import load_sources
from tests.collectors.test_pcap_stages import chrome_like_hello, tls_records

# Addresses given: without them scapy resolves the MAC with ARP on the real interface (traffic off loopback).
MAC = {"src": "02:00:00:00:00:01", "dst": "02:00:00:00:00:02"}

T0_US = 1_710_000_000_000_000  # 2024-03-09T16:00:00Z


class Capture:
    """Packets for a test capture, each stamped `after_us` after the previous one."""

    def __init__(self) -> None:
        self.packets: list[Packet] = []
        self.now_us = T0_US

    def add(self, *packets: Packet, after_us: int = 1000) -> None:
        for packet in packets:
            self.now_us += after_us
            packet.time = EDecimal(self.now_us) / 1_000_000
            self.packets.append(packet)

    def write(self, path: Path, *, ng: bool = False) -> Path:
        (wrpcapng if ng else wrpcap)(str(path), self.packets)
        return path


class TcpConnection:
    """Both ends of one TCP connection, keeping their sequence numbers."""

    def __init__(self, capture: Capture, client: tuple[str, int], server: tuple[str, int]) -> None:
        self.capture = capture
        self.ends = {True: client, False: server}
        self.next_seq = {True: 1000, False: 70000}

    def packet(self, from_client: bool, flags: str, payload: bytes = b"", *, seq: int | None = None) -> Packet:
        (src, sport), (dst, dport) = self.ends[from_client], self.ends[not from_client]
        tcp = TCP(sport=sport, dport=dport, flags=flags, seq=self.next_seq[from_client] if seq is None else seq,
                  ack=self.next_seq[not from_client] if "A" in flags else 0)
        packet = Ether(**MAC) / IP(src=src, dst=dst) / tcp
        return packet / payload if payload else packet

    def handshake(self) -> None:
        self.capture.add(self.packet(True, "S"))
        self.next_seq[True] += 1
        self.capture.add(self.packet(False, "SA"))
        self.next_seq[False] += 1
        self.capture.add(self.packet(True, "A"))

    def segments(self, from_client: bool, data: bytes, size: int = 1000) -> list[Packet]:
        """`data` as segments (not yet in the capture), the sequence numbers moved past it."""
        start = self.next_seq[from_client]
        packets = [self.packet(from_client, "PA", data[i:i + size], seq=start + i) for i in range(0, len(data), size)]
        self.next_seq[from_client] += len(data)
        return packets

    def send(self, from_client: bool, data: bytes, size: int = 1000) -> None:
        self.capture.add(*self.segments(from_client, data, size))

    def close(self) -> None:
        self.capture.add(self.packet(True, "FA"))
        self.next_seq[True] += 1
        self.capture.add(self.packet(False, "FA"))
        self.next_seq[False] += 1
        self.capture.add(self.packet(True, "A"))


def events(path: Path, config: SensorConfig | None = None) -> list[Event]:
    items = list(read_file(path, config))
    assert [item.describe() for item in items if isinstance(item, Rejected)] == []
    return [item for item in items if isinstance(item, Event)]


def of_kind(found: Sequence[Event | Rejected], kind: str) -> list[Event]:
    return [event for event in found
            if isinstance(event, Event) and event.fields["event.dataset"] == f"network.{kind}"]


def pick(event: Event, *names: str) -> dict[str, Any]:
    return {name: event.fields.get(name) for name in names}


# --- scenarios ----------------------------------------------------------------------------------------------------

ATTACKER, TARGET = "198.51.100.66", "10.0.0.10"
OPEN_PORTS = (22, 80)


def port_scan(capture: Capture) -> None:
    """A SYN scan of ports 20-119: RST-ACK from closed ports, SYN-ACK from open ones (then the scanner's RST)."""
    for port in range(20, 120):
        syn = Ether(**MAC) / IP(src=ATTACKER, dst=TARGET) / TCP(sport=61000, dport=port, flags="S", seq=7)
        capture.add(syn, after_us=200)
        if port in OPEN_PORTS:
            capture.add(Ether(**MAC) / IP(src=TARGET, dst=ATTACKER) / TCP(sport=port, dport=61000, flags="SA", seq=300,
                                                                   ack=8), after_us=100)
            capture.add(Ether(**MAC) / IP(src=ATTACKER, dst=TARGET) / TCP(sport=61000, dport=port, flags="R", seq=8),
                        after_us=100)
        else:
            capture.add(Ether(**MAC) / IP(src=TARGET, dst=ATTACKER) / TCP(sport=port, dport=61000, flags="RA", seq=0,
                                                                   ack=8), after_us=100)


CLIENT, RESOLVER = "10.0.0.5", "10.0.0.53"
C2_NAME = "x7k2qv9.beacon.evil.test"


def dns_lookups(capture: Capture) -> None:
    """A, TXT and a failing lookup over UDP; a TXT lookup over TCP (length-prefixed, split over segments)."""
    def udp(src: str, dst: str, sport: int, dport: int, message: DNS) -> Packet:
        return Ether(**MAC) / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / message

    capture.add(udp(CLIENT, RESOLVER, 50001, 53, DNS(id=0x1001, rd=1, qd=DNSQR(qname=C2_NAME, qtype="A"))))
    capture.add(udp(RESOLVER, CLIENT, 53, 50001, DNS(
        id=0x1001, qr=1, rd=1, ra=1, qd=DNSQR(qname=C2_NAME, qtype="A"),
        an=[DNSRR(rrname=C2_NAME, type="CNAME", ttl=30, rdata="cdn.evil.test"),
            DNSRR(rrname="cdn.evil.test", type="A", ttl=60, rdata="203.0.113.66"),
            DNSRR(rrname="cdn.evil.test", type="A", ttl=60, rdata="203.0.113.67")])), after_us=20_000)
    capture.add(udp(CLIENT, RESOLVER, 50002, 53, DNS(id=0x1002, rd=1, qd=DNSQR(qname=C2_NAME, qtype="TXT"))))
    capture.add(udp(RESOLVER, CLIENT, 53, 50002, DNS(
        id=0x1002, qr=1, rd=1, ra=1, qd=DNSQR(qname=C2_NAME, qtype="TXT"),
        an=[DNSRR(rrname=C2_NAME, type="TXT", ttl=5, rdata=[b"cmd=sleep 60"])])), after_us=15_000)
    capture.add(udp(CLIENT, RESOLVER, 50003, 53, DNS(id=0x1003, rd=1, qd=DNSQR(qname="nope.evil.test"))))
    capture.add(udp(RESOLVER, CLIENT, 53, 50003, DNS(id=0x1003, qr=1, rd=1, ra=1, rcode=3,
                                                     qd=DNSQR(qname="nope.evil.test"))), after_us=15_000)
    tcp = TcpConnection(capture, (CLIENT, 50004), (RESOLVER, 53))
    tcp.handshake()
    query = bytes(DNS(id=0x1004, rd=1, qd=DNSQR(qname="big.evil.test", qtype="TXT")))
    tcp.send(True, len(query).to_bytes(2, "big") + query, size=10)
    answer = bytes(DNS(id=0x1004, qr=1, qd=DNSQR(qname="big.evil.test", qtype="TXT"),
                       an=[DNSRR(rrname="big.evil.test", type="TXT", ttl=5, rdata=[b"A" * 200, b"B" * 200])]))
    tcp.send(False, len(answer).to_bytes(2, "big") + answer, size=300)
    tcp.close()


WEB_CLIENT, WEB_SERVER = ("10.0.0.5", 49152), ("203.0.113.80", 80)
PAYLOAD = random.Random(5).randbytes(6000)
REQUEST = (b"GET /dl/stage2.bin?id=42 HTTP/1.1\r\nHost: files.evil.test:8080\r\n"
           b"User-Agent: Mozilla/5.0 (compatible; loader)\r\nAccept: */*\r\n\r\n")


def chunked(body: bytes, sizes: list[int]) -> bytes:
    out, position = b"", 0
    for size in sizes:
        out += f"{size:x}\r\n".encode() + body[position:position + size] + b"\r\n"
        position += size
    return out + b"0\r\n\r\n"


def http_download(capture: Capture) -> None:
    """The request split over two segments; the chunked response over seven 1000-byte segments sent out of
    order, one retransmitted and one overlapping two others."""
    tcp = TcpConnection(capture, WEB_CLIENT, WEB_SERVER)
    tcp.handshake()
    tcp.send(True, REQUEST, size=40)
    response = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n" \
        + chunked(PAYLOAD, [1000, 2500, 2500])
    start = tcp.next_seq[False]
    segments = tcp.segments(False, response, size=1000)
    overlap = tcp.packet(False, "PA", response[3500:4800], seq=start + 3500)
    order = [segments[0], segments[2], segments[1], segments[1], segments[4], overlap, segments[3], *segments[5:]]
    capture.add(*order)
    tcp.close()


TLS_CLIENT, TLS_SERVER = ("10.0.0.5", 50000), ("198.51.100.44", 443)


def tls_hello(capture: Capture) -> None:
    tcp = TcpConnection(capture, TLS_CLIENT, TLS_SERVER)
    tcp.handshake()
    records = tls_records(chrome_like_hello("c2.evil.test"))
    first, second = tcp.segments(True, records, size=len(records) // 2 + 1)
    capture.add(second, first)  # out of order
    tcp.send(False, b"\x16\x03\x03\x00\x04\x02\x00\x00\x00")
    tcp.close()


BRUTE_FORCER, SSH_SERVER = "203.0.113.9", "10.0.0.22"


def ssh_brute_force(capture: Capture, attempts: int = 25) -> None:
    for attempt in range(attempts):
        tcp = TcpConnection(capture, (BRUTE_FORCER, 40000 + attempt), (SSH_SERVER, 22))
        capture.now_us += 2_000_000
        tcp.handshake()
        tcp.send(False, b"SSH-2.0-OpenSSH_9.6\r\n")
        tcp.send(True, b"SSH-2.0-libssh2_1.11.0\r\n")
        tcp.send(True, bytes(300))
        tcp.send(False, bytes(200))
        tcp.close()


@pytest.fixture
def capture_file(tmp_path: Path) -> Callable[..., Path]:
    def write(*scenarios: Callable[[Capture], None], name: str = "capture.pcap", ng: bool = False) -> Path:
        capture = Capture()
        for scenario in scenarios:
            scenario(capture)
        return capture.write(tmp_path / name, ng=ng)

    return write


# --- tests --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "expected"),
    [(b"\xd4\xc3\xb2\xa1\x02\x00", True), (b"\xa1\xb2\xc3\xd4", True), (b"\x4d\x3c\xb2\xa1", True),
     (b"\xa1\xb2\x3c\x4d", True), (b"\x0a\x0d\x0d\x0a\x1c\x00", True), (b'{"ts": 1}', False), (b"", False)],
    ids=["pcap-le", "pcap-be", "pcap-nano-le", "pcap-nano-be", "pcapng", "json", "empty"],
)
def test_sniff(head: bytes, expected: bool) -> None:
    assert sniff(head) is expected


def test_port_scan_gives_a_short_flow_per_port(capture_file: Callable[..., Path]) -> None:
    found = events(capture_file(port_scan))
    assert Counter(event.fields["event.dataset"] for event in found) == {"network.flow": 100}
    by_port = {event.fields["destination.port"]: event for event in found}
    assert sorted(by_port) == list(range(20, 120))
    closed = by_port[23]
    assert pick(closed, "source.ip", "source.port", "destination.ip", "network.transport", "network.direction",
                "event.category", "event.type", "pcap.flow.source_tcp_flags", "pcap.flow.destination_tcp_flags",
                "pcap.flow.state", "pcap.flow.end_reason", "source.packets", "destination.packets",
                "network.packets", "network.bytes", "event.duration") == {
        "source.ip": ATTACKER, "source.port": 61000, "destination.ip": TARGET, "network.transport": "tcp",
        "network.direction": "inbound", "event.category": ["network"],
        "event.type": ["connection", "start", "denied"], "pcap.flow.source_tcp_flags": "S",
        "pcap.flow.destination_tcp_flags": "RA", "pcap.flow.state": "REJ", "pcap.flow.end_reason": "rst",
        "source.packets": 1, "destination.packets": 1, "network.packets": 2, "network.bytes": 80,
        "event.duration": 100_000}
    assert {port: by_port[port].fields["pcap.flow.state"] for port in OPEN_PORTS} == {22: "RSTO", 80: "RSTO"}
    assert by_port[22].fields["pcap.flow.source_tcp_flags"] == "SR"
    assert {event.fields["source.ip"] for event in found} == {ATTACKER}


def test_dns_queries_and_answers(capture_file: Callable[..., Path]) -> None:
    found = of_kind(events(capture_file(dns_lookups)), "dns")
    assert [(e.fields["dns.id"], e.fields["dns.type"], e.fields["network.transport"]) for e in found] == [
        ("4097", "query", "udp"), ("4097", "answer", "udp"), ("4098", "query", "udp"), ("4098", "answer", "udp"),
        ("4099", "query", "udp"), ("4099", "answer", "udp"), ("4100", "query", "tcp"), ("4100", "answer", "tcp")]
    query, answer = found[0], found[1]
    assert pick(query, "event.dataset", "event.category", "event.type", "network.protocol", "source.ip",
                "destination.ip", "destination.port", "network.direction", "dns.question.name",
                "dns.question.type", "dns.question.class", "dns.header_flags", "dns.response_code",
                "dns.answers") == {
        "event.dataset": "network.dns", "event.category": ["network"], "event.type": ["protocol"],
        "network.protocol": "dns", "source.ip": CLIENT, "destination.ip": RESOLVER, "destination.port": 53,
        "network.direction": "internal", "dns.question.name": C2_NAME, "dns.question.type": "A",
        "dns.question.class": "IN", "dns.header_flags": ["RD"], "dns.response_code": None, "dns.answers": None}
    # an answer keeps the flow's orientation: source is the client that asked
    assert pick(answer, "source.ip", "destination.ip", "dns.response_code", "dns.header_flags", "dns.answers",
                "dns.resolved_ip", "related.ip") == {
        "source.ip": CLIENT, "destination.ip": RESOLVER, "dns.response_code": "NOERROR",
        "dns.header_flags": ["RD", "RA"],
        "dns.answers": [
            {"name": C2_NAME, "type": "CNAME", "class": "IN", "ttl": 30, "data": "cdn.evil.test"},
            {"name": "cdn.evil.test", "type": "A", "class": "IN", "ttl": 60, "data": "203.0.113.66"},
            {"name": "cdn.evil.test", "type": "A", "class": "IN", "ttl": 60, "data": "203.0.113.67"}],
        "dns.resolved_ip": ["203.0.113.66", "203.0.113.67"],
        "related.ip": [CLIENT, RESOLVER, "203.0.113.66", "203.0.113.67"]}
    assert found[3].fields["dns.answers"] == [
        {"name": C2_NAME, "type": "TXT", "class": "IN", "ttl": 5, "data": "cmd=sleep 60"}]
    assert pick(found[5], "dns.question.name", "dns.response_code", "dns.answers") == {
        "dns.question.name": "nope.evil.test", "dns.response_code": "NXDOMAIN", "dns.answers": None}
    assert found[7].fields["dns.answers"][0]["data"] == "A" * 200 + " " + "B" * 200
    assert answer.ecs["dns"]["question"]["name"] == C2_NAME  # the nested document


def test_http_download_over_out_of_order_segments(capture_file: Callable[..., Path]) -> None:
    path = capture_file(http_download)
    ((event, body),) = list(read_http_bodies(path))
    assert body == PAYLOAD
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    assert pick(event, "event.dataset", "event.category", "event.type", "event.outcome", "network.protocol",
                "source.ip", "destination.ip", "destination.port", "http.request.method", "http.version",
                "url.original", "url.path", "url.query", "url.domain", "url.port", "url.full", "destination.domain",
                "user_agent.original", "http.request.body.bytes", "http.response.status_code",
                "http.response.body.bytes", "http.response.mime_type", "file.hash.sha256", "file.size",
                "file.mime_type", "related.hash", "pcap.http.body_truncated") == {
        "event.dataset": "network.http", "event.category": ["network", "web"], "event.type": ["access", "protocol"],
        "event.outcome": "success", "network.protocol": "http", "source.ip": "10.0.0.5",
        "destination.ip": "203.0.113.80", "destination.port": 80, "http.request.method": "GET",
        "http.version": "1.1", "url.original": "/dl/stage2.bin?id=42", "url.path": "/dl/stage2.bin",
        "url.query": "id=42", "url.domain": "files.evil.test", "url.port": 8080,
        "url.full": "http://files.evil.test:8080/dl/stage2.bin?id=42", "destination.domain": "files.evil.test",
        "user_agent.original": "Mozilla/5.0 (compatible; loader)",
        "http.request.body.bytes": 0, "http.response.status_code": 200, "http.response.body.bytes": 6000,
        "http.response.mime_type": "application/octet-stream", "file.hash.sha256": digest, "file.size": 6000,
        "file.mime_type": "application/octet-stream", "related.hash": [digest], "pcap.http.body_truncated": None}
    (http,) = of_kind(events(path), "http")  # without carving: the same event, hash and size included
    assert (http.id, http.fields) == (event.id, event.fields)
    assert http.timestamp_ms == (T0_US + 4000) // 1000  # the request's first segment (after the handshake)


def test_carving_puts_the_body_on_the_http_event_as_payload(capture_file: Callable[..., Path]) -> None:
    path = capture_file(http_download, dns_lookups)
    carved, plain = list(read_file(path, carve=True)), list(read_file(path))
    assert [item.payload for item in of_kind(carved, "http")] == [PAYLOAD]
    assert all(item.payload is None for item in plain if isinstance(item, Event))
    assert all(item.payload is None for item in carved
               if isinstance(item, Event) and item.fields["event.dataset"] != "network.http")
    assert [(e.id, e.fields) for e in carved if isinstance(e, Event)] == \
        [(e.id, e.fields) for e in plain if isinstance(e, Event)]  # the events are the same otherwise
    assert [e.payload for e in of_kind(list(read_file(path, SensorConfig(carve_bodies=True))), "http")] == [PAYLOAD]


def test_a_carved_body_stops_at_max_body_bytes(capture_file: Callable[..., Path]) -> None:
    (http,) = of_kind(list(read_file(capture_file(http_download), SensorConfig(max_body_bytes=1500), carve=True)),
                      "http")
    assert http.payload == PAYLOAD[:1500]
    assert pick(http, "file.hash.sha256", "file.size", "pcap.http.body_truncated") == {
        "file.hash.sha256": hashlib.sha256(PAYLOAD).hexdigest(), "file.size": 6000, "pcap.http.body_truncated": True}


def test_responses_without_a_body_carry_no_payload(capture_file: Callable[..., Path]) -> None:
    def no_body(capture: Capture) -> None:
        tcp = TcpConnection(capture, WEB_CLIENT, WEB_SERVER)
        tcp.handshake()
        tcp.send(True, b"GET /one HTTP/1.1\r\nHost: a.test\r\n\r\nHEAD /two HTTP/1.1\r\nHost: a.test\r\n\r\n")
        tcp.send(False, b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n")
        tcp.close()

    found = of_kind(list(read_file(capture_file(no_body), carve=True)), "http")
    assert [(e.fields["url.original"], e.payload) for e in found] == [("/one", None), ("/two", None)]


def test_http_pipelined_requests_in_a_capture(capture_file: Callable[..., Path]) -> None:
    def pipelined(capture: Capture) -> None:
        tcp = TcpConnection(capture, WEB_CLIENT, WEB_SERVER)
        tcp.handshake()
        tcp.send(True, b"GET /one HTTP/1.1\r\nHost: a.test\r\n\r\nGET /two HTTP/1.1\r\nHost: a.test\r\n\r\n")
        tcp.send(False, b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno!")
        tcp.close()

    found = of_kind(events(capture_file(pipelined)), "http")
    assert [(e.fields["url.original"], e.fields["http.response.status_code"], e.fields["event.outcome"])
            for e in found] == [("/one", 204, "success"), ("/two", 404, "failure")]
    assert len({event.id for event in found}) == 2
    assert "file.hash.sha256" not in found[0].fields


def test_http_connect_through_a_proxy(capture_file: Callable[..., Path]) -> None:
    def proxied(capture: Capture) -> None:
        tcp = TcpConnection(capture, ("10.0.0.5", 51000), ("10.0.0.3", 3128))
        tcp.handshake()
        tcp.send(True, b"CONNECT c2.evil.test:443 HTTP/1.1\r\nHost: c2.evil.test:443\r\n\r\n")
        tcp.send(False, b"HTTP/1.1 200 Connection established\r\n\r\n")
        tcp.send(True, tls_records(chrome_like_hello()))  # tunnelled: not read
        tcp.close()

    (http,) = of_kind(events(capture_file(proxied)), "http")
    assert pick(http, "http.request.method", "url.original", "url.domain", "url.port", "url.path", "url.full",
                "http.response.status_code", "destination.port") == {
        "http.request.method": "CONNECT", "url.original": "c2.evil.test:443", "url.domain": "c2.evil.test",
        "url.port": 443, "url.path": None, "url.full": None, "http.response.status_code": 200, "destination.port": 3128}


def test_tls_client_hello_sni_ja3_ja4(capture_file: Callable[..., Path]) -> None:
    found = events(capture_file(tls_hello))
    (tls,) = of_kind(found, "tls")
    ja3_text = ("771,4865-4866-4867-49195-49199-49196-49200-52393-52392-49171-49172-156-157-47-53,"
                "27-0-51-16-17513-23-45-13-5-35-18-43-65281-11-10-21,29-23-24,0")  # by hand: see test_pcap_stages
    assert pick(tls, "event.dataset", "network.protocol", "source.ip", "destination.port", "tls.client.server_name",
                "destination.domain", "tls.version", "tls.version_protocol", "tls.client.ja3", "tls.client.ja4",
                "pcap.tls.ja3_string", "pcap.tls.alpn") == {
        "event.dataset": "network.tls", "network.protocol": "tls", "source.ip": "10.0.0.5", "destination.port": 443,
        "tls.client.server_name": "c2.evil.test", "destination.domain": "c2.evil.test", "tls.version": "1.3",
        "tls.version_protocol": "tls", "tls.client.ja3": hashlib.md5(ja3_text.encode()).hexdigest(),
        "tls.client.ja4": "t13d1516h2_8daaf6152771_e5627efa2ab1", "pcap.tls.ja3_string": ja3_text,
        "pcap.tls.alpn": ["h2", "http/1.1"]}
    (flow,) = of_kind(found, "flow")
    assert pick(flow, "network.protocol", "pcap.flow.state", "pcap.flow.end_reason") == {
        "network.protocol": "tls", "pcap.flow.state": "SF", "pcap.flow.end_reason": "fin"}


def test_ssh_brute_force_gives_many_short_flows_to_port_22(capture_file: Callable[..., Path]) -> None:
    found = events(capture_file(ssh_brute_force))
    assert len(found) == 25
    assert {(e.fields["event.dataset"], e.fields["source.ip"], e.fields["destination.ip"],
             e.fields["destination.port"], e.fields["network.direction"], e.fields["pcap.flow.state"],
             e.fields["pcap.flow.end_reason"]) for e in found} == {
        ("network.flow", BRUTE_FORCER, SSH_SERVER, 22, "inbound", "SF", "fin")}
    assert all("network.protocol" not in event.fields for event in found)  # not HTTP, TLS or DNS
    first = found[0]
    assert pick(first, "source.port", "source.packets", "destination.packets", "source.bytes",
                "destination.bytes") == {"source.port": 40000, "source.packets": 6, "destination.packets": 4,
                                         "source.bytes": 6 * 40 + 24 + 300, "destination.bytes": 4 * 40 + 21 + 200}
    starts = [event.timestamp_ms for event in found]
    assert starts == sorted(starts)
    assert all(event.fields["event.duration"] < 1_000_000_000 for event in found)


def test_flow_fields_and_the_ecs_document(capture_file: Callable[..., Path]) -> None:
    def one_connection(capture: Capture) -> None:  # the Community ID spec's TCP reference tuple
        tcp = TcpConnection(capture, ("128.232.110.120", 34855), ("66.35.250.204", 80))
        tcp.handshake()
        tcp.close()

    path = capture_file(one_connection)
    (flow,) = events(path)
    assert pick(flow, "network.community_id", "network.direction", "network.type", "network.iana_number",
                "event.start", "event.end", "event.duration", "@timestamp") == {
        "network.community_id": "1:LQU9qZlK+B5F3KDmev6m5PMibrg=", "network.direction": "external",
        "network.type": "ipv4", "network.iana_number": "6", "event.start": "2024-03-09T16:00:00.001000Z",
        "event.end": "2024-03-09T16:00:00.006000Z", "event.duration": 5_000_000,
        "@timestamp": "2024-03-09T16:00:00.001Z"}
    assert (flow.origin.path, flow.origin.record_id, flow.origin.format) == (str(path), 1, FORMAT)
    document = flow.to_document()
    assert document["log"]["file"]["path"] == str(path)
    assert document["source"] == {"address": "128.232.110.120", "ip": "128.232.110.120", "port": 34855,
                                  "packets": 4, "bytes": 160}
    assert flow.raw.startswith('{"kind":"flow","community_id":"1:LQU9qZlK+B5F3KDmev6m5PMibrg="')


def test_icmp_and_icmpv6_flows_pair_requests_with_replies(capture_file: Callable[..., Path]) -> None:
    def pings(capture: Capture) -> None:  # the Community ID spec's ICMP and ICMPv6 reference tuples
        capture.add(Ether(**MAC) / IP(src="192.168.0.89", dst="192.168.0.1") / ICMP(type=8, id=1, seq=1))
        capture.add(Ether(**MAC) / IP(src="192.168.0.1", dst="192.168.0.89") / ICMP(type=0, id=1, seq=1))
        capture.add(Ether(**MAC) / IPv6(src="fe80::200:86ff:fe05:80da", dst="fe80::260:97ff:fe07:69ea")
                    / ICMPv6ND_NS(tgt="fe80::260:97ff:fe07:69ea"))
        capture.add(Ether(**MAC) / IPv6(src="fe80::260:97ff:fe07:69ea", dst="fe80::200:86ff:fe05:80da")
                    / ICMPv6ND_NA(tgt="fe80::260:97ff:fe07:69ea"))

    found = events(capture_file(pings))
    assert [pick(event, "network.transport", "network.type", "network.community_id", "source.ip", "source.port",
                 "network.packets", "network.direction") for event in found] == [
        {"network.transport": "icmp", "network.type": "ipv4", "network.community_id": "1:X0snYXpgwiv9TZtqg64sgzUn6Dk=",
         "source.ip": "192.168.0.89", "source.port": None, "network.packets": 2, "network.direction": "internal"},
        {"network.transport": "ipv6-icmp", "network.type": "ipv6",
         "network.community_id": "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=", "source.ip": "fe80::200:86ff:fe05:80da",
         "source.port": None, "network.packets": 2, "network.direction": "external"}]


def test_a_message_to_a_group_address_is_never_initiated_by_that_address(capture_file: Callable[..., Path]) -> None:
    """An unsolicited router advertisement (a reply type) to all nodes, an NTP answer from port 123 to a multicast
    group: the sender starts the flow (as Zeek's conn.log has it), not ff02::1 or the group."""
    def unsolicited(capture: Capture) -> None:
        capture.add(Ether(**MAC) / IPv6(src="fe80::a00:27ff:fe18:a1ef", dst="ff02::1") / ICMPv6ND_RA())
        capture.add(Ether(**MAC) / IP(src="192.168.1.4", dst="224.0.1.1") / UDP(sport=123, dport=40000))
        capture.add(Ether(**MAC) / IP(src="192.168.1.4", dst="255.255.255.255") / UDP(sport=67, dport=50000))
        capture.add(Ether(**MAC) / IP(src="192.168.1.4", dst="192.168.1.41") / UDP(sport=123, dport=40001))

    found = events(capture_file(unsolicited))
    assert [pick(event, "source.ip", "destination.ip") for event in found] == [
        {"source.ip": "fe80::a00:27ff:fe18:a1ef", "destination.ip": "ff02::1"},
        {"source.ip": "192.168.1.4", "destination.ip": "224.0.1.1"},
        {"source.ip": "192.168.1.4", "destination.ip": "255.255.255.255"},
        {"source.ip": "192.168.1.41", "destination.ip": "192.168.1.4"},  # unicast: the ephemeral side still leads
    ]


def test_any_packet_source_feeds_the_same_stages(capture_file: Callable[..., Path]) -> None:
    """What a live capture will do: frames from memory (a sniffer's packets), not from a file."""
    path = capture_file(dns_lookups, tls_hello)

    class MemorySource:
        name = "live:eth0"

        def frames(self) -> Iterator[Frame]:
            yield from CaptureFile(path).frames()

    live = [item for item in read_capture(MemorySource()) if isinstance(item, Event)]
    assert [(event.id, event.raw) for event in live] == [(event.id, event.raw) for event in events(path)]
    assert {event.origin.path for event in live} == {"live:eth0"}


def test_unsupported_link_types_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "wifi.pcap"
    wrpcap(str(path), [Ether(**MAC) / IP() / UDP()] * 3, linktype=127)  # 802.11 radiotap: not decoded
    assert [(item.reason, item.stage) for item in read_file(path) if isinstance(item, Rejected)] == [
        ("3 frames of link type 127 not decoded (the sensor reads Ethernet, Linux cooked capture, BSD loopback and "
         "raw IP)", "normalise")]


def test_the_reorder_bound_releases_records_early(capture_file: Callable[..., Path]) -> None:
    path = capture_file(dns_lookups, http_download)
    bounded = events(path, SensorConfig(max_reorder_records=0))
    assert sorted(event.id for event in bounded) == sorted(event.id for event in events(path))
    assert [event.fields["event.dataset"] for event in bounded][:2] == ["network.dns", "network.dns"]


def test_events_come_in_capture_time_order_with_ids_independent_of_the_path(
        capture_file: Callable[..., Path], tmp_path: Path) -> None:
    path = capture_file(dns_lookups, http_download, tls_hello, port_scan)
    found = events(path)
    assert Counter(event.fields["event.dataset"] for event in found) == {
        "network.flow": 106, "network.dns": 8, "network.http": 1, "network.tls": 1}
    times = [event.timestamp_ms for event in found]
    assert times == sorted(times)
    assert len({event.id for event in found}) == len(found)
    copy = tmp_path / "elsewhere" / "renamed.cap"
    copy.parent.mkdir()
    shutil.copy(path, copy)
    again = events(copy)
    assert [(event.id, event.raw) for event in again] == [(event.id, event.raw) for event in found]
    assert {event.origin.path for event in again} == {str(copy)}


def test_pcapng_gives_the_same_events_as_pcap(capture_file: Callable[..., Path]) -> None:
    scenarios = (dns_lookups, http_download, tls_hello)
    classic = events(capture_file(*scenarios, name="capture.pcap"))
    ng = events(capture_file(*scenarios, name="capture.pcapng", ng=True))
    assert len(classic) == 16
    assert [(event.id, event.raw, event.fields) for event in ng] == [
        (event.id, event.raw, event.fields) for event in classic]


def test_idle_timeout_splits_a_flow(capture_file: Callable[..., Path]) -> None:
    def sparse(capture: Capture) -> None:
        for gap_s in (0, 10, 90):
            capture.add(Ether(**MAC) / IP(src="10.0.0.5", dst="192.0.2.1") / UDP(sport=40000, dport=9999) / b"x",
                        after_us=gap_s * 1_000_000)

    path = capture_file(sparse)
    assert [(e.fields["network.packets"], e.fields["pcap.flow.end_reason"]) for e in events(path)] == [
        (2, "idle"), (1, "eof")]
    assert [e.fields["pcap.flow.end_reason"] for e in events(path, SensorConfig(idle_timeout_s=5))] == [
        "idle", "idle", "eof"]


def test_a_truncated_pcap_gives_what_was_read_and_one_reject(capture_file: Callable[..., Path]) -> None:
    path = capture_file(dns_lookups)
    data = path.read_bytes()
    path.write_bytes(data[:-10])  # the last packet (18: the TCP connection's final ACK) loses 10 bytes
    items = list(read_file(path))
    *found, reject = items
    assert isinstance(reject, Rejected)
    assert reject.describe() == f"{path}#record=18: capture cut short: packet 18 has 44 of its 54 bytes"
    assert (reject.origin.format, reject.stage) == (FORMAT, "read")
    assert all(isinstance(item, Event) for item in found)
    assert len(of_kind(found, "dns")) == 8  # everything before the cut
    path.write_bytes(data[:-54 - 10])  # packet 17 whole, then 6 bytes of packet 18's record header
    *found, reject = list(read_file(path))
    assert isinstance(reject, Rejected)
    assert reject.reason == "capture cut short: 6 bytes after packet 17 are not a whole record header"
    assert reject.origin.record_id == 18


def test_a_truncated_pcapng(capture_file: Callable[..., Path]) -> None:
    path = capture_file(dns_lookups, name="capture.pcapng", ng=True)
    data = path.read_bytes()
    path.write_bytes(data[:-30])
    *found, reject = list(read_file(path))
    assert isinstance(reject, Rejected)
    assert reject.reason == f"capture cut short: block at byte {len(data) - 88} has 58 of its 88 bytes " \
                            "(after packet 17)"
    assert reject.origin.record_id == 18
    assert len(of_kind(found, "dns")) == 8


@pytest.mark.parametrize("ng", [False, True], ids=["pcap", "pcapng"])
def test_corrupted_captures_never_raise(capture_file: Callable[..., Path], ng: bool) -> None:
    path = capture_file(dns_lookups, http_download, tls_hello, name="capture.pcapng" if ng else "capture.pcap", ng=ng)
    base = path.read_bytes()
    for seed in range(40):
        rng = random.Random(seed)
        data = bytearray(base)
        for _ in range(10):
            data[rng.randrange(24, len(data))] = rng.randrange(256)
        path.write_bytes(bytes(data[:rng.randrange(len(data) // 2, len(data) + 1)]))
        assert all(isinstance(item, Event | Rejected) for item in read_file(path))


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00", "capture file header is cut short or corrupt"),
     (b"hello, not a capture at all\n", "not a pcap or pcapng file: Not a supported capture file")],
    ids=["cut-header", "text"],
)
def test_files_that_are_not_readable_captures(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "bad.pcap"
    path.write_bytes(content)
    assert [(item.reason, item.origin.path) for item in read_file(path) if isinstance(item, Rejected)] == [
        (reason, str(path))]
    assert [item.reason for item in read_file(tmp_path / "missing.pcap") if isinstance(item, Rejected)] == [
        "cannot read file: No such file or directory"]


def test_dns_event_routes_to_a_sigma_dns_rule(capture_file: Callable[..., Path], tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "dns.yml").write_text("""title: DNS lookup of evil.test
id: 0c6f3f5e-8d1a-4f5e-9a54-2b7d1c3e4f01
status: test
level: high
logsource:
  category: dns
detection:
  selection:
    dns.question.name|endswith: '.evil.test'
  condition: selection
""")
    sources = load_sources()
    ruleset = load_rules([tmp_path / "rules"], sources=sources)
    assert not ruleset.errors
    engine = SigmaEngine(ruleset.rules, sources)
    found = events(capture_file(dns_lookups))
    dns = of_kind(found, "dns")
    assert engine.route(dns[0]) is not None  # network.dns is a known source: category dns
    assert [(alert.rule.title, alert.event_id) for event in dns for alert in engine.match(event)][:2] == [
        ("DNS lookup of evil.test", dns[0].id), ("DNS lookup of evil.test", dns[1].id)]
    assert sum(len(engine.match(event)) for event in dns) == 8
    assert sum(len(engine.match(event)) for event in of_kind(found, "flow")) == 0
    assert engine.stats.unknown_sources == {}


def test_carved_bodies_held_for_time_order_are_bounded_in_total(capture_file: Callable[..., Path]) -> None:
    def three_downloads(capture: Capture) -> None:  # one keep-alive connection: its records wait for its end
        tcp = TcpConnection(capture, WEB_CLIENT, WEB_SERVER)
        tcp.handshake()
        for number in range(3):
            tcp.send(True, f"GET /part{number} HTTP/1.1\r\nHost: a.test\r\n\r\n".encode())
            tcp.send(False, b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + bytes([65 + number]) * 1000)
        tcp.close()

    path = capture_file(three_downloads)
    found = of_kind(list(read_file(path, SensorConfig(max_held_body_bytes=2500), carve=True)), "http")
    assert [(e.fields["url.original"], len(e.payload or b"")) for e in found] == [
        ("/part0", 1000), ("/part1", 1000), ("/part2", 0)]
    assert pick(found[2], "file.size", "file.hash.sha256", "pcap.http.body_truncated") == {
        "file.size": 1000, "file.hash.sha256": hashlib.sha256(b"C" * 1000).hexdigest(),
        "pcap.http.body_truncated": True}  # the body went, its hash and size stayed
    sensor = NetworkSensor(SensorConfig(carve_bodies=True, max_held_body_bytes=2500))
    for frame in CaptureFile(path).frames():
        sensor.feed(frame)
    sensor.finish()
    assert sensor.stats.bodies_dropped == 1
    everything = of_kind(list(read_file(path, carve=True)), "http")
    assert [len(e.payload or b"") for e in everything] == [1000, 1000, 1000]
