"""Syslog over the network: UDP (RFC 5426), TCP (RFC 6587: octet counting or newline framing, told apart per
frame) and TLS (RFC 5425, octet counting). An asyncio server that hands every message, with its peer and the time
it arrived, to an async sink; parsing the message is the next stage's job (`collectors.syslog_parse`).

Framing is a pure function (`split_frames`). Backpressure: a TCP connection is read only as fast as the sink
takes its frames (the sink awaits a bounded queue), so a slow pipeline slows senders down. UDP cannot be slowed:
datagrams that arrive while the sink is full are counted (`SyslogMetrics.udp_dropped`) and logged once a minute,
never dropped silently. A frame that breaks the framing (a length that is not a number, a frame over
`max_frame` bytes) is handed on as a `SyslogFrame` with its `error`, so it ends as a dead letter; an octet-counted
stream that cannot be resynchronised is closed.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from collectors.syslog_file import REPEAT_WINDOW

__all__ = ["Framed", "Repeats", "SyslogFrame", "SyslogMetrics", "SyslogServer", "split_frames"]

log = logging.getLogger(__name__)

MAX_FRAME: Final = 64 * 1024  # bytes; RFC 5425 asks receivers to take at least 8 KiB
_MAX_LENGTH_DIGITS: Final = 10
_READ_SIZE: Final = 64 * 1024


class SyslogFrame(NamedTuple):
    """One message as it arrived. A named tuple: frames are made, queued and pickled to the detection workers by
    the thousand, and a tuple costs a fraction of a frozen dataclass each time."""

    data: bytes  # the message, framing removed (a trailing CR/LF or NUL stripped)
    peer: str  # the sender's address (IP, without the port)
    transport: str  # udp | tcp | tls
    received_ms: int
    error: str | None = None  # why the frame is not a message (oversized, ...): a dead letter
    tz: str | None = None  # IANA zone of timestamps without an offset (RFC 3164's local time); None: UTC
    repeat: int = 0  # identical frames from this sender before it, among its recent distinct ones (`Repeats`)


class Repeats:
    """How many identical frames each sender sent before, among the last `window` distinct (sender, message)
    pairs. The event id hashes the sender and the message with the time, to the second for RFC 3164: two
    identical lines in one second (the same failure twice) would be one event, so the n-th repeat hashes with
    its count, as `collectors.syslog_file` does for a file's lines."""

    def __init__(self, window: int) -> None:
        self.window = window
        self._seen: OrderedDict[tuple[str, bytes], int] = OrderedDict()

    def count(self, peer: str, data: bytes) -> int:
        key = (peer, data)
        seen = self._seen
        times = seen.get(key)
        if times is None:
            seen[key] = 1
            if len(seen) > self.window:
                seen.popitem(last=False)
            return 0
        seen[key] = times + 1
        seen.move_to_end(key)
        return times


@dataclass
class SyslogMetrics:
    udp_datagrams: int = 0
    udp_dropped: int = 0  # arrived while the sink was full
    tcp_connections: int = 0
    tcp_frames: int = 0
    framing_errors: int = 0
    open_connections: int = 0
    last_drop_log: float = field(default=0.0, repr=False)


class Framed(NamedTuple):
    frames: list[tuple[bytes, str | None]]  # (message, error or None)
    rest: bytes  # an incomplete frame, to be completed by the next bytes
    skip_line: bool = False  # an oversized line was cut: drop what follows up to its end before framing again
    broken: str | None = None  # an octet count that cannot be read: the stream cannot continue after `frames`


