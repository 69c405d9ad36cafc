"""HTTP/1.x transactions from the two reassembled byte streams of a TCP connection.

    http = HttpConnection(max_body_bytes=8 << 20, carve=True)
    done = http.client_data(data, timestamp_us)  # requests (pipelined or split over segments)
    done += http.server_data(data, timestamp_us)  # responses, matched to requests in order
    done += http.close()  # the connection ended: bodies delimited by the close, unanswered requests

A transaction pairs a request with its response (interim 1xx responses are skipped). Bodies are framed by
Content-Length, chunked transfer coding or the connection's close (responses only; none for HEAD, 1xx, 204
and 304). A response body's SHA-256 and size cover the whole body; its bytes are kept when `carve` is on, up to
`max_body_bytes`. Content codings (gzip, ...) are left as sent. After CONNECT or a 101 the connection is a
tunnel and parsing stops; a stream that is not HTTP stops parsing too (`broken`).
"""

from __future__ import annotations

import hashlib
import re
from collections import deque
from dataclasses import dataclass
from typing import Any

__all__ = ["HttpConnection", "HttpFormatError", "HttpRequest", "HttpResponse", "HttpTransaction"]

_HEAD_END = re.compile(rb"\r?\n\r?\n")
_REQUEST_LINE = re.compile(rb"([A-Za-z][A-Za-z0-9_-]*) +(\S+) +HTTP/(\d\.\d) *")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
_STATUS_LINE = re.compile(rb"HTTP/(\d\.\d) +(\d{3})(?: +(.*))?")
_LENGTH, _CHUNKED, _CLOSE, _NONE = range(4)
_SIZE, _DATA, _DATA_END, _TRAILER = range(4)
_MAX_LINE = 4096


class HttpFormatError(ValueError):
    """Bytes on an HTTP connection that are not HTTP/1.x (a bad start line, header block or chunk)."""


def _header(headers: tuple[tuple[str, str], ...], name: str) -> str | None:
    for key, value in headers:
        if key == name:
            return value
    return None


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """A request: header names lower-cased, in the order sent. `timestamp_us` and `packet_number` tell when
    its first byte came (the number is the caller's: a capture's packet number)."""

    timestamp_us: int
    packet_number: int
    method: str
    target: str
    version: str
    headers: tuple[tuple[str, str], ...]
    body_bytes: int

    def header(self, name: str) -> str | None:
        return _header(self.headers, name)


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """A response (`timestamp_us`, `packet_number`: as for the request). `body` is the carved (de-chunked)
    body, empty unless carving; `body_truncated` says it is shorter than the body. `complete` is False when the
    connection ended inside the message."""

    timestamp_us: int
    packet_number: int
    version: str
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body_bytes: int
    body_sha256: str | None
    body: bytes
    body_truncated: bool
    complete: bool

    def header(self, name: str) -> str | None:
        return _header(self.headers, name)


@dataclass(frozen=True, slots=True)
class HttpTransaction:
    request: HttpRequest | None
    response: HttpResponse | None

    @property
    def timestamp_us(self) -> int:
        message = self.request or self.response
        assert message is not None
        return message.timestamp_us


class _Body:
    """One message body being decoded: Content-Length, chunked, or up to the close."""

    __slots__ = ("carve", "chunk_state", "digest", "done", "kept", "limit", "mode", "remaining", "size")

    def __init__(self, mode: int, length: int, *, limit: int, carve: bool) -> None:
        self.mode = mode
        self.remaining = length
        self.chunk_state = _SIZE
        self.size = 0
        self.digest: Any = hashlib.sha256()
        self.kept = bytearray()
        self.limit = limit
        self.carve = carve
        self.done = mode == _NONE or (mode == _LENGTH and length == 0)

    def feed(self, buffer: bytearray) -> int:
        """Consume body bytes from the start of `buffer`; the number of bytes consumed."""
        if self.mode == _LENGTH:
            take = min(self.remaining, len(buffer))
            self._take(buffer[:take])
            self.remaining -= take
            self.done = self.remaining == 0
            return take
        if self.mode == _CLOSE:
            self._take(buffer)
            return len(buffer)
        return self._chunks(buffer)

    def _chunks(self, buffer: bytearray) -> int:
        position = 0
        while not self.done and position < len(buffer):
            if self.chunk_state == _DATA:
                take = min(self.remaining, len(buffer) - position)
                self._take(buffer[position:position + take])
                position += take
                self.remaining -= take
                if not self.remaining:
                    self.chunk_state = _DATA_END
                continue
            if self.chunk_state == _DATA_END:
                if buffer.startswith(b"\r\n", position):
                    position += 2
                elif buffer.startswith(b"\n", position):
                    position += 1
                elif len(buffer) - position >= 2 or buffer[position] != 0x0D:
                    raise HttpFormatError("chunk data not followed by CRLF")
                else:
                    break
                self.chunk_state = _SIZE
                continue
            end = buffer.find(b"\n", position)
            if end < 0:
                if len(buffer) - position > _MAX_LINE:
                    raise HttpFormatError("chunk size line too long")
                break
            line = bytes(buffer[position:end]).strip()
            position = end + 1
            if self.chunk_state == _TRAILER:
                self.done = not line
                continue
            digits = line.split(b";", 1)[0].strip()
            if not _HEX.fullmatch(digits):
                raise HttpFormatError(f"bad chunk size line {line[:40]!r}")
            size = int(digits, 16)
            self.remaining = size
            self.chunk_state = _DATA if size else _TRAILER
        return position

    def _take(self, chunk: bytes | bytearray) -> None:
        if not chunk:
            return
        self.size += len(chunk)
        self.digest.update(chunk)
        if self.carve and len(self.kept) < self.limit:
            self.kept += chunk[:self.limit - len(self.kept)]


