"""Live capture on a network interface: the network sensor's live path (Linux).

    capture = LiveCapture("eth0", bpf="tcp or udp", config=SensorConfig(idle_timeout_s=60))  # validated here
    await capture.run(stop, sink)  # until `stop` is set; then every open flow ends and its events go out
    capture.stats  # packets read, dropped (queue full), kernel_dropped, frames, records, events: for metrics

The same stages as a capture file (collectors.pcap): each packet becomes a `Frame` (its bytes, the kernel's
capture time, the interface's link type), the `NetworkSensor` makes flow, DNS, HTTP and TLS records, and
`record_event` makes them ECS events with origin `capture://<interface>#record=<packet number>`. On a quiet
interface no packet moves time on, so the sensor is ticked with the injected clock about once a second and idle
flows still end.

The I/O: scapy's Linux packet socket (`L2ListenSocket`; on a loopback interface, where a packet socket sees
every packet twice, going out and coming in, the kernel is told to leave out the outgoing copies, as libpcap does,
and `L2Socket` skips them on kernels before 4.20) with the BPF filter compiled by libpcap and attached in the
kernel. Not scapy's `AsyncSniffer`: it dissects every packet into scapy layers (tens of microseconds, for bytes
the sensor decodes itself) and on lo delivers each packet twice. The packets are read raw on a thread of their
own and handed to the event loop through a bounded queue; the sensor and the sink run on the loop. When
the queue is full, because the sensor or the sink is slower than the traffic, packets are dropped there, and when
the socket buffer is full the kernel drops them: both are counted (`CaptureStats`), logged as a warning at most
every `report_interval_s`, and handed to the sink as `Rejected` summaries ("N packets dropped: queue full").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import re
import select
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from collectors.errors import CollectorError
from collectors.pcap import FORMAT
from collectors.pcap_ecs import record_event
from collectors.pcap_packets import Frame, supports_linktype
from collectors.pcap_sensor import NetworkRecord, NetworkSensor, SensorConfig, SensorStats
from correlator.model import Event, EventOrigin, Rejected

__all__ = ["CaptureStats", "LiveCapture", "LiveCaptureError", "Sink"]

log = logging.getLogger(__name__)

Sink = Callable[[Event | Rejected], Awaitable[None]]

SNAPLEN = 262_144  # bytes read of a packet (libpcap's default): loopback and offloaded frames reach 64 KiB
_ARPHRD_LOOPBACK = 772
_SOL_PACKET, _PACKET_STATISTICS, _PACKET_IGNORE_OUTGOING = 263, 6, 23  # <linux/if_packet.h>
_SO_RCVBUFFORCE = 33  # SO_RCVBUF past net.core.rmem_max (root)
_PACKET_STATS = struct.Struct("II")  # struct tpacket_stats: packets, drops (reset on each read)
_BATCH = 256  # frames the sensor takes before the event loop's other tasks get a turn
_POLL_S = 1.0  # the reader wakes at least this often (kernel drop counters)


class LiveCaptureError(CollectorError):
    """A live capture that cannot start or go on: an unknown interface, a bad BPF filter (or no libpcap to compile
    it), no permission to open a packet socket, a socket error while reading. `path` is `capture://<interface>`."""


@dataclass(slots=True)
class CaptureStats:
    """A live capture's counters (for metrics). Of the `packets` read off the socket (numbered in that order),
    `dropped` never reached the sensor: its queue was full. `kernel_dropped` never reached the capture: the
    socket buffer was full. `sensor` holds the sensor's own counters (frames, flows, records, malformed)."""

    sensor: SensorStats
    packets: int = 0
    dropped: int = 0
    kernel_dropped: int = 0
    queued: int = 0  # frames waiting for the sensor, as last seen
    events: int = 0  # events handed to the sink
    rejected: int = 0  # drop summaries handed to the sink

    @property
    def frames(self) -> int:
        return self.sensor.frames

    @property
    def records(self) -> int:
        return self.sensor.records


