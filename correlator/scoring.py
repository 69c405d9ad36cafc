"""Explained, deterministic risk scores (0-100 -> low/medium/high/critical) and the serious-incident test.

The score is a sum of integer points, each with its reason, clamped to 0..100::

    rule_level      points for the rule's level (informational .. critical)
    security_level  points for the affected system's cấp độ 1-5, or `unknown` when no asset matched
    criticality     points for the agency's ranking of the system (a system on the critical list counts as critical)
    correlation     per_related_alert x earlier related alerts, at most max_related
    chain           per_chain_level x chained correlation levels (1 = a correlation of base rules), at most max_chain
    history         - round(max_penalty x false positives / closed alerts) once the rule has min_alerts closed alerts
    intel, yara     per_hit x corroborating hits, at most max

The severity is the highest threshold (`severity.medium/high/critical`) the clamped score reaches, else low. The
weights and thresholds are configuration: `correlator/data/scoring.yml` holds the defaults and documents each key;
a user file overrides any of them key by key (`load_scoring_config(path)`), validated with errors naming the file,
line and key. Rounding is half-to-even on integers only where a fraction is involved (history), so the same inputs
always give the same score. The explanation lists the factors in the order above, leaving out those worth 0
points except rule level and asset: "high: rule level high (+40), asset level 3 (+15), correlated with 2 earlier
alerts (+10)".

Serious incident (`assess_serious_incident`): a candidate when all three conditions hold:

1. system: an affected system has security level >= `serious_incident.min_security_level` (4) or is on the
   critical list;
2. impact: the alert's impact is one of `ImpactType` - from its rule tags through `serious_incident.impact_tags`
   (ATT&CK tactics and techniques, e.g. ``attack.t1486`` -> data_loss + service_disruption, ``attack.exfiltration``
   -> secret_disclosure, ``attack.command-and-control`` -> loss_of_control, ``attack.lateral-movement`` -> spread),
   from the rule's meta ``impact`` (a name or a list of names), or given by the caller (an analyst's assessment).
   `spread` counts only when another involved system (not the first, the alert's own) meets condition 1;
3. containment: an analyst has stated that the owner cannot contain it (None = not yet assessed).

When 1 and 2 hold but 3 is not yet assessed, the status is `awaiting_analyst`: the case should ask for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from correlator.assets import Criticality, InformationSystem
from correlator.located_yaml import Located, LocatedError, load_located_yaml
from correlator.model import Alert, MatchedRule
from correlator.sigma.rule import Level

__all__ = [
    "DEFAULT_SCORING_PATH",
    "Condition",
    "Factor",
    "ImpactType",
    "IncidentStatus",
    "RiskScore",
    "RuleHistory",
    "ScoreContext",
    "ScoringConfig",
    "ScoringConfigError",
    "SeriousIncidentVerdict",
    "Severity",
    "assess_serious_incident",
    "impact_types",
    "load_scoring_config",
    "parse_scoring_config",
    "score",
    "score_alert",
]

DEFAULT_SCORING_PATH: Final = Path(__file__).parent / "data" / "scoring.yml"


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_ORDER.index(self)


_SEVERITY_ORDER: Final = (Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL)


class ImpactType(StrEnum):
    """The impacts that make an incident serious (with a level >= 4 system and an owner who cannot contain it)."""

    SERVICE_DISRUPTION = "service_disruption"
    SECRET_DISCLOSURE = "secret_disclosure"  # noqa: S105 - disclosure of state-secret data, not a password
    DATA_LOSS = "data_loss"  # unrecoverable loss of important data
    LOSS_OF_CONTROL = "loss_of_control"  # loss of control of the system
    SPREAD = "spread"  # spread to other level 4-5 systems


class ScoringConfigError(LocatedError):
    """An invalid scoring configuration: the file, the line where known, the key and the reason."""


# -- configuration


@dataclass(frozen=True, slots=True)
class ScoringConfig:
    """Validated weights, thresholds and the serious-incident policy. Build with `load_scoring_config`."""

    rule_level: Mapping[str, int]
    security_level: Mapping[int, int]
    unknown_asset: int
    criticality: Mapping[str, int]
    correlation: Mapping[str, int]
    history: Mapping[str, int]
    intel: Mapping[str, int]
    yara: Mapping[str, int]
    severity: Mapping[str, int]
    min_security_level: int
    impact_tags: Mapping[str, tuple[ImpactType, ...]]
    sources: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The YAML shape (`parse_scoring_config` of it gives an equal config)."""
        return {
            "rule_level": dict(self.rule_level),
            "security_level": {"unknown": self.unknown_asset, **self.security_level},
            "criticality": dict(self.criticality),
            "correlation": dict(self.correlation),
            "history": dict(self.history),
            "intel": dict(self.intel),
            "yara": dict(self.yara),
            "severity": dict(self.severity),
            "serious_incident": {
                "min_security_level": self.min_security_level,
                "impact_tags": {tag: [t.value for t in types] for tag, types in self.impact_tags.items()},
            },
        }

    def severity_of(self, points: int) -> Severity:
        for severity in reversed(_SEVERITY_ORDER[1:]):
            if points >= self.severity[severity.value]:
                return severity
        return Severity.LOW


