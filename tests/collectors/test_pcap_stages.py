"""The network sensor's pure stages, one at a time: frame decoding, the Community ID (the spec's reference
vectors), flow direction, TCP reassembly, the HTTP, DNS and TLS ClientHello parsers, and JA3/JA4 (published
vectors and values worked out by hand from the specs)."""

from __future__ import annotations

import hashlib
import ipaddress
import struct

import pytest
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrHopByHop
from scapy.layers.l2 import ARP, CookedLinux, Dot1Q, Ether, Loopback
from scapy.packet import Packet

from collectors.pcap_dns import DnsAnswer, DnsFormatError, DnsQuestion, parse_dns
from collectors.pcap_flows import NetworkZones, community_id, tcp_flag_letters
from collectors.pcap_http import HttpConnection, HttpTransaction
from collectors.pcap_packets import Frame, decode_frame
from collectors.pcap_sensor import SensorConfig
from collectors.pcap_tcp import TcpStream
from collectors.pcap_tls import (
    ClientHello,
    ClientHelloReader,
    TlsFormatError,
    is_grease,
    ja3,
    ja3_string,
    ja4,
    ja4_raw,
    parse_client_hello,
)

# Addresses given: without them scapy resolves the MAC with ARP on the real interface (traffic off loopback).
MAC = {"src": "02:00:00:00:00:01", "dst": "02:00:00:00:00:02"}

# --- TLS ClientHello builder (also used by test_pcap.py) -------------------------------------------------------


def extension(kind: int, data: bytes = b"") -> bytes:
    return struct.pack("!HH", kind, len(data)) + data


def u16s(values: list[int], length_bytes: int = 2) -> bytes:
    data = struct.pack(f"!{len(values)}H", *values)
    return len(data).to_bytes(length_bytes, "big") + data


def sni(name: str) -> bytes:
    entry = b"\x00" + struct.pack("!H", len(name)) + name.encode()
    return extension(0x0000, struct.pack("!H", len(entry)) + entry)


def alpn(*names: bytes) -> bytes:
    entries = b"".join(bytes([len(name)]) + name for name in names)
    return extension(0x0010, struct.pack("!H", len(entries)) + entries)


def client_hello(ciphers: list[int], extensions: list[bytes] | None, *, version: int = 0x0303,
                 session_id: bytes = b"") -> bytes:
    """A ClientHello handshake message (type, 3-byte length, body); `extensions=None` leaves the block out."""
    body = struct.pack("!H", version) + bytes(range(32)) + bytes([len(session_id)]) + session_id
    body += u16s(ciphers) + b"\x01\x00"
    if extensions is not None:
        block = b"".join(extensions)
        body += struct.pack("!H", len(block)) + block
    return b"\x01" + len(body).to_bytes(3, "big") + body


def tls_records(handshake: bytes, size: int = 16384) -> bytes:
    return b"".join(b"\x16\x03\x01" + struct.pack("!H", len(handshake[i:i + size])) + handshake[i:i + size]
                    for i in range(0, len(handshake), size))


# The JA4 spec's example (technical_details/JA4.md), with GREASE values added where Chrome puts them.
JA4_CIPHERS = [0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8, 0xC013, 0xC014, 0x009C,
               0x009D, 0x002F, 0x0035]
JA4_SIGNATURES = [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]


def chrome_like_hello(server_name: str = "c2.evil.test") -> bytes:
    extensions = [
        extension(0x1A1A),  # GREASE
        extension(0x001B, b"\x02\x00\x02"), sni(server_name), extension(0x0033, b"\x00\x00"), alpn(b"h2", b"http/1.1"),
        extension(0x4469, b"\x00\x03\x02h2"), extension(0x0017), extension(0x002D, b"\x01\x01"),
        extension(0x000D, u16s(JA4_SIGNATURES)), extension(0x0005, b"\x01\x00\x00\x00\x00"), extension(0x0023),
        extension(0x0012), extension(0x002B, u16s([0x7A7A, 0x0304, 0x0303], 1)), extension(0xFF01, b"\x00"),
        extension(0x000B, b"\x01\x00"), extension(0x000A, u16s([0x8A8A, 0x001D, 0x0017, 0x0018])),
        extension(0x0015, bytes(20)), extension(0xFAFA, b"\x00"),  # padding, GREASE
    ]
    return client_hello([0x0A0A, *JA4_CIPHERS], extensions, session_id=bytes(32))


