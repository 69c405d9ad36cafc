"""Alerts into cases: grouping keys, the time window, and the grouper that opens and feeds cases.

Key (`group_key`): the first key of `GroupingConfig.keys` (priority order) for which the alert has a value gives
the case's grouping key, ``"<key name>:<value>"`` (host names and user names in lower case). Default keys and the
alert fields they read (flat dotted names, looked up in the alert's `host_name`, then `extra` flat or nested, then
`matched`)::

    campaign     campaign.id, threat.campaign.id             (a campaign / intel operation id)
    correlation  correlation.id, correlation.group           (a correlation alert's group-by values)
    host         host.name, host.hostname, Computer
    user         user.name, TargetUserName, user.target.name
    source_ip    source.ip, IpAddress, src_ip

The default order is ``campaign, host, user, source_ip``: so every alert of one host goes to one case; put
``user`` first to follow an account across hosts. An alert with no key value follows `keyless`: ``new_case``
(default: a case of its own) or ``skip``.

Window: an alert joins an open case (`definitions.OPEN_STATUSES`) of the same key when its time lies within
`window` (default 24h) of the case's alerts: ``first_seen - window <= t <= last_seen + window``; of several, the
one seen last (ties: the smallest id). Otherwise it opens a new case whose id is a hash of the key and the alert id.
A case holding `max_alerts` alerts (default 1,000) is full: it takes no more, and the next alert of its key opens
a new case whose opening timeline entry names the full one (a long campaign becomes a chain of bounded cases, each
document rewritten at a bounded cost, instead of one case whose every change rewrites all its alerts).

Then the grouper keeps the case in line with the configuration, each change a timeline entry by `SYSTEM_ACTOR`:
a higher-scoring alert raises the risk and severity (`AddAlert`); the serious-incident status only goes up; the
playbook is re-chosen from all the case's alerts while no task has started (so it depends on the set of alerts,
not their order); SLA deadlines follow the severity; and `routing_commands` escalates and notifies.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from correlator.cases.commands import AddAlert, AssignPlaybook, Command, Merge, MergedInto, SetSerious, SetSla, SplitOut
from correlator.cases.definitions import SYSTEM_ACTOR, TaskStatus, format_duration
from correlator.cases.errors import CommandError
from correlator.cases.lifecycle import SERIOUS_ORDER, apply, case_risk, open_case
from correlator.cases.model import Case, CaseAlert, TimelineEntry
from correlator.cases.playbooks import PlaybookSet, tasks_for
from correlator.cases.routing import DEFAULT_ROUTING, RoutingPolicy, route, routing_commands
from correlator.cases.sla import DEFAULT_SLA, SlaPolicy
from correlator.model import Alert, alert_value
from correlator.scoring import IncidentStatus, RiskScore, SeriousIncidentVerdict

__all__ = [
    "DEFAULT_GROUPING",
    "DEFAULT_KEY_FIELDS",
    "CaseGrouper",
    "GroupResult",
    "GroupingConfig",
    "GroupingKey",
    "IncomingAlert",
    "alert_value",
    "case_alert",
    "group_key",
    "merge_cases",
    "split_case",
]

DEFAULT_KEY_FIELDS: Final[Mapping[str, tuple[str, ...]]] = {
    "campaign": ("campaign.id", "threat.campaign.id"),
    "correlation": ("correlation.id", "correlation.group"),
    "host": ("host.name", "host.hostname", "Computer"),
    "user": ("user.name", "TargetUserName", "user.target.name"),
    "source_ip": ("source.ip", "IpAddress", "src_ip"),
}
_CASE_FOLDED: Final = frozenset({"host", "user"})
_EMPTY: Final = frozenset({"", "-", "null", "none"})


@dataclass(frozen=True, slots=True)
class GroupingKey:
    name: str
    fields: tuple[str, ...]
    lower: bool = False  # compare values case-insensitively

    def __post_init__(self) -> None:
        if not self.name or ":" in self.name:
            raise ValueError(f"invalid key name {self.name!r}")
        if not self.fields:
            raise ValueError(f"key {self.name!r} needs at least one field")


# Alerts one case holds at most (Kibana's cases stop at 1,000 attached alerts too): a case document carries its
# alerts, and each change rewrites it, so an unbounded case would make every alert of a long campaign dearer.
DEFAULT_MAX_ALERTS: Final = 1000


@dataclass(frozen=True, slots=True)
class GroupingConfig:
    keys: tuple[GroupingKey, ...]
    window_ms: int = 24 * 3_600_000
    keyless: str = "new_case"  # new_case | skip
    max_alerts: int = DEFAULT_MAX_ALERTS  # a case holding this many alerts is full: the next opens a new case

    def __post_init__(self) -> None:
        if self.window_ms < 1:
            raise ValueError("grouping window must be at least 1 ms")
        if self.max_alerts < 1:
            raise ValueError(f"max_alerts must be at least 1, got {self.max_alerts}")
        if self.keyless not in {"new_case", "skip"}:
            raise ValueError(f"keyless must be new_case or skip, not {self.keyless!r}")
        if not self.keys:
            raise ValueError("grouping needs at least one key")

    @classmethod
    def of(cls, names: Sequence[str], *, window_ms: int = 24 * 3_600_000, keyless: str = "new_case",
           fields: Mapping[str, Sequence[str]] | None = None, max_alerts: int = DEFAULT_MAX_ALERTS,
           ) -> GroupingConfig:
        """Keys by name, with their default fields unless `fields` gives others."""
        chosen = {**DEFAULT_KEY_FIELDS, **{k: tuple(v) for k, v in (fields or {}).items()}}
        unknown = [n for n in names if n not in chosen]
        if unknown:
            raise ValueError(f"unknown grouping key(s) {', '.join(unknown)} (give their fields)")
        return cls(tuple(GroupingKey(n, tuple(chosen[n]), n in _CASE_FOLDED) for n in names), window_ms, keyless,
                   max_alerts)

    def to_dict(self) -> dict[str, Any]:
        return {"window": format_duration(self.window_ms), "keys": [k.name for k in self.keys],
                "fields": {k.name: list(k.fields) for k in self.keys}, "keyless": self.keyless,
                "max_alerts": self.max_alerts}


DEFAULT_GROUPING: Final = GroupingConfig.of(("campaign", "host", "user", "source_ip"))


def _key_text(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Mapping):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode() if value else None
    if isinstance(value, list | tuple):
        return _key_text(value[0]) if value else None
    text = str(value).strip()
    return None if text.lower() in _EMPTY else text


def group_key(alert: Alert, config: GroupingConfig = DEFAULT_GROUPING) -> str | None:
    """``"<key>:<value>"`` of the first key with a value, or None (see the module doc)."""
    for key in config.keys:
        for name in key.fields:
            text = _key_text(alert_value(alert, name))
            if text is not None:
                return f"{key.name}:{text.lower() if key.lower else text}"
    return None


def case_alert(alert: Alert, risk: RiskScore) -> CaseAlert:
    return CaseAlert(id=alert.id, event_id=alert.event_id, rule_id=alert.rule.id, rule_title=alert.rule.title,
                     level=alert.rule.level, timestamp_ms=alert.timestamp_ms, risk=risk, kind=alert.rule.kind,
                     tags=tuple(alert.rule.tags), host_name=alert.host_name)


@dataclass(frozen=True, slots=True)
class IncomingAlert:
    """An alert with what the scoring stage found: its risk score and, where assessed, the serious-incident
    verdict."""

    alert: Alert
    risk: RiskScore
    verdict: SeriousIncidentVerdict | None = None


@dataclass(frozen=True, slots=True)
class GroupResult:
    """What one alert did: the case it went to (None when skipped), the entries recorded, whether the case is new;
    `duplicate` when the alert was already in the case (a replay: nothing changes)."""

    case: Case | None
    entries: tuple[TimelineEntry, ...] = ()
    opened: bool = False
    duplicate: bool = False


def _case_id(*parts: str) -> str:
    return "case-" + hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class CaseGrouper:
    """Pure decisions over cases given to it: the caller (the store, or `group_all` in memory) supplies the open
    cases of the alert's key and keeps what comes back."""

    playbooks: PlaybookSet = field(default_factory=PlaybookSet)
    grouping: GroupingConfig = DEFAULT_GROUPING
    sla: SlaPolicy = DEFAULT_SLA
    routing: RoutingPolicy = DEFAULT_ROUTING

    def key_of(self, alert: Alert) -> str | None:
        return group_key(alert, self.grouping)

    def decide(self, alert: Alert, key: str | None, candidates: Iterable[Case]) -> Case | None:
        """The open case `alert` (of grouping key `key`) joins, or None for a new case."""
        if key is None:
            return None
        t = alert.timestamp_ms
        fitting = [c for c in self.in_window(key, t, candidates) if len(c.alerts) < self.grouping.max_alerts]
        if not fitting:
            return None
        return min(fitting, key=lambda c: (-(c.last_seen_ms or 0), c.id))

    def in_window(self, key: str, t: int, candidates: Iterable[Case]) -> list[Case]:
        """The open cases of `key` whose alerts lie within the window of time `t` (full ones included)."""
        window = self.grouping.window_ms
        return [c for c in candidates if c.is_open and c.group_key == key and c.first_seen_ms is not None
                and c.last_seen_ms is not None and c.first_seen_ms - window <= t <= c.last_seen_ms + window]

    def add(self, incoming: IncomingAlert, candidates: Iterable[Case], at_ms: int,
            actor: str = SYSTEM_ACTOR) -> GroupResult:
        """Put one alert into a case: join one of `candidates` (the open cases of its key) or open a new one."""
        alert = incoming.alert
        candidates = list(candidates)
        for case in candidates:
            if case.has_alert(alert.id):
                return GroupResult(case, duplicate=True)
        key = self.key_of(alert)
        if key is None and self.grouping.keyless == "skip":
            return GroupResult(None)
        item = case_alert(alert, incoming.risk)
        agency = _key_text(alert_value(alert, "organization.id"))
        system = _key_text(alert_value(alert, "asset.system.id"))
        systems = (system,) if system else ()
        entries: list[TimelineEntry] = []
        target = self.decide(alert, key, candidates)
        opened = target is None
        if target is None:
            serious = incoming.verdict.status if incoming.verdict else IncidentStatus.NOT_CANDIDATE
            where = key.split(":", 1)[1] if key else (alert.host_name or "unknown host")
            full = sorted(c.id for c in self.in_window(key, alert.timestamp_ms, candidates)) if key else []
            continued = (f"; continues {', '.join(full)}, full ({self.grouping.max_alerts} alerts)" if full
                         else "")
            case, entry = open_case(
                _case_id(key or "", alert.id), f"{alert.rule.title} ({where})", at_ms=at_ms, actor=actor,
                severity=incoming.risk.severity, layer=route(incoming.risk.severity, serious, self.routing).layer,
                risk=incoming.risk, agency=agency, systems=systems, group_key=key, alerts=(item,),
                sla=self.sla.deadlines(incoming.risk.severity, at_ms), l3_assessment=self.routing.l3_assessment,
                reason=f"alert {alert.id} ({key or 'no grouping key'}){continued}",
            )
            entries.append(entry)
        else:
            case, entry = apply(target, AddAlert(item, agency, systems), actor, at_ms)
            entries.append(entry)
        case = self._follow_up(case, incoming.verdict, actor, at_ms, entries, target)
        return GroupResult(case, tuple(entries), opened=opened)

    def refresh(self, case: Case, actor: str, at_ms: int,
                verdict: SeriousIncidentVerdict | None = None) -> tuple[Case, tuple[TimelineEntry, ...]]:
        """Bring `case` in line with the configuration (serious status, playbook, SLA, routing); for a case changed
        by hand (merge, split) or after a configuration reload."""
        entries: list[TimelineEntry] = []
        return self._follow_up(case, verdict, actor, at_ms, entries, None), tuple(entries)

    def _follow_up(self, case: Case, verdict: SeriousIncidentVerdict | None, actor: str, at_ms: int,
                   entries: list[TimelineEntry], previous: Case | None) -> Case:
        """`previous`: the case before the alert joined (None: new or explicitly refreshed). Routing runs only
        then or when the severity or serious status rose, so an analyst's de-escalation holds until they do."""
        commands: list[Command] = []
        if verdict is not None and SERIOUS_ORDER.index(verdict.status) > SERIOUS_ORDER.index(case.serious):
            reasons = "; ".join(c.reason for c in verdict.conditions)
            commands.append(SetSerious(verdict.status, reasons))
        for command in commands:
            case = _record(case, command, actor, at_ms, entries)
        if not case.is_open:
            return case
        if all(t.status is TaskStatus.TODO for t in case.tasks) and self._may_change_playbook(case, previous):
            playbook = self.playbooks.select(case.alerts)
            if playbook is not None and playbook.id != case.playbook_id:
                count = sum(1 for a in case.alerts if playbook.match.matches_alert(a))
                case = _record(case, AssignPlaybook(
                    playbook.id, playbook.incident_type, tasks_for(playbook, case.created_ms),
                    f"matches {count} of {len(case.alerts)} alerts"), actor, at_ms, entries)
        sla = self.sla.for_case(case)
        if sla != case.sla:
            case = _record(case, SetSla(sla, f"severity {case.severity.value}"), actor, at_ms, entries)
        if previous is None or case.severity.rank > previous.severity.rank or \
                SERIOUS_ORDER.index(case.serious) > SERIOUS_ORDER.index(previous.serious):
            for command in routing_commands(case, self.routing):
                case = _record(case, command, actor, at_ms, entries)
        return case

    def _may_change_playbook(self, case: Case, previous: Case | None) -> bool:
        """Whether the playbook choice can differ: always for a new or refreshed case; after one more alert only
        when that alert matches a playbook other than the case's (more of the chosen one cannot change it)."""
        if previous is None or len(case.alerts) != len(previous.alerts) + 1:
            return True
        added = case.alerts[-1]
        return any(p.id != case.playbook_id and p.match.matches_alert(added) for p in self.playbooks.playbooks.values())

    def group_all(self, incoming: Iterable[IncomingAlert], at_ms: int | None = None) -> tuple[Case, ...]:
        """Group a batch in memory (a replay, a test): each alert at `at_ms`, or at its own time when None. The
        cases in order of opening."""
        cases: dict[str, Case] = {}
        by_key: dict[str | None, list[str]] = {}
        for item in incoming:
            key = self.key_of(item.alert)
            candidates = [cases[i] for i in by_key.get(key, ())]
            result = self.add(item, candidates, item.alert.timestamp_ms if at_ms is None else at_ms)
            if result.case is None:
                continue
            if result.opened:
                by_key.setdefault(result.case.group_key, []).append(result.case.id)
            cases[result.case.id] = result.case
        return tuple(cases.values())

    def merge(self, target: Case, source: Case, actor: str, at_ms: int
              ) -> tuple[Case, Case, tuple[TimelineEntry, ...]]:
        merged, closed, entries = merge_cases(target, source, actor, at_ms)
        merged, more = self.refresh(merged, actor, at_ms)
        return merged, closed, (*entries, *more)

    def split(self, case: Case, alert_ids: Sequence[str], actor: str, at_ms: int
              ) -> tuple[Case, Case, tuple[TimelineEntry, ...]]:
        remaining, new_case, entries = split_case(case, alert_ids, actor, at_ms)
        remaining, more = self.refresh(remaining, actor, at_ms)
        new_case, more_new = self.refresh(new_case, actor, at_ms)
        return remaining, new_case, (*entries, *more, *more_new)


