"""The case and what it holds: alert references, evidence, playbook tasks, SLA deadlines and the timeline.

Every type is a frozen dataclass with `to_dict` / `from_dict` (JSON-ready: strings, ints, lists, dicts), so the
store can keep a case as one document and give it back unchanged: ``Case.from_dict(case.to_dict()) == case``.
Times are epoch milliseconds (UTC). A case changes only through `correlator.cases.commands.apply`, which returns a
new case with `version` + 1 and one more `TimelineEntry`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from correlator.cases.definitions import OPEN_STATUSES, CaseStatus, IncidentType, Layer, TaskStatus
from correlator.scoring import Factor, IncidentStatus, RiskScore, Severity

__all__ = [
    "Case",
    "CaseAlert",
    "Evidence",
    "SlaDeadlines",
    "Task",
    "TimelineEntry",
    "canonical_json",
    "risk_from_dict",
]

_SHA256: Final = re.compile(r"[0-9a-f]{64}")


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces: the bytes that deterministic ids hash."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def risk_from_dict(data: Mapping[str, Any]) -> RiskScore:
    """The inverse of `RiskScore.to_dict` (scoring.py has no `from_dict` yet)."""
    return RiskScore(
        score=int(data["score"]),
        severity=Severity(data["severity"]),
        factors=tuple(Factor(str(f["name"]), int(f["points"]), str(f["reason"])) for f in data.get("factors", ())),
        explanation=str(data["explanation"]),
    )


@dataclass(frozen=True, slots=True)
class CaseAlert:
    """What a case keeps of each of its alerts: enough to split, re-pick a playbook and recompute severity without
    reading the alert back from the store."""

    id: str
    event_id: str
    rule_id: str
    rule_title: str
    level: str
    timestamp_ms: int
    risk: RiskScore
    kind: str = "sigma"
    tags: tuple[str, ...] = ()
    host_name: str | None = None
    # The document, made when first asked (`to_dict`): a case is saved again with every alert it gains, and its
    # earlier alerts do not change. Not a field of the document.
    _doc: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def score(self) -> int:
        return self.risk.score

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (a new dict each call; its nested risk and tags are shared: do not change them)."""
        doc = self._doc
        if doc is None:
            doc = {
                "id": self.id, "event_id": self.event_id, "rule_id": self.rule_id, "rule_title": self.rule_title,
                "level": self.level, "timestamp_ms": self.timestamp_ms, "risk": self.risk.to_dict(),
                "kind": self.kind, "tags": list(self.tags), "host_name": self.host_name,
            }
            object.__setattr__(self, "_doc", doc)
        return dict(doc)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CaseAlert:
        return cls(
            id=data["id"], event_id=data["event_id"], rule_id=data["rule_id"], rule_title=data["rule_title"],
            level=data["level"], timestamp_ms=int(data["timestamp_ms"]), risk=risk_from_dict(data["risk"]),
            kind=data.get("kind", "sigma"), tags=tuple(data.get("tags", ())), host_name=data.get("host_name"),
        )


@dataclass(frozen=True, slots=True)
class Evidence:
    """An event (by id) or a file (path and sha256) attached to a case. The id is `event:<id>` or
    `file:<sha256>`, so the same evidence is not attached twice."""

    kind: str  # event | file
    event_id: str | None = None
    path: str | None = None
    sha256: str | None = None
    note: str | None = None

    def __post_init__(self) -> None:
        if self.kind == "event":
            if not self.event_id or self.path is not None or self.sha256 is not None:
                raise ValueError("event evidence needs an event_id and no path or sha256")
        elif self.kind == "file":
            if not self.path or self.event_id is not None:
                raise ValueError("file evidence needs a path and no event_id")
            if self.sha256 is None or not _SHA256.fullmatch(self.sha256):
                raise ValueError(f"file evidence needs a sha256 of 64 lower-case hex digits, not {self.sha256!r}")
        else:
            raise ValueError(f"evidence kind must be event or file, not {self.kind!r}")

    @property
    def id(self) -> str:
        return f"event:{self.event_id}" if self.kind == "event" else f"file:{self.sha256}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind}
        for name in ("event_id", "path", "sha256", "note"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evidence:
        return cls(kind=data["kind"], event_id=data.get("event_id"), path=data.get("path"),
                   sha256=data.get("sha256"), note=data.get("note"))


@dataclass(frozen=True, slots=True)
class Task:
    """A playbook step on one case: who (layer) does what by when, and where it stands."""

    id: str  # the step id, unique within the playbook
    title: str
    layer: Layer
    due_ms: int
    status: TaskStatus = TaskStatus.TODO
    evidence: tuple[str, ...] = ()  # the evidence the step is expected to produce
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "layer": self.layer.value, "due_ms": self.due_ms,
                "status": self.status.value, "evidence": list(self.evidence), "note": self.note}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Task:
        return cls(id=data["id"], title=data["title"], layer=Layer(data["layer"]), due_ms=int(data["due_ms"]),
                   status=TaskStatus(data.get("status", "todo")), evidence=tuple(data.get("evidence", ())),
                   note=data.get("note"))