class LiveCapture:
    """The network sensor on a live interface. The interface and the BPF filter are checked on construction
    (`LiveCaptureError`; the filter is compiled with libpcap, so it needs no privilege); `run` opens the packet
    socket (root or CAP_NET_RAW) and captures until its `stop` event is set. One `run` per instance.

    `clock` gives the wall-clock time in seconds (`time.time`): the sensor is ticked with it every
    `tick_interval_s` while no packet waits, so flows end on their idle timeout on a quiet interface. It must be
    the clock the kernel stamps packets with. `queue_frames` and `queue_bytes` bound the packets waiting for the
    sensor; `buffer_bytes` is the socket's receive buffer."""

    def __init__(self, interface: str, bpf: str | None = None, config: SensorConfig | None = None, *,
                 clock: Callable[[], float] = time.time, queue_frames: int = 10_000, queue_bytes: int = 64 << 20,
                 buffer_bytes: int = 8 << 20, tick_interval_s: float = 1.0,
                 report_interval_s: float = 10.0) -> None:
        for name, value in (("queue_frames", queue_frames), ("queue_bytes", queue_bytes),
                            ("buffer_bytes", buffer_bytes), ("tick_interval_s", tick_interval_s)):
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        if not report_interval_s >= 0:
            raise ValueError(f"report_interval_s must be >= 0, got {report_interval_s}")
        self.interface = interface
        self.bpf = bpf.strip() if bpf is not None and bpf.strip() else None  # "" filters nothing, as no filter
        self.name = f"capture://{interface}"
        self.sensor = NetworkSensor(config)
        self.stats = CaptureStats(self.sensor.stats)
        self._clock = clock
        self._queue_frames, self._queue_bytes, self._buffer_bytes = queue_frames, queue_bytes, buffer_bytes
        self._tick_interval_s, self._report_interval_s = tick_interval_s, report_interval_s
        self._where = EventOrigin(path=self.name, format=FORMAT)
        self._reported = (0, 0)  # dropped, kernel_dropped as last reported
        self._next_report = -math.inf
        self._started = False
        self.linktype, self._loopback = self._check_interface()
        if self.bpf is not None:
            self._check_filter(self.bpf)

    # --- checks at construction ----------------------------------------------------------------------------------

    def _check_interface(self) -> tuple[int, bool]:
        """The pcap link type of the interface's frames, and whether it is a loopback interface."""
        if sys.platform != "linux":
            raise LiveCaptureError(f"live capture needs Linux packet sockets (this is {sys.platform})",
                                   path=self.name)
        from scapy.data import ARPHRD_TO_DLT

        try:
            socket.if_nametoindex(self.interface)
            hardware = int(Path("/sys/class/net", self.interface, "type").read_text())
        except (OSError, ValueError):
            known = ", ".join(name for _, name in socket.if_nameindex())
            raise LiveCaptureError(f"unknown network interface {self.interface!r} (this host has: {known})",
                                   path=self.name) from None
        linktype = ARPHRD_TO_DLT.get(hardware, -1)
        if not supports_linktype(linktype):
            raise LiveCaptureError(
                f"interface {self.interface!r} has hardware type {hardware} (link type {linktype}): the sensor reads "
                "Ethernet, Linux cooked capture, loopback and raw IP", path=self.name)
        return linktype, hardware == _ARPHRD_LOOPBACK

    def _check_filter(self, bpf: str) -> None:
        """Compile the filter once, as the socket will (libpcap, through scapy), for an error that names it."""
        from scapy.arch.common import compile_filter, free_filter
        from scapy.error import Scapy_Exception

        try:
            program = compile_filter(bpf, linktype=self.linktype)
        except ImportError:
            raise LiveCaptureError(f"BPF filter {bpf!r} cannot be compiled: libpcap is not installed (Debian: "
                                   "apt-get install libpcap0.8, which tcpdump brings)", path=self.name) from None
        except (Scapy_Exception, OSError) as exc:
            detail = re.search(r"\((.*)\)$", str(exc))
            raise LiveCaptureError(f"bad BPF filter {bpf!r}: {detail.group(1) if detail else exc}",
                                   path=self.name) from None
        free_filter(program)

    # --- the capture ------------------------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event, sink: Sink) -> None:
        """Capture until `stop` is set, handing every event (and drop summary) to `sink` in capture-time order;
        then the packets already read are analysed, every open flow ends (`NetworkSensor.finish`) and the drops
        not yet reported are. Raises `LiveCaptureError` when the socket cannot be opened, or after that flush
        when reading failed; an exception from `sink` stops the capture and propagates."""
        if self._started:
            raise RuntimeError(f"{self.name}: a LiveCapture runs once")
        self._started = True
        handoff = _Handoff(asyncio.get_running_loop(), self._queue_frames, self._queue_bytes)
        reader = _Reader(self._open(), self.linktype, handoff, self.stats, self._clock)
        watch = asyncio.ensure_future(stop.wait())
        watch.add_done_callback(lambda _: handoff.wake())
        reader.start()
        try:
            await self._follow(stop, sink, handoff, reader)
        finally:
            watch.cancel()
            reader.stop()
        while frames := handoff.take(_BATCH):
            await self._feed(frames, sink)
        self.stats.queued = 0
        await self._send(self.sensor.finish(), sink)
        await self._report(sink, self._clock(), final=True)
        if reader.error is not None:
            raise LiveCaptureError(f"capture stopped: {reader.error}", path=self.name) from reader.error

    def _open(self) -> Any:
        """The packet socket, filter attached, non-blocking, with its receive buffer."""
        from scapy.arch.linux import L2ListenSocket, L2Socket
        from scapy.error import Scapy_Exception

        kind = L2Socket if self._loopback else L2ListenSocket  # L2Socket skips outgoing packets
        scapy_log = logging.getLogger("scapy.runtime")
        level = scapy_log.level
        # scapy warns that it cannot guess lo's link layer (ARPHRD_LOOPBACK): we read raw bytes, our link type.
        scapy_log.setLevel(logging.ERROR)
        try:
            sock = kind(iface=self.interface, filter=self.bpf)
        except PermissionError as exc:
            raise LiveCaptureError(f"cannot open a packet socket: {exc.strerror} (live capture needs root or "
                                   "CAP_NET_RAW)", path=self.name) from None
        except OSError as exc:
            raise LiveCaptureError(f"cannot open a packet socket: {exc.strerror or exc}", path=self.name) from None
        except (Scapy_Exception, ValueError) as exc:
            raise LiveCaptureError(f"cannot start the capture: {exc}", path=self.name) from None
        finally:
            scapy_log.setLevel(level)
        try:
            sock.ins.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, self._buffer_bytes)
        except PermissionError:
            sock.ins.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._buffer_bytes)
        if self._loopback:  # the kernel leaves out the outgoing copies: half the packets to read
            with contextlib.suppress(OSError):  # Linux < 4.20: L2Socket skips them as it reads
                sock.ins.setsockopt(_SOL_PACKET, _PACKET_IGNORE_OUTGOING, 1)
        # The counters so far are of packets that came before the filter was attached, into the socket's zero-size
        # first buffer (scapy's way to keep them out): reading the counters resets them.
        sock.ins.getsockopt(_SOL_PACKET, _PACKET_STATISTICS, _PACKET_STATS.size)
        sock.ins.setblocking(False)
        return sock

    async def _follow(self, stop: asyncio.Event, sink: Sink, handoff: _Handoff, reader: _Reader) -> None:
        next_tick = self._clock() + self._tick_interval_s
        while not stop.is_set() and (reader.running or handoff.depth):
            frames = handoff.take(_BATCH)
            await self._feed(frames, sink)
            self.stats.queued = handoff.depth
            now = self._clock()
            if now >= next_tick and not handoff.depth:  # caught up: no packet older than `now` waits
                await self._send(self.sensor.tick(int(now * 1_000_000)), sink)
                await self._report(sink, now)
                next_tick = now + self._tick_interval_s
            if frames:
                await asyncio.sleep(0)
            else:
                await handoff.wait(min(max(next_tick - now, 0.0), self._tick_interval_s))

    async def _feed(self, frames: list[Frame], sink: Sink) -> None:
        feed = self.sensor.feed
        for frame in frames:
            records = feed(frame)
            if records:
                await self._send(records, sink)

    async def _send(self, records: list[NetworkRecord], sink: Sink) -> None:
        for record in records:
            event = record_event(record, EventOrigin(path=self.name, record_id=record.packet_number, format=FORMAT))
            self.stats.events += 1
            await sink(event)

    async def _report(self, sink: Sink, now: float, *, final: bool = False) -> None:
        """Drops since the last report: a warning and a `Rejected` summary each, at most every
        `report_interval_s` (and at the end)."""
        stats = self.stats
        dropped, kernel = stats.dropped - self._reported[0], stats.kernel_dropped - self._reported[1]
        if not (dropped or kernel) or (not final and now < self._next_report):
            return
        self._reported = (stats.dropped, stats.kernel_dropped)
        self._next_report = now + self._report_interval_s
        log.warning("%s: %d packets dropped (queue full: the sensor or its sink is slower than the traffic) and "
                    "%d by the kernel (socket buffer full) since the last report; %d and %d of %d in all",
                    self.name, dropped, kernel, stats.dropped, stats.kernel_dropped, stats.packets)
        for count, reason in ((dropped, "queue full"), (kernel, "the kernel's socket buffer was full")):
            if count:
                stats.rejected += 1
                await sink(Rejected(f"{count} packets dropped: {reason}", self._where))


