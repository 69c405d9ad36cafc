"""The runtime allowlist: operators, case, expiry, revocation, ``*`` rules, list values, alert vs event lookup, the
index, changes and their audit records, entry validation and YAML files with line numbers."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from correlator.allowlist import (
    Allowlist,
    AllowlistChangeError,
    AllowlistEntry,
    AllowlistEntryError,
    AllowlistError,
    AllowlistHits,
    AllowOperator,
    add_entry,
    extend_entry,
    load_allowlist_file,
    revoke_entry,
)
from correlator.allowlist_load import AllowlistFileError, parse_allowlist_yaml
from correlator.model import Alert, Event, EventOrigin, MatchedRule

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
HOUR = 3_600_000

MakeAlert = Callable[..., Alert]


@pytest.fixture
def make_alert() -> MakeAlert:
    def build(rule_id: str = "r1", *, host: str | None = "ws01", matched: dict[str, Any] | None = None,
              extra: dict[str, Any] | None = None) -> Alert:
        rule = MatchedRule(id=rule_id, title=f"Rule {rule_id}", level="high")
        return Alert(rule=rule, event_id="ev1", timestamp_ms=T0, host_name=host, origin=EventOrigin(),
                     matched=dict(matched or {}), extra=dict(extra or {}))

    return build


def entry(field: str = "user.name", value: Any = "svc_backup", *, rule: str = "r1", operator: str = "equals",
          created_ms: int = T0, **kwargs: Any) -> AllowlistEntry:
    return AllowlistEntry(rule=rule, field=field, value=value, operator=AllowOperator(operator), author="alice",
                          reason="expected", created_ms=created_ms, **kwargs)


def allows(item: AllowlistEntry, value: Any, at_ms: int = T0) -> bool:
    alert = Alert(rule=MatchedRule(id=item.rule if item.rule != "*" else "any", title="t", level="low"),
                  event_id="e", timestamp_ms=T0, host_name=None, origin=EventOrigin(), matched={item.field: value})
    return Allowlist((item,)).match(alert, None, at_ms) == item


# -- operators


@pytest.mark.parametrize(
    ("operator", "pattern", "value", "expected"),
    [
        ("equals", "svc_backup", "svc_backup", True),
        ("equals", "svc_backup", "SVC_Backup", True),
        ("equals", "svc_backup", "svc_backup2", False),
        ("equals", "4625", 4625, True),
        ("equals", "true", True, True),
        ("wildcard", r"C:\Program Files\*\update.exe", r"c:\program files\Vendor\Update.EXE", True),
        ("wildcard", r"C:\Program Files\*\update.exe", r"C:\Temp\update.exe", False),
        ("wildcard", "backup??", "BACKUP01", True),
        ("wildcard", "backup??", "backup1", False),
        ("wildcard", "*", "", True),
        ("wildcard", "a*b*c", "axxbyyc", True),
        ("wildcard", "a*b*c", "axxcyyb", False),
        ("wildcard", "ab*ba", "aba", False),  # pieces may not overlap
        ("wildcard", "a.b", "axb", False),  # no regex meaning
        ("cidr", "10.20.0.0/16", "10.20.3.4", True),
        ("cidr", "10.20.0.0/16", "10.21.0.1", False),
        ("cidr", "10.20.0.0/16", "::ffff:10.20.0.9", True),  # IPv4-mapped IPv6
        ("cidr", "10.20.0.5", "10.20.0.5", True),  # a bare address is one host
        ("cidr", "2001:db8::/32", "2001:DB8::1", True),
        ("cidr", "2001:db8::/32", "10.20.0.1", False),
        ("cidr", "10.20.0.0/16", "not-an-ip", False),
        ("in", ("alice", "Bob"), "BOB", True),
        ("in", ("alice", "bob"), "carol", False),
    ],
    ids=["equals", "equals-case", "equals-other", "equals-int", "equals-bool", "wildcard-star", "wildcard-miss",
         "wildcard-question", "wildcard-question-short", "wildcard-all-empty", "wildcard-stars",
         "wildcard-order", "wildcard-overlap", "wildcard-literal-dot", "cidr-v4", "cidr-v4-miss", "cidr-mapped",
         "cidr-host", "cidr-v6", "cidr-v6-vs-v4", "cidr-not-ip", "in", "in-miss"],
)
def test_operators(operator: str, pattern: Any, value: Any, expected: bool) -> None:
    assert allows(entry("f", pattern, operator=operator), value) is expected


def test_wildcard_does_not_backtrack() -> None:
    item = entry("cmd", "*a*a*a*a*a*a*a*a*b*", operator="wildcard")  # as a regex: O(n^9) on a miss
    started = time.perf_counter()
    assert not allows(item, "a" * 20_000)
    assert time.perf_counter() - started < 1.0


def test_list_field_values_match_when_any_element_does() -> None:
    item = entry("source.ip", "192.0.2.0/24", operator="cidr")
    assert allows(item, ["203.0.113.1", "192.0.2.7"])
    assert allows(item, [["nested", "192.0.2.8"]])
    assert not allows(item, ["203.0.113.1", None, {"ip": "192.0.2.7"}])
    assert not allows(item, None)


# -- time, revocation, rules


def test_expiry_is_exclusive() -> None:
    item = entry(expires_ms=T0 + HOUR)
    assert item.active(T0 + HOUR - 1)
    assert allows(item, "svc_backup", T0 + HOUR - 1)
    assert not allows(item, "svc_backup", T0 + HOUR)
    assert allows(entry(), "svc_backup", T0 + 10_000 * HOUR)  # no expiry: never


def test_revoked_entries_are_kept_but_never_match(make_alert: MakeAlert) -> None:
    live = entry(value="svc_a")
    revoked, _ = revoke_entry(entry(value="svc_b"), "bob", T0 + 1, "no longer needed")
    allowlist = Allowlist((live, revoked))
    assert len(allowlist) == 2
    assert allowlist.get(revoked.id) == revoked
    assert allowlist.match(make_alert(matched={"user.name": "svc_a"}), None, T0) == live
    assert allowlist.match(make_alert(matched={"user.name": "svc_b"}), None, T0) is None
    assert allowlist.match(make_alert(matched={"user.name": "svc_b"}), None, T0 - 10) is None


def test_star_rule_matches_every_rule_after_the_rules_own(make_alert: MakeAlert) -> None:
    own = entry("host.name", "ws01")
    every = entry("host.name", "ws01", rule="*")
    other = entry("host.name", "ws01", rule="r2")
    allowlist = Allowlist((every, own, other))
    assert allowlist.match(make_alert("r1"), None, T0) == own
    assert allowlist.match_all(make_alert("r1"), None, T0) == (own, every)
    assert allowlist.match_all(make_alert("r9"), None, T0) == (every,)
    assert allowlist.match(make_alert("r9", host="ws02"), None, T0) is None


def test_entries_of_other_rules_and_inactive_entries_are_not_consulted(make_alert: MakeAlert) -> None:
    asked: list[str] = []

    def getter(name: str) -> Any:
        asked.append(name)
        return None

    allowlist = Allowlist((
        entry("only.r2", "x", rule="r2"),
        entry("expired", "x", expires_ms=T0 + 1),
        entry("Image", "x"),
        entry("any.rule", "x", rule="*"),
    ))
    assert allowlist.match(make_alert("r1"), getter, T0 + 5) is None
    assert asked == ["Image", "any.rule"]


def test_field_lookup_alert_first_then_event_native_and_ecs(make_alert: MakeAlert) -> None:
    native = {"Image": r"C:\Tools\backup.exe", "EventID": 1}
    event = Event("e1", T0, "{}", origin=EventOrigin(), fields=native, ecs_factory=lambda: (
        {"process": {"executable": r"C:\Tools\backup.exe"}}, {"process.executable": r"C:\Tools\backup.exe"}))
    by_ecs = entry("process.executable", r"c:\tools\*.exe", operator="wildcard")
    by_native = entry("Image", r"C:\TOOLS\BACKUP.EXE")
    by_event_id = entry("EventID", "1")
    alert = make_alert()
    for item in (by_ecs, by_native, by_event_id):
        allowlist = Allowlist((item,))
        assert allowlist.match(alert, None, T0) is None, item.field
        assert allowlist.match(alert, event.get, T0) == item, item.field
    # a value on the alert wins over the event's
    shadowed = make_alert(extra={"process": {"executable": r"D:\other.exe"}})
    assert Allowlist((by_ecs,)).match(shadowed, event.get, T0) is None
    # the alert's own fields: host_name, extra (flat and nested), matched
    assert Allowlist((entry("host.name", "WS01"),)).match(alert, None, T0) is not None
    assert Allowlist((entry("user.name", "bob"),)).match(make_alert(extra={"user": {"name": "bob"}}), None, T0)
    assert Allowlist((entry("user.name", "bob"),)).match(make_alert(extra={"user.name": "bob"}), None, T0)


def test_duplicate_ids_are_refused() -> None:
    item = entry()
    with pytest.raises(AllowlistError, match=rf"^duplicate allowlist entry id '{item.id}'$"):
        Allowlist((item, entry()))


def test_hits_are_counted_outside_the_entries(make_alert: MakeAlert) -> None:
    item = entry("host.name", "ws01")
    allowlist = Allowlist((item,))
    hits = AllowlistHits()
    for at in (T0 + 5, T0 + 2):
        found = allowlist.match(make_alert(), None, at)
        assert found is not None
        hits.record(found, at)
    assert hits.count(item.id) == 2
    assert hits.count("nope") == 0
    assert hits.to_dict() == {item.id: {"hits": 2, "last_hit_ms": T0 + 5}}


# -- entries as data


def test_entry_round_trip_and_deterministic_id() -> None:
    item = entry("source.ip", "10.0.0.0/8", operator="cidr", expires_ms=T0 + HOUR)
    assert item.id.startswith("allow-")
    assert len(item.id) == 22
    assert entry("source.ip", "10.0.0.0/8", operator="cidr", expires_ms=T0 + HOUR).id == item.id
    assert entry("source.ip", "10.0.0.0/8", operator="cidr", expires_ms=T0 + 2 * HOUR).id != item.id
    assert AllowlistEntry.from_dict(item.to_dict()) == item
    listed = entry("user.name", ["a", "b"], operator="in", id="my-id", version=3)
    assert listed.value == ("a", "b")
    assert listed.to_dict() == {
        "id": "my-id", "rule": "r1", "field": "user.name", "operator": "in", "value": ["a", "b"],
        "expires_ms": None, "author": "alice", "reason": "expected", "created_ms": T0, "revoked_ms": None,
        "version": 3,
    }
    assert AllowlistEntry.from_dict(listed.to_dict()) == listed


def test_from_dict_times_and_defaults() -> None:
    parsed = AllowlistEntry.from_dict({"rule": "*", "field": "Image", "value": "x", "author": "a", "reason": "r",
                                       "created_ms": "2026-01-01T00:00:00Z", "expires_ms": "2026-01-02"})
    assert (parsed.created_ms, parsed.expires_ms) == (T0, T0 + 24 * HOUR)
    assert (parsed.operator, parsed.version, parsed.revoked_ms) == (AllowOperator.EQUALS, 1, None)
    assert AllowlistEntry.from_dict({**parsed.to_dict(), "created_ms": None}).created_ms == 0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rule": ""}, "rule: must be a non-empty string, not ''"),
        ({"rule": "r 1"}, "rule: must be a rule id or '*' without spaces, not 'r 1'"),
        ({"field": "user..name"}, "field: must be a flat field name (source.ip, Image), not 'user..name'"),
        ({"field": "user name"}, "field: must be a flat field name (source.ip, Image), not 'user name'"),
        ({"operator": "regex"}, "operator: unknown operator 'regex' (expected equals, wildcard, cidr, in)"),
        ({"value": ""}, "value: must not be empty"),
        ({"value": ["a", "b"]}, "value: must be a single value for operator equals, not ['a', 'b'] "
                                "(use operator: in for a list)"),
        ({"value": None}, "value: missing"),
        ({"operator": "in", "value": "a"}, "value: must be a non-empty list for operator in, not 'a'"),
        ({"operator": "in", "value": []}, "value: must be a non-empty list for operator in, not []"),
        ({"operator": "in", "value": ["a", ""]}, "value: must be a list of non-empty values, not ['a', '']"),
        ({"operator": "cidr", "value": "10.0.0.1/8"}, "value: '10.0.0.1/8' has host bits set (did you mean "
                                                      "10.0.0.0/8?)"),
        ({"operator": "cidr", "value": "10.0.0/8x"}, "value: '10.0.0/8x' is not an IPv4 or IPv6 network"),
        ({"author": " "}, "author: must be a non-empty string, not ' '"),
        ({"reason": ""}, "reason: must be a non-empty string, not ''"),
        ({"expires_ms": T0}, "expires_ms: must be after created_ms (2026-01-01T00:00:00.000Z), not "
                             "2026-01-01T00:00:00.000Z"),
        ({"expires_ms": "tomorrow"}, "expires_ms: must be epoch milliseconds or an ISO 8601 time, not 'tomorrow'"),
        ({"revoked_ms": T0 - 1}, "revoked_ms: must not be before created_ms (2026-01-01T00:00:00.000Z), not "
                                 "2025-12-31T23:59:59.999Z"),
        ({"created_ms": -1}, "created_ms: must not be negative, not -1"),
        ({"version": 0}, "version: must be a whole number >= 1, not 0"),
        ({"id": "a b"}, "id: must be a string without spaces, not 'a b'"),
        ({"hits": 3}, "hits: unknown key (expected one of id, rule, field, operator, value, expires_ms, author, "
                      "reason, created_ms, revoked_ms, version)"),
    ],
    ids=["rule-empty", "rule-space", "field-dots", "field-space", "operator", "value-empty", "value-list",
         "value-missing", "in-str", "in-empty", "in-blank", "cidr-host-bits", "cidr-bad", "author", "reason",
         "expires-before", "expires-text", "revoked-before", "created-negative", "version", "id", "unknown-key"],
)
def test_bad_entries(change: dict[str, Any], message: str) -> None:
    data = {"rule": "r1", "field": "user.name", "value": "x", "author": "alice", "reason": "why",
            "created_ms": T0, **change}
    with pytest.raises(AllowlistEntryError) as info:
        AllowlistEntry.from_dict(data)
    assert str(info.value) == f"allowlist entry: {message}"


# -- changes and audit records


def test_add_entry_and_its_audit_record() -> None:
    item, record = add_entry(rule="*", field="source.ip", value="10.20.0.0/16", operator="cidr", author="alice",
                             reason="internal scanner", at_ms=T0, expires_ms=T0 + HOUR)
    assert (item.version, item.created_ms, item.author) == (1, T0, "alice")
    assert record == {
        "id": record["id"],
        "at_ms": T0,
        "actor": "alice",
        "action": "add",
        "subject": {"kind": "allowlist", "id": item.id},
        "summary": "allow every rule when source.ip cidr '10.20.0.0/16', expires 2026-01-01T01:00:00.000Z",
        "before": {},
        "after": {"rule": "*", "field": "source.ip", "operator": "cidr", "value": "10.20.0.0/16",
                  "expires_ms": T0 + HOUR, "author": "alice", "reason": "internal scanner", "created_ms": T0,
                  "revoked_ms": None},
        "reason": "internal scanner",
        "seq": 1,
    }
    assert len(record["id"]) == 24
    again, record_again = add_entry(rule="*", field="source.ip", value="10.20.0.0/16", operator="cidr",
                                    author="alice", reason="internal scanner", at_ms=T0, expires_ms=T0 + HOUR)
    assert (again, record_again) == (item, record)
    listed, _ = add_entry(rule="r1", field="user.name", value=iter(["a", "b"]), operator="in", author="a",
                          reason="r", at_ms=T0, entry_id="given")
    assert (listed.id, listed.value) == ("given", ("a", "b"))


def test_revoke_and_extend_bump_the_version_and_keep_the_id() -> None:
    item, _ = add_entry(rule="r1", field="user.name", value="svc", author="alice", reason="r", at_ms=T0)
    extended, extend_record = extend_entry(item, T0 + 2 * HOUR, "bob", T0 + HOUR, "still needed")
    assert (extended.id, extended.version, extended.expires_ms) == (item.id, 2, T0 + 2 * HOUR)
    assert extend_record["seq"] == 2
    assert extend_record["action"] == "extend"
    assert (extend_record["before"], extend_record["after"]) == ({"expires_ms": None},
                                                                 {"expires_ms": T0 + 2 * HOUR})
    assert extend_record["summary"] == (f"change the expiry of allowlist entry {item.id} from never to "
                                        "2026-01-01T02:00:00.000Z")
    forever, _ = extend_entry(extended, None, "bob", T0 + HOUR, "permanent")
    assert (forever.version, forever.expires_ms) == (3, None)

    revoked, revoke_record = revoke_entry(forever, "carol", T0 + 3 * HOUR, "service retired")
    assert (revoked.id, revoked.version, revoked.revoked_ms) == (item.id, 4, T0 + 3 * HOUR)
    assert {k: v for k, v in revoke_record.items() if k != "id"} == {
        "at_ms": T0 + 3 * HOUR, "actor": "carol", "action": "revoke",
        "subject": {"kind": "allowlist", "id": item.id},
        "summary": f"revoke allowlist entry {item.id} (rule r1 when user.name equals 'svc')",
        "before": {"revoked_ms": None}, "after": {"revoked_ms": T0 + 3 * HOUR}, "reason": "service retired",
        "seq": 4,
    }
    assert revoke_entry(forever, "carol", T0 + 3 * HOUR, "service retired")[1] == revoke_record
    assert revoke_entry(forever, "carol", T0 + 3 * HOUR, "other reason")[1]["id"] != revoke_record["id"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda e: revoke_entry(revoke_entry(e, "b", T0 + 1, "x")[0], "b", T0 + 2, "x"),
         "revoke: already revoked at 2026-01-01T00:00:00.001Z"),
        (lambda e: extend_entry(revoke_entry(e, "b", T0 + 1, "x")[0], None, "b", T0 + 2, "x"),
         "extend: already revoked at 2026-01-01T00:00:00.001Z"),
        (lambda e: extend_entry(e, T0 + HOUR, "b", T0 + 2, "x"),
         "extend: already expires 2026-01-01T01:00:00.000Z"),
        (lambda e: extend_entry(e, T0 + 5, "b", T0 + 5, "x"),
         "extend: new expiry 2026-01-01T00:00:00.005Z is not after 2026-01-01T00:00:00.005Z"),
        (lambda e: extend_entry(e, "2h", "b", T0 + 5, "x"),  # type: ignore[arg-type]
         "extend: expires_ms must be epoch milliseconds, not '2h'"),
        (lambda e: revoke_entry(e, "b", T0 + 1, " "), "revoke: reason must be a non-empty string, not ' '"),
        (lambda e: revoke_entry(e, "", T0 + 1, "x"), "revoke: actor must be a non-empty string, not ''"),
        (lambda e: revoke_entry(e, "b", T0 - 1, "x"),
         "revoke: at 2025-12-31T23:59:59.999Z is before the entry was created (2026-01-01T00:00:00.000Z)"),
    ],
    ids=["revoke-twice", "extend-revoked", "extend-same", "extend-past", "extend-type", "no-reason", "no-actor",
         "before-created"],
)
def test_bad_changes(change: Callable[[AllowlistEntry], Any], message: str) -> None:
    item = entry(expires_ms=T0 + HOUR)
    with pytest.raises(AllowlistChangeError) as info:
        change(item)
    assert str(info.value) == f"allowlist entry {item.id}: {message}"


def test_add_entry_validates() -> None:
    with pytest.raises(AllowlistEntryError, match=r"^allowlist entry: reason: must be a non-empty string, not ''$"):
        add_entry(rule="r1", field="user.name", value="x", author="a", reason="", at_ms=T0)
    with pytest.raises(AllowlistEntryError, match=r"^allowlist entry: operator: unknown operator 'like'"):
        add_entry(rule="r1", field="user.name", value="x", author="a", reason="r", at_ms=T0, operator="like")


# -- YAML files

GOOD = """\
entries:
  - rule: "*"
    field: source.ip
    operator: cidr
    value: 10.20.0.0/16
    author: alice
    reason: internal vulnerability scanner
    created_ms: 2026-01-01T00:00:00Z
    expires_ms: 2026-04-01T00:00:00Z
  - id: backup-job
    rule: r1
    field: user.name
    operator: in
    value: [svc_backup, svc_veeam]
    author: bob
    reason: nightly backup
