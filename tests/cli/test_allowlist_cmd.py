"""`socctl allowlist list|add|revoke|extend` on a SQLite store: entries, their expiry and state, the audit trail of
every change, and the entries a following `socctl ingest` into the same store applies (the replay of conftest.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from correlator import allowlist_store
from correlator.model import ms_to_iso
from correlator.store.base import wall_clock_ms
from correlator.store.sqlite import SqliteStore
from tests.cli.conftest import (
    ACCOUNT_CREATED,
    APP_SERVER,
    DAY,
    FAILED_LOGON,
    HOUR,
    LOG_CLEARED,
    LOGON_BURST,
    ONE_STOP_SHOP,
    PC,
    WORKSTATION,
    Inputs,
    Socctl,
    run_ingest,
    scenario_events,
    write_events,
)

ENTRY_KEYS = {"id", "rule", "field", "operator", "value", "expires_ms", "author", "reason", "created_ms",
              "revoked_ms", "version"}


@pytest.fixture
def add(socctl_json: Callable[..., Any]) -> Callable[..., dict[str, Any]]:
    """`add(*options, actor="eve")`: `allowlist add OPTIONS --json`; the entry it prints."""

    def run(*options: str, actor: str = "eve", reason: str = "expected traffic") -> dict[str, Any]:
        return dict(socctl_json("allowlist", "add", *options, "--reason", reason, "--actor", actor))

    return run


@pytest.fixture
def entries(socctl_json: Callable[..., Any]) -> Callable[..., dict[str, dict[str, Any]]]:
    """`entries(*options)`: `allowlist list OPTIONS --json` by entry id."""

    def run(*options: str) -> dict[str, dict[str, Any]]:
        return {e["id"]: e for e in socctl_json("allowlist", "list", *options)["entries"]}

    return run


@pytest.fixture
def audit(socctl_json: Callable[..., Any]) -> Callable[[str], list[dict[str, Any]]]:
    """`audit(entry_id)`: the entry's audit records, oldest first."""

    def run(entry_id: str) -> list[dict[str, Any]]:
        records = socctl_json("audit", "list", "--subject", entry_id, "--kind", "allowlist")["records"]
        return sorted(records, key=lambda r: r["seq"])

    return run


# -- add -------------------------------------------------------------------------------------------------------


def test_add_stores_an_entry_and_audits_it(socctl: Socctl, entries: Callable[..., dict[str, dict[str, Any]]],
                                           audit: Callable[[str], list[dict[str, Any]]]) -> None:
    before = wall_clock_ms()
    result = socctl("allowlist", "add", "--field", "host.name", "--value", "scanner01", "--reason", "the scanner",
                    "--actor", "eve")
    after = wall_clock_ms()
    assert result.exit_code == 0, result.output
    ((entry_id, entry),) = entries().items()
    assert result.stdout == f"added {entry_id}: every rule when host.name equals 'scanner01'\n"
    assert entry_id.startswith("allow-")
    assert set(entry) == ENTRY_KEYS | {"active"}
    assert before <= entry["created_ms"] <= after
    assert {k: entry[k] for k in ("rule", "field", "operator", "value", "expires_ms", "author", "reason",
                                  "revoked_ms", "version", "active")} == {
        "rule": "*", "field": "host.name", "operator": "equals", "value": "scanner01", "expires_ms": None,
        "author": "eve", "reason": "the scanner", "revoked_ms": None, "version": 1, "active": True}
    (record,) = audit(entry_id)
    assert (record["actor"], record["action"], record["subject"], record["reason"], record["seq"]) == (
        "eve", "add", {"kind": "allowlist", "id": entry_id}, "the scanner", 1)
    assert record["summary"] == "allow every rule when host.name equals 'scanner01', expires never"
    assert record["at_ms"] == entry["created_ms"]


def test_the_author_defaults_to_socctl_user(socctl: Socctl, entries: Callable[..., dict[str, dict[str, Any]]]
                                            ) -> None:
    result = socctl("allowlist", "add", "--field", "user.name", "--value", "svc", "--reason", "r", user="carol")
    assert result.exit_code == 0, result.output
    assert [e["author"] for e in entries().values()] == ["carol"]


