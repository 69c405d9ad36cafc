"""The cases configuration: grouping, SLA and routing, in one YAML file whose keys override the defaults one by one
(a file with only ``sla: {critical: {acknowledge: 10m}}`` keeps every other default)::

    grouping:
      window: 24h                            # an alert joins a case seen within this time
      keys: [campaign, host, user, source_ip]  # priority order (grouping.py lists the fields of each)
      fields: {host: [host.name, Computer]}  # the fields of a key (a new key name needs its fields here)
      keyless: new_case                      # new_case | skip: an alert without any key value
      max_alerts: 1000                       # a case holding this many is full: the next alert opens a new case
    sla:                                     # per severity: time to acknowledge, time to contain
      critical: {acknowledge: 15m, contain: 4h}
      high: {acknowledge: 1h, contain: 8h}
      medium: {acknowledge: 4h, contain: 24h}
      low: {acknowledge: 24h, contain: 72h}
    routing:
      low: L1                                # owning layer per severity
      medium: L2
      high: L2
      critical: L2
      serious_candidate: L2                  # owner of a serious-incident candidate (at least)
      notify_l4: [candidate]                 # serious-incident statuses that notify L4 (+ awaiting_analyst)
      l3_assessment: true                    # list every case for L3's periodic assessment

`load_cases_config(path)` reads the file; `parse_cases_config(text, source)` parses text. Errors
(`CasesConfigError`) name the file, line and key. Nothing is read at import.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from correlator.cases.definitions import Layer
from correlator.cases.errors import CasesConfigError
from correlator.cases.grouping import DEFAULT_GROUPING, DEFAULT_KEY_FIELDS, GroupingConfig
from correlator.cases.routing import DEFAULT_ROUTING, RoutingPolicy
from correlator.cases.sla import DEFAULT_SLA, SlaPolicy, SlaTarget
from correlator.located_yaml import Located, load_located_yaml
from correlator.scoring import IncidentStatus, Severity
from correlator.timespec import TimeSpecError, parse_duration_ms

__all__ = ["CasesConfig", "load_cases_config", "parse_cases_config"]

_SECTIONS: Final = ("grouping", "sla", "routing")
_GROUPING_KEYS: Final = ("window", "keys", "fields", "keyless", "max_alerts")
_ROUTING_KEYS: Final = (*(s.value for s in Severity), "serious_candidate", "notify_l4", "l3_assessment")


@dataclass(frozen=True, slots=True)
class CasesConfig:
    grouping: GroupingConfig = DEFAULT_GROUPING
    sla: SlaPolicy = DEFAULT_SLA
    routing: RoutingPolicy = DEFAULT_ROUTING
    source: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The YAML shape: parsing it gives an equal configuration."""
        return {"grouping": self.grouping.to_dict(), "sla": self.sla.to_dict(), "routing": self.routing.to_dict()}


def load_cases_config(path: str | Path | None = None) -> CasesConfig:
    """The defaults, overridden by the file at `path` when given."""
    if path is None:
        return CasesConfig()
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CasesConfigError(f"cannot read: {exc.strerror or exc}", source=source) from None
    except UnicodeDecodeError as exc:
        raise CasesConfigError(f"not UTF-8 (byte {exc.start})", source=source) from None
    return parse_cases_config(text, source)


