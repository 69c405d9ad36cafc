"""Packet captures (pcap, pcapng) to network events: the network sensor's offline path.

    for item in read_file(Path("capture.pcapng")):
        ...  # Event -> rules, Rejected -> dead-letter store
    for item in read_file(Path("capture.pcap"), carve=True):
        ...  # as above; an HTTP event also carries its response body (de-chunked) as `payload`, for YARA

The stages: frames from a `PacketSource` -> `NetworkSensor` (flow, DNS, HTTP and TLS records, in capture-time
order; collectors.pcap_sensor) -> `record_event` (ECS; collectors.pcap_ecs). This module is the I/O shell: a file
is read streaming with scapy's raw readers (no dissection; memory holds the open flows, not the file, and when
carving the bodies of the records the sensor holds back for time order, each at most `max_body_bytes`). A live
interface feeds the same stages from `collectors.pcap_live.LiveCapture` (async, ticked on quiet links).

A capture that ends inside a record, or holds a corrupt block, gives the events of what was read and then one
`Rejected` saying where reading stopped. Nothing raises for bad content.
"""

from __future__ import annotations

import dataclasses
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from collectors.errors import CollectorError
from collectors.pcap_ecs import record_event
from collectors.pcap_packets import Frame
from collectors.pcap_sensor import NetworkRecord, NetworkSensor, SensorConfig
from correlator.model import Event, EventOrigin, Rejected

__all__ = ["FORMAT", "CaptureFile", "CaptureReadError", "PacketSource", "analyse", "read_capture", "read_file",
           "read_http_bodies", "sniff"]

FORMAT = "pcap"