def parse_hello(handshake: bytes) -> ClientHello:
    return parse_client_hello(handshake[4:])


# --- frames to packets ------------------------------------------------------------------------------------------


def frame(packet: bytes, linktype: int = 1) -> Frame:
    return Frame(7, 1_000_000, linktype, packet)


@pytest.mark.parametrize(
    ("linktype", "packet"),
    [(1, Ether(**MAC) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1234, dport=80, flags="S", seq=9)),
     (1, Ether(**MAC) / Dot1Q(vlan=5) / Dot1Q(vlan=6) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1234, dport=80,
                                                                                              flags="S", seq=9)),
     (113, CookedLinux(proto=0x0800) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1234, dport=80, flags="S",
                                                                                seq=9)),
     (0, Loopback(type=2) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1234, dport=80, flags="S", seq=9)),
     (101, IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1234, dport=80, flags="S", seq=9))],
    ids=["ethernet", "qinq", "linux-sll", "bsd-loopback", "raw-ip"],
)
def test_decode_link_types(linktype: int, packet: Packet) -> None:
    decoded = decode_frame(frame(bytes(packet), linktype))
    assert decoded is not None
    assert (decoded.number, decoded.timestamp_us) == (7, 1_000_000)
    assert (decoded.src, decoded.dst) == (bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    assert (decoded.proto, decoded.sport, decoded.dport, decoded.tcp_flags, decoded.seq) == (6, 1234, 80, 0x02, 9)
    assert decoded.length == 40


def test_decode_ipv6_extension_headers_udp_payload_and_ethernet_padding() -> None:
    packet = Ether(**MAC) / IPv6(src="2001:db8::1", dst="fd00::2") / IPv6ExtHdrHopByHop() / UDP(sport=5353, dport=53) \
        / b"payload"
    decoded = decode_frame(frame(bytes(packet)))
    assert decoded is not None
    assert decoded.src == ipaddress.ip_address("2001:db8::1").packed
    assert (decoded.proto, decoded.sport, decoded.dport, decoded.payload) == (17, 5353, 53, b"payload")
    short = Ether(**MAC) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2) / b"x"
    padded = decode_frame(frame(bytes(short) + bytes(20)))  # Ethernet pads to 60 bytes: not payload
    assert padded is not None
    assert padded.payload == b"x"


def test_decode_icmp_type_and_code_as_ports() -> None:
    decoded = decode_frame(frame(bytes(Ether(**MAC) / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(type=3, code=13))))
    assert decoded is not None
    assert (decoded.proto, decoded.sport, decoded.dport) == (1, 3, 13)


@pytest.mark.parametrize(
    ("linktype", "data"),
    [(1, bytes(Ether(**MAC) / ARP())),
     (1, bytes(Ether(**MAC) / IP(src="10.0.0.1", dst="10.0.0.2", frag=10) / (b"x" * 20))),
     (1, bytes(Ether(**MAC) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP())[:30]),
     (1, b""),
     (147, bytes(IP() / TCP()))],
    ids=["arp", "non-first-fragment", "cut-ip-header", "empty", "unknown-link-type"],
)
def test_frames_without_a_decodable_ip_packet(linktype: int, data: bytes) -> None:
    assert decode_frame(frame(data, linktype)) is None


# --- Community ID: the reference vectors of corelight/pycommunityid (tests/communityid_test.py) ----------------


def packed(address: str) -> bytes:
    return ipaddress.ip_address(address).packed


