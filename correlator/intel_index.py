"""The threat-intelligence index: loaded lists in columns, O(1) lookups per event value, and event matching.

Lookups are O(1) per event value, whatever the number of indicators:

- domains, URLs and hashes: one dict lookup each (a domain also checks each parent domain: a listed ``evil.com``
  matches ``a.b.evil.com``, so one lookup per label);
- IPs and CIDRs: one dict per (address family, prefix length) present, keyed by the network part of the address;
  an address is checked against each prefix length present (at most 33 for IPv4, 129 for IPv6), never against
  each range.

Indicators are kept in columns (arrays of list, line, comment and type ids), not one object each: a million of
them cost the dicts' keys and a few bytes more. An `Indicator` object is made only for a hit.

The event fields checked (`IP_FIELDS`, `DOMAIN_FIELDS`, `URL_FIELDS`, `HASH_FIELDS`) are the ECS names plus the
Sysmon names that carry the same values (``DestinationIp``, ``QueryName``, ``Hashes`` = ``SHA256=..,MD5=..``).
"""

from __future__ import annotations

import ipaddress
from array import array
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from correlator.intel_formats import (
    HASH_TYPES,
    NETWORK_TYPES,
    Candidate,
    IndicatorType,
    IntelError,
    Skipped,
    ip_key,
    normalise_domain,
    normalise_url,
    url_host,
)
from correlator.model import Event, string_values
from correlator.sigma.rule import Level

__all__ = [
    "DOMAIN_FIELDS",
    "HASH_FIELDS",
    "IP_FIELDS",
    "URL_FIELDS",
    "Indicator",
    "IntelHit",
    "IntelList",
    "IntelListSpec",
    "ThreatIntel",
]

IP_FIELDS: Final = ("source.ip", "destination.ip", "client.ip", "server.ip", "host.ip", "related.ip",
                    "SourceIp", "DestinationIp")
DOMAIN_FIELDS: Final = ("dns.question.name", "url.domain", "destination.domain", "source.domain", "client.domain",
                        "server.domain", "tls.client.server_name", "related.hosts", "QueryName",
                        "DestinationHostname")
URL_FIELDS: Final = ("url.full", "url.original")
HASH_FIELDS: Final = (
    *(f"{owner}.hash.{kind}" for owner in ("file", "process", "process.parent", "dll")
      for kind in ("md5", "sha1", "sha256", "sha512")),
    "related.hash", "Hashes", "Hash",
)
_SYSMON_HASH_NAMES: Final = {"MD5": IndicatorType.MD5, "SHA1": IndicatorType.SHA1, "SHA256": IndicatorType.SHA256,
                             "SHA512": IndicatorType.SHA512}
_TYPE_IDS: Final = tuple(IndicatorType)
_TYPE_ID: Final = {kind: number for number, kind in enumerate(_TYPE_IDS)}
_HASH_LENGTHS: Final = frozenset({32, 40, 64, 128})
_IP_TYPES: Final = frozenset({IndicatorType.IP, IndicatorType.CIDR})
_MAX_LABELS: Final = 127  # a DNS name has at most 127 labels


@dataclass(frozen=True, slots=True)
class IntelListSpec:
    """One list to load and how its hits become alerts."""

    path: str
    name: str = ""  # default: the file name without its extension
    level: Level = Level.HIGH
    title: str = ""  # default: by indicator type, e.g. "Connection to a known botnet/C2 indicator"
    tags: tuple[str, ...] = ()
    format: str = "auto"  # auto | text | csv | stix
    types: tuple[IndicatorType, ...] = ()  # restrict the list to these types (default: signature-base naming)
    column: str = ""  # CSV: the value column

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", str(self.path))
        if not self.name:
            object.__setattr__(self, "name", Path(self.path).name.split(".", 1)[0])
        object.__setattr__(self, "level", Level(self.level))
        object.__setattr__(self, "types", tuple(IndicatorType(t) for t in self.types))
        object.__setattr__(self, "tags", tuple(self.tags))
        if self.format not in {"auto", "text", "csv", "stix"}:
            raise ValueError(f"format must be auto, text, csv or stix, not {self.format!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IntelListSpec:
        unknown = sorted(set(data) - {"path", "name", "level", "title", "tags", "format", "types", "column"})
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(unknown)}")
        return cls(**{**data, "tags": tuple(data.get("tags", ())), "types": tuple(data.get("types", ()))})

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "name": self.name, "level": self.level.value, "title": self.title,
                "tags": list(self.tags), "format": self.format, "types": [t.value for t in self.types],
                "column": self.column}


@dataclass(frozen=True, slots=True)
class IntelList:
    """A loaded list: its spec, how many indicators it holds, and what was skipped with the reasons."""

    spec: IntelListSpec
    loaded: int
    duplicates: int
    skipped: tuple[Skipped, ...]


