"""Sigma value modifiers and value semantics, one rule per case, written inline."""

from __future__ import annotations

import base64
import time

import pytest

from tests.correlator.sigma.conftest import make_event, proc, rule, win_event


@pytest.mark.parametrize(
    ("body", "command_line", "expected"),
    [
        ("CommandLine: 'whoami /all'", "WHOAMI /ALL", True),
        ("CommandLine: 'whoami /all'", "whoami /all x", False),
        ("CommandLine|contains: 'mimikatz'", "run MimiKatz.exe now", True),
        ("CommandLine|startswith: 'net '", "NET user", True),
        ("CommandLine|startswith: 'net '", "xnet user", False),
        ("CommandLine|endswith: '.ps1'", "run x.PS1", True),
        ("CommandLine|endswith: '.ps1'", "x.ps1 ", False),
        ("CommandLine|cased: 'Invoke-Mimikatz'", "Invoke-Mimikatz", True),
        ("CommandLine|cased: 'Invoke-Mimikatz'", "invoke-mimikatz", False),
        ("CommandLine|contains|cased: 'ABC'", "xxABCxx", True),
        ("CommandLine|contains|cased: 'ABC'", "xxabcxx", False),
        ("CommandLine: 'a*c'", "abbbc", True),
        ("CommandLine: 'a?c'", "abc", True),
        ("CommandLine: 'a?c'", "abbc", False),
        ("CommandLine: 'a\\*c'", "a*c", True),
        ("CommandLine: 'a\\*c'", "abc", False),
        ("CommandLine: 'a\\?c'", "a?c", True),
        ("CommandLine: 'a\\?c'", "abc", False),
        ("CommandLine: 'C:\\\\temp\\\\*'", "c:\\temp\\x.exe", True),
        ("CommandLine: 'end\\\\'", "end\\", True),
        ("CommandLine: '*'", "", True),
        ("CommandLine: ''", "", True),
        ("CommandLine: ''", "x", False),
        ('CommandLine|contains: "multi\\nline"', "has multi\nline in it", True),
    ],
    ids=lambda v: repr(v)[:40] if isinstance(v, str) else str(v),
)
def test_string_matching(load, body, command_line, expected):
    loaded = load(rule(f"sel:\n  {body}\ncondition: sel"))
    assert not loaded.ruleset.errors, loaded.ruleset.errors
    assert loaded.hits(proc(command_line)) is expected


def test_wildcard_glob_spans_newlines(load):
    loaded = load(rule("sel:\n  CommandLine: 'first*last'\ncondition: sel"))
    assert loaded.hits(proc("first\nmiddle\nlast"))


def test_value_list_is_or_and_map_is_and(load):
    loaded = load(rule("""
        sel:
          Image|endswith: ['\\\\cmd.exe', '\\\\powershell.exe']
          CommandLine|contains: 'whoami'
        condition: sel
    """))
    assert loaded.hits(proc("cmd /c whoami", image="C:\\Windows\\System32\\cmd.exe"))
    assert loaded.hits(proc("whoami", image="C:\\x\\PowerShell.exe"))
    assert not loaded.hits(proc("whoami", image="C:\\x\\bash.exe"))
    assert not loaded.hits(proc("dir", image="C:\\x\\cmd.exe"))


def test_all_modifier_requires_every_value(load):
    loaded = load(rule("sel:\n  CommandLine|contains|all: ['-nop', '-enc']\ncondition: sel"))
    assert loaded.hits(proc("powershell -nop -w hidden -enc AAAA"))
    assert not loaded.hits(proc("powershell -nop"))


def test_list_of_maps_is_or(load):
    loaded = load(rule("""
        sel:
          - CommandLine|contains: 'alpha'
          - Image|endswith: '\\\\beta.exe'
        condition: sel
    """))
    assert loaded.hits(proc("alpha"))
    assert loaded.hits(proc("x", image="c:\\beta.exe"))
    assert not loaded.hits(proc("x"))


def test_many_contains_values_use_the_long_list_path(load):
    needles = [f"tool{i:03d}" for i in range(40)]
    body = "sel:\n  CommandLine|contains:\n" + "".join(f"    - '{n}'\n" for n in needles) + "condition: sel"
    loaded = load(rule(body))
    assert loaded.hits(proc("run TOOL039 now"))
    assert loaded.hits(proc("tool000"))
    assert not loaded.hits(proc("tool04"))


def test_null_matches_missing_or_empty(load):
    loaded = load(rule("sel:\n  CommandLine|contains: 'x'\n  ParentImage: null\ncondition: sel"))
    assert loaded.hits(proc("x"))
    assert loaded.hits(proc("x", ParentImage=""))
    assert not loaded.hits(proc("x", ParentImage="c:\\p.exe"))