def parse_cases_config(text: str, source: str = "<cases config>") -> CasesConfig:
    doc = load_located_yaml(text, source, CasesConfigError)
    if doc is None:
        return CasesConfig(source=source)
    if not isinstance(doc, Located):
        raise CasesConfigError("must be a mapping of sections (grouping, sla, routing)", source=source, line=1)

    def fail(reason: str, mapping: Any, key: str, name: str) -> CasesConfigError:
        line = mapping.line_of(key) if isinstance(mapping, Located) else None
        return CasesConfigError(reason, source=source, line=line, key=name)

    def section(name: str, known: tuple[str, ...]) -> Located:
        body = doc.get(name)
        if body is None:
            empty = Located()
            empty.line, empty.key_lines = doc.line_of(name), {}
            return empty
        if not isinstance(body, Located):
            raise fail("must be a mapping", doc, name, name)
        for key in body:
            if key not in known:
                raise fail(f"unknown key (expected one of {', '.join(known)})", body, str(key), f"{name}.{key}")
        return body

    def duration(mapping: Located, key: str, name: str) -> int:
        value = mapping[key]
        if not isinstance(value, str):
            raise fail(f"must be a duration such as 15m, 4h or 1d, not {value!r}", mapping, key, name)
        try:
            return parse_duration_ms(value)
        except TimeSpecError as exc:
            raise fail(str(exc), mapping, key, name) from None

    def layer(mapping: Located, key: str, name: str) -> Layer:
        try:
            return Layer(str(mapping[key]))
        except ValueError:
            raise fail(f"unknown layer {mapping[key]!r} (expected one of L1, L2, L3, L4)", mapping, key,
                       name) from None

    for name in doc:
        if name not in _SECTIONS:
            raise fail(f"unknown section (expected one of {', '.join(_SECTIONS)})", doc, str(name), str(name))

    # grouping
    body = section("grouping", _GROUPING_KEYS)
    base = DEFAULT_GROUPING
    window = duration(body, "window", "grouping.window") if "window" in body else base.window_ms
    fields_doc = body.get("fields", {})
    if not isinstance(fields_doc, Mapping):
        raise fail("must be a mapping of key name -> list of fields", body, "fields", "grouping.fields")
    fields: dict[str, tuple[str, ...]] = {}
    for key_name, names in fields_doc.items():
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
            raise fail("must be a non-empty list of field names", fields_doc, str(key_name),
                       f"grouping.fields.{key_name}")
        fields[str(key_name)] = tuple(names)
    keys = body.get("keys", [k.name for k in base.keys])
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) for k in keys):
        raise fail("must be a non-empty list of key names", body, "keys", "grouping.keys")
    for key_name in keys:
        if key_name not in DEFAULT_KEY_FIELDS and key_name not in fields:
            raise fail(f"unknown key {key_name!r}: give its fields under grouping.fields (known: "
                       f"{', '.join(DEFAULT_KEY_FIELDS)})", body, "keys", "grouping.keys")
    keyless = body.get("keyless", base.keyless)
    if keyless not in {"new_case", "skip"}:
        raise fail(f"must be new_case or skip, not {keyless!r}", body, "keyless", "grouping.keyless")
    max_alerts = body.get("max_alerts", base.max_alerts)
    if not isinstance(max_alerts, int) or isinstance(max_alerts, bool) or max_alerts < 1:
        raise fail(f"must be a whole number of alerts, at least 1, not {max_alerts!r}", body, "max_alerts",
                   "grouping.max_alerts")
    grouping = GroupingConfig.of(keys, window_ms=window, keyless=keyless, fields=fields, max_alerts=max_alerts)

    # sla
    body = section("sla", tuple(s.value for s in Severity))
    targets = dict(DEFAULT_SLA.targets)
    for severity_name, spec in body.items():
        prefix = f"sla.{severity_name}"
        if not isinstance(spec, Located):
            raise fail("must be a mapping {acknowledge: DURATION, contain: DURATION}", body, severity_name, prefix)
        for key in spec:
            if key not in {"acknowledge", "contain"}:
                raise fail("unknown key (expected one of acknowledge, contain)", spec, str(key), f"{prefix}.{key}")
        severity = Severity(severity_name)
        old = targets[severity]
        acknowledge = duration(spec, "acknowledge", f"{prefix}.acknowledge") if "acknowledge" in spec \
            else old.acknowledge_ms
        contain = duration(spec, "contain", f"{prefix}.contain") if "contain" in spec else old.contain_ms
        try:
            targets[severity] = SlaTarget(acknowledge, contain)
        except ValueError as exc:
            raise fail(str(exc), body, severity_name, prefix) from None
    sla = SlaPolicy(MappingProxyType(targets))

    # routing
    body = section("routing", _ROUTING_KEYS)
    by_severity = {s: layer(body, s.value, f"routing.{s.value}") if s.value in body else DEFAULT_ROUTING
                   .by_severity[s] for s in Severity}
    serious_layer = layer(body, "serious_candidate", "routing.serious_candidate") if "serious_candidate" in body \
        else DEFAULT_ROUTING.serious_candidate
    notify = DEFAULT_ROUTING.notify_l4
    if "notify_l4" in body:
        raw = body["notify_l4"]
        allowed = (IncidentStatus.CANDIDATE.value, IncidentStatus.AWAITING_ANALYST.value)
        if not isinstance(raw, list) or not all(v in allowed for v in raw):
            raise fail(f"must be a list of {', '.join(allowed)} (may be empty), not {raw!r}", body, "notify_l4",
                       "routing.notify_l4")
        notify = frozenset(IncidentStatus(v) for v in raw)
    l3 = body.get("l3_assessment", DEFAULT_ROUTING.l3_assessment)
    if not isinstance(l3, bool):
        raise fail(f"must be true or false, not {l3!r}", body, "l3_assessment", "routing.l3_assessment")
    routing = RoutingPolicy(MappingProxyType(by_severity), serious_layer, notify, l3)
    return CasesConfig(grouping, sla, routing, source=source)