@dataclass(frozen=True, slots=True)
class Indicator:
    value: str  # normalised: "1.2.3.4", "10.0.0.0/8", "evil.com", "http://evil.com/x", lower-case hex
    type: IndicatorType
    list: IntelListSpec  # the list it came from (its name, file, and the level, title and tags of its alerts)
    line: int | None  # plain text and CSV
    ref: str | None  # STIX indicator id
    comment: str

    @property
    def list_name(self) -> str:
        return self.list.name

    @property
    def source(self) -> str:
        return self.list.path

    @property
    def location(self) -> str:
        if self.line is not None:
            return f"{self.source}:{self.line}"
        return f"{self.source}#{self.ref}" if self.ref else self.source


@dataclass(frozen=True, slots=True)
class IntelHit:
    indicator: Indicator
    field: str  # the event field
    value: str  # the event's value
    matched: str  # what was looked up: the value, a parent domain of it, or the host of a URL

    def to_dict(self) -> dict[str, Any]:
        """ECS `threat.enrichments[]` shape."""
        indicator = self.indicator
        return {
            "indicator": {"type": indicator.type.value, "description": indicator.comment,
                          "provider": indicator.list_name, "reference": indicator.location,
                          "value": indicator.value},
            "matched": {"field": self.field, "atomic": self.value, "type": "indicator_match_rule"},
        }


class ThreatIntel:
    """Immutable after construction (`build_intel` / `load_intel`)."""

    __slots__ = ("_comments", "_entry_comment", "_entry_line", "_entry_list", "_entry_type", "_exact", "_more",
                 "_networks", "_prefixes", "_refs", "lists", "skipped_files")

    def __init__(self) -> None:
        self.lists: tuple[IntelList, ...] = ()
        self.skipped_files: tuple[tuple[str, str], ...] = ()
        self._entry_list = array("H")
        self._entry_line = array("I")
        self._entry_comment = array("I")
        self._entry_type = array("B")
        self._comments: list[str] = []
        self._refs: dict[int, str] = {}
        self._more: dict[int, list[int]] = {}  # first entry of a value -> the same value's entries in other lists
        self._exact: dict[str, int] = {}  # domains, URLs, hashes
        self._networks: dict[tuple[int, int], dict[int, int]] = {}  # (version, prefix length) -> network -> entry
        self._prefixes: dict[int, tuple[int, ...]] = {4: (), 6: ()}  # prefix lengths present, longest first

    def __len__(self) -> int:
        return len(self._entry_list)

    # -- lookups

    def _indicators(self, entry: int, value: str) -> Iterator[Indicator]:
        for index in (entry, *self._more.get(entry, ())):
            spec = self.lists[self._entry_list[index]].spec
            line = self._entry_line[index]
            yield Indicator(value, _TYPE_IDS[self._entry_type[index]], spec, line or None,
                            self._refs.get(index), self._comments[self._entry_comment[index]])

    def lookup_ip(self, value: str) -> list[Indicator]:
        """Indicators (IPs and every CIDR range) holding the address, most specific first."""
        key = ip_key(value)
        if key is None:
            return []
        version, bits, number = key
        found: list[Indicator] = []
        for prefix in self._prefixes[version]:
            entry = self._networks[version, prefix].get(number >> (bits - prefix))
            if entry is not None:
                network = (number >> (bits - prefix)) << (bits - prefix)
                shown = str(ipaddress.ip_network((network, prefix))) if prefix < bits else str(
                    ipaddress.ip_address(network))
                found.extend(self._indicators(entry, shown))
        return found

    def lookup_domain(self, value: str) -> list[tuple[Indicator, str]]:
        """Indicators for the domain and each of its parent domains, with the name that matched."""
        name = normalise_domain(value)
        if name is None:
            return []
        found: list[tuple[Indicator, str]] = []
        labels = name.split(".")[-_MAX_LABELS:]
        for start in range(len(labels) - 1):
            candidate = ".".join(labels[start:])
            entry = self._exact.get(candidate)
            if entry is not None:
                found.extend((indicator, candidate) for indicator in self._indicators(entry, candidate)
                             if indicator.type is IndicatorType.DOMAIN)
        return found

    def lookup_url(self, value: str) -> list[Indicator]:
        url = normalise_url(value)
        entry = self._exact.get(url) if url is not None else None
        return [] if entry is None or url is None else list(self._indicators(entry, url))

    def lookup_hash(self, value: str) -> list[Indicator]:
        digest = value.strip().lower()
        entry = self._exact.get(digest) if len(digest) in _HASH_LENGTHS else None
        return [] if entry is None else [i for i in self._indicators(entry, digest) if i.type in HASH_TYPES]

    def match_event(self, event: Event | Mapping[str, Any]) -> list[IntelHit]:
        """Every hit of the event's IPs, domains, URLs and hashes, in field order; each (indicator, value) once."""
        fields = event.fields if isinstance(event, Event) else event
        hits: dict[tuple[str, str, str], IntelHit] = {}

        def add(indicator: Indicator, name: str, value: str, matched: str) -> None:
            hits.setdefault((indicator.list_name, indicator.value, value), IntelHit(indicator, name, value, matched))

        for name in IP_FIELDS:
            for value in string_values(fields.get(name)):
                for indicator in self.lookup_ip(value):
                    add(indicator, name, value, indicator.value)
        for name in DOMAIN_FIELDS:
            for value in string_values(fields.get(name)):
                for indicator, matched in self.lookup_domain(value):
                    add(indicator, name, value, matched)
        for name in URL_FIELDS:
            for value in string_values(fields.get(name)):
                for indicator in self.lookup_url(value):
                    add(indicator, name, value, indicator.value)
                url = normalise_url(value)
                if url is not None:  # the URL's host, in case url.domain was not set
                    host = url_host(url)
                    for indicator in self.lookup_ip(host):
                        add(indicator, name, value, indicator.value)
                    for indicator, matched in self.lookup_domain(host):
                        add(indicator, name, value, matched)
        for name in HASH_FIELDS:
            for value in string_values(fields.get(name)):
                for digest in _hashes(value):
                    for indicator in self.lookup_hash(digest):
                        add(indicator, name, value, digest)
        return list(hits.values())


