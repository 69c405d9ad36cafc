"""The asset inventory: which information system, owning agency and security level an IP or host name belongs to.

Pure library: `correlator.assets_load.load_inventory(path)` reads a file and returns an immutable `Inventory`;
reading again (a reload) returns a new one, and the old object stays valid for whoever still holds it.
`Inventory.enrich(fields)` finds the asset of an event (a flat dict of dotted ECS names, `Event.fields`) and
`enrichment_fields(match)` gives the fields to add to the event or alert.

Security levels are the cấp độ 1-5 of Decree 85/2016/NĐ-CP (`SecurityLevel`); criticality is the agency's own
ranking of the system (`Criticality`); `critical` marks a system on the list of critical information systems
(hệ thống thông tin quan trọng quốc gia), which counts as level >= 4 for the serious-incident test.

YAML (``*.yml``/``*.yaml``); systems first, then assets naming their system (resolved in a second pass)::

    systems:
      - id: dvc-portal                        # unique; referenced by assets
        name: Cổng dịch vụ công tỉnh
        agency: {id: so-tttt, name: Sở Thông tin và Truyền thông}
        security_level: 3                     # 1..5
        criticality: high                     # low | medium | high | critical (default medium)
        operator: Trung tâm CNTT-TT           # optional
        contact: soc@example.gov.vn           # optional
        critical: false                       # on the critical list (default false)
    assets:
      - system: dvc-portal
        name: web front-ends                  # optional label
        ips: [10.1.2.0/24, 2001:db8:12::/48, 10.1.3.4]
        hostnames: [portal.example.gov.vn, "*.dvc.example.gov.vn"]

CSV (``*.csv``): a header row, then one row per asset; ``ips`` and ``hostnames`` hold several values separated by
spaces or ``;``. The first row of a system defines it; later rows of the same ``system_id`` leave the system
columns empty or repeat the same values::

    system_id,system_name,agency_id,agency_name,security_level,criticality,operator,contact,critical,ips,hostnames
    dvc-portal,Cổng dịch vụ công,so-tttt,Sở TT&TT,3,high,TT CNTT,soc@x.vn,false,10.1.2.0/24;10.1.3.4,portal.x.vn
    dvc-portal,,,,,,,,,2001:db8:12::/48,*.dvc.x.vn

Matching: IPs by the most specific range (a /32 inside a /24 wins; IPv4-mapped IPv6 addresses count as IPv4),
found by bisection over disjoint ranges per address family, O(log n). Host names are case-insensitive, a trailing
dot ignored; ``*.example.gov.vn`` matches any name below ``example.gov.vn`` (not the name itself), the longest
suffix winning; an exact name wins over every wildcard. O(1) per name (one dict lookup per label).

Precedence in `enrich`: the event's own host first (``host.name``, ``host.hostname``, ``host.ip``), then
``destination.ip`` (the target of an inbound connection), then ``source.ip`` (an internal host calling out). Since
the inventory holds only our own systems, the external end of a connection never matches and the internal one is
found whichever direction the traffic goes. `enrich_all` returns every distinct system the event touches.

Errors (`InventoryError`) name the file, the line (YAML) or the CSV line, and the field.
"""

from __future__ import annotations

import ipaddress
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Final

from correlator.definitions import SecurityLevel
from correlator.located_yaml import LocatedError
from correlator.model import string_values

