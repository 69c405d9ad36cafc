"""`socctl cases ...` for the terminal-minded analyst: the case queue, one case in full, and every change a case
can take (assign, transition, comment, escalate, tasks, tags, evidence, merge, split, the serious-incident
assessment). Each change goes through `CaseRepository.apply` (timeline entry, version check) and prints the case;
`--json` prints documents for scripts."""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from correlator.cases.commands import (
    Assign,
    AttachEvidence,
    Command,
    Comment,
    Deescalate,
    Escalate,
    SetSerious,
    SetTaskStatus,
    Tag,
    Transition,
)
from correlator.cases.definitions import SYSTEM_ACTOR, CaseStatus, Layer, TaskStatus
from correlator.cases.lifecycle import SERIOUS_ORDER
from correlator.cases.model import Case, Evidence
from correlator.cases.repository import CaseRepository
from correlator.cases.routing import routing_commands
from correlator.cases.sla import overdue
from correlator.errors import CorrelatorError
from correlator.model import ms_to_iso
from correlator.scoring import IncidentStatus, Severity
from correlator.store.base import MAX_RESULT_WINDOW, Store, wall_clock_ms
from correlator.store.errors import StoreError
from correlator.store.query import FieldExists, FieldMatch, Not, parse_query, to_query_string
from correlator.timespec import TimeSpecError, parse_time_ms

__all__ = ["register"]

app = typer.Typer(help="Incident cases: the queue, one case, and changes to it.", no_args_is_help=True)

StoreOpt = Annotated[str | None, typer.Option("--store", help="Store URL (default: $SOCCTL_DB SQLite file).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ActorOpt = Annotated[str | None, typer.Option("--actor", help="Who makes the change (default: $SOCCTL_USER or the "
                                                               "login name).")]
CasesConfigOpt = Annotated[Path | None, typer.Option("--cases-config", help="Cases configuration (YAML).")]
PlaybooksOpt = Annotated[list[Path] | None, typer.Option("--playbooks", help="Playbook file or directory.")]

_OPEN = ("new", "acknowledged", "investigating", "contained")
_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "green"}


def _error(message: str, style: str = "red") -> None:
    """A message on stderr, taken literally (not as Rich markup: it may quote analysts' text with brackets)."""
    Console(stderr=True).print(message, style=style, markup=False, highlight=False)


def _actor(actor: str | None) -> str:
    if actor:
        return actor
    return os.environ.get("SOCCTL_USER") or getpass.getuser()


@contextmanager
def _repository(store_url: str | None, cases_config: Path | None = None,
                playbooks: list[Path] | None = None) -> Iterator[tuple[Store, CaseRepository]]:
    from correlator.cases.config import load_cases_config
    from correlator.cases.grouping import CaseGrouper
    from correlator.cases.playbooks import load_playbooks
    from correlator.settings import default_playbooks_dir
    from correlator.store.config import open_store

    try:
        config = load_cases_config(cases_config)
        books = load_playbooks(playbooks or [default_playbooks_dir()])
        grouper = CaseGrouper(playbooks=books, grouping=config.grouping, sla=config.sla, routing=config.routing)
        with open_store(store_url) as store:
            yield store, CaseRepository(store, grouper, wall_clock_ms)
    except (CorrelatorError, StoreError) as exc:
        _error(str(exc))
        raise typer.Exit(1) from exc


def _print_json(value: Any) -> None:
    typer.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2, default=str).decode())


def _case_row(case: Case, now_ms: int) -> dict[str, Any]:
    late = overdue(case, now_ms)
    return {
        "id": case.id, "title": case.title, "status": case.status.value, "severity": case.severity.value,
        "score": case.risk.score if case.risk is not None else None, "layer": case.layer.value,
        "assignee": case.assignee, "agency": case.agency, "alerts": len(case.alerts),
        "playbook": case.playbook_id, "serious": case.serious.value,
        "updated": ms_to_iso(case.updated_ms), "overdue": [o.deadline for o in late],
    }


def case_document(case: Case, now_ms: int) -> dict[str, Any]:
    """A case as `cases show --json` prints it: the stored document plus what is computed (overdue)."""
    doc = case.to_dict()
    doc["overdue"] = [{"deadline": o.deadline, "due_ms": o.due_ms, "late_by_ms": o.late_by_ms}
                      for o in overdue(case, now_ms)]
    return doc


