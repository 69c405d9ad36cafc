"""`socctl playbooks check|list`: validate playbooks like rules (collect-all, file and line), list what loads."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from correlator.cases.playbooks import PlaybookSet, load_playbooks
from correlator.settings import default_playbooks_dir

__all__ = ["register"]

app = typer.Typer(help="Incident playbooks: per incident type, ordered steps owned by layers L1-L4.",
                  no_args_is_help=True)
PathsArg = Annotated[list[Path] | None, typer.Argument(help="Playbook files or directories (default: playbooks/).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _load(paths: list[Path] | None) -> PlaybookSet:
    targets = paths or [default_playbooks_dir()]
    missing = [p for p in targets if not p.exists()]
    if missing:
        Console(stderr=True).print(f"[red]no such file or directory: {', '.join(map(str, missing))}[/red]")
        raise typer.Exit(2)
    return load_playbooks(targets)


@app.command("check")
def check(paths: PathsArg = None, as_json: JsonOpt = False) -> None:
    """Load every playbook; report each failure with file, line and key. Exit status 1 when any failed."""
    loaded = _load(paths)
    if as_json:
        typer.echo(orjson.dumps({"loaded": len(loaded.playbooks), "failed": [e.to_dict() for e in loaded.errors]},
                                option=orjson.OPT_INDENT_2).decode())
        raise typer.Exit(1 if loaded.errors else 0)
    console = Console()
    for error in loaded.errors:
        console.print(f"[red]✗[/red] {escape(str(error))}", highlight=False, soft_wrap=True)
    console.print(f"playbooks loaded: {len(loaded.playbooks)}, failed: {len(loaded.errors)}")
    raise typer.Exit(1 if loaded.errors else 0)


@app.command("list")
def list_playbooks(paths: PathsArg = None, as_json: JsonOpt = False) -> None:
    """The playbooks that load, with their incident type and steps."""
    loaded = _load(paths)
    books = sorted(loaded.playbooks.values(), key=lambda p: p.id)
    if as_json:
        typer.echo(orjson.dumps([p.to_dict() for p in books], option=orjson.OPT_INDENT_2).decode())
        return
    console = Console()
    for book in books:
        table = Table(title=f"{book.id} — {book.title} ({book.incident_type.value}) / {book.title_vi}")
        for name in ("step", "layer", "due", "title", "evidence"):
            table.add_column(name)
        for step in book.steps:
            table.add_row(step.id, step.layer.value, step.to_dict()["due"], step.title, ", ".join(step.evidence))
        console.print(table)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="playbooks")