@pytest.mark.parametrize(
    ("proto", "src", "dst", "sport", "dport", "seed", "expected"),
    [(6, "128.232.110.120", "66.35.250.204", 34855, 80, 0, "1:LQU9qZlK+B5F3KDmev6m5PMibrg="),
     (6, "66.35.250.204", "128.232.110.120", 80, 34855, 0, "1:LQU9qZlK+B5F3KDmev6m5PMibrg="),
     (6, "128.232.110.120", "66.35.250.204", 34855, 80, 1, "1:3V71V58M3Ksw/yuFALMcW0LAHvc="),
     (6, "10.0.0.1", "10.0.0.2", 10, 11569, 0, "1:SXBGMX1lBOwhhoDrZynfROxnhnM="),
     (17, "192.168.1.52", "8.8.8.8", 54585, 53, 0, "1:d/FP5EW3wiY1vCndhwleRRKHowQ="),
     (17, "8.8.8.8", "192.168.1.52", 53, 54585, 1, "1:Q9We8WO3piVF8yEQBNJF4uiSVrI="),
     (132, "192.168.170.8", "192.168.170.56", 7, 80, 0, "1:jQgCxbku+pNGw8WPbEc/TS/uTpQ="),
     (1, "192.168.0.89", "192.168.0.1", 8, 0, 0, "1:X0snYXpgwiv9TZtqg64sgzUn6Dk="),
     (1, "192.168.0.1", "192.168.0.89", 0, 8, 0, "1:X0snYXpgwiv9TZtqg64sgzUn6Dk="),
     (1, "192.168.0.89", "192.168.0.1", 20, 0, 0, "1:3o2RFccXzUgjl7zDpqmY7yJi8rI="),
     (58, "fe80::200:86ff:fe05:80da", "fe80::260:97ff:fe07:69ea", 135, 0, 0, "1:dGHyGvjMfljg6Bppwm3bg0LO8TY="),
     (58, "fe80::260:97ff:fe07:69ea", "fe80::200:86ff:fe05:80da", 136, 0, 0, "1:dGHyGvjMfljg6Bppwm3bg0LO8TY="),
     (58, "3ffe:507:0:1:260:97ff:fe07:69ea", "3ffe:507:0:1:200:86ff:fe05:80da", 3, 0, 0,
      "1:NdobDX8PQNJbAyfkWxhtL2Pqp5w="),
     (58, "3ffe:507:0:1:200:86ff:fe05:80da", "3ffe:507:0:1:260:97ff:fe07:69ea", 3, 0, 0,
      "1:/OGBt9BN1ofenrmSPWYicpij2Vc="),
     (46, "10.1.24.4", "10.1.12.1", 0, 0, 0, "1:/nQI4Rh/TtY3mf0R2gJFBkVlgS4="),
     (46, "10.1.12.1", "10.1.24.4", 0, 0, 1, "1:BK3BVW3U2eemuwVQVN3zd/GULno=")],
    ids=["tcp", "tcp-reversed", "tcp-seed-1", "tcp-low-port", "udp", "udp-reversed-seed-1", "sctp", "icmp-echo",
         "icmp-echo-reply", "icmp-one-way", "icmp6-neighbour-solicit", "icmp6-neighbour-advert",
         "icmp6-one-way", "icmp6-one-way-reversed", "ip-only", "ip-only-seed-1"],
)
def test_community_id_reference_vectors(proto: int, src: str, dst: str, sport: int, dport: int, seed: int,
                                        expected: str) -> None:
    assert community_id(proto, packed(src), packed(dst), sport, dport, seed=seed) == expected


@pytest.mark.parametrize(
    ("src", "dst", "expected"),
    [("10.0.0.5", "172.16.3.4", "internal"), ("192.168.1.2", "8.8.8.8", "outbound"),
     ("203.0.113.9", "10.0.0.22", "inbound"), ("203.0.113.9", "198.51.100.1", "external"),
     ("fd12::1", "2001:db8::1", "outbound")],
    ids=["internal", "outbound", "inbound", "external", "ula"],
)
def test_network_direction(src: str, dst: str, expected: str) -> None:
    assert NetworkZones().direction(packed(src), packed(dst)) == expected