def test_not_null(load):
    loaded = load(rule("sel:\n  ParentImage: null\nfilter:\n  Image: 'nothing'\ncondition: not sel and not filter"))
    assert loaded.hits(proc("x", ParentImage="c:\\p.exe"))
    assert not loaded.hits(proc("x"))


@pytest.mark.parametrize(
    ("value", "expected"),
    [("-enc", True), ("/enc", True), ("–enc", True), ("—enc", True), ("―enc", True), ("enc", False)],
    ids=["dash", "slash", "en-dash", "em-dash", "horizontal-bar", "bare"],
)
def test_windash(load, value, expected):
    loaded = load(rule("sel:\n  CommandLine|windash|contains: ' -enc '\ncondition: sel"))
    assert loaded.hits(proc(f"powershell {value} AAAA")) is expected


def test_base64(load):
    loaded = load(rule("sel:\n  CommandLine|base64|contains: 'http://'\ncondition: sel"))
    encoded = base64.b64encode(b"http://").decode()
    assert loaded.hits(proc(f"x {encoded} y"))
    assert not loaded.hits(proc("http://"))


@pytest.mark.parametrize("prefix", [b"", b"a", b"ab", b"abc"], ids=["offset0", "offset1", "offset2", "offset3"])
def test_base64offset_every_alignment(load, prefix):
    loaded = load(rule("sel:\n  CommandLine|base64offset|contains: 'http://evil'\ncondition: sel"))
    encoded = base64.b64encode(prefix + b"http://evil.example/x").decode()
    assert loaded.hits(proc(f"powershell -e {encoded}"))


def test_base64offset_negative(load):
    loaded = load(rule("sel:\n  CommandLine|base64offset|contains: 'http://evil'\ncondition: sel"))
    assert not loaded.hits(proc("powershell -e " + base64.b64encode(b"https://good.example").decode()))


@pytest.mark.parametrize(
    ("modifier", "encoding"),
    [("utf16le", "utf-16-le"), ("wide", "utf-16-le"), ("utf16be", "utf-16-be")],
)
def test_utf16_base64offset(load, modifier, encoding):
    loaded = load(rule(f"sel:\n  CommandLine|{modifier}|base64offset|contains: 'IEX'\ncondition: sel"))
    for prefix in ("", "x", "xy"):
        payload = base64.b64encode(f"{prefix}IEX (New-Object Net.WebClient)".encode(encoding)).decode()
        assert loaded.hits(proc(f"powershell -enc {payload}")), prefix


def test_utf16_with_bom(load):
    loaded = load(rule("sel:\n  CommandLine|utf16|base64offset|contains: 'IEX'\ncondition: sel"))
    payload = base64.b64encode("IEX (x)".encode("utf-16")).decode()  # BOM + little endian
    assert loaded.hits(proc(f"powershell -enc {payload}"))


@pytest.mark.parametrize(
    ("body", "value", "expected"),
    [
        ("CommandLine|re: 'fo+bar'", "xxfooobarxx", True),
        ("CommandLine|re: 'fo+bar'", "FOOBAR", False),
        ("CommandLine|re|i: 'fo+bar'", "FOOBAR", True),
        ("CommandLine|re: '^abc$'", "x\nabc\ny", False),
        ("CommandLine|re|m: '^abc$'", "x\nabc\ny", True),
        ("CommandLine|re: 'a.b'", "a\nb", False),
        ("CommandLine|re|s: 'a.b'", "a\nb", True),
        ("CommandLine|re: '(?<!x)abc'", "yabc", True),
        ("CommandLine|re: '(?<!x)abc'", "xabc", False),
        ("CommandLine|re: '(a)\\1'", "xaax", True),
    ],
    ids=lambda v: repr(v)[:40] if isinstance(v, str) else str(v),
)
def test_regex(load, body, value, expected):
    loaded = load(rule(f"sel:\n  {body}\ncondition: sel"))
    assert not loaded.ruleset.errors
    assert loaded.hits(proc(value)) is expected


def test_catastrophic_regex_does_not_hang(load):
    loaded = load(rule("sel:\n  CommandLine|re: '^(a+)+$'\ncondition: sel"))
    started = time.perf_counter()
    assert not loaded.hits(proc("a" * 5000 + "!"))
    assert time.perf_counter() - started < 2.0


def test_invalid_regex_is_a_load_error(load):
    loaded = load(rule("sel:\n  CommandLine|re: 'a(b'\ncondition: sel"))
    assert not loaded.ruleset.rules
    assert len(loaded.ruleset.errors) == 1
    assert "a(b" in loaded.ruleset.errors[0].reason


