"""The detection stage over a file: read -> normalise -> match (Sigma, threat intel) -> exceptions -> asset
enrichment, and the base-rule matches the correlation stage needs. Pure of presentation: it returns what it found;
the CLI (or the running engine) decides where it goes. Runs the same in one process or in a worker pool: what it
returns pickles (correlation inputs carry copied field values, not the event).

Order per event: the Sigma engine's alerts, a network sensor's own alert (a Suricata alert record, a Zeek notice:
`correlator.sensor_alerts`), one threat-intel alert for the event's IOC hits, then the YARA alerts of the content
the event carries (`Event.payload`: a carved HTTP body, an uploaded file; `correlator.yara_payload`), when the
detection has YARA rules. A payload is dropped once scanned (it is never stored, nor shipped back from a worker);
one that cannot be scanned (too large, a timeout) is a dead letter naming the event. Each alert is
checked against the analysts' allowlist first (an excepted alert neither alerts nor counts towards correlation);
a rule referenced by correlation rules yields a `RuleMatch` (with the fields those rules read); a rule whose own
alerts are withheld (`generate`) stops there; the others are enriched with the asset inventory.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from collectors.errors import CollectorError
from collectors.evtx_reader import QuietRecords
from collectors.files import detect_format, read_path
from correlator.correlation.match import RuleMatch
from correlator.model import Alert, Event, EventOrigin, Rejected, nest
from correlator.sensor_alerts import SENSOR_FORMATS, sensor_alert
from correlator.sigma.engine import SigmaEngine
from correlator.yara_payload import scan_payload

if TYPE_CHECKING:
    from correlator.allowlist import Allowlist
    from correlator.assets import Inventory
    from correlator.intel_index import ThreatIntel
    from correlator.yara_payload import PayloadScanner

log = logging.getLogger(__name__)

__all__ = ["Detection", "FileResult", "detect_events", "detect_file", "enrich_alert", "enrich_event"]


@dataclass(frozen=True)
class Detection:
    """What the detection stage runs: the Sigma engine plus, when configured, threat intel, the asset inventory,
    the allowlist (checked at `now_ms`: an entry's expiry is wall-clock time), the correlation routing (rule id ->
    fields the correlation rules read; rule ids whose own alerts are withheld) and the YARA rules for event
    payloads (with them, capture files are read with HTTP bodies carved)."""

    engine: SigmaEngine
    intel: ThreatIntel | None = None
    inventory: Inventory | None = None
    allowlist: Allowlist | None = None
    correlation_fields: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    withheld: frozenset[str] = frozenset()
    now_ms: int = 0
    yara: PayloadScanner | None = None


@dataclass
class FileResult:
    """What one file gave: counts, alerts, correlation inputs, rejected records and (on request) the events."""

    path: str
    events: int = 0
    alerts: list[Alert] = field(default_factory=list)
    matches: list[RuleMatch] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    excepted: Counter[str] = field(default_factory=Counter)  # allowlist entry id -> alerts it excepted
    withheld: int = 0  # alerts of rules that only feed correlation rules
    event_lines: list[bytes] | None = None
    stored_events: list[Event] | None = None
    payloads: int = 0  # event payloads scanned with YARA (cache hits included)
    payload_cache_hits: int = 0  # of them, answered from the hit cache (identical content seen before)
    yara_alerts: int = 0  # YARA hits on payloads (before the allowlist and withholding)

    def add(self, other: FileResult) -> None:
        """Count `other` (a later part of the same input) into this result."""
        self.events += other.events
        self.alerts.extend(other.alerts)
        self.matches.extend(other.matches)
        self.rejected.extend(other.rejected)
        self.excepted.update(other.excepted)
        self.withheld += other.withheld
        self.payloads += other.payloads
        self.payload_cache_hits += other.payload_cache_hits
        self.yara_alerts += other.yara_alerts
        if self.event_lines is not None and other.event_lines:
            self.event_lines.extend(other.event_lines)
        if self.stored_events is not None and other.stored_events:
            self.stored_events.extend(other.stored_events)


def enrich_alert(alert: Alert, inventory: Inventory, fields: Mapping[str, Any]) -> None:
    """Add the asset, its system and agency (`assets.enrichment_fields`, nested) and every system the event
    touches (`asset.involved`) to the alert's extra fields."""
    from correlator.assets import enrichment_fields

    matches = inventory.enrich_all(fields)
    if not matches:
        return
    extra = nest(enrichment_fields(matches[0]))
    extra["asset"]["involved"] = [m.system.id for m in matches]
    for key, value in extra.items():
        current = alert.extra.get(key)
        alert.extra[key] = {**current, **value} if isinstance(current, dict) and isinstance(value, dict) else value


def enrich_event(event: Event, inventory: Inventory) -> None:
    """Add the asset fields (`assets.enrichment_fields`, nested) to an event's ECS document (events that are
    stored or written out; matching does not need them)."""
    from correlator.assets import enrichment_fields

    found = inventory.enrich(event.fields)
    if found is None:
        return
    doc = event.ecs
    for key, value in nest(enrichment_fields(found)).items():
        current = doc.get(key)
        doc[key] = {**current, **value} if isinstance(current, dict) and isinstance(value, dict) else value


