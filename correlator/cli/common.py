"""Options and loading shared by the commands that use Sigma rules (ingest, rules check)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console
from rich.table import Table

from correlator.errors import CorrelatorError, RuleLoadError
from correlator.settings import default_cache_dir, default_placeholders_file, default_sigma_rules_dir
from correlator.sigma.loader import RuleSet, load_rules
from correlator.sigma.sources import SourcesConfig, load_sources

RulesOpt = Annotated[
    list[Path] | None,
    typer.Option("--rules", "-r", help="Sigma rule file or directory (repeatable); added to the default rules."),
]
NoDefaultRulesOpt = Annotated[
    bool, typer.Option("--no-default-rules", help="Do not load the repository's rules/sigma.")
]
SourcesOpt = Annotated[
    Path | None, typer.Option("--sources", help="Log-source configuration (default: the packaged sources.yml).")
]
PlaceholdersOpt = Annotated[
    Path | None,
    typer.Option("--placeholders", help="YAML mapping placeholder name -> values for the |expand modifier."),
]
PipelineOpt = Annotated[
    list[Path] | None,
    typer.Option("--pipeline", help="pySigma YAML processing pipeline applied to every rule (repeatable)."),
]
CacheDirOpt = Annotated[
    Path | None, typer.Option("--cache-dir", help="Compiled-rule cache (default: $SOCCTL_CACHE_DIR or user cache).")
]
NoCacheOpt = Annotated[bool, typer.Option("--no-cache", help="Compile every rule, read and write no cache.")]


@dataclass
class RuleOptions:
    rules: list[Path]
    no_default_rules: bool = False
    sources: Path | None = None
    placeholders: Path | None = None
    pipelines: list[Path] | None = None
    cache_dir: Path | None = None
    no_cache: bool = False

    def rule_paths(self) -> list[Path]:
        paths = [] if self.no_default_rules else [default_sigma_rules_dir()]
        return paths + list(self.rules)


def read_placeholders(path: Path | None) -> dict[str, list[str]]:
    """Placeholder values file: `name: [value, ...]` (a single value is allowed)."""
    path = path or default_placeholders_file()
    if path is None:
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise CorrelatorError(f"{path}: cannot read placeholder values: {exc}") from exc
    if not isinstance(data, dict):
        raise CorrelatorError(f"{path}: placeholder values must be a mapping of name -> list of values")
    from correlator.sigma.compile import placeholder_values

    return placeholder_values(data, str(path))


def load_sigma(opts: RuleOptions) -> tuple[RuleSet, SourcesConfig]:
    sources = load_sources(opts.sources)
    cache = None if opts.no_cache else (opts.cache_dir or default_cache_dir() / "sigma")
    ruleset = load_rules(
        opts.rule_paths(),
        sources=sources,
        placeholders=read_placeholders(opts.placeholders),
        user_pipelines=opts.pipelines or [],
        cache_dir=cache,
    )
    return ruleset, sources


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_NUMBER = re.compile(r"\d+")


def reason_kind(reason: str) -> str:
    """A reason with its specifics blanked, for tallies ("Unknown modifier '…'")."""
    first = reason.split(";", maxsplit=1)[0].split(" in /", maxsplit=1)[0]
    return _NUMBER.sub("N", _QUOTED.sub("'…'", first)).strip()[:120]


def failure_tally(errors: list[RuleLoadError]) -> Counter[str]:
    return Counter(reason_kind(e.reason) for e in errors)


def print_failures(console: Console, errors: list[RuleLoadError], *, limit: int | None = None) -> None:
    shown = errors if limit is None else errors[:limit]
    for err in shown:
        console.print(f"[red]✗[/red] {err}", markup=True, highlight=False, soft_wrap=True)
    if limit is not None and len(errors) > limit:
        console.print(f"… and {len(errors) - limit} more (run `socctl rules check` for all)")


def tally_table(title: str, tally: Counter[str]) -> Table:
    table = Table(title=title)
    table.add_column("reason")
    table.add_column("rules", justify="right")
    for reason, count in tally.most_common():
        table.add_row(reason, str(count))
    return table
