"""Opening and changing cases: one pure function applies every command::

    new_case, entry = apply(case, command, actor, at_ms, expected_version=None)

`apply` never mutates: it returns the new case (version + 1, `updated_ms = at_ms`, the timeline one entry longer)
and that entry (who, when, what, the changed fields before and after, a reason where the command has one).
`expected_version` is optimistic concurrency: a caller that read version 7 passes 7, and a case changed meanwhile
raises `StaleCaseError`. Status changes follow `definitions.TRANSITIONS`; a closed or false-positive case takes only
comments, tags and evidence. New cases come from `open_case`, whose "open" entry is the first of the timeline
(version 1).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any, Final

from correlator.cases.commands import (
    AddAlert,
    Assign,
    AssignPlaybook,
    AttachEvidence,
    Command,
    Comment,
    Deescalate,
    Escalate,
    Merge,
    MergedInto,
    Notify,
    SetSerious,
    SetSla,
    SetTaskStatus,
    SplitOut,
    Tag,
    Transition,
)
from correlator.cases.definitions import (
    SYSTEM_ACTOR,
    TERMINAL_STATUSES,
    TRANSITIONS,
    CaseStatus,
    IncidentType,
    Layer,
    TaskStatus,
)
from correlator.cases.errors import CommandError, InvalidTransitionError, StaleCaseError
from correlator.cases.model import Case, CaseAlert, SlaDeadlines, TimelineEntry
from correlator.scoring import IncidentStatus, RiskScore, Severity

__all__ = ["SERIOUS_ORDER", "apply", "case_risk", "open_case"]

SERIOUS_ORDER: Final = (IncidentStatus.NOT_CANDIDATE, IncidentStatus.AWAITING_ANALYST, IncidentStatus.CANDIDATE)


# -- opening a case


def open_case(
    case_id: str,
    title: str,
    *,
    at_ms: int,
    severity: Severity,
    layer: Layer,
    actor: str = SYSTEM_ACTOR,
    risk: RiskScore | None = None,
    agency: str | None = None,
    systems: tuple[str, ...] = (),
    group_key: str | None = None,
    alerts: tuple[CaseAlert, ...] = (),
    sla: SlaDeadlines | None = None,
    l3_assessment: bool = True,
    split_from: str | None = None,
    reason: str | None = None,
) -> tuple[Case, TimelineEntry]:
    """A new case at version 1 with its "open" entry."""
    if not case_id or not title.strip():
        raise ValueError("a case needs an id and a title")
    case = Case(
        id=case_id, title=title, created_ms=at_ms, updated_ms=at_ms, severity=severity, layer=layer, risk=risk,
        agency=agency, systems=tuple(sorted(set(systems))), group_key=group_key, alerts=alerts, sla=sla,
        first_seen_ms=min((a.timestamp_ms for a in alerts), default=None),
        last_seen_ms=max((a.timestamp_ms for a in alerts), default=None),
        l3_assessment=l3_assessment, split_from=split_from, version=1,
    )
    after = {"title": title, "status": case.status.value, "severity": severity.value, "layer": layer.value,
             "group_key": group_key, "alert_ids": list(case.alert_ids)}
    if split_from is not None:
        after["split_from"] = split_from
    summary = f"opened: {severity.value}, owned by {layer.value}"
    if risk is not None:
        summary += f" ({risk.explanation})"
    entry = TimelineEntry.make(case_id, 1, at_ms, actor, "open", summary, after=after, reason=reason)
    return replace(case, timeline=(entry,)), entry


# -- apply

# what a handler returns: (changes to the case, summary, before, after, reason)
_Change = tuple[dict[str, Any], str, dict[str, Any], dict[str, Any], str | None]
_ANY_STATUS: Final = frozenset({"comment", "tag", "attach_evidence"})


def apply(
    case: Case, command: Command, actor: str, at_ms: int, *, expected_version: int | None = None
) -> tuple[Case, TimelineEntry]:
    """Apply `command` to `case` as `actor` at `at_ms`: the new case and the timeline entry recording it."""
    if expected_version is not None and expected_version != case.version:
        raise StaleCaseError(case.id, expected_version, case.version)
    if not actor:
        raise CommandError(case.id, command.type, "an actor is required")
    if case.status in TERMINAL_STATUSES and command.type not in _ANY_STATUS:
        raise CommandError(case.id, command.type, f"case is {case.status.value}: only comments, tags and evidence "
                                                  "can be added")
    handler = _HANDLERS[type(command)]
    changes, summary, before, after, reason = handler(case, command, at_ms)
    seq = case.version + 1
    entry = TimelineEntry.make(case.id, seq, at_ms, actor, command.type, summary, before=before, after=after,
                               reason=reason)
    extra_entries: tuple[TimelineEntry, ...] = changes.pop("_absorbed_timeline", ())
    new_case = replace(case, **changes, version=seq, updated_ms=at_ms,
                       timeline=(*case.timeline, *extra_entries, entry))
    if isinstance(command, AddAlert):
        new_case.carry_alert_set(case, command.alert.id)
    return new_case, entry


def _fail(case: Case, command: Command, reason: str) -> CommandError:
    return CommandError(case.id, command.type, reason)


def _assign(case: Case, command: Assign, _at: int) -> _Change:
    if command.assignee == case.assignee:
        raise _fail(case, command, f"already assigned to {case.assignee}" if case.assignee else "already unassigned")
    if command.assignee is not None and not command.assignee.strip():
        raise _fail(case, command, "assignee must not be blank (None unassigns)")
    summary = (f"assigned to {command.assignee}" if command.assignee is not None
               else f"unassigned (was {case.assignee})")
    return {"assignee": command.assignee}, summary, {"assignee": case.assignee}, {"assignee": command.assignee}, None


def _transition(case: Case, command: Transition, at_ms: int) -> _Change:
    allowed = TRANSITIONS[case.status]
    if command.to not in allowed:
        raise InvalidTransitionError(case.id, case.status.value, command.to.value, [s.value for s in allowed])
    changes: dict[str, Any] = {"status": command.to}
    if command.to is CaseStatus.ACKNOWLEDGED and case.acknowledged_ms is None:
        changes["acknowledged_ms"] = at_ms
    if command.to is CaseStatus.CONTAINED and case.contained_ms is None:
        changes["contained_ms"] = at_ms
    if command.to in TERMINAL_STATUSES:
        changes["closed_ms"] = at_ms
    summary = f"status {case.status.value} → {command.to.value}"
    if command.reason:
        summary += f": {command.reason}"
    return changes, summary, {"status": case.status.value}, {"status": command.to.value}, command.reason


def _comment(case: Case, command: Comment, _at: int) -> _Change:
    if not command.text.strip():
        raise _fail(case, command, "empty comment")
    return {}, f"comment: {command.text}", {}, {"comment": command.text}, None


def case_risk(alerts: tuple[CaseAlert, ...]) -> RiskScore | None:
    """The case's risk: the highest-scoring alert's (ties: the earliest of them)."""
    best: CaseAlert | None = None
    for alert in alerts:  # one pass, no sort: a tie goes to the earlier (time, id), as in time order
        if best is None or alert.score > best.score or (
                alert.score == best.score and (alert.timestamp_ms, alert.id) < (best.timestamp_ms, best.id)):
            best = alert
    return best.risk if best is not None else None


def _risk_fields(case: Case, risk: RiskScore | None) -> dict[str, Any]:
    return {"risk": risk, "severity": risk.severity if risk is not None else case.severity}


def _new_risk(case: Case, alerts: tuple[CaseAlert, ...], candidate: RiskScore) -> RiskScore | None:
    """The case's risk once `candidate`'s alert has joined, when it changes: the highest score over the alerts,
    ties to the earliest alert (so the result does not depend on arrival order). A case opened without a risk
    takes the alert's only when its severity is higher."""
    if case.risk is None:
        return candidate if candidate.severity.rank > case.severity.rank else None
    if candidate.score < case.risk.score or candidate == case.risk:
        return None
    if candidate.score > case.risk.score:
        return candidate
    best = case_risk(alerts)  # a tie with another explanation: the earliest alert's
    return best if best is not None and best != case.risk and best.score >= case.risk.score else None


