"""The network sensor's stage (`NetworkSensor`) with time moved on by `tick`, as a live capture does on a quiet
interface: idle and FIN-closed flows end without another packet, held records leave in time order, and feeding
with ticks gives the records a capture read in one go gives."""

from __future__ import annotations

import random

import pytest
from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Packet

from collectors.pcap_flows import FlowRecord
from collectors.pcap_packets import Frame
from collectors.pcap_sensor import NetworkRecord, NetworkSensor, SensorConfig

T0_US = 1_710_000_000_000_000
SECOND_US = 1_000_000
CONFIG = SensorConfig(idle_timeout_s=60, fin_linger_s=1)


class Frames:
    """Frames of a test capture, numbered from 1, each at the time it is given."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []

    def add(self, packet: Packet, at_us: int) -> Frame:
        frame = Frame(len(self.frames) + 1, at_us, 1, bytes(packet))
        self.frames.append(frame)
        return frame


def ether() -> Packet:
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")  # given: scapy would ARP for a missing one


def udp(sport: int, dport: int, payload: bytes | Packet = b"x", *, src: str = "10.0.0.5",
        dst: str = "10.0.0.53") -> Packet:
    return ether() / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / payload


def tcp(flags: str, *, reply: bool = False, seq: int = 0, ack: int = 0) -> Packet:
    ends = [("10.0.0.5", 40100), ("192.0.2.80", 80)]
    (src, sport), (dst, dport) = ends[::-1] if reply else ends
    return ether() / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack)


def summary(records: list[NetworkRecord]) -> list[tuple[str, int, str | None]]:
    """kind, time and (for flows) end reason of each record."""
    return [(record.kind, record.timestamp_us,
             record.detail.end_reason if isinstance(record.detail, FlowRecord) else None) for record in records]


def test_tick_ends_an_idle_flow_without_another_packet() -> None:
    sensor = NetworkSensor(CONFIG)
    frames = Frames()
    assert sensor.feed(frames.add(udp(40000, 9999), T0_US)) == []
    assert sensor.feed(frames.add(udp(9999, 40000, src="10.0.0.53", dst="10.0.0.5"), T0_US + SECOND_US)) == []
    assert sensor.tick(T0_US + 61 * SECOND_US - 1) == []  # idle for just under the timeout
    ended = sensor.tick(T0_US + 61 * SECOND_US)
    assert summary(ended) == [("flow", T0_US, "idle")]
    flow = ended[0].detail
    assert isinstance(flow, FlowRecord)
    assert (flow.packets, flow.end_us) == ((1, 1), T0_US + SECOND_US)
    assert sensor.tick(T0_US + 600 * SECOND_US) == []
    assert sensor.finish() == []
    assert (sensor.stats.flows, sensor.stats.records) == (1, 1)


def test_tick_ends_a_flow_closed_by_fins_after_the_linger() -> None:
    sensor = NetworkSensor(CONFIG)
    frames = Frames()
    exchange = [tcp("S", seq=100), tcp("SA", reply=True, seq=500, ack=101), tcp("A", seq=101, ack=501),
                tcp("FA", seq=101, ack=501), tcp("FA", reply=True, seq=501, ack=102), tcp("A", seq=102, ack=502)]
    for step, packet in enumerate(exchange):
        assert sensor.feed(frames.add(packet, T0_US + step * 1000)) == []
    last_us = T0_US + 5000
    assert sensor.tick(last_us + SECOND_US - 1) == []
    ended = sensor.tick(last_us + SECOND_US)
    assert summary(ended) == [("flow", T0_US, "fin")]
    flow = ended[0].detail
    assert isinstance(flow, FlowRecord)
    assert (flow.state, flow.tcp_flags) == ("SF", ("FSA", "FSA"))


def test_tick_behind_the_capture_time_ends_nothing() -> None:
    sensor = NetworkSensor(CONFIG)
    sensor.feed(Frames().add(udp(40000, 9999), T0_US + 100 * SECOND_US))
    assert sensor.tick(T0_US) == []
    assert sensor.tick(0) == []
    assert summary(sensor.finish()) == [("flow", T0_US + 100 * SECOND_US, "eof")]


def test_tick_releases_the_records_an_ended_flow_held_back_in_time_order() -> None:
    """A record is held while an older flow is open (a record still to come could be older): when that flow ends
    idle, the tick gives its flow record and what it held back, in time order."""
    sensor = NetworkSensor(CONFIG)
    frames = Frames()
    assert sensor.feed(frames.add(udp(40001, 9999), T0_US)) == []
    query = DNS(id=7, rd=1, qd=DNSQR(qname="beacon.evil.test", qtype="A"))
    assert sensor.feed(frames.add(udp(40002, 53, query), T0_US + 30 * SECOND_US)) == []
    assert sensor.feed(frames.add(udp(40002, 53, query), T0_US + 40 * SECOND_US)) == []
    assert sensor.tick(T0_US + 59 * SECOND_US) == []
    assert summary(sensor.tick(T0_US + 60 * SECOND_US)) == [
        ("flow", T0_US, "idle"), ("dns", T0_US + 30 * SECOND_US, None)]
    assert sensor.tick(T0_US + 99 * SECOND_US) == []  # the second answer is younger than the DNS flow's start
    assert summary(sensor.tick(T0_US + 100 * SECOND_US)) == [
        ("flow", T0_US + 30 * SECOND_US, "idle"), ("dns", T0_US + 40 * SECOND_US, None)]


def mixed_capture(seed: int) -> list[Frame]:
    """A minute or so of UDP chatter, DNS lookups and short TCP connections between a few hosts, with quiet gaps
    of up to 90 s (longer than the idle timeout of `CONFIG`)."""
    rng = random.Random(seed)
    frames = Frames()
    now_us = T0_US
    for _ in range(300):
        now_us += rng.choice((200, 5000, SECOND_US, 20 * SECOND_US, 90 * SECOND_US))
        kind = rng.randrange(3)
        client = f"10.0.0.{rng.randrange(2, 6)}"
        port = 40000 + rng.randrange(4)
        if kind == 0:
            frames.add(udp(port, 9999, src=client), now_us)
        elif kind == 1:
            query = DNS(id=rng.randrange(65536), rd=1, qd=DNSQR(qname=f"h{rng.randrange(5)}.example.test"))
            frames.add(udp(port, 53, query, src=client), now_us)
        else:
            frames.add(tcp(rng.choice(("S", "SA", "A", "FA", "R")), reply=rng.random() < 0.5, seq=rng.randrange(9)),
                       now_us)
    return frames.frames


def offline(frames: list[Frame]) -> list[NetworkRecord]:
    sensor = NetworkSensor(CONFIG)
    records = [record for frame in frames for record in sensor.feed(frame)]
    return records + sensor.finish()


@pytest.mark.parametrize("seed", [1, 2, 3], ids=["seed-1", "seed-2", "seed-3"])
def test_feeding_with_ticks_gives_the_records_of_the_offline_path_in_time_order(seed: int) -> None:
    """Ticks at any times up to the next packet's (what a live capture does between packets) change when records
    leave, never which records or their order: the flows a tick ends are those the next packet would end."""
    frames = mixed_capture(seed)
    rng = random.Random(seed)
    sensor = NetworkSensor(CONFIG)
    live: list[NetworkRecord] = []
    previous_us = frames[0].timestamp_us
    for frame in frames:
        for _ in range(rng.randrange(3)):
            live += sensor.tick(rng.randint(previous_us, frame.timestamp_us))
        live += sensor.feed(frame)
        previous_us = frame.timestamp_us
    live += sensor.finish()
    expected = offline(frames)
    assert len(expected) > 100
    assert live == expected
    times = [record.timestamp_us for record in live]
    assert times == sorted(times)
    assert {record.detail.end_reason for record in live if isinstance(record.detail, FlowRecord)} >= {"idle", "rst"}