class _Message:
    """A request or response being read."""

    __slots__ = ("body", "headers", "line", "packet_number", "timestamp_us", "version")

    def __init__(self, start: tuple[int, int], line: tuple[str, ...], version: str,
                 headers: tuple[tuple[str, str], ...], body: _Body) -> None:
        self.timestamp_us, self.packet_number = start
        self.line = line
        self.version = version
        self.headers = headers
        self.body = body

    def request(self) -> HttpRequest:
        method, target = self.line
        return HttpRequest(self.timestamp_us, self.packet_number, method, target, self.version, self.headers,
                           self.body.size)

    def response(self, *, complete: bool) -> HttpResponse:
        body = self.body
        status, reason = self.line
        return HttpResponse(
            timestamp_us=self.timestamp_us, packet_number=self.packet_number, version=self.version,
            status=int(status), reason=reason, headers=self.headers, body_bytes=body.size,
            body_sha256=body.digest.hexdigest() if body.size else None, body=bytes(body.kept),
            body_truncated=body.carve and len(body.kept) < body.size, complete=complete)


class _Direction:
    __slots__ = ("buffer", "first", "message", "stopped")

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.first = (0, 0)  # (timestamp_us, packet_number) of the buffer's first byte
        self.message: _Message | None = None
        self.stopped = False  # a tunnel or not HTTP: nothing more is parsed