@pytest.mark.parametrize(
    ("options", "from_now", "expected"),
    [([], False, None), (["--expires", "never"], False, None), (["--expires", "7d"], True, 7 * DAY),
     (["--expires", "12h"], True, 12 * HOUR), (["--expires", "2099-01-01T00:00:00Z"], False, 4_070_908_800_000),
     (["--expires", "2099-01-01T07:00:00+07:00"], False, 4_070_908_800_000)],
    ids=["none", "never", "7d", "12h", "iso-utc", "iso-offset"],
)
def test_add_expiry(add: Callable[..., dict[str, Any]], options: list[str], from_now: bool,
                    expected: int | None) -> None:
    entry = add("--field", "host.name", "--value", "a", *options)
    start = entry["created_ms"] if from_now else 0
    assert entry["expires_ms"] == (None if expected is None else start + expected)


@pytest.mark.parametrize(
    ("options", "operator", "value", "description"),
    [(["--operator", "cidr", "--value", "10.0.0.0/8"], "cidr", "10.0.0.0/8", "source.ip cidr '10.0.0.0/8'"),
     (["--operator", "cidr", "--value", "2001:db8::/32"], "cidr", "2001:db8::/32",
      "source.ip cidr '2001:db8::/32'"),
     (["--operator", "wildcard", "--value", "10.1.*"], "wildcard", "10.1.*", "source.ip wildcard '10.1.*'"),
     (["--operator", "in", "--value", "10.0.0.1", "--value", "10.0.0.2"], "in", ["10.0.0.1", "10.0.0.2"],
      "source.ip in '10.0.0.1, 10.0.0.2'"),
     (["--operator", "in", "--value", "10.0.0.1"], "in", ["10.0.0.1"], "source.ip in '10.0.0.1'")],
    ids=["cidr", "cidr-ipv6", "wildcard", "in", "in-one-value"],
)
def test_add_operators(socctl: Socctl, entries: Callable[..., dict[str, dict[str, Any]]], options: list[str],
                       operator: str, value: str | list[str], description: str) -> None:
    result = socctl("allowlist", "add", "--rule", FAILED_LOGON, "--field", "source.ip", *options, "--reason", "lan",
                    "--actor", "eve")
    assert result.exit_code == 0, result.output
    ((entry_id, entry),) = entries().items()
    assert (entry["rule"], entry["operator"], entry["value"]) == (FAILED_LOGON, operator, value)
    assert result.stdout == f"added {entry_id}: rule {FAILED_LOGON} when {description}\n"


@pytest.mark.parametrize(
    ("options", "status", "message"),
    [(["--operator", "cidr", "--value", "10.0.0.1/8"], 1,
      "allowlist entry: value: '10.0.0.1/8' has host bits set (did you mean 10.0.0.0/8?)\n"),
     (["--operator", "cidr", "--value", "intranet"], 1,
      "allowlist entry: value: 'intranet' is not an IPv4 or IPv6 network\n"),
     (["--operator", "regex", "--value", "a.*"], 1,
      "allowlist entry: operator: unknown operator 'regex' (expected equals, wildcard, cidr, in)\n"),
     (["--value", "a", "--value", "b"], 2, "--value given 2 times: a list of values needs --operator in\n"),
     (["--operator", "wildcard", "--value", "a*", "--value", "b*"], 2,
      "--value given 2 times: a list of values needs --operator in\n"),
     (["--value", "a", "--rule", "two words"], 1,
      "allowlist entry: rule: must be a rule id or '*' without spaces, not 'two words'\n"),
     (["--value", "a", "--expires", "soon"], 2,
      "--expires: invalid expiry 'soon': expected a duration from now (12h, 7d), an ISO 8601 time, or never\n"),
     (["--value", "a", "--expires", "2001-01-01T00:00:00Z"], 1,
      "allowlist entry: expires_ms: must be after created_ms ({now}), not 2001-01-01T00:00:00.000Z\n")],
    ids=["host-bits", "not-a-network", "unknown-operator", "two-values-for-equals", "two-values-for-wildcard",
         "rule-with-spaces",
         "bad-expiry", "expiry-in-the-past"],
)
def test_add_refuses_bad_entries(socctl: Socctl, entries: Callable[..., dict[str, dict[str, Any]]],
                                 options: list[str], status: int, message: str) -> None:
    result = socctl("allowlist", "add", "--field", "source.ip", *options, "--reason", "r", "--actor", "eve")
    assert result.exit_code == status
    if "{now}" in message:
        prefix, suffix = message.split("{now}")
        assert result.stderr.startswith(prefix)
        assert result.stderr.endswith(suffix)
    else:
        assert result.stderr == message
    assert entries() == {}