"""


def test_load_allowlist_file(tmp_path: Path, make_alert: MakeAlert) -> None:
    path = tmp_path / "allowlist.yml"
    path.write_text(GOOD, encoding="utf-8")
    allowlist = load_allowlist_file(path)
    assert allowlist.errors == ()
    assert allowlist.source == str(path)
    assert [e.id for e in allowlist.entries][1] == "backup-job"
    scanner = allowlist.entries[0]
    assert (scanner.created_ms, scanner.expires_ms) == (T0, 1_775_001_600_000)
    assert allowlist.match(make_alert("r7", matched={"source.ip": "10.20.1.1"}), None, T0) == scanner
    assert allowlist.match(make_alert("r1", matched={"user.name": "SVC_VEEAM"}), None, T0) == allowlist.entries[1]


BAD = """\
entries:
  - rule: r1
    field: user.name
    value: svc
    author: alice
    reason: ok
  - rule: r1
    field: source.ip
    operator: cidr
    value: 10.0.0.1/8
    author: alice
    reason: scanner
  - rule: r1
    field: user.name
    value: x
    author: alice
  - just a string
  - rule: r1
    field: user.name
    value: svc
    author: alice
    reason: ok
  - rule: r2
    feild: user.name
"""


def test_yaml_errors_are_collected_with_lines() -> None:
    allowlist = parse_allowlist_yaml(BAD, source="exceptions.yml")
    assert len(allowlist.entries) == 1
    assert [str(e) for e in allowlist.errors] == [
        "exceptions.yml:10: entries[1].value: '10.0.0.1/8' has host bits set (did you mean 10.0.0.0/8?)",
        "exceptions.yml:13: entries[2].reason: missing",
        "exceptions.yml: entries[3]: must be a mapping, not 'just a string'",
        f"exceptions.yml:18: entries[4].id: duplicate entry id '{allowlist.entries[0].id}' (first at line 2)",
        "exceptions.yml:24: entries[5].feild: unknown key (expected one of id, rule, field, operator, value, "
        "expires_ms, author, reason, created_ms, revoked_ms, version)",
    ]
    assert all(isinstance(e, AllowlistFileError) for e in allowlist.errors)
    assert allowlist.errors[0].to_dict() == {"path": "exceptions.yml", "reason": "'10.0.0.1/8' has host bits set "
                                             "(did you mean 10.0.0.0/8?)", "line": 10, "key": "entries[1].value"}
    with pytest.raises(AllowlistFileError, match=r"^exceptions.yml:10: entries\[1\].value: "):
        parse_allowlist_yaml(BAD, source="exceptions.yml", strict=True)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("entries:\n  - rule: r1\n    rule: r2\n", "a.yml:3: invalid YAML: duplicate key 'rule'"),
        ("entries: [\n", "a.yml:2: invalid YAML: expected the node content, but found '<stream end>'"),
        ("- rule: r1\n", "a.yml:1: an allowlist file must be a mapping with 'entries'"),
        ("entries: []\nitems: []\n", "a.yml:2: items: unknown key (expected entries)"),
        ("entries: {rule: r1}\n", "a.yml:1: entries: must be a list of entries"),
    ],
    ids=["duplicate-key", "syntax", "top-list", "top-unknown", "entries-mapping"],
)
def test_yaml_file_errors(text: str, message: str) -> None:
    allowlist = parse_allowlist_yaml(text, source="a.yml")
    assert (allowlist.entries, [str(e) for e in allowlist.errors]) == ((), [message])


def test_empty_and_unreadable_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yml"
    empty.write_text("", encoding="utf-8")
    assert load_allowlist_file(empty) == Allowlist(source=str(empty))
    assert parse_allowlist_yaml("entries:\n").entries == ()
    missing = tmp_path / "missing.yml"
    assert [str(e) for e in load_allowlist_file(missing).errors] == [f"{missing}: cannot read: No such file or "
                                                                     "directory"]
    with pytest.raises(AllowlistFileError, match="cannot read"):
        load_allowlist_file(missing, strict=True)
    binary = tmp_path / "binary.yml"
    binary.write_bytes(b"entries: \xff\n")
    assert [str(e) for e in load_allowlist_file(binary).errors] == [f"{binary}: not UTF-8 (byte 9)"]
