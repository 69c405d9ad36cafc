"""Network messages to events: a syslog frame becomes an `Event` (syslog, or Linux auth ECS when it is an auth
message) or, when it is not syslog or broke the framing, a `Rejected` with the reason, for the dead-letter store.

The event id is a hash of the sender and the message: a message sent again (a TCP sender reconnecting and
resending) is the same event, while the same text from two hosts is two."""

from __future__ import annotations

from datetime import UTC, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

from collectors.syslog_file import to_event
from collectors.syslog_native import native_syslog_event
from collectors.syslog_parse import SyslogParseError, parse_syslog
from collectors.syslog_server import SyslogFrame
from correlator.model import Event, EventOrigin, Rejected, event_id_for

__all__ = ["frame_origin", "frame_to_event", "python_frame_event", "zone"]


def frame_to_event(frame: SyslogFrame) -> Event | Rejected:
    """The frame's event (the common line natively, `collectors.syslog_native`; anything else in Python), or
    the dead letter of a frame that broke the framing or is not syslog."""
    raw = frame.data.decode("utf-8", "backslashreplace")
    origin = frame_origin(frame)
    if frame.error is not None:
        return Rejected(frame.error, origin, raw=raw, stage="read")
    if frame.tz is None:
        event = native_syslog_event(raw, frame.received_ms, frame.peer, origin, frame.repeat)
        if event is not None:
            return event
    return python_frame_event(frame, raw, origin)


def python_frame_event(frame: SyslogFrame, raw: str, origin: EventOrigin) -> Event | Rejected:
    """`frame_to_event` in Python (`raw`: the frame's text), the reference the native reader is tested against."""
    try:
        message = parse_syslog(raw, received_ms=frame.received_ms, source_host=frame.peer, tz=zone(frame.tz))
    except SyslogParseError as exc:
        return Rejected(f"not a syslog message: {exc.reason}", origin, raw=raw, stage="normalise")
    return to_event(message, raw, origin, event_id_for(frame_key(frame, raw), message.timestamp_ms))


def frame_key(frame: SyslogFrame, raw: str) -> str:
    """What a frame's event id hashes (with its time): the sender, the message and, for the n-th identical frame
    of the sender (`SyslogFrame.repeat`), n."""
    key = f"{frame.peer}\0{raw}"
    return f"{key}\n#{frame.repeat}" if frame.repeat else key


def frame_origin(frame: SyslogFrame) -> EventOrigin:
    """Where a frame came from: its transport and sender."""
    return _origin(frame.transport, frame.peer)


@lru_cache(maxsize=4_096)
def _origin(transport: str, peer: str) -> EventOrigin:
    """One (immutable) origin per sender: senders send many messages."""
    return EventOrigin(path=f"syslog+{transport}://{peer}", format="syslog")


@lru_cache(maxsize=64)
def zone(name: str | None) -> tzinfo:
    """The zone named by a frame (None: UTC)."""
    return UTC if name is None else ZoneInfo(name)
