"""Syslog frames to events: the zone a frame carries places a timestamp without an offset."""

from __future__ import annotations

import pickle

import pytest

from collectors.syslog_server import SyslogFrame
from correlator.live.intake import frame_to_event
from correlator.model import Event

LINE = b"<38>Nov 24 10:00:00 web01 sshd[1]: Failed password for root from 203.0.113.5 port 4242 ssh2"
RECEIVED_MS = 1_795_999_000_000  # 2026-11-30: the year of a BSD timestamp is chosen against it


@pytest.mark.parametrize(("tz", "stamp"), [
    (None, "2026-11-24T10:00:00.000Z"),
    ("Asia/Ho_Chi_Minh", "2026-11-24T03:00:00.000Z"),
    ("Europe/Paris", "2026-11-24T09:00:00.000Z"),
], ids=["utc", "vietnam", "paris"])
def test_a_frames_zone_places_its_local_time(tz: str | None, stamp: str) -> None:
    frame = SyslogFrame(LINE, "10.0.0.5", "tcp", RECEIVED_MS, tz=tz)
    event = frame_to_event(pickle.loads(pickle.dumps(frame)))  # as a detection worker receives it
    assert isinstance(event, Event)
    assert event.ecs["@timestamp"] == stamp


def test_an_offset_in_the_message_wins() -> None:
    frame = SyslogFrame(b"<38>1 2026-11-24T10:00:00+02:00 web01 sshd 1 - - hello", "10.0.0.5", "udp", RECEIVED_MS,
                        tz="Asia/Ho_Chi_Minh")
    event = frame_to_event(frame)
    assert isinstance(event, Event)
    assert event.ecs["@timestamp"] == "2026-11-24T08:00:00.000Z"
