"""`socctl ingest`: replay log files through the rules; alerts to JSONL and the store, a summary at the end.

Files are processed in parallel by worker processes (forked after the rules are compiled, so workers share
them), in file order: the output is the same for any number of workers.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Annotated

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from collectors.files import FORMATS, iter_files
from correlator.cli.common import (
    CacheDirOpt,
    NoCacheOpt,
    NoDefaultRulesOpt,
    PipelineOpt,
    PlaceholdersOpt,
    RuleOptions,
    RulesOpt,
    SourcesOpt,
    failure_tally,
    load_sigma,
    print_failures,
)
from correlator.errors import CorrelatorError
from correlator.pipeline import FileResult, detect_file
from correlator.sigma.engine import SigmaEngine
from correlator.store.base import Store, WriteResult
from correlator.store.errors import StoreError

_LEVELS = ("critical", "high", "medium", "low", "informational")
_WORKER_ENGINE: SigmaEngine | None = None
_WORKER_ARGS: tuple[str | None, bool, bool] = (None, False, False)


@dataclass
class IngestTotals:
    files: int = 0
    events: int = 0
    alerts: int = 0
    by_level: Counter[str] = field(default_factory=Counter)
    by_rule: Counter[str] = field(default_factory=Counter)
    rejected: int = 0
    rejected_reasons: Counter[str] = field(default_factory=Counter)
    unknown_sources: Counter[str] = field(default_factory=Counter)
    rule_errors: Counter[str] = field(default_factory=Counter)  # rule id -> evaluations that raised
    stored: Counter[str] = field(default_factory=Counter)  # "<collection> <outcome>" -> documents
    seconds: float = 0.0

    def add_write(self, collection: str, result: WriteResult) -> None:
        self.stored[f"{collection} written"] += result.written
        self.stored[f"{collection} duplicates"] += result.duplicates
        self.stored[f"{collection} refused"] += len(result.failed)
        self.stored[f"{collection} spooled"] += result.spooled


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


def _worker(path: str) -> tuple[FileResult, dict[str, int], dict[str, int]]:
    """One file through the engine; with the unknown log sources and rule failures it added."""
    engine = _WORKER_ENGINE
    assert engine is not None, "worker started without an engine"
    fmt, lines, keep = _WORKER_ARGS
    unknown, failures = dict(engine.stats.unknown_sources), dict(engine.stats.rule_errors)
    result = detect_file(Path(path), engine, fmt, event_lines=lines, keep_events=keep)
    return (result, _delta(unknown, engine.stats.unknown_sources), _delta(failures, engine.stats.rule_errors))


def run_files(
    files: list[Path], engine: SigmaEngine, fmt: str | None, *, workers: int, event_lines: bool, keep_events: bool
) -> Iterator[tuple[FileResult, dict[str, int], dict[str, int]]]:
    """Results per file, in file order, from `workers` forked processes (1: in this process)."""
    global _WORKER_ENGINE, _WORKER_ARGS  # noqa: PLW0603 - the fork start method shares these with workers
    _WORKER_ENGINE = engine
    _WORKER_ARGS = (fmt, event_lines, keep_events)
    names = [str(f) for f in files]
    if workers <= 1 or len(files) <= 1:
        for name in names:
            yield _worker(name)
        return
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(workers) as pool:
        yield from pool.imap(_worker, names, chunksize=max(1, min(16, len(names) // (workers * 8))))


def _store_result(console: Console, store: Store, result: FileResult, totals: IngestTotals) -> None:
    """Alerts, dead letters and (with --store-events) events of one file into the store. A store error (the
    spool is full, the server refuses every request) stops the run: the files can be replayed, since writes
    are idempotent."""
    try:
        totals.add_write("alerts", store.write_alerts(result.alerts))
        totals.add_write("deadletter", store.write_rejected(result.rejected))
        if result.stored_events:
            totals.add_write("events", store.write_events(result.stored_events))
    except StoreError as exc:
        console.print(f"[red]store error while writing {result.path}: {exc}[/red]")
        console.print("the run stopped here; writes are idempotent, so run the same command again to resume")
        raise typer.Exit(1) from exc


def _summary(console: Console, totals: IngestTotals, rules_loaded: int, rules_failed: int) -> None:
    rate = totals.events / totals.seconds if totals.seconds > 0 else 0.0
    table = Table(title="socctl ingest", show_header=False)
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("files", str(totals.files))
    table.add_row("events", f"{totals.events} ({rate:,.0f}/s)")
    table.add_row("alerts", str(totals.alerts))
    for level in _LEVELS:
        if totals.by_level.get(level):
            table.add_row(f"  {level}", str(totals.by_level[level]))
    table.add_row("rejected records", str(totals.rejected))
    table.add_row("rules loaded", str(rules_loaded))
    table.add_row("rules not loaded", str(rules_failed))
    if totals.unknown_sources:
        table.add_row("events of unknown log source", str(sum(totals.unknown_sources.values())))
    if totals.rule_errors:
        table.add_row("rule evaluations that failed", str(sum(totals.rule_errors.values())))
    for key, count in sorted(totals.stored.items()):
        if count:
            table.add_row(f"store: {key}", str(count))
    console.print(table)
    if totals.by_rule:
        top = Table(title="Top rules")
        top.add_column("rule")
        top.add_column("alerts", justify="right")
        for title, count in totals.by_rule.most_common(10):
            top.add_row(title, str(count))
        console.print(top)
    if totals.rejected_reasons:
        rej = Table(title="Rejected records by reason")
        rej.add_column("reason")
        rej.add_column("records", justify="right")
        for reason, count in totals.rejected_reasons.most_common(10):
            rej.add_row(reason, str(count))
        console.print(rej)


def _summary_doc(totals: IngestTotals, rules_loaded: int, rules_failed: int, workers: int) -> dict[str, object]:
    return {
        "files": totals.files,
        "events": totals.events,
        "alerts": totals.alerts,
        "alerts_by_level": dict(totals.by_level),
        "top_rules": totals.by_rule.most_common(10),
        "rejected": totals.rejected,
        "rejected_by_reason": dict(totals.rejected_reasons),
        "unknown_sources": dict(totals.unknown_sources),
        "rule_errors": dict(totals.rule_errors),
        "rules_loaded": rules_loaded,
        "rules_failed": rules_failed,
        "workers": workers,
        "store": {key: count for key, count in sorted(totals.stored.items()) if count},
        "seconds": round(totals.seconds, 3),
        "events_per_second": round(totals.events / totals.seconds) if totals.seconds > 0 else 0,
    }


def _open(path: Path | None, stack: ExitStack) -> IO[bytes] | None:
    if path is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    return stack.enter_context(path.open("wb"))


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Log files or directories (EVTX, JSON/NDJSON).")],
    rules: RulesOpt = None,
    no_default_rules: NoDefaultRulesOpt = False,
    fmt: Annotated[str | None, typer.Option("--format", "-f", help=f"Force a format: {', '.join(FORMATS)}.")] = None,
    alerts_out: Annotated[Path | None, typer.Option("--alerts-out", help="Write alerts as JSON lines.")] = None,
    events_out: Annotated[
        Path | None, typer.Option("--events-out", help="Write every ECS event as JSON lines.")
    ] = None,
    store_url: Annotated[
        str | None, typer.Option("--store", help="Store URL (default: $SOCCTL_DB SQLite file).")
    ] = None,
    no_store: Annotated[bool, typer.Option("--no-store", help="Do not persist alerts and dead letters.")] = False,
    store_events: Annotated[bool, typer.Option("--store-events", help="Also persist every event.")] = False,
    workers: Annotated[int, typer.Option("--workers", "-j", help="Worker processes (0: one per core).")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    summary_json: Annotated[
        Path | None, typer.Option("--summary-json", help="Write the run's figures as JSON (for scripts).")
    ] = None,
    sources: SourcesOpt = None,
    placeholders: PlaceholdersOpt = None,
    pipeline: PipelineOpt = None,
    cache_dir: CacheDirOpt = None,
    no_cache: NoCacheOpt = False,
) -> None:
    """Replay log files through the Sigma rules and report the alerts."""
    console = Console(stderr=True)
    if fmt is not None and fmt not in FORMATS:
        console.print(f"[red]unknown format {fmt!r}: expected one of {', '.join(FORMATS)}[/red]")
        raise typer.Exit(2)
    missing = [p for p in paths if not p.exists()]
    if missing:
        console.print(f"[red]no such file or directory: {', '.join(map(str, missing))}[/red]")
        raise typer.Exit(2)
    opts = RuleOptions(rules or [], no_default_rules, sources, placeholders, pipeline, cache_dir, no_cache)
    try:
        ruleset, sources_cfg = load_sigma(opts)
    except CorrelatorError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    if ruleset.errors:
        console.print(f"[yellow]{len(ruleset.errors)} rules not loaded:[/yellow]")
        print_failures(console, ruleset.errors, limit=10)
    engine = SigmaEngine(ruleset.rules, sources_cfg)
    gc.freeze()  # compiled rules live for the whole run: keep the cyclic collector from rescanning them
    files = list(iter_files(paths))
    n_workers = workers if workers > 0 else (os.cpu_count() or 1)
    totals = IngestTotals()
    started = time.perf_counter()
    with ExitStack() as stack:
        store = None
        if not no_store:
            from correlator.store.config import open_store

            try:
                store = stack.enter_context(open_store(store_url))
            except CorrelatorError as exc:
                console.print(f"[red]cannot open the store: {exc}[/red]")
                raise typer.Exit(2) from exc
        alerts_fh = _open(alerts_out, stack)
        events_fh = _open(events_out, stack)
        progress = Progress(
            TextColumn("[bold]ingest"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[events]} events"),
            TimeElapsedColumn(), console=console, disable=quiet, transient=False,
        )
        stack.enter_context(progress)
        task = progress.add_task("files", total=len(files), events=0)
        results = run_files(files, engine, fmt, workers=n_workers, event_lines=events_fh is not None,
                            keep_events=store is not None and store_events)
        for result, unknown, failures in results:
            totals.files += 1
            totals.events += result.events
            totals.unknown_sources.update(unknown)
            totals.rule_errors.update(failures)
            for alert in result.alerts:
                totals.alerts += 1
                totals.by_level[alert.rule.level] += 1
                totals.by_rule[alert.rule.title] += 1
                if alerts_fh is not None:
                    alerts_fh.write(alert.to_json() + b"\n")
            for item in result.rejected:
                totals.rejected += 1
                totals.rejected_reasons[item.reason.split(":")[0][:100]] += 1
            if events_fh is not None and result.event_lines:
                events_fh.write(b"\n".join(result.event_lines) + b"\n")
            if store is not None:
                _store_result(console, store, result, totals)
            progress.update(task, advance=1, events=totals.events)
        if store is not None:
            waiting = store.flush()
            if waiting:
                console.print(f"[yellow]{waiting} documents wait in the spool: the store is unreachable; they are "
                              "sent by the next command that opens the same store[/yellow]")
    totals.seconds = time.perf_counter() - started
    _summary(console, totals, ruleset.loaded, len(ruleset.errors))
    if summary_json is not None:
        summary_json.write_bytes(orjson.dumps(_summary_doc(totals, ruleset.loaded, len(ruleset.errors), n_workers),
                                              option=orjson.OPT_INDENT_2))
    if totals.unknown_sources:
        for sig, count in totals.unknown_sources.most_common(5):
            console.print(f"[yellow]unknown log source[/yellow] {sig}: {count} events "
                          "(evaluated against every rule whose fields they carry)")
    tally = failure_tally(ruleset.errors)
    if tally:
        console.print("rules not loaded by reason: " + "; ".join(f"{k} ({v})" for k, v in tally.most_common(5)))


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest)