# section -> (keys, bounds of each value); every key of every section is required once the files are merged
_POINTS: Final = (-100, 100)
_COUNT: Final = (0, 100)
_SECTIONS: Final[Mapping[str, tuple[tuple[str, ...], tuple[int, int]]]] = {
    "rule_level": (tuple(level.value for level in Level), _POINTS),
    "security_level": (("unknown", "1", "2", "3", "4", "5"), _POINTS),
    "criticality": (tuple(c.value for c in Criticality), _POINTS),
    "correlation": (("per_related_alert", "max_related", "per_chain_level", "max_chain"), _COUNT),
    "history": (("min_alerts", "max_penalty"), (0, 1_000_000)),
    "intel": (("per_hit", "max"), _COUNT),
    "yara": (("per_hit", "max"), _COUNT),
    "severity": (("medium", "high", "critical"), (1, 100)),
}


def load_scoring_config(path: str | Path | None = None) -> ScoringConfig:
    """The default weights (`DEFAULT_SCORING_PATH`), overridden key by key by the file at `path` when given."""
    layers = [_read(DEFAULT_SCORING_PATH)]
    if path is not None:
        layers.append(_read(Path(path)))
    return parse_scoring_config(layers)


def parse_scoring_config(layers: Sequence[tuple[str, str]]) -> ScoringConfig:
    """Merge (source, YAML text) layers, later over earlier, and validate. The first layer must be complete."""
    merged: dict[str, dict[str, Any]] = {}
    origin: dict[str, tuple[str, int | None]] = {}  # "section.key" and "section" -> (source, line)
    for source, text in layers:
        doc = load_located_yaml(text, source, ScoringConfigError)
        if doc is None:
            continue
        if not isinstance(doc, Located):
            raise ScoringConfigError("must be a mapping of sections", source=source, line=1)
        for section, body in doc.items():
            line = doc.line_of(section)
            if section not in _SECTIONS and section != "serious_incident":
                known = ", ".join([*_SECTIONS, "serious_incident"])
                raise ScoringConfigError(f"unknown section (expected one of {known})", source=source, line=line,
                                         key=str(section))
            if not isinstance(body, Located):
                raise ScoringConfigError("must be a mapping", source=source, line=line, key=section)
            origin[section] = (source, line)
            target = merged.setdefault(section, {})
            for key, value in body.items():
                name = str(key)
                origin[f"{section}.{name}"] = (source, body.line_of(name))
                if section == "serious_incident" and name == "impact_tags" and isinstance(value, Located):
                    tags = target.setdefault("impact_tags", {})
                    for tag, types in value.items():
                        tags[str(tag).lower()] = types
                        origin[f"{section}.impact_tags.{str(tag).lower()}"] = (source, value.line_of(tag))
                else:
                    target[name] = value
    return _build(merged, origin, tuple(source for source, _text in layers))


def _read(path: Path) -> tuple[str, str]:
    try:
        return str(path), path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ScoringConfigError(f"cannot read: {exc.strerror or exc}", source=str(path)) from None
    except UnicodeDecodeError as exc:
        raise ScoringConfigError(f"not UTF-8 (byte {exc.start})", source=str(path)) from None