def test_add_needs_a_reason(socctl: Socctl) -> None:
    result = socctl("allowlist", "add", "--field", "host.name", "--value", "a", "--actor", "eve")
    assert result.exit_code == 2
    assert "Missing option '--reason'" in result.stderr


# -- list ------------------------------------------------------------------------------------------------------


def test_list_states_and_active(socctl: Socctl, add: Callable[..., dict[str, Any]], store_url: str,
                                entries: Callable[..., dict[str, dict[str, Any]]]) -> None:
    active = add("--field", "host.name", "--value", "a", "--expires", "7d")
    revoked = add("--field", "host.name", "--value", "b")
    assert socctl("allowlist", "revoke", revoked["id"], "--reason", "gone", "--actor", "eve").exit_code == 0
    now = wall_clock_ms()
    with SqliteStore(Path(store_url.removeprefix("sqlite:///"))) as store:
        expired = allowlist_store.add(store, rule="*", field="host.name", value="c", author="eve", reason="old",
                                      at_ms=now - 2 * DAY, expires_ms=now - DAY)
    listed = entries()
    assert {i: e["active"] for i, e in listed.items()} == {active["id"]: True, revoked["id"]: False,
                                                          expired.id: False}
    assert list(entries("--active")) == [active["id"]]
    table = socctl("allowlist", "list")
    assert table.exit_code == 0, table.output
    assert "allowlist (3)" in table.stdout
    states = {}
    for line in table.stdout.splitlines():
        cells = [cell.strip() for cell in line.split("│")[1:-1]]
        if cells and cells[0].startswith("allow-"):
            states[cells[0]] = (cells[4], cells[5], cells[6])
    assert states == {
        active["id"]: ("a", ms_to_iso(active["expires_ms"]), "active"),
        revoked["id"]: ("b", "never", "revoked"),
        expired.id: ("c", ms_to_iso(now - DAY), "expired"),
    }


def test_list_of_an_empty_store(socctl: Socctl, entries: Callable[..., dict[str, dict[str, Any]]]) -> None:
    assert entries() == {}
    result = socctl("allowlist", "list")
    assert result.exit_code == 0, result.output
    assert "allowlist (0)" in result.stdout


# -- revoke and extend -----------------------------------------------------------------------------------------


def test_revoke(socctl: Socctl, add: Callable[..., dict[str, Any]],
                entries: Callable[..., dict[str, dict[str, Any]]],
                audit: Callable[[str], list[dict[str, Any]]]) -> None:
    entry = add("--field", "host.name", "--value", "a")
    result = socctl("allowlist", "revoke", entry["id"], "--reason", "scanner retired", "--actor", "frank")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"revoked {entry['id']}\n"
    stored = entries()[entry["id"]]
    assert (stored["version"], stored["active"], stored["author"]) == (2, False, "eve")
    assert stored["revoked_ms"] >= stored["created_ms"]
    records = audit(entry["id"])
    assert [(r["actor"], r["action"], r["seq"], r["reason"]) for r in records] == [
        ("eve", "add", 1, "expected traffic"), ("frank", "revoke", 2, "scanner retired")]
    assert records[1]["summary"] == f"revoke allowlist entry {entry['id']} (every rule when host.name equals 'a')"
    assert (records[1]["before"], records[1]["after"]) == ({"revoked_ms": None}, {"revoked_ms": stored["revoked_ms"]})

    again = socctl("allowlist", "revoke", entry["id"], "--reason", "twice", "--actor", "frank")
    assert again.exit_code == 1
    assert again.stderr == (f"allowlist entry {entry['id']}: revoke: already revoked at "
                            f"{ms_to_iso(stored['revoked_ms'])}\n")
    assert len(audit(entry["id"])) == 2


