"""HTTP/1.1 requests off an asyncio stream, for the agent intake (`collectors.http_intake`): the request head, a
`Content-Length` or chunked body under a size limit, and the body's `Content-Encoding` (gzip, deflate) undone
under a decoded-size limit, so that a small compressed body cannot expand without bound (a zip bomb).

No framework: the subset of the protocol agents use (Elastic Agent/Logstash/Vector-style NDJSON posts, Fluent
Bit `http`, NXLog `om_http`, curl). A request that breaks the protocol raises `HttpRequestError` with the status
to answer; `close` says whether the connection must be closed after the answer (its body was not read whole, so
the stream is no longer at a request boundary).
"""

from __future__ import annotations

import asyncio
import contextlib
import string
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Final
from urllib.parse import urlsplit

from collectors.errors import CollectorError

__all__ = [
    "HttpRequestError",
    "RequestHead",
    "body_length",
    "check_encoding",
    "decode_body",
    "encode_response",
    "parse_head",
    "read_body",
    "read_head",
    "text_header",
]

_HEAD_END: Final = b"\r\n\r\n"
_HEX: Final = frozenset(string.hexdigits.encode())
_SINGLE: Final = frozenset({"content-length", "content-type", "host", "authorization"})  # never lists
_TOKEN: Final = frozenset((string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~").encode())
# Content-Encoding name -> zlib window bits (gzip header; zlib header for HTTP's "deflate").
_CODINGS: Final = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class HttpRequestError(CollectorError):
    """A request the intake answers with an error `status`; `close`: the connection cannot carry another."""

    def __init__(self, status: int, reason: str, *, close: bool = False,
                 headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(reason)
        self.status = status
        self.close = close
        self.headers = headers


@dataclass(frozen=True, slots=True)
class RequestHead:
    method: str
    target: str  # as sent (origin form: path and query)
    path: str  # without the query
    version: str  # "HTTP/1.1" or "HTTP/1.0"
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    @property
    def keep_alive(self) -> bool:
        """Whether the client lets the connection carry another request (HTTP/1.1 unless `Connection: close`;
        HTTP/1.0 only with `Connection: keep-alive`)."""
        tokens = {part.strip().lower() for part in self.headers.get("connection", "").split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens

    @property
    def expects_continue(self) -> bool:
        return self.headers.get("expect", "").strip().lower() == "100-continue"


async def read_head(reader: asyncio.StreamReader, *, max_bytes: int) -> RequestHead | None:
    """The next request head, or None when the client closed the connection between requests. The stream's
    own limit (`asyncio.start_server(limit=...)`) bounds the head; past it the answer is 431."""
    try:
        data = await reader.readuntil(_HEAD_END)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise HttpRequestError(400, "connection closed in the middle of the request head", close=True) from None
    except asyncio.LimitOverrunError:
        raise HttpRequestError(431, f"request head exceeds {max_bytes} bytes", close=True) from None
    if len(data) > max_bytes:
        raise HttpRequestError(431, f"request head exceeds {max_bytes} bytes", close=True)
    return parse_head(data)


def parse_head(data: bytes) -> RequestHead:
    """A request head (request line and header lines, CRLF-separated, with or without the blank line)."""
    lines = data.lstrip(b"\r\n").split(b"\r\n")
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise HttpRequestError(400, "empty request line", close=True)
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[0] or not set(parts[0]) <= _TOKEN:
        raise HttpRequestError(400, f"malformed request line: {lines[0][:80]!r}", close=True)
    method, target, version = (part.decode("latin-1") for part in parts)
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        status = 505 if version.startswith("HTTP/") else 400
        raise HttpRequestError(status, f"unsupported protocol version {version[:16]!r}", close=True)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or not set(name) <= _TOKEN:
            detail = "obsolete line folding" if line[:1] in (b" ", b"\t") else f"{line[:80]!r}"
            raise HttpRequestError(400, f"malformed header line: {detail}", close=True)
        key = name.decode("ascii").lower()
        text = value.strip(b" \t").decode("latin-1")
        if key in headers:
            if key in _SINGLE:
                if headers[key] != text:
                    raise HttpRequestError(400, f"conflicting {key} headers", close=True)
                continue
            text = f"{headers[key]}, {text}"
        headers[key] = text
    path = target.split("?", 1)[0]
    if not path.startswith("/"):  # absolute form (a proxy's request): keep the path
        path = urlsplit(target).path or "/"
    return RequestHead(method, target, path, version, headers)


def text_header(head: RequestHead, name: str, *, max_chars: int) -> str | None:
    """A header holding text (a file name): None when absent or blank; sent as UTF-8 (the head is read as
    Latin-1, so its bytes are decoded again; a value that is not UTF-8 stays Latin-1); 400 for one over
    `max_chars` or with control characters."""
    value = head.header(name.lower())
    if value is None or not value.strip():
        return None
    with contextlib.suppress(UnicodeError):
        value = value.encode("latin-1").decode("utf-8")
    if len(value) > max_chars or not value.isprintable():
        raise HttpRequestError(400, f"{name} header must be at most {max_chars} printable characters", close=True)
    return value


def body_length(head: RequestHead, *, max_bytes: int) -> int | None:
    """The body's length from `Content-Length` (0 when the request has neither it nor a transfer coding), or
    None for a chunked body. 413 for a declared length over `max_bytes`."""
    coding = head.header("transfer-encoding")
    declared = head.header("content-length")
    if coding is not None:
        if declared is not None:
            raise HttpRequestError(400, "both Transfer-Encoding and Content-Length given", close=True)
        if [part.strip().lower() for part in coding.split(",")] != ["chunked"]:
            raise HttpRequestError(501, f"unsupported Transfer-Encoding {coding[:40]!r} (only chunked)", close=True)
        return None
    if declared is None:
        return 0
    if not declared.isascii() or not declared.isdigit():
        raise HttpRequestError(400, f"Content-Length is not a number: {declared[:40]!r}", close=True)
    length = int(declared)
    if length > max_bytes:
        raise HttpRequestError(413, f"body of {length} bytes exceeds the limit of {max_bytes} bytes", close=True)
    return length


async def read_body(reader: asyncio.StreamReader, length: int | None, *, max_bytes: int) -> bytes:
    """The body: `length` bytes, or (None) the chunks of a chunked body, at most `max_bytes` in all (413)."""
    try:
        if length is not None:
            return await reader.readexactly(length)
        chunks: list[bytes] = []
        total = 0
        while True:
            line = await reader.readuntil(b"\r\n")
            size_text = line[:-2].split(b";", 1)[0].strip(b" \t")
            if not size_text or not set(size_text) <= _HEX:
                raise HttpRequestError(400, f"malformed chunk size line: {line[:40]!r}", close=True)
            size = int(size_text, 16)
            if size == 0:
                break
            total += size
            if total > max_bytes:
                raise HttpRequestError(413, f"chunked body exceeds the limit of {max_bytes} bytes", close=True)
            chunks.append(await reader.readexactly(size))
            if await reader.readexactly(2) != b"\r\n":
                raise HttpRequestError(400, "chunk not followed by CRLF", close=True)
        while await reader.readuntil(b"\r\n") != b"\r\n":  # trailer fields: ignored
            pass
        return b"".join(chunks)
    except asyncio.IncompleteReadError:
        raise HttpRequestError(400, "connection closed in the middle of the body", close=True) from None
    except asyncio.LimitOverrunError:
        raise HttpRequestError(400, "chunk size or trailer line too long", close=True) from None


def check_encoding(content_encoding: str | None) -> int | None:
    """The zlib window bits for a `Content-Encoding` header, None for identity; 415 for any other coding."""
    codings = [part.strip().lower() for part in (content_encoding or "").split(",")]
    codings = [coding for coding in codings if coding and coding != "identity"]
    if not codings:
        return None
    if len(codings) > 1 or codings[0] not in _CODINGS:
        raise HttpRequestError(415, f"unsupported Content-Encoding {content_encoding!r} "
                                    f"(expected gzip, deflate or identity)", close=True)
    return _CODINGS[codings[0]]


def decode_body(body: bytes, content_encoding: str | None, *, max_bytes: int) -> bytes:
    """The body with its content coding undone, at most `max_bytes` once decoded (413: a zip bomb is cut off
    after `max_bytes + 1` bytes of output, never expanded whole). Concatenated gzip members are all read."""
    wbits = check_encoding(content_encoding)
    if wbits is None:
        return body
    out = bytearray()
    pending = body
    while True:
        inflater = zlib.decompressobj(wbits)
        try:
            # The output is capped one byte past the limit: either the whole input was consumed under the
            # limit, or the body is too large; nothing more is ever decompressed.
            out += inflater.decompress(pending, max_bytes + 1 - len(out))
        except zlib.error as exc:
            raise HttpRequestError(400, f"body is not valid {_coding_name(wbits)} data: {exc}") from None
        if len(out) > max_bytes:
            raise HttpRequestError(413, f"decompressed body exceeds the limit of {max_bytes} bytes")
        if not inflater.eof:
            raise HttpRequestError(400, f"{_coding_name(wbits)} body is truncated")
        pending = inflater.unused_data
        if wbits != _CODINGS["gzip"] or not pending.strip(b"\x00"):
            return bytes(out)


def _coding_name(wbits: int) -> str:
    return "gzip" if wbits == _CODINGS["gzip"] else "deflate"


def encode_response(status: int, body: bytes = b"", *, keep_alive: bool, content_type: str = "application/json",
                    headers: Iterable[tuple[str, str]] = ()) -> bytes:
    """A complete HTTP/1.1 response with its body."""
    lines = [f"HTTP/1.1 {status} {_phrase(status)}", f"Content-Type: {content_type}",
             f"Content-Length: {len(body)}", f"Connection: {'keep-alive' if keep_alive else 'close'}"]
    lines.extend(f"{name}: {value}" for name, value in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"
