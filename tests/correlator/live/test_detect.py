"""The detection half of a batch stores what the Python path stores: events the native syslog reader read are
prepared from the document it made (`Event.stored_document`) unless something changed the ECS document since
(asset enrichment), and then the long way."""

from __future__ import annotations

import orjson
import pytest

from collectors.syslog_server import SyslogFrame
from correlator.accel import native_available, reread_native_setting
from correlator.assets_load import parse_inventory_yaml
from correlator.live.detect import Intake, detect_batch
from correlator.live.intake import frame_to_event
from correlator.model import Event
from correlator.pipeline import Detection
from correlator.sigma.engine import SigmaEngine
from correlator.sigma.sources import load_sources
from correlator.store.documents import PreparedRecord

pytestmark = pytest.mark.skipif(not native_available(), reason="the native extension is not built (no cargo)")

INVENTORY = """
systems:
  - id: portal
    name: Portal
    agency: {id: so-tttt, name: So TTTT}
    security_level: 3
assets:
  - system: portal
    hostnames: [web01]
"""

LINES = (
    "<38>Nov 24 10:00:01 web01 sshd[4001]: Failed password for root from 198.51.100.23 port 40010 ssh2",
    "<38>Nov 24 10:00:02 db07 sshd[4002]: Accepted password for deploy from 10.1.2.3 port 40011 ssh2",
    "<86>Nov 24 10:00:03 web01 CRON[77]: pam_unix(cron:session): session opened for user root(uid=0) by (uid=0)",
)
RECEIVED_MS = 1_764_000_000_000


def _batch() -> list[tuple[str, Intake]]:
    return [("syslog", SyslogFrame(line.encode(), peer="10.9.9.9", transport="tcp", received_ms=RECEIVED_MS))
            for line in LINES]


def _prepared(detection: Detection) -> list[PreparedRecord]:
    return detect_batch(_batch(), detection, RECEIVED_MS, store_events=True).prepared


def test_enriched_events_are_stored_the_long_way_the_others_from_the_readers_document(
        monkeypatch: pytest.MonkeyPatch) -> None:
    inventory = parse_inventory_yaml(INVENTORY, source="inv.yml")
    detection = Detection(SigmaEngine([], load_sources()), inventory=inventory)
    events = [frame_to_event(frame) for _, frame in _batch()]
    assert all(isinstance(e, Event) and e.stored_document is not None for e in events)
    native = _prepared(detection)
    monkeypatch.setenv("SOCCTL_NATIVE", "0")
    reread_native_setting()
    try:
        assert all(isinstance(e, Event) and e.stored_document is None
                   for e in (frame_to_event(frame) for _, frame in _batch()))
        python = _prepared(detection)
    finally:
        monkeypatch.delenv("SOCCTL_NATIVE")
        reread_native_setting()
    assert native == python
    docs = [orjson.loads(record.source) for record in native]
    assert [doc.get("asset", {}).get("system", {}).get("id") for doc in docs] == ["portal", None, "portal"]
    assert [record.organization for record in native] == ["so-tttt", None, "so-tttt"]
    assert [record.keys[0] for record in native] == ["web01", "db07", "web01"]  # host.name


def test_building_the_ecs_document_drops_the_readers_stored_document() -> None:
    event = frame_to_event(_batch()[1][1])  # type: ignore[arg-type]
    assert isinstance(event, Event)
    source, text = event.stored_document or ("", "")
    assert orjson.loads(source) == event.to_document()  # builds the document: it may now change
    assert event.stored_document is None
    assert "deploy" in text.splitlines()
    assert event.raw not in text
