"""Log-source routing: Windows pipelines (Sysmon, Security 4688, channels), non-Windows log sources from ECS
fields, and events whose source is unknown."""

from __future__ import annotations

import logging

from tests.correlator.sigma.conftest import SYSMON, make_event, proc, rule, win_event

PROC_RULE = rule("""
sel:
  Image|endswith: '\\\\net.exe'
  CommandLine|contains: ' user '
  ParentImage|endswith: '\\\\cmd.exe'
condition: sel
""", title="net user")


def test_process_creation_matches_sysmon_1_and_security_4688(load):
    loaded = load(PROC_RULE)
    sysmon = proc("net user backdoor /add", image="C:\\Windows\\System32\\net.exe",
                  ParentImage="C:\\Windows\\System32\\cmd.exe")
    security = win_event(4688, "Security", NewProcessName="C:\\Windows\\System32\\net.exe",
                         CommandLine="net user backdoor /add", ParentProcessName="C:\\Windows\\System32\\cmd.exe")
    assert loaded.titles(sysmon) == {"net user"}
    assert loaded.titles(security) == {"net user"}
    variants = loaded.ruleset.rules[0].variants
    assert {v.profile for v in variants} == {"sysmon", "security-audit"}
    assert {r for v in variants for r in v.routes} == {
        ("win", SYSMON.lower(), 1), ("win", "security", 4688)
    }


def test_routing_is_exact_for_channel_and_event_id(load):
    loaded = load(PROC_RULE)
    fields = {"Image": "C:\\net.exe", "CommandLine": "net user x", "ParentImage": "C:\\cmd.exe"}
    assert loaded.hits(win_event(1, **fields))
    assert not loaded.hits(win_event(3, **fields))  # network connection, same channel
    assert not loaded.hits(win_event(1, "Security", **fields))  # Security channel, wrong id


def test_field_missing_from_4688_is_reported_not_silent(load):
    loaded = load(rule("sel:\n  OriginalFileName: 'net.exe'\ncondition: sel", title="ofn"))
    compiled = loaded.ruleset.rules[0]
    assert [v.profile for v in compiled.variants] == ["sysmon"]
    assert any("cannot match security/4688" in n and "OriginalFileName" in n for n in compiled.notes)
    assert loaded.ruleset.notes  # surfaced per file
    assert loaded.hits(proc("x", OriginalFileName="net.exe"))
    assert not loaded.hits(win_event(4688, "Security", OriginalFileName="net.exe"))


def test_security_service_rule_routes_by_event_id(load):
    loaded = load(rule("sel:\n  EventID: 4625\n  TargetUserName: 'admin'\ncondition: sel",
                       logsource="product: windows\n  service: security"))
    assert loaded.hits(win_event(4625, "Security", TargetUserName="Admin"))
    assert not loaded.hits(win_event(4624, "Security", TargetUserName="Admin"))
    assert not loaded.hits(win_event(4625, "System", TargetUserName="Admin"))
    (variant,) = loaded.ruleset.rules[0].variants
    assert variant.routes == (("win", "security", 4625),)


def test_event_ids_in_every_branch_route_and_still_test(load):
    loaded = load(rule("""
        a:
          EventID: 4720
          TargetUserName|endswith: '$'
        b:
          EventID: 4781
          NewTargetUserName|endswith: '$'
        condition: a or b
    """, logsource="product: windows\n  service: security"))
    (variant,) = loaded.ruleset.rules[0].variants
    assert sorted(variant.routes) == [("win", "security", 4720), ("win", "security", 4781)]
    assert loaded.hits(win_event(4720, "Security", TargetUserName="evil$"))
    assert not loaded.hits(win_event(4781, "Security", TargetUserName="evil$"))
    assert loaded.hits(win_event(4781, "Security", NewTargetUserName="evil$"))


def test_powershell_script_category(load):
    loaded = load(rule("sel:\n  ScriptBlockText|contains: 'Invoke-Mimikatz'\ncondition: sel",
                       logsource="category: ps_script\n  product: windows"))
    assert loaded.hits(win_event(4104, "Microsoft-Windows-PowerShell/Operational",
                                 ScriptBlockText="Invoke-Mimikatz -DumpCreds"))
    assert not loaded.hits(win_event(4103, "Microsoft-Windows-PowerShell/Operational",
                                     ScriptBlockText="Invoke-Mimikatz"))


