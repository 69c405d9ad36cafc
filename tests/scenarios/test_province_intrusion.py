"""Scenario replay, end to end through `socctl ingest` into the SQLite store: an RDP brute force on the
province's one-stop-shop server, a successful logon, a new administrator account, then lateral movement with that
account. The same cases (alerts, severities, owning layers, playbooks, serious-incident status) must come out
whether the events arrive in order, shuffled, or in two runs with the correlation state carried between them."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from correlator.cli import app
from correlator.store.config import open_store
from tests.conftest import REPO_ROOT

T0 = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)
ATTACKER = "203.0.113.50"
SERVER = "srv-motcua01.tinh.gov.vn"
BRUTE_FORCE = "a5e5534e-1ce0-4557-a27c-69bdc5bc317c"
SUCCESS_AFTER_BRUTE_FORCE = "87b2bcaf-fa86-45ff-9ce7-e9fbe0d37269"
NEW_ADMIN_AFTER_BRUTE_FORCE = "217d06f2-b9f7-431f-875c-dba5db547ff7"
LATERAL_MOVEMENT = "7be93d86-0502-4ef0-b3a1-b923ac7db61e"
INVENTORY = """
systems:
  - id: motcua
    name: Hệ thống thông tin một cửa điện tử
    agency: {id: vp-ubnd, name: Văn phòng UBND tỉnh}
    security_level: 4
    criticality: high
    operator: Trung tâm CNTT-TT
    contact: soc@tinh.gov.vn
  - id: ldp
    name: Hệ thống quản lý văn bản
    agency: {id: so-tttt, name: Sở Thông tin và Truyền thông}
    security_level: 3
assets:
  - {system: motcua, hostnames: [srv-motcua01.tinh.gov.vn], ips: [10.20.3.44]}
  - {system: ldp, hostnames: ["*.ldp.tinh.gov.vn"]}
