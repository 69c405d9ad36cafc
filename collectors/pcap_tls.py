"""The TLS ClientHello from a client's byte stream, and its JA3 and JA4 fingerprints.

    reader = ClientHelloReader()
    hello = reader.feed(stream_bytes)  # None until the whole ClientHello is in (it may span segments, records)
    ja3(hello), ja4(hello)

JA3 (https://github.com/salesforce/ja3): MD5 of `SSLVersion,Ciphers,Extensions,EllipticCurves,PointFormats`, each
a `-`-joined list of decimal values in the order sent, GREASE values (RFC 8701) left out; the version is the
ClientHello's legacy version field.

JA4 (https://github.com/FoxIO-LLC/ja4, technical_details/JA4.md): `t13d1516h2_8daaf6152771_e5627efa2ab1` is
protocol (t: TLS over TCP), highest offered version (supported_versions, else the legacy field), d/i for SNI
present or not, cipher and extension counts (2 digits, at most 99), first and last character of the first ALPN
value; then the first 12 hex digits of SHA-256 over the sorted cipher list, and over the sorted extension list
(SNI and ALPN left out) `_` the signature algorithms in the order sent. GREASE is ignored everywhere.
"""

from __future__ import annotations

import dataclasses
import hashlib
import struct
from dataclasses import dataclass

__all__ = ["ClientHello", "ClientHelloReader", "TlsFormatError", "is_grease", "ja3", "ja3_string", "ja4",
           "ja4_raw", "parse_client_hello", "version_text"]

_EXT_SNI, _EXT_GROUPS, _EXT_POINT_FORMATS, _EXT_SIGNATURES, _EXT_ALPN, _EXT_VERSIONS = 0, 10, 11, 13, 16, 43
_JA4_VERSIONS = {0x0304: "13", 0x0303: "12", 0x0302: "11", 0x0301: "10", 0x0300: "s3", 0x0002: "s2",
                 0xFEFF: "d1", 0xFEFD: "d2", 0xFEFC: "d3"}
_VERSION_TEXT = {0x0002: ("ssl", "2.0"), 0x0300: ("ssl", "3.0"), 0x0301: ("tls", "1.0"), 0x0302: ("tls", "1.1"),
                 0x0303: ("tls", "1.2"), 0x0304: ("tls", "1.3")}
_ALNUM = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_RECORD = struct.Struct("!BHH")
_EMPTY_HASH = "000000000000"


class TlsFormatError(ValueError):
    """The client's first bytes are not a TLS ClientHello, or the ClientHello is malformed."""


def is_grease(value: int) -> bool:
    """The RFC 8701 GREASE values 0x0a0a, 0x1a1a, ..., 0xfafa."""
    return value & 0x0F0F == 0x0A0A and value >> 8 == value & 0xFF


@dataclass(frozen=True, slots=True)
class ClientHello:
    """The fields fingerprints read, as sent (GREASE values included). `alpn` holds the raw protocol names."""

    legacy_version: int
    ciphers: tuple[int, ...]
    extensions: tuple[int, ...]
    server_name: str | None = None
    groups: tuple[int, ...] = ()
    point_formats: tuple[int, ...] = ()
    signature_algorithms: tuple[int, ...] = ()
    alpn: tuple[bytes, ...] = ()
    supported_versions: tuple[int, ...] = ()

    @property
    def offered_version(self) -> int:
        """The highest version offered: from supported_versions when sent, else the legacy version field."""
        offered = [version for version in self.supported_versions if not is_grease(version)]
        return max(offered) if offered else self.legacy_version


def version_text(version: int) -> tuple[str, str] | None:
    """ECS `tls.version_protocol` and `tls.version` for a protocol version number: 0x0303 -> ("tls", "1.2")."""
    return _VERSION_TEXT.get(version)


def ja3_string(hello: ClientHello) -> str:
    def field(values: tuple[int, ...]) -> str:
        return "-".join(str(value) for value in values if not is_grease(value))

    return ",".join((str(hello.legacy_version), field(hello.ciphers), field(hello.extensions),
                     field(hello.groups), field(hello.point_formats)))


def ja3(hello: ClientHello) -> str:
    return hashlib.md5(ja3_string(hello).encode("ascii")).hexdigest()


def ja4(hello: ClientHello, transport: str = "t") -> str:
    prefix, ciphers, extensions, signatures = _ja4_parts(hello, transport)
    cipher_hash = _sha12(ciphers) if ciphers else _EMPTY_HASH
    extension_hash = _sha12(f"{extensions}_{signatures}" if signatures else extensions) if extensions \
        else _EMPTY_HASH
    return f"{prefix}_{cipher_hash}_{extension_hash}"


def ja4_raw(hello: ClientHello, transport: str = "t") -> str:
    """JA4_r: the JA4 with its lists in clear instead of hashed."""
    prefix, ciphers, extensions, signatures = _ja4_parts(hello, transport)
    return f"{prefix}_{ciphers}_{extensions}_{signatures}" if signatures else f"{prefix}_{ciphers}_{extensions}"


