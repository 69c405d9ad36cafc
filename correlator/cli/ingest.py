"""`socctl ingest`: replay log files through the rules; alerts to JSONL and the store, cases, a summary.

Files are processed in parallel by worker processes (forked after the rules are compiled, so workers share
them): the detection stage (`correlator.pipeline`) per file. The analysis stage (`correlator.analysis`:
correlation, suppression, scores) then sees every alert and correlation input of the run in event-time order, so
the output is the same for any number of workers, any file order and shuffled records; alerts go to cases last
(`correlator.sink`). Without `--state` a replay is complete: every correlation window closes at the end.

With YARA rules (the repository's rules/yara unless `--yara-rules` or `--no-yara`), the content events carry is
scanned too: capture files are read with HTTP response bodies carved, and each body's YARA hits are alerts linked
to its http event. The rules are compiled before the workers fork; each worker builds its own scanner and hit
cache on its first payload (the parent scans nothing before forking: yara-x's timeout clock is a thread, and a
forked child would not have it).
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import tzinfo
from pathlib import Path
from typing import IO, Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from collectors.files import FORMATS, iter_files
from correlator.analysis import Analyzer, Outcome, ScoredAlert, StateError, load_state, save_state
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
from correlator.cli.fork_map import fork_map
from correlator.cli.ingest_report import IngestTotals, print_summary, summary_doc
from correlator.cli.runtime_opts import (
    AllowlistOpt,
    AssetsOpt,
    CasesConfigOpt,
    IntelOpt,
    LatenessOpt,
    NoSuppressionOpt,
    NoYaraOpt,
    PlaybooksOpt,
    ScoringOpt,
    SuppressionOpt,
    YaraRulesOpt,
    YaraTimeoutOpt,
    load_runtime_or_exit,
    parse_duration_or_exit,
)
from correlator.correlation import RuleMatch
from correlator.errors import CorrelatorError
from correlator.model import Alert
from correlator.pipeline import Detection, FileResult, detect_file
from correlator.runtime import Runtime, RuntimeOptions
from correlator.scoring import RuleHistory
from correlator.sigma.engine import SigmaEngine
from correlator.store.base import Store, wall_clock_ms
from correlator.store.errors import StoreError
from correlator.yara_payload import DEFAULT_PAYLOAD_TIMEOUT_S

_WORKER_DETECTION: Detection | None = None
_WORKER_ARGS: tuple[str | None, bool, bool, tzinfo | None] = (None, False, False, None)


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


def _worker(path: str) -> tuple[FileResult, dict[str, int], dict[str, int]]:
    """One file through the engine; with the unknown log sources and rule failures it added."""
    detection = _WORKER_DETECTION
    assert detection is not None, "worker started without a detection stage"
    engine = detection.engine
    fmt, lines, keep, tz = _WORKER_ARGS
    unknown, failures = dict(engine.stats.unknown_sources), dict(engine.stats.rule_errors)
    result = detect_file(Path(path), detection, fmt, event_lines=lines, keep_events=keep, tz=tz)
    return (result, _delta(unknown, engine.stats.unknown_sources), _delta(failures, engine.stats.rule_errors))


def run_files(
    files: list[Path], detection: Detection, fmt: str | None, *, workers: int, event_lines: bool,
    keep_events: bool, tz: tzinfo | None = None,
) -> Iterator[tuple[FileResult, dict[str, int], dict[str, int]]]:
    """Results per file, in file order, from `workers` forked processes (1: in this process)."""
    global _WORKER_DETECTION, _WORKER_ARGS  # noqa: PLW0603 - the fork start method shares these with workers
    _WORKER_DETECTION = detection
    _WORKER_ARGS = (fmt, event_lines, keep_events, tz)
    names = [str(f) for f in files]
    if workers <= 1 or len(files) <= 1:
        for name in names:
            yield _worker(name)
        return
    size = max(1, min(16, len(names) // (workers * 8)))
    tasks = [names[i:i + size] for i in range(0, len(names), size)]
    for results in fork_map(_worker_chunk, tasks, workers):
        yield from results


def _worker_chunk(paths: list[str]) -> list[tuple[FileResult, dict[str, int], dict[str, int]]]:
    return [_worker(path) for path in paths]


def _store_result(console: Console, store: Store, result: FileResult, totals: IngestTotals) -> None:
    """Dead letters and (with --store-events) events of one file into the store (alerts go after the analysis
    stage). A store error (the spool is full, the server refuses every request) stops the run: the files can be
    replayed, since writes are idempotent."""
    try:
        totals.add_write("deadletter", store.write_rejected(result.rejected))
        if result.stored_events:
            totals.add_write("events", store.write_events(result.stored_events))
    except StoreError as exc:
        console.print(f"[red]store error while writing {result.path}: {exc}[/red]")
        console.print("the run stopped here; writes are idempotent, so run the same command again to resume")
        raise typer.Exit(1) from exc


def _open(path: Path | None, stack: ExitStack) -> IO[bytes] | None:
    if path is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    return stack.enter_context(path.open("wb"))


def _final(outcome: Outcome) -> Outcome:
    """A whole replay at once: each representative alert created in this run is written once, with its final
    suppression count; only representatives from an earlier run (`--state`) stay as updates (overwrites)."""
    latest = {alert.id: alert for alert in outcome.updated}
    alerts = []
    for item in outcome.alerts:
        final = latest.pop(item.alert.id, None)
        alerts.append(item if final is None else ScoredAlert(final, item.risk, item.verdict))
    outcome.alerts = alerts
    outcome.updated = list(latest.values())
    return outcome


def _rule_history(store: Store | None) -> dict[str, RuleHistory]:
    if store is None:
        return {}
    from correlator.cases.repository import rule_history

    return rule_history(store)


def _read_state(console: Console, analyzer: Analyzer, state: Path | None) -> None:
    if state is None:
        return
    try:
        load_state(analyzer, state)
    except (StateError, CorrelatorError) as exc:
        console.print(f"[red]cannot restore the state: {exc}[/red]")
        raise typer.Exit(2) from exc


def _tally_alerts(totals: IngestTotals, outcome: Outcome, alerts_fh: IO[bytes] | None) -> None:
    totals.correlation_alerts += outcome.correlation_alerts
    totals.suppressed += outcome.suppressed
    for item in outcome.alerts:
        alert = item.alert
        totals.alerts += 1
        totals.by_level[alert.rule.level] += 1
        totals.by_severity[item.risk.severity.value] += 1
        totals.by_rule[alert.rule.title] += 1
        if alerts_fh is not None:
            alerts_fh.write(alert.to_json() + b"\n")


def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Log files or directories (EVTX, JSON/NDJSON, pcap, ...).")],
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
    no_store: Annotated[
        bool, typer.Option("--no-store", help="Do not persist alerts, cases and dead letters.")
    ] = False,
    store_events: Annotated[bool, typer.Option("--store-events", help="Also persist every event.")] = False,
    no_cases: Annotated[bool, typer.Option("--no-cases", help="Do not group alerts into cases.")] = False,
    workers: Annotated[int, typer.Option("--workers", "-j", help="Worker processes (0: one per core).")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    summary_json: Annotated[
        Path | None, typer.Option("--summary-json", help="Write the run's figures as JSON (for scripts).")
    ] = None,
    intel: IntelOpt = None,
    assets: AssetsOpt = None,
    allowlist: AllowlistOpt = None,
    scoring: ScoringOpt = None,
    suppression: SuppressionOpt = None,
    no_suppression: NoSuppressionOpt = False,
    cases_config: CasesConfigOpt = None,
    playbooks: PlaybooksOpt = None,
    lateness: LatenessOpt = "0",
    yara_rules: YaraRulesOpt = None,
    no_yara: NoYaraOpt = False,
    yara_timeout: YaraTimeoutOpt = DEFAULT_PAYLOAD_TIMEOUT_S,
    state: Annotated[Path | None, typer.Option(
        "--state", help="Keep correlation windows and suppression counts in this file across runs: restored "
                        "first, written at the end; open windows stay open for the next run.")] = None,
    finish: Annotated[bool, typer.Option(
        "--finish", help="With --state: this is the last part of the input; close every open window.")] = False,
    sources: SourcesOpt = None,
    placeholders: PlaceholdersOpt = None,
    pipeline: PipelineOpt = None,
    cache_dir: CacheDirOpt = None,
    no_cache: NoCacheOpt = False,
    timezone: Annotated[str, typer.Option(
        "--timezone", help="IANA zone of syslog timestamps that carry none (RFC 3164 lines: the servers' local "
                           "time), e.g. Asia/Ho_Chi_Minh.")] = "UTC",
) -> None:
    """Replay log files through the rules: alerts, correlation, scores and cases, and a summary."""
    console = Console(stderr=True)
    if fmt is not None and fmt not in FORMATS:
        console.print(f"[red]unknown format {fmt!r}: expected one of {', '.join(FORMATS)}[/red]")
        raise typer.Exit(2)
    try:
        tz = None if timezone == "UTC" else ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        console.print(f"[red]unknown time zone {timezone!r}: an IANA name such as Asia/Ho_Chi_Minh or UTC[/red]")
        raise typer.Exit(2) from None
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
        runtime = load_runtime_or_exit(console, RuntimeOptions(
            rule_paths=opts.rule_paths(), rule_texts=ruleset.texts, intel=intel or [], assets=assets,
            allowlist_files=allowlist or [],
            scoring=scoring, suppression=suppression, suppress=not no_suppression, cases_config=cases_config,
            playbooks=playbooks, lateness_ms=parse_duration_or_exit(console, lateness, "--lateness"),
            yara=not no_yara, yara_rules=yara_rules or None, yara_timeout_s=yara_timeout,
        ), store)
        totals.yara_rules = runtime.yara.rule_count if runtime.yara is not None else 0
        correlation = runtime.correlation_engine()
        detection = runtime.detection(engine, correlation, wall_clock_ms())
        analyzer = runtime.analyzer(correlation, _rule_history(store))
        _read_state(console, analyzer, state)
        gc.freeze()  # compiled rules live for the whole run: keep the cyclic collector from rescanning them
        alerts_fh = _open(alerts_out, stack)
        events_fh = _open(events_out, stack)
        progress = Progress(
            TextColumn("[bold]ingest"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[events]} events"),
            TimeElapsedColumn(), console=console, disable=quiet, transient=False,
        )
        stack.enter_context(progress)
        task = progress.add_task("files", total=len(files), events=0)
        results = run_files(files, detection, fmt, workers=n_workers, event_lines=events_fh is not None,
                            keep_events=store is not None and store_events, tz=tz)
        alerts: list[Alert] = []
        matches: list[RuleMatch] = []
        for result, unknown, failures in results:
            totals.files += 1
            totals.events += result.events
            totals.unknown_sources.update(unknown)
            totals.rule_errors.update(failures)
            totals.excepted.update(result.excepted)
            totals.withheld += result.withheld
            totals.payloads += result.payloads
            totals.payload_cache_hits += result.payload_cache_hits
            totals.yara_alerts += result.yara_alerts
            alerts.extend(result.alerts)
            matches.extend(result.matches)
            # What arrives lives until the end of the run: keep the cyclic collector from walking it again at
            # each collection (on 12,000 alerts, a third of the analysis stage's time). Freezing is a list splice.
            gc.freeze()
            for item in result.rejected:
                totals.rejected += 1
                totals.rejected_reasons[item.reason.split(":")[0][:100]] += 1
            if events_fh is not None and result.event_lines:
                events_fh.write(b"\n".join(result.event_lines) + b"\n")
            if store is not None:
                _store_result(console, store, result, totals)
            progress.update(task, advance=1, events=totals.events)
        outcome = analyzer.run(alerts, matches)
        if state is None or finish:
            outcome.extend(analyzer.finish())
        if state is not None:
            save_state(analyzer, state)
        outcome = _final(outcome)
        totals.analysis = analyzer.metrics()
        _tally_alerts(totals, outcome, alerts_fh)
        if store is not None:
            _deliver(console, store, runtime, outcome, totals, cases=not no_cases)
            waiting = store.flush()
            if waiting:
                console.print(f"[yellow]{waiting} documents wait in the spool: the store is unreachable; they are "
                              "sent by the next command that opens the same store[/yellow]")
    totals.seconds = time.perf_counter() - started
    n_corr = len(runtime.correlations.rules)
    print_summary(console, totals, ruleset.loaded, len(ruleset.errors), n_corr)
    if summary_json is not None:
        summary_json.write_bytes(orjson.dumps(summary_doc(totals, ruleset.loaded, len(ruleset.errors), n_workers,
                                                          n_corr), option=orjson.OPT_INDENT_2))
    if totals.unknown_sources:
        for sig, count in totals.unknown_sources.most_common(5):
            console.print(f"[yellow]unknown log source[/yellow] {sig}: {count} events "
                          "(evaluated against every rule whose fields they carry)")
    tally = failure_tally(ruleset.errors)
    if tally:
        console.print("rules not loaded by reason: " + "; ".join(f"{k} ({v})" for k, v in tally.most_common(5)))
    for problem in runtime.problems[:10]:
        console.print(f"[yellow]{problem.what} not loaded[/yellow] {problem}")
    if len(runtime.problems) > 10:
        console.print(f"... and {len(runtime.problems) - 10} more")


def _deliver(console: Console, store: Store, runtime: Runtime, outcome: Outcome, totals: IngestTotals, *,
             cases: bool) -> None:
    from correlator.cases.repository import CaseRepository
    from correlator.sink import AlertSink

    repository = CaseRepository(store, runtime.grouper(), wall_clock_ms) if cases else None
    try:
        delivery = AlertSink(store, repository, wall_clock_ms).deliver(outcome)
    except StoreError as exc:
        console.print(f"[red]store error while writing alerts and cases: {exc}[/red]")
        console.print("the run stopped here; writes are idempotent, so run the same command again to resume")
        raise typer.Exit(1) from exc
    totals.delivery = delivery
    totals.add_write("alerts", delivery.alerts)
    if delivery.updated.written:
        totals.add_write("alert updates", delivery.updated)


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest)
