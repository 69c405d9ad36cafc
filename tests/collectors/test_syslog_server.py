"""Syslog over the network on loopback: framing as a pure function, then the server fed by the real `logger`
client (util-linux), raw UDP/TCP sockets and TLS."""

from __future__ import annotations

import asyncio
import socket
import ssl
import subprocess
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from collectors.syslog_server import Repeats, SyslogFrame, SyslogServer, split_frames
from tests.conftest import require_tool

RFC5424 = b"<34>1 2026-11-20T01:00:00.000Z web01 sshd 2211 - - Failed password for root from 203.0.113.9"


@pytest.mark.parametrize(("data", "frames", "rest"), [
    (b"5 hello6 world!", [b"hello", b"world!"], b""),
    (b"11 hello world9 partial", [b"hello world"], b"9 partial"),
    (b"<13>one\n<13>two\r\n<13>thr", [b"<13>one", b"<13>two"], b"<13>thr"),
    (b"<13>nul-terminated\x00<13>next\n", [b"<13>nul-terminated", b"<13>next"], b""),
    (b"3 abc<13>mixed\n", [b"abc", b"<13>mixed"], b""),
    (b"\n\n<13>after blank lines\n", [b"<13>after blank lines"], b""),
    (b"12", [], b"12"),
], ids=["octet-counted", "octet-partial", "newline", "nul", "mixed", "blank-lines", "count-only"])
def test_split_frames(data: bytes, frames: list[bytes], rest: bytes) -> None:
    got = split_frames(data)
    assert [f for f, _ in got.frames] == frames
    assert all(error is None for _, error in got.frames)
    assert got.rest == rest


def test_final_flushes_an_unterminated_line() -> None:
    assert split_frames(b"<13>last words", final=True).frames == [(b"<13>last words", None)]
    assert split_frames(b"<13>last words").frames == []


def test_oversized_frames_are_reported_not_dropped() -> None:
    counted = split_frames(b"20 " + b"x" * 20 + b"3 abc", max_frame=10)
    assert counted.frames == [(b"", "frame of 20 bytes exceeds the limit of 10"), (b"abc", None)]
    line = split_frames(b"<13>" + b"y" * 30 + b"\n<13>ok\n", max_frame=10)
    assert line.frames == [(b"<13>yyyyyy", "line exceeds the limit of 10 bytes (cut)"), (b"<13>ok", None)]
    unfinished = split_frames(b"<13>" + b"z" * 30, max_frame=10)
    assert unfinished.frames == [(b"<13>zzzzzz", "line exceeds the limit of 10 bytes (cut)")]
    assert (unfinished.rest, unfinished.skip_line) == (b"", True)


@pytest.mark.parametrize(("data", "message"), [
    (b"12x4 abcd", "octet count is not a number: b'12x4'"),
    (b"12345678901234567 x", "octet count not followed by a space"),
], ids=["not-a-number", "too-long"])
def test_broken_octet_counts_end_the_framing_after_the_good_frames(data: bytes, message: str) -> None:
    got = split_frames(b"2 ok" + data)
    assert got.frames == [(b"ok", None)]
    assert got.broken is not None
    assert got.broken.startswith(message)
    assert got.rest == data


# -- the server --------------------------------------------------------------------------------------------------


class Collected:
    def __init__(self) -> None:
        self.frames: list[SyslogFrame] = []
        self.changed = asyncio.Event()

    async def sink(self, frame: SyslogFrame) -> None:
        self.frames.append(frame)
        self.changed.set()

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[SyslogFrame]:
        async def until() -> None:
            while len(self.frames) < count:
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(until(), timeout)
        return self.frames


Served = tuple[SyslogServer, "Collected"]


def serve(test: Callable[[Served], Coroutine[Any, Any, None]]) -> None:
    """Run `test` against a server on free UDP and TCP ports of 127.0.0.1 (a 4 KiB frame limit)."""
    async def main() -> None:
        collected = Collected()
        server = SyslogServer(collected.sink, udp_port=0, tcp_port=0, max_frame=4096)
        await server.start()
        try:
            await test((server, collected))
        finally:
            await server.stop()
    asyncio.run(main())


def _logger(*args: str) -> None:
    require_tool("logger", "bsdutils")
    subprocess.run(["logger", *args], check=True, timeout=10)