@app.command("list")
def list_cases(
    query: Annotated[str, typer.Argument(help="Store query over cases, e.g. 'group_key:host*'.")] = "",
    status: Annotated[list[str] | None, typer.Option("--status", help="Status (repeatable); 'open' = every "
                                                                       "open status. Default: open.")] = None,
    severity: Annotated[list[str] | None, typer.Option("--severity", help="Severity (repeatable).")] = None,
    layer: Annotated[str | None, typer.Option("--layer", help="Owning layer: L1..L4.")] = None,
    assignee: Annotated[str | None, typer.Option("--assignee", help="Assignee ('none': unassigned).")] = None,
    agency: Annotated[str | None, typer.Option("--agency", help="Agency (organization.id).")] = None,
    is_overdue: Annotated[bool, typer.Option("--overdue", help="Only cases past an SLA deadline.")] = False,
    serious: Annotated[bool, typer.Option("--serious", help="Only serious-incident candidates (or awaiting "
                                                             "the analyst's assessment).")] = False,
    since: Annotated[str | None, typer.Option("--since", help="Created since (15m, 7d, ISO-8601).")] = None,
    sort: Annotated[str, typer.Option("--sort", help="Sort field, '-' for descending ('-severity': most severe "
                                                     "first).")] = "-updated_ms",
    limit: Annotated[int, typer.Option("--limit", help="At most this many cases.")] = 50,
    store_url: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The case queue: open cases by default, most recently changed first."""
    console = Console()
    now = wall_clock_ms()
    clauses = [f"({_checked_query(query)})"] if query.strip() else []
    statuses = [s for s in (status or ["open"]) for s in (_OPEN if s == "open" else (s,))]
    if "all" not in statuses:
        for value in statuses:
            _check(value, [s.value for s in CaseStatus], "--status")
        clauses.append("(" + " OR ".join(f"status:{s}" for s in statuses) + ")")
    if severity:
        for value in severity:
            _check(value, [s.value for s in Severity], "--severity")
        clauses.append("(" + " OR ".join(f"severity:{s}" for s in severity) + ")")
    if layer:
        _check(layer.upper(), [item.value for item in Layer], "--layer")
        clauses.append(f"layer:{layer.upper()}")
    if assignee:
        clauses.append(to_query_string(Not(FieldExists("assignee")) if assignee == "none"
                                       else FieldMatch("assignee", assignee)))
    if agency:
        clauses.append(to_query_string(FieldMatch("agency", agency)))
    if serious:
        clauses.append(f"(serious:{IncidentStatus.CANDIDATE.value} OR serious:{IncidentStatus.AWAITING_ANALYST.value})")
    since_ms = _time(since, now, "--since")
    with _repository(store_url) as (_store, repo):
        window = MAX_RESULT_WINDOW if is_overdue else limit
        by = {"severity": "severity_rank", "-severity": "-severity_rank"}.get(sort, sort)
        total, cases = repo.list(" AND ".join(clauses), since_ms=since_ms, sort=by, limit=window)
    if is_overdue:
        cases = [c for c in cases if overdue(c, now)][:limit]
        total = len(cases)
    rows = [_case_row(c, now) for c in cases]
    if as_json:
        _print_json({"total": total, "cases": rows})
        return
    table = Table(title=f"cases ({len(rows)} of {total})")
    for name in ("id", "severity", "score", "status", "layer", "assignee", "alerts", "title", "overdue"):
        table.add_column(name)
    for row in rows:
        sev = row["severity"]
        table.add_row(row["id"], f"[{_STYLE.get(sev, '')}]{sev}[/]", str(row["score"] or ""), row["status"],
                      row["layer"], escape(row["assignee"] or ""), str(row["alerts"]), escape(row["title"]),
                      ", ".join(row["overdue"]))
    console.print(table)


@app.command("show")
def show(case_id: str, store_url: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """One case: risk and its explanation, SLA, playbook tasks, alerts, evidence and the whole timeline."""
    now = wall_clock_ms()
    with _repository(store_url) as (_store, repo):
        case = _get(repo, case_id)
    if as_json:
        _print_json(case_document(case, now))
        return
    _print_case(Console(), case, now)


def _print_case(console: Console, case: Case, now: int) -> None:
    console.print(f"[bold]{escape(case.title)}[/bold]  ({case.id}, version {case.version})")
    console.print(f"status {case.status.value} · severity [{_STYLE.get(case.severity.value, '')}]"
                  f"{case.severity.value}[/] · layer {case.layer.value} · assignee {escape(case.assignee or '-')}"
                  f" · agency {escape(case.agency or '-')} · systems {escape(', '.join(case.systems) or '-')}")
    if case.risk is not None:
        console.print(f"risk {case.risk.score}: {escape(case.risk.explanation)}")
    notify = f" · notify {', '.join(layer.value for layer in case.notify)}" if case.notify else ""
    console.print(f"serious incident: {case.serious.value}{notify}")
    if case.sla is not None:
        late = overdue(case, now)
        flag = f" [red]OVERDUE: {', '.join(o.describe() for o in late)}[/red]" if late else ""
        console.print(f"SLA: acknowledge by {ms_to_iso(case.sla.acknowledge_by_ms)}, contain by "
                      f"{ms_to_iso(case.sla.contain_by_ms)}{flag}")
    if case.tags:
        console.print(f"tags: {escape(', '.join(case.tags))}")
    if case.playbook_id:
        tasks = Table(title=f"playbook {case.playbook_id} ({case.incident_type.value if case.incident_type else ''})")
        for name in ("task", "layer", "status", "due", "title"):
            tasks.add_column(name)
        for task in case.tasks:
            tasks.add_row(task.id, task.layer.value, task.status.value, ms_to_iso(task.due_ms), escape(task.title))
        console.print(tasks)
    alerts = Table(title=f"alerts ({len(case.alerts)})")
    for name in ("time", "rule", "level", "score", "host", "alert id"):
        alerts.add_column(name)
    for alert in case.alerts[-50:]:
        alerts.add_row(ms_to_iso(alert.timestamp_ms), escape(alert.rule_title), alert.level, str(alert.risk.score),
                       escape(alert.host_name or ""), alert.id)
    console.print(alerts)
    for item in case.evidence:
        console.print(f"evidence {item.kind}: {item.event_id or item.path} {item.note or ''}", markup=False)
    timeline = Table(title="timeline")
    for name in ("#", "when", "who", "action", "summary"):
        timeline.add_column(name)
    for entry in case.timeline:
        summary = entry.summary + (f" (reason: {entry.reason})" if entry.reason else "")
        timeline.add_row(str(entry.seq), ms_to_iso(entry.at_ms), escape(entry.actor), entry.action, escape(summary))
    console.print(timeline)


def _check(value: str, allowed: list[str], option: str) -> None:
    if value not in allowed:
        _error(f"{option}: {value!r} is not one of {', '.join(allowed)}")
        raise typer.Exit(2)


def _checked_query(query: str) -> str:
    """The analyst's query, parsed on its own first: a syntax error points into what they typed (exit status 2)."""
    try:
        parse_query(query)
    except StoreError as exc:
        _error(str(exc))
        raise typer.Exit(2) from exc
    return query


def _time(text: str | None, now: int, option: str) -> int | None:
    if text is None:
        return None
    try:
        return parse_time_ms(text, now)
    except TimeSpecError as exc:
        _error(f"{option}: {exc}")
        raise typer.Exit(2) from exc


def _get(repo: CaseRepository, case_id: str) -> Case:
    case = repo.get(case_id)
    if case is None:
        _error(f"no case {case_id!r}")
        raise typer.Exit(1)
    return case


def _change(store_url: str | None, case_id: str, command: Command, actor: str | None, as_json: bool) -> None:
    with _repository(store_url) as (_store, repo):
        _get(repo, case_id)
        try:
            case = repo.apply(case_id, command, _actor(actor))
        except CorrelatorError as exc:
            _error(str(exc))
            raise typer.Exit(1) from exc
    _done(case, as_json)


def _done(case: Case, as_json: bool, since_version: int | None = None) -> None:
    """Print the changed case: its document, or one line per change after `since_version` (None: the last)."""
    if as_json:
        _print_json(case_document(case, wall_clock_ms()))
        return
    if since_version is None:
        entries = case.timeline[-1:]
    else:
        entries = tuple(e for e in case.timeline if e.case_id == case.id and e.seq > since_version)
    state = f"(status {case.status.value}, layer {case.layer.value}, version {case.version})"
    console = Console()
    for entry in entries or (None,):
        console.print(f"{case.id}: {entry.summary if entry else 'unchanged'} {state}", markup=False, highlight=False)


@app.command("assign")
def assign(case_id: str, assignee: Annotated[str, typer.Argument(help="Who takes the case ('none' unassigns).")],
           store_url: StoreOpt = None, actor: ActorOpt = None, as_json: JsonOpt = False) -> None:
    """Assign the case to an analyst."""
    _change(store_url, case_id, Assign(None if assignee == "none" else assignee), actor, as_json)


@app.command("transition")
def transition(case_id: str, status: Annotated[str, typer.Argument(help="new, acknowledged, investigating, "
                                                                      "contained, resolved, closed, false_positive")],
               reason: Annotated[str | None, typer.Option("--reason", help="Why (kept in the timeline).")] = None,
               store_url: StoreOpt = None, actor: ActorOpt = None, as_json: JsonOpt = False) -> None:
    """Move the case along its lifecycle (only allowed transitions)."""
    _check(status, [s.value for s in CaseStatus], "status")
    _change(store_url, case_id, Transition(CaseStatus(status), reason), actor, as_json)


@app.command("comment")
def comment(case_id: str, text: str, store_url: StoreOpt = None, actor: ActorOpt = None,
            as_json: JsonOpt = False) -> None:
    """Add a comment to the case's timeline."""
    _change(store_url, case_id, Comment(text), actor, as_json)


def _layer_change(make: Callable[[Layer, str], Command]) -> Callable[..., None]:
    def run(case_id: str, layer: Annotated[str, typer.Argument(help="L1, L2, L3 or L4")],
            reason: Annotated[str, typer.Option("--reason", help="Why (required; kept in the timeline).")],
            store_url: StoreOpt = None, actor: ActorOpt = None, as_json: JsonOpt = False) -> None:
        _check(layer.upper(), [item.value for item in Layer], "layer")
        _change(store_url, case_id, make(Layer(layer.upper()), reason), actor, as_json)
    return run


app.command("escalate", help="Hand the case to a higher layer, with a reason.")(
    _layer_change(Escalate))
app.command("deescalate", help="Hand the case back to a lower layer, with a reason.")(
    _layer_change(Deescalate))


@app.command("task")
def task(case_id: str, task_id: str,
         status: Annotated[str, typer.Argument(help="todo, doing, done or skipped")],
         note: Annotated[str | None, typer.Option("--note", help="A note on the step.")] = None,
         store_url: StoreOpt = None, actor: ActorOpt = None, as_json: JsonOpt = False) -> None:
    """Set the status of a playbook task."""
    _check(status, [s.value for s in TaskStatus], "status")
    _change(store_url, case_id, SetTaskStatus(task_id, TaskStatus(status), note), actor, as_json)


@app.command("tag")
def tag(case_id: str, add: Annotated[list[str] | None, typer.Option("--add", help="Tag to add.")] = None,
        remove: Annotated[list[str] | None, typer.Option("--remove", help="Tag to remove.")] = None,
        store_url: StoreOpt = None, actor: ActorOpt = None, as_json: JsonOpt = False) -> None:
    """Add or remove tags."""
    _change(store_url, case_id, Tag(tuple(add or ()), tuple(remove or ())), actor, as_json)


@app.command("attach")
def attach(case_id: str,
           event: Annotated[str | None, typer.Option("--event", help="An event id to attach.")] = None,
           file: Annotated[Path | None, typer.Option("--file", help="A file to attach (its sha256 is kept).")] = None,
           note: Annotated[str | None, typer.Option("--note", help="What it shows.")] = None,
           store_url: StoreOpt = None, actor: ActorOpt = None, as_json: JsonOpt = False) -> None:
    """Attach evidence: an event id or a file (by path and sha256)."""
    if (event is None) == (file is None):
        _error("give exactly one of --event and --file")
        raise typer.Exit(2)
    if event is not None:
        evidence = Evidence(kind="event", event_id=event, note=note)
    else:
        assert file is not None
        import hashlib

        try:
            digest = hashlib.sha256(file.read_bytes()).hexdigest()
        except OSError as exc:
            _error(f"cannot read {file}: {exc.strerror or exc}")
            raise typer.Exit(2) from exc
        # the absolute path: a path relative to wherever the analyst ran the command means nothing later
        evidence = Evidence(kind="file", path=str(file.resolve()), sha256=digest, note=note)
    _change(store_url, case_id, AttachEvidence(evidence), actor, as_json)


def _conditions_met(case: Case) -> bool:
    """Whether the system and impact conditions of a serious incident hold for the case: it awaits the analyst or
    is a candidate, or it was once (an earlier "can contain" assessment put it back to not_candidate)."""
    if case.serious is not IncidentStatus.NOT_CANDIDATE:
        return True
    raised = {IncidentStatus.AWAITING_ANALYST.value, IncidentStatus.CANDIDATE.value}
    return any(entry.action == SetSerious.type and entry.after.get("serious") in raised for entry in case.timeline)


@app.command("assess")
def assess(case_id: str,
           cannot_contain: Annotated[bool, typer.Option(
               "--cannot-contain/--can-contain", help="The analyst's assessment: can the owner contain it?")],
           reason: Annotated[str, typer.Option("--reason", help="Why (kept in the timeline).")],
           store_url: StoreOpt = None, cases_config: CasesConfigOpt = None, actor: ActorOpt = None,
           as_json: JsonOpt = False) -> None:
    """Record whether the owner can contain the incident: the third condition of a serious incident. A case that
    becomes a candidate is routed (by default: L4 notified). An assessment that changes no status (the system and
    impact conditions are not met, or the status is already what it implies) is recorded as a comment."""
    who = _actor(actor)
    text = "owner cannot contain it" if cannot_contain else "owner can contain it"
    with _repository(store_url, cases_config) as (_store, repo):
        case = _get(repo, case_id)
        before = case.version
        if not _conditions_met(case):
            if cannot_contain:
                _error(f"{case_id}: the system and impact conditions are not met; recording the assessment only",
                       style="yellow")
            status = case.serious
        else:
            status = IncidentStatus.CANDIDATE if cannot_contain else IncidentStatus.NOT_CANDIDATE
        try:
            if status is case.serious:
                case = repo.apply(case_id, Comment(f"serious-incident assessment: {text}: {reason}"), who)
            else:
                rose = SERIOUS_ORDER.index(status) > SERIOUS_ORDER.index(case.serious)
                case = repo.apply(case_id, SetSerious(status, f"analyst: {text}: {reason}"), who)
                if rose:  # routing only moves a case up: an analyst's earlier de-escalation holds otherwise
                    for command in routing_commands(case, repo.grouper.routing):
                        case = repo.apply(case_id, command, SYSTEM_ACTOR)
        except CorrelatorError as exc:
            _error(str(exc))
            raise typer.Exit(1) from exc
    _done(case, as_json, since_version=before)


@app.command("merge")
def merge(target: str, source: str, store_url: StoreOpt = None, cases_config: CasesConfigOpt = None,
          playbooks: PlaybooksOpt = None, actor: ActorOpt = None, as_json: JsonOpt = False) -> None:
    """Merge case SOURCE into case TARGET (SOURCE is closed and points to TARGET)."""
    with _repository(store_url, cases_config, playbooks) as (_store, repo):
        _get(repo, target)
        _get(repo, source)
        try:
            merged, _closed = repo.merge(target, source, _actor(actor))
        except CorrelatorError as exc:
            _error(str(exc))
            raise typer.Exit(1) from exc
    _done(merged, as_json)


@app.command("split")
def split(case_id: str, alert_ids: Annotated[list[str], typer.Argument(help="Alert ids to move to a new case.")],
          store_url: StoreOpt = None, cases_config: CasesConfigOpt = None, playbooks: PlaybooksOpt = None,
          actor: ActorOpt = None, as_json: JsonOpt = False) -> None:
    """Move alerts out of a case into a new case."""
    with _repository(store_url, cases_config, playbooks) as (_store, repo):
        _get(repo, case_id)
        try:
            _remaining, new_case = repo.split(case_id, alert_ids, _actor(actor))
        except CorrelatorError as exc:
            _error(str(exc))
            raise typer.Exit(1) from exc
    _done(new_case, as_json)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="cases")
