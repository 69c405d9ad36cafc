"""`socctl allowlist list|add|revoke|extend`: runtime exceptions, each change audited (who, when, why)."""

from __future__ import annotations

import getpass
import os
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from correlator import allowlist_store
from correlator.errors import CorrelatorError
from correlator.model import ms_to_iso
from correlator.store.base import wall_clock_ms
from correlator.store.errors import StoreError
from correlator.timespec import TimeSpecError, parse_duration_ms, parse_time_ms

__all__ = ["register"]

app = typer.Typer(help="Allowlist: exceptions analysts add at runtime (rule, field, value, expiry, reason).",
                  no_args_is_help=True)
StoreOpt = Annotated[str | None, typer.Option("--store", help="Store URL (default: $SOCCTL_DB SQLite file).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ActorOpt = Annotated[str | None, typer.Option("--actor", help="Who makes the change (default: $SOCCTL_USER or the "
                                                               "login name).")]
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why (required; kept in the audit trail).")]


def _actor(actor: str | None) -> str:
    return actor or os.environ.get("SOCCTL_USER") or getpass.getuser()


def _fail(exc: Exception, status: int = 1) -> typer.Exit:
    Console(stderr=True).print(f"[red]{escape(str(exc))}[/red]")
    return typer.Exit(status)


def _expiry(text: str | None, now: int) -> int | None:
    """`--expires 7d` (from now) or an ISO 8601 time; 'never' or None: no expiry. Anything else stops with a usage
    error (exit status 2)."""
    if text is None or text.strip() == "never":
        return None
    try:
        return now + parse_duration_ms(text)
    except TimeSpecError:
        pass
    try:
        return parse_time_ms(text, now)
    except TimeSpecError:
        Console(stderr=True).print(f"[red]--expires: invalid expiry {escape(repr(text))}: expected a duration from "
                                   "now (12h, 7d), an ISO 8601 time, or never[/red]")
        raise typer.Exit(2) from None


@app.command("list")
def list_entries(
    active: Annotated[bool, typer.Option("--active", help="Only entries in force now.")] = False,
    store_url: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every entry with its state (active, expired, revoked)."""
    from correlator.store.config import open_store

    now = wall_clock_ms()
    try:
        with open_store(store_url) as store:
            entries = allowlist_store.stored_entries(store)
    except (CorrelatorError, StoreError) as exc:
        raise _fail(exc, 2) from exc
    if active:
        entries = [e for e in entries if e.active(now)]
    if as_json:
        typer.echo(orjson.dumps({"entries": [{**e.to_dict(), "active": e.active(now)} for e in entries]},
                                option=orjson.OPT_INDENT_2).decode())
        return
    table = Table(title=f"allowlist ({len(entries)})")
    for name in ("id", "rule", "field", "operator", "value", "expires", "state", "author", "reason"):
        table.add_column(name, overflow="fold")
    for e in entries:
        state = "revoked" if e.revoked_ms is not None else ("active" if e.active(now) else "expired")
        value = e.value if isinstance(e.value, str) else ", ".join(e.value)
        table.add_row(e.id, e.rule, e.field, str(e.operator), escape(value),
                      ms_to_iso(e.expires_ms) if e.expires_ms is not None else "never", state, escape(e.author),
                      escape(e.reason))
    Console().print(table)


@app.command("add")
def add(
    field: Annotated[str, typer.Option("--field", help="Field name (ECS dotted or native, e.g. source.ip).")],
    value: Annotated[list[str], typer.Option("--value", help="Value (repeat for the 'in' operator).")],
    reason: ReasonOpt,
    rule: Annotated[str, typer.Option("--rule", help="Rule id, or '*' for every rule.")] = "*",
    operator: Annotated[str, typer.Option("--operator", help="equals, wildcard, cidr or in.")] = "equals",
    expires: Annotated[str | None, typer.Option("--expires", help="7d, 12h (from now), ISO 8601, or never.")] = None,
    store_url: StoreOpt = None,
    actor: ActorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add an exception: alerts of RULE whose FIELD matches VALUE are not raised (counted per entry)."""
    from correlator.store.config import open_store

    if len(value) > 1 and operator != "in":
        Console(stderr=True).print(f"[red]--value given {len(value)} times: a list of values needs --operator "
                                   "in[/red]")
        raise typer.Exit(2)
    now = wall_clock_ms()
    expires_ms = _expiry(expires, now)
    single = operator != "in"  # the 'in' operator takes a list, even of one --value
    try:
        with open_store(store_url) as store:
            entry = allowlist_store.add(store, rule=rule, field=field, value=value[0] if single else value,
                                        author=_actor(actor), reason=reason, at_ms=now, operator=operator,
                                        expires_ms=expires_ms)
    except (CorrelatorError, StoreError) as exc:
        raise _fail(exc) from exc
    _done(entry.to_dict(), as_json, f"added {entry.id}: {entry.describe()}")


@app.command("revoke")
def revoke(entry_id: str, reason: ReasonOpt, store_url: StoreOpt = None, actor: ActorOpt = None,
           as_json: JsonOpt = False) -> None:
    """Revoke an entry (kept, with its history, but no longer applied)."""
    from correlator.store.config import open_store

    try:
        with open_store(store_url) as store:
            entry = allowlist_store.revoke(store, entry_id, actor=_actor(actor), at_ms=wall_clock_ms(), reason=reason)
    except (CorrelatorError, StoreError) as exc:
        raise _fail(exc) from exc
    _done(entry.to_dict(), as_json, f"revoked {entry.id}")


@app.command("extend")
def extend(entry_id: str,
           expires: Annotated[str, typer.Option("--expires", help="New expiry: 7d (from now), ISO 8601, or never.")],
           reason: ReasonOpt, store_url: StoreOpt = None, actor: ActorOpt = None, as_json: JsonOpt = False) -> None:
    """Change an entry's expiry."""
    from correlator.store.config import open_store

    now = wall_clock_ms()
    expires_ms = _expiry(expires, now)
    try:
        with open_store(store_url) as store:
            entry = allowlist_store.extend(store, entry_id, expires_ms=expires_ms, actor=_actor(actor), at_ms=now,
                                           reason=reason)
    except (CorrelatorError, StoreError) as exc:
        raise _fail(exc) from exc
    when = "never" if entry.expires_ms is None else ms_to_iso(entry.expires_ms)
    _done(entry.to_dict(), as_json, f"{entry.id} now expires {when}")


def _done(doc: dict[str, object], as_json: bool, text: str) -> None:
    if as_json:
        typer.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
    else:
        Console().print(escape(text))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="allowlist")