def _add_alert(case: Case, command: AddAlert, _at: int) -> _Change:
    alert = command.alert
    if case.has_alert(alert.id):
        raise _fail(case, command, f"alert {alert.id} is already in the case")
    alerts = (*case.alerts, alert)
    changes: dict[str, Any] = {
        "alerts": alerts,
        "first_seen_ms": min(alert.timestamp_ms, case.first_seen_ms or alert.timestamp_ms),
        "last_seen_ms": max(alert.timestamp_ms, case.last_seen_ms or alert.timestamp_ms),
        "systems": tuple(sorted({*case.systems, *command.systems})),
    }
    if case.agency is None and command.agency is not None:
        changes["agency"] = command.agency
    before: dict[str, Any] = {"alerts": len(case.alerts)}
    after: dict[str, Any] = {"alerts": len(alerts), "alert_id": alert.id}
    summary = f"alert added: {alert.rule_title} ({alert.id}, score {alert.score})"
    risk = _new_risk(case, alerts, alert.risk)
    if risk is not None:
        changes.update(severity=risk.severity, risk=risk)
        old_score = case.risk.score if case.risk is not None else None
        before.update(severity=case.severity.value, score=old_score)
        after.update(severity=risk.severity.value, score=risk.score)
        if risk.severity is not case.severity:
            summary += f"; severity raised from {case.severity.value} to {risk.severity.value}: {risk.explanation}"
        elif old_score is not None and risk.score > old_score:
            summary += f"; score raised from {old_score} to {risk.score}: {risk.explanation}"
        else:
            summary += f"; same score from an earlier alert: {risk.explanation}"
    return changes, summary, before, after, None


