"""Captured frames to decoded IP packets: the first stage of the network sensor.

    packet = decode_frame(frame)  # None for what is not IPv4/IPv6 (ARP, STP, LLDP, ...)

A `Frame` is what any capture gives (a pcap/pcapng record, later a live packet): its number in the capture,
capture time, link type and bytes. Decoding is done by hand with `struct` (the sensor needs only the headers;
scapy's dissectors cost tens of microseconds a packet): Ethernet with 802.1Q/802.1ad tags, Linux cooked
capture v1/v2, BSD loopback and raw IP link types; IPv4 and IPv6 (extension headers skipped); TCP, UDP, SCTP,
ICMP and ICMPv6. Not decoded: non-first IP fragments (they carry no ports; `None`), tunnels (GRE, VXLAN,
IP-in-IP are flows of the outer addresses), MPLS and PPPoE.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["PROTO_ICMP", "PROTO_ICMP6", "PROTO_SCTP", "PROTO_TCP", "PROTO_UDP", "TCP_ACK", "TCP_FIN", "TCP_RST",
           "TCP_SYN", "Frame", "Packet", "decode_frame", "supports_linktype"]

PROTO_ICMP, PROTO_TCP, PROTO_UDP, PROTO_ICMP6, PROTO_SCTP = 1, 6, 17, 58, 132
TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK = 0x01, 0x02, 0x04, 0x10

# pcap LINKTYPE_* values (https://www.tcpdump.org/linktypes.html); 12 and 14 are raw IP in old captures.
_LINK_NULL, _LINK_ETHERNET, _LINK_LOOP, _LINK_SLL, _LINK_SLL2 = 0, 1, 108, 113, 276
_LINK_RAW = frozenset({101, 12, 14, 228, 229})
_ETHER_IPV4, _ETHER_IPV6 = 0x0800, 0x86DD
_ETHER_TAGS = frozenset({0x8100, 0x88A8, 0x9100})
_LOOP_IPV6 = frozenset({24, 28, 30})  # AF_INET6 on the BSDs, macOS and Linux-built captures
_IPV6_EXTENSIONS = frozenset({0, 43, 44, 51, 60})  # hop-by-hop, routing, fragment, AH, destination options

_IPV4 = struct.Struct("!BxHxxHxB")  # version/IHL, total length, flags/fragment offset, protocol
_IPV6 = struct.Struct("!4xHB")  # payload length, next header
_TCP = struct.Struct("!HHIIBB")  # ports, seq, ack, data offset, flags
_PORTS = struct.Struct("!HHH")  # UDP ports and length


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured frame. `number` is its 1-based position in the capture, `timestamp_us` the capture time in
    microseconds since the epoch and `linktype` the pcap LINKTYPE of `data`."""

    number: int
    timestamp_us: int
    linktype: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Packet:
    """An IP packet's headers and transport payload. Addresses are packed (4 or 16 bytes); for ICMP the ports
    are the message type and code. `length` counts IP header and payload (the IP total length)."""

    number: int
    timestamp_us: int
    src: bytes
    dst: bytes
    proto: int
    sport: int
    dport: int
    length: int
    payload: bytes = b""
    tcp_flags: int = 0
    seq: int = 0
    ack: int = 0


def supports_linktype(linktype: int) -> bool:
    """Whether `decode_frame` reads frames of this pcap link type."""
    return linktype in _LINK_RAW or linktype in (_LINK_ETHERNET, _LINK_NULL, _LINK_LOOP, _LINK_SLL, _LINK_SLL2)


