"""A sensor's own detections (Suricata alert records, Zeek notices) become scored socctl alerts; other events
do not."""

from __future__ import annotations

import orjson
import pytest

from collectors.suricata import normalise_record as suricata_event
from collectors.zeek import normalise_record as zeek_event
from correlator.model import EventOrigin
from correlator.sensor_alerts import sensor_alert

ALERT = {
    "timestamp": "2026-11-20T01:00:00.000000+0700", "event_type": "alert", "src_ip": "10.1.2.7", "src_port": 51000,
    "dest_ip": "203.0.113.66", "dest_port": 443, "proto": "TCP", "host": "sensor01",
    "alert": {"action": "allowed", "gid": 1, "signature_id": 2_027_865, "rev": 3, "severity": 1,
              "signature": "ET MALWARE Observed Cobalt Strike C2 Domain", "category": "A Network Trojan was detected"},
}


def _suricata(record: dict[str, object]):  # type: ignore[no-untyped-def]
    raw = orjson.dumps(record).decode()
    return suricata_event(record, raw, EventOrigin(path="eve.json", offset=1, format="suricata-eve"))


@pytest.mark.parametrize(("severity", "level"), [(1, "high"), (2, "medium"), (3, "low"), (None, "medium")],
                         ids=["sev1", "sev2", "sev3", "none"])
def test_a_suricata_alert_record_is_an_alert(severity: int | None, level: str) -> None:
    record = {**ALERT, "alert": {**ALERT["alert"], "severity": severity}}  # type: ignore[dict-item]
    alert = sensor_alert(_suricata(record))
    assert alert is not None
    assert alert.rule.id == "suricata-2027865"
    assert alert.rule.title == "ET MALWARE Observed Cobalt Strike C2 Domain"
    assert alert.rule.kind == "ids"
    assert alert.rule.level == level
    assert alert.rule.tags == ("ids", "suricata", "suricata.A Network Trojan was detected")
    assert alert.matched["source.ip"] == "10.1.2.7"
    assert alert.matched["destination.ip"] == "203.0.113.66"
    assert alert.matched["destination.port"] == 443


def test_other_suricata_records_and_other_formats_are_not_alerts() -> None:
    flow = {key: value for key, value in ALERT.items() if key != "alert"}
    assert sensor_alert(_suricata({**flow, "event_type": "flow", "flow": {"pkts_toserver": 3}})) is None
    event = _suricata(ALERT)
    event.origin = EventOrigin(path="x.json", format="json")
    assert sensor_alert(event) is None


def test_a_zeek_notice_is_an_alert() -> None:
    record = {"ts": 1_763_600_000.5, "uid": "CAbc", "id.orig_h": "10.1.2.7", "id.orig_p": 51000,
              "id.resp_h": "203.0.113.66", "id.resp_p": 22, "proto": "tcp", "note": "SSH::Password_Guessing",
              "msg": "10.1.2.7 appears to be guessing SSH passwords (seen in 30 connections)."}
    raw = orjson.dumps(record).decode()
    event = zeek_event(record, raw, EventOrigin(path="notice.log", offset=1, format="zeek"), log_path="notice")
    alert = sensor_alert(event)
    assert alert is not None
    assert (alert.rule.id, alert.rule.level, alert.rule.kind) == ("zeek-SSH::Password_Guessing", "medium", "ids")
    assert alert.rule.description == record["msg"]
