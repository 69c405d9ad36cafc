"""`socctl cases ...` on a store filled by `socctl ingest` (the replay in conftest.py) and on cases opened at a chosen
time: the queue and its filters, one case in full, and every change with its timeline entry and audit record."""

from __future__ import annotations

import getpass
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from correlator.store.base import wall_clock_ms
from tests.cli.conftest import (
    APP_SERVER,
    DAY,
    FAILED_LOGON,
    LOGON_BURST,
    ONE_STOP_SHOP,
    PC,
    WORKSTATION,
    Scenario,
    Socctl,
)

pytestmark = pytest.mark.usefixtures("replayed")

ROW_KEYS = {"id", "title", "status", "severity", "score", "layer", "assignee", "agency", "alerts", "playbook",
            "serious", "updated", "overdue"}


@pytest.fixture
def inputs_options(replayed: Scenario) -> list[str]:
    """The replay's playbooks, for the commands that bring a case in line with them (merge, split)."""
    return ["--playbooks", str(replayed.inputs.playbooks)]


@pytest.fixture
def show(socctl_json: Callable[..., Any]) -> Callable[[str], dict[str, Any]]:
    return lambda case_id: socctl_json("cases", "show", case_id)


def listed(socctl_json: Callable[..., Any], *args: str) -> list[str]:
    """The ids `cases list ARGS` prints, in order."""
    return [row["id"] for row in socctl_json("cases", "list", *args)["cases"]]


# -- the queue -------------------------------------------------------------------------------------------------


def test_list_shows_every_open_case_with_its_figures(socctl_json: Callable[..., Any], ids: dict[str, str],
                                                     replayed: Scenario) -> None:
    page = socctl_json("cases", "list")
    assert page["total"] == 4
    rows = {row["id"]: row for row in page["cases"]}
    assert all(set(row) == ROW_KEYS for row in rows.values())
    app = rows[ids[APP_SERVER]]
    assert (app["title"], app["status"], app["severity"], app["layer"], app["alerts"], app["playbook"]) == (
        f"Test Failed Logon ({APP_SERVER})", "new", "high", "L2", 2, "pb-test-logons")
    assert (app["assignee"], app["serious"], app["overdue"]) == (None, "not_candidate", [])
    assert (rows[ids[PC]]["severity"], rows[ids[PC]]["layer"]) == ("low", "L1")
    assert (rows[ids[WORKSTATION]]["severity"], rows[ids[WORKSTATION]]["layer"]) == ("medium", "L2")
    shop = rows[ids[ONE_STOP_SHOP]]
    assert (shop["agency"], shop["serious"], shop["severity"]) == ("vp-ubnd", "awaiting_analyst", "high")
    assert replayed.summary["cases"]["opened"] == 4


def test_list_is_most_recently_changed_first(socctl: Socctl, socctl_json: Callable[..., Any],
                                             ids: dict[str, str]) -> None:
    assert socctl("cases", "comment", ids[PC], "first", "--actor", "alice").exit_code == 0
    assert socctl("cases", "comment", ids[WORKSTATION], "second", "--actor", "alice").exit_code == 0
    order = listed(socctl_json)
    assert order[:2] == [ids[WORKSTATION], ids[PC]]
    updated = [row["updated"] for row in socctl_json("cases", "list")["cases"]]
    assert updated == sorted(updated, reverse=True)


@pytest.mark.parametrize(
    ("sort", "expected"),
    [("risk.score", [PC, WORKSTATION]), ("-risk.score", [ONE_STOP_SHOP, APP_SERVER])],
    ids=["ascending", "descending"],
)
def test_list_sorts_by_a_field(socctl_json: Callable[..., Any], ids: dict[str, str], sort: str,
                               expected: list[str]) -> None:
    rows = socctl_json("cases", "list", "--sort", sort)["cases"]
    assert [row["id"] for row in rows[:2]] == [ids[host] for host in expected]
    scores = [row["score"] for row in rows]
    assert scores == sorted(scores, reverse=sort.startswith("-"))


@pytest.mark.parametrize("sort", ["-severity", "severity"], ids=["most-severe-first", "least-severe-first"])
def test_list_sorts_by_severity_rank_not_alphabet(socctl_json: Callable[..., Any], sort: str) -> None:
    rows = socctl_json("cases", "list", "--sort", sort, "--status", "all")["cases"]
    ranks = [("low", "medium", "high", "critical").index(row["severity"]) for row in rows]
    assert len(set(ranks)) >= 2
    assert ranks == sorted(ranks, reverse=sort.startswith("-"))


def test_list_table(socctl: Socctl, ids: dict[str, str]) -> None:
    result = socctl("cases", "list", "--layer", "L1")
    assert result.exit_code == 0, result.output
    assert "cases (1 of 1)" in result.stdout
    assert ids[PC] in result.stdout
    assert f"Test Failed Logon ({PC})" in result.stdout
    assert ids[APP_SERVER] not in result.stdout


