"""Live capture on the loopback interface while the test makes real traffic there: an HTTP GET to a local asyncio
server, a DNS query to a local UDP socket, a TCP port scan of closed ports. Then the BPF filter, idle flows ended
by the tick on a quiet interface, drops when the sensor falls behind, and the errors at start.

Capturing needs root or CAP_NET_RAW (a packet socket) and libpcap (scapy compiles BPF filters with it): without
them these tests skip, except under CI=true, where they fail. Every capture filters on the ports its test made (free
ports from the kernel), so tests running at the same time on lo do not see each other's traffic."""

from __future__ import annotations

import asyncio
import base64
import ctypes.util
import hashlib
import logging
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import pytest
from scapy.layers.dns import DNS, DNSQR, DNSRR

from collectors.pcap_live import LiveCapture, LiveCaptureError
from collectors.pcap_sensor import SensorConfig
from correlator.model import Event, Rejected
from tests.conftest import REPO_ROOT, _missing, require_tool

LOCALHOST = "127.0.0.1"
C2_NAME = "live7q.beacon.evil.test"


@pytest.fixture
def can_capture() -> None:
    """Skip (fail under CI=true) where a live capture on lo cannot run."""
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW).close()
    except PermissionError:
        _missing(f"a live capture needs root or CAP_NET_RAW to open a packet socket on lo (uid {os.getuid()})")
    if ctypes.util.find_library("pcap") is None:
        _missing("libpcap is not installed (apt-get install tcpdump, which brings libpcap0.8): scapy compiles BPF "
                 "filters with it")


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port of 127.0.0.1 nothing listens on (the kernel's pick, released at once)."""
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind((LOCALHOST, 0))
        return int(probe.getsockname()[1])


def reference_community_id(proto: int, source: tuple[str, int], destination: tuple[str, int]) -> str:
    """The Community ID v1 of a flow, from the spec (seed 0): SHA-1 over the ordered endpoints, base64."""
    ends = sorted([(socket.inet_aton(source[0]), source[1]), (socket.inet_aton(destination[0]), destination[1])])
    (low_ip, low_port), (high_ip, high_port) = ends
    digest = hashlib.sha1(struct.pack("!H", 0) + low_ip + high_ip + bytes((proto, 0)) +
                          struct.pack("!HH", low_port, high_port)).digest()
    return "1:" + base64.b64encode(digest).decode()


async def until(condition: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.02)


class Live:
    """`async with Live(capture) as live:` runs the capture for the block (stopped at its end; the open flows then
    end) and keeps what it hands to the sink."""

    def __init__(self, capture: LiveCapture) -> None:
        self.capture = capture
        self.items: list[Event | Rejected] = []
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def sink(self, item: Event | Rejected) -> None:
        self.items.append(item)

    async def __aenter__(self) -> Live:
        self.task = asyncio.create_task(self.capture.run(self.stop, self.sink))
        await asyncio.sleep(0)  # the socket opens in the task's first step
        if self.task.done():
            self.task.result()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        self.stop.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, 10)
        assert not [thread for thread in threading.enumerate() if thread.name == "capture-lo"]

    def events(self, kind: str) -> list[Event]:
        return [item for item in self.items
                if isinstance(item, Event) and item.fields["event.dataset"] == f"network.{kind}"]

    def rejected(self) -> list[Rejected]:
        return [item for item in self.items if isinstance(item, Rejected)]


def pick(event: Event, *names: str) -> dict[str, Any]:
    return {name: event.fields.get(name) for name in names}


# --- traffic --------------------------------------------------------------------------------------------------


async def http_server() -> asyncio.Server:
    """Answers one GET per connection with a small page, then closes (the server's FIN comes first)."""
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = b"<html>stage two</html>"
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                     % (len(body), body))
        await writer.drain()
        writer.close()
        await writer.wait_closed()

    return await asyncio.start_server(answer, LOCALHOST, 0)


