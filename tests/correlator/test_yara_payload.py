"""YARA on the content events carry (`correlator.yara_payload`) and in the detection stage: alerts linked to the
carrying event with the fields that lead to the flow and the transaction, dead letters for what cannot be
scanned, a bounded hit cache shared by the scanners of a process, and the stage in `detect_events`."""

from __future__ import annotations

import hashlib
import pickle
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from correlator.model import Alert, Event, EventOrigin, Rejected
from correlator.pipeline import Detection, FileResult, detect_events
from correlator.sigma.engine import SigmaEngine
from correlator.sigma.loader import load_rules
from correlator.sigma.sources import load_sources
from correlator.yara_payload import PIVOT_FIELDS, HitCache, PayloadScanner, scan_payload
from correlator.yara_rules import YaraRuleSet, compile_rules

MARKER_RULE = """
rule Stage2_Marker : loader test
{
    meta:
        description = "the stage-2 loader's marker"
        severity = "high"
    strings:
        $m = "STAGE2-MARKER"
    condition:
        $m
}
"""
SLOW_RULE = """
rule Slow {
    condition:
        for all i in (0..filesize) : ( for all j in (0..filesize) : ( uint8(i) != 0x1FF ) )
}
"""
SIGMA_RULE = """title: Download of a stage-2 binary
id: 5b0c1f9e-2d4a-4c3e-9f1a-7e6d5c4b3a21
level: medium
logsource:
  category: proxy
detection:
  sel:
    url.original|contains: '/dl/'
  condition: sel
"""
BODY = b"MZ\x90\x00" + b"\x00" * 100 + b"STAGE2-MARKER" + b"\xcc" * 50
T_MS = 1_710_000_004_000

HTTP_FIELDS: dict[str, Any] = {
    "event.module": "network", "event.dataset": "network.http", "event.kind": "event",
    "event.category": ["network", "web"], "network.community_id": "1:hO+sN4H+MG5MY/8hIrXPqc4ZQz0=",
    "network.transport": "tcp", "network.protocol": "http", "source.ip": "10.0.0.5", "source.port": 49152,
    "destination.ip": "203.0.113.80", "destination.port": 80, "destination.domain": "files.evil.test",
    "url.original": "/dl/stage2.bin?id=42", "url.path": "/dl/stage2.bin", "url.domain": "files.evil.test",
    "http.request.method": "GET", "http.response.status_code": 200, "user_agent.original": "loader/1.0",
    "http.response.mime_type": "application/octet-stream",
}


def http_event(body: bytes | None = BODY, *, event_id: str = "e" * 32, whole: bytes | None = None,
               **extra: Any) -> Event:
    """An http event as the network sensor gives it; `whole` is the whole body when `body` is its carved start."""
    fields = dict(HTTP_FIELDS)
    named = whole if whole is not None else body
    if named is not None:
        fields.update({"file.hash.sha256": hashlib.sha256(named).hexdigest(), "file.size": len(named),
                       "file.mime_type": "application/octet-stream"})
    fields.update(extra)
    return Event(event_id, T_MS, '{"kind": "http"}', ecs={}, fields=fields,
                 origin=EventOrigin(path="capture.pcap", record_id=7, format="pcap"), payload=body)


@pytest.fixture
def rules_dir(tmp_path: Path) -> Callable[..., Path]:
    def write(**files: str) -> Path:
        folder = tmp_path / "yara"
        folder.mkdir(exist_ok=True)
        for name, text in files.items():
            (folder / f"{name}.yar").write_text(text, encoding="utf-8")
        return folder

    return write


@pytest.fixture
def ruleset(rules_dir: Callable[..., Path]) -> YaraRuleSet:
    return compile_rules([rules_dir(marker=MARKER_RULE)])


@pytest.fixture
def payloads(ruleset: YaraRuleSet) -> PayloadScanner:
    return PayloadScanner(ruleset, timeout_s=5)


def alerts_of(outcome: list[Alert] | Rejected) -> list[Alert]:
    assert isinstance(outcome, list), outcome
    return outcome


# --- scan_payload -------------------------------------------------------------------------------------------------