@pytest.mark.parametrize(
    ("args", "expected"),
    [(["--severity", "high"], {APP_SERVER, ONE_STOP_SHOP}),
     (["--severity", "low", "--severity", "medium"], {PC, WORKSTATION}),
     (["--layer", "l1"], {PC}),
     (["--layer", "L2", "--severity", "medium"], {WORKSTATION}),
     (["--serious"], {ONE_STOP_SHOP}),
     (["--agency", "vp-ubnd"], {ONE_STOP_SHOP}),
     ([f'group_key:"host:{PC}"'], {PC}),
     (["--status", "closed"], set())],
    ids=["severity", "two-severities", "layer-lower-case", "layer-and-severity", "serious", "agency", "query",
         "no-closed-case"],
)
def test_list_filters(socctl_json: Callable[..., Any], ids: dict[str, str], args: list[str],
                      expected: set[str]) -> None:
    page = socctl_json("cases", "list", *args)
    assert {row["id"] for row in page["cases"]} == {ids[host] for host in expected}
    assert page["total"] == len(expected)


def test_list_by_status(socctl: Socctl, socctl_json: Callable[..., Any], ids: dict[str, str]) -> None:
    assert socctl("cases", "transition", ids[PC], "acknowledged", "--actor", "alice").exit_code == 0
    assert socctl("cases", "transition", ids[WORKSTATION], "false_positive", "--actor", "alice").exit_code == 0
    assert set(listed(socctl_json, "--status", "acknowledged")) == {ids[PC]}
    assert set(listed(socctl_json, "--status", "new", "--status", "false_positive")) == {
        ids[APP_SERVER], ids[ONE_STOP_SHOP], ids[WORKSTATION]}
    assert set(listed(socctl_json)) == {ids[APP_SERVER], ids[ONE_STOP_SHOP], ids[PC]}  # open ones only
    assert set(listed(socctl_json, "--status", "all")) == set(ids.values())


def test_list_by_assignee(socctl: Socctl, socctl_json: Callable[..., Any], ids: dict[str, str]) -> None:
    assert socctl("cases", "assign", ids[PC], "alice", "--actor", "bob").exit_code == 0
    assert socctl("cases", "assign", ids[WORKSTATION], "alice bui", "--actor", "bob").exit_code == 0
    assert listed(socctl_json, "--assignee", "alice") == [ids[PC]]
    assert listed(socctl_json, "--assignee", "alice bui") == [ids[WORKSTATION]]
    assert set(listed(socctl_json, "--assignee", "none")) == {ids[APP_SERVER], ids[ONE_STOP_SHOP]}


def test_list_overdue_only_cases_past_a_deadline(socctl_json: Callable[..., Any], ids: dict[str, str],
                                                 seed_case: Callable[..., Any]) -> None:
    old = seed_case("old-host.corp", 60, at_ms=wall_clock_ms() - 2 * DAY)  # high: acknowledge 1h, contain 8h
    page = socctl_json("cases", "list", "--overdue")
    assert page["total"] == 1
    (row,) = page["cases"]
    assert (row["id"], row["overdue"]) == (old.id, ["acknowledge", "contain"])
    everything = {row["id"]: row["overdue"] for row in socctl_json("cases", "list")["cases"]}
    assert everything == {old.id: ["acknowledge", "contain"], **{case_id: [] for case_id in ids.values()}}


def test_list_overdue_drops_met_deadlines(socctl: Socctl, socctl_json: Callable[..., Any],
                                          seed_case: Callable[..., Any]) -> None:
    old = seed_case("old-host.corp", 60, at_ms=wall_clock_ms() - 2 * DAY)
    assert socctl("cases", "transition", old.id, "acknowledged", "--actor", "alice").exit_code == 0
    (row,) = socctl_json("cases", "list", "--overdue")["cases"]
    assert row["overdue"] == ["contain"]  # acknowledged now, late, but no longer overdue
    assert socctl("cases", "transition", old.id, "false_positive", "--actor", "alice").exit_code == 0
    assert socctl_json("cases", "list", "--overdue", "--status", "all")["cases"] == []  # a closed case's clocks stop


def test_list_since_created(socctl_json: Callable[..., Any], ids: dict[str, str],
                            seed_case: Callable[..., Any]) -> None:
    old = seed_case("old-host.corp", 30, at_ms=wall_clock_ms() - 3 * DAY)
    assert set(listed(socctl_json, "--since", "1d")) == set(ids.values())
    assert set(listed(socctl_json, "--since", "4d")) == {old.id, *ids.values()}


def test_list_limit(socctl_json: Callable[..., Any], ids: dict[str, str]) -> None:
    page = socctl_json("cases", "list", "--limit", "2", "--sort", "risk.score")
    assert page["total"] == 4
    assert [row["id"] for row in page["cases"]] == [ids[PC], ids[WORKSTATION]]


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--status", "opened"], "--status: 'opened' is not one of new, acknowledged, investigating, contained, "
                              "resolved, closed, false_positive"),
     (["--severity", "severe"], "--severity: 'severe' is not one of low, medium, high, critical"),
     (["--layer", "L5"], "--layer: 'L5' is not one of L1, L2, L3, L4"),
     (["--since", "yesterday"], "--since: invalid time 'yesterday'")],
    ids=["status", "severity", "layer", "since"],
)
def test_list_refuses_bad_options(socctl: Socctl, args: list[str], message: str) -> None:
    result = socctl("cases", "list", *args)
    assert result.exit_code == 2
    assert message in result.stderr


