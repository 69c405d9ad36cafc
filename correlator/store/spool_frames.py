"""The spool's frame format (see `correlator.store.spool` for the layout): encoding, reading and checking frames,
and the spool's errors. Pure functions over bytes and open files."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

from correlator.store.errors import StoreError

__all__ = [
    "FRAME_HEADER_SIZE",
    "MAGIC",
    "MAX_ITEM_BYTES",
    "BadFrame",
    "FrameHeader",
    "SpoolCorruptError",
    "SpoolError",
    "SpoolFullError",
    "SpoolLockedError",
    "decode_items",
    "encode_frame",
    "parse_header",
    "read_frame",
    "valid_frame_after",
]

MAX_ITEM_BYTES: Final = 0xFFFF_FFFF
MAGIC: Final = b"SPL1"
_HEAD: Final = struct.Struct("<4sIQI")  # magic, count, length, body CRC: what the header CRC covers
_CRC: Final = struct.Struct("<I")
_ITEM_LENGTH: Final = struct.Struct("<I")
FRAME_HEADER_SIZE: Final = _HEAD.size + _CRC.size  # 24


class SpoolError(StoreError):
    """Root of the spool's errors; an `OSError` from the spool's files is wrapped in it."""


class SpoolFullError(SpoolError):
    """An append refused because the pending items plus the batch would exceed `max_bytes`; nothing was written."""

    def __init__(self, directory: Path, limit: int, pending_bytes: int, batch_bytes: int) -> None:
        self.directory = directory
        self.limit = limit
        self.pending_bytes = pending_bytes
        self.batch_bytes = batch_bytes
        super().__init__(
            f"{directory}: spool full: {pending_bytes} bytes pending + {batch_bytes} in this batch would exceed "
            f"the limit of {limit} bytes; nothing was written. Keep the batch and retry after the pending items "
            f"have been replayed (peek + commit), or raise the spool's max_bytes"
        )


class SpoolCorruptError(SpoolError):
    """Damaged spool contents other than a torn last write: the file, the byte offset (when one applies), why."""

    def __init__(self, path: Path, offset: int | None, reason: str) -> None:
        self.path = path
        self.offset = offset
        self.reason = reason
        where = f"{path}: corrupt frame at offset {offset}" if offset is not None else str(path)
        super().__init__(f"{where}: {reason}")


class SpoolLockedError(SpoolError):
    """The spool directory is already open (in another process, or elsewhere in this one)."""


@dataclass(frozen=True, slots=True)
class FrameHeader:
    count: int
    length: int
    body_crc: int

    @property
    def size(self) -> int:
        return FRAME_HEADER_SIZE + self.length

    @property
    def payload(self) -> int:
        return self.length - _ITEM_LENGTH.size * self.count


class BadFrame(Exception):  # noqa: N818 - internal signal, converted to SpoolCorruptError or a truncation
    """`at_tail`: True if the frame may be a torn last write, None if only the data after it can tell."""

    def __init__(self, reason: str, at_tail: bool | None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.at_tail = at_tail


def encode_frame(items: Sequence[bytes]) -> bytes:
    parts: list[bytes] = []
    for item in items:
        parts.append(_ITEM_LENGTH.pack(len(item)))
        parts.append(item)
    body = b"".join(parts)
    head = _HEAD.pack(MAGIC, len(items), len(body), zlib.crc32(body))
    return head + _CRC.pack(zlib.crc32(head)) + body


def parse_header(raw: bytes) -> FrameHeader | None:
    """The header in `raw` (FRAME_HEADER_SIZE bytes), or None if its magic or checksum is wrong."""
    magic, count, length, body_crc = _HEAD.unpack_from(raw)
    (crc,) = _CRC.unpack_from(raw, _HEAD.size)
    if magic != MAGIC or crc != zlib.crc32(raw[: _HEAD.size]):
        return None
    return FrameHeader(count, length, body_crc)


def read_frame(file: BinaryIO, offset: int, end: int) -> tuple[FrameHeader, bytes]:
    """The verified frame at `offset` of a file whose valid data ends at `end`; `BadFrame` if it is not one."""
    file.seek(offset)
    raw = file.read(FRAME_HEADER_SIZE)
    if len(raw) < FRAME_HEADER_SIZE or offset + FRAME_HEADER_SIZE > end:
        raise BadFrame(f"incomplete frame header ({end - offset} of {FRAME_HEADER_SIZE} bytes)", at_tail=True)
    header = parse_header(raw)
    if header is None:
        raise BadFrame("bad frame header (wrong magic or header checksum)", at_tail=None)
    if offset + header.size > end:
        raise BadFrame(f"frame of {header.size} bytes runs past the end of the data ({end} bytes)", at_tail=True)
    body = file.read(header.length)
    computed = zlib.crc32(body)
    if len(body) != header.length or computed != header.body_crc:
        raise BadFrame(
            f"payload checksum mismatch (stored {header.body_crc:#010x}, computed {computed:#010x})",
            at_tail=offset + header.size == end,
        )
    return header, body


def decode_items(body: bytes, count: int, path: Path, offset: int) -> list[bytes]:
    items: list[bytes] = []
    pos = 0
    for _ in range(count):
        if pos + _ITEM_LENGTH.size > len(body):
            break
        (length,) = _ITEM_LENGTH.unpack_from(body, pos)
        pos += _ITEM_LENGTH.size
        items.append(body[pos : pos + length])
        pos += length
    if len(items) != count or pos != len(body):
        raise SpoolCorruptError(path, offset, f"frame body does not hold the {count} items its header declares")
    return items


def valid_frame_after(file: BinaryIO, start: int, end: int) -> bool:
    """Whether a whole, valid frame begins anywhere in [start, end) (used to tell a torn tail from damage)."""
    file.seek(start)
    data = file.read(end - start)
    at = data.find(MAGIC)
    while at >= 0 and at + FRAME_HEADER_SIZE <= len(data):
        header = parse_header(data[at : at + FRAME_HEADER_SIZE])
        if header is not None and at + header.size <= len(data):
            body = data[at + FRAME_HEADER_SIZE : at + header.size]
            if zlib.crc32(body) == header.body_crc:
                return True
        at = data.find(MAGIC, at + 1)
    return False
