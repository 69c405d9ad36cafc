"""The asset inventory: YAML and CSV loading, validation errors with file/line/field, IP and host name lookups."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from correlator.assets import (
    Agency,
    Asset,
    Criticality,
    InformationSystem,
    Inventory,
    InventoryError,
    SecurityLevel,
    enrichment_fields,
)
from correlator.assets_load import load_inventory, parse_inventory_csv, parse_inventory_yaml

INVENTORY_YAML = """\
systems:
  - id: dvc-portal
    name: Cổng dịch vụ công tỉnh
    agency: {id: so-tttt, name: Sở Thông tin và Truyền thông}
    security_level: 3
    criticality: high
    operator: Trung tâm CNTT-TT
    contact: soc@example.gov.vn
  - id: db-core
    name: CSDL dùng chung
    agency: {id: so-tttt, name: Sở Thông tin và Truyền thông}
    security_level: 4
    critical: true
  - id: office
    name: Mạng văn phòng
    agency: {id: vp-ubnd, name: Văn phòng UBND tỉnh}
    security_level: 2
    criticality: low
assets:
  - system: office
    name: office LAN
    ips: [10.0.0.0/8, 2001:db8::/32]
  - system: dvc-portal
    ips: [10.1.2.0/24, 2001:db8:12::/48]
    hostnames: [portal.example.gov.vn, "*.dvc.example.gov.vn"]
  - system: db-core
    ips: [10.1.2.7, 10.1.2.128/25]
    hostnames: [DB01.example.gov.vn., "*.db.dvc.example.gov.vn"]