# -- one case --------------------------------------------------------------------------------------------------


def test_show_prints_the_whole_case(socctl: Socctl, ids: dict[str, str]) -> None:
    result = socctl("cases", "show", ids[APP_SERVER])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"Test Failed Logon ({APP_SERVER})  ({ids[APP_SERVER]}, version" in out
    assert "status new · severity high · layer L2 · assignee - · agency - · systems -" in out
    assert "serious incident: not_candidate" in out
    assert "SLA: acknowledge by" in out
    assert "OVERDUE" not in out
    assert "playbook pb-test-logons (account_compromise)" in out
    assert "Confirm the failed logons" in out
    assert "Block the source address" in out
    assert "alerts (2)" in out
    assert "Test Failed Logon Burst" in out
    assert "timeline" in out
    assert "opened: low, owned by L1" in out


def test_show_json_has_the_timeline_and_no_overdue_for_a_fresh_case(show: Callable[[str], dict[str, Any]],
                                                                    ids: dict[str, str]) -> None:
    doc = show(ids[APP_SERVER])
    assert doc["id"] == ids[APP_SERVER]
    assert doc["overdue"] == []
    assert sorted(a["rule_id"] for a in doc["alerts"]) == sorted([FAILED_LOGON, LOGON_BURST])
    assert [t["id"] for t in doc["tasks"]] == ["triage", "block"]
    actions = [entry["action"] for entry in doc["timeline"]]
    assert actions[0] == "open"
    assert {"add_alert", "assign_playbook", "escalate"} <= set(actions)  # the burst raised it to high: L1 -> L2
    assert [entry["seq"] for entry in doc["timeline"]] == list(range(1, doc["version"] + 1))
    assert {entry["actor"] for entry in doc["timeline"]} == {"socctl"}


def test_show_computes_overdue(socctl: Socctl, show: Callable[[str], dict[str, Any]],
                               seed_case: Callable[..., Any]) -> None:
    created = wall_clock_ms() - 2 * DAY
    old = seed_case("old-host.corp", 60, at_ms=created)
    before = wall_clock_ms()
    doc = show(old.id)
    after = wall_clock_ms()
    assert [(o["deadline"], o["due_ms"]) for o in doc["overdue"]] == [
        ("acknowledge", created + 3_600_000), ("contain", created + 8 * 3_600_000)]
    for item in doc["overdue"]:
        assert before - item["due_ms"] <= item["late_by_ms"] <= after - item["due_ms"]
    text = socctl("cases", "show", old.id).stdout
    assert "OVERDUE: acknowledge overdue by" in text
    assert "contain overdue by" in text


@pytest.mark.parametrize(
    "args",
    [["show", "case-nope"], ["assign", "case-nope", "alice"], ["transition", "case-nope", "acknowledged"],
     ["comment", "case-nope", "hello"], ["escalate", "case-nope", "L3", "--reason", "r"],
     ["deescalate", "case-nope", "L1", "--reason", "r"], ["task", "case-nope", "triage", "done"],
     ["tag", "case-nope", "--add", "x"], ["attach", "case-nope", "--event", "e1"],
     ["assess", "case-nope", "--cannot-contain", "--reason", "r"], ["split", "case-nope", "a1"]],
    ids=["show", "assign", "transition", "comment", "escalate", "deescalate", "task", "tag", "attach", "assess",
         "split"],
)
def test_an_unknown_case_is_named(socctl: Socctl, args: list[str]) -> None:
    result = socctl("cases", *args, "--actor", "alice") if args[0] != "show" else socctl("cases", *args)
    assert result.exit_code == 1
    assert result.stderr == "no case 'case-nope'\n"


@pytest.mark.parametrize("which", ["target", "source"], ids=["target", "source"])
def test_merge_names_an_unknown_case(socctl: Socctl, ids: dict[str, str], which: str) -> None:
    pair = ["case-nope", ids[PC]] if which == "target" else [ids[PC], "case-nope"]
    result = socctl("cases", "merge", *pair, "--actor", "alice")
    assert result.exit_code == 1
    assert result.stderr == "no case 'case-nope'\n"