class _Handoff:
    """Frames from the reader thread to the event loop, bounded in frames and bytes: `put` refuses a frame when
    full (the reader counts it dropped). The loop is woken once for a run of frames (one `call_soon_threadsafe`
    while none is pending), not once a frame."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_frames: int, max_bytes: int) -> None:
        self._loop = loop
        self._frames: deque[Frame] = deque()
        self._max_frames, self._max_bytes = max_frames, max_bytes
        self._bytes_in = 0  # written by the reader thread only
        self._bytes_out = 0  # written by the loop only
        self._ready = asyncio.Event()
        self._wake_pending = False

    @property
    def depth(self) -> int:
        return len(self._frames)

    def put(self, frame: Frame) -> bool:
        """Reader thread: queue a frame, or False when the queue is full."""
        if len(self._frames) >= self._max_frames or self._bytes_in - self._bytes_out >= self._max_bytes:
            return False
        self._frames.append(frame)
        self._bytes_in += len(frame.data)
        if not self._wake_pending:
            self._wake_pending = True
            self._loop.call_soon_threadsafe(self.wake)
        return True

    def wake(self) -> None:
        """On the loop: whoever waits looks again (frames came, the reader ended, or the capture stops)."""
        self._wake_pending = False
        self._ready.set()

    def wake_threadsafe(self) -> None:
        self._loop.call_soon_threadsafe(self.wake)

    def take(self, limit: int) -> list[Frame]:
        frames = self._frames
        taken = [frames.popleft() for _ in range(min(limit, len(frames)))]
        self._bytes_out += sum(len(frame.data) for frame in taken)
        return taken

    async def wait(self, timeout_s: float) -> None:
        """Until a wake or `timeout_s`, unless frames wait already."""
        if self._frames:
            return
        self._ready.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._ready.wait()


class _Reader:
    """The packet socket, read on a thread of its own into the handoff. It sleeps in `select` on the socket and
    a wake-up pipe (so `stop` is prompt), then reads until the socket is empty; asked to stop, it reads what the
    kernel holds already. It owns the socket and closes it when it stops; an error while reading ends it (`error`)
    and wakes the loop. The kernel's drop counter is read after each run of packets."""

    def __init__(self, sock: Any, linktype: int, handoff: _Handoff, stats: CaptureStats,
                 clock: Callable[[], float]) -> None:
        self._sock = sock
        self._clock = clock
        self._linktype = linktype
        self._handoff = handoff
        self._stats = stats
        self._stopping = False
        self._wake_read, self._wake_write = os.pipe()
        self._thread = threading.Thread(target=self._run, name=f"capture-{sock.iface}", daemon=True)
        self.error: Exception | None = None

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        os.write(self._wake_write, b"x")
        self._thread.join()
        os.close(self._wake_read)
        os.close(self._wake_write)
        self._sock.close()

    def _run(self) -> None:
        fd = self._sock.ins.fileno()
        try:
            while not self._stopping:
                readable, _, _ = select.select([fd, self._wake_read], [], [], _POLL_S)
                if fd in readable:
                    self._read()
            self._read(final=True)  # what the kernel holds already, as far as the queue takes it
            self._count_kernel_drops()
        except Exception as exc:  # reported by `LiveCapture.run`, not lost in the thread
            self.error = exc
        finally:
            self._handoff.wake_threadsafe()

    def _read(self, *, final: bool = False) -> None:
        """Read until the socket is empty (or, unless `final`, the reader is asked to stop); a final read also
        ends at the first packet the queue refuses."""
        recv, put, stats, linktype, clock = (self._sock.recv_raw, self._handoff.put, self._stats, self._linktype,
                                             self._clock)
        while final or not self._stopping:
            try:
                _, data, timestamp = recv(SNAPLEN)
            except BlockingIOError:
                break
            if not data:  # on loopback: the outgoing copy of a packet read again as it comes in (old kernels)
                continue
            stats.packets += 1
            timestamp_us = round((clock() if timestamp is None else timestamp) * 1_000_000)  # the kernel's time
            if not put(Frame(stats.packets, timestamp_us, linktype, data)):
                stats.dropped += 1
                if final:
                    break
        self._count_kernel_drops()

    def _count_kernel_drops(self) -> None:
        _, drops = _PACKET_STATS.unpack(self._sock.ins.getsockopt(_SOL_PACKET, _PACKET_STATISTICS,
                                                                  _PACKET_STATS.size))
        self._stats.kernel_dropped += drops