def test_configured_internal_networks_and_their_validation() -> None:
    zones = NetworkZones(["198.51.100.0/24"])
    assert zones.direction(packed("198.51.100.7"), packed("10.0.0.1")) == "outbound"
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 network"):
        SensorConfig(internal_networks=("intranet",))
    with pytest.raises(ValueError, match="idle_timeout_s must be > 0, got 0"):
        SensorConfig(idle_timeout_s=0)
    with pytest.raises(ValueError, match=r"community_id_seed must be 0\.\.65535, got 70000"):
        SensorConfig(community_id_seed=70000)


def test_tcp_flag_letters() -> None:
    assert (tcp_flag_letters(0x02), tcp_flag_letters(0x14), tcp_flag_letters(0x1B)) == ("S", "RA", "FSPA")


# --- TCP reassembly -----------------------------------------------------------------------------------------------


def test_tcp_stream_in_order_out_of_order_retransmitted_and_overlapping() -> None:
    stream = TcpStream()
    assert stream.segment(999, b"", syn=True) == b""
    assert stream.segment(1000, b"hello ") == b"hello "
    assert stream.segment(1011, b"! how") == b""  # after a gap
    assert stream.segment(1000, b"hello ") == b""  # a retransmission
    assert stream.segment(1006, b"world") == b"world! how"  # fills the gap and joins what waited
    assert stream.segment(1009, b"ld! how are") == b" are"  # overlaps what was delivered
    assert stream.delivered == len(b"hello world! how are")


def test_tcp_stream_across_the_sequence_wrap_and_without_a_syn() -> None:
    stream = TcpStream()
    start = 2**32 - 3
    assert stream.segment((start + 6) % 2**32, b"ghi") == b"ghi"  # no SYN: the first segment starts the stream
    stream = TcpStream()
    assert stream.segment(start - 1, b"", syn=True) == b""
    assert stream.segment((start + 3) % 2**32, b"def") == b""
    assert stream.segment(start, b"abc") == b"abcdef"
    assert stream.next_seq == 3


def test_tcp_stream_gives_up_behind_a_gap_that_never_fills() -> None:
    stream = TcpStream(max_pending_bytes=10)
    stream.segment(0, b"", syn=True)
    stream.segment(100, b"x" * 8)
    assert not stream.broken
    stream.segment(200, b"y" * 8)
    assert stream.broken
    assert stream.segment(1, b"a") == b""


# --- HTTP ---------------------------------------------------------------------------------------------------------


def http_exchange(client: list[bytes], server: list[bytes], **options: object) -> list[HttpTransaction]:
    http = HttpConnection(**options)  # type: ignore[arg-type]
    done: list[HttpTransaction] = []
    for number, chunk in enumerate(client, 1):
        done += http.client_data(chunk, number * 10, number)
    for number, chunk in enumerate(server, 100):
        done += http.server_data(chunk, number * 10, number)
    return done + http.close()


