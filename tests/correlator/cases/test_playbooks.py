"""Playbook parsing and validation (errors with file, line and key), collect-all loading, choosing a playbook and
turning its steps into tasks."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from correlator.cases.definitions import IncidentType, Layer, TaskStatus
from correlator.cases.errors import PlaybookError
from correlator.cases.model import Case, CaseAlert, Task
from correlator.cases.playbooks import Playbook, PlaybookMatch, load_playbooks, parse_playbook, tasks_for
from tests.correlator.cases.conftest import HOUR, MINUTE, T0

GOOD = """\
id: pb-test
title: Test playbook
title_vi: Kịch bản thử
incident_type: malware
priority: 20
match:
  tags: [malware, "attack.s0*"]
  tactics: [execution]
  techniques: [T1204]
  rule_ids: [rule-42]
  kinds: [yara]
steps:
  - id: triage
    title: Look at it
    layer: L2
    due: 30m
    evidence: [the alert]
  - id: isolate
    title: Unplug it
    layer: L1
    due: 1h
    evidence: [a photo of the cable]
    description: the agency's officer does it
"""


def test_parse_good() -> None:
    playbook = parse_playbook(GOOD, "pb.yaml")
    assert (playbook.id, playbook.title_vi, playbook.incident_type, playbook.priority) == (
        "pb-test", "Kịch bản thử", IncidentType.MALWARE, 20)
    assert [(s.id, s.layer, s.due_ms, s.evidence) for s in playbook.steps] == [
        ("triage", Layer.L2, 30 * MINUTE, ("the alert",)), ("isolate", Layer.L1, HOUR, ("a photo of the cable",))]
    assert playbook.source == "pb.yaml"
    assert parse_playbook(yaml.safe_dump(playbook.to_dict(), allow_unicode=True), "again.yaml") == playbook


@pytest.mark.parametrize(
    ("tags", "rule_id", "kind", "matches"),
    [
        (("malware",), "x", "sigma", True), (("attack.s0002",), "x", "sigma", True),
        (("ATTACK.EXECUTION",), "x", "sigma", True), (("attack.t1204.002",), "x", "sigma", True),
        (("attack.t1204",), "x", "sigma", True), (("attack.t12040",), "x", "sigma", False),
        ((), "rule-42", "sigma", True), ((), "x", "yara", True), (("attack.persistence",), "x", "sigma", False),
    ],
    ids=["tag", "tag-glob", "tactic-any-case", "subtechnique", "technique", "not-a-subtechnique", "rule-id", "kind",
         "none"],
)
def test_match(tags: tuple[str, ...], rule_id: str, kind: str, matches: bool) -> None:
    assert parse_playbook(GOOD).match.matches(tags, rule_id, kind) is matches


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (GOOD.replace("id: pb-test", "id: PB Test"),
         "pb.yaml:1: id: invalid id 'PB Test' (lower-case letters, digits, '.', '_', '-')"),
        (GOOD.replace("title_vi: Kịch bản thử\n", ""), "pb.yaml:1: title_vi: missing"),
        (GOOD.replace("incident_type: malware", "incident_type: phishing"),
         "pb.yaml:4: incident_type: unknown incident type 'phishing' (expected one of malware, botnet, web_attack, "
         "account_compromise, ransomware, data_exfiltration, defacement)"),
        (GOOD.replace("priority: 20", "priority: high"), "pb.yaml:5: priority: must be an integer 0..100, not 'high'"),
        (GOOD.replace("  tactics: [execution]", "  tactics: [exec]"),
         "pb.yaml:8: match.tactics: unknown ATT&CK tactic 'exec' (expected one of collection, command-and-control, "
         "credential-access, defense-evasion, discovery, execution, exfiltration, impact, initial-access, "
         "lateral-movement, persistence, privilege-escalation, reconnaissance, resource-development)"),
        (GOOD.replace("[T1204]", "[t1204]"),
         "pb.yaml:9: match.techniques: invalid ATT&CK technique 't1204' (expected T1234 or T1234.001)"),
        (GOOD.replace("kinds: [yara]", "kinds: [edr]"),
         "pb.yaml:11: match.kinds: unknown alert kind 'edr' (expected one of correlation, ids, intel, sigma, yara)"),
        (GOOD.replace("  rule_ids: [rule-42]", "  rules: [rule-42]"),
         "pb.yaml:10: match.rules: unknown key (expected one of tags, tactics, techniques, rule_ids, kinds)"),
        ("id: a\ntitle: t\ntitle_vi: t\nincident_type: malware\nmatch: {}\nsteps: []\n",
         "pb.yaml:5: match: needs at least one of tags, tactics, techniques, rule_ids, kinds"),
        (GOOD[: GOOD.index("steps:")], "pb.yaml:1: steps: missing"),
        (GOOD.replace("    layer: L1", "    layer: L5"),
         "pb.yaml:20: steps[1].layer: unknown layer 'L5' (expected one of L1, L2, L3, L4)"),
        (GOOD.replace("    due: 1h", "    due: soon"),
         "pb.yaml:21: steps[1].due: invalid duration 'soon': expected a number and a unit (ms, s, m, h, d, w), "
         "e.g. 15m"),
        (GOOD.replace("    due: 1h", "    due: 10m"),
         "pb.yaml:21: steps[1].due: due 10m is before the previous step's 30m (steps are ordered)"),
        (GOOD.replace("    due: 1h\n", ""), "pb.yaml:18: steps[1].due: missing"),
        (GOOD.replace("  - id: isolate", "  - id: triage"), "pb.yaml:18: steps[1].id: duplicate step id 'triage'"),
        (GOOD.replace("    evidence: [the alert]", "    evidence: []"),
         "pb.yaml:17: steps[0].evidence: at least one item of expected evidence is required"),
        (GOOD.replace("    evidence: [the alert]", "    evidence: [1]"),
         "pb.yaml:17: steps[0].evidence: must be a list of non-empty strings, not [1]"),
        (GOOD.replace("    evidence: [the alert]", "    evidence: [the alert]\n    owner: L2"),
         "pb.yaml:18: steps[0].owner: unknown key (expected one of id, title, layer, due, evidence, description)"),
        (GOOD + "severity: high\n",
         "pb.yaml:24: severity: unknown key (expected one of id, title, title_vi, incident_type, priority, "
         "description, match, steps)"),
        ("id: [unclosed\n", "pb.yaml:2: invalid YAML: expected ',' or ']', but got '<stream end>'"),
        ("- a list\n", "pb.yaml:1: a playbook must be a mapping"),
    ],
    ids=["bad-id", "missing-title-vi", "unknown-type", "priority", "tactic", "technique", "kind", "match-key",
         "empty-match", "no-steps", "layer", "due-syntax", "due-order", "due-missing", "step-duplicate",
         "no-evidence", "evidence-type", "step-key", "top-key", "yaml-syntax", "not-mapping"],
)
def test_errors(text: str, message: str) -> None:
    with pytest.raises(PlaybookError) as caught:
        parse_playbook(text, "pb.yaml")
    assert str(caught.value) == message


def test_collect_all_keeps_loading(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "b.yaml").write_text(GOOD.replace("title: Test playbook", "title: Again"), encoding="utf-8")
    (tmp_path / "c.yml").write_text(GOOD.replace("pb-test", "pb-other"), encoding="utf-8")
    (tmp_path / "d.yaml").write_text(GOOD.replace("pb-test", "pb-bad").replace("layer: L2", "layer: 2"),
                                     encoding="utf-8")
    (tmp_path / "e.yaml").write_text(GOOD.replace("pb-test", "pb-web").replace("malware", "web_attack"),
                                     encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not a playbook", encoding="utf-8")
    loaded = load_playbooks([tmp_path])
    assert sorted(loaded.playbooks) == ["pb-test", "pb-web"]
    assert [e.to_dict() for e in loaded.errors] == [
        {"path": str(tmp_path / "b.yaml"), "line": 1, "key": "id",
         "reason": f"duplicate playbook id (first defined in {tmp_path / 'a.yaml'})"},
        {"path": str(tmp_path / "c.yml"), "line": 4, "key": "incident_type",
         "reason": f"incident type already has playbook 'pb-test' ({tmp_path / 'a.yaml'})"},
        {"path": str(tmp_path / "d.yaml"), "line": 15, "key": "steps[0].layer",
         "reason": "unknown layer 2 (expected one of L1, L2, L3, L4)"},
    ]
    with pytest.raises(PlaybookError, match=r"b\.yaml:1: id: duplicate playbook id"):
        load_playbooks([tmp_path], strict=True)


def test_unreadable_and_non_utf8(tmp_path: Path) -> None:
    bad = tmp_path / "latin1.yaml"
    bad.write_bytes(b"title: caf\xe9\n")
    loaded = load_playbooks([bad, tmp_path / "missing.yaml"])
    assert [str(e) for e in loaded.errors] == [f"{bad}: not UTF-8 (byte 10)",
                                               f"{tmp_path / 'missing.yaml'}: cannot read: No such file or directory"]


def test_tasks_for_steps() -> None:
    playbook = parse_playbook(GOOD)
    assert tasks_for(playbook, T0) == (
        Task("triage", "Look at it", Layer.L2, T0 + 30 * MINUTE, TaskStatus.TODO, ("the alert",)),
        Task("isolate", "Unplug it", Layer.L1, T0 + HOUR, TaskStatus.TODO, ("a photo of the cable",)),
    )


def make_playbook(playbook_id: str, incident_type: IncidentType, priority: int, **match: tuple[str, ...]
                  ) -> Playbook:
    return Playbook.from_dict({
        "id": playbook_id, "title": playbook_id, "title_vi": playbook_id, "incident_type": incident_type.value,
        "priority": priority, "match": {k: list(v) for k, v in match.items()},
        "steps": [{"id": "s", "title": "s", "layer": "L2", "due": "1h", "evidence": ["e"]}],
    })


def test_select_by_count_then_priority_then_id(make_case_alert: Callable[..., CaseAlert]) -> None:
    from correlator.cases.playbooks import PlaybookSet

    brute = make_playbook("pb-brute", IncidentType.ACCOUNT_COMPROMISE, 40, tactics=("credential-access",),
                          techniques=("T1136",))
    ransom = make_playbook("pb-ransom", IncidentType.RANSOMWARE, 90, techniques=("T1486",))
    malware = make_playbook("pb-malware", IncidentType.MALWARE, 40, tactics=("credential-access",))
    playbooks = PlaybookSet({p.id: p for p in (brute, ransom, malware)})
    guess = make_case_alert("a", tags=("attack.credential-access",))
    admin = make_case_alert("b", tags=("attack.t1136.001",))
    encrypt = make_case_alert("c", tags=("attack.t1486",))
    other = make_case_alert("d", tags=("attack.discovery",))
    assert playbooks.select([other]) is None
    assert playbooks.select([guess, admin, encrypt]) is brute  # two alerts beat one
    assert playbooks.select([guess, encrypt]) is ransom  # one each: priority
    assert playbooks.select([guess]) is brute  # same count and priority: smallest id ("pb-brute" < "pb-malware")
    assert playbooks.select([encrypt, admin, guess]) is playbooks.select([guess, admin, encrypt])
    assert playbooks.for_type(IncidentType.RANSOMWARE) is ransom
    assert playbooks.get("pb-none") is None


def test_match_to_dict_leaves_out_empty() -> None:
    assert PlaybookMatch(tags=("a",), kinds=("yara",)).to_dict() == {"tags": ["a"], "kinds": ["yara"]}


def test_from_dict_without_lines() -> None:
    data = yaml.safe_load(textwrap.dedent(GOOD))
    data["steps"][0]["layer"] = "L9"
    with pytest.raises(PlaybookError) as caught:
        Playbook.from_dict(data, "api")
    assert str(caught.value) == "api: steps[0].layer: unknown layer 'L9' (expected one of L1, L2, L3, L4)"


def test_assign_for_type(new_case: Callable[..., Case]) -> None:
    from correlator.cases.lifecycle import apply
    from correlator.cases.playbooks import PlaybookSet, assign_for_type

    playbooks = PlaybookSet({"pb-test": parse_playbook(GOOD)})
    case = new_case()
    command = assign_for_type(playbooks, case, IncidentType.MALWARE, "analyst: it is malware")
    case, entry = apply(case, command, "alice", T0 + HOUR)
    assert (case.playbook_id, case.incident_type, [t.due_ms for t in case.tasks]) == (
        "pb-test", IncidentType.MALWARE, [T0 + 30 * MINUTE, T0 + HOUR])
    assert entry.summary == "playbook pb-test (malware, 2 tasks): analyst: it is malware"
    with pytest.raises(PlaybookError, match=r"^<playbooks>: no playbook for incident type 'botnet'$"):
        assign_for_type(playbooks, case, IncidentType.BOTNET)