def test_logger_over_tcp_with_octet_counting() -> None:
    async def test(served: Served) -> None:
        server, collected = served
        await asyncio.to_thread(_logger, "-n", "127.0.0.1", "-P", str(server.ports["tcp"]), "-T", "--octet-count",
                                "--rfc5424", "-t", "sshd", "Failed password for root from 203.0.113.9 port 4022 ssh2")
        (frame,) = await collected.wait_for(1)
        assert frame.transport == "tcp"
        assert frame.peer == "127.0.0.1"
        assert frame.error is None
        assert frame.data.startswith(b"<13>1 ")  # user.notice, RFC 5424
        assert frame.data.endswith(b"Failed password for root from 203.0.113.9 port 4022 ssh2")
    serve(test)



def test_logger_over_udp_and_tcp_newline_framing() -> None:
    async def test(served: Served) -> None:
        server, collected = served
        await asyncio.to_thread(_logger, "-n", "127.0.0.1", "-P", str(server.ports["udp"]), "-d", "--rfc3164",
                                "-p", "auth.warning", "-t", "sudo", "udp message")
        await asyncio.to_thread(_logger, "-n", "127.0.0.1", "-P", str(server.ports["tcp"]), "-T", "--rfc3164",
                                "-t", "su", "tcp message")
        frames = await collected.wait_for(2)
        by_transport = {f.transport: f for f in frames}
        assert by_transport["udp"].data.startswith(b"<36>")  # auth(4) * 8 + warning(4)
        assert by_transport["udp"].data.endswith(b"sudo: udp message")
        assert by_transport["tcp"].data.endswith(b"su: tcp message")
    serve(test)



def test_tcp_frames_split_across_writes_and_several_per_write() -> None:
    async def test(served: Served) -> None:
        server, collected = served
        reader, writer = await asyncio.open_connection("127.0.0.1", server.ports["tcp"])
        framed = f"{len(RFC5424)} ".encode() + RFC5424
        writer.write(framed[:10])
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(framed[10:] + framed + b"<13>Nov 20 01:00:00 web01 cron[1]: newline framed\n")
        await writer.drain()
        writer.close()
        frames = await collected.wait_for(3)
        assert [f.data for f in frames] == [RFC5424, RFC5424, b"<13>Nov 20 01:00:00 web01 cron[1]: newline framed"]
        assert server.metrics.tcp_frames == 3
        assert [f.repeat for f in frames] == [0, 1, 0]  # the second RFC5424 frame repeats the first
        del reader
    serve(test)


def test_identical_frames_of_a_sender_are_counted_over_udp_and_tcp() -> None:
    """Two identical lines in one second are two events: each frame says how many identical ones its sender sent
    before (`SyslogFrame.repeat`, hashed into the event id), counted across transports, per sender."""
    line = b"<38>Nov 20 01:00:02 web01 sshd[4001]: Connection closed by 198.51.100.23 port 40010 [preauth]"

    async def test(served: Served) -> None:
        server, collected = served
        _, writer = await asyncio.open_connection("127.0.0.1", server.ports["tcp"])
        writer.write(line + b"\n" + line + b"\n")
        await writer.drain()
        await collected.wait_for(2)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.sendto(line, ("127.0.0.1", server.ports["udp"]))
        frames = await collected.wait_for(3)
        writer.close()
        assert [(f.transport, f.repeat) for f in frames] == [("tcp", 0), ("tcp", 1), ("udp", 2)]
        assert server.repeats.count("192.0.2.9", line) == 0  # another sender starts at 0
    serve(test)


def test_repeats_are_counted_within_a_bounded_window() -> None:
    repeats = Repeats(window=3)
    assert [repeats.count("a", b"x") for _ in range(3)] == [0, 1, 2]
    for other in (b"1", b"2", b"3"):  # three more distinct frames push "x" out of the window
        repeats.count("a", other)
    assert repeats.count("a", b"x") == 0



def test_a_broken_octet_count_becomes_a_dead_letter_and_closes_the_stream() -> None:
    async def test(served: Served) -> None:
        server, collected = served
        reader, writer = await asyncio.open_connection("127.0.0.1", server.ports["tcp"])
        writer.write(b"5 hello12x4 abcd")
        await writer.drain()
        frames = await collected.wait_for(2)
        assert frames[0].data == b"hello"
        assert frames[1].error == "octet count is not a number: b'12x4'; connection closed"
        assert await asyncio.wait_for(reader.read(), 5) == b""  # the server closed it
        writer.close()
    serve(test)



