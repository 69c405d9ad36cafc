"""Commands through `apply`: what each changes and records, the append-only deterministic timeline, optimistic
concurrency, JSON round trips."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest

from correlator.cases.commands import (
    AddAlert,
    Assign,
    AssignPlaybook,
    AttachEvidence,
    Command,
    Comment,
    Deescalate,
    Escalate,
    Notify,
    SetSerious,
    SetSla,
    SetTaskStatus,
    Tag,
    Transition,
    command_from_dict,
)
from correlator.cases.definitions import CaseStatus, IncidentType, Layer, TaskStatus
from correlator.cases.errors import CommandError, StaleCaseError
from correlator.cases.lifecycle import apply, open_case
from correlator.cases.model import Case, CaseAlert, Evidence, SlaDeadlines, Task
from correlator.scoring import IncidentStatus, Severity
from tests.correlator.cases.conftest import HOUR, MINUTE, T0

SHA = "a" * 64
TASKS = (Task("triage", "Triage", Layer.L2, T0 + HOUR), Task("isolate", "Isolate", Layer.L1, T0 + 2 * HOUR))


def test_open_case_records_the_first_entry(new_case: Callable[..., Case]) -> None:
    case = new_case()
    assert case.version == 1
    (entry,) = case.timeline
    assert (entry.seq, entry.action, entry.actor, entry.at_ms) == (1, "open", "socctl", T0)
    assert entry.summary == "opened: high, owned by L2 (high: test (+60))"
    assert entry.after["alert_ids"] == list(case.alert_ids)
    assert (case.first_seen_ms, case.last_seen_ms) == (T0, T0)


@pytest.mark.parametrize(
    ("command", "summary", "check"),
    [
        (Assign("alice"), "assigned to alice", lambda c: c.assignee == "alice"),
        (Comment("looks like a scanner"), "comment: looks like a scanner", lambda c: c.version == 2),
        (AttachEvidence(Evidence("file", path="/tmp/x.exe", sha256=SHA, note="dropped")),
         f"evidence attached: file /tmp/x.exe ({SHA})", lambda c: c.evidence[0].id == f"file:{SHA}"),
        (AttachEvidence(Evidence("event", event_id="ev9")), "evidence attached: event ev9",
         lambda c: c.event_ids == ("ev-r1-1767225600000", "ev9")),
        (Escalate(Layer.L4, "national impact"), "escalated from L2 to L4: national impact",
         lambda c: c.layer is Layer.L4),
        (Deescalate(Layer.L1, "agency can handle it"), "de-escalated from L2 to L1: agency can handle it",
         lambda c: c.layer is Layer.L1),
        (Notify(Layer.L4, "serious"), "L4 to be notified: serious", lambda c: c.notify == (Layer.L4,)),
        (Tag(add=("apt", "phishing")), "tags +apt +phishing", lambda c: c.tags == ("apt", "phishing")),
        (SetSerious(IncidentStatus.CANDIDATE, "level 4, owner cannot contain"),
         "serious-incident status not_candidate → candidate: level 4, owner cannot contain",
         lambda c: c.serious_candidate),
        (SetSla(SlaDeadlines(T0 + 1, T0 + 2), "severity high"), "SLA deadlines set: severity high",
         lambda c: c.sla == SlaDeadlines(T0 + 1, T0 + 2)),
        (AssignPlaybook("pb-x", IncidentType.MALWARE, TASKS, "matches 1 of 1 alerts"),
         "playbook pb-x (malware, 2 tasks): matches 1 of 1 alerts", lambda c: c.tasks == TASKS),
    ],
    ids=["assign", "comment", "evidence-file", "evidence-event", "escalate", "deescalate", "notify", "tag",
         "serious", "sla", "playbook"],
)
def test_command_changes_and_records(new_case: Callable[..., Case], command: Command, summary: str,
                                     check: Callable[[Case], bool]) -> None:
    case = new_case()
    after, entry = apply(case, command, "alice", T0 + MINUTE)
    assert check(after)
    assert entry.summary == summary
    assert entry.action == command.type
    assert (entry.seq, entry.actor, entry.at_ms, entry.case_id) == (2, "alice", T0 + MINUTE, "case-1")
    assert after.timeline == (*case.timeline, entry)
    assert after.updated_ms == T0 + MINUTE
    assert case.version == 1  # the input is unchanged


@pytest.mark.parametrize(
    ("setup", "command", "message"),
    [
        ((), Assign(None), "case case-1: assign: already unassigned"),
        ((Assign("bob"),), Assign("bob"), "case case-1: assign: already assigned to bob"),
        ((), Comment("  "), "case case-1: comment: empty comment"),
        ((), Escalate(Layer.L1, "x"), "case case-1: escalate: L1 is not above the owning layer L2"),
        ((), Escalate(Layer.L4, " "), "case case-1: escalate: a reason is required"),
        ((), Deescalate(Layer.L4, "x"), "case case-1: deescalate: L4 is not below the owning layer L2"),
        ((), Notify(Layer.L2, "x"), "case case-1: notify: L2 already owns the case"),
        ((Tag(add=("a",)),), Tag(add=("a",)), "case case-1: tag: no tag changes"),
        ((), Tag(add=("a",), remove=("a",)), "case case-1: tag: tag(s) both added and removed: a"),
        ((), SetTaskStatus("triage", TaskStatus.DONE), "case case-1: task_status: unknown task 'triage' "
                                                       "(tasks: none)"),
        ((AssignPlaybook("pb", IncidentType.MALWARE, TASKS),), SetTaskStatus("triage", TaskStatus.SKIPPED),
         "case case-1: task_status: skipping task 'triage' needs a note saying why"),
        ((AssignPlaybook("pb", IncidentType.MALWARE, TASKS),), SetTaskStatus("triage", TaskStatus.TODO),
         "case case-1: task_status: task 'triage' is already todo"),
        ((AttachEvidence(Evidence("event", event_id="e")),), AttachEvidence(Evidence("event", event_id="e")),
         "case case-1: attach_evidence: evidence event:e is already attached"),
        ((), SetSerious(IncidentStatus.NOT_CANDIDATE, "x"),
         "case case-1: set_serious: serious-incident status is already not_candidate"),
        ((Transition(CaseStatus.FALSE_POSITIVE),), Assign("bob"),
         "case case-1: assign: case is false_positive: only comments, tags and evidence can be added"),
    ],
    ids=["unassign-unassigned", "same-assignee", "blank-comment", "escalate-down", "escalate-no-reason",
         "deescalate-up", "notify-owner", "tag-no-change", "tag-both", "unknown-task", "skip-without-note",
         "task-same-status", "duplicate-evidence", "serious-same", "assign-after-false-positive"],
)
def test_refused_commands(new_case: Callable[..., Case], setup: tuple[Command, ...], command: Command,
                          message: str) -> None:
    case = new_case()
    for i, step in enumerate(setup):
        case, _ = apply(case, step, "alice", T0 + i)
    with pytest.raises(CommandError) as caught:
        apply(case, command, "alice", T0 + HOUR)
    assert str(caught.value) == message


def test_comment_tag_and_evidence_still_allowed_on_closed_case(new_case: Callable[..., Case]) -> None:
    case, _ = apply(new_case(), Transition(CaseStatus.FALSE_POSITIVE, "test traffic"), "alice", T0)
    case, _ = apply(case, Comment("confirmed with the agency"), "alice", T0 + 1)
    case, _ = apply(case, Tag(add=("pentest",)), "alice", T0 + 2)
    case, _ = apply(case, AttachEvidence(Evidence("event", event_id="e1")), "alice", T0 + 3)
    assert [e.action for e in case.timeline] == ["open", "transition", "comment", "tag", "attach_evidence"]


def test_evidence_validation() -> None:
    with pytest.raises(ValueError, match="file evidence needs a sha256 of 64 lower-case hex digits, not 'abc'"):
        Evidence("file", path="/x", sha256="abc")
    with pytest.raises(ValueError, match="evidence kind must be event or file, not 'url'"):
        Evidence("url")


def test_task_status_and_note(new_case: Callable[..., Case]) -> None:
    case, _ = apply(new_case(), AssignPlaybook("pb", IncidentType.MALWARE, TASKS), "socctl", T0)
    case, _ = apply(case, SetTaskStatus("triage", TaskStatus.DOING), "alice", T0 + 1)
    case, entry = apply(case, SetTaskStatus("isolate", TaskStatus.SKIPPED, "host already offline"), "bob", T0 + 2)
    assert [(t.id, t.status) for t in case.tasks] == [("triage", TaskStatus.DOING), ("isolate", TaskStatus.SKIPPED)]
    assert entry.summary == "task isolate todo → skipped: host already offline"
    assert case.task("isolate") is not None
    assert case.task("isolate").note == "host already offline"  # type: ignore[union-attr]


def test_add_alert_raises_severity_with_an_entry(new_case: Callable[..., Case],
                                                 make_case_alert: Callable[..., CaseAlert]) -> None:
    case = new_case(points=30)  # medium
    lower = make_case_alert("r2", 20, ts=T0 - MINUTE)
    case, entry = apply(case, AddAlert(lower, agency="so-tttt", systems=("dvc",)), "socctl", T0 + 1)
    assert case.severity is Severity.MEDIUM
    assert entry.summary == f"alert added: Rule r2 ({lower.id}, score 20)"
    assert (case.first_seen_ms, case.agency, case.systems) == (T0 - MINUTE, "so-tttt", ("dvc",))
    higher = make_case_alert("r3", 80, ts=T0 + HOUR)
    case, entry = apply(case, AddAlert(higher), "socctl", T0 + 2)
    assert case.severity is Severity.CRITICAL
    assert case.risk == higher.risk
    assert entry.summary == (f"alert added: Rule r3 ({higher.id}, score 80); severity raised from medium to "
                             "critical: critical: test (+80)")
    assert entry.before == {"alerts": 2, "severity": "medium", "score": 30}
    assert entry.after == {"alerts": 3, "alert_id": higher.id, "severity": "critical", "score": 80}
    same_severity = make_case_alert("r4", 90)
    case, entry = apply(case, AddAlert(same_severity), "socctl", T0 + 3)
    assert entry.summary.endswith("; score raised from 80 to 90: critical: test (+90)")
    assert case.last_seen_ms == T0 + HOUR
    with pytest.raises(CommandError, match="is already in the case"):
        apply(case, AddAlert(higher), "socctl", T0 + 4)


def test_timeline_is_append_only_and_deterministic(new_case: Callable[..., Case]) -> None:
    commands = [Assign("alice"), Transition(CaseStatus.ACKNOWLEDGED), Comment("on it"), Tag(add=("x",)),
                Transition(CaseStatus.INVESTIGATING), Escalate(Layer.L4, "needs the national centre")]

    def run() -> Case:
        case = new_case()
        for i, command in enumerate(commands):
            before = case.timeline
            case, entry = apply(case, command, "alice", T0 + i * MINUTE)
            assert case.timeline[: len(before)] == before
            assert case.timeline[-1] == entry
        return case

    first, second = run(), run()
    assert first == second
    assert [e.id for e in first.timeline] == [e.id for e in second.timeline]
    assert len({e.id for e in first.timeline}) == len(first.timeline)
    assert [e.seq for e in first.timeline] == list(range(1, len(commands) + 2))
    assert first.version == len(commands) + 1
    # the id depends on the content: another actor gives another id
    _other, entry = apply(new_case(), commands[0], "bob", T0)
    assert entry.id != first.timeline[1].id


def test_stale_version_is_refused(new_case: Callable[..., Case]) -> None:
    case = new_case()
    updated, _ = apply(case, Comment("a"), "alice", T0, expected_version=1)
    with pytest.raises(StaleCaseError) as caught:
        apply(updated, Comment("b"), "bob", T0, expected_version=1)
    assert str(caught.value) == "case case-1: stale version 1 (current version is 2); reload and retry"


def test_case_round_trips_through_json(new_case: Callable[..., Case]) -> None:
    case = new_case()
    for i, command in enumerate([
        AssignPlaybook("pb", IncidentType.RANSOMWARE, TASKS), SetTaskStatus("triage", TaskStatus.DONE, "done"),
        AttachEvidence(Evidence("file", path="C:/x", sha256=SHA)), Notify(Layer.L4, "serious"),
        SetSerious(IncidentStatus.AWAITING_ANALYST, "level 4"), SetSla(SlaDeadlines(T0 + 1, T0 + 2), "x"),
        Transition(CaseStatus.ACKNOWLEDGED), Tag(add=("b", "a")),
    ]):
        case, _ = apply(case, command, "alice", T0 + i)
    document = orjson.loads(orjson.dumps(case.to_dict()))
    assert Case.from_dict(document) == case
    without = orjson.loads(orjson.dumps(case.to_dict(timeline=False)))
    assert "timeline" not in without
    assert Case.from_dict(without, [e.to_dict() for e in case.timeline]) == case


def test_documents_are_made_once_and_handed_out_as_new_dicts(
        new_case: Callable[..., Case], make_case_alert: Callable[..., CaseAlert]) -> None:
    """A case is saved again with every alert it gains: its alerts' and timeline's documents are made once."""
    case, _ = apply(new_case(), Comment("first"), "alice", T0)
    alert, entry = make_case_alert(), case.timeline[-1]
    first_alert, first_entry = alert.to_dict(), entry.to_dict()
    first_alert["id"] = first_entry["summary"] = "changed by a caller"
    assert alert.to_dict() == CaseAlert.from_dict(alert.to_dict()).to_dict()
    assert alert.to_dict()["id"] == alert.id
    assert entry.to_dict()["summary"] == entry.summary
    assert alert.to_dict()["risk"] is alert.to_dict()["risk"]  # made once, shared
    assert entry.to_dict()["before"] is entry.to_dict()["before"]
    assert alert == CaseAlert.from_dict(alert.to_dict())  # the cached document is no field of its own


@pytest.mark.parametrize(
    "command",
    [Assign("a"), Assign(None), Transition(CaseStatus.CONTAINED, "r"), Comment("c"),
     AttachEvidence(Evidence("event", event_id="e")), Escalate(Layer.L2, "r"), Deescalate(Layer.L1, "r"),
     Notify(Layer.L4, "r"), Tag(("a",), ("b",)), SetTaskStatus("t", TaskStatus.DONE, "n"),
     AssignPlaybook("pb", IncidentType.BOTNET, TASKS, "r"), AssignPlaybook(None, None),
     SetSerious(IncidentStatus.CANDIDATE, "r"), SetSla(SlaDeadlines(1, 2), "r")],
    ids=lambda c: c.type,
)
def test_command_round_trips_through_json(command: Command) -> None:
    document = orjson.loads(orjson.dumps(command.to_dict()))
    assert document["type"] == command.type
    assert command_from_dict(document) == command


def test_add_alert_command_round_trips(make_case_alert: Callable[..., CaseAlert]) -> None:
    command = AddAlert(make_case_alert("r9", 70, tags=("attack.t1110",)), "so-tttt", ("dvc",))
    assert command_from_dict(orjson.loads(orjson.dumps(command.to_dict()))) == command


def test_unknown_command_type() -> None:
    with pytest.raises(ValueError, match=r"unknown command type 'reopen' \(expected one of assign, transition, "):
        command_from_dict({"type": "reopen"})


def test_open_case_needs_a_title() -> None:
    with pytest.raises(ValueError, match="a case needs an id and a title"):
        open_case("c", " ", at_ms=T0, severity=Severity.LOW, layer=Layer.L1)


def test_merge_and_split_commands_round_trip(new_case: Callable[..., Case]) -> None:
    from correlator.cases.commands import Merge, MergedInto, SplitOut

    for command in (Merge(new_case("case-9")), MergedInto("case-1"), SplitOut(("a", "b"), "case-2")):
        assert command_from_dict(orjson.loads(orjson.dumps(command.to_dict()))) == command
