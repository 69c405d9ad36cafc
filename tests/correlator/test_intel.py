"""Threat-intelligence lists: formats (text, signature-base, CSV, STIX 2.1), normalisation, O(1) lookups, event
matching and the alerts hits become."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from correlator.intel import (
    IndicatorType,
    IntelError,
    IntelHit,
    IntelListSpec,
    Skipped,
    ThreatIntel,
    build_intel,
    hits_to_alert,
    load_intel,
)
from correlator.intel_formats import classify, parse_stix_pattern
from correlator.model import Event
from correlator.sigma.rule import Level

C2_LIST = """\
# C2 servers of campaign X
suroot.com
58.64.143.244
10.20.0.0/16
10.20.30.0/24
2001:db8:bad::/48
evil[.]example.org
hxxp://Download.Bad-Site.com
http://bad-site.com:8080/payload.exe?x=1#frag
176.123.5.126;65

# another block
C2.Other.NET.  # inline comment
not a value
10.0.0.1/8
1.2.3.4.5
"""

HASH_LIST = """\
# MD5;COMMENT
0C2674C3A97C53082187D930EFB645C2;DEEP PANDA Sakula
c03318cb12b827c03d556c8747b1e323225df97bdc4258c2756b0d6a4fd52b47;Operation SMN - Zxshell
aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa;sha1 example
0c2674c3a97c53082187d930efb645c2;duplicate in another case
suroot.com;a domain in a hash list
"""


def event(fields: dict[str, Any], id: str = "e1") -> Event:
    return Event(id, 1_700_000_000_000, json.dumps(fields), ecs={"host": {"name": "pc-01"}}, fields=fields)


@pytest.fixture
def intel() -> ThreatIntel:
    return build_intel([
        (IntelListSpec(path="lists/c2-iocs.txt"), C2_LIST),
        (IntelListSpec(path="lists/hash-iocs.txt", level=Level.CRITICAL), HASH_LIST),
    ])


def test_text_list_loads_values_and_reports_the_rest(intel: ThreatIntel) -> None:
    c2, hashes = intel.lists
    assert (c2.spec.name, c2.loaded, c2.duplicates) == ("c2-iocs", 10, 0)
    assert c2.skipped == (
        Skipped(14, "not a value", "not an IP, CIDR, domain, URL or md5/sha1/sha256/sha512 hash"),
        Skipped(15, "10.0.0.1/8", "not a valid CIDR range (host bits set)"),
        Skipped(16, "1.2.3.4.5", "not an IP, CIDR, domain, URL or md5/sha1/sha256/sha512 hash"),
    )
    assert (hashes.loaded, hashes.duplicates) == (3, 1)
    assert hashes.skipped == (Skipped(6, "suroot.com", "a domain in a list of md5, sha1, sha256, sha512"),)
    assert len(intel) == 13


@pytest.mark.parametrize(
    ("lookup", "value", "expected"),
    [
        ("ip", "58.64.143.244", [("58.64.143.244", 3, "C2 servers of campaign X")]),
        ("ip", "::ffff:58.64.143.244", [("58.64.143.244", 3, "C2 servers of campaign X")]),
        ("ip", "10.20.30.40", [("10.20.30.0/24", 5, "C2 servers of campaign X"),
                               ("10.20.0.0/16", 4, "C2 servers of campaign X")]),
        ("ip", "10.20.31.1", [("10.20.0.0/16", 4, "C2 servers of campaign X")]),
        ("ip", "2001:db8:bad:1::5", [("2001:db8:bad::/48", 6, "C2 servers of campaign X")]),
        ("ip", "176.123.5.126", [("176.123.5.126", 10, "C2 servers of campaign X")]),
        ("ip", "10.21.0.1", []),
        ("ip", "suroot.com", []),
        ("domain", "SUROOT.com.", [("suroot.com", 2, "C2 servers of campaign X")]),
        ("domain", "a.b.suroot.com", [("suroot.com", 2, "C2 servers of campaign X")]),
        ("domain", "notsuroot.com", []),
        ("domain", "evil.example.org", [("evil.example.org", 7, "C2 servers of campaign X")]),
        ("domain", "example.org", []),
        ("domain", "x.c2.other.net", [("c2.other.net", 13, "inline comment")]),
        ("url", "HTTP://download.bad-site.COM", [("http://download.bad-site.com/", 8, "C2 servers of campaign X")]),
        ("url", "http://bad-site.com:8080/payload.exe?x=1", [
            ("http://bad-site.com:8080/payload.exe?x=1", 9, "C2 servers of campaign X")]),
        ("url", "http://bad-site.com:8080/payload.exe?x=2", []),
        ("hash", "0c2674c3a97c53082187d930efb645c2", [("0c2674c3a97c53082187d930efb645c2", 2, "DEEP PANDA Sakula")]),
        ("hash", "C03318CB12B827C03D556C8747B1E323225DF97BDC4258C2756B0D6A4FD52B47", [
            ("c03318cb12b827c03d556c8747b1e323225df97bdc4258c2756b0d6a4fd52b47", 3, "Operation SMN - Zxshell")]),
    ],
    ids=["ip", "ipv4-mapped", "two-prefixes-most-specific-first", "cidr-16", "ipv6-cidr", "loki-score-keeps-block",
         "no-ip", "domain-is-not-ip", "domain-normalised", "parent-domain", "not-a-parent", "defanged-domain",
         "child-does-not-match-parent", "block-reset-inline-comment", "url-normalised", "url-query",
         "url-other-query", "md5-upper-in-list", "sha256-upper-in-event"],
)
def test_lookups(intel: ThreatIntel, lookup: str, value: str, expected: list[tuple[str, int, str]]) -> None:
    if lookup == "domain":
        found = [indicator for indicator, _name in intel.lookup_domain(value)]
    else:
        found = getattr(intel, f"lookup_{lookup}")(value)
    assert [(i.value, i.line, i.comment) for i in found] == expected


def test_match_event_checks_every_field_kind(intel: ThreatIntel) -> None:
    hits = intel.match_event(event({
        "source.ip": "192.168.1.5",
        "destination.ip": "58.64.143.244",
        "related.ip": ["192.168.1.5", "10.20.30.40"],
        "dns.question.name": "cdn.suroot.com",
        "tls.client.server_name": "c2.other.net",
        "url.full": "http://evil.example.org/a",
        "Hashes": "SHA1=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA,MD5=0C2674C3A97C53082187D930EFB645C2,"
                  "IMPHASH=0c2674c3a97c53082187d930efb645c2",
    }))
    assert [(h.field, h.value, h.matched, h.indicator.location) for h in hits] == [
        ("destination.ip", "58.64.143.244", "58.64.143.244", "lists/c2-iocs.txt:3"),
        ("related.ip", "10.20.30.40", "10.20.30.0/24", "lists/c2-iocs.txt:5"),
        ("related.ip", "10.20.30.40", "10.20.0.0/16", "lists/c2-iocs.txt:4"),
        ("dns.question.name", "cdn.suroot.com", "suroot.com", "lists/c2-iocs.txt:2"),
        ("tls.client.server_name", "c2.other.net", "c2.other.net", "lists/c2-iocs.txt:13"),
        ("url.full", "http://evil.example.org/a", "evil.example.org", "lists/c2-iocs.txt:7"),
        ("Hashes", "SHA1=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA,MD5=0C2674C3A97C53082187D930EFB645C2,"
                   "IMPHASH=0c2674c3a97c53082187d930efb645c2", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
         "lists/hash-iocs.txt:4"),
        ("Hashes", "SHA1=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA,MD5=0C2674C3A97C53082187D930EFB645C2,"
                   "IMPHASH=0c2674c3a97c53082187d930efb645c2", "0c2674c3a97c53082187d930efb645c2",
         "lists/hash-iocs.txt:2"),
    ]
    assert intel.match_event({"source.ip": "8.8.8.8", "dns.question.name": "example.com"}) == []


def test_same_value_in_two_lists_hits_both() -> None:
    intel = build_intel([
        (IntelListSpec(path="a.txt"), "evil.com\n"),
        (IntelListSpec(path="b.txt"), "# b\n\nEVIL.com\n"),
    ])
    hits = intel.match_event({"url.domain": "www.evil.com"})
    assert [h.indicator.location for h in hits] == ["a.txt:1", "b.txt:3"]


def test_hits_to_alert(intel: ThreatIntel) -> None:
    source = event({"destination.ip": "58.64.143.244", "file.hash.md5": "0c2674c3a97c53082187d930efb645c2"})
    hits = intel.match_event(source)
    alert = hits_to_alert(source, hits)
    assert alert.rule.kind == "intel"
    assert alert.rule.id == "intel-c2-iocs-" + __import__("hashlib").sha256(
        b"c2-iocs\0ip\x0058.64.143.244").hexdigest()[:16]
    assert alert.rule.title == "Connection to a known botnet/C2 indicator: 58.64.143.244"
    assert (alert.rule.level, alert.rule.tags) == ("high", ("intel", "attack.command-and-control"))
    assert alert.rule.path == "lists/c2-iocs.txt:3"
    assert (alert.event_id, alert.host_name, alert.timestamp_ms) == ("e1", "pc-01", 1_700_000_000_000)
    assert alert.matched == {"destination.ip": "58.64.143.244", "file.hash.md5": "0c2674c3a97c53082187d930efb645c2"}
    enrichments = alert.to_dict()["threat"]["enrichments"]
    assert enrichments[1] == {
        "indicator": {"type": "md5", "description": "DEEP PANDA Sakula", "provider": "hash-iocs",
                      "reference": "lists/hash-iocs.txt:2", "value": "0c2674c3a97c53082187d930efb645c2"},
        "matched": {"field": "file.hash.md5", "atomic": "0c2674c3a97c53082187d930efb645c2",
                    "type": "indicator_match_rule"},
    }
    # the id is stable per (list, indicator): another event with the same hit has the same rule id
    again = hits_to_alert(event({"source.ip": "58.64.143.244"}, id="e2"), intel.match_event({"source.ip":
                                                                                             "58.64.143.244"}))
    assert again.rule.id == alert.rule.id
    assert again.id != alert.id
    hash_alert = hits_to_alert(source, hits[1:])
    assert (hash_alert.rule.title, hash_alert.rule.level, hash_alert.rule.tags) == (
        "File matching a known malicious hash: 0c2674c3a97c53082187d930efb645c2", "critical",
        ("intel", "attack.execution"))
    with pytest.raises(ValueError, match="hits_to_alert needs at least one hit"):
        hits_to_alert(source, [])


def test_list_level_title_and_tags_are_configurable() -> None:
    spec = IntelListSpec.from_dict({"path": "botnet.txt", "name": "vncert-botnet", "level": "critical",
                                    "title": "Kết nối tới mạng máy tính ma", "tags": ["botnet"]})
    intel = build_intel([(spec, "203.0.113.9\n")])
    hits: list[IntelHit] = intel.match_event({"destination.ip": "203.0.113.9"})
    alert = hits_to_alert(event({"destination.ip": "203.0.113.9"}), hits)
    assert (alert.rule.title, alert.rule.level, alert.rule.tags) == (
        "Kết nối tới mạng máy tính ma: 203.0.113.9", "critical", ("botnet",))
    assert alert.rule.id.startswith("intel-vncert-botnet-")
    assert IntelListSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError, match="unknown key"):
        IntelListSpec.from_dict({"path": "x", "colour": "red"})


# -- CSV

CSV_LIST = """\
# exported 2026-11-20
# from the national feed
id,indicator,type,description
1,198.51.100.7,ip,Mirai C2
2,bad.example.net,domain,phishing kit
3,198.51.100.8,domain,wrong type
4,https://x.example.net/gate.php,url,
5,d41d8cd98f00b204e9800998ecf8427e,hash,empty file

