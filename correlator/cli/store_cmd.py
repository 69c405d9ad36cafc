"""`socctl search` for analysts, and `socctl store retention|flush|move-events` for the store's upkeep."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from correlator.errors import CorrelatorError
from correlator.model import ms_to_iso
from correlator.store.base import Store, wall_clock_ms
from correlator.store.errors import StoreError
from correlator.store.retention import RetentionPolicy, load_retention_policy
from correlator.timespec import parse_time_ms

StoreOpt = Annotated[
    str | None,
    typer.Option("--store", help="Store URL: sqlite:///file.db or http(s)://elasticsearch (default: $SOCCTL_ES_URL, "
                                 "then $SOCCTL_DB, then the embedded SQLite file)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

# The columns an analyst wants first in each collection; --fields overrides.
DEFAULT_FIELDS: dict[str, tuple[str, ...]] = {
    "events": ("@timestamp", "host.name", "event.code", "event.dataset", "message"),
    "alerts": ("@timestamp", "rule.level", "rule.title", "host.name", "event.id"),
    "deadletter": ("@timestamp", "stage", "reason", "log.file.path"),
    "cases": ("@timestamp", "id", "severity", "status", "layer", "assignee", "title"),
    "allowlist": ("@timestamp", "id", "rule", "field", "value", "author", "reason"),
    "audit": ("@timestamp", "actor", "action", "subject.id", "summary"),
}
MAX_CELL = 120

store_app = typer.Typer(help="Store upkeep: retention, the Elasticsearch spool, the SQLite files.",
                        no_args_is_help=True)


def _open(url: str | None, *, spool: bool = False) -> Store:
    from correlator.store.config import open_store

    return open_store(url, spool=spool)


def _value(doc: dict[str, Any], dotted: str) -> Any:
    if dotted in doc:
        return doc[dotted]
    value: Any = doc
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    text = text.replace("\n", " ")
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def search(
    query: Annotated[str, typer.Argument(help="Query: words, \"phrases\", field:value, field:val*, field:*, "
                                              "AND/OR/NOT, parentheses. Empty: everything.")] = "",
    collection: Annotated[
        str, typer.Option("--in", help="events, alerts, deadletter, cases, allowlist or audit.")
    ] = "events",
    since: Annotated[str | None, typer.Option("--since", help="From: 15m, 1h, 7d back, or ISO 8601.")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Until (exclusive): as --since.")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="Hits to print.")] = 20,
    offset: Annotated[int, typer.Option("--offset", help="Hits to skip.")] = 0,
    sort: Annotated[str, typer.Option("--sort", help="Field, '-' first for descending.")] = "-@timestamp",
    fields: Annotated[str | None, typer.Option("--fields", help="Comma-separated columns of the table.")] = None,
    store_url: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Search stored events, alerts or dead letters."""
    console = Console(stderr=as_json)
    now = wall_clock_ms()
    try:
        since_ms = parse_time_ms(since, now) if since else None
        until_ms = parse_time_ms(until, now) if until else None
        with _open(store_url) as store:
            page = store.search(collection, query, since_ms=since_ms, until_ms=until_ms, limit=limit,
                                offset=offset, sort=sort)
    except (CorrelatorError, StoreError) as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(orjson.dumps({"total": page.total, "hits": page.hits}).decode())
        return
    columns = tuple(f.strip() for f in fields.split(",") if f.strip()) if fields else DEFAULT_FIELDS.get(
        collection, ("@timestamp",))
    table = Table(title=f"{collection}: {page.total} hits" + (f" (showing {len(page.hits)} from {offset})"
                                                               if page.total > len(page.hits) else ""))
    for column in columns:
        table.add_column(column, overflow="fold")
    for hit in page.hits:
        table.add_row(*(escape(_cell(_value(hit, column))) for column in columns))
    console.print(table)


@store_app.command("retention")
def retention(
    policy_file: Annotated[Path | None, typer.Option("--policy", help="Retention policy YAML (default: levels "
                                                                        "2: 30d, 3: 90d, 4: 180d, 5: 365d).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report what would be deleted; delete nothing.")] = False,
    store_url: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete events, alerts and dead letters older than their agency's security level keeps them."""
    console = Console(stderr=as_json)
    try:
        policy = load_retention_policy(policy_file) if policy_file else RetentionPolicy()
        with _open(store_url) as store:
            purges = store.apply_retention(policy, dry_run=dry_run)
    except (CorrelatorError, StoreError) as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(orjson.dumps({"dry_run": dry_run, "purges": [p.to_dict() for p in purges]}).decode())
        return
    verb = "would delete" if dry_run else "deleted"
    table = Table(title=f"retention ({'dry run' if dry_run else 'applied'}): {verb} "
                        f"{sum(p.documents for p in purges)} documents")
    for column in ("target", "collection", "agency", "level", "older than", "documents"):
        table.add_column(column)
    for purge in purges:
        table.add_row(escape(purge.target), purge.collection, purge.agency, str(purge.level),
                      ms_to_iso(purge.cutoff_ms), str(purge.documents))
    console.print(table)


@store_app.command("flush")
def flush(store_url: StoreOpt = None) -> None:
    """Send the documents spooled while Elasticsearch was unreachable; exit 1 if some still wait."""
    console = Console()
    try:
        with _open(store_url, spool=True) as store:
            before = store.pending
            waiting = store.flush()
    except StoreError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from exc
    console.print(f"sent {before - waiting} spooled documents; {waiting} still waiting")
    if waiting:
        raise typer.Exit(1)


@store_app.command("move-events")
def move_events_cmd(
    vacuum: Annotated[bool, typer.Option("--vacuum", help="Then shrink the main file (VACUUM: rewrites it).")] = False,
    store_url: StoreOpt = None,
) -> None:
    """Move the events of a SQLite store made before socctl kept them in a file of their own into that file
    (`<name>.events.db`), so the detection workers storing events no longer wait for alerts and cases. Stop
    the engine first: the move holds the store's write lock until it ends."""
    from correlator.store.config import sqlite_target
    from correlator.store.sqlite_move import move_events

    console = Console()
    try:
        moved = move_events(sqlite_target(store_url), wall_clock_ms, vacuum=vacuum)
    except StoreError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from exc
    console.print(f"moved {moved.events} events from {escape(moved.path)} into {escape(moved.events_path)}"
                  f"{' (main file vacuumed)' if moved.vacuumed else ''}")


def register(app: typer.Typer) -> None:
    app.command("search")(search)
    app.add_typer(store_app, name="store")