def _build(
    merged: dict[str, dict[str, Any]], origin: Mapping[str, tuple[str, int | None]], sources: tuple[str, ...]
) -> ScoringConfig:
    def fail(key: str, reason: str) -> ScoringConfigError:
        source, line = origin.get(key) or origin.get(key.rsplit(".", 1)[0]) or ("<scoring>", None)
        return ScoringConfigError(reason, source=source, line=line, key=key)

    sections: dict[str, dict[str, int]] = {}
    for section, (keys, (low, high)) in _SECTIONS.items():
        body = merged.get(section, {})
        values: dict[str, int] = {}
        for key, value in body.items():
            if key not in keys:
                raise fail(f"{section}.{key}", f"unknown key (expected one of {', '.join(keys)})")
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise fail(f"{section}.{key}", f"must be an integer {low}..{high}, not {value!r}")
            values[key] = value
        missing = [key for key in keys if key not in values]
        if missing:
            raise fail(section, f"missing key(s) {', '.join(missing)}")
        sections[section] = values
    thresholds = sections["severity"]
    if not thresholds["medium"] < thresholds["high"] < thresholds["critical"]:
        raise fail("severity", "thresholds must increase: medium < high < critical")

    policy = merged.get("serious_incident", {})
    for key in policy:
        if key not in {"min_security_level", "impact_tags"}:
            raise fail(f"serious_incident.{key}", "unknown key (expected one of min_security_level, impact_tags)")
    minimum = policy.get("min_security_level")
    if isinstance(minimum, bool) or not isinstance(minimum, int) or not 1 <= minimum <= 5:
        raise fail("serious_incident.min_security_level", f"must be a level 1-5, not {minimum!r}")
    impact_tags: dict[str, tuple[ImpactType, ...]] = {}
    for tag, types in (policy.get("impact_tags") or {}).items():
        key = f"serious_incident.impact_tags.{tag}"
        names = [types] if isinstance(types, str) else types
        if not isinstance(names, list):
            raise fail(key, "must be an impact type or a list of them")
        try:
            impact_tags[tag] = tuple(ImpactType(str(name)) for name in names)
        except ValueError as exc:
            raise fail(key, f"{exc.args[0]} (expected {', '.join(t.value for t in ImpactType)})") from None

    levels = sections["security_level"]
    return ScoringConfig(
        rule_level=MappingProxyType(sections["rule_level"]),
        security_level=MappingProxyType({int(k): v for k, v in levels.items() if k != "unknown"}),
        unknown_asset=levels["unknown"],
        criticality=MappingProxyType(sections["criticality"]),
        correlation=MappingProxyType(sections["correlation"]),
        history=MappingProxyType(sections["history"]),
        intel=MappingProxyType(sections["intel"]),
        yara=MappingProxyType(sections["yara"]),
        severity=MappingProxyType(thresholds),
        min_security_level=minimum,
        impact_tags=MappingProxyType(impact_tags),
        sources=sources,
    )


# -- the score


@dataclass(frozen=True, slots=True)
class RuleHistory:
    """How a rule's past alerts were closed: `false_positives` of `total` closed as false positive."""

    total: int
    false_positives: int

    def __post_init__(self) -> None:
        if not 0 <= self.false_positives <= self.total:
            raise ValueError(f"need 0 <= false_positives <= total, got {self.false_positives}/{self.total}")


@dataclass(frozen=True, slots=True)
class ScoreContext:
    """What is known around an alert: its system (from the inventory), correlation and history, other hits."""

    system: InformationSystem | None = None
    related_alerts: int = 0  # earlier alerts of the same case / group
    chain_depth: int = 0  # 0: not a correlation; 1: a correlation of base rules; 2: over correlations ...
    history: RuleHistory | None = None
    intel_hits: int = 0  # corroborating hits beside the alert's own (an intel alert's level already counts)
    yara_hits: int = 0

    def __post_init__(self) -> None:
        for name in ("related_alerts", "chain_depth", "intel_hits", "yara_hits"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")


@dataclass(frozen=True, slots=True)
class Factor:
    name: str
    points: int
    reason: str

    def describe(self) -> str:
        return f"{self.reason} ({self.points:+d})"


@dataclass(frozen=True, slots=True)
class RiskScore:
    score: int
    severity: Severity
    factors: tuple[Factor, ...]
    explanation: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "severity": self.severity.value,
            "factors": [{"name": f.name, "points": f.points, "reason": f.reason} for f in self.factors],
            "explanation": self.explanation,
        }


