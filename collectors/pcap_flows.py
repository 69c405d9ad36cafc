"""Packets to bidirectional flows: the flow table, the Community ID and the direction of a flow.

    table = FlowTable(idle_timeout_us=60_000_000, linger_us=1_000_000, zones=NetworkZones(), seed=0)
    expired = table.expire(packet.timestamp_us)  # flows idle for longer than the timeout
    flow, forward, replaced = table.track(packet)
    ...
    table.close(flow)  # RST seen: the caller makes its record with `flow.record("rst")`

A flow is the 5-tuple seen in both directions; its initiator is the source (the sender of a lone SYN, the
receiver of a SYN-ACK, else the side with the ephemeral port, else the first sender; never a multicast or
broadcast address: an unsolicited router advertisement to ff02::1 starts its own flow). It ends on RST, a short
linger after FINs from both sides, an idle timeout (capture time, not the wall clock) or the end of the capture.
ICMP echo, timestamp, information, router and mask messages pair with their replies as in Zeek and the
Community ID spec (https://github.com/corelight/community-id-spec).
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import ipaddress
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from collectors.pcap_packets import (
    PROTO_ICMP,
    PROTO_ICMP6,
    PROTO_SCTP,
    PROTO_TCP,
    PROTO_UDP,
    TCP_ACK,
    TCP_FIN,
    TCP_RST,
    TCP_SYN,
    Packet,
)

__all__ = ["DEFAULT_INTERNAL_NETWORKS", "Endpoints", "Flow", "FlowRecord", "FlowTable", "NetworkZones",
           "community_id", "tcp_flag_letters"]

DEFAULT_INTERNAL_NETWORKS: tuple[str, ...] = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")

_PORT_PROTOCOLS = frozenset({PROTO_TCP, PROTO_UDP, PROTO_SCTP, PROTO_ICMP, PROTO_ICMP6})
# ICMP message types that have a counterpart (request <-> reply): Zeek's and the Community ID spec's table.
_ICMP_COUNTERPARTS = {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 10: 9, 9: 10, 17: 18, 18: 17}
_ICMP6_COUNTERPARTS = {128: 129, 129: 128, 130: 131, 131: 130, 133: 134, 134: 133, 135: 136, 136: 135,
                       139: 140, 140: 139, 144: 145, 145: 144}
_ICMP_REPLIES = frozenset({0, 14, 16, 18, 129, 131, 134, 136, 140, 145})
_FLAG_LETTERS = "FSRPAUEC"  # bit 0 (FIN) to bit 7 (CWR), as tcpdump names them


def community_id(proto: int, src: bytes, dst: bytes, sport: int = 0, dport: int = 0, *, seed: int = 0) -> str:
    """The Community ID v1 of a flow: `1:` + base64(SHA1(seed . addresses . proto . 0 . ports)), the smaller
    address:port first. Addresses are packed (4 or 16 bytes); for ICMP/ICMPv6 the ports are the message type
    and code; protocols other than TCP, UDP, SCTP and ICMP hash without ports."""
    one_way = False
    if proto in (PROTO_ICMP, PROTO_ICMP6):
        sport, dport, one_way = _icmp_ports(proto, sport, dport)
    if not one_way and (src > dst or (src == dst and sport > dport)):
        src, dst, sport, dport = dst, src, dport, sport
    data = struct.pack("!H", seed) + src + dst + bytes((proto, 0))
    if proto in _PORT_PROTOCOLS:
        data += struct.pack("!HH", sport, dport)
    return "1:" + base64.b64encode(hashlib.sha1(data).digest()).decode("ascii")


def _icmp_ports(proto: int, icmp_type: int, code: int) -> tuple[int, int, bool]:
    counterparts = _ICMP_COUNTERPARTS if proto == PROTO_ICMP else _ICMP6_COUNTERPARTS
    counterpart = counterparts.get(icmp_type)
    return (icmp_type, code, True) if counterpart is None else (icmp_type, counterpart, False)


def tcp_flag_letters(flags: int) -> str:
    """TCP flags as letters in bit order (`FSRPAUEC`): 0x14 -> "RA", 0x12 -> "SA"."""
    return "".join(letter for bit, letter in enumerate(_FLAG_LETTERS) if flags >> bit & 1)


class NetworkZones:
    """Which addresses are internal, and so the ECS `network.direction` of a flow. Raises `ValueError` for a
    network that is not an address or CIDR."""

    def __init__(self, networks: Iterable[str] = DEFAULT_INTERNAL_NETWORKS) -> None:
        self.networks = tuple(ipaddress.ip_network(network, strict=False) for network in networks)
        # (packed length, mask, network) as integers: a packed address is tested without parsing it
        self._ranges = tuple((network.max_prefixlen // 8, int(network.netmask), int(network.network_address))
                             for network in self.networks)

    def is_internal(self, address: bytes) -> bool:
        """Whether a packed address (4 or 16 bytes) lies in one of the internal networks."""
        value = int.from_bytes(address, "big")
        size = len(address)
        return any(size == length and value & mask == network for length, mask, network in self._ranges)

    def direction(self, src: bytes, dst: bytes) -> str:
        inside_src, inside_dst = self.is_internal(src), self.is_internal(dst)
        if inside_src:
            return "internal" if inside_dst else "outbound"
        return "inbound" if inside_dst else "external"


@dataclass(frozen=True, slots=True)
class Endpoints:
    """A flow as events name it: initiator as source, its Community ID and direction, its first packet time.
    Ports are None for protocols without them (ICMP's type and code are not ports)."""

    proto: int
    source_ip: str
    source_port: int | None
    destination_ip: str
    destination_port: int | None
    community_id: str
    direction: str
    start_us: int


@dataclass(frozen=True, slots=True)
class FlowRecord:
    """A finished flow's counters, source side first. `state` is Zeek's conn_state for TCP (S0, REJ, S1, SF,
    RSTO, ...), None otherwise; `end_reason` is rst, fin, idle or eof."""

    start_us: int
    end_us: int
    packets: tuple[int, int]
    bytes: tuple[int, int]
    tcp_flags: tuple[str, str]
    state: str | None
    end_reason: str
    protocol: str | None


class Flow:
    """An open flow: counters per direction (index 0: initiator to responder) and the app-layer state the
    sensor keeps for it (`app`, opaque here)."""

    __slots__ = ("app", "bytes", "closed", "closing", "endpoints", "fin", "first_number", "flags", "indexes",
                 "key", "last_us", "orig", "orig_port", "packets", "protocol", "serial")

    def __init__(self, key: tuple[Any, ...], packet: Packet, orig: bytes, orig_port: int, endpoints: Endpoints,
                 serial: int) -> None:
        self.key = key
        self.orig = orig
        self.orig_port = orig_port
        self.endpoints = endpoints
        self.serial = serial
        self.first_number = packet.number
        self.last_us = packet.timestamp_us
        self.packets = [0, 0]
        self.bytes = [0, 0]
        self.flags = [0, 0]
        self.fin = [False, False]
        self.closing = False
        self.closed = False
        self.protocol: str | None = None  # the app protocol once known (dns, http, tls)
        self.indexes: dict[str, int] = {}
        self.app: Any = None

    def count(self, packet: Packet, forward: bool) -> bool:
        """Count a packet; True when it resets the connection (RST). Both FINs seen make the flow `closing`."""
        side = 0 if forward else 1
        self.packets[side] += 1
        self.bytes[side] += packet.length
        self.last_us = max(self.last_us, packet.timestamp_us)
        flags = packet.tcp_flags
        if flags:
            self.flags[side] |= flags
            if flags & TCP_FIN:
                self.fin[side] = True
                self.closing = self.fin[0] and self.fin[1]
            return bool(flags & TCP_RST)
        return False

    def next_index(self, kind: str) -> int:
        """0, 1, 2, ... per kind of record: the position of an app record in its flow (part of its event id)."""
        index = self.indexes.get(kind, 0)
        self.indexes[kind] = index + 1
        return index

    def record(self, end_reason: str) -> FlowRecord:
        return FlowRecord(
            start_us=self.endpoints.start_us, end_us=max(self.last_us, self.endpoints.start_us),
            packets=(self.packets[0], self.packets[1]), bytes=(self.bytes[0], self.bytes[1]),
            tcp_flags=(tcp_flag_letters(self.flags[0]), tcp_flag_letters(self.flags[1])),
            state=self._state() if self.endpoints.proto == PROTO_TCP else None, end_reason=end_reason,
            protocol=self.protocol)

    def _state(self) -> str:
        orig, resp = self.flags
        if not orig & TCP_SYN or (orig & TCP_ACK and not resp):
            return "OTH"  # no handshake seen from its start
        if not self.packets[1]:
            return "S0"
        if not resp & TCP_SYN:
            return "REJ" if resp & TCP_RST else "OTH"
        if orig & TCP_RST:
            return "RSTO"
        if resp & TCP_RST:
            return "RSTR"
        if self.fin[0] and self.fin[1]:
            return "SF"
        return "S2" if self.fin[0] else "S3" if self.fin[1] else "S1"


class FlowTable:
    """Open flows by 5-tuple, with their idle deadlines and start times on heaps (lazily corrected)."""

    def __init__(self, *, idle_timeout_us: int, linger_us: int, zones: NetworkZones, seed: int = 0) -> None:
        self.idle_timeout_us = idle_timeout_us
        self.linger_us = linger_us
        self.zones = zones
        self.seed = seed
        self._flows: dict[tuple[Any, ...], Flow] = {}
        self._deadlines: list[tuple[int, int, Flow]] = []
        self._starts: list[tuple[int, int, Flow]] = []
        self._serial = 0

    def __len__(self) -> int:
        return len(self._flows)

    def track(self, packet: Packet) -> tuple[Flow, bool, Flow | None]:
        """The packet's flow (created if new), whether the packet goes initiator -> responder, and the flow it
        replaced (a SYN reusing the 5-tuple of a flow closed by FINs; the caller records that one)."""
        sport, dport = packet.sport, packet.dport
        one_way = False
        if packet.proto in (PROTO_ICMP, PROTO_ICMP6):
            sport, dport, one_way = _icmp_ports(packet.proto, sport, dport)
        if one_way or (packet.src, sport) <= (packet.dst, dport):
            key: tuple[Any, ...] = (packet.proto, packet.src, sport, packet.dst, dport)
        else:
            key = (packet.proto, packet.dst, dport, packet.src, sport)
        flow = self._flows.get(key)
        replaced = None
        if flow is not None and flow.closing and packet.tcp_flags & (TCP_SYN | TCP_ACK) == TCP_SYN:
            self.close(flow)
            replaced, flow = flow, None
        if flow is None:
            flow = self._open(key, packet, sport, dport)
        return flow, packet.src == flow.orig and sport == flow.orig_port, replaced

    def _open(self, key: tuple[Any, ...], packet: Packet, sport: int, dport: int) -> Flow:
        if self._initiated_by_destination(packet):
            orig, orig_port, resp, resp_port = packet.dst, dport, packet.src, sport
        else:
            orig, orig_port, resp, resp_port = packet.src, sport, packet.dst, dport
        proto = packet.proto
        ports = proto in (PROTO_TCP, PROTO_UDP, PROTO_SCTP)
        if proto in (PROTO_ICMP, PROTO_ICMP6):  # hashed with the message's own type and code
            cid = community_id(proto, packet.src, packet.dst, packet.sport, packet.dport, seed=self.seed)
        else:
            cid = community_id(proto, orig, resp, orig_port, resp_port, seed=self.seed)
        endpoints = Endpoints(
            proto=proto, source_ip=_text(orig), source_port=orig_port if ports else None,
            destination_ip=_text(resp), destination_port=resp_port if ports else None, community_id=cid,
            direction=self.zones.direction(orig, resp), start_us=packet.timestamp_us)
        self._serial += 1
        flow = Flow(key, packet, orig, orig_port, endpoints, self._serial)
        self._flows[key] = flow
        heapq.heappush(self._deadlines, (packet.timestamp_us + self.idle_timeout_us, flow.serial, flow))
        heapq.heappush(self._starts, (packet.timestamp_us, flow.serial, flow))
        return flow

    @staticmethod
    def _initiated_by_destination(packet: Packet) -> bool:
        if _group_address(packet.dst):  # a multicast or broadcast address never starts a conversation
            return False
        if packet.proto == PROTO_TCP and packet.tcp_flags & TCP_SYN:
            return bool(packet.tcp_flags & TCP_ACK)  # a SYN-ACK answers the initiator
        if packet.proto in (PROTO_ICMP, PROTO_ICMP6):
            return packet.sport in _ICMP_REPLIES
        return packet.sport < 1024 <= packet.dport  # from a well-known port to an ephemeral one

    def closing(self, flow: Flow) -> None:
        """Both FINs seen: the flow ends after a short linger (for the last ACK and retransmissions)."""
        heapq.heappush(self._deadlines, (flow.last_us + self.linger_us, flow.serial, flow))

    def close(self, flow: Flow) -> None:
        if not flow.closed:
            flow.closed = True
            del self._flows[flow.key]

    def expire(self, now_us: int) -> list[Flow]:
        """Remove and return the flows whose idle timeout (or linger, once closing) has passed at `now_us`."""
        expired: list[Flow] = []
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now_us:
            _, serial, flow = heapq.heappop(deadlines)
            if flow.closed:
                continue
            deadline = flow.last_us + (self.linger_us if flow.closing else self.idle_timeout_us)
            if deadline <= now_us:
                self.close(flow)
                expired.append(flow)
            else:
                heapq.heappush(deadlines, (deadline, serial, flow))
        return expired

    def drain(self) -> list[Flow]:
        """Remove and return every open flow, oldest first (the end of the capture)."""
        flows = sorted(self._flows.values(), key=lambda flow: (flow.endpoints.start_us, flow.serial))
        for flow in flows:
            flow.closed = True
        self._flows.clear()
        self._deadlines.clear()
        self._starts.clear()
        return flows

    def oldest_start(self) -> int | None:
        """The first-packet time of the oldest open flow: no record still to come can be older."""
        starts = self._starts
        while starts and starts[0][2].closed:
            heapq.heappop(starts)
        return starts[0][0] if starts else None


def _group_address(address: bytes) -> bool:
    """Whether a packed address is multicast (224.0.0.0/4, ff00::/8) or the IPv4 limited broadcast."""
    if len(address) == 4:
        return 224 <= address[0] <= 239 or address == b"\xff\xff\xff\xff"
    return address[:1] == b"\xff"


def _text(address: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET, address) if len(address) == 4 else str(ipaddress.IPv6Address(address))