_PCAP_MAGICS = frozenset({b"\xa1\xb2\xc3\xd4", b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\x3c\x4d", b"\x4d\x3c\xb2\xa1"})
_PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
_PCAPNG_PACKET_BLOCKS = frozenset({2, 3, 6})  # obsolete packet, simple packet, enhanced packet
_PCAP_RECORD_HEADER = 16


class CaptureReadError(CollectorError):
    """A capture that cannot be read on (not a capture, cut short, a corrupt block). The frames before it were
    delivered; `record_id` is the number of the packet where reading stopped."""


class PacketSource(Protocol):
    """Where frames come from: a capture file now, a live interface later. `frames` yields them in capture
    order and raises `CaptureReadError` when it cannot go on."""

    @property
    def name(self) -> str: ...

    def frames(self) -> Iterator[Frame]: ...


def sniff(head: bytes) -> bool:
    """Whether a file's first bytes are a capture: the pcap magic (micro- or nanosecond, either byte order) or
    a pcapng section header."""
    return head[:4] in _PCAP_MAGICS or head[:4] == _PCAPNG_MAGIC


def read_file(path: Path, config: SensorConfig | None = None, *, carve: bool = False) -> Iterator[Event | Rejected]:
    """Every flow, DNS message, HTTP transaction and TLS ClientHello of a capture file as an `Event`, then a
    `Rejected` for what could not be read (see `analyse`): never raises for bad content. With `carve` (or
    `config.carve_bodies`) an HTTP event carries its response body as `payload` for the YARA stage (at most
    `config.max_body_bytes` of it)."""
    return read_capture(CaptureFile(path), config, carve=carve)


def read_capture(source: PacketSource, config: SensorConfig | None = None, *,
                 carve: bool = False) -> Iterator[Event | Rejected]:
    """`read_file` for any `PacketSource`."""
    if carve:
        config = dataclasses.replace(config or SensorConfig(), carve_bodies=True)
    for item in analyse(source, config):
        if isinstance(item, NetworkRecord):
            yield record_event(item, _origin(source, item.packet_number))
        else:
            yield item


def read_http_bodies(path: Path, config: SensorConfig | None = None) -> Iterator[tuple[Event, bytes]]:
    """The HTTP transactions of a capture file that have a response body, as (http event, body) pairs: the
    body de-chunked (content codings such as gzip are left as sent), at most `config.max_body_bytes` of it
    (the event's `file.hash.sha256` and `file.size` are of the whole body). Read problems are left out: use
    `read_file` for those."""
    for item in read_file(path, config, carve=True):
        if isinstance(item, Event) and item.payload is not None:
            yield item, item.payload


def analyse(source: PacketSource, config: SensorConfig | None = None) -> Iterator[NetworkRecord | Rejected]:
    """The sensor over a source: its records in capture-time order, then a `Rejected` for each link type it
    could not decode (with the number of frames) and one if reading stopped early (the records of everything
    read before still come)."""
    sensor = NetworkSensor(config)
    problem: Rejected | None = None
    try:
        for frame in source.frames():
            yield from sensor.feed(frame)
    except CaptureReadError as exc:
        problem = Rejected(exc.reason, EventOrigin(path=source.name, record_id=exc.record_id, format=FORMAT))
    yield from sensor.finish()
    where = EventOrigin(path=source.name, format=FORMAT)
    if sensor.stats.bad_timestamps:
        yield Rejected(f"{sensor.stats.bad_timestamps} frames skipped: capture time out of range (corrupt records)",
                       where)
    for linktype, count in sorted(sensor.stats.unsupported_linktypes.items()):
        yield Rejected(f"{count} frames of link type {linktype} not decoded (the sensor reads Ethernet, Linux "
                       "cooked capture, BSD loopback and raw IP)", where, stage="normalise")
    if problem is not None:
        yield problem


def _origin(source: PacketSource, packet_number: int) -> EventOrigin:
    return EventOrigin(path=source.name, record_id=packet_number, format=FORMAT)


# --- capture files (scapy) ----------------------------------------------------------------------------------------


class CaptureFile:
    """A pcap or pcapng file (scapy's streaming raw readers; gzip-compressed captures too) as a `PacketSource`.
    Frames are numbered from 1 in file order."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    @property
    def name(self) -> str:
        return str(self.path)

    def frames(self) -> Iterator[Frame]:
        from scapy.utils import RawPcapNgReader

        try:
            with self.path.open("rb") as handle:
                reader = self._reader(handle)
                if isinstance(reader, RawPcapNgReader):
                    yield from self._pcapng_frames(reader, handle)
                else:
                    yield from self._pcap_frames(reader)
        except OSError as exc:
            raise CaptureReadError(f"cannot read file: {exc.strerror or exc}", path=self.name) from exc

    def _reader(self, handle: BinaryIO) -> Any:
        from scapy.error import Scapy_Exception
        from scapy.utils import RawPcapReader

        head = handle.read(4)
        handle.seek(0)
        open_reader: Any = RawPcapReader  # typed for file names; it takes an open file too
        try:
            return open_reader(handle)  # a pcapng file gets a RawPcapNgReader
        except Scapy_Exception as exc:
            reason = "capture file header is cut short or corrupt" if sniff(head) else \
                f"not a pcap or pcapng file: {exc}"
            raise CaptureReadError(reason, path=self.name) from None

    def _pcap_frames(self, reader: Any) -> Iterator[Frame]:
        stream = reader.f
        linktype = int(reader.linktype)
        divisor = 1000 if reader.nano else 1
        number = 0
        while True:
            start = stream.tell()
            try:
                data, meta = next(reader)
            except StopIteration:
                leftover = stream.tell() - start
                if leftover:
                    raise CaptureReadError(
                        f"capture cut short: {leftover} bytes after packet {number} are not a whole record header",
                        path=self.name, record_id=number + 1) from None
                return
            number += 1
            if stream.tell() - start < _PCAP_RECORD_HEADER + meta.caplen:
                got = stream.tell() - start - _PCAP_RECORD_HEADER
                raise CaptureReadError(f"capture cut short: packet {number} has {got} of its {meta.caplen} bytes",
                                       path=self.name, record_id=number)
            yield Frame(number, meta.sec * 1_000_000 + meta.usec // divisor, linktype, data)

    def _pcapng_frames(self, reader: Any, handle: BinaryIO) -> Iterator[Frame]:
        stream = reader.f
        number = 0
        while True:
            start = stream.tell()
            try:
                data, meta = next(reader)
            except StopIteration:
                problem = _pcapng_problem(handle, start, reader.endian) if stream is handle else None
                if problem is not None:
                    raise CaptureReadError(f"{problem} (after packet {number})", path=self.name,
                                           record_id=number + 1) from None
                return
            number += 1
            timestamp_us = ((meta.tshigh << 32) | meta.tslow) * 1_000_000 // meta.tsresol
            yield Frame(number, timestamp_us, int(meta.linktype), data)


def _pcapng_problem(handle: BinaryIO, start: int, endian: str) -> str | None:
    """Why scapy stopped reading a pcapng file at `start`, or None when what is left is whole non-packet blocks
    (statistics, name resolution): each block's length is checked against the file and its trailing copy."""
    size = os.fstat(handle.fileno()).st_size
    offset = start
    handle.seek(start)
    while offset < size:
        head = handle.read(12)
        if len(head) < 12:
            return f"capture cut short: {len(head)}-byte block header at byte {offset}"
        if head[:4] == _PCAPNG_MAGIC:
            endian = ">" if head[8:12] == b"\x1a\x2b\x3c\x4d" else "<"
        block_type, length = struct.unpack(endian + "II", head[:8])
        if length < 12 or length % 4:
            return f"corrupt pcapng block at byte {offset}: length {length}"
        if offset + length > size:
            return f"capture cut short: block at byte {offset} has {size - offset} of its {length} bytes"
        body = head + handle.read(length - 12)
        if struct.unpack(endian + "I", body[-4:])[0] != length:
            return f"corrupt pcapng block at byte {offset}: its trailing length differs"
        if block_type in _PCAPNG_PACKET_BLOCKS:
            return f"unreadable pcapng packet block at byte {offset}"
        offset += length
    return None