@pytest.mark.parametrize(
    "args",
    [["revoke", "allow-nope", "--reason", "r"], ["extend", "allow-nope", "--expires", "1d", "--reason", "r"]],
    ids=["revoke", "extend"],
)
def test_an_unknown_entry_is_named(socctl: Socctl, args: list[str]) -> None:
    result = socctl("allowlist", *args, "--actor", "frank")
    assert result.exit_code == 1
    assert result.stderr == "no allowlist entry 'allow-nope'\n"


def test_extend(socctl: Socctl, add: Callable[..., dict[str, Any]],
                entries: Callable[..., dict[str, dict[str, Any]]],
                audit: Callable[[str], list[dict[str, Any]]]) -> None:
    entry = add("--field", "host.name", "--value", "a", "--expires", "1d")
    before = wall_clock_ms()
    result = socctl("allowlist", "extend", entry["id"], "--expires", "30d", "--reason", "project runs on",
                    "--actor", "gina")
    after = wall_clock_ms()
    assert result.exit_code == 0, result.output
    stored = entries()[entry["id"]]
    assert before + 30 * DAY <= stored["expires_ms"] <= after + 30 * DAY
    assert result.stdout == f"{entry['id']} now expires {ms_to_iso(stored['expires_ms'])}\n"
    assert (stored["version"], stored["active"]) == (2, True)

    forever = socctl("allowlist", "extend", entry["id"], "--expires", "never", "--reason", "permanent",
                     "--actor", "gina")
    assert forever.exit_code == 0, forever.output
    assert forever.stdout == f"{entry['id']} now expires never\n"
    assert entries()[entry["id"]]["expires_ms"] is None

    same = socctl("allowlist", "extend", entry["id"], "--expires", "never", "--reason", "again", "--actor", "gina")
    assert same.exit_code == 1
    assert same.stderr == f"allowlist entry {entry['id']}: extend: already expires never\n"

    records = audit(entry["id"])
    assert [(r["actor"], r["action"], r["seq"], r["reason"]) for r in records] == [
        ("eve", "add", 1, "expected traffic"), ("gina", "extend", 2, "project runs on"),
        ("gina", "extend", 3, "permanent")]
    assert (records[2]["before"], records[2]["after"]) == ({"expires_ms": stored["expires_ms"]},
                                                          {"expires_ms": None})


def test_extend_a_revoked_entry_is_refused(socctl: Socctl, add: Callable[..., dict[str, Any]],
                                           entries: Callable[..., dict[str, dict[str, Any]]]) -> None:
    entry = add("--field", "host.name", "--value", "a")
    assert socctl("allowlist", "revoke", entry["id"], "--reason", "r", "--actor", "f").exit_code == 0
    revoked = entries()[entry["id"]]
    result = socctl("allowlist", "extend", entry["id"], "--expires", "1d", "--reason", "r", "--actor", "f")
    assert result.exit_code == 1
    assert result.stderr == (f"allowlist entry {entry['id']}: extend: already revoked at "
                             f"{ms_to_iso(revoked['revoked_ms'])}\n")
    assert entries()[entry["id"]] == revoked


def test_extend_with_a_bad_expiry(socctl: Socctl, add: Callable[..., dict[str, Any]]) -> None:
    entry = add("--field", "host.name", "--value", "a")
    result = socctl("allowlist", "extend", entry["id"], "--expires", "next week", "--reason", "r", "--actor", "f")
    assert result.exit_code == 2
    assert result.stderr == ("--expires: invalid expiry 'next week': expected a duration from now (12h, 7d), an "
                             "ISO 8601 time, or never\n")


# -- what ingest does with the store's entries -----------------------------------------------------------------