@dataclass(frozen=True, slots=True)
class SlaDeadlines:
    """When the case must be acknowledged and contained (epoch ms), from its severity's SLA."""

    acknowledge_by_ms: int
    contain_by_ms: int

    def to_dict(self) -> dict[str, Any]:
        return {"acknowledge_by_ms": self.acknowledge_by_ms, "contain_by_ms": self.contain_by_ms}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SlaDeadlines:
        return cls(int(data["acknowledge_by_ms"]), int(data["contain_by_ms"]))


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One change of a case: who, when, what (`action`, a human `summary`), and the changed fields before and
    after. `seq` is the case version the change produced; the id is a hash of the entry's content, so applying the
    same command to the same case gives the same entry."""

    id: str
    case_id: str
    seq: int
    at_ms: int
    actor: str
    action: str
    summary: str
    before: Mapping[str, Any] = field(default_factory=dict)
    after: Mapping[str, Any] = field(default_factory=dict)
    reason: str | None = None
    _doc: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)  # as CaseAlert's

    @staticmethod
    def make(case_id: str, seq: int, at_ms: int, actor: str, action: str, summary: str, *,
             before: Mapping[str, Any] | None = None, after: Mapping[str, Any] | None = None,
             reason: str | None = None) -> TimelineEntry:
        body = {"case_id": case_id, "seq": seq, "at_ms": at_ms, "actor": actor, "action": action,
                "summary": summary, "before": dict(before or {}), "after": dict(after or {}), "reason": reason}
        digest = hashlib.sha256(canonical_json(body)).hexdigest()[:24]
        return TimelineEntry(id=digest, case_id=case_id, seq=seq, at_ms=at_ms, actor=actor, action=action,
                             summary=summary, before=dict(before or {}), after=dict(after or {}), reason=reason)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (a new dict each call; its nested before and after are shared: do not change them)."""
        doc = self._doc
        if doc is None:
            doc = {"id": self.id, "case_id": self.case_id, "seq": self.seq, "at_ms": self.at_ms, "actor": self.actor,
                   "action": self.action, "summary": self.summary, "before": dict(self.before),
                   "after": dict(self.after), "reason": self.reason}
            object.__setattr__(self, "_doc", doc)
        return dict(doc)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TimelineEntry:
        return cls(id=data["id"], case_id=data["case_id"], seq=int(data["seq"]), at_ms=int(data["at_ms"]),
                   actor=data["actor"], action=data["action"], summary=data["summary"],
                   before=dict(data.get("before") or {}), after=dict(data.get("after") or {}),
                   reason=data.get("reason"))