def _attach(case: Case, command: AttachEvidence, _at: int) -> _Change:
    evidence = command.evidence
    if any(e.id == evidence.id for e in case.evidence):
        raise _fail(case, command, f"evidence {evidence.id} is already attached")
    what = f"event {evidence.event_id}" if evidence.kind == "event" else f"file {evidence.path} ({evidence.sha256})"
    return ({"evidence": (*case.evidence, evidence)}, f"evidence attached: {what}", {},
            {"evidence": evidence.to_dict()}, evidence.note)


def _layer_change(case: Case, command: Escalate | Deescalate, _at: int) -> _Change:
    if not command.reason.strip():
        raise _fail(case, command, "a reason is required")
    up = isinstance(command, Escalate)
    if (command.to.rank <= case.layer.rank) if up else (command.to.rank >= case.layer.rank):
        where = "above" if up else "below"
        raise _fail(case, command, f"{command.to.value} is not {where} the owning layer {case.layer.value}")
    verb = "escalated" if up else "de-escalated"
    return ({"layer": command.to}, f"{verb} from {case.layer.value} to {command.to.value}: {command.reason}",
            {"layer": case.layer.value}, {"layer": command.to.value}, command.reason)


def _notify(case: Case, command: Notify, _at: int) -> _Change:
    if command.layer in case.notify:
        raise _fail(case, command, f"{command.layer.value} is already notified")
    if command.layer is case.layer:
        raise _fail(case, command, f"{command.layer.value} already owns the case")
    notify = tuple(sorted({*case.notify, command.layer}, key=lambda layer: layer.rank))
    return ({"notify": notify}, f"{command.layer.value} to be notified: {command.reason}",
            {"notify": [layer.value for layer in case.notify]}, {"notify": [layer.value for layer in notify]},
            command.reason)