async def http_get(port: int, target: str) -> tuple[int, bytes]:
    """A GET over a fresh connection: the client's port and the response."""
    reader, writer = await asyncio.open_connection(LOCALHOST, port)
    client_port = writer.get_extra_info("sockname")[1]
    writer.write(f"GET {target} HTTP/1.1\r\nHost: {LOCALHOST}:{port}\r\nUser-Agent: socctl-live-test\r\n\r\n".encode())
    await writer.drain()
    response = await reader.read()
    writer.close()
    await writer.wait_closed()
    return client_port, response


def dns_exchange(server: socket.socket) -> int:
    """A query for `C2_NAME` to the UDP socket `server`, and its answer: the client's port."""
    query = DNS(id=0x5EED, rd=1, qd=DNSQR(qname=C2_NAME, qtype="A"))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(5)
        client.sendto(bytes(query), server.getsockname())
        data, peer = server.recvfrom(4096)
        answer = DNS(id=DNS(data).id, qr=1, aa=1, rd=1, ra=1, qd=DNSQR(qname=C2_NAME, qtype="A"),
                     an=DNSRR(rrname=C2_NAME, type="A", ttl=60, rdata="203.0.113.7"))
        server.sendto(bytes(answer), peer)
        client.recv(4096)
        return int(client.getsockname()[1])


def udp_server() -> socket.socket:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind((LOCALHOST, 0))
    server.settimeout(5)
    return server


# --- traffic on lo to events -------------------------------------------------------------------------------------


def test_an_http_get_on_loopback(can_capture: None) -> None:
    async def main() -> None:
        server = await http_server()
        port = server.sockets[0].getsockname()[1]
        capture = LiveCapture("lo", f"tcp port {port}", SensorConfig(fin_linger_s=0.1), tick_interval_s=0.05)
        async with server, Live(capture) as live:
            client_port, response = await http_get(port, "/stage2/payload.bin?id=7")
            assert response.startswith(b"HTTP/1.1 200 OK")
            await until(lambda: len(live.events("flow")) == 1, "the flow to end (FINs, then the linger) by a tick")
        [flow] = live.events("flow")
        assert pick(flow, "source.ip", "source.port", "destination.ip", "destination.port", "network.transport",
                    "network.community_id", "network.protocol", "pcap.flow.state", "pcap.flow.end_reason",
                    "pcap.flow.source_tcp_flags", "pcap.flow.destination_tcp_flags") == {
            "source.ip": LOCALHOST, "source.port": client_port, "destination.ip": LOCALHOST,
            "destination.port": port, "network.transport": "tcp",
            "network.community_id": reference_community_id(6, (LOCALHOST, client_port), (LOCALHOST, port)),
            "network.protocol": "http", "pcap.flow.state": "SF", "pcap.flow.end_reason": "fin",
            "pcap.flow.source_tcp_flags": "FSPA", "pcap.flow.destination_tcp_flags": "FSPA"}
        assert flow.fields["source.packets"] > 3
        assert flow.fields["destination.packets"] > 2
        assert flow.fields["source.bytes"] > 100
        assert flow.fields["destination.bytes"] > 100
        [http] = live.events("http")
        assert pick(http, "http.request.method", "url.original", "url.path", "url.query", "url.domain",
                    "http.response.status_code", "user_agent.original", "http.response.mime_type") == {
            "http.request.method": "GET", "url.original": "/stage2/payload.bin?id=7", "url.path": "/stage2/payload.bin",
            "url.query": "id=7", "url.domain": LOCALHOST, "http.response.status_code": 200,
            "user_agent.original": "socctl-live-test", "http.response.mime_type": "text/html"}
        assert http.fields["network.community_id"] == flow.fields["network.community_id"]
        assert {event.origin.path for event in live.events("flow") + live.events("http")} == {"capture://lo"}
        assert {event.origin.format for event in live.items if isinstance(event, Event)} == {"pcap"}
        first, request = flow.origin.record_id, http.origin.record_id  # packet numbers: the SYN's, the GET's
        assert first is not None
        assert request is not None
        assert 1 == first < request < capture.stats.packets
        assert (capture.stats.dropped, capture.stats.kernel_dropped, live.rejected()) == (0, 0, [])
        assert capture.stats.frames == capture.stats.packets == flow.fields["network.packets"]
        assert capture.stats.events == len(live.items) == 2

    asyncio.run(main())


