"""`socctl cases l4-draft ID` (the initial incident report drafted for the national monitoring centre, L4) and
`socctl cases l3-report` (the cases listed for L3's independent periodic assessment, with escalations and SLA
breaches). Both read the store; neither sends anything (sharing with the national centre is a later issue)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from correlator.assets import InformationSystem
from correlator.cases.routing import l3_assessment, l4_draft
from correlator.cli import cases_cmd
from correlator.errors import CorrelatorError
from correlator.model import ms_to_iso
from correlator.store.base import MAX_RESULT_WINDOW, wall_clock_ms

__all__ = ["register"]


def l4_draft_command(
    case_id: str,
    assets: Annotated[Path | None, typer.Option("--assets", help="Asset inventory: names, levels and contacts of "
                                                                 "the affected systems.")] = None,
    reporter: Annotated[str | None, typer.Option("--reporter", help="The reporting unit (default: "
                                                                    "$SOCCTL_REPORTER or 'SOC').")] = None,
    contact: Annotated[str | None, typer.Option("--contact", help="The reporting unit's contact.")] = None,
    store_url: cases_cmd.StoreOpt = None,
    as_json: cases_cmd.JsonOpt = False,
) -> None:
    """Draft the initial incident report for the national centre (L4) from a case as it is now."""
    systems: tuple[InformationSystem, ...] = ()
    if assets is not None:
        from correlator.assets_load import load_inventory

        try:
            systems = tuple(load_inventory(assets).systems.values())
        except (CorrelatorError, OSError) as exc:
            cases_cmd._error(str(exc))
            raise typer.Exit(2) from exc
    with cases_cmd._repository(store_url) as (_store, repo):
        case = cases_cmd._get(repo, case_id)
    draft = l4_draft(case, wall_clock_ms(), reporter=reporter or os.environ.get("SOCCTL_REPORTER") or "SOC",
                     reporter_contact=contact, systems=systems)
    if as_json:
        cases_cmd._print_json(draft.to_dict())
        return
    console = Console()
    console.print(f"[bold]L4 initial incident report (draft {draft.id}) for case {draft.case_id} "
                  f"v{draft.case_version}[/bold]")
    for label, value in (("reporter", draft.reporter), ("agency", draft.agency), ("title", draft.title),
                         ("incident type", draft.incident_type), ("severity", draft.severity),
                         ("risk", f"{draft.risk_score}: {draft.risk_explanation}"),
                         ("detected", ms_to_iso(draft.detected_ms) if draft.detected_ms else None),
                         ("serious incident", draft.serious_status), ("impacts", ", ".join(draft.impacts)),
                         ("hosts", ", ".join(draft.hosts)), ("alerts", draft.alert_count),
                         ("status", f"{draft.status}, owner {draft.owner_layer}, assignee {draft.assignee or '-'}"),
                         ("actions taken", "; ".join(draft.actions_taken) or "-")):
        console.print(f"{label}: {escape(str(value)) if value is not None else '-'}")
    for system in draft.systems:
        console.print(f"system: {escape(str(dict(system)))}")


def l3_report_command(
    since: Annotated[str, typer.Option("--since", help="Cases created since (e.g. 90d, ISO 8601).")] = "30d",
    until: Annotated[str | None, typer.Option("--until", help="Created before (default: now).")] = None,
    store_url: cases_cmd.StoreOpt = None,
    as_json: cases_cmd.JsonOpt = False,
) -> None:
    """The cases of a period for L3's periodic assessment: layer, escalations, SLA breaches, false positives."""
    now = wall_clock_ms()
    since_ms = cases_cmd._time(since, now, "--since") or 0
    until_ms = cases_cmd._time(until, now, "--until") if until else now
    until_ms = now if until_ms is None else until_ms
    with cases_cmd._repository(store_url) as (_store, repo):
        total, cases = repo.list("", since_ms=since_ms, until_ms=until_ms, sort="created_ms",
                                 limit=MAX_RESULT_WINDOW)
    items = l3_assessment(cases, since_ms, until_ms)
    if as_json:
        cases_cmd._print_json({"since_ms": since_ms, "until_ms": until_ms, "cases": total,
                               "complete": total <= MAX_RESULT_WINDOW, "items": [i.to_dict() for i in items]})
        return
    table = Table(title=f"L3 assessment: {len(items)} cases created {ms_to_iso(since_ms)} .. {ms_to_iso(until_ms)}")
    for name in ("case", "agency", "type", "severity", "status", "layer", "escalations", "SLA breaches", "FP"):
        table.add_column(name)
    for item in items:
        table.add_row(item.case_id, item.agency or "", item.incident_type or "", item.severity, item.status,
                      item.layer, str(item.escalations), ", ".join(b.deadline for b in item.sla_breaches),
                      "yes" if item.false_positive else "")
    Console().print(table)
    if total > MAX_RESULT_WINDOW:
        cases_cmd._error(f"only the first {MAX_RESULT_WINDOW} of {total} cases are listed: shorten the period",
                         style="yellow")


def register() -> None:
    cases_cmd.app.command("l4-draft")(l4_draft_command)
    cases_cmd.app.command("l3-report")(l3_report_command)