def _tag(case: Case, command: Tag, _at: int) -> _Change:
    clean_add = {t.strip() for t in command.add}
    clean_remove = {t.strip() for t in command.remove}
    if "" in clean_add or "" in clean_remove:
        raise _fail(case, command, "empty tag")
    if clean_add & clean_remove:
        raise _fail(case, command, f"tag(s) both added and removed: {', '.join(sorted(clean_add & clean_remove))}")
    tags = tuple(sorted((set(case.tags) | clean_add) - clean_remove))
    if tags == case.tags:
        raise _fail(case, command, "no tag changes")
    added = sorted(set(tags) - set(case.tags))
    removed = sorted(set(case.tags) - set(tags))
    parts = ([f"+{t}" for t in added]) + ([f"-{t}" for t in removed])
    return {"tags": tags}, f"tags {' '.join(parts)}", {"tags": list(case.tags)}, {"tags": list(tags)}, None


def _task_status(case: Case, command: SetTaskStatus, _at: int) -> _Change:
    task = case.task(command.task_id)
    if task is None:
        known = ", ".join(t.id for t in case.tasks) or "none"
        raise _fail(case, command, f"unknown task {command.task_id!r} (tasks: {known})")
    if task.status is command.status:
        raise _fail(case, command, f"task {task.id!r} is already {task.status.value}")
    if command.status is TaskStatus.SKIPPED and not (command.note or "").strip():
        raise _fail(case, command, f"skipping task {task.id!r} needs a note saying why")
    updated = replace(task, status=command.status, note=command.note if command.note is not None else task.note)
    tasks = tuple(updated if t.id == task.id else t for t in case.tasks)
    summary = f"task {task.id} {task.status.value} → {command.status.value}"
    if command.note:
        summary += f": {command.note}"
    return ({"tasks": tasks}, summary, {"task": task.id, "status": task.status.value},
            {"task": task.id, "status": command.status.value}, command.note)


def _assign_playbook(case: Case, command: AssignPlaybook, _at: int) -> _Change:
    if command.playbook_id == case.playbook_id and command.tasks == case.tasks:
        raise _fail(case, command, f"playbook {case.playbook_id} is already assigned")
    summary = (f"playbook {command.playbook_id} ({command.incident_type.value if command.incident_type else '-'}, "
               f"{len(command.tasks)} tasks)" if command.playbook_id else "playbook removed")
    if case.playbook_id and command.playbook_id:
        summary = f"playbook {case.playbook_id} replaced by " + summary.removeprefix("playbook ")
    if command.reason:
        summary += f": {command.reason}"

    def describe(playbook_id: str | None, incident_type: IncidentType | None) -> dict[str, Any]:
        return {"playbook_id": playbook_id, "incident_type": incident_type.value if incident_type else None}

    return ({"playbook_id": command.playbook_id, "incident_type": command.incident_type, "tasks": command.tasks},
            summary, describe(case.playbook_id, case.incident_type),
            describe(command.playbook_id, command.incident_type), command.reason)


def _set_serious(case: Case, command: SetSerious, _at: int) -> _Change:
    if command.status is case.serious:
        raise _fail(case, command, f"serious-incident status is already {case.serious.value}")
    return ({"serious": command.status},
            f"serious-incident status {case.serious.value} → {command.status.value}: {command.reason}",
            {"serious": case.serious.value}, {"serious": command.status.value}, command.reason)


def _set_sla(case: Case, command: SetSla, _at: int) -> _Change:
    if command.sla == case.sla:
        raise _fail(case, command, "SLA deadlines unchanged")
    before = case.sla.to_dict() if case.sla is not None else {}
    return {"sla": command.sla}, f"SLA deadlines set: {command.reason}", before, command.sla.to_dict(), command.reason