def test_a_dns_query_on_loopback(can_capture: None) -> None:
    async def main() -> None:
        with udp_server() as server:
            port = server.getsockname()[1]
            config = SensorConfig(dns_ports=frozenset({port}))  # DNS on the test's port, not 53
            async with Live(LiveCapture("lo", f"udp port {port}", config)) as live:
                client_port = dns_exchange(server)
                await until(lambda: live.capture.stats.packets == 2, "the query and its answer")
        assert [pick(event, "dns.type", "dns.id", "dns.question.name", "dns.question.type", "dns.resolved_ip",
                     "source.port", "destination.port") for event in live.events("dns")] == [
            {"dns.type": "query", "dns.id": str(0x5EED), "dns.question.name": C2_NAME, "dns.question.type": "A",
             "dns.resolved_ip": None, "source.port": client_port, "destination.port": port},
            {"dns.type": "answer", "dns.id": str(0x5EED), "dns.question.name": C2_NAME, "dns.question.type": "A",
             "dns.resolved_ip": ["203.0.113.7"], "source.port": client_port, "destination.port": port}]
        [flow] = live.events("flow")
        assert pick(flow, "network.transport", "network.protocol", "network.packets", "source.port",
                    "network.community_id", "pcap.flow.end_reason") == {
            "network.transport": "udp", "network.protocol": "dns", "network.packets": 2, "source.port": client_port,
            "network.community_id": reference_community_id(17, (LOCALHOST, client_port), (LOCALHOST, port)),
            "pcap.flow.end_reason": "eof"}
        assert flow.fields["network.bytes"] > 2 * 28

    asyncio.run(main())


def test_a_port_scan_of_closed_ports_on_loopback(can_capture: None) -> None:
    async def main() -> None:
        ports = sorted({free_port() for _ in range(3)})
        bpf = "tcp and (" + " or ".join(f"port {port}" for port in ports) + ")"
        async with Live(LiveCapture("lo", bpf)) as live:
            for port in ports:
                with pytest.raises(ConnectionRefusedError):
                    socket.create_connection((LOCALHOST, port), timeout=2).close()
            await until(lambda: len(live.events("flow")) == len(ports), "a flow per port (ended by the RST)")
        flows = live.events("flow")
        assert [pick(flow, "destination.port", "pcap.flow.state", "pcap.flow.end_reason", "event.type",
                     "pcap.flow.source_tcp_flags", "pcap.flow.destination_tcp_flags", "network.packets")
                for flow in flows] == [
            {"destination.port": port, "pcap.flow.state": "REJ", "pcap.flow.end_reason": "rst",
             "event.type": ["connection", "start", "denied"], "pcap.flow.source_tcp_flags": "S",
             "pcap.flow.destination_tcp_flags": "RA", "network.packets": 2} for port in ports]
        for flow in flows:
            assert flow.fields["network.community_id"] == reference_community_id(
                6, (LOCALHOST, flow.fields["source.port"]), (LOCALHOST, flow.fields["destination.port"]))
        assert [flow.timestamp_ms for flow in flows] == sorted(flow.timestamp_ms for flow in flows)

    asyncio.run(main())


def test_the_bpf_filter_leaves_other_traffic_out(can_capture: None) -> None:
    async def main() -> None:
        server = await http_server()
        http_port = server.sockets[0].getsockname()[1]
        with udp_server() as dns:
            dns_port = dns.getsockname()[1]
            config = SensorConfig(dns_ports=frozenset({dns_port}))
            async with server, Live(LiveCapture("lo", f"udp port {dns_port}", config)) as live:
                await http_get(http_port, "/not-seen")
                dns_exchange(dns)
                await until(lambda: live.capture.stats.packets == 2, "the DNS query and its answer")
        assert [event.fields["event.dataset"] if isinstance(event, Event) else event for event in live.items] == [
            "network.dns", "network.flow", "network.dns"]  # in time order: the flow at its start
        assert {event.fields["network.transport"] for event in live.items if isinstance(event, Event)} == {"udp"}

    asyncio.run(main())