@pytest.mark.parametrize(
    ("cidr", "ip", "expected"),
    [
        ("10.0.0.0/8", "10.1.2.3", True),
        ("10.0.0.0/8", "11.1.2.3", False),
        ("192.168.1.0/24", "192.168.1.255", True),
        ("2001:db8::/32", "2001:db8:1::5", True),
        ("2001:db8::/32", "2001:db9::1", False),
        ("fe80::/10", "FE80::1", True),
        ("10.0.0.0/8", "::ffff:10.0.0.1", True),
        ("10.0.0.0/8", "not-an-ip", False),
    ],
)
def test_cidr(load, cidr, ip, expected):
    loaded = load(rule(f"sel:\n  DestinationIp|cidr: '{cidr}'\ncondition: sel",
                       logsource="category: network_connection\n  product: windows"))
    assert loaded.hits(win_event(3, DestinationIp=ip)) is expected


def test_exists(load):
    loaded = load(rule("sel:\n  ParentImage|exists: true\nfilter:\n  Hashes|exists: false\ncondition: sel and filter"))
    assert loaded.hits(proc("x", ParentImage="p"))
    assert not loaded.hits(proc("x", ParentImage="p", Hashes="MD5=1"))
    assert not loaded.hits(proc("x"))


def test_fieldref(load):
    loaded = load(rule("sel:\n  TargetUserName|fieldref: SubjectUserName\ncondition: sel",
                       logsource="product: windows\n  service: security"))
    sec = "Security"
    assert loaded.hits(win_event(4624, sec, TargetUserName="Bob", SubjectUserName="bob"))
    assert not loaded.hits(win_event(4624, sec, TargetUserName="Bob", SubjectUserName="alice"))
    assert not loaded.hits(win_event(4624, sec, TargetUserName="Bob"))


@pytest.mark.parametrize(
    ("modifier", "value", "expected"),
    [("lt", 5, True), ("lt", 10, False), ("lte", 10, True), ("gt", 10, False), ("gt", 11, True),
     ("gte", 10, True), ("gte", "12", True), ("gt", "n/a", False)],
)
def test_numeric_comparisons(load, modifier, value, expected):
    loaded = load(rule(f"sel:\n  LogonType|{modifier}: 10\ncondition: sel",
                       logsource="product: windows\n  service: security"))
    assert loaded.hits(win_event(4624, "Security", LogonType=value)) is expected


def test_number_equality_against_int_and_string(load):
    loaded = load(rule("sel:\n  LogonType: 3\ncondition: sel", logsource="product: windows\n  service: security"))
    assert loaded.hits(win_event(4624, "Security", LogonType=3))
    assert loaded.hits(win_event(4624, "Security", LogonType="3"))
    assert not loaded.hits(win_event(4624, "Security", LogonType=10))


def test_boolean_value(load):
    loaded = load(rule("sel:\n  Signed: false\ncondition: sel", logsource="category: image_load\n  product: windows"))
    assert loaded.hits(win_event(7, Signed="false"))
    assert loaded.hits(win_event(7, Signed=False))
    assert not loaded.hits(win_event(7, Signed="true"))


def test_expand_with_placeholders(load):
    text = rule("sel:\n  User|expand: '%admins%'\ncondition: sel")
    loaded = load(text, placeholders={"admins": ["CORP\\alice", "CORP\\bob"]})
    assert loaded.hits(proc("x", User="corp\\bob"))
    assert not loaded.hits(proc("x", User="corp\\eve"))


def test_expand_without_values_is_reported(load):
    loaded = load(rule("sel:\n  User|expand: '%admins%'\ncondition: sel"))
    assert not loaded.ruleset.rules
    assert "placeholder %admins% has no values" in loaded.ruleset.errors[0].reason


def test_keywords_search_every_field(load):
    loaded = load(rule("keywords:\n  - 'mimikatz'\n  - 'sekurlsa*'\ncondition: keywords",
                       logsource="product: linux\n  service: auth"))
    ev = make_event({"message": "user ran MIMIKATZ today"}, nested={"event": {"dataset": "system.auth"}})
    assert loaded.hits(ev)
    ev2 = make_event({"message": "sekurlsa::logonpasswords"}, nested={"event": {"dataset": "system.auth"}})
    assert loaded.hits(ev2)
    ev3 = make_event({"message": "nothing to see"}, nested={"event": {"dataset": "system.auth"}})
    assert not loaded.hits(ev3)


def test_keyword_list_all_linked_with_and(load):
    loaded = load(rule("keywords:\n  '|all':\n    - 'alpha'\n    - 'beta'\ncondition: keywords",
                       logsource="product: linux\n  service: auth"))
    base = {"event": {"dataset": "system.auth"}}
    assert loaded.hits(make_event({"message": "alpha and beta"}, nested=base))
    assert not loaded.hits(make_event({"message": "alpha only"}, nested=base))


def test_multi_valued_field_matches_any_item(load):
    loaded = load(rule("sel:\n  tags|contains: 'evil'\ncondition: sel", logsource="product: linux\n  service: auth"))
    base = {"event": {"dataset": "system.auth"}}
    assert loaded.hits(make_event({"tags": ["good", "EVIL-ish"]}, nested=base))
    assert not loaded.hits(make_event({"tags": ["good", "fine"]}, nested=base))
