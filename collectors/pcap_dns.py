"""DNS messages (RFC 1035 wire format) to typed records: header, questions and the answer section.

    message = parse_dns(udp_payload)  # raises DnsFormatError for what is not a well-formed message

Names follow compression pointers (with a loop guard) and are returned without the trailing dot; bytes outside
printable ASCII are escaped (`\\xNN`). Answer data is rendered as in zone files for A, AAAA, CNAME, NS, PTR,
DNAME, MX, SRV, SOA and TXT; other types as hex.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass

__all__ = ["DnsAnswer", "DnsFormatError", "DnsMessage", "DnsQuestion", "parse_dns"]

TYPE_NAMES: dict[int, str] = {
    1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 10: "NULL", 12: "PTR", 13: "HINFO", 15: "MX", 16: "TXT", 28: "AAAA",
    33: "SRV", 35: "NAPTR", 39: "DNAME", 41: "OPT", 43: "DS", 46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 50: "NSEC3",
    64: "SVCB", 65: "HTTPS", 99: "SPF", 251: "IXFR", 252: "AXFR", 255: "ANY", 257: "CAA",
}
CLASS_NAMES: dict[int, str] = {1: "IN", 3: "CH", 4: "HS", 254: "NONE", 255: "ANY"}
RCODE_NAMES: dict[int, str] = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP",
                               5: "REFUSED", 6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH",
                               10: "NOTZONE"}
_FLAGS = ((0x0400, "AA"), (0x0200, "TC"), (0x0100, "RD"), (0x0080, "RA"), (0x0020, "AD"), (0x0010, "CD"))
_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")
_QUESTION = struct.Struct("!HH")
_MAX_JUMPS = 32


class DnsFormatError(ValueError):
    """The bytes are not a well-formed DNS message (cut short, a bad name, a pointer loop)."""


@dataclass(frozen=True, slots=True)
class DnsQuestion:
    name: str
    type: str
    class_: str


@dataclass(frozen=True, slots=True)
class DnsAnswer:
    name: str
    type: str
    class_: str
    ttl: int
    data: str


@dataclass(frozen=True, slots=True)
class DnsMessage:
    """A query (`response` False) or a response with its answer section (authority and additional sections are
    skipped). `flags` are the header flags set (AA, TC, RD, RA, AD, CD)."""

    id: int
    response: bool
    opcode: int
    rcode: str
    flags: tuple[str, ...]
    questions: tuple[DnsQuestion, ...]
    answers: tuple[DnsAnswer, ...]


def parse_dns(data: bytes) -> DnsMessage:
    """One DNS message. Raises `DnsFormatError` for bytes that are not one."""
    try:
        return _parse(data)
    except (IndexError, struct.error, ValueError) as exc:
        if isinstance(exc, DnsFormatError):
            raise
        raise DnsFormatError(f"malformed DNS message: {exc}") from None


def _parse(data: bytes) -> DnsMessage:
    if len(data) < 12:
        raise DnsFormatError(f"DNS header needs 12 bytes, got {len(data)}")
    ident, flags, qdcount, ancount, _, _ = _HEADER.unpack_from(data)
    offset = 12
    questions = []
    for _ in range(qdcount):
        name, offset = _name(data, offset)
        qtype, qclass = _QUESTION.unpack_from(data, offset)
        offset += 4
        questions.append(DnsQuestion(name, _type_name(qtype), _class_name(qclass)))
    answers = []
    for _ in range(ancount):
        name, offset = _name(data, offset)
        rtype, rclass, ttl, size = _RR.unpack_from(data, offset)
        offset += 10
        if offset + size > len(data):
            raise DnsFormatError("resource record data runs past the message")
        answers.append(DnsAnswer(name, _type_name(rtype), _class_name(rclass), ttl,
                                 _rdata(data, offset, size, rtype)))
        offset += size
    return DnsMessage(
        id=ident, response=bool(flags & 0x8000), opcode=flags >> 11 & 0xF, rcode=_rcode_name(flags & 0xF),
        flags=tuple(name for bit, name in _FLAGS if flags & bit), questions=tuple(questions),
        answers=tuple(answers))


def _name(data: bytes, offset: int) -> tuple[str, int]:
    """The name at `offset` and the offset after it (after the first pointer when compressed)."""
    labels: list[str] = []
    end: int | None = None
    jumps = 0
    size = 0
    while True:
        length = data[offset]
        if length & 0xC0 == 0xC0:
            if end is None:
                end = offset + 2
            jumps += 1
            if jumps > _MAX_JUMPS:
                raise DnsFormatError("compression pointer loop in a name")
            offset = (length & 0x3F) << 8 | data[offset + 1]
            continue
        if length & 0xC0:
            raise DnsFormatError(f"unsupported label type {length >> 6:#x}")
        offset += 1
        if not length:
            break
        label = data[offset:offset + length]
        if len(label) != length:
            raise DnsFormatError("name runs past the message")
        size += length + 1
        if size > 255:
            raise DnsFormatError("name longer than 255 bytes")
        labels.append(label.decode("ascii", "backslashreplace"))
        offset += length
    return ".".join(labels), end if end is not None else offset


def _rdata(data: bytes, offset: int, size: int, rtype: int) -> str:
    raw = data[offset:offset + size]
    if rtype == 1 and size == 4:
        return socket.inet_ntop(socket.AF_INET, raw)
    if rtype == 28 and size == 16:
        return str(ipaddress.IPv6Address(raw))
    if rtype in (2, 5, 12, 39):  # NS, CNAME, PTR, DNAME
        return _name(data, offset)[0]
    if rtype == 15:  # MX
        return f"{struct.unpack_from('!H', data, offset)[0]} {_name(data, offset + 2)[0]}"
    if rtype == 33:  # SRV
        priority, weight, port = struct.unpack_from("!HHH", data, offset)
        return f"{priority} {weight} {port} {_name(data, offset + 6)[0]}"
    if rtype == 6:  # SOA
        mname, position = _name(data, offset)
        rname, position = _name(data, position)
        numbers = struct.unpack_from("!IIIII", data, position)
        return " ".join((mname, rname, *map(str, numbers)))
    if rtype in (16, 99):  # TXT, SPF: character strings
        strings, position = [], 0
        while position < size:
            length = raw[position]
            strings.append(raw[position + 1:position + 1 + length].decode("utf-8", "backslashreplace"))
            position += 1 + length
        return " ".join(strings)
    return raw.hex()


def _type_name(value: int) -> str:
    return TYPE_NAMES.get(value, f"TYPE{value}")


def _class_name(value: int) -> str:
    value &= 0x7FFF  # mDNS uses the top bit (unicast response / cache flush)
    return CLASS_NAMES.get(value, f"CLASS{value}")


def _rcode_name(value: int) -> str:
    return RCODE_NAMES.get(value, f"RCODE{value}")
