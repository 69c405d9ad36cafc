"""The network sensor's stage: captured frames in; flow, DNS, HTTP and TLS records out, in capture-time order.

    sensor = NetworkSensor(SensorConfig(idle_timeout_s=60))
    for frame in source.frames():  # a file (collectors.pcap) or a live interface (collectors.pcap_live)
        for record in sensor.feed(frame):
            ...
        # live, about once a second: `sensor.tick(now_us)` ends the flows gone idle on a quiet interface
    for record in sensor.finish():  # the end of the capture: every open flow ends
        ...

Nothing here reads a clock or a file: time is the capture's, or the caller's for `tick`. A record is held back
until no record still to come can be older (the oldest open flow's start), so records leave in time order;
`max_reorder_records` bounds that wait (a long-lived flow would otherwise hold everything behind it).

TCP payload is reassembled per direction only while it may matter: the client's first bytes decide between
HTTP (a request method), TLS (a handshake record) and DNS (port 53); anything else stops reassembly for that flow.
DNS is read from UDP on ports 53, 5353 (mDNS) and 5355 (LLMNR) and from TCP on port 53.
"""

from __future__ import annotations

import dataclasses
import heapq
import re
from dataclasses import dataclass, field

from collectors.pcap_dns import DnsFormatError, DnsMessage, parse_dns
from collectors.pcap_flows import DEFAULT_INTERNAL_NETWORKS, Endpoints, Flow, FlowRecord, FlowTable, NetworkZones
from collectors.pcap_http import HttpConnection, HttpTransaction
from collectors.pcap_packets import PROTO_TCP, PROTO_UDP, TCP_SYN, Frame, Packet, decode_frame, supports_linktype
from collectors.pcap_tcp import TcpStream
from collectors.pcap_tls import ClientHello, ClientHelloReader, TlsFormatError

__all__ = ["NetworkRecord", "NetworkSensor", "RecordDetail", "SensorConfig", "SensorStats"]

RecordDetail = FlowRecord | DnsMessage | HttpTransaction | ClientHello

_HTTP_METHOD = re.compile(rb"(?:GET|POST|HEAD|PUT|DELETE|OPTIONS|PATCH|CONNECT|TRACE|PROPFIND|PROPPATCH|MKCOL|COPY"
                          rb"|MOVE|LOCK|UNLOCK|SEARCH|REPORT) ")
_EARLY_LIMIT = 64 << 10  # server bytes kept while the protocol is undecided
_MAX_TIMESTAMP_US = 253_402_300_800 * 1_000_000  # year 10000: what ECS timestamps can hold


