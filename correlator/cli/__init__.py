"""The `socctl` command line: one Typer app; each command group lives in its own module of this package."""

from __future__ import annotations

import typer

from correlator.cli import (
    alerts_cmd,
    allowlist_cmd,
    cases_cmd,
    cases_layers,
    playbooks_cmd,
    rules_cmd,
    run_cmd,
    scan,
    store_cmd,
)
from correlator.cli import ingest as ingest_cmd

app = typer.Typer(
    name="socctl",
    help="socctl: SOC security-event correlation engine (Sigma and YARA over ECS events).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
ingest_cmd.register(app)
rules_cmd.register(app)
scan.register(app)
run_cmd.register(app)
store_cmd.register(app)
cases_layers.register()
cases_cmd.register(app)
alerts_cmd.register(app)
allowlist_cmd.register(app)
playbooks_cmd.register(app)


def main() -> None:
    app()