def test_a_bulk_sink_takes_the_frames_of_each_read_in_one_call() -> None:
    bulks: list[list[SyslogFrame]] = []

    async def per_frame(frame: SyslogFrame) -> None:
        raise AssertionError(f"the per-frame sink was called with {frame}")

    async def bulk(frames: list[SyslogFrame]) -> None:
        bulks.append(frames)

    async def main() -> None:
        server = SyslogServer(per_frame, udp_port=None, tcp_port=0, bulk_sink=bulk, clock=lambda: 1234,
                              timezone="Asia/Ho_Chi_Minh")
        await server.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.ports["tcp"])
            messages = [f"<13>Nov 20 01:00:{i:02d} web01 cron[1]: job {i}".encode() for i in range(40)]
            writer.write(b"".join(f"{len(m)} ".encode() + m for m in messages) + b"5 hello12x4 abcd")
            await writer.drain()
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed after the broken count
            writer.close()
        finally:
            await server.stop()
        frames = [frame for frames in bulks for frame in frames]
        assert [f.data for f in frames] == [*messages, b"hello", b"12x4 abcd"]
        assert frames[-1].error == "octet count is not a number: b'12x4'; connection closed"
        assert all(f.error is None for f in frames[:-1])
        assert {(f.peer, f.transport, f.received_ms, f.tz) for f in frames} == {
            ("127.0.0.1", "tcp", 1234, "Asia/Ho_Chi_Minh")}
        assert len(bulks) < len(frames)  # one call per read, not per frame
        assert (server.metrics.tcp_frames, server.metrics.framing_errors) == (41, 1)

    asyncio.run(main())


def test_an_oversized_udp_datagram_is_kept_as_an_error() -> None:
    async def test(served: Served) -> None:
        server, collected = served
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"<13>" + b"a" * 5000, ("127.0.0.1", server.ports["udp"]))
        (frame,) = await collected.wait_for(1)
        assert frame.error == "datagram of 5004 bytes exceeds the limit of 4096"
        assert len(frame.data) == 4096
    serve(test)



def test_a_full_pipeline_counts_the_udp_datagrams_it_cannot_take() -> None:
    asyncio.run(_full_pipeline())


async def _full_pipeline() -> None:
    taken: list[SyslogFrame] = []

    def try_sink(frame: SyslogFrame) -> bool:
        if len(taken) >= 2:
            return False
        taken.append(frame)
        return True

    async def never(_: SyslogFrame) -> None:
        raise AssertionError("UDP goes to try_sink")

    server = SyslogServer(never, udp_port=0, tcp_port=None, try_sink=try_sink)
    await server.start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for i in range(5):
                sock.sendto(f"<13>message {i}".encode(), ("127.0.0.1", server.ports["udp"]))
        for _ in range(100):
            if server.metrics.udp_datagrams == 5:
                break
            await asyncio.sleep(0.02)
    finally:
        await server.stop()
    assert server.metrics.udp_datagrams == 5
    assert len(taken) == 2
    assert server.metrics.udp_dropped == 3


def _tls_contexts(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    require_tool("openssl", "openssl")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(cert))
    return server, client


def test_tls_with_octet_counting(tmp_path: Path) -> None:
    server_ctx, client_ctx = _tls_contexts(tmp_path)
    asyncio.run(_tls(server_ctx, client_ctx))


async def _tls(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> None:
    collected = Collected()
    server = SyslogServer(collected.sink, udp_port=None, tcp_port=None, tls_port=0, tls=server_ctx)
    await server.start()
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", server.ports["tls"], ssl=client_ctx)
        writer.write(f"{len(RFC5424)} ".encode() + RFC5424)
        await writer.drain()
        (frame,) = await collected.wait_for(1)
        writer.close()
    finally:
        await server.stop()
    assert (frame.transport, frame.data) == ("tls", RFC5424)


def test_a_tls_port_needs_a_context() -> None:
    sink: Callable[[SyslogFrame], object] = print
    with pytest.raises(ValueError, match="a TLS port needs an SSL context"):
        SyslogServer(sink, tls_port=6514)  # type: ignore[arg-type]