__all__ = [
    "ENRICH_FIELDS",
    "Agency",
    "Asset",
    "AssetMatch",
    "Criticality",
    "InformationSystem",
    "Inventory",
    "InventoryError",
    "SecurityLevel",
    "enrichment_fields",
    "normalise_hostname",
    "parse_ip",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# The fields `enrich` reads, in precedence order.
ENRICH_FIELDS: Final = ("host.name", "host.hostname", "host.ip", "destination.ip", "source.ip")
_HOSTNAME_FIELDS: Final = frozenset({"host.name", "host.hostname"})


class Criticality(StrEnum):
    """How much the owning agency depends on the system (its own ranking, beside the legal security level)."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class InventoryError(LocatedError):
    """An invalid inventory: the file, the line where known, the field and the reason."""

    def __init__(self, reason: str, *, source: str, line: int | None = None, field: str | None = None) -> None:
        super().__init__(reason, source=source, line=line, key=field)
        self.field = field


# -- the inventory's types


@dataclass(frozen=True, slots=True)
class Agency:
    """The agency (cơ quan chủ quản) that owns an information system."""

    id: str
    name: str

    def __post_init__(self) -> None:
        _require_text("agency.id", self.id)
        _require_text("agency.name", self.name)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name}


@dataclass(frozen=True, slots=True)
class InformationSystem:
    """One information system (hệ thống thông tin) with its security level and who runs it."""

    id: str
    name: str
    agency: Agency
    security_level: SecurityLevel
    criticality: Criticality = Criticality.MEDIUM
    operator: str | None = None
    contact: str | None = None
    critical: bool = False  # on the critical list (hệ thống thông tin quan trọng)

    def __post_init__(self) -> None:
        _require_text("id", self.id)
        _require_text("name", self.name)
        if not isinstance(self.security_level, SecurityLevel):
            object.__setattr__(self, "security_level", _security_level(self.security_level))
        if not isinstance(self.criticality, Criticality):
            object.__setattr__(self, "criticality", _enum(Criticality, self.criticality))
        if not isinstance(self.critical, bool):
            raise TypeError(f"critical: must be true or false, not {self.critical!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InformationSystem:
        """From the YAML shape (see the module doc); a bad field raises `_FieldError` naming it."""
        _known_keys(data, _SYSTEM_KEYS)
        agency = _field(data, "agency", lambda v: Agency(**_agency_dict(v)))
        return cls(
            id=_field(data, "id", _text),
            name=_field(data, "name", _text),
            agency=agency,
            security_level=_field(data, "security_level", _security_level),
            criticality=_field(data, "criticality", lambda v: _enum(Criticality, v), Criticality.MEDIUM),
            operator=_field(data, "operator", _optional_text, None),
            contact=_field(data, "contact", _optional_text, None),
            critical=_field(data, "critical", _boolean, False),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "agency": self.agency.to_dict(),
            "security_level": int(self.security_level),
            "criticality": self.criticality.value,
            "critical": self.critical,
        }
        if self.operator is not None:
            out["operator"] = self.operator
        if self.contact is not None:
            out["contact"] = self.contact
        return out


@dataclass(frozen=True, slots=True)
class Asset:
    """IP ranges and host names that belong to one information system."""

    system_id: str
    networks: tuple[IPNetwork, ...] = ()
    hostnames: tuple[str, ...] = ()  # normalised: lower case, no trailing dot; "*.suffix" for wildcards
    name: str | None = None

    def __post_init__(self) -> None:
        _require_text("system", self.system_id)
        object.__setattr__(self, "networks", tuple(_network(n) for n in self.networks))
        object.__setattr__(self, "hostnames", tuple(_hostname_pattern(h) for h in self.hostnames))
        if not self.networks and not self.hostnames:
            raise _FieldError("ips", "an asset needs at least one IP range or host name")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Asset:
        _known_keys(data, _ASSET_KEYS)
        return cls(
            system_id=_field(data, "system", _text),
            networks=_field(data, "ips", lambda v: tuple(_network(n) for n in _text_list(v)), ()),
            hostnames=_field(data, "hostnames", lambda v: tuple(_hostname_pattern(h) for h in _text_list(v)), ()),
            name=_field(data, "name", _optional_text, None),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"system": self.system_id}
        if self.name is not None:
            out["name"] = self.name
        if self.networks:
            out["ips"] = [_network_text(n) for n in self.networks]
        if self.hostnames:
            out["hostnames"] = list(self.hostnames)
        return out


@dataclass(frozen=True, slots=True)
class AssetMatch:
    """The asset an event belongs to, and why: the event field and value that matched, and the entry it matched."""

    system: InformationSystem
    asset: Asset
    field: str
    value: str
    matched: str  # the inventory entry: "10.1.2.0/24", "portal.example.gov.vn" or "*.dvc.example.gov.vn"


_SYSTEM_KEYS: Final = frozenset(
    {"id", "name", "agency", "security_level", "criticality", "operator", "contact", "critical"}
)
_ASSET_KEYS: Final = frozenset({"system", "name", "ips", "hostnames"})


# -- the inventory and its indices


@dataclass(frozen=True, slots=True)
class _Ranges:
    """Disjoint [start, end] ranges of one address family, sorted by start, each owned by the most specific entry."""

    starts: tuple[int, ...]
    ends: tuple[int, ...]
    owners: tuple[tuple[IPNetwork, Asset], ...]

    def find(self, value: int) -> tuple[IPNetwork, Asset] | None:
        index = bisect_right(self.starts, value) - 1
        if index >= 0 and value <= self.ends[index]:
            return self.owners[index]
        return None


@dataclass(frozen=True)
class Inventory:
    """An immutable, indexed inventory. Build it with `Inventory.build` or `load_inventory`."""

    systems: Mapping[str, InformationSystem]
    assets: tuple[Asset, ...]
    source: str = "<inventory>"
    digest: str = ""  # SHA-256 of the file's bytes: a reload of an unchanged file can be detected
    _v4: _Ranges = field(default=_Ranges((), (), ()), repr=False, compare=False)
    _v6: _Ranges = field(default=_Ranges((), (), ()), repr=False, compare=False)
    _exact: Mapping[str, Asset] = field(default_factory=dict, repr=False, compare=False)
    _wildcards: Mapping[str, Asset] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def build(
        cls,
        systems: Iterable[InformationSystem],
        assets: Iterable[Asset],
        *,
        source: str = "<inventory>",
        digest: str = "",
        asset_lines: Iterable[int | None] | None = None,
    ) -> Inventory:
        """Resolve the assets' systems and build the indices. Raises `InventoryError` for an unknown or duplicate
        system id and for one range or host name claimed by two systems (`asset_lines` locate the assets)."""
        by_id: dict[str, InformationSystem] = {}
        for system in systems:
            if system.id in by_id:
                raise InventoryError(f"duplicate system id {system.id!r}", source=source, field="id")
            by_id[system.id] = system
        asset_list = tuple(assets)
        lines = list(asset_lines) if asset_lines is not None else [None] * len(asset_list)
        nets: dict[int, list[tuple[IPNetwork, Asset, int | None]]] = {4: [], 6: []}
        exact: dict[str, Asset] = {}
        wildcards: dict[str, Asset] = {}
        for asset, line in zip(asset_list, lines, strict=True):
            if asset.system_id not in by_id:
                raise InventoryError(f"unknown system {asset.system_id!r}", source=source, line=line, field="system")
            for network in asset.networks:
                nets[network.version].append((network, asset, line))
            for pattern in asset.hostnames:
                table, key = (wildcards, pattern[2:]) if pattern.startswith("*.") else (exact, pattern)
                other = table.get(key)
                if other is not None and other.system_id != asset.system_id:
                    raise InventoryError(
                        f"{pattern!r} already belongs to system {other.system_id!r}",
                        source=source, line=line, field="hostnames",
                    )
                table.setdefault(key, asset)
        return cls(
            systems=MappingProxyType(by_id),
            assets=asset_list,
            source=source,
            digest=digest,
            _v4=_disjoint_ranges(nets[4], source),
            _v6=_disjoint_ranges(nets[6], source),
            _exact=MappingProxyType(exact),
            _wildcards=MappingProxyType(wildcards),
        )

    def lookup_ip(self, value: str | IPAddress) -> tuple[IPNetwork, Asset] | None:
        """The most specific range holding the address, with its asset; None for no match or a non-IP."""
        address = parse_ip(value) if isinstance(value, str) else value
        if address is None:
            return None
        ranges = self._v4 if address.version == 4 else self._v6
        return ranges.find(int(address))

    def lookup_hostname(self, name: str) -> tuple[str, Asset] | None:
        """The exact entry or the longest matching ``*.suffix`` entry, with its asset."""
        key = normalise_hostname(name)
        if not key:
            return None
        asset = self._exact.get(key)
        if asset is not None:
            return key, asset
        dot = key.find(".")
        while dot >= 0:
            suffix = key[dot + 1:]
            asset = self._wildcards.get(suffix)
            if asset is not None:
                return "*." + suffix, asset
            dot = key.find(".", dot + 1)
        return None

    def _matches(self, fields: Mapping[str, Any]) -> Iterator[AssetMatch]:
        for name in ENRICH_FIELDS:
            for value in string_values(fields.get(name)):
                if name in _HOSTNAME_FIELDS:
                    found_host = self.lookup_hostname(value)
                    if found_host is not None:
                        pattern, asset = found_host
                        yield AssetMatch(self.systems[asset.system_id], asset, name, value, pattern)
                else:
                    found_ip = self.lookup_ip(value)
                    if found_ip is not None:
                        network, asset = found_ip
                        yield AssetMatch(self.systems[asset.system_id], asset, name, value, _network_text(network))

    def enrich(self, fields: Mapping[str, Any]) -> AssetMatch | None:
        """The asset of an event (flat dotted ECS fields), by the precedence in the module doc; None if unknown."""
        return next(self._matches(fields), None)

    def enrich_all(self, fields: Mapping[str, Any]) -> tuple[AssetMatch, ...]:
        """Every distinct system the event touches, each by its first match in precedence order."""
        seen: dict[str, AssetMatch] = {}
        for match in self._matches(fields):
            seen.setdefault(match.system.id, match)
        return tuple(seen.values())

    def to_dict(self) -> dict[str, Any]:
        """The YAML shape: `parse_inventory_yaml(yaml.safe_dump(inv.to_dict()))` gives an equal inventory."""
        return {
            "systems": [system.to_dict() for system in self.systems.values()],
            "assets": [asset.to_dict() for asset in self.assets],
        }


def enrichment_fields(match: AssetMatch | None) -> dict[str, Any]:
    """Flat dotted fields to add to an event or alert (empty when there is no match)::

        organization.id / organization.name   ECS: the owning agency
        asset.system.id / asset.system.name   socctl: the information system
        asset.security_level                  socctl: cấp độ 1-5 (int)
        asset.criticality                     socctl: low | medium | high | critical
        asset.critical                        socctl: on the critical list (bool)
        asset.operator / asset.contact        socctl: who runs it and how to reach them (when known)
        asset.name                            socctl: the asset entry's label (when given)
        asset.matched.field / .value / .entry socctl: the event field and value, and the inventory entry matched
    """
    if match is None:
        return {}
    system = match.system
    out: dict[str, Any] = {
        "organization.id": system.agency.id,
        "organization.name": system.agency.name,
        "asset.system.id": system.id,
        "asset.system.name": system.name,
        "asset.security_level": int(system.security_level),
        "asset.criticality": system.criticality.value,
        "asset.critical": system.critical,
    }
    if system.operator is not None:
        out["asset.operator"] = system.operator
    if system.contact is not None:
        out["asset.contact"] = system.contact
    if match.asset.name is not None:
        out["asset.name"] = match.asset.name
    out["asset.matched.field"] = match.field
    out["asset.matched.value"] = match.value
    out["asset.matched.entry"] = match.matched
    return out


# -- helpers: validation


class _FieldError(ValueError):
    """A bad value of one field, before the file and line are known."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}")