def test_a_tick_ends_an_idle_flow_without_another_packet(can_capture: None) -> None:
    """The clock is injected: moved on past the idle timeout, the next tick ends the flow while the interface
    stays quiet and the capture runs."""
    ahead_s = 0.0

    def clock() -> float:
        return time.time() + ahead_s

    async def main() -> None:
        nonlocal ahead_s
        with udp_server() as server:
            port = server.getsockname()[1]
            capture = LiveCapture("lo", f"udp port {port}", SensorConfig(idle_timeout_s=60), clock=clock,
                                  tick_interval_s=0.05)
            async with Live(capture) as live:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                    client.sendto(b"beacon", (LOCALHOST, port))
                await until(lambda: capture.stats.frames == 1, "the datagram to reach the sensor")
                await asyncio.sleep(0.2)  # a few ticks: the flow is not idle yet
                assert live.items == []
                ahead_s = 61.0
                await until(lambda: len(live.events("flow")) == 1, "a tick to end the idle flow")
                [flow] = live.events("flow")
                assert pick(flow, "pcap.flow.end_reason", "network.packets", "destination.port") == {
                    "pcap.flow.end_reason": "idle", "network.packets": 1, "destination.port": port}
        assert len(live.items) == 1  # nothing more at the stop

    asyncio.run(main())