def split_frames(buffer: bytes, *, max_frame: int = MAX_FRAME, final: bool = False) -> Framed:
    """Complete frames at the start of `buffer` and what is left.

    A frame starting with a digit is octet-counted (``LEN SP MSG``); any other is newline-terminated (LF, also
    NUL as some senders use; a CR before the LF is dropped). A newline frame longer than `max_frame` is cut and
    reported; an octet count over `max_frame` is reported and its bytes skipped. `final`: the stream has ended,
    so a last unterminated newline frame counts as a frame. Raises `FramingError` when an octet count is not a
    number (the stream cannot be resynchronised)."""
    frames: list[tuple[bytes, str | None]] = []
    pos, size = 0, len(buffer)
    while pos < size:
        first = buffer[pos]
        if 0x30 <= first <= 0x39:  # octet counting
            space = buffer.find(b" ", pos, pos + _MAX_LENGTH_DIGITS + 1)
            if space < 0:
                if size - pos > _MAX_LENGTH_DIGITS:
                    return Framed(frames, buffer[pos:],
                                  broken=f"octet count not followed by a space: {buffer[pos:pos + 16]!r}")
                break
            digits = buffer[pos:space]
            if not digits.isdigit():
                return Framed(frames, buffer[pos:], broken=f"octet count is not a number: {digits[:16]!r}")
            length = int(digits)
            end = space + 1 + length
            if length > max_frame:
                if end > size:
                    break  # wait until the whole oversized frame is here, then skip it
                frames.append((b"", f"frame of {length} bytes exceeds the limit of {max_frame}"))
                pos = end
                continue
            if end > size:
                break
            frames.append((buffer[space + 1:end].rstrip(b"\r\n"), None))
            pos = end
            continue
        newline = _line_end(buffer, pos)
        if newline < 0:
            if size - pos > max_frame:
                frames.append((buffer[pos:pos + max_frame], f"line exceeds the limit of {max_frame} bytes (cut)"))
                cut = _line_end(buffer, pos + max_frame)
                if cut < 0:  # the rest of this line is still to come
                    return Framed(frames, b"", skip_line=not final)
                pos = cut + 1
                continue
            if final and pos < size:
                frames.append((buffer[pos:].rstrip(b"\r"), None))
                pos = size
            break
        line = buffer[pos:newline].rstrip(b"\r")
        if len(line) > max_frame:
            frames.append((line[:max_frame], f"line exceeds the limit of {max_frame} bytes (cut)"))
        elif line:
            frames.append((line, None))
        pos = newline + 1
    return Framed(frames, buffer[pos:])


def _line_end(buffer: bytes, start: int) -> int:
    lf = buffer.find(b"\n", start)
    nul = buffer.find(b"\x00", start, lf if lf >= 0 else len(buffer))
    return nul if nul >= 0 else lf


Sink = Callable[[SyslogFrame], Coroutine[Any, Any, None]]
BulkSink = Callable[[list[SyslogFrame]], Coroutine[Any, Any, None]]


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: SyslogServer) -> None:
        self.server = server

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.server.take_datagram(data, str(addr[0]))