"""


def _at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _security(seconds: float, event_id: int, host: str, **fields: Any) -> dict[str, Any]:
    return {"@timestamp": _at(seconds), "Channel": "Security", "EventID": event_id, "Hostname": host,
            "Provider_Name": "Microsoft-Windows-Security-Auditing", **fields}


def scenario() -> list[dict[str, Any]]:
    logon = {"TargetDomainName": "TINH", "WorkstationName": "KALI"}
    events = [_security(10 * i, 4625, SERVER, TargetUserName="quantri", LogonType=10, IpAddress=ATTACKER,
                        IpPort=str(51000 + i), Status="0xc000006d", SubStatus="0xc000006a", **logon)
              for i in range(12)]
    events.append(_security(180, 4624, SERVER, TargetUserName="quantri", LogonType=10, IpAddress=ATTACKER,
                            IpPort="51100", **logon))
    events.append(_security(300, 4720, SERVER, TargetUserName="support01", TargetDomainName="SRV-MOTCUA01",
                            TargetSid="S-1-5-21-1111111111-2222222222-3333333333-1012", SubjectUserName="quantri"))
    events.append(_security(330, 4732, SERVER, MemberName="-",
                            MemberSid="S-1-5-21-1111111111-2222222222-3333333333-1012",
                            TargetUserName="Administrators", TargetDomainName="Builtin", TargetSid="S-1-5-32-544",
                            SubjectUserName="quantri"))
    # lateral movement: network logons with the new account on ten document servers
    events.extend(_security(600 + 40 * i, 4624, f"srv-{i + 1:02d}.ldp.tinh.gov.vn", TargetUserName="support01",
                            LogonType=3, IpAddress="10.20.3.44", IpPort=str(52000 + i), **logon) for i in range(10))
    # ordinary console logons elsewhere: no alert
    events.extend(_security(60 * i, 4624, "pc-ketoan01.tinh.gov.vn", TargetUserName="ketoan", LogonType=2,
                            IpAddress="-", **logon) for i in range(5))
    return events


def _write(path: Path, events: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"\n".join(orjson.dumps(e) for e in events) + b"\n")
    return path


def _ingest(tmp_path: Path, db: Path, files: list[Path], *extra: str) -> dict[str, Any]:
    inventory = tmp_path / "assets.yml"
    inventory.write_text(INVENTORY, encoding="utf-8")
    summary = tmp_path / f"summary-{len(list(tmp_path.glob('summary-*')))}.json"
    result = CliRunner().invoke(app, [
        "ingest", *map(str, files), "--no-default-rules", "--rules", str(REPO_ROOT / "rules" / "sigma"),
        "--store", f"sqlite:///{db}", "--assets", str(inventory), "--quiet", "--workers", "1",
        "--cache-dir", str(tmp_path / "cache"), "--summary-json", str(summary), *extra,
    ])
    assert result.exit_code == 0, result.output
    return orjson.loads(summary.read_bytes())


def cases_of(db: Path) -> list[dict[str, Any]]:
    """The cases in the store, without what depends on the wall clock (times of changes, SLA deadlines)."""
    with open_store(f"sqlite:///{db}") as store:
        docs = store.search("cases", "", limit=100, sort="id").hits
    return [{
        "id": doc["id"], "group_key": doc["group_key"], "severity": doc["severity"], "layer": doc["layer"],
        "status": doc["status"], "playbook": doc["playbook_id"], "incident_type": doc["incident_type"],
        "serious": doc["serious"], "notify": doc["notify"], "agency": doc["agency"],
        "systems": sorted(doc["systems"]), "score": doc["risk"]["score"],
        "alerts": sorted((a["rule_id"], a["event_id"]) for a in doc["alerts"]),
    } for doc in docs]


@pytest.fixture(scope="module")
def in_order(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("in-order")
    db = tmp / "socctl.db"
    summary = _ingest(tmp, db, [_write(tmp / "security.json", scenario())])
    return cases_of(db), summary


def test_the_intrusion_becomes_the_expected_cases(in_order: tuple[list[dict[str, Any]], dict[str, Any]]) -> None:
    cases, summary = in_order
    by_key = {case["group_key"]: case for case in cases}
    server = by_key[f"host:{SERVER}"]
    rules = {rule for rule, _ in server["alerts"]}
    # the chain on the level-4 one-stop-shop system: brute force -> remote logon -> new administrator
    assert {BRUTE_FORCE, SUCCESS_AFTER_BRUTE_FORCE, NEW_ADMIN_AFTER_BRUTE_FORCE} <= rules
    assert server["severity"] == "critical"
    assert server["score"] == 100
    assert server["layer"] == "L2"
    assert (server["agency"], server["systems"]) == ("vp-ubnd", ["motcua"])
    assert (server["playbook"], server["incident_type"]) == ("pb-account-compromise", "account_compromise")
    # level >= 4 and loss of control (an attacker's administrator account): the analyst must assess containment
    assert server["serious"] == "awaiting_analyst"
    # lateral movement over ten hosts: one alert, in the case of the account that moved
    (lateral,) = [case for case in cases if any(rule == LATERAL_MOVEMENT for rule, _ in case["alerts"])]
    assert lateral["group_key"] == "user:support01"
    assert len(lateral["alerts"]) == 1
    assert lateral["layer"] == "L2"
    assert len(cases) == 2
    assert summary["cases"]["opened"] == 2
    assert summary["correlation_alerts"] == 4  # brute force, its success, the new admin, the lateral movement
    assert summary["withheld"] >= 12  # failed logons feed the correlation rules without alerting one by one
    assert not any("pc-ketoan01" in str(case["group_key"]) for case in cases)


def test_shuffled_events_give_the_same_cases(tmp_path: Path,
                                             in_order: tuple[list[dict[str, Any]], dict[str, Any]]) -> None:
    events = scenario()
    random.Random(20261124).shuffle(events)
    db = tmp_path / "socctl.db"
    half = len(events) // 2
    _ingest(tmp_path, db, [_write(tmp_path / "b.json", events[half:]), _write(tmp_path / "a.json", events[:half])])
    assert cases_of(db) == in_order[0]


def test_a_restart_in_the_middle_gives_the_same_cases(tmp_path: Path,
                                                      in_order: tuple[list[dict[str, Any]], dict[str, Any]]) -> None:
    events = sorted(scenario(), key=lambda e: e["@timestamp"])
    cut = next(i for i, e in enumerate(events) if e["@timestamp"] >= _at(315))  # between 4720 and 4732
    db, state = tmp_path / "socctl.db", tmp_path / "state" / "analysis.json"
    _ingest(tmp_path, db, [_write(tmp_path / "part1.json", events[:cut])], "--state", str(state))
    assert state.is_file()
    _ingest(tmp_path, db, [_write(tmp_path / "part2.json", events[cut:])], "--state", str(state), "--finish")
    assert cases_of(db) == in_order[0]


def test_replaying_the_same_input_changes_nothing(tmp_path: Path) -> None:
    db = tmp_path / "socctl.db"
    source = _write(tmp_path / "security.json", scenario())
    _ingest(tmp_path, db, [source])
    first = cases_of(db)
    again = _ingest(tmp_path, db, [source])
    assert cases_of(db) == first
    assert again["cases"]["opened"] == 0
    assert again["store"].get("alerts duplicates", 0) == again["alerts"]
