"""`socctl run`: the long-running engine (syslog over UDP/TCP, replayed files) on the embedded store by default."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from collectors.errors import CollectorError
from correlator.errors import CorrelatorError
from correlator.settings import PROJECT_ROOT
from correlator.store.errors import StoreError

__all__ = ["register"]


def run(
    config_file: Annotated[Path | None, typer.Option("--config", "-c", help="Configuration file (YAML).")] = None,
    store_url: Annotated[str | None, typer.Option("--store", help="Store URL (overrides the configuration).")] = None,
    replay: Annotated[list[Path] | None, typer.Option("--replay", help="Files to read once at start (repeatable; "
                                                                       "default without --config: samples/).")] = None,
    no_replay: Annotated[bool, typer.Option("--no-replay", help="Read no files at start.")] = False,
    state_dir: Annotated[Path | None, typer.Option("--state-dir", help="Where correlation state is kept.")] = None,
    ports_file: Annotated[Path | None, typer.Option(
        "--ports-file", help="Write the bound ports as JSON once listening (for supervisors and tests).")] = None,
) -> None:
    """Run the engine until SIGTERM or Ctrl-C: syslog on 127.0.0.1:5514 (UDP and TCP), metrics on
    127.0.0.1:9464/metrics, alerts and cases into the store."""
    from correlator.live.app import build_runner, run_until_signalled
    from correlator.live.config import load_run_config
    from correlator.store.config import open_store

    console = Console(stderr=True)
    _log_to(console)
    try:
        config = load_run_config(config_file)
    except CorrelatorError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from exc
    changes: dict[str, object] = {}
    if store_url is not None:
        changes["store"] = store_url
    if state_dir is not None:
        changes["state_dir"] = state_dir
    if no_replay:
        changes["replay"] = ()
    elif replay:
        changes["replay"] = tuple(replay)
    elif config_file is None:
        changes["replay"] = (PROJECT_ROOT / "samples",)
    config = dataclasses.replace(config, **changes)  # type: ignore[arg-type]
    try:
        with open_store(config.store) as store:
            runner, warnings = build_runner(config, store)
            for warning in warnings[:20]:
                console.print(f"[yellow]{escape(warning)}[/yellow]")
            restored = runner.restore()

            def ready(ports: dict[str, int]) -> None:
                where = ", ".join(f"{name} {config.syslog.host if name != 'metrics' else config.metrics.host}:"
                                  f"{port}" for name, port in sorted(ports.items()))
                console.print(f"socctl run: listening on {where}; store {store!r}; state "
                              f"{'restored from' if restored else 'kept in'} {runner.state_path}")
                sys.stderr.flush()
                if ports_file is not None:
                    tmp = ports_file.with_name(ports_file.name + ".tmp")
                    tmp.write_text(json.dumps(ports), encoding="utf-8")
                    tmp.replace(ports_file)

            run_until_signalled(runner, ready)
    except (CorrelatorError, CollectorError, StoreError) as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(1) from exc
    c = runner.counters
    console.print(f"socctl run: stopped; {c.events_processed} events, {c.alerts} alerts, {c.cases_opened} cases "
                  f"opened, {c.cases_updated} updated; state saved in {runner.state_path}")


def _log_to(console: Console) -> None:
    """The engine's own messages (socctl's loggers at INFO, others at WARNING) to stderr, one line each."""
    import logging

    from rich.logging import RichHandler

    handler = RichHandler(console=console, show_path=False, markup=False, rich_tracebacks=False,
                          log_time_format="%H:%M:%S")
    logging.basicConfig(level=logging.WARNING, handlers=[handler], format="%(message)s", force=True)
    for name in ("correlator", "collectors"):
        logging.getLogger(name).setLevel(logging.INFO)


def _check_engine(pid: int) -> None:
    """`ValueError` unless process `pid` is a `socctl run` (a pid file left by a killed engine may name another
    process by now, which a SIGHUP would end). Where /proc cannot be read the pid is taken as it is."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        raise ValueError(f"process {pid} is not running (a stale pid file)") from None
    except OSError:
        return
    words = {Path(part.decode(errors="replace")).name for part in command}
    if "run" not in words or not ({"socctl", "correlator.cli"} & words):
        raise ValueError(f"process {pid} is not socctl run (a stale pid file)")


def reload(
    state_dir: Annotated[Path | None, typer.Option(
        "--state-dir", help="The running engine's state directory (default: the configured or default one).")] = None,
    config_file: Annotated[Path | None, typer.Option("--config", "-c", help="Its configuration file.")] = None,
) -> None:
    """Make the running engine read its rules, assets, playbooks and other configuration files again (SIGHUP):
    correlation windows are kept; files that do not load leave the running ones in place (see its log)."""
    import os
    import signal

    from correlator.live.app import pid_file
    from correlator.live.config import load_run_config

    console = Console(stderr=True)
    try:
        directory = state_dir or load_run_config(config_file).state_dir
    except CorrelatorError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]")
        raise typer.Exit(2) from exc
    path = pid_file(directory)
    try:
        pid = int(path.read_text(encoding="utf-8").strip())
        _check_engine(pid)
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError) as exc:
        console.print(f"[red]no running engine found through {escape(str(path))}: {escape(str(exc))}[/red]")
        raise typer.Exit(1) from exc
    console.print(f"reload asked of socctl run (pid {pid})")


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("reload")(reload)