@pytest.fixture
def replay(inputs: Inputs, store_url: str, tmp_path: Path) -> Callable[[], dict[str, Any]]:
    """`replay()`: ingest the scenario's events into this test's store; the run's summary."""
    events = write_events(tmp_path / "security.ndjson", scenario_events((wall_clock_ms() - HOUR) // 1000 * 1000))
    runs = iter(range(100))
    return lambda: run_ingest(inputs, store_url, events, tmp_path / f"summary-{next(runs)}.json")


@pytest.fixture
def alert_keys(socctl_json: Callable[..., Any]) -> Callable[[], set[tuple[str, str]]]:
    return lambda: {(a["rule_id"], a["host"]) for a in socctl_json("alerts", "list", "--limit", "100")["alerts"]}


@pytest.fixture
def case_hosts(case_ids: Callable[[], dict[str, str]]) -> Callable[[], set[str]]:
    return lambda: set(case_ids())


@pytest.mark.parametrize(
    ("options", "excepted", "gone"),
    [(["--field", "host.name", "--value", PC.upper()], 1, {(FAILED_LOGON, PC)}),
     (["--field", "source.ip", "--operator", "cidr", "--value", "203.0.113.0/24"], 6,
      {(FAILED_LOGON, APP_SERVER), (LOGON_BURST, APP_SERVER)}),
     (["--field", "TargetUserName", "--operator", "wildcard", "--value", "support*"], 1,
      {(ACCOUNT_CREATED, WORKSTATION)}),
     (["--rule", FAILED_LOGON, "--field", "host.name", "--operator", "in", "--value", PC, "--value", "other"], 1,
      {(FAILED_LOGON, PC)})],
    ids=["equals-any-case", "cidr", "wildcard-native-field", "in-for-one-rule"],
)
def test_an_active_entry_suppresses_matching_alerts_in_the_next_ingest(
    add: Callable[..., dict[str, Any]], replay: Callable[[], dict[str, Any]],
    alert_keys: Callable[[], set[tuple[str, str]]], case_hosts: Callable[[], set[str]], options: list[str],
    excepted: int, gone: set[tuple[str, str]],
) -> None:
    entry = add(*options, "--expires", "7d")
    summary = replay()
    assert summary["excepted"] == {entry["id"]: excepted}
    everything = {(FAILED_LOGON, APP_SERVER), (LOGON_BURST, APP_SERVER), (FAILED_LOGON, PC),
                  (ACCOUNT_CREATED, WORKSTATION), (LOG_CLEARED, ONE_STOP_SHOP)}
    assert alert_keys() == everything - gone
    assert case_hosts() == {host for _, host in everything - gone}


def test_a_revoked_entry_no_longer_applies(socctl: Socctl, add: Callable[..., dict[str, Any]],
                                           replay: Callable[[], dict[str, Any]],
                                           alert_keys: Callable[[], set[tuple[str, str]]],
                                           case_hosts: Callable[[], set[str]]) -> None:
    entry = add("--field", "host.name", "--value", PC)
    assert socctl("allowlist", "revoke", entry["id"], "--reason", "not expected after all", "--actor", "frank"
                  ).exit_code == 0
    summary = replay()
    assert summary["excepted"] == {}
    assert (FAILED_LOGON, PC) in alert_keys()
    assert PC in case_hosts()
    assert len(alert_keys()) == 5


def test_entries_added_between_runs_apply_from_the_next_run(add: Callable[..., dict[str, Any]],
                                                            socctl: Socctl,
                                                            replay: Callable[[], dict[str, Any]]) -> None:
    assert replay()["excepted"] == {}
    entry = add("--field", "host.name", "--value", PC)
    assert replay()["excepted"] == {entry["id"]: 1}
    assert socctl("allowlist", "revoke", entry["id"], "--reason", "r", "--actor", "f").exit_code == 0
    assert replay()["excepted"] == {}


@pytest.mark.parametrize(
    ("args", "status"),
    [(["list"], 2), (["add", "--field", "f", "--value", "v", "--reason", "r", "--actor", "a"], 1),
     (["revoke", "allow-1", "--reason", "r", "--actor", "a"], 1)],
    ids=["list", "add", "revoke"],
)
def test_a_store_error_is_reported(socctl: Socctl, args: list[str], status: int) -> None:
    result = socctl("allowlist", *args, "--store", "mysql://db", store=False)
    assert result.exit_code == status
    assert result.stderr == ("unsupported store URL scheme 'mysql': expected sqlite:///path or "
                             "http(s)://host:port\n")