def test_a_hit_is_an_alert_linked_to_the_carrying_event(payloads: PayloadScanner) -> None:
    event = http_event()
    (alert,) = alerts_of(scan_payload(payloads.scanner(), event))
    assert (alert.event_id, alert.timestamp_ms, alert.host_name, alert.origin) == (
        event.id, T_MS, None, event.origin)
    assert (alert.rule.id, alert.rule.title, alert.rule.kind, alert.rule.level, alert.rule.tags) == (
        "marker:Stage2_Marker", "Stage2_Marker", "yara", "high", ("loader", "test"))
    doc = alert.to_dict()
    assert doc["event"] == {"id": event.id, "kind": "alert"}
    assert doc["network"] == {"community_id": HTTP_FIELDS["network.community_id"], "transport": "tcp",
                              "protocol": "http"}
    assert doc["source"] == {"ip": "10.0.0.5", "port": 49152}
    assert doc["destination"] == {"ip": "203.0.113.80", "port": 80, "domain": "files.evil.test"}
    assert doc["url"] == {"original": "/dl/stage2.bin?id=42", "domain": "files.evil.test"}
    assert doc["http"] == {"request": {"method": "GET"}, "response": {"status_code": 200}}
    assert doc["user_agent"] == {"original": "loader/1.0"}
    assert doc["file"] == {"hash": {"sha256": hashlib.sha256(BODY).hexdigest()}, "size": len(BODY),
                           "mime_type": "application/octet-stream"}
    assert doc["yara"] == {"matches": [{"pattern": "$m", "offset": 104, "length": 13}]}
    assert doc["matched"] == {"yara.patterns": ["$m"]}
    assert doc["log"] == {"file": {"path": "capture.pcap"}, "record_id": 7}


def test_pivot_fields_come_from_the_event_only_when_it_has_them(payloads: PayloadScanner) -> None:
    event = Event("u" * 32, T_MS, "upload", ecs={"host": {"name": "web01"}},
                  fields={"file.name": "shell.php", "file.path": "/srv/uploads/shell.php"},
                  origin=EventOrigin(path="intake", format="http-upload"), host_name="web01", payload=BODY)
    (alert,) = alerts_of(scan_payload(payloads.scanner(), event))
    doc = alert.to_dict()
    assert doc["host"] == {"name": "web01"}
    assert doc["file"] == {"hash": {"sha256": hashlib.sha256(BODY).hexdigest()}, "size": len(BODY),
                           "name": "shell.php", "path": "/srv/uploads/shell.php"}
    assert not set(doc) & {name.split(".")[0] for name in PIVOT_FIELDS}


@pytest.mark.parametrize("body", [b"an ordinary page", None, b""], ids=["clean", "no-payload", "empty"])
def test_nothing_to_report(payloads: PayloadScanner, body: bytes | None) -> None:
    assert scan_payload(payloads.scanner(), http_event(body)) == []


def test_a_carved_start_of_a_longer_body_says_what_was_scanned(payloads: PayloadScanner) -> None:
    whole = BODY + bytes(5000)
    (alert,) = alerts_of(scan_payload(payloads.scanner(), http_event(BODY, whole=whole)))
    assert alert.extra["file"] == {"hash": {"sha256": hashlib.sha256(whole).hexdigest()}, "size": len(whole),
                                   "mime_type": "application/octet-stream"}
    assert alert.extra["yara"]["scanned"] == {"bytes": len(BODY), "sha256": hashlib.sha256(BODY).hexdigest()}


def test_a_payload_over_the_size_limit_is_a_dead_letter(ruleset: YaraRuleSet) -> None:
    scanner = PayloadScanner(ruleset, max_size=100).scanner()
    event = http_event()
    outcome = scan_payload(scanner, event)
    assert outcome == Rejected(f"payload too large for YARA: event {event.id}: {len(BODY)} bytes > limit 100",
                               event.origin, raw=event.raw, stage="scan")
    assert scanner.stats.files == 0


def test_a_scan_timeout_is_a_dead_letter(rules_dir: Callable[..., Path]) -> None:
    scanner = PayloadScanner(compile_rules([rules_dir(slow=SLOW_RULE)]), timeout_s=1).scanner()
    event = http_event(b"A" * 100_000)
    outcome = scan_payload(scanner, event)
    assert isinstance(outcome, Rejected)
    assert outcome.reason == f"YARA scan timed out after 1s: payload of event {event.id}"
    assert (outcome.stage, outcome.origin, outcome.raw) == ("scan", event.origin, event.raw)


# --- PayloadScanner and its cache --------------------------------------------------------------------------------


def test_identical_payloads_are_scanned_once(payloads: PayloadScanner) -> None:
    scanner = payloads.scanner()
    first = alerts_of(scan_payload(scanner, http_event(event_id="a" * 32)))
    second = alerts_of(scan_payload(scanner, http_event(event_id="b" * 32)))
    assert scanner.stats.cache_hits == 1
    assert [a.event_id for a in [*first, *second]] == ["a" * 32, "b" * 32]  # each linked to its own event
    assert [a.extra for a in first] == [a.extra for a in second]


def test_threads_get_their_own_scanner_and_share_the_cache(payloads: PayloadScanner) -> None:
    mine = payloads.scanner()
    assert payloads.scanner() is mine
    scan_payload(mine, http_event())
    seen: list[tuple[bool, int, list[str]]] = []

    def work() -> None:  # a yara-x scanner must stay in the thread that made it: keep only what it says
        scanner = payloads.scanner()
        alerts = scan_payload(scanner, http_event(event_id="t" * 32))
        assert isinstance(alerts, list)
        seen.append((scanner is mine, scanner.stats.cache_hits, [a.event_id for a in alerts]))

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen == [(False, 1, ["t" * 32])]


