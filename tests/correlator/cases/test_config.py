"""The cases configuration file: defaults, key-by-key overrides, errors naming file, line and key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from correlator.cases.config import CasesConfig, load_cases_config, parse_cases_config
from correlator.cases.definitions import Layer
from correlator.cases.errors import CasesConfigError
from correlator.cases.sla import SlaTarget
from correlator.scoring import IncidentStatus, Severity
from tests.correlator.cases.conftest import HOUR, MINUTE


def parse(text: str) -> CasesConfig:
    return parse_cases_config(textwrap.dedent(text), "cases.yml")


def test_defaults() -> None:
    config = load_cases_config()
    assert config == CasesConfig()
    assert config.to_dict() == {
        "grouping": {"window": "1d", "keys": ["campaign", "host", "user", "source_ip"],
                     "fields": {"campaign": ["campaign.id", "threat.campaign.id"],
                                "host": ["host.name", "host.hostname", "Computer"],
                                "user": ["user.name", "TargetUserName", "user.target.name"],
                                "source_ip": ["source.ip", "IpAddress", "src_ip"]},
                     "keyless": "new_case", "max_alerts": 1000},
        "sla": {"critical": {"acknowledge": "15m", "contain": "4h"}, "high": {"acknowledge": "1h", "contain": "8h"},
                "medium": {"acknowledge": "4h", "contain": "1d"}, "low": {"acknowledge": "1d", "contain": "3d"}},
        "routing": {"low": "L1", "medium": "L2", "high": "L2", "critical": "L2", "serious_candidate": "L2",
                    "notify_l4": ["candidate"], "l3_assessment": True},
    }
    assert parse("") == CasesConfig()


def test_round_trip_of_the_yaml_shape() -> None:
    config = CasesConfig()
    assert parse_cases_config(yaml.safe_dump(config.to_dict()), "x") == config


def test_override_key_by_key(tmp_path: Path) -> None:
    path = tmp_path / "cases.yml"
    path.write_text(textwrap.dedent("""\
        grouping:
          window: 2h
          keys: [user, mac]
          fields: {mac: [host.mac]}
        sla:
          critical: {acknowledge: 10m}
        routing:
          medium: L1
          notify_l4: [candidate, awaiting_analyst]
          l3_assessment: false
        """), encoding="utf-8")
    config = load_cases_config(path)
    assert config.grouping.window_ms == 2 * HOUR
    assert [(k.name, k.fields, k.lower) for k in config.grouping.keys] == [
        ("user", ("user.name", "TargetUserName", "user.target.name"), True), ("mac", ("host.mac",), False)]
    assert config.sla.targets[Severity.CRITICAL] == SlaTarget(10 * MINUTE, 4 * HOUR)
    assert config.sla.targets[Severity.HIGH] == SlaTarget(HOUR, 8 * HOUR)
    assert config.routing.by_severity[Severity.MEDIUM] is Layer.L1
    assert config.routing.by_severity[Severity.HIGH] is Layer.L2
    assert config.routing.notify_l4 == {IncidentStatus.CANDIDATE, IncidentStatus.AWAITING_ANALYST}
    assert config.routing.l3_assessment is False
    assert config.source == str(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("alerts: {}\n", "cases.yml:1: alerts: unknown section (expected one of grouping, sla, routing)"),
        ("grouping:\n  window: 0m\n",
         "cases.yml:2: grouping.window: invalid duration '0m': must be greater than zero"),
        ("grouping:\n  window: 5\n", "cases.yml:2: grouping.window: must be a duration such as 15m, 4h or 1d, not 5"),
        ("grouping:\n  keys: [host, mac]\n",
         "cases.yml:2: grouping.keys: unknown key 'mac': give its fields under grouping.fields "
         "(known: campaign, correlation, host, user, source_ip)"),
        ("grouping:\n  keyless: drop\n", "cases.yml:2: grouping.keyless: must be new_case or skip, not 'drop'"),
        ("grouping:\n  windows: 1h\n",
         "cases.yml:2: grouping.windows: unknown key (expected one of window, keys, fields, keyless, max_alerts)"),
        ("sla:\n  high:\n    acknowledge: 9h\n",
         "cases.yml:2: sla.high: contain (8h) must not be shorter than acknowledge (9h)"),
        ("sla:\n  urgent: {acknowledge: 1m}\n",
         "cases.yml:2: sla.urgent: unknown key (expected one of low, medium, high, critical)"),
        ("sla:\n  low:\n    respond: 1h\n",
         "cases.yml:3: sla.low.respond: unknown key (expected one of acknowledge, contain)"),
        ("routing:\n  low: L5\n", "cases.yml:2: routing.low: unknown layer 'L5' (expected one of L1, L2, L3, L4)"),
        ("routing:\n  notify_l4: [always]\n",
         "cases.yml:2: routing.notify_l4: must be a list of candidate, awaiting_analyst (may be empty), "
         "not ['always']"),
        ("routing:\n  l3_assessment: yes please\n",
         "cases.yml:2: routing.l3_assessment: must be true or false, not 'yes please'"),
        ("routing: [L1]\n", "cases.yml:1: routing: must be a mapping"),
        ("- 1\n", "cases.yml:1: must be a mapping of sections (grouping, sla, routing)"),
        ("sla:\n  low: {}\n  low: {}\n", "cases.yml:3: invalid YAML: duplicate key 'low'"),
    ],
    ids=["unknown-section", "zero-window", "number-window", "unknown-key-name", "keyless", "typo", "sla-order",
         "sla-severity", "sla-key", "layer", "notify", "l3", "section-not-mapping", "not-mapping", "duplicate"],
)
def test_errors(text: str, message: str) -> None:
    with pytest.raises(CasesConfigError) as caught:
        parse_cases_config(text, "cases.yml")
    assert str(caught.value) == message


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(CasesConfigError, match=r"cases\.yml: cannot read: No such file or directory"):
        load_cases_config(tmp_path / "cases.yml")