def decode_frame(frame: Frame) -> Packet | None:
    """The IP packet in a frame, or None when it holds none (another ethertype, an unknown link type, a
    non-first fragment) or its headers are cut short. Never raises for bad bytes."""
    data = frame.data
    linktype = frame.linktype
    try:
        if linktype == _LINK_ETHERNET:
            ethertype = data[12] << 8 | data[13]
            offset = 14
            while ethertype in _ETHER_TAGS:
                ethertype = data[offset + 2] << 8 | data[offset + 3]
                offset += 4
        elif linktype in _LINK_RAW:
            offset, ethertype = 0, _ETHER_IPV4 if data[0] >> 4 == 4 else _ETHER_IPV6
        elif linktype in (_LINK_NULL, _LINK_LOOP):
            family = int.from_bytes(data[:4], "little" if linktype == _LINK_NULL and data[0] else "big")
            offset, ethertype = 4, _ETHER_IPV4 if family == 2 else _ETHER_IPV6 if family in _LOOP_IPV6 else 0
        elif linktype == _LINK_SLL:
            offset, ethertype = 16, data[14] << 8 | data[15]
        elif linktype == _LINK_SLL2:
            offset, ethertype = 20, data[0] << 8 | data[1]
        else:
            return None
        if ethertype == _ETHER_IPV4:
            return _ipv4(frame, data, offset)
        if ethertype == _ETHER_IPV6:
            return _ipv6(frame, data, offset)
    except (IndexError, struct.error):
        return None
    return None


def _ipv4(frame: Frame, data: bytes, offset: int) -> Packet | None:
    version_ihl, total, fragment, proto = _IPV4.unpack_from(data, offset)
    header = (version_ihl & 0x0F) * 4
    if version_ihl >> 4 != 4 or header < 20 or fragment & 0x1FFF:
        return None
    end = offset + total if header <= total and offset + total <= len(data) else len(data)
    length = total if total >= header else len(data) - offset  # 0 with TCP segmentation offload
    return _transport(frame, data, offset + header, end, proto, data[offset + 12:offset + 16],
                      data[offset + 16:offset + 20], length)


def _ipv6(frame: Frame, data: bytes, offset: int) -> Packet | None:
    payload_length, proto = _IPV6.unpack_from(data, offset)
    if data[offset] >> 4 != 6:
        return None
    src, dst = data[offset + 8:offset + 24], data[offset + 24:offset + 40]
    if len(dst) != 16:
        return None
    end = offset + 40 + payload_length
    if payload_length == 0 or end > len(data):  # a jumbogram, or cut by the snap length
        end = len(data)
    length = 40 + payload_length if payload_length else len(data) - offset
    position = offset + 40
    for _ in range(8):
        if proto not in _IPV6_EXTENSIONS:
            break
        if proto == 44:  # fragment header: only the first fragment has the transport header
            if (data[position + 2] << 8 | data[position + 3]) >> 3:
                return None
            size = 8
        else:
            size = (data[position + 1] + 2) * 4 if proto == 51 else (data[position + 1] + 1) * 8
        proto = data[position]
        position += size
    return _transport(frame, data, position, end, proto, src, dst, length)


def _transport(frame: Frame, data: bytes, start: int, end: int, proto: int, src: bytes, dst: bytes,
               length: int) -> Packet | None:
    if len(src) not in (4, 16) or len(dst) != len(src):
        return None
    if proto == PROTO_TCP:
        sport, dport, seq, ack, data_offset, flags = _TCP.unpack_from(data, start)
        header = (data_offset >> 4) * 4
        payload = data[start + header:end] if header >= 20 else b""
        return Packet(frame.number, frame.timestamp_us, src, dst, proto, sport, dport, length, payload, flags,
                      seq, ack)
    if proto == PROTO_UDP:
        sport, dport, udp_length = _PORTS.unpack_from(data, start)
        stop = min(start + udp_length, end) if udp_length >= 8 else end
        return Packet(frame.number, frame.timestamp_us, src, dst, proto, sport, dport, length,
                      data[start + 8:stop])
    if proto == PROTO_SCTP:
        sport, dport, _ = _PORTS.unpack_from(data, start)
        return Packet(frame.number, frame.timestamp_us, src, dst, proto, sport, dport, length)
    if proto in (PROTO_ICMP, PROTO_ICMP6):
        return Packet(frame.number, frame.timestamp_us, src, dst, proto, data[start], data[start + 1], length)
    return Packet(frame.number, frame.timestamp_us, src, dst, proto, 0, 0, length)