_ALWAYS_EXPLAINED: Final = frozenset({"rule_level", "security_level"})


def score(level: str, context: ScoreContext, config: ScoringConfig) -> RiskScore:
    """The risk score of an alert of rule level `level` in `context` (see the module doc for the formula)."""
    factors: list[Factor] = []
    level_name = str(level).lower()
    if level_name in config.rule_level:
        factors.append(Factor("rule_level", config.rule_level[level_name], f"rule level {level_name}"))
    else:
        factors.append(Factor("rule_level", 0, f"rule level {level!r} unknown"))
    system = context.system
    if system is None:
        factors.append(Factor("security_level", config.unknown_asset, "asset unknown"))
    else:
        factors.append(Factor("security_level", config.security_level[int(system.security_level)],
                              f"asset level {int(system.security_level)}"))
        ranking = Criticality.CRITICAL if system.critical else system.criticality
        reason = "on the critical list" if system.critical else f"criticality {ranking.value}"
        factors.append(Factor("criticality", config.criticality[ranking.value], reason))
    weights = config.correlation
    if context.related_alerts:
        count = context.related_alerts
        points = min(count * weights["per_related_alert"], weights["max_related"])
        factors.append(Factor("correlation", points, f"correlated with {_plural(count, 'earlier alert')}"))
    if context.chain_depth:
        points = min(context.chain_depth * weights["per_chain_level"], weights["max_chain"])
        factors.append(Factor("chain", points, f"correlation chain depth {context.chain_depth}"))
    if context.history is not None:
        factors.append(_history_factor(context.history, config))
    for name, hits, noun in (("intel", context.intel_hits, "threat-intel hit"), ("yara", context.yara_hits,
                                                                                  "YARA hit")):
        if hits:
            weight = config.intel if name == "intel" else config.yara
            factors.append(Factor(name, min(hits * weight["per_hit"], weight["max"]), _plural(hits, noun)))
    total = sum(f.points for f in factors)
    clamped = max(0, min(100, total))
    severity = config.severity_of(clamped)
    parts = [f.describe() for f in factors if f.points or f.name in _ALWAYS_EXPLAINED]
    explanation = f"{severity.value}: {', '.join(parts)}"
    if clamped != total:
        explanation += f" = {total}, clamped to {clamped}"
    return RiskScore(clamped, severity, tuple(factors), explanation)


def score_alert(alert: Alert, context: ScoreContext, config: ScoringConfig) -> RiskScore:
    return score(alert.rule.level, context, config)


def _history_factor(history: RuleHistory, config: ScoringConfig) -> Factor:
    minimum = config.history["min_alerts"]
    if history.total < minimum or history.total == 0:
        return Factor("history", 0, f"too few closed alerts to judge ({history.total} < {max(minimum, 1)})")
    points = -round(config.history["max_penalty"] * history.false_positives / history.total)
    return Factor("history", points,
                  f"{history.false_positives} of {_plural(history.total, 'past alert')} false positive")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


# -- serious incident


class IncidentStatus(StrEnum):
    CANDIDATE = "candidate"
    AWAITING_ANALYST = "awaiting_analyst"  # system and impact hold; containment not yet assessed
    NOT_CANDIDATE = "not_candidate"


@dataclass(frozen=True, slots=True)
class Condition:
    name: str  # system | impact | containment
    met: bool | None  # None: not assessed
    reason: str


@dataclass(frozen=True, slots=True)
class SeriousIncidentVerdict:
    status: IncidentStatus
    system: Condition
    impact: Condition
    containment: Condition
    impacts: tuple[ImpactType, ...] = field(default=())

    @property
    def candidate(self) -> bool:
        return self.status is IncidentStatus.CANDIDATE

    @property
    def conditions(self) -> tuple[Condition, Condition, Condition]:
        return (self.system, self.impact, self.containment)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "candidate": self.candidate,
            "impacts": [impact.value for impact in self.impacts],
            "conditions": [{"name": c.name, "met": c.met, "reason": c.reason} for c in self.conditions],
        }