def _field(data: Mapping[str, Any], key: str, convert: Any, default: Any = ...) -> Any:
    if key not in data or data[key] is None:
        if default is ...:
            raise _FieldError(key, "required")
        return default
    try:
        return convert(data[key])
    except _FieldError as exc:
        raise _FieldError(f"{key}.{exc.field}" if exc.field != key else key, exc.reason) from None
    except (ValueError, TypeError) as exc:
        raise _FieldError(key, str(exc)) from None


def _known_keys(data: Mapping[str, Any], known: frozenset[str]) -> None:
    for key in data:
        if key not in known:
            raise _FieldError(str(key), f"unknown field (expected one of {', '.join(sorted(known))})")










def _require_text(name: str, value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise _FieldError(name, "must be a non-empty string")


def _text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError(f"must be a string, not {type(value).__name__}")
    text = str(value).strip()
    if not text:
        raise ValueError("must not be empty")
    return text


def _optional_text(value: Any) -> str | None:
    return _text(value) if value not in (None, "") else None


def _text_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list):
        raise TypeError(f"must be a list of strings, not {type(value).__name__}")
    return [_text(item) for item in value]


def _agency_dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError("must be a mapping with id and name")
    extra = sorted(str(key) for key in value if key not in {"id", "name"})
    if extra:
        raise _FieldError(extra[0], "unknown field (expected id, name)")
    return {"id": _field(value, "id", _text), "name": _field(value, "name", _text)}