def _merge(case: Case, command: Merge, _at: int) -> _Change:
    source = command.source
    if source.id == case.id:
        raise _fail(case, command, "cannot merge a case into itself")
    if source.merged_into is not None:
        raise _fail(case, command, f"case {source.id} was already merged into {source.merged_into}")
    mine = set(case.alert_ids)
    alerts = (*case.alerts, *(a for a in source.alerts if a.id not in mine))
    known_evidence = {e.id for e in case.evidence}
    evidence = (*case.evidence, *(e for e in source.evidence if e.id not in known_evidence))
    serious = max(case.serious, source.serious, key=SERIOUS_ORDER.index)
    changes: dict[str, Any] = {
        "alerts": alerts, "evidence": evidence, "serious": serious,
        "tags": tuple(sorted({*case.tags, *source.tags})),
        "systems": tuple(sorted({*case.systems, *source.systems})),
        "notify": tuple(sorted({*case.notify, *source.notify} - {case.layer}, key=lambda layer: layer.rank)),
        "first_seen_ms": min((a.timestamp_ms for a in alerts), default=case.first_seen_ms),
        "last_seen_ms": max((a.timestamp_ms for a in alerts), default=case.last_seen_ms),
        "merged_from": (*case.merged_from, source.id),
        "agency": case.agency or source.agency,
        "_absorbed_timeline": source.timeline,
    }
    risk = case_risk(alerts)
    if risk is not None and (case.risk is None or risk.score > case.risk.score):
        changes.update(_risk_fields(case, risk))
    summary = (f"merged case {source.id} ({len(source.alerts)} alerts, {len(source.timeline)} timeline entries)")
    new_severity = changes.get("severity", case.severity)
    if new_severity is not case.severity:
        summary += f"; severity raised from {case.severity.value} to {new_severity.value}"
    return (changes, summary, {"alerts": len(case.alerts), "severity": case.severity.value},
            {"alerts": len(alerts), "severity": new_severity.value, "merged_from": source.id}, None)


def _merged_into(case: Case, command: MergedInto, at_ms: int) -> _Change:
    if command.target_id == case.id:
        raise _fail(case, command, "cannot merge a case into itself")
    return ({"status": CaseStatus.CLOSED, "merged_into": command.target_id, "closed_ms": at_ms},
            f"merged into case {command.target_id}; closed", {"status": case.status.value},
            {"status": CaseStatus.CLOSED.value, "merged_into": command.target_id}, None)


def _split_out(case: Case, command: SplitOut, _at: int) -> _Change:
    moving = set(command.alert_ids)
    unknown = sorted(moving - set(case.alert_ids))
    if unknown:
        raise _fail(case, command, f"alert(s) not in the case: {', '.join(unknown)}")
    if not moving:
        raise _fail(case, command, "no alerts to split out")
    remaining = tuple(a for a in case.alerts if a.id not in moving)
    if not remaining:
        raise _fail(case, command, "cannot split out every alert (the case would be empty)")
    risk = case_risk(remaining)
    changes: dict[str, Any] = {
        "alerts": remaining,
        "first_seen_ms": min(a.timestamp_ms for a in remaining),
        "last_seen_ms": max(a.timestamp_ms for a in remaining),
        **_risk_fields(case, risk),
    }
    summary = f"split {len(moving)} alert(s) out into case {command.new_case_id}"
    if changes["severity"] is not case.severity:
        summary += f"; severity lowered from {case.severity.value} to {changes['severity'].value}"
    return (changes, summary, {"alerts": len(case.alerts), "severity": case.severity.value},
            {"alerts": len(remaining), "severity": changes["severity"].value, "split_to": command.new_case_id,
             "alert_ids": sorted(moving)}, None)


_HANDLERS: Final[Mapping[type[Command], Callable[[Case, Any, int], _Change]]] = {
    Assign: _assign, Transition: _transition, Comment: _comment, AddAlert: _add_alert, AttachEvidence: _attach,
    Escalate: _layer_change, Deescalate: _layer_change, Notify: _notify, Tag: _tag, SetTaskStatus: _task_status,
    AssignPlaybook: _assign_playbook, SetSerious: _set_serious, SetSla: _set_sla, Merge: _merge,
    MergedInto: _merged_into, SplitOut: _split_out,
}
