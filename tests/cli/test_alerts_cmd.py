"""`socctl alerts list` over the alerts `socctl ingest` stored (the replay in conftest.py): risk scores, severities,
explanations, suppressed counts, and the filters."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from correlator.model import ms_to_iso
from tests.cli.conftest import (
    ACCOUNT_CREATED,
    APP_SERVER,
    DAY,
    FAILED_LOGON,
    LOG_CLEARED,
    LOGON_BURST,
    ONE_STOP_SHOP,
    PC,
    WORKSTATION,
    Scenario,
    Socctl,
    run_ingest,
    security_event,
    write_events,
)

pytestmark = pytest.mark.usefixtures("replayed")

ROW_KEYS = {"id", "time", "rule", "rule_id", "kind", "level", "severity", "score", "explanation", "host", "agency",
            "system", "count", "event_id"}


@pytest.fixture
def alerts(socctl_json: Callable[..., Any]) -> Callable[..., list[dict[str, Any]]]:
    """`alerts(*args)`: the rows of `alerts list ARGS --json`."""

    def run(*args: str) -> list[dict[str, Any]]:
        page = socctl_json("alerts", "list", *args)
        assert page["total"] == len(page["alerts"])
        return list(page["alerts"])

    return run


def test_rows_carry_the_risk_and_the_suppressed_count(alerts: Callable[..., list[dict[str, Any]]]) -> None:
    rows = alerts()
    assert all(set(row) == ROW_KEYS for row in rows)
    assert {(row["rule_id"], row["host"]): (row["kind"], row["level"], row["count"]) for row in rows} == {
        (FAILED_LOGON, APP_SERVER): ("sigma", "low", 6),  # six failures: one alert, five suppressed into it
        (FAILED_LOGON, PC): ("sigma", "low", 1),
        (ACCOUNT_CREATED, WORKSTATION): ("sigma", "medium", 1),
        (LOG_CLEARED, ONE_STOP_SHOP): ("sigma", "high", 1),
        (LOGON_BURST, APP_SERVER): ("correlation", "high", 1),
    }
    assert len(rows) == 5
    for row in rows:
        assert row["explanation"].startswith(f"{row['severity']}: rule level {row['level']} (+")
        points = [int(p) for p in re.findall(r"\(\+(\d+)\)", row["explanation"])]
        assert sum(points) == row["score"], row["explanation"]
        assert row["id"]
        assert row["event_id"]
    by_rule = {(row["rule_id"], row["host"]): row for row in rows}
    shop = by_rule[LOG_CLEARED, ONE_STOP_SHOP]
    assert (shop["agency"], shop["system"], shop["severity"]) == ("vp-ubnd", "motcua", "high")
    assert "asset level 4" in shop["explanation"]
    assert by_rule[FAILED_LOGON, PC]["severity"] == "low"


def test_newest_first(alerts: Callable[..., list[dict[str, Any]]], replayed: Scenario) -> None:
    times = [row["time"] for row in alerts()]
    assert times == sorted(times, reverse=True)
    assert times[0] == ms_to_iso(replayed.t0 + 200_000)
    assert times[-1] == ms_to_iso(replayed.t0)


@pytest.mark.parametrize(
    ("args", "expected"),
    [(["--severity", "low"], {(FAILED_LOGON, APP_SERVER), (FAILED_LOGON, PC)}),
     (["--severity", "high", "--severity", "medium"],
      {(LOGON_BURST, APP_SERVER), (LOG_CLEARED, ONE_STOP_SHOP), (ACCOUNT_CREATED,
                                                                  WORKSTATION)}),
     (["--rule", FAILED_LOGON], {(FAILED_LOGON, APP_SERVER), (FAILED_LOGON, PC)}),
     (["--host", APP_SERVER], {(FAILED_LOGON, APP_SERVER), (LOGON_BURST, APP_SERVER)}),
     (["--kind", "correlation"], {(LOGON_BURST, APP_SERVER)}),
     (["--kind", "yara"], set()),
     (["--rule", FAILED_LOGON, "--host", PC], {(FAILED_LOGON, PC)}),
     (["organization.id:vp-ubnd"], {(LOG_CLEARED, ONE_STOP_SHOP)})],
    ids=["severity", "two-severities", "rule", "host", "kind", "no-yara", "rule-and-host", "query"],
)
def test_filters(alerts: Callable[..., list[dict[str, Any]]], args: list[str],
                 expected: set[tuple[str, str]]) -> None:
    assert {(row["rule_id"], row["host"]) for row in alerts(*args)} == expected


def test_since_an_iso_time(alerts: Callable[..., list[dict[str, Any]]], replayed: Scenario) -> None:
    since = ms_to_iso(replayed.t0 + 100_000)
    assert {row["host"] for row in alerts("--since", since)} == {WORKSTATION, ONE_STOP_SHOP}
    assert alerts("--since", ms_to_iso(replayed.t0 + 200_001)) == []


def test_default_window_is_the_last_day(alerts: Callable[..., list[dict[str, Any]]], replayed: Scenario,
                                        store_url: str, tmp_path: Path) -> None:
    old = replayed.t0 - 3 * DAY
    events = write_events(tmp_path / "old.ndjson", [security_event(old, 4720, "ws-old.corp",
                                                                   TargetUserName="x", SubjectUserName="y")])
    run_ingest(replayed.inputs, store_url, events, tmp_path / "old-summary.json")
    assert "ws-old.corp" not in {row["host"] for row in alerts()}
    assert len(alerts()) == 5
    assert [row["time"] for row in alerts("--since", "4d", "--host", "ws-old.corp")] == [ms_to_iso(old)]


def test_limit(socctl_json: Callable[..., Any]) -> None:
    page = socctl_json("alerts", "list", "--limit", "2")
    assert page["total"] == 5
    assert [row["rule_id"] for row in page["alerts"]] == [LOG_CLEARED, ACCOUNT_CREATED]
    page = socctl_json("alerts", "list", "-n", "1", "--sort", "@timestamp")
    assert [(row["rule_id"], row["host"]) for row in page["alerts"]] == [(FAILED_LOGON, APP_SERVER)]


def test_table(socctl: Socctl, alerts: Callable[..., list[dict[str, Any]]]) -> None:
    result = socctl("alerts", "list", "--host", APP_SERVER)
    assert result.exit_code == 0, result.output
    assert "alerts (2 of 2)" in result.stdout
    for row in alerts("--host", APP_SERVER):
        line = next(line for line in result.stdout.splitlines() if row["id"] in line)
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        assert cells == [row["time"], row["severity"], str(row["score"]), row["rule"], row["host"], "",
                         str(row["count"]), row["id"]]


@pytest.mark.parametrize(
    ("args", "message"),
    [(["host.name:x AND ("], "unclosed '(' at column 17: 'host.name:x AND ('"),
     (["--host", "x", "--sort", "no such field!"], "invalid sort 'no such field!': expected a field name"),
     (["--since", "yesterday"], "invalid time 'yesterday'"),
     (["--severity", "severe"], "--severity: 'severe' is not one of low, medium, high, critical"),
     (["--kind", "snort"], "--kind: 'snort' is not one of sigma, correlation, intel, yara")],
    ids=["query", "sort", "since", "severity", "kind"],
)
def test_errors_are_explained(socctl: Socctl, args: list[str], message: str) -> None:
    result = socctl("alerts", "list", *args)
    assert result.exit_code == 2
    assert message in result.stderr


@pytest.mark.parametrize(
    ("option", "value"),
    [("--host", 'we"ird host'), ("--rule", "id with (parens) and \\ backslash")],
    ids=["quote", "parens"],
)
def test_option_values_are_quoted_for_the_query(socctl_json: Callable[..., Any], option: str, value: str) -> None:
    page = socctl_json("alerts", "list", option, value)
    assert (page["total"], page["alerts"]) == (0, [])


def test_an_unknown_store_scheme_is_an_error(socctl: Socctl) -> None:
    result = socctl("alerts", "list", "--store", "mysql://db", store=False)
    assert result.exit_code == 2
    assert result.stderr.startswith("unsupported store URL scheme 'mysql'")
