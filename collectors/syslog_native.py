"""A syslog frame to an `Event` through the native reader (correlator/native, `syslog_auth.rs`): the common RFC 3164
line (a BSD timestamp read in UTC, a hostname, a `tag[pid]:`, and when it is an auth message one of the patterns
ported: sshd logins, invalid users and closed connections, PAM sessions, sudo, useradd's new users) read in one
native call, with the very fields, time and event id `frame_to_event`'s Python path gives it, and the event's
stored document and free text (`Event.stored_document`: a detection worker then stores the event without building
its ECS document). Anything else, or no native extension (SOCCTL_NATIVE=0), is None: the caller reads the line
in Python."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, cast

from collectors import linux_auth
from correlator.accel import native_available
from correlator.model import Event, EventOrigin

__all__ = ["native_fields", "native_syslog_event"]

# (timestamp_ms, flat fields, event id, stored document JSON, free text)
NativeResult = tuple[int, dict[str, Any], str, str, str] | None


def native_fields(raw: str, received_ms: int, peer: str, path: str | None = None, repeat: int = 0) -> NativeResult:
    """What the native reader gives a frame's text received at `received_ms` from `peer` (read in UTC; `path`:
    the origin's, the document's `log.file.path`; `repeat`: the frame's `SyslogFrame.repeat`, hashed into the id
    when not 0), or None (no extension, or a line it leaves to Python)."""
    if not native_available():
        return None
    return _reader()(raw, received_ms, peer, path, repeat)


def native_syslog_event(raw: str, received_ms: int, peer: str, origin: EventOrigin, repeat: int = 0) -> Event | None:
    """The `Event` of a frame read natively (see the module doc), or None."""
    found = native_fields(raw, received_ms, peer, origin.path, repeat)
    if found is None or origin.offset is not None:  # an offset would go into the document too
        return None
    timestamp_ms, fields, event_id, document, text = found
    factory = linux_auth.deferred_nested_factory(fields)  # adds no ECS fields: `fields` are complete
    return Event(id=event_id, timestamp_ms=timestamp_ms, raw=raw, fields=fields, origin=origin, ecs_factory=factory,
                 host_name=fields.get("host.name"), fields_complete=True, stored_document=(document, text))


@cache
def _reader() -> Callable[[str, int, str, str | None, int], NativeResult]:
    from correlator._native import syslog_event

    return cast(Callable[[str, int, str, str | None, int], NativeResult], syslog_event)
