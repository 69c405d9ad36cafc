"""A network sensor's own detections as socctl alerts: a Suricata `alert` record or a Zeek `notice` is already a
detection, so it becomes an `Alert` (kind ``ids``) that is scored, suppressed and grouped into cases like a Sigma
alert — without it, an IDS alert would only be an event in the store.

Rule: ``suricata-<signature id>`` (title the signature, tags ``ids``, ``suricata`` and the category) or
``zeek-<note>``; level from Suricata's severity (1 → high, 2 → medium, 3 and above → low; no severity → medium)
and ``medium`` for a Zeek notice. `matched` holds the 5-tuple and the rule fields, so the alert explains itself.
Which events qualify is decided on the reader's format first (a string compare), so other events cost nothing.
"""

from __future__ import annotations

from typing import Any, Final

from correlator.model import Alert, Event, MatchedRule

__all__ = ["SENSOR_FORMATS", "sensor_alert"]

SENSOR_FORMATS: Final = frozenset({"suricata-eve", "zeek"})
_LEVELS: Final = {1: "high", 2: "medium"}
_MATCHED: Final = ("source.ip", "source.port", "destination.ip", "destination.port", "network.transport",
                   "rule.id", "rule.name", "rule.category", "event.severity", "event.action", "url.original",
                   "dns.question.name", "tls.client.server_name")


def sensor_alert(event: Event) -> Alert | None:
    """The alert of a Suricata alert record or a Zeek notice; None for every other event."""
    if event.origin.format not in SENSOR_FORMATS:
        return None
    dataset = event.get("event.dataset")
    if dataset == "suricata.alert":
        rule_id = event.get("rule.id")
        title = event.get("rule.name") or f"Suricata signature {rule_id}"
        severity = event.get("event.severity")
        level = _LEVELS.get(severity, "low") if isinstance(severity, int) else "medium"
        category = event.get("rule.category")
        tags = ("ids", "suricata", *([f"suricata.{category}"] if isinstance(category, str) and category else []))
        rule = MatchedRule(id=f"suricata-{rule_id}", title=str(title), level=level, tags=tags, kind="ids",
                           meta=(("sensor", "suricata"),))
    elif dataset == "zeek.notice":
        note = event.get("rule.name") or "notice"
        rule = MatchedRule(id=f"zeek-{note}", title=f"Zeek notice {note}", level="medium",
                           tags=("ids", "zeek"), kind="ids", description=event.get("message"),
                           meta=(("sensor", "zeek"),))
    else:
        return None
    matched: dict[str, Any] = {}
    for name in _MATCHED:
        value = event.get(name)
        if value is not None:
            matched[name] = value
    return Alert(rule=rule, event_id=event.id, timestamp_ms=event.timestamp_ms, host_name=event.host_name,
                 origin=event.origin, matched=matched)