def _ja4_parts(hello: ClientHello, transport: str) -> tuple[str, str, str, str]:
    ciphers = [value for value in hello.ciphers if not is_grease(value)]
    extensions = [value for value in hello.extensions if not is_grease(value)]
    signatures = [value for value in hello.signature_algorithms if not is_grease(value)]
    version = _JA4_VERSIONS.get(hello.offered_version, "00")
    sni = "d" if _EXT_SNI in extensions else "i"
    prefix = f"{transport}{version}{sni}{min(len(ciphers), 99):02d}{min(len(extensions), 99):02d}" \
             f"{_alpn_chars(hello.alpn)}"
    hashed_extensions = sorted(value for value in extensions if value not in (_EXT_SNI, _EXT_ALPN))
    return (prefix, _hex_list(sorted(ciphers)), _hex_list(hashed_extensions), _hex_list(signatures))


def _alpn_chars(alpn: tuple[bytes, ...]) -> str:
    if not alpn or not alpn[0]:
        return "00"
    first, last = alpn[0][0], alpn[0][-1]
    if first in _ALNUM and last in _ALNUM:
        return chr(first) + chr(last)
    text = alpn[0].hex()
    return text[0] + text[-1]


def _hex_list(values: list[int]) -> str:
    return ",".join(f"{value:04x}" for value in values)


def _sha12(text: str) -> str:
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:12]


# --- parsing ----------------------------------------------------------------------------------------------------


class ClientHelloReader:
    """The ClientHello from the start of a client's stream: handshake records collected until the message is
    whole. `feed` returns it once (None before); raises `TlsFormatError` for a stream that does not start with
    one, or one longer than `limit` bytes."""

    __slots__ = ("buffer", "limit")

    def __init__(self, limit: int = 1 << 16) -> None:
        self.buffer = bytearray()
        self.limit = limit

    def feed(self, data: bytes) -> ClientHello | None:
        self.buffer += data
        handshake = bytearray()
        offset = 0
        buffer = self.buffer
        while offset + 5 <= len(buffer):
            content_type, _, length = _RECORD.unpack_from(buffer, offset)
            if content_type != 22:
                raise TlsFormatError(f"expected a handshake record (22), got content type {content_type}")
            handshake += buffer[offset + 5:offset + 5 + length]
            offset += 5 + length
            if len(handshake) >= 4:
                if handshake[0] != 1:
                    raise TlsFormatError(f"expected a ClientHello (1), got handshake type {handshake[0]}")
                size = int.from_bytes(handshake[1:4], "big")
                if size > self.limit:
                    raise TlsFormatError(f"ClientHello of {size} bytes is over the {self.limit}-byte limit")
                if len(handshake) >= 4 + size:
                    return parse_client_hello(bytes(handshake[4:4 + size]))
        if len(buffer) > self.limit + 1024:
            raise TlsFormatError("no complete ClientHello in the first bytes of the stream")
        return None


def parse_client_hello(body: bytes) -> ClientHello:
    """A ClientHello handshake message body (after its 4-byte handshake header). Raises `TlsFormatError`."""
    try:
        return _parse(body)
    except (IndexError, struct.error) as exc:
        raise TlsFormatError(f"malformed ClientHello: {exc}") from None


def _parse(body: bytes) -> ClientHello:
    version = int.from_bytes(body[0:2], "big")
    offset = 34 + 1 + body[34]  # version, random, session id
    cipher_bytes = int.from_bytes(body[offset:offset + 2], "big")
    ciphers = _u16_list(body, offset + 2, cipher_bytes)
    offset += 2 + cipher_bytes
    offset += 1 + body[offset]  # compression methods
    if len(ciphers) * 2 != cipher_bytes or offset > len(body):
        raise TlsFormatError("ClientHello cipher or compression list runs past the message")
    hello = ClientHello(legacy_version=version, ciphers=ciphers, extensions=())
    extensions: list[int] = []
    if offset + 2 <= len(body):
        end = min(offset + 2 + int.from_bytes(body[offset:offset + 2], "big"), len(body))
        offset += 2
        while offset + 4 <= end:
            kind, size = struct.unpack_from("!HH", body, offset)
            hello = _extension(hello, kind, body[offset + 4:offset + 4 + size])
            extensions.append(kind)
            offset += 4 + size
    return dataclasses.replace(hello, extensions=tuple(extensions))


def _extension(hello: ClientHello, kind: int, data: bytes) -> ClientHello:
    if kind == _EXT_SNI and len(data) >= 5 and data[2] == 0:
        name = data[5:5 + int.from_bytes(data[3:5], "big")].decode("ascii", "backslashreplace").rstrip(".")
        return dataclasses.replace(hello, server_name=name or None)
    if kind == _EXT_GROUPS:
        return dataclasses.replace(hello, groups=_u16_list(data, 2, int.from_bytes(data[0:2], "big")))
    if kind == _EXT_POINT_FORMATS and data:
        return dataclasses.replace(hello, point_formats=tuple(data[1:1 + data[0]]))
    if kind == _EXT_SIGNATURES:
        signatures = _u16_list(data, 2, int.from_bytes(data[0:2], "big"))
        return dataclasses.replace(hello, signature_algorithms=signatures)
    if kind == _EXT_ALPN:
        names, position = [], 2
        while position < len(data):
            size = data[position]
            names.append(data[position + 1:position + 1 + size])
            position += 1 + size
        return dataclasses.replace(hello, alpn=tuple(names))
    if kind == _EXT_VERSIONS and data:
        return dataclasses.replace(hello, supported_versions=_u16_list(data, 1, data[0]))
    return hello


def _u16_list(data: bytes, offset: int, size: int) -> tuple[int, ...]:
    chunk = data[offset:offset + size]
    return struct.unpack(f"!{len(chunk) // 2}H", chunk[:len(chunk) // 2 * 2])
