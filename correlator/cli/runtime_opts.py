"""The options that name what a run loads beside the Sigma rules (intel, assets, allowlist, scoring, suppression,
cases, playbooks, YARA rules for event payloads), shared by `socctl ingest` and the running engine, and loading
them with clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from correlator.errors import CorrelatorError
from correlator.runtime import Runtime, RuntimeOptions, load_runtime
from correlator.timespec import TimeSpecError, parse_duration_ms

if TYPE_CHECKING:
    from correlator.store.base import Store

__all__ = [
    "AllowlistOpt",
    "AssetsOpt",
    "CasesConfigOpt",
    "IntelOpt",
    "LatenessOpt",
    "NoSuppressionOpt",
    "NoYaraOpt",
    "PlaybooksOpt",
    "ScoringOpt",
    "SuppressionOpt",
    "YaraRulesOpt",
    "YaraTimeoutOpt",
    "load_runtime_or_exit",
    "parse_duration_or_exit",
]

IntelOpt = Annotated[list[Path] | None, typer.Option(
    "--intel", help="IOC list (text, CSV, STIX 2.1 JSON) or directory of lists (repeatable).")]
AssetsOpt = Annotated[Path | None, typer.Option(
    "--assets", help="Asset inventory (YAML or CSV): systems, agencies, security levels.")]
AllowlistOpt = Annotated[list[Path] | None, typer.Option(
    "--allowlist", help="Allowlist file of exceptions (YAML), added to the entries kept in the store.")]
ScoringOpt = Annotated[Path | None, typer.Option("--scoring", help="Risk-score weights overriding the defaults.")]
SuppressionOpt = Annotated[Path | None, typer.Option(
    "--suppression", help="Alert suppression policy (YAML); default: 5 minutes per rule, host, user and IPs.")]
NoSuppressionOpt = Annotated[bool, typer.Option("--no-suppression", help="Every alert stands alone.")]
CasesConfigOpt = Annotated[Path | None, typer.Option(
    "--cases-config", help="Case grouping, SLA and routing configuration (YAML).")]
PlaybooksOpt = Annotated[list[Path] | None, typer.Option(
    "--playbooks", help="Playbook file or directory (repeatable; default: the repository's playbooks/).")]
LatenessOpt = Annotated[str, typer.Option(
    "--lateness", help="Allowed lateness of events for correlation windows (e.g. 30s, 5m).")]
YaraRulesOpt = Annotated[list[Path] | None, typer.Option(
    "--yara-rules", help="YARA rule file or directory for the content events carry, such as HTTP bodies carved "
                         "from captures (repeatable; default: the repository's rules/yara).")]
NoYaraOpt = Annotated[bool, typer.Option(
    "--no-yara", help="Do not scan event payloads with YARA (captures are then read without carving bodies).")]
YaraTimeoutOpt = Annotated[int, typer.Option(
    "--yara-timeout", min=1, help="Seconds a YARA scan of one payload may take; a slower one is a dead letter.")]


def parse_duration_or_exit(console: Console, text: str, option: str) -> int:
    """A duration option; "0" (and "0s", "0m", ...) is zero."""
    if text.strip().rstrip("smhdw") in {"0", ""} and text.strip()[:1] == "0":
        return 0
    try:
        return parse_duration_ms(text)
    except TimeSpecError as exc:
        console.print(f"[red]{option}: {exc}[/red]")
        raise typer.Exit(2) from exc


def load_runtime_or_exit(console: Console, options: RuntimeOptions, store: Store | None) -> Runtime:
    """Load the run's components; a broken configuration file stops with its located error (exit status 2)."""
    try:
        entries = []
        if store is not None:
            from correlator.allowlist_store import stored_entries

            entries = stored_entries(store)
        return load_runtime(options, allowlist_entries=entries)
    except (CorrelatorError, OSError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