def test_packets_the_sensor_cannot_take_are_counted_and_reported(can_capture: None,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """The event loop is held while 300 datagrams arrive: the reader thread queues 8 and drops the rest, which
    the sink hears of as `Rejected` summaries and the log as warnings."""
    sent = 300

    async def main() -> None:
        with udp_server() as server:
            port = server.getsockname()[1]
            capture = LiveCapture("lo", f"udp dst port {port}", queue_frames=8, report_interval_s=0,
                                  tick_interval_s=0.05)
            async with Live(capture) as live:
                stats = capture.stats
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                    for number in range(sent):
                        client.sendto(b"%d" % number, (LOCALHOST, port))
                deadline = time.monotonic() + 10
                while stats.packets + stats.kernel_dropped < sent and time.monotonic() < deadline:
                    time.sleep(0.01)  # holds the loop: nothing leaves the queue
                assert stats.packets + stats.kernel_dropped == sent
                assert stats.dropped == stats.packets - 8
                await until(lambda: stats.frames == 8, "the queued packets to reach the sensor")
        [flow] = live.events("flow")
        assert flow.fields["network.packets"] == 8
        reports = live.rejected()
        assert {(item.origin.path, item.origin.format, item.stage) for item in reports} == {("capture://lo", "pcap",
                                                                                             "read")}
        counts = [int(item.reason.split()[0]) for item in reports if item.reason.endswith("dropped: queue full")]
        assert sum(counts) == stats.dropped > 0
        assert [item.reason for item in reports] == [
            f"{count} packets dropped: queue full" for count in counts] + [
            f"{stats.kernel_dropped} packets dropped: the kernel's socket buffer was full"] * bool(stats.kernel_dropped)
        assert any("packets dropped" in record.getMessage() and record.levelno == logging.WARNING
                   for record in caplog.records)

    asyncio.run(main())


def test_a_failing_sink_stops_the_capture(can_capture: None) -> None:
    async def main() -> None:
        async def sink(item: Event | Rejected) -> None:
            raise ConnectionError("event store unreachable")

        with udp_server() as server:
            port = server.getsockname()[1]
            capture = LiveCapture("lo", f"udp port {port}", SensorConfig(idle_timeout_s=0.1, fin_linger_s=0),
                                  tick_interval_s=0.05)
            run = asyncio.create_task(capture.run(asyncio.Event(), sink))
            await asyncio.sleep(0)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                client.sendto(b"x", (LOCALHOST, port))
            with pytest.raises(ConnectionError, match="event store unreachable"):
                await asyncio.wait_for(run, 10)
        assert not [thread for thread in threading.enumerate() if thread.name == "capture-lo"]

    asyncio.run(main())


def test_a_capture_stopped_before_any_traffic(can_capture: None) -> None:
    async def main() -> None:
        capture = LiveCapture("lo", f"udp port {free_port(socket.SOCK_DGRAM)}")
        async with Live(capture) as live:
            pass
        assert live.items == []
        assert (capture.stats.packets, capture.stats.frames, capture.stats.events) == (0, 0, 0)
        with pytest.raises(RuntimeError, match=r"^capture://lo: a LiveCapture runs once$"):
            await capture.run(asyncio.Event(), live.sink)

    asyncio.run(main())


# --- errors at start ---------------------------------------------------------------------------------------------


def test_an_unknown_interface() -> None:
    with pytest.raises(LiveCaptureError) as caught:
        LiveCapture("nosuch0", "tcp")
    assert str(caught.value).startswith("capture://nosuch0: unknown network interface 'nosuch0' (this host has: lo")
    assert caught.value.path == "capture://nosuch0"


@pytest.mark.parametrize(("bpf", "message"), [
    ("tcp port", "capture://lo: bad BPF filter 'tcp port': can't parse filter expression: syntax error"),
    ("udp port 99999", "capture://lo: bad BPF filter 'udp port 99999': illegal port number 99999 > 65535"),
    ("vlan 5000", "capture://lo: bad BPF filter 'vlan 5000': VLAN tag 5000 greater than maximum 4095"),
], ids=["syntax", "port-range", "vlan-range"])
def test_a_bad_bpf_filter(bpf: str, message: str) -> None:
    if ctypes.util.find_library("pcap") is None:
        _missing("libpcap is not installed (apt-get install tcpdump, which brings libpcap0.8)")
    with pytest.raises(LiveCaptureError) as caught:
        LiveCapture("lo", bpf)
    assert str(caught.value) == message


def test_a_filter_without_libpcap_to_compile_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import scapy.arch.common

    def no_libpcap(*args: object, **kwargs: object) -> None:
        raise ImportError("libpcap is not available. Cannot compile filter !")  # what scapy raises

    monkeypatch.setattr(scapy.arch.common, "compile_filter", no_libpcap)
    with pytest.raises(LiveCaptureError) as caught:
        LiveCapture("lo", "tcp")
    assert str(caught.value) == ("capture://lo: BPF filter 'tcp' cannot be compiled: libpcap is not installed "
                                 "(Debian: apt-get install libpcap0.8, which tcpdump brings)")
    assert LiveCapture("lo", " ").bpf is None  # no filter needs no libpcap


CAPTURE_SCRIPT = """
import asyncio
from collectors.pcap_live import LiveCapture, LiveCaptureError

async def main() -> None:
    async def sink(item: object) -> None: ...
    try:
        await LiveCapture("lo").run(asyncio.Event(), sink)
    except LiveCaptureError as exc:
        print(exc)

asyncio.run(main())
"""


def test_without_the_right_to_open_a_packet_socket() -> None:
    """As root, the capability is taken away (setpriv) for a child process; otherwise the test lacks it already."""
    command = [sys.executable, "-c", CAPTURE_SCRIPT]
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW).close()
    except PermissionError:
        pass
    else:
        require_tool("setpriv", "util-linux")
        command = ["setpriv", "--bounding-set=-net_raw", "--inh-caps=-net_raw", *command]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, check=False, timeout=60)
    if done.stderr.startswith("setpriv:"):
        _missing(f"setpriv cannot drop CAP_NET_RAW here: {done.stderr.strip()}")
    assert (done.stdout, done.returncode) == (
        "capture://lo: cannot open a packet socket: Operation not permitted (live capture needs root or "
        "CAP_NET_RAW)\n", 0)


@pytest.mark.parametrize(("options", "message"), [
    ({"queue_frames": 0}, "queue_frames must be > 0, got 0"),
    ({"tick_interval_s": 0}, "tick_interval_s must be > 0, got 0"),
    ({"report_interval_s": -1}, "report_interval_s must be >= 0, got -1"),
], ids=["queue", "tick", "report"])
def test_capture_options_are_validated(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        LiveCapture("lo", **options)
