"""`socctl rules check`: load rule directories collect-all and report every rule that does not load."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import orjson
import typer
from rich.console import Console
from rich.table import Table

from correlator.cli.common import (
    CacheDirOpt,
    NoCacheOpt,
    PipelineOpt,
    PlaceholdersOpt,
    RuleOptions,
    SourcesOpt,
    failure_tally,
    load_sigma,
    print_failures,
    tally_table,
)
from correlator.errors import CorrelatorError, RuleLoadError
from correlator.settings import PROJECT_ROOT

if TYPE_CHECKING:
    from correlator.correlation import CorrelationSet
    from correlator.sigma.loader import RuleTexts

rules_app = typer.Typer(help="Validate and inspect Sigma and YARA rules.", no_args_is_help=True)


def _yara_files(paths: list[Path]) -> list[Path]:
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*") if q.suffix in (".yar", ".yara") and q.is_file()))
        elif p.suffix in (".yar", ".yara"):
            out.append(p)
    return out


@rules_app.command("check")
def check(
    paths: Annotated[list[Path] | None, typer.Argument(
        help="Rule files or directories (default: rules/sigma and rules/yara).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print {loaded, failed: [{path, reason}]} as JSON.")] = False,
    notes: Annotated[bool, typer.Option("--notes", help="Also list per-source limitations of loaded rules.")] = False,
    sources: SourcesOpt = None,
    placeholders: PlaceholdersOpt = None,
    pipeline: PipelineOpt = None,
    cache_dir: CacheDirOpt = None,
    no_cache: NoCacheOpt = False,
) -> None:
    """Load every Sigma (*.yml) and YARA (*.yar) rule under PATHS; report each failure with file and reason.

    Exit status 1 when any rule failed to load."""
    console = Console(stderr=as_json)
    targets = paths or [p for p in (PROJECT_ROOT / "rules" / "sigma", PROJECT_ROOT / "rules" / "yara") if p.exists()]
    missing = [p for p in targets if not p.exists()]
    if missing:
        console.print(f"[red]no such file or directory: {', '.join(map(str, missing))}[/red]")
        raise typer.Exit(2)
    opts = RuleOptions(targets, no_default_rules=True, sources=sources, placeholders=placeholders,
                       pipelines=pipeline, cache_dir=cache_dir, no_cache=no_cache)
    try:
        ruleset, _ = load_sigma(opts)
    except CorrelatorError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    failures: list[RuleLoadError] = list(ruleset.errors)
    correlations = _correlations(ruleset.texts)
    failures.extend(correlations.errors)
    yara_loaded = 0
    yara_files = _yara_files(targets)
    if yara_files:
        from correlator.yara_engine import compile_rules

        yara = compile_rules(yara_files)
        yara_loaded = yara.rule_count
        failures.extend(yara.failures)
    loaded = ruleset.loaded + yara_loaded + len(correlations.rules)
    if as_json:
        doc = {
            "loaded": loaded,
            "failed": [e.to_dict() for e in failures],
            "sigma": {"loaded": ruleset.loaded, "filters": ruleset.filters, "correlations": ruleset.correlations,
                      "failed": len(ruleset.errors)},
            "correlation": {"loaded": len(correlations.rules), "failed": len(correlations.errors)},
            "yara": {"loaded": yara_loaded, "files": len(yara_files),
                     "failed": len(failures) - len(ruleset.errors) - len(correlations.errors)},
            "notes": ruleset.notes if notes else {},
        }
        typer.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
        raise typer.Exit(1 if failures else 0)
    print_failures(console, failures)
    if notes:
        for path, items in sorted(ruleset.notes.items()):
            for note in items:
                console.print(f"[yellow]![/yellow] {path}: {note}", highlight=False, soft_wrap=True)
    summary = Table(title="Rules")
    summary.add_column("kind")
    summary.add_column("loaded", justify="right")
    summary.add_column("failed", justify="right")
    summary.add_row("sigma", str(ruleset.loaded), str(len(ruleset.errors)))
    if correlations.rules or correlations.errors:
        summary.add_row("sigma correlation", str(len(correlations.rules)), str(len(correlations.errors)))
    if yara_files:
        summary.add_row("yara", str(yara_loaded),
                        str(len(failures) - len(ruleset.errors) - len(correlations.errors)))
    console.print(summary)
    if ruleset.correlations or ruleset.filters:
        console.print(f"sigma filters applied: {ruleset.filters}; correlation rules parsed: {ruleset.correlations}")
    with_notes = sum(len(v) for v in ruleset.notes.values())
    if with_notes and not notes:
        console.print(f"{with_notes} per-source limitations noted (--notes to list them)")
    if failures:
        console.print(tally_table("Failures by reason", failure_tally(failures)))
    raise typer.Exit(1 if failures else 0)


def _correlations(texts: RuleTexts) -> CorrelationSet:
    """Correlation rules of the files the Sigma load read, resolved against every rule there (collect-all)."""
    from correlator.correlation import load_correlation_texts
    from correlator.runtime import base_rules

    documents = list(texts.correlation)
    return load_correlation_texts(documents, base_rules=base_rules(texts.others) if documents else [])


def register(app: typer.Typer) -> None:
    app.add_typer(rules_app, name="rules")