"""


@pytest.fixture
def write_file(tmp_path: Path) -> Callable[[str, str], Path]:
    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def inventory() -> Inventory:
    return parse_inventory_yaml(INVENTORY_YAML, source="inv.yml")


@pytest.mark.parametrize(
    ("value", "system", "entry"),
    [
        ("10.1.2.7", "db-core", "10.1.2.7"),
        ("10.1.2.6", "dvc-portal", "10.1.2.0/24"),
        ("10.1.2.200", "db-core", "10.1.2.128/25"),
        ("10.1.2.127", "dvc-portal", "10.1.2.0/24"),
        ("10.1.3.0", "office", "10.0.0.0/8"),
        ("10.255.255.255", "office", "10.0.0.0/8"),
        ("10.0.0.0", "office", "10.0.0.0/8"),
        ("::ffff:10.1.2.7", "db-core", "10.1.2.7"),
        ("2001:db8:12::1", "dvc-portal", "2001:db8:12::/48"),
        ("2001:db8:13::1", "office", "2001:db8::/32"),
        ("fe80::1%eth0", None, None),
        ("11.0.0.1", None, None),
        ("9.255.255.255", None, None),
        ("not-an-ip", None, None),
    ],
    ids=["single-ip-in-two-ranges", "in-24", "in-25-inside-24", "end-of-24-before-25", "after-24-back-to-8",
         "last-of-8", "first-of-8", "v4-mapped-v6", "v6-48", "v6-32", "v6-link-local-unknown", "after-all",
         "before-all", "garbage"],
)
def test_ip_lookup_most_specific_wins(inventory: Inventory, value: str, system: str | None, entry: str | None) -> None:
    found = inventory.lookup_ip(value)
    if system is None:
        assert found is None
    else:
        assert found is not None
        network, asset = found
        assert (asset.system_id, str(network.network_address) if network.prefixlen == network.max_prefixlen
                else str(network)) == (system, entry)


@pytest.mark.parametrize(
    ("name", "system", "entry"),
    [
        ("portal.example.gov.vn", "dvc-portal", "portal.example.gov.vn"),
        ("PORTAL.Example.GOV.vn.", "dvc-portal", "portal.example.gov.vn"),
        ("db01.example.gov.vn", "db-core", "db01.example.gov.vn"),
        ("a.dvc.example.gov.vn", "dvc-portal", "*.dvc.example.gov.vn"),
        ("x.y.dvc.example.gov.vn", "dvc-portal", "*.dvc.example.gov.vn"),
        ("a.db.dvc.example.gov.vn", "db-core", "*.db.dvc.example.gov.vn"),
        ("dvc.example.gov.vn", None, None),
        ("example.gov.vn", None, None),
        ("", None, None),
    ],
    ids=["exact", "case-and-trailing-dot", "entry-normalised", "wildcard", "wildcard-deep", "longest-suffix-wins",
         "wildcard-not-its-own-name", "unrelated", "empty"],
)
def test_hostname_lookup(inventory: Inventory, name: str, system: str | None, entry: str | None) -> None:
    found = inventory.lookup_hostname(name)
    if system is None:
        assert found is None
    else:
        assert found is not None
        assert (found[1].system_id, found[0]) == (system, entry)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"host.name": "portal.example.gov.vn", "source.ip": "10.1.2.7"}, ("dvc-portal", "host.name")),
        ({"host.hostname": "db01.example.gov.vn", "host.ip": ["10.9.9.9"]}, ("db-core", "host.hostname")),
        ({"host.name": "unknown-pc", "host.ip": ["fe80::1", "10.1.2.7"]}, ("db-core", "host.ip")),
        ({"source.ip": "10.1.2.9", "destination.ip": "10.1.2.7"}, ("db-core", "destination.ip")),
        ({"source.ip": "10.1.2.9", "destination.ip": "203.0.113.5"}, ("dvc-portal", "source.ip")),
        ({"source.ip": "203.0.113.5"}, None),
        ({}, None),
    ],
    ids=["own-host-first", "hostname", "host-ip-list", "destination-before-source", "outbound-source",
         "external-only", "empty"],
)
def test_enrich_precedence(inventory: Inventory, fields: dict[str, object], expected: tuple[str, str] | None) -> None:
    match = inventory.enrich(fields)
    assert (None if match is None else (match.system.id, match.field)) == expected


def test_enrich_all_lists_each_system_once(inventory: Inventory) -> None:
    fields = {"host.ip": ["10.1.2.7"], "source.ip": "10.1.2.8", "destination.ip": "10.1.2.9"}
    assert [(m.system.id, m.field) for m in inventory.enrich_all(fields)] == [
        ("db-core", "host.ip"), ("dvc-portal", "destination.ip")]


def test_enrichment_fields(inventory: Inventory) -> None:
    match = inventory.enrich({"host.name": "a.dvc.example.gov.vn"})
    assert enrichment_fields(match) == {
        "organization.id": "so-tttt",
        "organization.name": "Sở Thông tin và Truyền thông",
        "asset.system.id": "dvc-portal",
        "asset.system.name": "Cổng dịch vụ công tỉnh",
        "asset.security_level": 3,
        "asset.criticality": "high",
        "asset.critical": False,
        "asset.operator": "Trung tâm CNTT-TT",
        "asset.contact": "soc@example.gov.vn",
        "asset.matched.field": "host.name",
        "asset.matched.value": "a.dvc.example.gov.vn",
        "asset.matched.entry": "*.dvc.example.gov.vn",
    }
    assert enrichment_fields(None) == {}


def test_types_are_frozen_and_round_trip(inventory: Inventory) -> None:
    again = parse_inventory_yaml(yaml.safe_dump(inventory.to_dict(), allow_unicode=True))
    assert again.systems == inventory.systems
    assert again.assets == inventory.assets
    system = inventory.systems["db-core"]
    assert system.security_level is SecurityLevel.LEVEL_4
    assert system.criticality is Criticality.MEDIUM
    assert InformationSystem.from_dict(system.to_dict()) == system
    with pytest.raises(AttributeError):
        system.name = "x"  # type: ignore[misc]


def test_build_from_python_objects() -> None:
    agency = Agency("so-yt", "Sở Y tế")
    system = InformationSystem("his", "Bệnh viện", agency, 4)  # type: ignore[arg-type]
    inventory = Inventory.build([system], [Asset("his", networks=("192.0.2.0/24",), hostnames=("HIS.local",))])  # type: ignore[arg-type]
    assert system.security_level is SecurityLevel.LEVEL_4
    assert inventory.lookup_hostname("his.local") is not None
    assert inventory.lookup_ip("192.0.2.1") is not None


def test_load_yaml_and_csv_give_the_same_inventory(write_file: Callable[[str, str], Path]) -> None:
    yml = write_file("inv.yml", INVENTORY_YAML)
    csv_path = write_file("inv.csv", """\
        system_id,system_name,agency_id,agency_name,security_level,criticality,operator,contact,critical,ips,hostnames
        office,Mạng văn phòng,vp-ubnd,Văn phòng UBND tỉnh,2,low,,,false,10.0.0.0/8 2001:db8::/32,
        dvc-portal,Cổng dịch vụ công tỉnh,so-tttt,Sở Thông tin và Truyền thông,3,high,Trung tâm CNTT-TT,\
        soc@example.gov.vn,no,10.1.2.0/24;2001:db8:12::/48,portal.example.gov.vn;*.dvc.example.gov.vn
        db-core,CSDL dùng chung,so-tttt,Sở Thông tin và Truyền thông,4,,,,yes,10.1.2.7,
        db-core,,,,4,,,,,10.1.2.128/25,DB01.example.gov.vn. *.db.dvc.example.gov.vn
        """)
    from_yaml = load_inventory(yml)
    from_csv = load_inventory(csv_path)
    assert dict(from_csv.systems) == dict(from_yaml.systems)
    for value in ("10.1.2.7", "10.1.2.200", "10.1.2.6", "10.3.3.3", "2001:db8:12::9"):
        assert from_csv.lookup_ip(value)[1].system_id == from_yaml.lookup_ip(value)[1].system_id  # type: ignore[index]
    assert from_csv.lookup_hostname("a.db.dvc.example.gov.vn")[1].system_id == "db-core"  # type: ignore[index]
    assert len(from_yaml.digest) == 64


def test_reload_gives_a_new_object(write_file: Callable[[str, str], Path]) -> None:
    path = write_file("inv.yml", INVENTORY_YAML)
    first = load_inventory(path)
    path.write_text(INVENTORY_YAML.replace("security_level: 3", "security_level: 5"), encoding="utf-8")
    second = load_inventory(path)
    assert first.systems["dvc-portal"].security_level == 3
    assert second.systems["dvc-portal"].security_level == 5
    assert first.digest != second.digest


_SYSTEM = "  - id: s\n    name: S\n    agency: {id: a, name: A}\n    security_level: 3\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("systems: [\n", "inv.yml:2: invalid YAML: expected the node content, but found '<stream end>'"),
        ("- 1\n", "inv.yml:1: the inventory must be a mapping with 'systems' and 'assets'"),
        ("system: []\n", "inv.yml:1: system: unknown key (expected systems, assets)"),
        ("systems:\n" + _SYSTEM.replace("security_level: 3", "security_level: 6"),
         "inv.yml:5: security_level: must be a level 1-5, not 6"),
        ("systems:\n" + _SYSTEM + "    criticality: vital\n",
         "inv.yml:6: criticality: must be one of low, medium, high, critical, not 'vital'"),
        ("systems:\n" + _SYSTEM.replace("{id: a, name: A}", "{id: a}"), "inv.yml:4: agency.name: required"),
        ("systems:\n" + _SYSTEM.replace("    name: S\n", ""), "inv.yml:2: name: required"),
        ("systems:\n" + _SYSTEM + "    owner: x\n",
         "inv.yml:6: owner: unknown field (expected one of agency, contact, critical, criticality, id, name, operator, "
         "security_level)"),
        ("systems:\n" + _SYSTEM + "    critical: maybe\n", "inv.yml:6: critical: must be true or false, not 'maybe'"),
        ("systems:\n" + _SYSTEM + _SYSTEM, "inv.yml: id: duplicate system id 's'"),
        ("systems:\n" + _SYSTEM + "assets:\n  - system: t\n    ips: [10.0.0.1]\n",
         "inv.yml:7: system: unknown system 't'"),
        ("systems:\n" + _SYSTEM + "assets:\n  - system: s\n    ips: [10.0.0.1/24]\n",
         "inv.yml:8: ips: '10.0.0.1/24' has host bits set (the range is 10.0.0.0/24)"),
        ("systems:\n" + _SYSTEM + "assets:\n  - system: s\n    hostnames: ['a..b']\n",
         "inv.yml:8: hostnames: 'a..b' is not a host name or '*.suffix' wildcard"),
        ("systems:\n" + _SYSTEM + "assets:\n  - system: s\n",
         "inv.yml:7: ips: an asset needs at least one IP range or host name"),
        ("systems:\n" + _SYSTEM + _SYSTEM.replace("id: s", "id: t")
         + "assets:\n  - {system: s, ips: [10.0.0.0/8]}\n  - {system: t, ips: [10.0.0.0/8]}\n",
         "inv.yml:12: ips: 10.0.0.0/8 already belongs to system 's'"),
        ("systems:\n" + _SYSTEM + _SYSTEM.replace("id: s", "id: t")
         + "assets:\n  - {system: s, hostnames: [A.b]}\n  - {system: t, hostnames: [a.B.]}\n",
         "inv.yml:12: hostnames: 'a.b' already belongs to system 's'"),
        ("systems:\n" + _SYSTEM + "    id: again\n", "inv.yml:6: invalid YAML: duplicate key 'id'"),
    ],
    ids=["syntax", "not-a-mapping", "unknown-top-key", "level-out-of-range", "bad-criticality", "agency-name-missing",
         "name-missing", "unknown-field", "bad-bool", "duplicate-system", "unknown-system", "host-bits",
         "bad-hostname", "empty-asset", "range-claimed-twice", "hostname-claimed-twice", "duplicate-key"],
)
def test_yaml_errors_name_file_line_and_field(text: str, message: str) -> None:
    with pytest.raises(InventoryError) as caught:
        parse_inventory_yaml(text, source="inv.yml")
    assert str(caught.value) == message


_HEADER = (
    "system_id,system_name,agency_id,agency_name,security_level,criticality,operator,contact,critical,ips,hostnames\n"
)
_ROW = "s,S,a,A,3,,,,,10.0.0.0/8,\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("system_id,ips\n", "inv.csv:1: missing column(s) hostnames"),
        ("system_id,ips,hostnames,colour\n", "inv.csv:1: unknown column(s) colour"),
        (_HEADER + "s,S,a,A,7,,,,,10.0.0.1,\n", "inv.csv:2: security_level: must be a level 1-5, not 7"),
        (_HEADER + "s,S,,,3,,,,,10.0.0.1,\n", "inv.csv:2: agency_id: required"),
        (_HEADER + "s,S,a,,3,,,,,10.0.0.1,\n", "inv.csv:2: agency_name: must not be empty"),
        (_HEADER + _ROW + "s,Other,,,,,,,,10.1.0.0/16,\n",
         "inv.csv:3: system_name: differs from the first row of system 's'"),
        (_HEADER + _ROW + "s,,,,,,,,yes,10.1.0.0/16,\n",
         "inv.csv:3: critical: differs from the first row of system 's'"),
        (_HEADER + _ROW + "\n" + "s,,,,,,,,,10.1.0.0/33,\n",
         "inv.csv:4: ips: '10.1.0.0/33' is not an IP address or CIDR range"),
        (_HEADER + "s,S,a,A,3,,,,,10.0.0.1,,extra\n", "inv.csv:2: more cells than columns"),
    ],
    ids=["missing-column", "unknown-column", "bad-level", "no-agency", "agency-name-empty", "system-differs",
         "critical-differs", "bad-cidr-after-blank-line", "extra-cell"],
)
def test_csv_errors_name_file_line_and_column(text: str, message: str) -> None:
    with pytest.raises(InventoryError) as caught:
        parse_inventory_csv(text, source="inv.csv")
    assert str(caught.value) == message


def test_load_errors(write_file: Callable[[str, str], Path], tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match=r"inv\.json: unknown inventory format '\.json'"):
        load_inventory(write_file("inv.json", "{}"))
    with pytest.raises(InventoryError, match=r"missing\.yml: cannot read: No such file or directory"):
        load_inventory(tmp_path / "missing.yml")
    bad = tmp_path / "bad.yml"
    bad.write_bytes(b"systems: [\xff]\n")
    with pytest.raises(InventoryError, match=r"bad\.yml: not UTF-8 \(byte 10\)"):
        load_inventory(bad)


def test_empty_yaml_is_an_empty_inventory() -> None:
    inventory = parse_inventory_yaml("")
    assert inventory.enrich({"host.ip": "10.0.0.1"}) is None


def test_many_ranges_stay_correct() -> None:
    """Nested and adjacent ranges at scale: every lookup agrees with a brute-force most-specific search."""
    import ipaddress
    import random

    rng = random.Random(7)
    agency = Agency("a", "A")
    systems = [InformationSystem(f"s{i}", f"S{i}", agency, SecurityLevel(1 + i % 5)) for i in range(50)]
    networks: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]] = []
    seen: set[ipaddress.IPv4Network | ipaddress.IPv6Network] = set()
    while len(networks) < 400:
        prefix = rng.choice([8, 12, 16, 20, 24, 28, 32])
        net = ipaddress.ip_network((rng.randrange(0, 2**32) & ~((1 << (32 - prefix)) - 1), prefix))
        if net not in seen:
            seen.add(net)
            networks.append((net, f"s{rng.randrange(50)}"))
    inventory = Inventory.build(systems, [Asset(system, networks=(net,)) for net, system in networks])
    for _ in range(3000):
        net, _system = rng.choice(networks)
        address = ipaddress.ip_address(int(net.network_address) + rng.randrange(net.num_addresses))
        expected = max((n for n, _s in networks if address in n), key=lambda n: n.prefixlen)
        found = inventory.lookup_ip(address)
        assert found is not None
        assert found[0] == expected