def test_linux_auth_rule_routes_from_ecs_dataset(load):
    loaded = load(rule("sel:\n  process.name: 'sshd'\n  message|contains: 'Failed password'\ncondition: sel",
                       logsource="product: linux\n  service: auth"))
    nested = make_event({}, nested={"event": {"dataset": "system.auth"}, "process": {"name": "sshd"},
                                    "message": "Failed password for root"})
    dotted = make_event({"event.dataset": "system.auth", "process.name": "sshd",
                         "message": "Failed password for root"})
    other = make_event({}, nested={"event": {"dataset": "apache.access"}, "process": {"name": "sshd"},
                                   "message": "Failed password for root"})
    assert loaded.hits(nested)
    assert loaded.hits(dotted)
    assert not loaded.hits(other)


def test_category_rule_without_product_matches_any_product(load):
    loaded = load(rule("sel:\n  url.original|contains: '../../'\ncondition: sel", logsource="category: webserver"))
    ev = make_event({}, nested={"event": {"dataset": "nginx.access"}, "url": {"original": "/a/../../etc/passwd"}})
    assert loaded.hits(ev)


def test_unknown_source_uses_rules_whose_fields_it_carries(load, caplog):
    loaded = load(
        rule("sel:\n  CommandLine|contains: 'mimikatz'\ncondition: sel", title="needs CommandLine"),
        rule("sel:\n  src_ip|cidr: '10.0.0.0/8'\ncondition: not sel", title="not-only rule",
             logsource="product: zeek\n  service: rdp"),
        rule("keywords:\n  - 'mimikatz'\ncondition: keywords", title="keyword", logsource="product: linux"),
    )
    with caplog.at_level(logging.WARNING):
        first = make_event({"CommandLine": "run mimikatz", "tool": "x"})
        second = make_event({"CommandLine": "run mimikatz again", "tool": "y"})
        assert loaded.titles(first) == {"needs CommandLine", "keyword"}
        assert loaded.titles(second) == {"needs CommandLine", "keyword"}
    unknown = [r for r in caplog.records if "unknown log source" in r.getMessage()]
    assert len(unknown) == 1  # reported once
    assert loaded.engine.stats.unknown_sources == {"test:-/-/-": 2}
    assert loaded.titles(make_event({"src_ip": "8.8.8.8"})) == {"not-only rule"}


def test_unmapped_windows_service_routes_by_the_event_ids_its_detection_names(load):
    """A Windows service no pipeline maps to a channel is met by every Windows event — of the EventIDs every
    match must have, when the detection names them: events of other EventIDs never evaluate it (it has no
    literal, so it would be evaluated for every one)."""
    loaded = load(rule("sel:\n  EventID: [30803, 30804]\nfilter:\n  ServerAddress|cidr: '10.0.0.0/8'\n"
                       "condition: sel and not filter", title="smb", logsource="product: windows\n"
                       "  service: smbclient-connectivity"))
    compiled = loaded.ruleset.rules[0]
    (variant,) = compiled.variants
    assert variant.routes == (("win", None, 30803), ("win", None, 30804))
    assert compiled.notes == ("log source not mapped to a Windows channel: evaluated against every Windows event "
                              "with EventID 30803, 30804",)
    channel = "Microsoft-Windows-SmbClient/Connectivity"
    assert loaded.hits(win_event(30803, channel, ServerAddress="203.0.113.9"))
    assert loaded.hits(win_event(30804, "Anything", ServerAddress="203.0.113.9"))
    assert not loaded.hits(win_event(30803, channel, ServerAddress="10.1.2.3"))
    assert not loaded.hits(win_event(4624, "Security", ServerAddress="203.0.113.9"))
    assert not loaded.engine._bucket(win_event(4624, "Security", ServerAddress="203.0.113.9")).runners
    assert len(loaded.engine._bucket(win_event(30804, "Anything")).runners) == 1


def test_log_source_fields_repeated_or_malformed(load):
    """Routing looks the log-source fields up as they are (lists included) before case-folding them: the same
    keys for the same values, whatever their case; an object where a name belongs is looked up by its text (no
    source has such a name) and is not an error."""
    loaded = load(rule("sel:\n  message|contains: 'Failed password'\ncondition: sel",
                       logsource="product: linux\n  service: auth"))
    for dataset in ("system.auth", "SYSTEM.AUTH", "system.auth"):
        ev = make_event({"event.dataset": dataset, "event.category": ["authentication"],
                         "message": "Failed password for root"})
        assert loaded.hits(ev), dataset
    odd = make_event({"event.dataset": {"name": "system.auth"}, "message": "Failed password for root"})
    assert loaded.engine.route(odd) is None
    assert loaded.hits(odd)  # evaluated as an unknown source, against the rules whose fields it carries
    mixed = make_event({"event.dataset": "system.auth", "event.category": ["authentication", {"kind": "x"}],
                        "message": "Failed password for root"})
    assert loaded.engine.route(mixed) == loaded.engine.route(make_event({"event.dataset": "system.auth"}))
    assert loaded.hits(mixed)