def _record(case: Case, command: Command, actor: str, at_ms: int, entries: list[TimelineEntry]) -> Case:
    case, entry = apply(case, command, actor, at_ms)
    entries.append(entry)
    return case


def merge_cases(target: Case, source: Case, actor: str, at_ms: int
                ) -> tuple[Case, Case, tuple[TimelineEntry, ...]]:
    """`target` absorbs `source` (its alerts, evidence, tags and whole timeline); `source` is closed and points to
    `target`. Returns (target, source, the two entries)."""
    merged, entry = apply(target, Merge(source), actor, at_ms)
    closed, closing = apply(source, MergedInto(target.id), actor, at_ms)
    return merged, closed, (entry, closing)


def split_case(case: Case, alert_ids: Sequence[str], actor: str, at_ms: int
               ) -> tuple[Case, Case, tuple[TimelineEntry, ...]]:
    """Move `alert_ids` out of `case` into a new case (id from the case id and the moved alert ids), which keeps
    the owner layer, key, agency and systems. Returns (the case, the new case, the entries of both)."""
    moving = tuple(sorted(set(alert_ids)))
    new_id = _case_id("split", case.id, *moving)
    remaining, entry = apply(case, SplitOut(moving, new_id), actor, at_ms)
    moved = tuple(a for a in case.alerts if a.id in set(moving))
    risk = case_risk(moved)
    if risk is None:
        raise CommandError(case.id, "split_out", "no alerts to split out")
    new_case, opening = open_case(
        new_id, f"{case.title} (split)", at_ms=at_ms, actor=actor, severity=risk.severity, layer=case.layer,
        risk=risk, agency=case.agency, systems=case.systems, group_key=case.group_key, alerts=moved,
        l3_assessment=case.l3_assessment, split_from=case.id, reason=f"split from case {case.id}",
    )
    return remaining, new_case, (entry, opening)