class HttpConnection:
    """Both directions of one HTTP/1.x connection. Raises nothing for bad bytes: a direction that is not HTTP
    stops (`broken` once the client's does)."""

    def __init__(self, *, max_body_bytes: int = 8 << 20, carve: bool = False,
                 max_header_bytes: int = 64 << 10) -> None:
        self.max_body_bytes = max_body_bytes
        self.carve = carve
        self.max_header_bytes = max_header_bytes
        self._client = _Direction()
        self._server = _Direction()
        self._requests: deque[_Message] = deque()  # heads read, waiting for their response
        self.error: str | None = None  # why a direction stopped parsing, when it was not HTTP

    @property
    def broken(self) -> bool:
        return self._client.stopped and self._server.stopped

    def client_data(self, data: bytes, timestamp_us: int, packet_number: int = 0) -> list[HttpTransaction]:
        side = self._client
        if not self._append(side, data, (timestamp_us, packet_number)):
            return []
        try:
            self._read_requests(side, (timestamp_us, packet_number))
        except HttpFormatError as exc:
            self.error = f"client: {exc}"
            side.stopped = True
            side.buffer.clear()
        return []

    def server_data(self, data: bytes, timestamp_us: int, packet_number: int = 0) -> list[HttpTransaction]:
        side = self._server
        if not self._append(side, data, (timestamp_us, packet_number)):
            return []
        done: list[HttpTransaction] = []
        try:
            self._read_responses(side, (timestamp_us, packet_number), done)
        except HttpFormatError as exc:
            self.error = f"server: {exc}"
            side.stopped = True
            side.buffer.clear()
        return done

    def close(self) -> list[HttpTransaction]:
        """The connection ended: a response delimited by the close completes, one cut short is reported as
        incomplete, and requests left without a response are reported alone."""
        done: list[HttpTransaction] = []
        message = self._server.message
        if message is not None:
            complete = message.body.mode == _CLOSE
            request = self._requests.popleft() if self._requests else None
            done.append(HttpTransaction(request.request() if request else None, message.response(complete=complete)))
            self._server.message = None
        while self._requests:
            done.append(HttpTransaction(self._requests.popleft().request(), None))
        self._client.stopped = self._server.stopped = True
        return done

    @staticmethod
    def _append(side: _Direction, data: bytes, now: tuple[int, int]) -> bool:
        if side.stopped:
            return False
        if not side.buffer:
            side.first = now
        side.buffer += data
        return True

    def _read_requests(self, side: _Direction, now: tuple[int, int]) -> None:
        while side.buffer and not side.stopped:
            message = side.message
            if message is None:
                head = self._head(side, now)
                if head is None:
                    return
                start, lines = head
                match = _REQUEST_LINE.fullmatch(lines[0])
                if match is None:
                    raise HttpFormatError(f"not an HTTP request line: {lines[0][:60]!r}")
                headers = _headers(lines)
                method = match[1].decode("ascii").upper()
                message = _Message(start, (method, _text(match[2])), match[3].decode("ascii"), headers,
                                   self._body(headers, response=False))
                self._requests.append(message)
                side.message = message
                if method == "CONNECT":
                    side.stopped = True  # what follows is the tunnelled protocol
                    return
            del side.buffer[:message.body.feed(side.buffer)]
            if not message.body.done:
                return
            side.message = None
            side.first = now

    def _read_responses(self, side: _Direction, now: tuple[int, int], done: list[HttpTransaction]) -> None:
        while side.buffer and not side.stopped:
            message = side.message
            if message is None:
                head = self._head(side, now)
                if head is None:
                    return
                start, lines = head
                match = _STATUS_LINE.fullmatch(lines[0])
                if match is None:
                    raise HttpFormatError(f"not an HTTP status line: {lines[0][:60]!r}")
                status = int(match[2])
                if 100 <= status < 200 and status != 101:
                    side.first = now
                    continue  # interim (100 Continue, 103 Early Hints): the final response follows
                headers = _headers(lines)
                method = self._requests[0].line[0] if self._requests else "GET"
                no_body = method == "HEAD" or status in (101, 204, 304) or (method == "CONNECT" and status < 300)
                body = _Body(_NONE, 0, limit=0, carve=False) if no_body else self._body(headers, response=True)
                message = _Message(start, (str(status), _text(match[3] or b"")), match[1].decode("ascii"),
                                   headers, body)
                side.message = message
            del side.buffer[:message.body.feed(side.buffer)]
            if not message.body.done:
                return
            side.message = None
            side.first = now
            request = self._requests.popleft() if self._requests else None
            done.append(HttpTransaction(request.request() if request else None, message.response(complete=True)))
            status = int(message.line[0])
            if status == 101 or (request is not None and request.line[0] == "CONNECT" and status < 300):
                self._client.stopped = side.stopped = True  # upgraded or tunnelled: no longer HTTP/1.x

    def _head(self, side: _Direction, now: tuple[int, int]) -> tuple[tuple[int, int], list[bytes]] | None:
        buffer = side.buffer
        while buffer[:1] in (b"\r", b"\n"):  # blank lines between messages
            del buffer[:1]
            side.first = now
        match = _HEAD_END.search(buffer)
        if match is None:
            if len(buffer) > self.max_header_bytes:
                raise HttpFormatError(f"no end of the header block in {len(buffer)} bytes")
            return None
        lines = bytes(buffer[:match.start()]).replace(b"\r\n", b"\n").split(b"\n")
        del buffer[:match.end()]
        return side.first, lines

    def _body(self, headers: tuple[tuple[str, str], ...], *, response: bool) -> _Body:
        coding = (_header(headers, "transfer-encoding") or "").lower()
        length_text = _header(headers, "content-length")
        if length_text is not None:
            length_text = length_text.strip(" \t")
        if coding.rsplit(",", 1)[-1].strip() == "chunked":
            mode, length = _CHUNKED, 0
        elif length_text is not None and length_text.isascii() and length_text.isdigit():
            mode, length = _LENGTH, int(length_text)
        elif length_text is not None and not response:
            raise HttpFormatError(f"bad Content-Length {length_text[:40]!r}")
        else:
            mode, length = (_CLOSE if response else _NONE), 0
        carve = self.carve and response
        return _Body(mode, length, limit=self.max_body_bytes if carve else 0, carve=carve)


def _headers(lines: list[bytes]) -> tuple[tuple[str, str], ...]:
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t") and headers:  # an obsolete folded continuation line
            key, text = headers[-1]
            headers[-1] = (key, f"{text} {_text(line.strip())}")
            continue
        name, found, value = line.partition(b":")
        if found and name.strip():
            headers.append((_text(name.strip()).lower(), _text(value.strip())))
    return tuple(headers)


def _text(value: bytes) -> str:
    return value.decode("utf-8", "backslashreplace")