def test_http_pipelined_requests_matched_to_their_responses() -> None:
    done = http_exchange(
        [b"GET /a HTTP/1.1\r\nHost: x.test\r\n\r\nHEAD /b HTTP/1.1\r\nHost: x.test\r\n\r\nPOST /c HTTP/1.1\r\n"
         b"Host: x.test\r\nContent-Length: 4\r\n\r\nabcd"],
        [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
         b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"  # HEAD: the length is not followed by a body
         b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nnew\r\n0\r\n\r\n"])
    assert [(t.request.method, t.request.target, t.request.body_bytes) for t in done if t.request] == [
        ("GET", "/a", 0), ("HEAD", "/b", 0), ("POST", "/c", 4)]
    assert [(t.response.status, t.response.body_bytes) for t in done if t.response] == [(200, 2), (200, 0),
                                                                                       (201, 3)]
    assert all(t.response is not None and t.response.complete for t in done)


def test_http_request_split_byte_by_byte_keeps_the_time_of_its_first_byte() -> None:
    request = b"GET /index.html?q=1 HTTP/1.0\r\nHost: www.example.test\r\nUser-Agent: Mozilla/5.0\r\n\r\n"
    done = http_exchange([request[i:i + 1] for i in range(len(request))],
                         [b"HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n"])
    (transaction,) = done
    assert transaction.request is not None
    assert transaction.response is not None
    assert (transaction.request.timestamp_us, transaction.request.packet_number) == (10, 1)
    assert transaction.request.header("user-agent") == "Mozilla/5.0"
    assert (transaction.response.status, transaction.response.reason) == (404, "Not Found")


def test_http_interim_response_close_delimited_body_and_unanswered_request() -> None:
    done = http_exchange(
        [b"PUT /up HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n", b"abc",
         b"GET /late HTTP/1.1\r\n\r\n"],
        [b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil ",
         b"the close"], carve=True)
    first, second = done
    assert first.request is not None
    assert first.response is not None
    assert (first.request.method, first.request.body_bytes, first.response.status) == ("PUT", 3, 200)
    assert first.response.body == b"until the close"
    assert first.response.body_sha256 == hashlib.sha256(b"until the close").hexdigest()
    assert first.response.complete
    assert second.request is not None
    assert (second.request.target, second.response) == ("/late", None)


def test_http_chunked_body_with_extensions_and_trailers_and_the_carving_limit() -> None:
    body = b"0123456789abcdefghij"
    response = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                b"a;name=value\r\n0123456789\r\nA\r\nabcdefghij\r\n0\r\nX-Trailer: 1\r\n\r\n")
    (transaction,) = http_exchange([b"GET / HTTP/1.1\r\n\r\n"], [response], carve=True, max_body_bytes=8)
    assert transaction.response is not None
    assert (transaction.response.body, transaction.response.body_truncated) == (body[:8], True)
    assert (transaction.response.body_bytes, transaction.response.body_sha256) == (
        20, hashlib.sha256(body).hexdigest())


def test_http_a_response_cut_short_by_the_close_is_incomplete() -> None:
    (transaction,) = http_exchange([b"GET / HTTP/1.1\r\n\r\n"],
                                   [b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"])
    assert transaction.response is not None
    assert (transaction.response.complete, transaction.response.body_bytes) == (False, 3)


def test_http_stops_on_bytes_that_are_not_http() -> None:
    http = HttpConnection()
    assert http.client_data(b"GET / HTTP/1.1\r\n\r\n", 1) == []
    assert http.server_data(b"SSH-2.0-OpenSSH_9.6\r\n\r\n", 2) == []
    assert http.error == "server: not an HTTP status line: b'SSH-2.0-OpenSSH_9.6'"
    http.client_data(b"\x16\x03\x01\x00\x05hello\r\n\r\n", 3)
    assert http.broken
    assert [t.request.target for t in http.close() if t.request] == ["/"]


@pytest.mark.parametrize(
    ("response", "error"),
    [(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nabc", "server: bad chunk size line b'-5'"),
     (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX", "server: chunk data not followed by CRLF"),
     (b"HTTP/1.1 2000 OK\r\n\r\n", "server: not an HTTP status line: b'HTTP/1.1 2000 OK'")],
    ids=["negative-chunk", "chunk-without-crlf", "bad-status"],
)
def test_http_malformed_responses(response: bytes, error: str) -> None:
    http = HttpConnection()
    http.client_data(b"GET / HTTP/1.1\r\n\r\n", 1)
    http.server_data(response, 2)
    assert http.error == error


def test_http_connect_makes_a_tunnel() -> None:
    done = http_exchange([b"CONNECT c2.evil.test:443 HTTP/1.1\r\nHost: c2.evil.test:443\r\n\r\n\x16\x03\x01"],
                         [b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03\x00\x10"])
    assert [(t.request.method if t.request else None, t.response.status if t.response else None,
             t.response.body_bytes if t.response else None) for t in done] == [("CONNECT", 200, 0)]


# --- DNS ------------------------------------------------------------------------------------------------------------


def test_dns_query_and_response_from_scapy() -> None:
    query = parse_dns(bytes(DNS(id=4660, rd=1, qd=DNSQR(qname="beacon.evil.test", qtype="TXT"))))
    assert (query.id, query.response, query.flags) == (4660, False, ("RD",))
    assert query.questions == (DnsQuestion("beacon.evil.test", "TXT", "IN"),)
    response = parse_dns(bytes(DNS(
        id=4660, qr=1, rd=1, ra=1, rcode=0, qd=DNSQR(qname="beacon.evil.test"),
        an=[DNSRR(rrname="beacon.evil.test", type="CNAME", ttl=30, rdata="cdn.evil.test"),
            DNSRR(rrname="cdn.evil.test", type="A", ttl=60, rdata="203.0.113.66"),
            DNSRR(rrname="cdn.evil.test", type="AAAA", ttl=60, rdata="2001:db8::66"),
            DNSRR(rrname="beacon.evil.test", type="TXT", ttl=5, rdata=[b"k=v", b"x"])])))
    assert (response.response, response.rcode, response.flags) == (True, "NOERROR", ("RD", "RA"))
    assert response.answers == (
        DnsAnswer("beacon.evil.test", "CNAME", "IN", 30, "cdn.evil.test"),
        DnsAnswer("cdn.evil.test", "A", "IN", 60, "203.0.113.66"),
        DnsAnswer("cdn.evil.test", "AAAA", "IN", 60, "2001:db8::66"),
        DnsAnswer("beacon.evil.test", "TXT", "IN", 5, "k=v x"))


def test_dns_compressed_names() -> None:
    header = struct.pack("!HHHHHH", 1, 0x8183, 1, 1, 0, 0)  # NXDOMAIN, one question, one answer
    question = b"\x03www\x04evil\x04test\x00" + struct.pack("!HH", 1, 1)
    answer = b"\xc0\x10" + struct.pack("!HHIH", 5, 1, 10, 6) + b"\x03cdn\xc0\x10"  # evil.test, cdn.evil.test
    message = parse_dns(header + question + answer)
    assert message.rcode == "NXDOMAIN"
    assert message.answers == (DnsAnswer("evil.test", "CNAME", "IN", 10, "cdn.evil.test"),)


@pytest.mark.parametrize(
    ("data", "reason"),
    [(b"\x00\x01", "DNS header needs 12 bytes, got 2"),
     (struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\xc0\x0c", "compression pointer loop in a name"),
     (struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + b"\x05ab", "name runs past the message"),
     (struct.pack("!HHHHHH", 1, 0, 2, 0, 0, 0) + b"\x00\x00\x01\x00\x01", "malformed DNS message: index out of range")],
    ids=["short-header", "pointer-loop", "cut-label", "missing-question"],
)
def test_dns_malformed_messages(data: bytes, reason: str) -> None:
    with pytest.raises(DnsFormatError) as caught:
        parse_dns(data)
    assert str(caught.value) == reason


# --- TLS ClientHello, JA3 and JA4 -----------------------------------------------------------------------------


def test_ja3_published_vectors() -> None:
    # salesforce/ja3 README: "769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0"
    hello = parse_hello(client_hello(
        [47, 53, 5, 10, 49161, 49162, 49171, 49172, 50, 56, 19, 4],
        [sni("example.test"), extension(10, u16s([23, 24, 25])), extension(11, b"\x01\x00")], version=0x0301))
    assert ja3_string(hello) == "769,47-53-5-10-49161-49162-49171-49172-50-56-19-4,0-10-11,23-24-25,0"
    assert ja3(hello) == "ada70206e40642a3e4461f35503241d5"
    # "If there are no SSL Extensions in the Client Hello, the fields are left empty."
    bare = parse_hello(client_hello([4, 5, 10, 9, 100, 98, 3, 6, 19, 18, 99], None, version=0x0301))
    assert ja3_string(bare) == "769,4-5-10-9-100-98-3-6-19-18-99,,,"
    assert ja3(bare) == "de350869b8c85de67a350c8d186f11e6"


def test_ja4_published_example() -> None:
    hello = parse_hello(chrome_like_hello())
    assert ja4(hello) == "t13d1516h2_8daaf6152771_e5627efa2ab1"  # FoxIO JA4.md, "Example"
    assert ja4_raw(hello) == (
        "t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_0005,000a,000b,"
        "000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_0403,0804,0401,0503,0805,0501,0806,0601")


def test_ja3_of_a_grease_client_worked_out_by_hand() -> None:
    hello = parse_hello(chrome_like_hello())
    # legacy version 0x0303; ciphers, extensions, groups in the order sent, GREASE (0a0a, 1a1a, 8a8a, fafa) out
    expected = ("771,4865-4866-4867-49195-49199-49196-49200-52393-52392-49171-49172-156-157-47-53,"
                "27-0-51-16-17513-23-45-13-5-35-18-43-65281-11-10-21,29-23-24,0")
    assert ja3_string(hello) == expected
    assert ja3(hello) == hashlib.md5(expected.encode()).hexdigest()
    assert (hello.server_name, hello.offered_version, hello.alpn) == ("c2.evil.test", 0x0304, (b"h2", b"http/1.1"))


def test_ja4_of_a_tls12_client_without_sni_worked_out_by_hand() -> None:
    hello = parse_hello(client_hello(
        [0xC02F, 0x009C, 0x002F],
        [extension(0x000A, u16s([0x0017])), extension(0x000B, b"\x01\x00"), extension(0x000D, u16s([0x0401, 0x0804])),
         alpn(b"http/1.1"), extension(0xFF01, b"\x00")]))
    # t, 12 (no supported_versions: the legacy field), i (no SNI), 3 ciphers, 5 extensions, h1 (http/1.1)
    cipher_hash = hashlib.sha256(b"002f,009c,c02f").hexdigest()[:12]
    extension_hash = hashlib.sha256(b"000a,000b,000d,ff01_0401,0804").hexdigest()[:12]
    assert ja4(hello) == f"t12i0305h1_{cipher_hash}_{extension_hash}"
    no_signatures = parse_hello(client_hello([0x002F], [extension(0x000A, u16s([0x0017]))]))
    assert ja4(no_signatures) == f"t12i010100_{hashlib.sha256(b'002f').hexdigest()[:12]}_" \
                                 f"{hashlib.sha256(b'000a').hexdigest()[:12]}"  # no "_" when no sigalgs
    assert ja4(parse_hello(client_hello([], None))) == "t12i000000_000000000000_000000000000"


@pytest.mark.parametrize(
    ("names", "expected"),
    [((b"h2",), "h2"), ((b"http/1.1",), "h1"), ((b"h",), "hh"), ((b"\xab\xcd",), "ad"), ((b"\x30\xab",), "3b"),
     ((b"\x30\xab\xcd\x31",), "01"), ((b"",), "00"), ((), "00")],
    ids=["h2", "http1.1", "one-char", "binary", "binary-last", "alnum-ends", "empty-value", "no-alpn"],
)
def test_ja4_alpn_characters(names: tuple[bytes, ...], expected: str) -> None:
    extensions = [alpn(*names)] if names else []
    assert ja4(parse_hello(client_hello([0x1301], extensions)))[8:10] == expected


def test_grease_values() -> None:
    assert [value for value in range(0x10000) if is_grease(value)] == [0x0A0A + 0x1010 * i for i in range(16)]


def test_client_hello_reader_across_segments_and_records() -> None:
    handshake = chrome_like_hello("split.evil.test")
    data = tls_records(handshake, size=100)  # the handshake message over several records
    reader = ClientHelloReader()
    results = [reader.feed(data[i:i + 64]) for i in range(0, len(data), 64)]
    assert all(result is None for result in results[:-1])
    assert results[-1] is not None
    assert results[-1].server_name == "split.evil.test"


@pytest.mark.parametrize(
    ("data", "reason"),
    [(b"\x17\x03\x03\x00\x01x", "expected a handshake record (22), got content type 23"),
     (b"\x16\x03\x03\x00\x04\x02\x00\x00\x00", "expected a ClientHello (1), got handshake type 2"),
     (tls_records(b"\x01\x00\x00\x05\x03\x03\x00\x00\x00"), "malformed ClientHello: index out of range")],
    ids=["application-data", "server-hello", "cut-hello"],
)
def test_client_hello_reader_rejects(data: bytes, reason: str) -> None:
    with pytest.raises(TlsFormatError) as caught:
        ClientHelloReader().feed(data)
    assert str(caught.value) == reason