class SyslogServer:
    """UDP, TCP and (with `tls`) TLS listeners on `host`; port 0 picks a free port (`ports` after `start`).
    `sink` is awaited for each frame; `try_sink` (optional, non-blocking, returns False when full) takes UDP
    datagrams; `bulk_sink` (optional) is awaited instead of `sink` with all the frames one read of a TCP or TLS
    connection completed, in order (one hand-over per read instead of one per message: at thousands of messages
    a second the hand-over is most of the listener's cost)."""

    def __init__(self, sink: Sink, *, host: str = "127.0.0.1", udp_port: int | None = 5514,
                 tcp_port: int | None = 5514, tls_port: int | None = None, tls: ssl.SSLContext | None = None,
                 try_sink: Callable[[SyslogFrame], bool] | None = None, max_frame: int = MAX_FRAME,
                 clock: Callable[[], int] = _now_ms, timezone: str | None = None,
                 bulk_sink: BulkSink | None = None) -> None:
        if tls_port is not None and tls is None:
            raise ValueError("a TLS port needs an SSL context")
        self.sink = sink
        self.try_sink = try_sink
        self.bulk_sink = bulk_sink
        self.host = host
        self.max_frame = max_frame
        self.clock = clock
        self.timezone = timezone  # stamped on every frame: the zone of the senders' local timestamps
        self.metrics = SyslogMetrics()
        self.repeats = Repeats(REPEAT_WINDOW)
        self._wanted = {"udp": udp_port, "tcp": tcp_port, "tls": tls_port}
        self._tls = tls
        self.ports: dict[str, int] = {}
        self._udp: asyncio.DatagramTransport | None = None
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self._wanted["udp"] is not None:
            transport, _ = await loop.create_datagram_endpoint(lambda: _UdpProtocol(self),
                                                               local_addr=(self.host, self._wanted["udp"]))
            self._udp = transport
            self.ports["udp"] = transport.get_extra_info("sockname")[1]
        for name in ("tcp", "tls"):
            port = self._wanted[name]
            if port is None:
                continue
            context = self._tls if name == "tls" else None
            server = await asyncio.start_server(functools.partial(self._connection, transport=name), self.host,
                                                port, ssl=context, limit=_READ_SIZE)
            self._servers.append(server)
            self.ports[name] = server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening, let open connections hand on what they have read, then close them."""
        if self._udp is not None:
            self._udp.close()
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()

    def take_datagram(self, data: bytes, peer: str) -> None:
        self.metrics.udp_datagrams += 1
        frame = self._frame(data.rstrip(b"\r\n\x00"), peer, "udp")
        if self.try_sink is not None:
            if not self.try_sink(frame):
                self._dropped()
            return
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(self.sink(frame))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _frame(self, data: bytes, peer: str, transport: str, error: str | None = None) -> SyslogFrame:
        if error is None and len(data) > self.max_frame:
            error = f"datagram of {len(data)} bytes exceeds the limit of {self.max_frame}"
            data = data[: self.max_frame]
        if error is not None:
            self.metrics.framing_errors += 1
            return SyslogFrame(data, peer, transport, self.clock(), error, self.timezone)
        return SyslogFrame(data, peer, transport, self.clock(), None, self.timezone, self.repeats.count(peer, data))

    def _frames(self, framed: list[tuple[bytes, str | None]], peer: str, transport: str) -> list[SyslogFrame]:
        """The frames of one read: received at one time."""
        metrics = self.metrics
        metrics.tcp_frames += len(framed)
        received, zone, repeats = self.clock(), self.timezone, self.repeats.count
        frames = []
        for data, error in framed:
            if error is not None:
                metrics.framing_errors += 1
                frames.append(SyslogFrame(data, peer, transport, received, error, zone))
            else:
                frames.append(SyslogFrame(data, peer, transport, received, None, zone, repeats(peer, data)))
        return frames

    async def _hand_on(self, frames: list[SyslogFrame]) -> None:
        if self.bulk_sink is not None:
            await self.bulk_sink(frames)
            return
        for frame in frames:
            await self.sink(frame)

    def _dropped(self) -> None:
        metrics = self.metrics
        metrics.udp_dropped += 1
        now = time.monotonic()
        if now - metrics.last_drop_log >= 60:
            metrics.last_drop_log = now
            log.warning("syslog UDP: the pipeline is full; %d datagrams dropped so far (UDP cannot be slowed "
                        "down: use TCP for senders that must not lose messages)", metrics.udp_dropped)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, transport: str) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        peername = writer.get_extra_info("peername")
        peer = str(peername[0]) if peername else "unknown"
        metrics = self.metrics
        metrics.tcp_connections += 1
        metrics.open_connections += 1
        buffer = b""
        skipping = False
        try:
            while True:
                chunk = await reader.read(_READ_SIZE)
                final = not chunk
                buffer += chunk
                if skipping:  # the rest of an oversized line
                    end = _line_end(buffer, 0)
                    if end < 0:
                        buffer = b""
                        if final:
                            break
                        continue
                    buffer, skipping = buffer[end + 1:], False
                frames, buffer, skipping, broken = split_frames(buffer, max_frame=self.max_frame, final=final)
                taken = self._frames(frames, peer, transport)
                if broken is not None:
                    taken.append(self._frame(buffer[:256], peer, transport, f"{broken}; connection closed"))
                if taken:
                    await self._hand_on(taken)
                if broken is not None:
                    break
                if final:
                    break
        except (ConnectionError, ssl.SSLError) as exc:
            log.info("syslog %s connection from %s ended: %s", transport, peer, exc)
        finally:
            metrics.open_connections -= 1
            writer.close()
            if task is not None:
                self._tasks.discard(task)
