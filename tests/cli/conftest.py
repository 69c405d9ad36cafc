"""Fixtures for the analyst commands (cases, alerts, audit, allowlist): a `socctl` runner bound to a SQLite store in
tmp_path, a replay of inline rules and events through `socctl ingest`, and cases put into the store at a chosen
time (for SLA deadlines that have passed).

The replay (`scenario`) is built once per session and copied into each test's store. Its events are an hour old
when the session starts, so the commands' default time windows (`alerts list --since 24h`) include them:

    srv-app01.corp     six failed logons from 203.0.113.9 -> "Test Failed Logon" (suppressed: one alert, count 6)
                       and the correlation "Test Failed Logon Burst" (high): one case, playbook pb-test-logons
    pc-07.corp         one failed logon from 198.51.100.7 -> a low case, owned by L1
    ws-02.corp         a new account -> "Test Account Created" (medium), a case owned by L2
    srv-motcua01...    the security log cleared on a level-4 system, with an impact tag -> a high case awaiting the
                       analyst's serious-incident assessment
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner, Result

from correlator.cases.grouping import CaseGrouper, IncomingAlert
from correlator.cases.model import Case
from correlator.cases.repository import CaseRepository
from correlator.cli import app
from correlator.model import Alert, EventOrigin, MatchedRule, ms_to_iso
from correlator.scoring import Factor, RiskScore, load_scoring_config
from correlator.store.base import wall_clock_ms
from correlator.store.sqlite import SqliteStore
from correlator.store.sqlite_files import events_path_of

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR

FAILED_LOGON = "11111111-1111-4111-8111-111111111111"
ACCOUNT_CREATED = "22222222-2222-4222-8222-222222222222"
LOG_CLEARED = "33333333-3333-4333-8333-333333333333"
LOGON_BURST = "44444444-4444-4444-8444-444444444444"

APP_SERVER = "srv-app01.corp"
PC = "pc-07.corp"
WORKSTATION = "ws-02.corp"
ONE_STOP_SHOP = "srv-motcua01.tinh.gov.vn"
ATTACKER = "203.0.113.9"

RULES = f"""
title: Test Failed Logon
id: {FAILED_LOGON}
name: test_failed_logon
level: low
logsource: {{product: windows, service: security}}
detection:
  sel:
    EventID: 4625
  condition: sel
---
title: Test Account Created
id: {ACCOUNT_CREATED}
level: medium
logsource: {{product: windows, service: security}}
detection:
  sel:
    EventID: 4720
  condition: sel
---
title: Test Security Log Cleared
id: {LOG_CLEARED}
level: high
tags: [attack.impact, attack.t1490]
logsource: {{product: windows, service: security}}
detection:
  sel:
    EventID: 1102
  condition: sel
---
title: Test Failed Logon Burst
id: {LOGON_BURST}
level: high
correlation:
  type: event_count
  rules: [test_failed_logon]
  generate: true
  group-by: [IpAddress]
  timespan: 5m
  condition:
    gte: 5
"""

PLAYBOOK = f"""
id: pb-test-logons
title: Test failed logons
title_vi: Thử nghiệm đăng nhập thất bại
incident_type: account_compromise
match:
  rule_ids: [{FAILED_LOGON}, {LOGON_BURST}]
steps:
  - id: triage
    title: Confirm the failed logons
    layer: L2
    due: 1h
    evidence: [the logon events of the source address]
  - id: block
    title: Block the source address
    layer: L1
    due: 4h
    evidence: [the firewall record]
"""

INVENTORY = f"""
systems:
  - id: motcua
    name: One-stop shop
    agency: {{id: vp-ubnd, name: Office of the provincial committee}}
    security_level: 4
assets:
  - {{system: motcua, hostnames: [{ONE_STOP_SHOP}]}}
"""


@dataclass(frozen=True)
class Inputs:
    """Rules, playbooks and inventory files of the replay, and the command-line options naming them."""

    rules: Path
    playbooks: Path
    assets: Path
    cache: Path

    def options(self) -> list[str]:
        return ["--no-default-rules", "--rules", str(self.rules), "--playbooks", str(self.playbooks),
                "--assets", str(self.assets), "--cache-dir", str(self.cache), "--quiet", "--workers", "1"]


def write_inputs(folder: Path) -> Inputs:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "rules").mkdir(exist_ok=True)
    (folder / "rules" / "test_rules.yml").write_text(RULES, encoding="utf-8")
    (folder / "playbooks").mkdir(exist_ok=True)
    (folder / "playbooks" / "test-logons.yaml").write_text(PLAYBOOK, encoding="utf-8")
    (folder / "assets.yml").write_text(INVENTORY, encoding="utf-8")
    return Inputs(folder / "rules", folder / "playbooks", folder / "assets.yml", folder / "cache")


def security_event(at_ms: int, event_id: int, host: str, **fields: Any) -> dict[str, Any]:
    return {"@timestamp": ms_to_iso(at_ms), "Channel": "Security", "EventID": event_id, "Hostname": host,
            "Provider_Name": "Microsoft-Windows-Security-Auditing", **fields}


def scenario_events(t0: int) -> list[dict[str, Any]]:
    events = [security_event(t0 + i * 10_000, 4625, APP_SERVER, TargetUserName="admin", IpAddress=ATTACKER,
                             LogonType=10) for i in range(6)]
    events.append(security_event(t0 + 90_000, 4625, PC, TargetUserName="clerk", IpAddress="198.51.100.7",
                                 LogonType=10))
    events.append(security_event(t0 + 120_000, 4720, WORKSTATION, TargetUserName="support01",
                                 SubjectUserName="bob"))
    events.append(security_event(t0 + 200_000, 1102, ONE_STOP_SHOP, SubjectUserName="quantri"))
    return events


def write_events(path: Path, events: Sequence[Mapping[str, Any]]) -> Path:
    path.write_bytes(b"\n".join(orjson.dumps(e) for e in events) + b"\n")
    return path


def run_ingest(inputs: Inputs, url: str, events: Path, summary: Path) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["ingest", str(events), *inputs.options(), "--store", url,
                                      "--summary-json", str(summary)])
    assert result.exit_code == 0, result.output
    return dict(orjson.loads(summary.read_bytes()))


@dataclass(frozen=True)
class Scenario:
    """The replay's store (copy it: tests change cases), its first event time and its ingest summary."""

    db: Path
    t0: int
    summary: dict[str, Any]
    inputs: Inputs