# -- changes ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "action", "summary", "reason", "changed"),
    [(["assign", "{id}", "alice"], "assign", "assigned to alice", None, {"assignee": "alice"}),
     (["transition", "{id}", "acknowledged", "--reason", "on it"], "transition",
      "status new → acknowledged: on it", "on it", {"status": "acknowledged"}),
     (["transition", "{id}", "false_positive"], "transition", "status new → false_positive", None,
      {"status": "false_positive"}),
     (["comment", "{id}", "called the owner"], "comment", "comment: called the owner", None, {}),
     (["escalate", "{id}", "L3", "--reason", "needs forensics"], "escalate",
      "escalated from L2 to L3: needs forensics", "needs forensics", {"layer": "L3"}),
     (["deescalate", "{id}", "L1", "--reason", "agency can handle it"], "deescalate",
      "de-escalated from L2 to L1: agency can handle it", "agency can handle it", {"layer": "L1"}),
     (["task", "{id}", "triage", "doing", "--note", "pulling logs"], "task_status",
      "task triage todo → doing: pulling logs", "pulling logs", {}),
     (["tag", "{id}", "--add", "rdp", "--add", "external"], "tag", "tags +external +rdp", None,
      {"tags": ["external", "rdp"]}),
     (["attach", "{id}", "--event", "ev-123", "--note", "the first failure"], "attach_evidence",
      "evidence attached: event ev-123", "the first failure",
      {"evidence": [{"kind": "event", "event_id": "ev-123", "note": "the first failure"}]})],
    ids=["assign", "acknowledge", "false-positive", "comment", "escalate", "deescalate", "task", "tag",
         "attach-event"],
)
def test_a_change_is_applied_recorded_and_audited(
    socctl: Socctl, show: Callable[[str], dict[str, Any]], audit_of: Callable[[str], list[tuple[str, str]]],
    ids: dict[str, str], args: list[str], action: str, summary: str, reason: str | None,
    changed: dict[str, Any],
) -> None:
    case_id = ids[APP_SERVER]
    before = show(case_id)
    result = socctl("cases", *[case_id if a == "{id}" else a for a in args], "--actor", "alice")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{case_id}: {summary} (status ")
    after = show(case_id)
    assert after["version"] == before["version"] + 1
    for name, value in changed.items():
        assert after[name] == value
    entry = after["timeline"][-1]
    assert (entry["seq"], entry["actor"], entry["action"], entry["summary"], entry["reason"]) == (
        after["version"], "alice", action, summary, reason)
    assert audit_of(case_id)[-1] == ("alice", action)


def test_task_status_is_kept_on_the_task(socctl: Socctl, show: Callable[[str], dict[str, Any]],
                                         ids: dict[str, str]) -> None:
    case_id = ids[APP_SERVER]
    assert socctl("cases", "task", case_id, "triage", "done", "--note", "confirmed", "--actor", "al").exit_code == 0
    assert socctl("cases", "task", case_id, "block", "skipped", "--note", "no firewall", "--actor", "al"
                  ).exit_code == 0
    tasks = {t["id"]: (t["status"], t["note"]) for t in show(case_id)["tasks"]}
    assert tasks == {"triage": ("done", "confirmed"), "block": ("skipped", "no firewall")}


@pytest.mark.parametrize(
    ("env_user", "option", "expected"),
    [("carol", None, "carol"), ("carol", "dave", "dave"), (None, None, getpass.getuser())],
    ids=["SOCCTL_USER", "actor-option-wins", "login-name"],
)
def test_the_actor_comes_from_the_option_then_socctl_user_then_the_login(
    socctl: Socctl, show: Callable[[str], dict[str, Any]], audit_of: Callable[[str], list[tuple[str, str]]],
    ids: dict[str, str], env_user: str | None, option: str | None, expected: str,
) -> None:
    extra = ["--actor", option] if option else []
    result = socctl("cases", "comment", ids[PC], "looking", *extra, user=env_user)
    assert result.exit_code == 0, result.output
    assert show(ids[PC])["timeline"][-1]["actor"] == expected
    assert audit_of(ids[PC])[-1] == (expected, "comment")


def test_unassign(socctl: Socctl, show: Callable[[str], dict[str, Any]], ids: dict[str, str]) -> None:
    assert socctl("cases", "assign", ids[PC], "alice", "--actor", "bob").exit_code == 0
    result = socctl("cases", "assign", ids[PC], "none", "--actor", "bob")
    assert result.exit_code == 0, result.output
    doc = show(ids[PC])
    assert doc["assignee"] is None
    assert doc["timeline"][-1]["summary"] == "unassigned (was alice)"


def test_attach_a_file_keeps_its_sha256_and_absolute_path(socctl: Socctl, show: Callable[[str], dict[str, Any]],
                                                         audit_of: Callable[[str], list[tuple[str, str]]],
                                                         ids: dict[str, str], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pcap").mkdir()
    capture = tmp_path / "pcap" / "capture.pcap"
    capture.write_bytes(b"\xd4\xc3\xb2\xa1 not really a capture")
    digest = hashlib.sha256(capture.read_bytes()).hexdigest()
    monkeypatch.chdir(tmp_path)
    result = socctl("cases", "attach", ids[PC], "--file", "pcap/capture.pcap", "--note", "traffic", "--actor", "eve")
    assert result.exit_code == 0, result.output
    doc = show(ids[PC])
    assert doc["evidence"] == [{"kind": "file", "path": str(capture), "sha256": digest, "note": "traffic"}]
    entry = doc["timeline"][-1]
    assert entry["summary"] == f"evidence attached: file {capture} ({digest})"
    assert audit_of(ids[PC])[-1] == ("eve", "attach_evidence")


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--event", "e1", "--file", "x"], "give exactly one of --event and --file"),
     ([], "give exactly one of --event and --file"),
     (["--file", "missing.bin"], "cannot read missing.bin: No such file or directory")],
    ids=["both", "neither", "missing-file"],
)
def test_attach_usage_errors(socctl: Socctl, ids: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                             args: list[str], message: str) -> None:
    monkeypatch.chdir(tmp_path)
    result = socctl("cases", "attach", ids[PC], *args, "--actor", "eve")
    assert result.exit_code == 2
    assert message in result.stderr


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [([], ["transition", "{id}", "closed"],
      "case {id}: transition: cannot go from new to closed (allowed from new: acknowledged, false_positive)"),
     ([["transition", "{id}", "acknowledged"]], ["transition", "{id}", "resolved"],
      "case {id}: transition: cannot go from acknowledged to resolved (allowed from acknowledged: investigating, "
      "false_positive)"),
     ([["transition", "{id}", "false_positive"]], ["transition", "{id}", "investigating"],
      "case {id}: transition: case is false_positive: only comments, tags and evidence can be added"),
     ([], ["escalate", "{id}", "L1", "--reason", "down"],
      "case {id}: escalate: L1 is not above the owning layer L2"),
     ([], ["deescalate", "{id}", "L3", "--reason", "up"],
      "case {id}: deescalate: L3 is not below the owning layer L2"),
     ([], ["task", "{id}", "nope", "done"],
      "case {id}: task_status: unknown task 'nope' (tasks: triage, block)"),
     ([], ["task", "{id}", "block", "skipped"],
      "case {id}: task_status: skipping task 'block' needs a note saying why"),
     ([["assign", "{id}", "alice"]], ["assign", "{id}", "alice"],
      "case {id}: assign: already assigned to alice"),
     ([], ["tag", "{id}", "--add", "x", "--remove", "x"],
      "case {id}: tag: tag(s) both added and removed: x"),
     ([], ["comment", "{id}", "  "], "case {id}: comment: empty comment")],
    ids=["new-to-closed", "acknowledged-to-resolved", "terminal", "escalate-down", "deescalate-up", "unknown-task",
         "skip-without-note", "same-assignee", "tag-add-and-remove", "empty-comment"],
)
def test_a_refused_change_says_why_and_changes_nothing(
    socctl: Socctl, show: Callable[[str], dict[str, Any]], ids: dict[str, str], setup: list[list[str]],
    args: list[str], message: str,
) -> None:
    case_id = ids[APP_SERVER]

    def fill(items: list[str]) -> list[str]:
        return [case_id if a == "{id}" else a for a in items]

    for step in setup:
        assert socctl("cases", *fill(step), "--actor", "alice").exit_code == 0
    before = show(case_id)
    result = socctl("cases", *fill(args), "--actor", "alice")
    assert result.exit_code == 1
    assert result.stderr == message.format(id=case_id) + "\n"
    assert show(case_id) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [(["escalate", "{id}", "L3"], "Missing option '--reason'"),
     (["deescalate", "{id}", "L1"], "Missing option '--reason'"),
     (["escalate", "{id}", "L7", "--reason", "r"], "layer: 'L7' is not one of L1, L2, L3, L4"),
     (["transition", "{id}", "done"], "status: 'done' is not one of new, acknowledged, investigating, contained, "
                                      "resolved, closed, false_positive"),
     (["task", "{id}", "triage", "finished"], "status: 'finished' is not one of todo, doing, done, skipped"),
     (["assess", "{id}", "--cannot-contain"], "Missing option '--reason'")],
    ids=["escalate-without-reason", "deescalate-without-reason", "unknown-layer", "unknown-status",
         "unknown-task-status", "assess-without-reason"],
)
def test_usage_errors_exit_2(socctl: Socctl, show: Callable[[str], dict[str, Any]], ids: dict[str, str],
                             args: list[str], message: str) -> None:
    case_id = ids[APP_SERVER]
    before = show(case_id)
    result = socctl("cases", *[case_id if a == "{id}" else a for a in args], "--actor", "alice")
    assert result.exit_code == 2
    assert message in result.stderr
    assert show(case_id) == before


