"""One direction of a TCP connection as a byte stream: segments in, contiguous new bytes out.

    stream = TcpStream(max_pending_bytes=4 << 20)
    data = stream.segment(seq, payload, syn=bool(flags & SYN))  # b"" while a gap is open

Segments are placed by sequence number (32-bit, wrapping): a retransmission or the overlapping part of a
segment is dropped (the first copy wins), a segment after a gap waits until the gap fills. Without a SYN the
stream starts at the first segment seen. When more than `max_pending_bytes` wait behind a gap the stream gives
up (`broken`), since the missing bytes will not come (a capture drop).
"""

from __future__ import annotations

__all__ = ["TcpStream"]

_MOD = 1 << 32
_HALF = 1 << 31


def _distance(seq: int, base: int) -> int:
    """`seq - base` in sequence space: negative when `seq` lies before `base` (within 2 GiB)."""
    delta = (seq - base) % _MOD
    return delta - _MOD if delta >= _HALF else delta


class TcpStream:
    """The reassembler of one direction. `delivered` counts the bytes handed out."""

    __slots__ = ("broken", "delivered", "max_pending_bytes", "next_seq", "pending", "pending_bytes")

    def __init__(self, *, max_pending_bytes: int = 4 << 20) -> None:
        self.max_pending_bytes = max_pending_bytes
        self.next_seq: int | None = None
        self.pending: dict[int, bytes] = {}
        self.pending_bytes = 0
        self.delivered = 0
        self.broken = False

    def segment(self, seq: int, payload: bytes, *, syn: bool = False) -> bytes:
        """The bytes this segment makes contiguous (its own new bytes and any waiting ones it joins)."""
        if self.broken:
            return b""
        if syn:
            if self.next_seq is None:
                self.next_seq = (seq + 1) % _MOD
            seq = (seq + 1) % _MOD  # data on a SYN (TCP Fast Open) starts after it
        if not payload:
            return b""
        if self.next_seq is None:
            self.next_seq = seq
        ahead = _distance(seq, self.next_seq)
        if ahead > 0:
            if len(payload) > len(self.pending.get(seq, b"")):
                self.pending_bytes += len(payload) - len(self.pending.get(seq, b""))
                self.pending[seq] = payload
                if self.pending_bytes > self.max_pending_bytes:
                    self.broken = True
                    self.pending.clear()
            return b""
        data = payload[-ahead:]  # ahead <= 0: skip what the stream already has
        if not data:
            return b""  # a retransmission of bytes already delivered
        self._advance(len(data))
        if self.pending:
            data += self._join()
        return data

    def _advance(self, size: int) -> None:
        assert self.next_seq is not None
        self.next_seq = (self.next_seq + size) % _MOD
        self.delivered += size

    def _join(self) -> bytes:
        """Waiting segments that now touch the stream's end, in order, minus what was already delivered."""
        joined = bytearray()
        progress = True
        while progress and self.pending:
            progress = False
            for seq in sorted(self.pending, key=lambda s: _distance(s, self.next_seq or 0)):
                assert self.next_seq is not None
                ahead = _distance(seq, self.next_seq)
                if ahead > 0:
                    break
                payload = self.pending.pop(seq)
                self.pending_bytes -= len(payload)
                fresh = payload[-ahead:]  # ahead <= 0: skip what the stream already has
                if fresh:
                    joined += fresh
                    self._advance(len(fresh))
                progress = True
        return bytes(joined)
