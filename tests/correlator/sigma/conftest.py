"""Factories for Sigma tests: rules written inline as YAML, events built from plain field dicts."""

from __future__ import annotations

import itertools
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from correlator.model import Event, EventOrigin, event_id_for, flatten
from correlator.sigma.engine import SigmaEngine
from correlator.sigma.loader import RuleSet, load_rules
from correlator.sigma.sources import SourcesConfig, load_sources

SYSMON = "Microsoft-Windows-Sysmon/Operational"
_counter = itertools.count()


def make_event(fields: Mapping[str, Any], *, ts: int = 0, nested: Mapping[str, Any] | None = None) -> Event:
    """An event whose rule-visible fields are exactly `fields` (plus `nested` flattened to dotted names)."""
    flat = dict(fields)
    if nested:
        flat.update(flatten(dict(nested)))
    raw = repr(sorted(flat.items(), key=lambda kv: kv[0])) + f"#{next(_counter)}"
    return Event(id=event_id_for(raw, ts), timestamp_ms=ts, raw=raw, ecs=dict(nested or {}), fields=flat,
                 origin=EventOrigin(path="<test>", offset=None, record_id=None, format="test"))


def win_event(event_id: int, channel: str = SYSMON, **fields: Any) -> Event:
    return make_event({"EventID": event_id, "Channel": channel, **fields})


def proc(command_line: str = "", image: str = "C:\\Windows\\System32\\cmd.exe", **fields: Any) -> Event:
    """A Sysmon process-creation event."""
    return win_event(1, Image=image, CommandLine=command_line, **fields)


def rule(body: str, *, title: str = "test rule", logsource: str = "category: process_creation\n  product: windows",
         rule_id: str | None = None, level: str = "high") -> str:
    """A complete rule around a detection body (indented YAML under `detection:`)."""
    rid = rule_id or f"00000000-0000-4000-8000-{next(_counter):012d}"
    det = textwrap.indent(textwrap.dedent(body).strip(), "  ")
    return f"title: {title}\nid: {rid}\nstatus: test\nlevel: {level}\nlogsource:\n  {logsource}\ndetection:\n{det}\n"


@dataclass
class Loaded:
    ruleset: RuleSet
    engine: SigmaEngine

    def titles(self, event: Event) -> set[str]:
        return {a.rule.title for a in self.engine.match(event)}

    def hits(self, event: Event) -> bool:
        return bool(self.engine.match(event))


@pytest.fixture
def sources() -> SourcesConfig:
    return load_sources()


@pytest.fixture
def load(tmp_path: Path, sources: SourcesConfig) -> Callable[..., Loaded]:
    """load(rule_yaml, ..., placeholders=None, files=None) -> Loaded; each rule text becomes its own file."""

    def _load(*rules: str, placeholders: Mapping[str, list[str]] | None = None,
              files: Mapping[str, str] | None = None, cache_dir: Path | None = None) -> Loaded:
        d = tmp_path / f"rules{next(_counter)}"
        d.mkdir()
        for i, text in enumerate(rules):
            (d / f"rule_{i:03d}.yml").write_text(text, encoding="utf-8")
        for name, text in (files or {}).items():
            (d / name).write_text(text, encoding="utf-8")
        rs = load_rules([d], sources=sources, placeholders=placeholders, cache_dir=cache_dir)
        return Loaded(rs, SigmaEngine(rs.rules, sources))

    return _load