def _security_level(value: Any) -> SecurityLevel:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
        raise _FieldError("security_level", f"must be a level 1-5, not {value!r}")
    return SecurityLevel(value)


def _enum(kind: type[Criticality], value: Any) -> Criticality:
    try:
        return kind(str(value).strip().lower())
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise _FieldError("criticality", f"must be one of {choices}, not {value!r}") from None


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "yes", "1", "x"}:
        return True
    if text in {"false", "no", "0", ""}:
        return False
    raise ValueError(f"must be true or false, not {value!r}")




# -- helpers: addresses and names


def parse_ip(value: str) -> IPAddress | None:
    """An IP address from an event value (IPv4-mapped IPv6 as IPv4, a zone id dropped); None if not an IP."""
    text = value.strip()
    if "%" in text:
        text = text.split("%", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _network(value: Any) -> IPNetwork:
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return value
    text = str(value).strip()
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError:
        try:
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise _FieldError("ips", f"{value!r} is not an IP address or CIDR range") from None
        raise _FieldError("ips", f"{value!r} has host bits set (the range is {loose})") from None
    if isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped is not None:
        raise _FieldError("ips", f"{value!r}: write IPv4-mapped ranges as IPv4")
    return network


def _network_text(network: IPNetwork) -> str:
    return str(network.network_address) if network.prefixlen == network.max_prefixlen else str(network)


def normalise_hostname(name: str) -> str:
    """Lower case, surrounding space and one trailing dot removed."""
    return name.strip().rstrip(".").lower()


def _hostname_pattern(value: Any) -> str:
    name = normalise_hostname(_text(value))
    body = name[2:] if name.startswith("*.") else name
    labels = body.split(".")
    if not body or any(not label or len(label) > 63 or "*" in label or " " in label for label in labels):
        raise _FieldError("hostnames", f"{value!r} is not a host name or '*.suffix' wildcard")
    return name



def _disjoint_ranges(entries: list[tuple[IPNetwork, Asset, int | None]], source: str) -> _Ranges:
    """Split nested CIDR ranges into disjoint ones, each owned by the most specific range covering it.

    CIDR ranges never partly overlap: two are either disjoint or one holds the other. Sorted by start and then
    widest first, a stack of open ranges gives the owner of every gap between consecutive starts."""
    ordered = sorted(entries, key=lambda entry: (int(entry[0].network_address), entry[0].prefixlen))
    starts: list[int] = []
    ends: list[int] = []
    owners: list[tuple[IPNetwork, Asset]] = []

    def emit(low: int, high: int, owner: tuple[IPNetwork, Asset]) -> None:
        if low <= high:
            starts.append(low)
            ends.append(high)
            owners.append(owner)

    stack: list[tuple[int, tuple[IPNetwork, Asset]]] = []
    cursor = 0
    previous: tuple[IPNetwork, Asset] | None = None
    for network, asset, line in ordered:
        if previous is not None and previous[0] == network:
            if previous[1].system_id != asset.system_id:
                raise InventoryError(f"{_network_text(network)} already belongs to system {previous[1].system_id!r}",
                                     source=source, line=line, field="ips")
            continue
        previous = (network, asset)
        start = int(network.network_address)
        while stack and stack[-1][0] < start:
            end, owner = stack.pop()
            emit(cursor, end, owner)
            cursor = max(cursor, end + 1)
        if stack:
            emit(cursor, start - 1, stack[-1][1])
        cursor = start
        stack.append((int(network.broadcast_address), (network, asset)))
    while stack:
        end, owner = stack.pop()
        emit(cursor, end, owner)
        cursor = max(cursor, end + 1)
    return _Ranges(tuple(starts), tuple(ends), tuple(owners))
