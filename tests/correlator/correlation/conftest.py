"""Factories for correlation tests: rule sets written inline as YAML, matches built from plain field dicts."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from correlator.correlation import (
    CorrelationEngine,
    CorrelationSet,
    EngineSettings,
    RuleMatch,
    load_correlation_texts,
)
from correlator.model import Alert

# Base rules that the correlation rules in the tests reference, by name (and `failed` also by id).
BASE = """
title: Failed logon
id: 53ba33fd-3a50-4468-a5ef-c583635cfa92
name: failed
logsource: {product: windows, service: security}
detection: {sel: {EventID: 4625}, condition: sel}
---
title: Successful logon
name: success
logsource: {product: windows, service: security}
detection: {sel: {EventID: 4624}, condition: sel}
---
title: Internal error
name: internal_error
logsource: {category: webserver}
detection: {sel: {http.response.status_code: 500}, condition: sel}
---
title: New network connection
name: new_conn
logsource: {category: network_connection}
detection: {sel: {event.type: connection}, condition: sel}
---
title: Transfer
name: transfer
logsource: {category: network_connection}
detection: {sel: {event.type: transfer}, condition: sel}
"""

FAILED_ID = "53ba33fd-3a50-4468-a5ef-c583635cfa92"


def rules_text(correlations: str) -> str:
    return BASE + "---\n" + textwrap.dedent(correlations).strip() + "\n"


@pytest.fixture
def load() -> Callable[..., CorrelationSet]:
    """`load(yaml)`: the base rules plus the given correlation rule(s), as one file `rules/test.yml`."""

    def make(correlations: str, path: str = "rules/test.yml") -> CorrelationSet:
        return load_correlation_texts([(path, rules_text(correlations))])

    return make


def match(rule: str, event_id: str, ts: int, **fields: Any) -> RuleMatch:
    """A match of base rule `rule` (its name) for event `event_id` at `ts`; dotted field names as `a__b`."""
    flat = {name.replace("__", "."): value for name, value in fields.items()}
    return RuleMatch(rule_id=rule, rule_name=rule, event_id=event_id, timestamp_ms=ts, get=flat.get,
                     host_name=flat.get("host.name"))


@pytest.fixture
def engine_for(load: Callable[..., CorrelationSet]) -> Callable[..., CorrelationEngine]:
    """`engine_for(yaml, **settings)`: an engine over the base rules plus the given correlation rules."""

    def make(correlations: str, **settings: Any) -> CorrelationEngine:
        rules = load(correlations)
        assert rules.errors == (), [str(e) for e in rules.errors]
        return CorrelationEngine(rules, EngineSettings(**settings))

    return make


def run(engine: CorrelationEngine, matches: Iterable[RuleMatch], *, flush: bool = True) -> list[Alert]:
    """Every match through `process`, then `flush` (end of input); all alerts in output order."""
    alerts: list[Alert] = []
    for m in matches:
        alerts.extend(engine.process(m))
    if flush:
        alerts.extend(engine.flush())
    return alerts


def summary(alerts: Iterable[Alert]) -> list[tuple[str, int, dict[str, Any], Any, list[str]]]:
    """(rule id, time, group, value, contributing event ids) per alert: what the tests compare."""
    return [(a.rule.id, a.timestamp_ms, a.extra["correlation"]["group"], a.extra["correlation"]["value"],
             a.extra["correlation"]["events"]) for a in alerts]