class IndexBuilder:
    def __init__(self) -> None:
        self.intel = ThreatIntel()
        self.comment_ids: dict[str, int] = {}
        self.lists: list[IntelList] = []

    def add_list(self, spec: IntelListSpec, items: Iterable[Candidate | Skipped]) -> None:
        intel = self.intel
        list_id = len(self.lists)
        if list_id > 0xFFFF:
            raise IntelError("too many lists (at most 65,536)", source=spec.path)
        allowed = frozenset(spec.types) or _default_types(spec.path)
        loaded = duplicates = 0
        skipped: list[Skipped] = []
        exact, networks, more, comment_ids = intel._exact, intel._networks, intel._more, self.comment_ids
        entry_list, entry_line, entry_comment, entry_type = (
            intel._entry_list, intel._entry_line, intel._entry_comment, intel._entry_type)
        for item in items:
            if isinstance(item, Skipped):
                skipped.append(item)
                continue
            kind, key, line, ref, comment = item
            if kind not in allowed:
                skipped.append(Skipped(line if line is not None else ref or "", _shown(kind, key),
                                       f"a {kind.value} in a list of {', '.join(sorted(t.value for t in allowed))}"))
                continue
            table: dict[Any, int]
            if kind in _IP_TYPES:
                table = networks.get(key[:2]) or networks.setdefault(key[:2], {})
                key = key[2]
            else:
                table = exact
            first = table.get(key)
            if first is not None and any(entry_list[e] == list_id for e in (first, *more.get(first, ()))):
                duplicates += 1
                continue
            entry = len(entry_list)
            entry_list.append(list_id)
            entry_line.append(line or 0)
            comment_id = comment_ids.get(comment)
            if comment_id is None:
                comment_id = comment_ids[comment] = len(intel._comments)
                intel._comments.append(comment)
            entry_comment.append(comment_id)
            entry_type.append(_TYPE_ID[kind])
            if ref is not None:
                intel._refs[entry] = ref
            if first is None:
                table[key] = entry
            else:
                more.setdefault(first, []).append(entry)
            loaded += 1
        self.lists.append(IntelList(spec, loaded, duplicates, tuple(skipped)))

    def finish(self, skipped_files: Iterable[tuple[str, str]]) -> ThreatIntel:
        intel = self.intel
        intel.lists = tuple(self.lists)
        intel.skipped_files = tuple(skipped_files)
        for version in (4, 6):
            intel._prefixes[version] = tuple(sorted(
                (prefix for (v, prefix), table in intel._networks.items() if v == version and table), reverse=True))
        return intel


def _default_types(path: str) -> frozenset[IndicatorType]:
    name = Path(path).name.lower()
    if "hash" in name:
        return HASH_TYPES
    if "c2" in name:
        return NETWORK_TYPES
    return frozenset(IndicatorType)


def _shown(kind: IndicatorType, key: Any) -> str:
    if kind in (IndicatorType.IP, IndicatorType.CIDR):
        version, prefix, network = key
        bits = 32 if version == 4 else 128
        return str(ipaddress.ip_network((network << (bits - prefix), prefix)))
    return str(key)



def _hashes(value: str) -> Iterator[str]:
    """A plain hash, or the values of a Sysmon ``Hashes`` field (``SHA1=..,MD5=..,SHA256=..,IMPHASH=..``;
    IMPHASH is not a file hash and is left out)."""
    if "=" not in value:
        yield value.strip().lower()
        return
    for part in value.split(","):
        name, _, digest = part.partition("=")
        if name.strip().upper() in _SYSMON_HASH_NAMES and digest.strip():
            yield digest.strip().lower()