def test_the_lifecycle_end_to_end(socctl: Socctl, show: Callable[[str], dict[str, Any]],
                                  audit_of: Callable[[str], list[tuple[str, str]]], ids: dict[str, str]) -> None:
    case_id = ids[WORKSTATION]
    for status in ("acknowledged", "investigating", "contained", "resolved", "closed"):
        result = socctl("cases", "transition", case_id, status, "--reason", f"now {status}", "--actor", "alice")
        assert result.exit_code == 0, result.output
    doc = show(case_id)
    assert doc["status"] == "closed"
    assert doc["closed_ms"] is not None
    assert doc["acknowledged_ms"] <= doc["contained_ms"] <= doc["closed_ms"]
    assert [e["summary"] for e in doc["timeline"][-5:]] == [
        "status new → acknowledged: now acknowledged", "status acknowledged → investigating: now investigating",
        "status investigating → contained: now contained", "status contained → resolved: now resolved",
        "status resolved → closed: now closed"]
    assert audit_of(case_id)[-5:] == [("alice", "transition")] * 5
    result = socctl("cases", "comment", case_id, "post-mortem written", "--actor", "alice")  # still allowed
    assert result.exit_code == 0, result.output


# -- the serious-incident assessment ---------------------------------------------------------------------------


def test_assess_cannot_contain_makes_a_candidate_and_notifies_l4(
    socctl: Socctl, show: Callable[[str], dict[str, Any]], audit_of: Callable[[str], list[tuple[str, str]]],
    ids: dict[str, str],
) -> None:
    case_id = ids[ONE_STOP_SHOP]
    before = show(case_id)
    assert (before["serious"], before["notify"], before["layer"]) == ("awaiting_analyst", [], "L2")
    result = socctl("cases", "assess", case_id, "--cannot-contain", "--reason", "no backups", "--actor", "dana")
    assert result.exit_code == 0, result.output
    doc = show(case_id)
    assert (doc["serious"], doc["notify"], doc["layer"]) == ("candidate", ["L4"], "L2")
    assessed, notified = doc["timeline"][-2:]
    assert (assessed["actor"], assessed["action"], assessed["summary"], assessed["reason"]) == (
        "dana", "set_serious",
        "serious-incident status awaiting_analyst → candidate: analyst: owner cannot contain it: no backups",
        "analyst: owner cannot contain it: no backups")
    assert (notified["actor"], notified["action"], notified["reason"]) == (
        "socctl", "notify", "routing: severity high → L2; candidate → L4 notified")
    assert audit_of(case_id)[-2:] == [("dana", "set_serious"), ("socctl", "notify")]
    assert result.stdout.splitlines() == [
        f"{case_id}: {assessed['summary']} (status new, layer L2, version {doc['version']})",
        f"{case_id}: {notified['summary']} (status new, layer L2, version {doc['version']})"]
    assert socctl("cases", "list", "--serious").stdout.count(case_id) == 1