@dataclass(frozen=True, slots=True)
class Case:
    """An incident case. Build new ones with `correlator.cases.commands.open_case`; change them with `apply`."""

    id: str
    title: str
    created_ms: int
    severity: Severity
    layer: Layer
    status: CaseStatus = CaseStatus.NEW
    risk: RiskScore | None = None  # the highest-scoring alert's score and its explanation
    updated_ms: int = 0
    first_seen_ms: int | None = None
    last_seen_ms: int | None = None
    agency: str | None = None  # organization.id of the affected system's owner
    systems: tuple[str, ...] = ()  # asset.system.id of the affected systems
    assignee: str | None = None
    tags: tuple[str, ...] = ()  # sorted, unique
    alerts: tuple[CaseAlert, ...] = ()  # in order of arrival
    evidence: tuple[Evidence, ...] = ()
    group_key: str | None = None  # "host:web01" (see grouping.py)
    serious: IncidentStatus = IncidentStatus.NOT_CANDIDATE
    notify: tuple[Layer, ...] = ()  # layers informed besides the owner (L4 for serious-incident candidates)
    l3_assessment: bool = True  # listed for L3's periodic assessment
    incident_type: IncidentType | None = None
    playbook_id: str | None = None
    tasks: tuple[Task, ...] = ()
    sla: SlaDeadlines | None = None
    acknowledged_ms: int | None = None
    contained_ms: int | None = None
    closed_ms: int | None = None  # closed or false_positive
    merged_into: str | None = None
    merged_from: tuple[str, ...] = ()
    split_from: str | None = None
    version: int = 0
    timeline: tuple[TimelineEntry, ...] = ()
    # The alert ids as a set, made when first asked (`has_alert`): not a field of the document.
    _alert_set: frozenset[str] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def alert_ids(self) -> tuple[str, ...]:
        return tuple(alert.id for alert in self.alerts)

    def has_alert(self, alert_id: str) -> bool:
        """Whether the alert is in the case (a set lookup: a large case is asked once per incoming alert)."""
        known = self._alert_set
        if known is None:
            known = frozenset(alert.id for alert in self.alerts)
            object.__setattr__(self, "_alert_set", known)
        return alert_id in known

    def carry_alert_set(self, previous: Case, added: str) -> None:
        """This case is `previous` with alert `added` more: its id set is the previous one's and that one (a copy
        in C instead of a walk of every alert), when the previous one was made."""
        known = previous._alert_set
        if known is not None:
            object.__setattr__(self, "_alert_set", known | {added})

    @property
    def event_ids(self) -> tuple[str, ...]:
        """The events behind the case: its alerts' events, then attached event evidence."""
        seen = dict.fromkeys(alert.event_id for alert in self.alerts)
        seen.update(dict.fromkeys(e.event_id for e in self.evidence if e.event_id is not None))
        return tuple(seen)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def serious_candidate(self) -> bool:
        return self.serious is IncidentStatus.CANDIDATE

    def task(self, task_id: str) -> Task | None:
        return next((task for task in self.tasks if task.id == task_id), None)

    def to_dict(self, *, timeline: bool = True) -> dict[str, Any]:
        """The JSON document; `timeline=False` leaves the timeline out (a store may keep entries apart)."""
        out: dict[str, Any] = {
            "id": self.id, "title": self.title, "status": self.status.value, "severity": self.severity.value,
            "risk": self.risk.to_dict() if self.risk is not None else None, "layer": self.layer.value,
            "created_ms": self.created_ms, "updated_ms": self.updated_ms, "first_seen_ms": self.first_seen_ms,
            "last_seen_ms": self.last_seen_ms, "agency": self.agency, "systems": list(self.systems),
            "assignee": self.assignee, "tags": list(self.tags), "alert_ids": list(self.alert_ids),
            "alerts": [a.to_dict() for a in self.alerts], "evidence": [e.to_dict() for e in self.evidence],
            "group_key": self.group_key, "serious": self.serious.value,
            "notify": [layer.value for layer in self.notify], "l3_assessment": self.l3_assessment,
            "incident_type": self.incident_type.value if self.incident_type is not None else None,
            "playbook_id": self.playbook_id, "tasks": [t.to_dict() for t in self.tasks],
            "sla": self.sla.to_dict() if self.sla is not None else None,
            "acknowledged_ms": self.acknowledged_ms, "contained_ms": self.contained_ms,
            "closed_ms": self.closed_ms, "merged_into": self.merged_into, "merged_from": list(self.merged_from),
            "split_from": self.split_from, "version": self.version,
        }
        if timeline:
            out["timeline"] = [entry.to_dict() for entry in self.timeline]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], timeline: Sequence[Mapping[str, Any]] | None = None) -> Case:
        """From `to_dict`; `timeline` gives the entries when the document was stored without them."""
        entries = data.get("timeline", ()) if timeline is None else timeline
        risk = data.get("risk")
        sla = data.get("sla")
        incident_type = data.get("incident_type")
        return cls(
            id=data["id"], title=data["title"], status=CaseStatus(data["status"]),
            severity=Severity(data["severity"]), risk=risk_from_dict(risk) if risk is not None else None,
            layer=Layer(data["layer"]), created_ms=int(data["created_ms"]), updated_ms=int(data["updated_ms"]),
            first_seen_ms=data.get("first_seen_ms"), last_seen_ms=data.get("last_seen_ms"),
            agency=data.get("agency"), systems=tuple(data.get("systems", ())), assignee=data.get("assignee"),
            tags=tuple(data.get("tags", ())), alerts=tuple(CaseAlert.from_dict(a) for a in data.get("alerts", ())),
            evidence=tuple(Evidence.from_dict(e) for e in data.get("evidence", ())),
            group_key=data.get("group_key"), serious=IncidentStatus(data.get("serious", "not_candidate")),
            notify=tuple(Layer(layer) for layer in data.get("notify", ())),
            l3_assessment=bool(data.get("l3_assessment", True)),
            incident_type=IncidentType(incident_type) if incident_type is not None else None,
            playbook_id=data.get("playbook_id"), tasks=tuple(Task.from_dict(t) for t in data.get("tasks", ())),
            sla=SlaDeadlines.from_dict(sla) if sla is not None else None,
            acknowledged_ms=data.get("acknowledged_ms"), contained_ms=data.get("contained_ms"),
            closed_ms=data.get("closed_ms"), merged_into=data.get("merged_into"),
            merged_from=tuple(data.get("merged_from", ())), split_from=data.get("split_from"),
            version=int(data.get("version", 0)),
            timeline=tuple(TimelineEntry.from_dict(e) for e in entries),
        )
