"""Threat-intelligence lists: load IOC lists (plain text, CSV, LOKI/signature-base, STIX 2.1), check every event's
IPs, domains, URLs and file hashes against them, and turn hits into alerts that feed scoring and cases.

`load_intel(specs)` reads the files and returns an immutable `ThreatIntel` (`correlator.intel_index`: the O(1)
index and `ThreatIntel.match_event`); calling it again (a reload) returns a new one. File formats and value
normalisation are in `correlator.intel_formats`. A directory expands to its files in name order; signature-base's
own naming rules apply: a file whose name contains ``hash`` is a hash list (other values are skipped), ``c2`` a
list of IPs/domains/URLs, and ``filename`` (path regexes with scores) and ``keyword`` (substrings) lists are not
value IOCs: they are skipped with that reason when found in a directory, and refused when named explicitly.
`.json` files are STIX, `.csv` CSV, anything else plain text.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Final

from correlator.intel_formats import (
    NETWORK_TYPES,
    Candidate,
    IndicatorType,
    IntelError,
    Skipped,
    parse_csv,
    parse_stix,
    parse_text,
)
from correlator.intel_index import (
    DOMAIN_FIELDS,
    HASH_FIELDS,
    IP_FIELDS,
    URL_FIELDS,
    IndexBuilder,
    Indicator,
    IntelHit,
    IntelList,
    IntelListSpec,
    ThreatIntel,
)
from correlator.model import Alert, Event, MatchedRule

__all__ = [
    "DOMAIN_FIELDS",
    "HASH_FIELDS",
    "IP_FIELDS",
    "URL_FIELDS",
    "Indicator",
    "IndicatorType",
    "IntelError",
    "IntelHit",
    "IntelList",
    "IntelListSpec",
    "Skipped",
    "ThreatIntel",
    "build_intel",
    "hits_to_alert",
    "load_intel",
]


def build_intel(sources: Iterable[tuple[IntelListSpec, str | bytes]],
                skipped_files: Iterable[tuple[str, str]] = ()) -> ThreatIntel:
    """Build from (spec, file content) pairs; the spec's path names the source in hits and errors."""
    builder = IndexBuilder()
    for spec, content in sources:
        builder.add_list(spec, _parse(spec, content))
    return builder.finish(skipped_files)


def load_intel(specs: Iterable[IntelListSpec | str | Path]) -> ThreatIntel:
    """Read every list (a path or a directory of lists, or a spec) and build a new `ThreatIntel`."""
    builder = IndexBuilder()
    skipped_files: list[tuple[str, str]] = []
    for item in specs:
        spec = item if isinstance(item, IntelListSpec) else IntelListSpec(path=str(item))
        path = Path(spec.path)
        if path.is_dir():
            for child in sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")):
                reason = _unsupported(child)
                if reason is not None:
                    skipped_files.append((str(child), reason))
                    continue
                child_spec = IntelListSpec(**{**spec.to_dict(), "path": str(child), "name": ""})
                builder.add_list(child_spec, _parse(child_spec, _read(child)))
            continue
        reason = _unsupported(path)
        if reason is not None:
            raise IntelError(reason, source=spec.path)
        builder.add_list(spec, _parse(spec, _read(path)))
    return builder.finish(skipped_files)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise IntelError(f"cannot read: {exc.strerror or exc}", source=str(path)) from None


def _unsupported(path: Path) -> str | None:
    name = path.name.lower()
    if name.startswith("readme") or name.endswith((".md", ".txt.sig")):
        return "documentation, not a list"
    if "filename" in name:
        return "file-name regular expressions (LOKI filename IOCs) are not value IOCs: not supported"
    if "keyword" in name:
        return "keywords are substrings to search, not value IOCs: not supported"
    return None


def _parse(spec: IntelListSpec, content: str | bytes) -> Iterator[Candidate | Skipped]:
    kind = spec.format
    suffix = Path(spec.path).suffix.lower()
    if kind == "auto":
        kind = {".json": "stix", ".csv": "csv"}.get(suffix, "text")
    if kind == "stix":
        return parse_stix(content, source=spec.path)
    try:
        text = content.decode("utf-8-sig") if isinstance(content, bytes) else content
    except UnicodeDecodeError as exc:
        raise IntelError(f"not UTF-8 (byte {exc.start})", source=spec.path) from None
    if kind == "csv":
        return parse_csv(text, source=spec.path, column=spec.column or None)
    return parse_text(text)


# -- alerts


_TITLES: Final = {
    "network": "Connection to a known botnet/C2 indicator",
    "hash": "File matching a known malicious hash",
}


def hits_to_alert(event: Event, hits: list[IntelHit]) -> Alert:
    """One alert for an event's hits. Its rule is the first hit's (list, indicator): id
    ``intel-<list>-<sha256(list, type, value)[:16]>``, kind ``intel``, the list's level, title and tags (defaults:
    "Connection to a known botnet/C2 indicator" with ``attack.command-and-control`` for IPs/domains/URLs, "File
    matching a known malicious hash" with ``attack.execution`` for hashes). Every hit is in ``matched`` (field ->
    value) and in ``threat.enrichments`` (ECS)."""
    if not hits:
        raise ValueError("hits_to_alert needs at least one hit")
    first = hits[0].indicator
    spec = first.list
    network = first.type in NETWORK_TYPES
    digest = hashlib.sha256(f"{first.list_name}\0{first.type.value}\0{first.value}".encode()).hexdigest()[:16]
    tags = spec.tags or (("intel", "attack.command-and-control") if network else ("intel", "attack.execution"))
    title = spec.title or _TITLES["network" if network else "hash"]
    rule = MatchedRule(
        id=f"intel-{first.list_name}-{digest}",
        title=f"{title}: {first.value}",
        level=spec.level.value,
        tags=tuple(tags),
        kind="intel",
        path=first.location,
        description=first.comment or None,
        meta=(("intel.list", first.list_name), ("intel.indicator", first.value), ("intel.type", first.type.value)),
    )
    matched: dict[str, Any] = {}
    for hit in hits:
        matched.setdefault(hit.field, hit.value)
    return Alert(rule=rule, event_id=event.id, timestamp_ms=event.timestamp_ms, host_name=event.host_name,
                 origin=event.origin, matched=matched,
                 extra={"threat": {"enrichments": [hit.to_dict() for hit in hits]}})