def test_assess_can_contain_then_cannot(socctl: Socctl, show: Callable[[str], dict[str, Any]],
                                        ids: dict[str, str]) -> None:
    case_id = ids[ONE_STOP_SHOP]
    result = socctl("cases", "assess", case_id, "--can-contain", "--reason", "isolated in time", "--actor", "dana")
    assert result.exit_code == 0, result.output
    doc = show(case_id)
    assert (doc["serious"], doc["notify"]) == ("not_candidate", [])
    assert doc["timeline"][-1]["summary"] == ("serious-incident status awaiting_analyst → not_candidate: analyst: "
                                              "owner can contain it: isolated in time")
    # it spread after all: the conditions still hold, so the case becomes a candidate
    result = socctl("cases", "assess", case_id, "--cannot-contain", "--reason", "it spread", "--actor", "dana")
    assert result.exit_code == 0, result.output
    doc = show(case_id)
    assert (doc["serious"], doc["notify"]) == ("candidate", ["L4"])


def test_assess_without_the_conditions_is_recorded_only(socctl: Socctl, show: Callable[[str], dict[str, Any]],
                                                        audit_of: Callable[[str], list[tuple[str, str]]],
                                                        ids: dict[str, str]) -> None:
    case_id = ids[WORKSTATION]
    result = socctl("cases", "assess", case_id, "--cannot-contain", "--reason", "agency has no staff",
                    "--actor", "dana")
    assert result.exit_code == 0, result.output
    assert result.stderr == (f"{case_id}: the system and impact conditions are not met; recording the assessment "
                             "only\n")
    doc = show(case_id)
    assert (doc["serious"], doc["notify"]) == ("not_candidate", [])
    entry = doc["timeline"][-1]
    assert (entry["actor"], entry["action"], entry["summary"]) == (
        "dana", "comment", "comment: serious-incident assessment: owner cannot contain it: agency has no staff")
    assert audit_of(case_id)[-1] == ("dana", "comment")


def test_assess_repeated_is_recorded_as_a_comment(socctl: Socctl, show: Callable[[str], dict[str, Any]],
                                                  ids: dict[str, str]) -> None:
    case_id = ids[ONE_STOP_SHOP]
    assert socctl("cases", "assess", case_id, "--cannot-contain", "--reason", "a", "--actor", "d").exit_code == 0
    result = socctl("cases", "assess", case_id, "--cannot-contain", "--reason", "still", "--actor", "d")
    assert result.exit_code == 0, result.output
    doc = show(case_id)
    assert (doc["serious"], doc["notify"]) == ("candidate", ["L4"])
    assert doc["timeline"][-1]["summary"] == "comment: serious-incident assessment: owner cannot contain it: still"


