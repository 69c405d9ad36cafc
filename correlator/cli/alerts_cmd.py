"""`socctl alerts list` (the alert queue with scores and suppression counts) and `socctl audit list` (who changed
what: case timelines and allowlist changes)."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from correlator.errors import CorrelatorError
from correlator.model import ms_to_iso
from correlator.scoring import Severity
from correlator.store.base import Collection, wall_clock_ms
from correlator.store.errors import StoreError
from correlator.store.query import FieldMatch, parse_query, to_query_string
from correlator.timespec import parse_time_ms

__all__ = ["register"]

alerts_app = typer.Typer(help="Alerts: the detections with their risk scores.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit trail: every change to cases and the allowlist.", no_args_is_help=True)

StoreOpt = Annotated[str | None, typer.Option("--store", help="Store URL (default: $SOCCTL_DB SQLite file).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
SinceOpt = Annotated[str | None, typer.Option("--since", help="From: 15m, 1h, 7d back, or ISO 8601.")]
LimitOpt = Annotated[int, typer.Option("--limit", "-n", help="At most this many.")]
_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "green"}
_KINDS = ("sigma", "correlation", "intel", "yara")


def _check(values: list[str], allowed: list[str] | tuple[str, ...], option: str) -> None:
    for value in values:
        if value not in allowed:
            Console(stderr=True).print(f"[red]{option}: {escape(repr(value))} is not one of {', '.join(allowed)}[/red]")
            raise typer.Exit(2)


def _get(doc: dict[str, Any], dotted: str) -> Any:
    value: Any = doc
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _where(query: str, fields: list[tuple[str, str | None]]) -> str:
    """The analyst's `query` (checked on its own, so a syntax error points into what they typed) and a match of
    each field given a value (quoted and escaped as the query language needs), all ANDed."""
    clauses = []
    if query.strip():
        try:
            parse_query(query)
        except StoreError as exc:
            Console(stderr=True).print(f"[red]{escape(str(exc))}[/red]")
            raise typer.Exit(2) from exc
        clauses.append(f"({query})")
    clauses.extend(to_query_string(FieldMatch(name, value)) for name, value in fields if value)
    return " AND ".join(clauses)


def _search(store_url: str | None, collection: Collection, query: str, since: str | None, limit: int,
            sort: str) -> tuple[int, list[dict[str, Any]]]:
    from correlator.store.config import open_store

    now = wall_clock_ms()
    try:
        since_ms = parse_time_ms(since, now) if since else None
        with open_store(store_url) as store:
            page = store.search(collection, query, since_ms=since_ms, limit=limit, sort=sort)
    except (CorrelatorError, StoreError) as exc:
        Console(stderr=True).print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from exc
    return page.total, page.hits


def alert_row(doc: dict[str, Any]) -> dict[str, Any]:
    suppression = doc.get("suppression") or {}
    return {
        "id": _get(doc, "alert.id"), "time": doc.get("@timestamp"), "rule": _get(doc, "rule.title"),
        "rule_id": _get(doc, "rule.id"), "kind": _get(doc, "rule.kind"), "level": _get(doc, "rule.level"),
        "severity": _get(doc, "risk.severity"), "score": _get(doc, "risk.score"),
        "explanation": _get(doc, "risk.explanation"), "host": _get(doc, "host.name"),
        "agency": _get(doc, "organization.id"), "system": _get(doc, "asset.system.id"),
        "count": suppression.get("count", 1), "event_id": _get(doc, "event.id"),
    }


@alerts_app.command("list")
def list_alerts(
    query: Annotated[str, typer.Argument(help="Store query over alerts (e.g. 'host.name:web01').")] = "",
    severity: Annotated[list[str] | None, typer.Option("--severity", help="Risk severity (repeatable).")] = None,
    rule: Annotated[str | None, typer.Option("--rule", help="Rule id.")] = None,
    host: Annotated[str | None, typer.Option("--host", help="Host name.")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="sigma, correlation, intel or yara.")] = None,
    since: SinceOpt = "24h",
    sort: Annotated[str, typer.Option("--sort", help="Sort field, '-' for descending.")] = "-@timestamp",
    limit: LimitOpt = 50,
    store_url: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Recent alerts, newest first, with risk score, severity and suppressed counts."""
    _check(severity or [], [s.value for s in Severity], "--severity")
    _check([kind] if kind else [], _KINDS, "--kind")
    where = _where(query, [("rule.id", rule), ("host.name", host), ("rule.kind", kind)])
    if severity:
        levels = " OR ".join(to_query_string(FieldMatch("risk.severity", s)) for s in severity)
        where = " AND ".join(part for part in (where, f"({levels})") if part)
    total, hits = _search(store_url, Collection.ALERTS, where, since, limit, sort)
    rows = [alert_row(hit) for hit in hits]
    if as_json:
        typer.echo(orjson.dumps({"total": total, "alerts": rows}, option=orjson.OPT_INDENT_2).decode())
        return
    table = Table(title=f"alerts ({len(rows)} of {total})")
    for name in ("time", "severity", "score", "rule", "host", "agency", "count", "alert id"):
        table.add_column(name, overflow="fold")
    for row in rows:
        sev = row["severity"] or ""
        table.add_row(row["time"] or "", f"[{_STYLE.get(sev, '')}]{sev}[/]", str(row["score"] or ""),
                      escape(row["rule"] or ""), escape(row["host"] or ""), escape(row["agency"] or ""),
                      str(row["count"]), row["id"] or "")
    Console().print(table)


@audit_app.command("list")
def list_audit(
    query: Annotated[str, typer.Argument(help="Store query over audit records.")] = "",
    actor: Annotated[str | None, typer.Option("--actor", help="Who made the change.")] = None,
    subject: Annotated[str | None, typer.Option("--subject", help="A case id or allowlist entry id.")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="case or allowlist.")] = None,
    since: SinceOpt = "7d",
    limit: LimitOpt = 100,
    store_url: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every change, newest first: case timelines and allowlist changes, with who, when, what and why."""
    where = _where(query, [("actor", actor), ("subject.id", subject), ("subject.kind", kind)])
    total, hits = _search(store_url, Collection.AUDIT, where, since, limit, "-at_ms")
    if as_json:
        typer.echo(orjson.dumps({"total": total, "records": hits}, option=orjson.OPT_INDENT_2).decode())
        return
    table = Table(title=f"audit ({len(hits)} of {total})")
    for name in ("when", "who", "subject", "action", "summary", "reason"):
        table.add_column(name, overflow="fold")
    for hit in hits:
        subject_doc = hit.get("subject") or {}
        at = hit.get("at_ms")
        table.add_row(ms_to_iso(at) if isinstance(at, int) else "", escape(str(hit.get("actor") or "")),
                      f"{subject_doc.get('kind', '')} {subject_doc.get('id', '')}", str(hit.get("action") or ""),
                      escape(str(hit.get("summary") or "")), escape(str(hit.get("reason") or "")))
    Console().print(table)


def register(root: typer.Typer) -> None:
    root.add_typer(alerts_app, name="alerts")
    root.add_typer(audit_app, name="audit")