@pytest.fixture(scope="session")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    folder = tmp_path_factory.mktemp("scenario")
    inputs = write_inputs(folder)
    t0 = (wall_clock_ms() - HOUR) // 1000 * 1000
    db = folder / "scenario.db"
    events = write_events(folder / "security.ndjson", scenario_events(t0))
    summary = run_ingest(inputs, f"sqlite:///{db}", events, folder / "summary.json")
    return Scenario(db, t0, summary, inputs)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "socctl.db"


@pytest.fixture
def store_url(db: Path) -> str:
    return f"sqlite:///{db}"


@pytest.fixture
def replayed(scenario: Scenario, db: Path) -> Scenario:
    """This test's store holds a copy of the replay (both of its files)."""
    for source_path, target_path in ((scenario.db, db), (events_path_of(str(scenario.db)), events_path_of(str(db)))):
        with sqlite3.connect(source_path) as source, sqlite3.connect(target_path) as target:
            source.backup(target)
    return scenario


Socctl = Callable[..., Result]


@pytest.fixture
def socctl(store_url: str) -> Socctl:
    """`socctl(*args, user=None, store=True)`: run a command against this test's store (``--store`` appended), with
    SOCCTL_USER set to `user` (unset when None) and a wide terminal so tables do not wrap."""

    def run(*args: str, user: str | None = None, store: bool = True) -> Result:
        argv = [*args, "--store", store_url] if store else list(args)
        return CliRunner().invoke(app, argv, env={"COLUMNS": "250", "SOCCTL_USER": user})

    return run


@pytest.fixture
def socctl_json(socctl: Socctl) -> Callable[..., Any]:
    """`socctl_json(*args)`: run a command with ``--json``; it must succeed; its output parsed."""

    def run(*args: str, user: str | None = None) -> Any:
        result = socctl(*args, "--json", user=user)
        assert result.exit_code == 0, result.output
        return orjson.loads(result.stdout)

    return run


@pytest.fixture
def case_ids(socctl_json: Callable[..., Any]) -> Callable[[], dict[str, str]]:
    """`case_ids()`: every case's id by its grouping host (the part of the title in parentheses)."""

    def read() -> dict[str, str]:
        cases = socctl_json("cases", "list", "--status", "all", "--limit", "100")["cases"]
        return {c["title"].rsplit("(", 1)[1].rstrip(")"): c["id"] for c in cases}

    return read


@pytest.fixture
def audit_of(socctl_json: Callable[..., Any]) -> Callable[[str], list[tuple[str, str]]]:
    """`audit_of(subject_id)`: the (actor, action) of its audit records, oldest first (by seq)."""

    def read(subject_id: str) -> list[tuple[str, str]]:
        records = socctl_json("audit", "list", "--subject", subject_id)["records"]
        assert all(r["subject"]["id"] == subject_id for r in records)
        return [(r["actor"], r["action"]) for r in sorted(records, key=lambda r: r["seq"])]

    return read


@pytest.fixture
def seed_case(store_url: str) -> Callable[..., Case]:
    """`seed_case(host, points=60, at_ms=..., rule_id="r-seed")`: open a case in the store as ingest would at
    `at_ms` (its SLA deadlines count from then), one alert of `points` on `host`."""
    config = load_scoring_config()

    def build(host: str, points: int = 60, *, at_ms: int | None = None, rule_id: str = "r-seed") -> Case:
        when = wall_clock_ms() if at_ms is None else at_ms
        severity = config.severity_of(points)
        risk = RiskScore(points, severity, (Factor("rule_level", points, "test"),),
                         f"{severity.value}: test (+{points})")
        rule = MatchedRule(id=rule_id, title=f"Seeded {rule_id}", level="high", tags=(), kind="sigma")
        alert = Alert(rule=rule, event_id=f"ev-{host}-{when}", timestamp_ms=when, host_name=host,
                      origin=EventOrigin(path="seed.jsonl"), matched={}, extra={})
        with SqliteStore(Path(store_url.removeprefix("sqlite:///"))) as store:
            result = CaseRepository(store, CaseGrouper(), lambda: when).add_alert(IncomingAlert(alert, risk), when)
        assert result.case is not None
        return result.case

    return build


@pytest.fixture
def inputs(tmp_path: Path) -> Inputs:
    return write_inputs(tmp_path / "inputs")


@pytest.fixture
def ids(case_ids: Callable[[], dict[str, str]]) -> dict[str, str]:
    """Case ids of the replay by host."""
    found = case_ids()
    assert set(found) == {APP_SERVER, PC, WORKSTATION, ONE_STOP_SHOP}
    return found