def test_the_hit_cache_keeps_the_most_recently_used() -> None:
    cache = HitCache(2)
    cache["a"], cache["b"] = (), ()
    assert cache["a"] == ()  # a is now the most recent
    cache["c"] = ()
    assert sorted(cache) == ["a", "c"]
    assert cache.get("b") is None
    with pytest.raises(ValueError, match="max_entries must be at least 1, got 0"):
        HitCache(0)


def test_a_payload_scanner_pickles_as_its_serialised_rules(payloads: PayloadScanner) -> None:
    copy = pickle.loads(pickle.dumps(payloads))
    assert (copy.rule_count, copy.timeout_s, copy.max_size) == (1, 5, payloads.max_size)
    assert [a.to_dict() for a in alerts_of(scan_payload(copy.scanner(), http_event()))] == [
        a.to_dict() for a in alerts_of(scan_payload(payloads.scanner(), http_event()))]


@pytest.mark.parametrize(("settings", "message"), [
    ({"timeout_s": 0}, "timeout_s must be at least 1 second, got 0"),
    ({"max_size": -1}, "max_size must be >= 0, got -1"),
    ({"cache_entries": 0}, "cache_entries must be at least 1, got 0"),
], ids=["timeout", "max-size", "cache"])
def test_payload_scanner_settings_are_checked(ruleset: YaraRuleSet, settings: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PayloadScanner(ruleset, **settings)


# --- in the detection stage ---------------------------------------------------------------------------------------


@pytest.fixture
def engine(tmp_path: Path) -> SigmaEngine:
    (tmp_path / "sigma").mkdir()
    (tmp_path / "sigma" / "proxy.yml").write_text(SIGMA_RULE, encoding="utf-8")
    sources = load_sources()
    ruleset = load_rules([tmp_path / "sigma"], sources=sources)
    assert not ruleset.errors
    return SigmaEngine(ruleset.rules, sources)


def detect(detection: Detection, *items: Event | Rejected, keep: bool = False) -> FileResult:
    return detect_events(iter(items), detection, FileResult("test", stored_events=[] if keep else None))


def titles(alerts: list[Alert]) -> list[tuple[str, str]]:
    return [(alert.rule.kind, alert.rule.title) for alert in alerts]


def test_detection_scans_payloads_after_sigma(engine: SigmaEngine, payloads: PayloadScanner) -> None:
    carrying, clean, bare = http_event(event_id="a" * 32), http_event(b"fine", event_id="b" * 32), \
        http_event(None, event_id="c" * 32)
    result = detect(Detection(engine, yara=payloads), carrying, clean, bare, keep=True)
    assert titles(result.alerts) == [("sigma", "Download of a stage-2 binary"), ("yara", "Stage2_Marker"),
                                     ("sigma", "Download of a stage-2 binary"),
                                     ("sigma", "Download of a stage-2 binary")]
    assert result.alerts[1].event_id == carrying.id
    assert (result.events, result.payloads, result.payload_cache_hits, result.yara_alerts) == (3, 2, 0, 1)
    assert result.stored_events is not None
    assert [event.payload for event in result.stored_events] == [None, None, None]  # never kept


def test_without_yara_payloads_are_left_alone(engine: SigmaEngine) -> None:
    event = http_event()
    result = detect(Detection(engine), event)
    assert titles(result.alerts) == [("sigma", "Download of a stage-2 binary")]
    assert (result.payloads, event.payload) == (0, BODY)


def test_detection_counts_cache_hits_and_dead_letters(engine: SigmaEngine, ruleset: YaraRuleSet) -> None:
    payloads = PayloadScanner(ruleset, max_size=1000)
    big = http_event(BODY + bytes(2000), event_id="d" * 32)
    result = detect(Detection(engine, yara=payloads), http_event(event_id="a" * 32), big,
                    http_event(event_id="b" * 32))
    assert [alert.event_id for alert in result.alerts if alert.rule.kind == "yara"] == ["a" * 32, "b" * 32]
    assert (result.payloads, result.payload_cache_hits, result.yara_alerts) == (3, 1, 2)
    assert [r.reason for r in result.rejected] == [
        f"payload too large for YARA: event {'d' * 32}: {len(BODY) + 2000} bytes > limit 1000"]


def test_yara_alerts_go_through_the_allowlist(engine: SigmaEngine, payloads: PayloadScanner) -> None:
    from correlator.allowlist import Allowlist, AllowlistEntry

    entry = AllowlistEntry.from_dict({"id": "al-1", "rule": "marker:Stage2_Marker", "field": "url.domain",
                                      "value": "files.evil.test", "reason": "the red team's server",
                                      "author": "soc"})
    result = detect(Detection(engine, yara=payloads, allowlist=Allowlist((entry,))), http_event())
    assert titles(result.alerts) == [("sigma", "Download of a stage-2 binary")]
    assert result.excepted == {"al-1": 1}
    assert result.yara_alerts == 1