def test_assess_keeps_an_analysts_deescalation_when_nothing_rose(socctl: Socctl,
                                                                show: Callable[[str], dict[str, Any]],
                                                                ids: dict[str, str]) -> None:
    case_id = ids[ONE_STOP_SHOP]
    assert socctl("cases", "deescalate", case_id, "L1", "--reason", "agency IT handles it", "--actor", "d"
                  ).exit_code == 0
    assert socctl("cases", "assess", case_id, "--can-contain", "--reason", "contained", "--actor", "d").exit_code == 0
    assert show(case_id)["layer"] == "L1"


# -- merge and split -------------------------------------------------------------------------------------------


def test_merge(socctl: Socctl, socctl_json: Callable[..., Any], inputs_options: list[str],
               show: Callable[[str], dict[str, Any]], audit_of: Callable[[str], list[tuple[str, str]]],
               ids: dict[str, str]) -> None:
    target, source = ids[APP_SERVER], ids[PC]
    result = socctl("cases", "merge", target, source, *inputs_options, "--actor", "frank")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{target}: ")
    merged, closed = show(target), show(source)
    assert len(merged["alerts"]) == 3
    assert merged["merged_from"] == [source]
    assert (closed["status"], closed["merged_into"]) == ("closed", target)
    merge_entry = next(e for e in merged["timeline"] if e["action"] == "merge")
    assert (merge_entry["actor"], merge_entry["summary"]) == (
        "frank", f"merged case {source} (1 alerts, {len(closed['timeline']) - 1} timeline entries)")
    assert closed["timeline"][-1]["summary"] == f"merged into case {target}; closed"
    assert ("frank", "merge") in audit_of(target)
    assert audit_of(source)[-1] == ("frank", "merged_into")
    queue = listed(socctl_json)  # the source is closed; the target changed last
    assert (queue[0], set(queue[1:])) == (target, {ids[ONE_STOP_SHOP], ids[WORKSTATION]})


def test_merge_into_itself_is_refused(socctl: Socctl, ids: dict[str, str]) -> None:
    case_id = ids[PC]
    result = socctl("cases", "merge", case_id, case_id, "--actor", "frank")
    assert result.exit_code == 1
    assert result.stderr == f"case {case_id}: merge: cannot merge a case into itself\n"


def test_split(socctl: Socctl, inputs_options: list[str], show: Callable[[str], dict[str, Any]],
               audit_of: Callable[[str], list[tuple[str, str]]], ids: dict[str, str]) -> None:
    case_id = ids[APP_SERVER]
    burst = next(a["id"] for a in show(case_id)["alerts"] if a["rule_id"] == LOGON_BURST)
    result = socctl("cases", "split", case_id, burst, *inputs_options, "--actor", "gina")
    assert result.exit_code == 0, result.output
    remaining = show(case_id)
    assert [a["rule_id"] for a in remaining["alerts"]] == [FAILED_LOGON]
    split_entry = next(e for e in remaining["timeline"] if e["action"] == "split_out")
    new_id = split_entry["after"]["split_to"]
    assert result.stdout.startswith(f"{new_id}: ")
    assert split_entry["actor"] == "gina"
    assert split_entry["summary"].startswith(f"split 1 alert(s) out into case {new_id}; severity lowered from high "
                                             "to low")
    new = show(new_id)
    assert (new["split_from"], [a["id"] for a in new["alerts"]]) == (case_id, [burst])
    assert new["title"] == f"Test Failed Logon ({APP_SERVER}) (split)"
    assert (new["severity"], new["timeline"][0]["actor"], new["timeline"][0]["action"]) == ("high", "gina", "open")
    assert new["playbook_id"] == "pb-test-logons"
    assert ("gina", "split_out") in audit_of(case_id)
    assert audit_of(new_id)[0] == ("gina", "open")


def test_split_twice_is_refused(socctl: Socctl, inputs_options: list[str], show: Callable[[str], dict[str, Any]],
                                ids: dict[str, str]) -> None:
    case_id = ids[APP_SERVER]
    alert = next(a["id"] for a in show(case_id)["alerts"] if a["rule_id"] == LOGON_BURST)
    assert socctl("cases", "split", case_id, alert, *inputs_options, "--actor", "gina").exit_code == 0
    result = socctl("cases", "split", case_id, "not-an-alert", *inputs_options, "--actor", "gina")
    assert result.exit_code == 1
    assert result.stderr == f"case {case_id}: split_out: alert(s) not in the case: not-an-alert\n"
    result = socctl("cases", "split", case_id, *[a["id"] for a in show(case_id)["alerts"]], "--actor", "gina")
    assert result.exit_code == 1
    assert result.stderr == (f"case {case_id}: split_out: cannot split out every alert (the case would be "
                             "empty)\n")


# -- the audit trail -------------------------------------------------------------------------------------------