6,nothing,ip,junk
7,198.51.100.0/24,colour,unknown type
"""


def test_csv_list() -> None:
    intel = build_intel([(IntelListSpec(path="feed.csv"), CSV_LIST)])
    (feed,) = intel.lists
    assert feed.loaded == 4
    assert feed.skipped == (
        Skipped(6, "198.51.100.8", "type 'domain' but the value is a ip"),
        Skipped(10, "nothing", "not an IP, CIDR, domain, URL or md5/sha1/sha256/sha512 hash"),
        Skipped(11, "198.51.100.0/24", "unknown type 'colour'"),
    )
    [hit] = intel.match_event({"source.ip": "198.51.100.7"})
    assert (hit.indicator.line, hit.indicator.comment, hit.indicator.type) == (4, "Mirai C2", IndicatorType.IP)
    assert intel.lookup_url("https://X.example.net/gate.php")[0].line == 7


def test_csv_value_column_by_name() -> None:
    intel = build_intel([(IntelListSpec(path="feodo.csv", column="dst_ip"),
                          "first_seen_utc,dst_ip,dst_port\n2026-01-01,192.0.2.1,443\n")])
    assert intel.lookup_ip("192.0.2.1")[0].line == 2


def test_csv_without_value_column_is_refused() -> None:
    with pytest.raises(IntelError) as caught:
        build_intel([(IntelListSpec(path="x.csv"), "# c\nname,ip\n")])
    assert str(caught.value) == "x.csv:2: no value column (expected one of value, indicator, ioc; header: name, ip)"


# -- STIX 2.1


def _indicator(pattern: str, **extra: Any) -> dict[str, Any]:
    return {"type": "indicator", "spec_version": "2.1", "pattern_type": "stix", "pattern": pattern, **extra}


STIX_BUNDLE = {
    "type": "bundle",
    "id": "bundle--1",
    "objects": [
        {"type": "malware", "id": "malware--1", "name": "Emotet"},
        _indicator("[ipv4-addr:value = '203.0.113.5']", id="indicator--ip", name="Emotet C2"),
        _indicator("[domain-name:value = 'Bad.Example.COM'] OR [url:value = 'http://bad.example.com/x']",
                   id="indicator--or", description="two observations"),
        _indicator("[file:hashes.'SHA-256' = 'E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855' OR "
                   "file:hashes.MD5 = 'd41d8cd98f00b204e9800998ecf8427e']", id="indicator--hash"),
        _indicator("[ipv4-addr:value = '198.51.100.0/24']", id="indicator--cidr"),
        _indicator("[ipv4-addr:value = '1.2.3.4' AND domain-name:value = 'x.com']", id="indicator--and"),
        _indicator("[ipv4-addr:value = '1.2.3.4'] FOLLOWEDBY [domain-name:value = 'x.com']", id="indicator--fb"),
        _indicator("[ipv4-addr:value = '1.2.3.4'] WITHIN 10 SECONDS", id="indicator--within"),
        _indicator("[process:name = 'evil.exe']", id="indicator--process"),
        _indicator("[file:hashes.'SHA-256' = 'abc']", id="indicator--shorthash"),
        _indicator("[ipv4-addr:value = '5.6.7.8']", id="indicator--revoked", revoked=True),
        _indicator("alert tcp any any", id="indicator--snort", pattern_type="snort"),
        _indicator("[domain-name:value MATCHES '^x']", id="indicator--matches"),
        _indicator("[url:value = 'http://it''s']", id="indicator--syntax"),
        {"type": "indicator", "id": "indicator--nopattern"},
    ],
}


def test_stix_bundle() -> None:
    intel = build_intel([(IntelListSpec(path="feed.json"), json.dumps(STIX_BUNDLE))])
    (feed,) = intel.lists
    assert feed.loaded == 6
    assert [(s.where, s.reason) for s in feed.skipped] == [
        ("indicator--and", "AND is not supported (only = comparisons joined by OR)"),
        ("indicator--fb", "FOLLOWEDBY is not supported (only = comparisons joined by OR)"),
        ("indicator--within", "WITHIN is not supported (only = comparisons joined by OR)"),
        ("indicator--process", "object path 'process:name' is not supported"),
        ("indicator--shorthash", "file:hashes.'SHA-256' 'abc' is not a sha256 hash"),
        ("indicator--revoked", "revoked"),
        ("indicator--snort", "pattern_type 'snort' is not supported"),
        ("indicator--matches", "MATCHES is not supported (only = comparisons joined by OR)"),
        ("indicator--syntax", "unexpected \"'s'\" at offset 24"),
        ("indicator--nopattern", "no pattern"),
    ]
    hits = intel.match_event({
        "destination.ip": "203.0.113.5", "url.full": "http://bad.example.com/x", "source.ip": "198.51.100.77",
        "file.hash.sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    })
    assert [(h.indicator.location, h.indicator.comment, h.matched) for h in hits] == [
        ("feed.json#indicator--cidr", "", "198.51.100.0/24"),
        ("feed.json#indicator--ip", "Emotet C2", "203.0.113.5"),
        ("feed.json#indicator--or", "two observations", "http://bad.example.com/x"),
        ("feed.json#indicator--or", "two observations", "bad.example.com"),
        ("feed.json#indicator--hash", "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    ]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("[ipv4-addr:value = '1.2.3.4']", [("ipv4-addr:value", "1.2.3.4")]),
        ("[url:value = 'http://x/it\\'s']", [("url:value", "http://x/it's")]),
        ("[ a:value='x' OR b:value = 'y' ] OR [c:value = 'z']",
         [("a:value", "x"), ("b:value", "y"), ("c:value", "z")]),
        ("[a:value != 'x']", "operator '!=' is not supported (only =)"),
        ("[a:value = 'x'", "unexpected end of pattern"),
        ("[a:value = 'x'] AND [b:value = 'y']", "AND is not supported (only = comparisons joined by OR)"),
        ("a:value = 'x'", "unexpected 'a:value' at offset 0"),
    ],
    ids=["one", "escaped-quote", "or-inside-and-between", "not-equal", "unclosed", "and-between", "no-brackets"],
)
def test_stix_pattern(pattern: str, expected: list[tuple[str, str]] | str) -> None:
    assert parse_stix_pattern(pattern) == expected


def test_stix_invalid_json() -> None:
    with pytest.raises(IntelError, match=r"^feed\.json: invalid JSON: "):
        build_intel([(IntelListSpec(path="feed.json"), "{")])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1.2.3.4", (IndicatorType.IP, (4, 32, 0x01020304))),
        ("01.2.3.4", "not an IP, CIDR, domain, URL or md5/sha1/sha256/sha512 hash"),
        ("2001:DB8::1", (IndicatorType.IP, (6, 128, 0x20010DB8 << 96 | 1))),
        ("10.0.0.0/8", (IndicatorType.CIDR, (4, 8, 10))),
        ("10.0.0.0/33", "not a valid CIDR range"),
        ("evil[.]com", (IndicatorType.DOMAIN, "evil.com")),
        ("localhost", "not an IP, CIDR, domain, URL or md5/sha1/sha256/sha512 hash"),
        ("hxxps://Evil.com", (IndicatorType.URL, "https://evil.com/")),
        ("abc", "not an IP, CIDR, domain, URL or md5/sha1/sha256/sha512 hash"),
    ],
    ids=["ipv4", "leading-zero", "ipv6", "cidr", "bad-prefix", "defanged", "one-label", "defanged-url", "short-hex"],
)
def test_classify(value: str, expected: object) -> None:
    assert classify(value) == expected


# -- files, directories, reloads


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    def write_file(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return write_file


def test_load_and_reload(write: Callable[[str, str], Path]) -> None:
    path = write("lists/c2.txt", "evil.com\n")
    first = load_intel([path])
    path.write_text("other.com\n", encoding="utf-8")
    second = load_intel([path])
    assert first.lookup_domain("evil.com")
    assert not second.lookup_domain("evil.com")
    assert second.lookup_domain("other.com")


def test_unsupported_files(write: Callable[[str, str], Path], tmp_path: Path) -> None:
    path = write("iocs/filename-iocs.txt", "\\\\evil\\.exe;80\n")
    with pytest.raises(IntelError) as caught:
        load_intel([path])
    assert str(caught.value) == (f"{path}: file-name regular expressions (LOKI filename IOCs) are not value IOCs: "
                                 "not supported")
    with pytest.raises(IntelError, match=r"missing\.txt: cannot read: No such file or directory"):
        load_intel([tmp_path / "missing.txt"])
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xffevil.com\n")
    with pytest.raises(IntelError, match=r"bad\.txt: not UTF-8 \(byte 0\)"):
        load_intel([bad])


def test_signature_base_iocs(shared_path: Callable[[str], Path]) -> None:
    folder = shared_path("yara/signature-base/iocs")
    intel = load_intel([folder])
    assert [Path(p).name for p, _reason in intel.skipped_files] == ["README.txt", "filename-iocs.txt",
                                                                    "keywords.txt"]
    by_name = {lst.spec.name: lst for lst in intel.lists}
    assert set(by_name) == {"c2-iocs", "hash-iocs"}
    problems = []
    for name, listed in by_name.items():
        text = (folder / f"{name}.txt").read_text(encoding="utf-8")
        values = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        if listed.loaded + listed.duplicates + len(listed.skipped) != len(values):
            problems.append(f"{name}: {listed.loaded} + {listed.duplicates} + {len(listed.skipped)} != {len(values)}")
        problems.extend(f"{name}:{s.where}: {s.value!r}: {s.reason}" for s in listed.skipped)
    assert not problems, "\n".join(problems)
    # values from both lists, as an event would carry them
    hits = intel.match_event({
        "destination.ip": "58.64.143.244",
        "dns.question.name": "www.suroot.com",
        "process.hash.sha256": "CE583821191345274CD954B2DB7DA9742C239FE413FC17DCB97FFDD7B51CB072",
    })
    assert [(h.indicator.list_name, h.indicator.type.value, h.indicator.comment) for h in hits] == [
        ("c2-iocs", "ip", "FireEye Operation Snowman https://goo.gl/x1v7mT"),
        ("c2-iocs", "domain", "FireEye Operation Snowman https://goo.gl/x1v7mT"),
        ("hash-iocs", "sha256", "Dark Caracal - MS Windows HtmlHelp Data"),
    ]


# -- O(1) lookups


class _CountingDict(dict[Any, int]):
    probes = 0

    def get(self, key: Any, default: Any = None) -> Any:
        _CountingDict.probes += 1
        return super().get(key, default)

    def __getitem__(self, key: Any) -> int:
        _CountingDict.probes += 1
        return super().__getitem__(key)


def _lookups_per_event(size: int) -> tuple[int, int]:
    lines = [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(size * 7 // 10)]
    lines += [f"d{i}.example{i % 97}.com" for i in range(size // 10)]
    lines += [f"{i:032x}" for i in range(size // 10)]
    lines += [f"{172 + i % 4}.{i >> 8 & 255}.{i & 255}.0/24" for i in range(size // 10)]
    lines += ["172.16.0.0/20", "173.0.0.0/16", "174.0.0.0/8", "2001:db8::/32"]  # the same prefix lengths at any size
    intel = build_intel([(IntelListSpec(path="big.txt"), "\n".join(lines))])
    assert len(intel) > size * 0.9
    # every table is a hash table; CIDRs are grouped by prefix length
    assert all(type(table) is dict for table in intel._networks.values())
    assert len(intel._prefixes[4]) <= 33
    intel._exact = _CountingDict(intel._exact)
    intel._networks = {k: _CountingDict(v) for k, v in intel._networks.items()}
    _CountingDict.probes = 0
    hits = intel.match_event({
        "source.ip": "10.0.1.2", "destination.ip": "8.8.8.8", "related.ip": ["172.0.1.9", "192.0.2.1"],
        "dns.question.name": "a.b.d5.example5.com", "url.full": "http://x.example.org/path",
        "file.hash.md5": f"{3:032x}", "Hashes": "SHA256=" + "f" * 64,
    })
    assert {h.indicator.value for h in hits} >= {"10.0.1.2", "d5.example5.com", f"{3:032x}"}
    return _CountingDict.probes, len(intel)


def test_lookups_do_not_grow_with_the_number_of_indicators() -> None:
    """1M indicators against 1k: the same number of hash-table probes per event (no scan of any list)."""
    small_probes, small_size = _lookups_per_event(1_000)
    large_probes, large_size = _lookups_per_event(1_000_000)
    assert large_size > 900 * small_size
    assert small_probes == large_probes