@dataclass(frozen=True, slots=True)
class SensorConfig:
    """How the sensor works. Validated on construction (`ValueError`)."""

    idle_timeout_s: float = 60.0
    internal_networks: tuple[str, ...] = DEFAULT_INTERNAL_NETWORKS
    community_id_seed: int = 0
    fin_linger_s: float = 1.0  # a flow closed by FINs ends this long after its last packet
    carve_bodies: bool = False  # keep HTTP response bodies (for YARA), not only their hash and size
    max_body_bytes: int = 8 << 20  # per carved body
    max_held_body_bytes: int = 256 << 20  # carved bodies waiting in the reorder buffer, all together
    max_stream_gap_bytes: int = 4 << 20  # bytes waiting behind a sequence gap before reassembly gives up
    max_reorder_records: int = 100_000
    dns_ports: frozenset[int] = field(default_factory=lambda: frozenset({53, 5353, 5355}))

    def __post_init__(self) -> None:
        if not self.idle_timeout_s > 0:
            raise ValueError(f"idle_timeout_s must be > 0, got {self.idle_timeout_s}")
        if not 0 <= self.fin_linger_s <= self.idle_timeout_s:
            raise ValueError(f"fin_linger_s must be between 0 and idle_timeout_s, got {self.fin_linger_s}")
        if not 0 <= self.community_id_seed <= 0xFFFF:
            raise ValueError(f"community_id_seed must be 0..65535, got {self.community_id_seed}")
        for name in ("max_body_bytes", "max_held_body_bytes", "max_stream_gap_bytes", "max_reorder_records"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        NetworkZones(self.internal_networks)  # every entry an address or CIDR


@dataclass(frozen=True, slots=True)
class NetworkRecord:
    """One output of the sensor. `kind` is flow, dns, http or tls; `index` numbers the records of a kind within
    their flow (0 for the flow record); `packet_number` is the capture packet the record is anchored on."""

    kind: str
    timestamp_us: int
    packet_number: int
    index: int
    endpoints: Endpoints
    detail: RecordDetail


@dataclass(slots=True)
class SensorStats:
    frames: int = 0
    packets: int = 0  # frames holding a decodable IP packet
    skipped: int = 0  # frames without one (ARP, other link types, non-first fragments, cut headers)
    flows: int = 0
    records: int = 0
    malformed: int = 0  # DNS messages, ClientHellos and HTTP streams that did not parse
    unsupported_linktypes: dict[int, int] = field(default_factory=dict)  # link type -> frames not decoded
    bad_timestamps: int = 0  # frames dropped for a capture time before 1970 or after 9999 (a corrupt record)
    bodies_dropped: int = 0  # carved bodies let go because `max_held_body_bytes` were waiting (hash and size kept)


class _TcpApp:
    """A TCP flow's app-layer state: its two reassembled streams and the parser they feed."""

    __slots__ = ("client_head", "dns_buffers", "early", "hello", "http", "protocol", "streams")

    def __init__(self, max_gap: int) -> None:
        self.streams: tuple[TcpStream, TcpStream] | None = (TcpStream(max_pending_bytes=max_gap),
                                                             TcpStream(max_pending_bytes=max_gap))
        self.protocol: str | None = None
        self.client_head = b""
        self.early: list[tuple[bytes, int, int]] = []  # server data before the protocol is known
        self.http: HttpConnection | None = None
        self.hello: ClientHelloReader | None = None
        self.dns_buffers = (bytearray(), bytearray())


class NetworkSensor:
    """Frames to `NetworkRecord`s. `feed`, `tick` and `finish` return the records that may leave (time-ordered)."""

    def __init__(self, config: SensorConfig | None = None) -> None:
        self.config = config = config or SensorConfig()
        self.stats = SensorStats()
        self._flows = FlowTable(idle_timeout_us=round(config.idle_timeout_s * 1_000_000),
                                linger_us=round(config.fin_linger_s * 1_000_000),
                                zones=NetworkZones(config.internal_networks), seed=config.community_id_seed)
        self._held: list[tuple[int, int, NetworkRecord]] = []
        self._pushed = 0
        self._held_body_bytes = 0  # of the carved bodies in `_held`

    def feed(self, frame: Frame) -> list[NetworkRecord]:
        self.stats.frames += 1
        if not 0 <= frame.timestamp_us < _MAX_TIMESTAMP_US:
            self.stats.bad_timestamps += 1
            return []
        packet = decode_frame(frame)
        if packet is None:
            self.stats.skipped += 1
            if not supports_linktype(frame.linktype):
                unsupported = self.stats.unsupported_linktypes
                unsupported[frame.linktype] = unsupported.get(frame.linktype, 0) + 1
            return []
        self.stats.packets += 1
        self._expire(packet.timestamp_us)
        flow, forward, replaced = self._flows.track(packet)
        if replaced is not None:
            self._end(replaced, "fin")
        was_closing = flow.closing
        reset = flow.count(packet, forward)
        if packet.proto == PROTO_TCP:
            self._tcp(flow, packet, forward)
        elif packet.proto == PROTO_UDP and packet.payload and (
                packet.sport in self.config.dns_ports or packet.dport in self.config.dns_ports):
            self._dns(flow, packet.payload, packet.timestamp_us, packet.number)
        if reset:
            self._flows.close(flow)
            self._end(flow, "rst")
        elif flow.closing and not was_closing:
            self._flows.closing(flow)
        return self._release()

    def tick(self, now_us: int) -> list[NetworkRecord]:
        """Time has moved on to `now_us` without a packet (a quiet live interface): the flows idle since then, or
        lingering after their FINs, end as a packet at `now_us` would end them, and the records no open flow holds
        back leave. Records stay in time order across `feed` and `tick`; a `now_us` behind the capture's time
        ends nothing."""
        self._expire(now_us)
        return self._release()

    def finish(self) -> list[NetworkRecord]:
        """The capture ended: every open flow ends (reason eof, or fin when both sides had closed)."""
        for flow in self._flows.drain():
            self._end(flow, "fin" if flow.closing else "eof")
        return self._release(everything=True)

    # --- records and their order -------------------------------------------------------------------------------

    def _push(self, flow: Flow, kind: str, timestamp_us: int, packet_number: int, detail: RecordDetail) -> None:
        index = 0 if kind == "flow" else flow.next_index(kind)
        record = NetworkRecord(kind, timestamp_us, packet_number, index, flow.endpoints, detail)
        self._pushed += 1
        heapq.heappush(self._held, (timestamp_us, self._pushed, record))

    def _release(self, *, everything: bool = False) -> list[NetworkRecord]:
        held = self._held
        if not held:
            return []
        watermark = None if everything else self._flows.oldest_start()
        out = []
        while held and (watermark is None or held[0][0] <= watermark
                        or len(held) > self.config.max_reorder_records):
            record = heapq.heappop(held)[2]
            if isinstance(record.detail, HttpTransaction) and record.detail.response is not None:
                self._held_body_bytes -= len(record.detail.response.body)
            out.append(record)
        self.stats.records += len(out)
        return out

    def _expire(self, now_us: int) -> None:
        for expired in self._flows.expire(now_us):
            self._end(expired, "fin" if expired.closing else "idle")

    def _end(self, flow: Flow, reason: str) -> None:
        app = flow.app
        if isinstance(app, _TcpApp) and app.http is not None:
            for transaction in app.http.close():
                self._http(flow, transaction)
        self.stats.flows += 1
        self._push(flow, "flow", flow.endpoints.start_us, flow.first_number, flow.record(reason))

    # --- app layers --------------------------------------------------------------------------------------------

    def _dns(self, flow: Flow, payload: bytes, timestamp_us: int, number: int) -> None:
        try:
            message = parse_dns(payload)
        except DnsFormatError:
            self.stats.malformed += 1
            return
        flow.protocol = "dns"
        self._push(flow, "dns", timestamp_us, number, message)

    def _http(self, flow: Flow, transaction: HttpTransaction) -> None:
        message = transaction.request or transaction.response
        assert message is not None
        response = transaction.response
        if response is not None and response.body:
            if self._held_body_bytes + len(response.body) > self.config.max_held_body_bytes:
                # The buffer holds enough bodies already: this one goes on without its bytes (its hash and size
                # stay; `body_truncated` tells YARA it did not see it), rather than memory growing without bound.
                self.stats.bodies_dropped += 1
                transaction = dataclasses.replace(
                    transaction, response=dataclasses.replace(response, body=b"", body_truncated=True))
            else:
                self._held_body_bytes += len(response.body)
        self._push(flow, "http", message.timestamp_us, message.packet_number, transaction)

    def _tcp(self, flow: Flow, packet: Packet, forward: bool) -> None:
        app = flow.app
        if app is None:
            flow.app = app = _TcpApp(self.config.max_stream_gap_bytes)
        streams = app.streams
        if streams is None:
            return
        stream = streams[0 if forward else 1]
        data = stream.segment(packet.seq, packet.payload, syn=bool(packet.tcp_flags & TCP_SYN))
        if stream.broken:
            self._stop(flow, app)
        elif data:
            self._stream_data(flow, app, forward, data, packet)

    def _stop(self, flow: Flow, app: _TcpApp) -> None:
        """No more reassembly for this flow: what the HTTP parser has is reported at the flow's end."""
        app.streams = None
        app.early = []
        app.client_head = b""
        app.hello = None
        if app.http is not None:
            for transaction in app.http.close():
                self._http(flow, transaction)

    def _stream_data(self, flow: Flow, app: _TcpApp, forward: bool, data: bytes, packet: Packet) -> None:
        if app.protocol is None:
            if not forward and 53 not in (flow.endpoints.source_port, flow.endpoints.destination_port):
                app.early.append((data, packet.timestamp_us, packet.number))
                if sum(len(chunk) for chunk, _, _ in app.early) > _EARLY_LIMIT:
                    self._stop(flow, app)
                return
            head = app.client_head + data if forward else b""
            protocol = self._classify(flow, head)
            if protocol is None:
                app.client_head = head
                return
            self._start(flow, app, protocol)
            if app.streams is None:
                return
            data, app.client_head = (head if forward else data), b""
            early, app.early = app.early, []
            self._dispatch(flow, app, forward, data, packet.timestamp_us, packet.number)
            for chunk, timestamp_us, number in early:
                self._dispatch(flow, app, False, chunk, timestamp_us, number)
            return
        self._dispatch(flow, app, forward, data, packet.timestamp_us, packet.number)

    @staticmethod
    def _classify(flow: Flow, head: bytes) -> str | None:
        """The app protocol from the client's first bytes: http, tls, dns, other; None to wait for more."""
        if 53 in (flow.endpoints.source_port, flow.endpoints.destination_port):
            return "dns"
        if head[:1] == b"\x16":
            return None if len(head) < 2 else "tls" if head[1] == 3 else "other"
        if _HTTP_METHOD.match(head):
            return "http"
        return None if len(head) < 10 and b" " not in head and head.isalpha() else "other"

    def _start(self, flow: Flow, app: _TcpApp, protocol: str) -> None:
        app.protocol = protocol
        if protocol == "other":
            self._stop(flow, app)
            return
        flow.protocol = protocol
        if protocol == "http":
            app.http = HttpConnection(max_body_bytes=self.config.max_body_bytes, carve=self.config.carve_bodies)
        elif protocol == "tls":
            app.hello = ClientHelloReader()

    def _dispatch(self, flow: Flow, app: _TcpApp, forward: bool, data: bytes, timestamp_us: int,
                  number: int) -> None:
        if app.http is not None:
            http = app.http
            done = http.client_data(data, timestamp_us, number) if forward else \
                http.server_data(data, timestamp_us, number)
            for transaction in done:
                self._http(flow, transaction)
            if http.broken:
                self.stats.malformed += http.error is not None
                self._stop(flow, app)
        elif app.hello is not None:
            if not forward:
                return
            try:
                hello = app.hello.feed(data)
            except TlsFormatError:
                self.stats.malformed += 1
                self._stop(flow, app)
                return
            if hello is not None:
                self._push(flow, "tls", timestamp_us, number, hello)
                self._stop(flow, app)  # the server's side is encrypted from here on
        elif app.protocol == "dns":
            self._dns_stream(flow, app.dns_buffers[0 if forward else 1], data, timestamp_us, number)

    def _dns_stream(self, flow: Flow, buffer: bytearray, data: bytes, timestamp_us: int, number: int) -> None:
        """DNS over TCP: each message behind a 2-byte length."""
        buffer += data
        while len(buffer) >= 2:
            size = int.from_bytes(buffer[:2], "big")
            if len(buffer) < 2 + size:
                return
            payload = bytes(buffer[2:2 + size])
            del buffer[:2 + size]
            self._dns(flow, payload, timestamp_us, number)