def test_audit_list_has_every_change_by_actor(socctl: Socctl, socctl_json: Callable[..., Any],
                                              ids: dict[str, str]) -> None:
    case_id = ids[PC]
    steps = [["assign", case_id, "alice"], ["transition", case_id, "acknowledged", "--reason", "mine"],
             ["tag", case_id, "--add", "rdp"], ["escalate", case_id, "L2", "--reason", "needs the SOC"]]
    for step in steps:
        assert socctl("cases", *step, "--actor", "hana").exit_code == 0
    records = socctl_json("audit", "list", "--actor", "hana")["records"]
    version = socctl_json("cases", "show", case_id)["version"]
    assert sorted((r["seq"], r["subject"]["kind"], r["subject"]["id"], r["action"]) for r in records) == [
        (version - 3, "case", case_id, "assign"), (version - 2, "case", case_id, "transition"),
        (version - 1, "case", case_id, "tag"), (version, "case", case_id, "escalate")]
    by_action = {r["action"]: r for r in records}
    assert (by_action["transition"]["before"], by_action["transition"]["after"]) == (
        {"status": "new"}, {"status": "acknowledged"})
    assert by_action["escalate"]["reason"] == "needs the SOC"
    assert [r["at_ms"] for r in records] == sorted((r["at_ms"] for r in records), reverse=True)
    table = socctl("audit", "list", "--actor", "hana")
    assert table.exit_code == 0, table.output
    assert "audit (4 of 4)" in table.stdout
    assert f"case {case_id}" in table.stdout
    assert "needs the SOC" in table.stdout


def test_audit_list_filters(socctl: Socctl, socctl_json: Callable[..., Any], ids: dict[str, str]) -> None:
    assert socctl("cases", "comment", ids[PC], "one", "--actor", "ines").exit_code == 0
    assert socctl("cases", "comment", ids[WORKSTATION], "two", "--actor", "ines").exit_code == 0
    assert socctl("allowlist", "add", "--field", "host.name", "--value", PC, "--reason", "lab", "--actor", "ines"
                  ).exit_code == 0
    mine = socctl_json("audit", "list", "--actor", "ines")["records"]
    assert sorted((r["subject"]["kind"], r["action"]) for r in mine) == [
        ("allowlist", "add"), ("case", "comment"), ("case", "comment")]
    cases_only = socctl_json("audit", "list", "--actor", "ines", "--kind", "case")["records"]
    assert {r["subject"]["id"] for r in cases_only} == {ids[PC], ids[WORKSTATION]}
    one = socctl_json("audit", "list", "--subject", ids[PC], "action:comment")["records"]
    assert [(r["actor"], r["summary"]) for r in one] == [("ines", "comment: one")]
    system = socctl_json("audit", "list", "--actor", "socctl", "--subject", ids[PC])["records"]
    assert system
    assert all(r["actor"] == "socctl" for r in system)
    assert socctl_json("audit", "list", "--actor", "ines", "--since", "2000-01-01T00:00:00Z", "--limit", "1"
                       )["total"] == 3


# -- analysts' text is printed as typed ------------------------------------------------------------------------


def test_square_brackets_in_analysts_text_are_kept(socctl: Socctl, ids: dict[str, str]) -> None:
    case_id = ids[PC]
    result = socctl("cases", "comment", case_id, "[urgent] call the owner [/]", "--actor", "[bot]")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{case_id}: comment: [urgent] call the owner [/] (status new")
    assert socctl("cases", "tag", case_id, "--add", "[p1]", "--actor", "alice").exit_code == 0
    shown = socctl("cases", "show", case_id).stdout
    assert "tags: [p1]" in shown
    assert "comment: [urgent] call the owner [/]" in shown
    assert "[bot]" in shown
    refused = socctl("cases", "tag", case_id, "--add", "[x]", "--remove", "[x]", "--actor", "alice")
    assert refused.exit_code == 1
    assert refused.stderr == f"case {case_id}: tag: tag(s) both added and removed: [x]\n"


def test_list_quotes_option_values(socctl: Socctl, socctl_json: Callable[..., Any], ids: dict[str, str]) -> None:
    assert socctl("cases", "assign", ids[PC], 'o"neil (night)', "--actor", "bob").exit_code == 0
    assert listed(socctl_json, "--assignee", 'o"neil (night)') == [ids[PC]]
    assert listed(socctl_json, "--agency", 'no"such') == []


def test_list_query_error_points_into_the_query(socctl: Socctl) -> None:
    result = socctl("cases", "list", "severity:high AND (")
    assert result.exit_code == 2
    assert result.stderr == "unclosed '(' at column 19: 'severity:high AND ('\n"


@pytest.mark.parametrize(
    "args",
    [["list"], ["show", "case-1"], ["comment", "case-1", "x", "--actor", "a"]],
    ids=["list", "show", "comment"],
)
def test_a_store_error_is_reported(socctl: Socctl, args: list[str]) -> None:
    result = socctl("cases", *args, "--store", "mysql://db", store=False)
    assert result.exit_code == 1
    assert result.stderr == ("unsupported store URL scheme 'mysql': expected sqlite:///path or "
                             "http(s)://host:port\n")
