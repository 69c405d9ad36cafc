"""Every change to a case is a command: a frozen dataclass applied by `lifecycle.apply`.

Commands have `to_dict()` (``{"type": "transition", "to": "acknowledged", "reason": null}``) and
`command_from_dict(d)`, so the CLI, the API and an audit log can pass them around as JSON; `type` is also the
`TimelineEntry.action` of the entry a command produces.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from enum import Enum
from typing import Any, ClassVar, Final

from correlator.cases.definitions import (
    CaseStatus,
    IncidentType,
    Layer,
    TaskStatus,
)
from correlator.cases.model import Case, CaseAlert, Evidence, SlaDeadlines, Task, risk_from_dict
from correlator.scoring import IncidentStatus

__all__ = [
    "COMMAND_TYPES",
    "AddAlert",
    "Assign",
    "AssignPlaybook",
    "AttachEvidence",
    "Command",
    "Comment",
    "Deescalate",
    "Escalate",
    "Merge",
    "MergedInto",
    "Notify",
    "SetSerious",
    "SetSla",
    "SetTaskStatus",
    "SplitOut",
    "Tag",
    "Transition",
    "command_from_dict",
]

class Command:
    """Base of the commands; `type` names the command in JSON and in the timeline (`TimelineEntry.action`)."""

    type: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        for item in fields(self):  # type: ignore[arg-type]
            out[item.name] = _encode(getattr(self, item.name))
        return out


def _encode(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return value


@dataclass(frozen=True, slots=True)
class Assign(Command):
    type: ClassVar[str] = "assign"
    assignee: str | None  # None unassigns


@dataclass(frozen=True, slots=True)
class Transition(Command):
    type: ClassVar[str] = "transition"
    to: CaseStatus
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Comment(Command):
    type: ClassVar[str] = "comment"
    text: str


@dataclass(frozen=True, slots=True)
class AddAlert(Command):
    """An alert joins the case; a higher score than the case's raises its risk (and severity when it crosses a
    threshold). `agency` / `systems`: the alert's asset enrichment, added to the case's."""

    type: ClassVar[str] = "add_alert"
    alert: CaseAlert
    agency: str | None = None
    systems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AttachEvidence(Command):
    type: ClassVar[str] = "attach_evidence"
    evidence: Evidence


@dataclass(frozen=True, slots=True)
class Escalate(Command):
    """Move ownership to a higher layer (L1 -> L2 -> L3 -> L4); the reason is required."""

    type: ClassVar[str] = "escalate"
    to: Layer
    reason: str


@dataclass(frozen=True, slots=True)
class Deescalate(Command):
    type: ClassVar[str] = "deescalate"
    to: Layer
    reason: str


@dataclass(frozen=True, slots=True)
class Notify(Command):
    """Inform a layer without handing it the case (an L4 notification for a serious-incident candidate)."""

    type: ClassVar[str] = "notify"
    layer: Layer
    reason: str


@dataclass(frozen=True, slots=True)
class Tag(Command):
    type: ClassVar[str] = "tag"
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SetTaskStatus(Command):
    type: ClassVar[str] = "task_status"
    task_id: str
    status: TaskStatus
    note: str | None = None


@dataclass(frozen=True, slots=True)
class AssignPlaybook(Command):
    """Give the case a playbook (its steps as tasks) and incident type; None clears both."""

    type: ClassVar[str] = "assign_playbook"
    playbook_id: str | None
    incident_type: IncidentType | None
    tasks: tuple[Task, ...] = ()
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class SetSerious(Command):
    """The serious-incident status (scoring.assess_serious_incident, or an analyst's assessment)."""

    type: ClassVar[str] = "set_serious"
    status: IncidentStatus
    reason: str


@dataclass(frozen=True, slots=True)
class SetSla(Command):
    type: ClassVar[str] = "set_sla"
    sla: SlaDeadlines
    reason: str


@dataclass(frozen=True, slots=True)
class Merge(Command):
    """Absorb `source` (another case): its alerts, evidence, tags, systems, notified layers and its whole timeline
    (kept as it is, entries still naming the source case). The source gets `MergedInto`."""

    type: ClassVar[str] = "merge"
    source: Case

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "source": self.source.to_dict()}


@dataclass(frozen=True, slots=True)
class MergedInto(Command):
    """This case was merged into `target_id`: it is closed and points there."""

    type: ClassVar[str] = "merged_into"
    target_id: str


@dataclass(frozen=True, slots=True)
class SplitOut(Command):
    """Move `alert_ids` out of this case into the new case `new_case_id` (made by `grouping.split_case`)."""

    type: ClassVar[str] = "split_out"
    alert_ids: tuple[str, ...]
    new_case_id: str


COMMAND_TYPES: Final[Mapping[str, type[Command]]] = {
    cls.type: cls for cls in (Assign, Transition, Comment, AddAlert, AttachEvidence, Escalate, Deescalate, Notify,
                              Tag, SetTaskStatus, AssignPlaybook, SetSerious, SetSla, Merge, MergedInto, SplitOut)
}


def command_from_dict(data: Mapping[str, Any]) -> Command:
    """The inverse of `Command.to_dict`; an unknown type or a bad value raises ValueError naming it."""
    kind = data.get("type")
    cls = COMMAND_TYPES.get(str(kind))
    if cls is None:
        raise ValueError(f"unknown command type {kind!r} (expected one of {', '.join(COMMAND_TYPES)})")
    args = {k: v for k, v in data.items() if k != "type"}
    decode: Mapping[str, Callable[[Any], Any]] = {
        "to": (CaseStatus if cls is Transition else Layer), "layer": Layer, "status":
        (TaskStatus if cls is SetTaskStatus else IncidentStatus), "alert": CaseAlert.from_dict,
        "evidence": Evidence.from_dict, "sla": SlaDeadlines.from_dict, "source": Case.from_dict,
        "incident_type": lambda v: None if v is None else IncidentType(v),
        "tasks": lambda v: tuple(Task.from_dict(t) for t in v), "risk": risk_from_dict,
        "add": tuple, "remove": tuple, "systems": tuple, "alert_ids": tuple,
    }
    for name, value in args.items():
        if name in decode:
            args[name] = decode[name](value)
    try:
        return cls(**args)
    except TypeError as exc:
        raise ValueError(f"command {kind}: {exc}") from None