def _post(event: Event, alerts: list[Alert], detection: Detection, result: FileResult) -> None:
    """Exceptions, correlation inputs, withholding and enrichment for the alerts of one event."""
    allowlist, inventory, fields_of = detection.allowlist, detection.inventory, detection.correlation_fields
    for alert in alerts:
        if allowlist is not None:
            entry = allowlist.match(alert, event.get, detection.now_ms)
            if entry is not None:
                result.excepted[entry.id] += 1
                continue
        needed = fields_of.get(alert.rule.id)
        if needed is not None:
            values = {name: event.get(name) for name in needed}
            result.matches.append(RuleMatch(alert.rule.id, event.id, event.timestamp_ms, values.get, None,
                                             event.host_name, event.origin))
        if alert.rule.id in detection.withheld:
            result.withheld += 1
            continue
        if inventory is not None:
            enrich_alert(alert, inventory, event.fields)
        result.alerts.append(alert)


def _scan_payload(event: Event, alerts: list[Alert], yara: PayloadScanner, result: FileResult) -> list[Alert]:
    """`alerts` plus the YARA alerts of the event's payload (a dead letter when it cannot be scanned); the
    payload is dropped."""
    scanner = yara.scanner()
    cached = scanner.stats.cache_hits
    outcome = scan_payload(scanner, event)
    event.payload = None
    result.payloads += 1
    result.payload_cache_hits += scanner.stats.cache_hits - cached
    if isinstance(outcome, Rejected):
        result.rejected.append(outcome)
        return alerts
    result.yara_alerts += len(outcome)
    return [*alerts, *outcome] if outcome else alerts


def detect_events(items: Iterator[Event | Rejected], detection: Detection | SigmaEngine,
                  result: FileResult) -> FileResult:
    """Run every event through the detection stage, collecting alerts, matches and rejects into `result`."""
    if isinstance(detection, SigmaEngine):
        detection = Detection(detection)
    lines = result.event_lines
    keep = result.stored_events
    match, intel, inventory, count = detection.engine.match, detection.intel, detection.inventory, 0
    plain = (detection.allowlist is None and detection.inventory is None and not detection.correlation_fields
             and not detection.withheld)
    yara = detection.yara
    add_alerts = result.alerts.extend
    try:
        for item in items:
            if isinstance(item, Rejected):
                result.rejected.append(item)
                continue
            count += 1
            if inventory is not None and (lines is not None or keep is not None):
                enrich_event(item, inventory)
            if lines is not None:
                lines.append(orjson.dumps(item.to_document(), default=str))
            if keep is not None:
                keep.append(item)
            alerts = match(item)
            if item.origin.format in SENSOR_FORMATS:
                sensed = sensor_alert(item)
                if sensed is not None:
                    alerts = [*alerts, sensed]
            if intel is not None:
                hits = intel.match_event(item)
                if hits:
                    from correlator.intel import hits_to_alert

                    alerts = [*alerts, hits_to_alert(item, hits)]
            if yara is not None and item.payload is not None:
                alerts = _scan_payload(item, alerts, yara, result)
            if alerts:
                if plain:
                    add_alerts(alerts)
                else:
                    _post(item, alerts, detection, result)
    finally:
        result.events += count  # also when a reader fails part way: the summary says how far it got
    return result


def detect_file(
    path: Path, detection: Detection | SigmaEngine, fmt: str | None = None, *, event_lines: bool = False,
    keep_events: bool = False, tz: tzinfo | None = None,
) -> FileResult:
    result = FileResult(
        str(path), event_lines=[] if event_lines else None, stored_events=[] if keep_events else None
    )
    quiet = _quiet(detection, event_lines, keep_events)
    try:
        return detect_events(_read(path, fmt, detection, tz, quiet), detection, result)
    except Exception as exc:  # a reader bug must not stop the run: what is left of the file is a dead letter
        log.exception("internal error while processing %s after %d events", path, result.events)
        reason = f"internal error after {result.events} events: {type(exc).__name__}: {exc}"
        result.rejected.append(Rejected(reason, EventOrigin(path=str(path), format=fmt or "unknown"), stage="read"))
        return result
    finally:
        if quiet is not None:
            result.events += quiet.count


def _quiet(detection: Detection | SigmaEngine, event_lines: bool, keep_events: bool) -> QuietRecords | None:
    """Records the EVTX reader may count without building: when nothing but the rules reads an event (no event
    lines, no stored events, no threat intel matched against every event)."""
    if event_lines or keep_events:
        return None
    if isinstance(detection, Detection) and detection.intel is not None:
        return None
    engine = detection if isinstance(detection, SigmaEngine) else detection.engine
    return QuietRecords(engine.quiet_prefilter)


def _read(path: Path, fmt: str | None, detection: Detection | SigmaEngine, tz: tzinfo | None,
          quiet: QuietRecords | None = None) -> Iterator[Event | Rejected]:
    """The file's records; a capture file with its HTTP bodies carved when there are YARA rules to scan them."""
    if isinstance(detection, SigmaEngine) or detection.yara is None:
        return read_path(path, fmt, tz=tz, quiet=quiet)
    if fmt is None:
        try:
            fmt = detect_format(path)
        except CollectorError:  # read_path reports it (or, for an empty file, yields nothing)
            return read_path(path, None)
    if fmt == "pcap":
        from collectors.pcap import read_file

        return read_file(path, carve=True)
    return read_path(path, fmt, tz=tz, quiet=quiet)