def impact_types(rule: MatchedRule, config: ScoringConfig) -> tuple[tuple[ImpactType, ...], tuple[str, ...]]:
    """The rule's impact types (from tags and meta ``impact``, in `ImpactType` order) and the notes on what was
    ignored (unknown names in meta)."""
    found: dict[ImpactType, None] = {}
    notes: list[str] = []
    for tag in rule.tags:
        for impact in config.impact_tags.get(tag.lower(), ()):
            found.setdefault(impact)
    for key, value in rule.meta:
        if key != "impact":
            continue
        for name in [value] if isinstance(value, str) else list(value or ()):
            try:
                found.setdefault(ImpactType(str(name).strip().lower()))
            except ValueError:
                notes.append(f"unknown impact {name!r} in rule meta ignored")
    return tuple(impact for impact in ImpactType if impact in found), tuple(notes)


def assess_serious_incident(
    rule: MatchedRule | Alert,
    systems: Sequence[InformationSystem],
    config: ScoringConfig,
    *,
    owner_cannot_contain: bool | None = None,
    impacts: Iterable[ImpactType | str] = (),
) -> SeriousIncidentVerdict:
    """Decide the serious-incident test for an alert (or its rule). `systems`: the alert's own system first, then
    every other system the alert or its case involves (`Inventory.enrich_all`). `impacts`: impact types an analyst
    or a caller adds to those of the rule. `owner_cannot_contain`: the analyst's assessment, None until made."""
    matched_rule = rule.rule if isinstance(rule, Alert) else rule
    minimum = config.min_security_level

    def qualifies(system: InformationSystem) -> bool:
        return system.critical or system.security_level >= minimum

    qualifying = [s for s in systems if qualifies(s)]
    if qualifying:
        first = qualifying[0]
        why = "on the critical list" if first.critical else f"security level {int(first.security_level)}"
        system_condition = Condition("system", True, f"system {first.id!r} is {why} (>= {minimum} required)")
    elif systems:
        levels = ", ".join(f"{s.id!r} level {int(s.security_level)}" for s in systems)
        system_condition = Condition("system", False, f"no system of level >= {minimum} or on the critical list "
                                                      f"({levels})")
    else:
        system_condition = Condition("system", False, "no affected system known (not in the inventory)")

    from_rule, notes = impact_types(matched_rule, config)
    given: list[ImpactType] = []
    for name in impacts:
        try:
            given.append(ImpactType(name))
        except ValueError:
            notes = (*notes, f"unknown impact {name!r} ignored")
    all_impacts = tuple(impact for impact in ImpactType if impact in from_rule or impact in given)
    counted = list(all_impacts)
    if ImpactType.SPREAD in counted and not any(qualifies(s) for s in systems[1:]):
        counted.remove(ImpactType.SPREAD)
        notes = (*notes, f"spread ignored: no other system of level >= {minimum} or on the critical list involved")
    if counted:
        reason = f"impact {', '.join(i.value for i in counted)}"
    else:
        reason = "no serious impact type from rule tags, rule meta or analyst"
    if notes:
        reason += f" ({'; '.join(notes)})"
    impact_condition = Condition("impact", bool(counted), reason)

    if owner_cannot_contain is None:
        containment = Condition("containment", None, "not yet assessed by an analyst")
    elif owner_cannot_contain:
        containment = Condition("containment", True, "analyst: the owner cannot contain it")
    else:
        containment = Condition("containment", False, "analyst: the owner can contain it")

    if system_condition.met and impact_condition.met:
        status = {None: IncidentStatus.AWAITING_ANALYST, True: IncidentStatus.CANDIDATE,
                  False: IncidentStatus.NOT_CANDIDATE}[containment.met]
    else:
        status = IncidentStatus.NOT_CANDIDATE
    return SeriousIncidentVerdict(status, system_condition, impact_condition, containment, tuple(counted))

