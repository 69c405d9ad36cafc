"""Log-source configuration (data in `correlator/data/sources.yml`): which pySigma pipelines map a Windows rule
to event channels, which fields a source carries, which Sigma log sources a non-Windows event belongs to, and
which pipelines give the other rules' field names (the Sigma taxonomy's web, proxy, DNS and firewall names) their
ECS alternatives.

Nothing here imports pySigma at module level: the warm start never needs it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from correlator.errors import CorrelatorError

DEFAULT_SOURCES = Path(__file__).resolve().parent.parent / "data" / "sources.yml"

LogSource = tuple[str | None, str | None, str | None]  # (product, category, service)

BUILTIN_PIPELINES = ("sysmon", "windows-logsource", "windows-audit")


class SourcesConfigError(CorrelatorError):
    """The log-source configuration file is invalid."""


@dataclass(frozen=True)
class WindowsProfile:
    name: str
    pipelines: tuple[str, ...]


@dataclass(frozen=True)
class EventLogSourceRule:
    when: tuple[tuple[str, frozenset[str]], ...]
    logsource: LogSource


@dataclass(frozen=True)
class SourcesConfig:
    windows_profiles: tuple[WindowsProfile, ...]
    windows_system_fields: frozenset[str]
    event_schemas: Mapping[tuple[str, int], frozenset[str]]
    event_logsources: tuple[EventLogSourceRule, ...]
    signature: str  # content hash: part of the compiled-rule cache key
    base_dir: Path
    # Applied, in order, to every rule that is not a Windows rule (built-in names or YAML paths, as profiles').
    other_pipelines: tuple[str, ...] = ()

    @property
    def logsource_fields(self) -> tuple[str, ...]:
        """Every event field a `when` reads, in a stable order (the event-routing cache key)."""
        seen: dict[str, None] = {}
        for rule in self.event_logsources:
            for name, _ in rule.when:
                seen.setdefault(name, None)
        return tuple(seen)

    def logsources_for(self, values: tuple[Any, ...]) -> tuple[LogSource, ...]:
        """Log sources for an event whose `logsource_fields` have these (lower-cased string) values."""
        by_name = dict(zip(self.logsource_fields, values, strict=True))
        out: list[LogSource] = []
        for rule in self.event_logsources:
            ok = True
            for name, accepted in rule.when:
                v = by_name.get(name)
                if isinstance(v, list | tuple):
                    if not any(x in accepted for x in v):
                        ok = False
                        break
                elif v not in accepted:
                    ok = False
                    break
            if ok and rule.logsource not in out:
                out.append(rule.logsource)
        return tuple(out)


def _as_str_set(value: Any, where: str) -> frozenset[str]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, str | int | bool) for v in items):
        raise SourcesConfigError(f"{where}: expected a string or a list of strings, got {value!r}")
    return frozenset(str(v).lower() for v in items)


def load_sources(path: Path | None = None) -> SourcesConfig:
    """Load and validate a sources file (default: the packaged one)."""
    path = path or DEFAULT_SOURCES
    try:
        text = path.read_bytes()
        data = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as exc:
        raise SourcesConfigError(f"{path}: {exc}") from exc
    if not isinstance(data, dict):
        raise SourcesConfigError(f"{path}: expected a mapping at top level")
    profiles: list[WindowsProfile] = []
    for i, item in enumerate(data.get("windows_profiles") or []):
        where = f"{path}: windows_profiles[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise SourcesConfigError(f"{where}: needs a name and a list of pipelines")
        pipes = item.get("pipelines")
        if not isinstance(pipes, list) or not pipes or not all(isinstance(p, str) for p in pipes):
            raise SourcesConfigError(f"{where}: pipelines must be a non-empty list of names or paths")
        _check_pipelines(pipes, path, where)
        profiles.append(WindowsProfile(item["name"], tuple(pipes)))
    schemas: dict[tuple[str, int], frozenset[str]] = {}
    for key, fields in (data.get("event_schemas") or {}).items():
        channel, _, eid = str(key).partition("/")
        if not eid.isdigit() or not isinstance(fields, list):
            raise SourcesConfigError(f"{path}: event_schemas key {key!r} must be 'channel/eventid' with a list")
        schemas[(channel.lower(), int(eid))] = frozenset(str(f) for f in fields)
    rules: list[EventLogSourceRule] = []
    for i, item in enumerate(data.get("event_logsources") or []):
        where = f"{path}: event_logsources[{i}]"
        if not isinstance(item, dict) or not isinstance(item.get("when"), dict) or not item["when"]:
            raise SourcesConfigError(f"{where}: needs a non-empty 'when' mapping")
        ls = item.get("logsource")
        if not isinstance(ls, dict) or not set(ls) <= {"product", "category", "service"} or not ls:
            raise SourcesConfigError(f"{where}: logsource must set product, category and/or service")
        when = tuple((str(k), _as_str_set(v, f"{where}.when.{k}")) for k, v in item["when"].items())
        logsource = tuple(str(ls[k]).lower() if ls.get(k) is not None else None
                          for k in ("product", "category", "service"))
        rules.append(EventLogSourceRule(when, logsource))  # type: ignore[arg-type]
    others = data.get("other_pipelines") or []
    if not isinstance(others, list) or not all(isinstance(p, str) for p in others):
        raise SourcesConfigError(f"{path}: other_pipelines must be a list of names or paths")
    _check_pipelines(others, path, f"{path}: other_pipelines")
    system = frozenset(str(f) for f in (data.get("windows_system_fields") or []))
    sig = hashlib.sha256(text)
    for p in (*(p for prof in profiles for p in prof.pipelines), *others):
        if p not in BUILTIN_PIPELINES:
            sig.update((path.parent / p).read_bytes())
    return SourcesConfig(tuple(profiles), system, schemas, tuple(rules), sig.hexdigest()[:16], path.parent,
                         tuple(others))


def _check_pipelines(names: list[str], path: Path, where: str) -> None:
    for p in names:
        if p not in BUILTIN_PIPELINES and not (path.parent / p).is_file():
            raise SourcesConfigError(
                f"{where}: unknown pipeline {p!r} (built-ins: {', '.join(BUILTIN_PIPELINES)}, or a YAML path)"
            )


def resolve_pipeline(name: str, base_dir: Path) -> Any:
    """A pySigma ProcessingPipeline by built-in name or YAML path (imports pySigma: cold path only)."""
    if name == "sysmon":
        from sigma.pipelines.sysmon import sysmon_pipeline

        return sysmon_pipeline()
    if name == "windows-logsource":
        from sigma.pipelines.windows import windows_logsource_pipeline

        return windows_logsource_pipeline()
    if name == "windows-audit":
        from sigma.pipelines.windows import windows_audit_pipeline

        return windows_audit_pipeline()
    from sigma.processing.pipeline import ProcessingPipeline

    return ProcessingPipeline.from_yaml((base_dir / name).read_text(encoding="utf-8"))


def load_user_pipeline(path: Path) -> Any:
    """A user's pySigma YAML processing pipeline, applied to every rule before the source profiles."""
    from sigma.processing.pipeline import ProcessingPipeline

    try:
        return ProcessingPipeline.from_yaml(path.read_text(encoding="utf-8"))
    except Exception as exc:
        raise SourcesConfigError(f"{path}: invalid pySigma processing pipeline: {exc}") from exc
