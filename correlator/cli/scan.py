"""`socctl scan`: YARA rules over files and directories; alerts to JSON lines, a summary to the terminal."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, BinaryIO

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from correlator.model import Alert, Rejected
from correlator.settings import default_yara_rules_dir
from correlator.yara_engine import DEFAULT_TIMEOUT_S, YaraRuleSet, compile_rules, scan_paths

__all__ = ["default_yara_rules_dir", "register", "scan_command"]

_SHOWN = 20  # rows per table before "... and N more"
_USAGE_ERROR = 2



def register(app: typer.Typer) -> None:
    app.command("scan")(scan_command)


def scan_command(
    paths: Annotated[list[Path], typer.Argument(help="Files or directories (walked recursively) to scan.")],
    rules: Annotated[
        list[Path] | None,
        typer.Option("--rules", help="YARA rule file or directory (repeatable), added to the defaults."),
    ] = None,
    alerts_out: Annotated[
        Path | None, typer.Option("--alerts-out", help="Write one JSON alert per line to this file.")
    ] = None,
    timeout: Annotated[int, typer.Option("--timeout", min=1, help="Per-file scan timeout in seconds.")] = (
        DEFAULT_TIMEOUT_S
    ),
    no_default_rules: Annotated[
        bool, typer.Option("--no-default-rules", help="Do not load the repository's rules/yara.")
    ] = False,
) -> None:
    """Scan files with YARA rules. Exits 0 whether or not rules hit; 2 when there are no rules."""
    out = Console()
    err = Console(stderr=True)
    rule_paths = list(rules or [])
    if not no_default_rules:
        default = default_yara_rules_dir()
        if default.is_dir():
            rule_paths.insert(0, default)
        else:
            err.print(f"[yellow]warning:[/] default YARA rules directory not found: {escape(str(default))}")
    if not rule_paths:
        err.print("[red]error:[/] no YARA rules: pass --rules DIR or drop --no-default-rules")
        raise typer.Exit(_USAGE_ERROR)

    started = time.perf_counter()
    ruleset = compile_rules(rule_paths)
    _print_ruleset(out, ruleset, time.perf_counter() - started)
    if ruleset.rule_count == 0:
        err.print("[red]error:[/] no YARA rules loaded from " + escape(", ".join(str(p) for p in rule_paths)))
        raise typer.Exit(_USAGE_ERROR)

    sink: BinaryIO | None = None
    if alerts_out is not None:
        try:
            sink = alerts_out.open("wb")
        except OSError as exc:
            reason = escape(str(exc.strerror or exc))
            err.print(f"[red]error:[/] cannot write --alerts-out {escape(str(alerts_out))}: {reason}")
            raise typer.Exit(_USAGE_ERROR) from exc

    scanner = ruleset.scanner(timeout_s=timeout, cache={})
    alerts: list[Alert] = []
    rejected: list[Rejected] = []
    started = time.perf_counter()
    try:
        for item in scan_paths(scanner, paths):
            if isinstance(item, Rejected):
                rejected.append(item)
                continue
            alerts.append(item)
            if sink is not None:
                sink.write(item.to_json() + b"\n")
    finally:
        if sink is not None:
            sink.close()
    elapsed = time.perf_counter() - started

    stats = scanner.stats
    out.print(
        f"Scanned [bold]{stats.files}[/] files ({stats.bytes / 1_048_576:.1f} MiB, "
        f"{stats.cache_hits} from cache) in {elapsed:.2f}s: "
        f"[bold]{len(alerts)}[/] alerts, {len(rejected)} rejected"
    )
    if alerts:
        _print_alerts(out, alerts)
    if rejected:
        _print_rejected(out, rejected)
    if sink is not None:
        out.print(f"Alerts written to {escape(str(alerts_out))}")


def _print_ruleset(out: Console, ruleset: YaraRuleSet, seconds: float) -> None:
    out.print(
        f"YARA rules: [bold]{ruleset.rule_count}[/] rules from {ruleset.loaded_files} files, "
        f"{len(ruleset.failures)} files failed ({seconds:.1f}s)"
    )
    if not ruleset.failures:
        return
    table = Table(title="Rule files that failed to load", title_justify="left")
    table.add_column("File", overflow="fold")
    table.add_column("Reason", overflow="fold")
    for failure in ruleset.failures[:_SHOWN]:
        where = f"{failure.path}:{failure.line}" if failure.line is not None else failure.path
        table.add_row(Text(where), Text(failure.reason))
    out.print(table)
    _print_more(out, len(ruleset.failures))


def _print_alerts(out: Console, alerts: list[Alert]) -> None:
    table = Table(title="Alerts", title_justify="left")
    table.add_column("Level")
    table.add_column("Rule", overflow="fold")
    table.add_column("File", overflow="fold")
    for alert in alerts[:_SHOWN]:
        table.add_row(alert.rule.level, Text(alert.rule.id), Text(alert.origin.path or ""))
    out.print(table)
    _print_more(out, len(alerts))


def _print_rejected(out: Console, rejected: list[Rejected]) -> None:
    table = Table(title="Rejected", title_justify="left")
    table.add_column("File", overflow="fold")
    table.add_column("Reason", overflow="fold")
    for item in rejected[:_SHOWN]:
        table.add_row(Text(item.origin.path or ""), Text(item.reason))
    out.print(table)
    _print_more(out, len(rejected))


def _print_more(out: Console, total: int) -> None:
    if total > _SHOWN:
        out.print(f"... and {total - _SHOWN} more")
