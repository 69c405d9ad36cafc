"""Threat-intelligence list formats: value normalisation and the parsers of plain text (with the LOKI /
signature-base variants), CSV and STIX 2.1 bundles. Pure functions over text; `correlator.intel` reads files and
builds the index from what they yield.

Every parser yields `Candidate` tuples ``(type, key, line, ref, comment)`` for the values it understood and
`Skipped` entries (line or STIX id, the value, the reason) for the rest; only a file that cannot be read as its
format at all raises `IntelError`.

Normalisation (the same for list values and event values, so that an exact dict lookup suffices):

- IP: `ipaddress` canonical form, IPv4-mapped IPv6 as IPv4; key ``(version, prefix_length, address >> host_bits)``
  (a single IP is a /32 or /128);
- CIDR: strict (no host bits set), same key;
- domain: lower case, one trailing dot dropped, defanged ``[.]``/``(.)`` restored; at least two labels;
- URL: defanged ``hxxp``/``[.]``/``[:]`` restored, scheme and host lower-cased, an empty path written ``/``, the
  fragment dropped; key the whole normalised URL;
- hash: lower-case hex, its type from its length (md5 32, sha1 40, sha256 64, sha512 128).
"""

from __future__ import annotations

import csv
import io
import re
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import orjson

from correlator.errors import CorrelatorError

__all__ = [
    "HASH_TYPES",
    "NETWORK_TYPES",
    "Candidate",
    "IndicatorType",
    "IntelError",
    "Skipped",
    "classify",
    "ip_key",
    "normalise_domain",
    "normalise_url",
    "parse_csv",
    "parse_stix",
    "parse_stix_pattern",
    "parse_text",
    "url_host",
]


class IndicatorType(StrEnum):
    IP = "ip"
    CIDR = "cidr"
    DOMAIN = "domain"
    URL = "url"
    MD5 = "md5"
    SHA1 = "sha1"
    SHA256 = "sha256"
    SHA512 = "sha512"


HASH_TYPES: Final = frozenset({IndicatorType.MD5, IndicatorType.SHA1, IndicatorType.SHA256, IndicatorType.SHA512})
NETWORK_TYPES: Final = frozenset({IndicatorType.IP, IndicatorType.CIDR, IndicatorType.DOMAIN, IndicatorType.URL})
_HASH_BY_LENGTH: Final = {32: IndicatorType.MD5, 40: IndicatorType.SHA1, 64: IndicatorType.SHA256,
                          128: IndicatorType.SHA512}


class IntelError(CorrelatorError):
    """A threat-intelligence file that cannot be used: the file, the line or object where known, the reason."""

    def __init__(self, reason: str, *, source: str, line: int | None = None) -> None:
        self.reason = reason
        self.source = source
        self.line = line
        super().__init__(f"{source}:{line}: {reason}" if line is not None else f"{source}: {reason}")


@dataclass(frozen=True, slots=True)
class Skipped:
    """A list entry that was not loaded, and why. `where` is the line number or the STIX object id."""

    where: int | str
    value: str
    reason: str


# (type, key, line, STIX ref, comment); key: str for domains/URLs/hashes, (version, prefix, network) for IPs/CIDRs
Candidate = tuple[IndicatorType, Any, int | None, str | None, str]
IPKey = tuple[int, int, int]


# -- normalisation


_HEX: Final = re.compile(r"[0-9a-fA-F]+")
_IPV4: Final = re.compile(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}")
_LABEL: Final = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)|xn--[a-z0-9-]{1,59}")
_SCHEME: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#\s]*)([^#\s]*)(?:#.*)?")


def _refang(value: str) -> str:
    return value.replace("[.]", ".").replace("(.)", ".").replace("[:]", ":").replace("[://]", "://")


def ip_key(value: str) -> IPKey | None:
    """The index key of an IP address (IPv4-mapped IPv6 as IPv4, zone id dropped); None if it is not one.
    (`socket.inet_pton` rather than `ipaddress`: this runs for every IP of every event.)"""
    text = value.strip()
    if _IPV4.fullmatch(text):
        try:
            return (4, 32, int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big"))
        except OSError:
            return None
    if ":" not in text:
        return None
    if "%" in text:
        text = text.split("%", 1)[0]
    try:
        number = int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")
    except OSError:
        return None
    if number >> 32 == 0xFFFF:
        return (4, 32, number & 0xFFFFFFFF)
    return (6, 128, number)


def normalise_domain(value: str) -> str | None:
    """The normalised domain, or None when the value is not a domain name of two labels or more."""
    name = _refang(value.strip()).rstrip(".").lower()
    labels = name.split(".")
    if len(labels) < 2 or len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        return None
    if labels[-1].isdigit():  # 1.2.3.4 and other numeric forms are not domains
        return None
    return name


def normalise_url(value: str) -> str | None:
    """The normalised URL (see the module doc), or None when the value is not ``scheme://host...``."""
    text = _refang(value.strip())
    if text[:4].lower() == "hxxp":
        text = "http" + text[4:]
    found = _SCHEME.fullmatch(text)
    if found is None or not found.group(2):
        return None
    scheme, authority, rest = found.groups()
    return f"{scheme.lower()}://{authority.lower()}{rest or '/'}"


def url_host(url: str) -> str:
    """The host of a normalised URL (no user info, port or IPv6 brackets)."""
    authority = url.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0].rsplit("@", 1)[-1]
    if authority.startswith("["):
        return authority[1:].split("]", 1)[0]
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority


def classify(value: str) -> tuple[IndicatorType, Any] | str:
    """(type, key) of a list value, or the reason it is not an indicator value."""
    text = value.strip()
    if _HEX.fullmatch(text):
        kind = _HASH_BY_LENGTH.get(len(text))
        if kind is not None:
            return kind, text.lower()
    if "://" in text or text[:4].lower() == "hxxp":
        url = normalise_url(text)
        return (IndicatorType.URL, url) if url is not None else "not a valid URL"
    refanged = _refang(text) if "[" in text or "(" in text else text
    key = ip_key(refanged)
    if key is not None:
        return IndicatorType.IP, key
    if "/" in refanged:
        address, _, length = refanged.partition("/")
        key = ip_key(address)
        if key is None or not length.isdigit() or int(length) > key[1] or (":" in address) != (key[0] == 6):
            return "not a valid CIDR range"
        version, bits, number = key
        prefix = int(length)
        if number & ((1 << (bits - prefix)) - 1):
            return "not a valid CIDR range (host bits set)"
        return IndicatorType.CIDR, (version, prefix, number >> (bits - prefix))
    domain = normalise_domain(text)
    if domain is not None:
        return IndicatorType.DOMAIN, domain
    return "not an IP, CIDR, domain, URL or md5/sha1/sha256/sha512 hash"


# -- plain text (and LOKI / signature-base lists)


def parse_text(text: str) -> Iterator[Candidate | Skipped]:
    """One value per line; ``#`` starts a comment line. ``value;comment`` (signature-base hash lists) and
    ``value # comment`` give the value its comment; ``value;<number>`` (a LOKI score) keeps the comment of the
    block: the nearest ``#`` line above since the last blank line (LOKI's c2 lists title each block that way)."""
    block = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            block = ""
            continue
        if line.startswith("#"):
            block = line.lstrip("#").strip()
            continue
        value, comment = line, block
        if ";" in line:
            value, rest = line.split(";", 1)
            rest = rest.strip()
            if rest and not rest.isdigit():
                comment = rest
        elif " #" in line or "\t#" in line:
            value, rest = re.split(r"\s#", line, maxsplit=1)
            comment = rest.strip() or block
        value = value.strip()
        found = classify(value)
        if isinstance(found, str):
            yield Skipped(number, value, found)
        else:
            yield (found[0], found[1], number, None, comment)


# -- CSV

_VALUE_COLUMNS: Final = ("value", "indicator", "ioc")
_TYPE_COLUMNS: Final = ("type", "indicator_type", "ioc_type")
_COMMENT_COLUMNS: Final = ("comment", "description", "threat", "malware")
_TYPE_NAMES: Final = {
    "ip": (IndicatorType.IP, IndicatorType.CIDR), "ipv4": (IndicatorType.IP, IndicatorType.CIDR),
    "ipv6": (IndicatorType.IP, IndicatorType.CIDR), "ipv4-addr": (IndicatorType.IP, IndicatorType.CIDR),
    "ipv6-addr": (IndicatorType.IP, IndicatorType.CIDR), "ip-dst": (IndicatorType.IP,), "ip-src": (IndicatorType.IP,),
    "cidr": (IndicatorType.CIDR, IndicatorType.IP), "network": (IndicatorType.CIDR, IndicatorType.IP),
    "domain": (IndicatorType.DOMAIN,), "domain-name": (IndicatorType.DOMAIN,), "hostname": (IndicatorType.DOMAIN,),
    "fqdn": (IndicatorType.DOMAIN,), "url": (IndicatorType.URL,), "uri": (IndicatorType.URL,),
    "md5": (IndicatorType.MD5,), "sha1": (IndicatorType.SHA1,), "sha-1": (IndicatorType.SHA1,),
    "sha256": (IndicatorType.SHA256,), "sha-256": (IndicatorType.SHA256,), "sha512": (IndicatorType.SHA512,),
    "sha-512": (IndicatorType.SHA512,), "hash": tuple(HASH_TYPES), "filehash": tuple(HASH_TYPES),
}


def parse_csv(text: str, *, source: str, column: str | None = None, delimiter: str = ",") -> Iterator[
        Candidate | Skipped]:
    """A header row (after any ``#`` lines), then one indicator per row. The value column is `column` or the first
    of value/indicator/ioc; an optional type column (type/indicator_type/ioc_type) must agree with the value; an
    optional comment column (comment/description/threat/malware)."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")), None)
    if start is None:
        return
    reader = csv.reader(io.StringIO("\n".join(lines[start:])), delimiter=delimiter, skipinitialspace=True)
    header = [name.strip().lower() for name in next(reader)]
    wanted = (column.lower(),) if column else _VALUE_COLUMNS
    value_at = next((header.index(name) for name in wanted if name in header), None)
    if value_at is None:
        raise IntelError(f"no value column (expected one of {', '.join(wanted)}; header: {', '.join(header)})",
                         source=source, line=start + 1)
    type_at = next((header.index(name) for name in _TYPE_COLUMNS if name in header), None)
    comment_at = next((header.index(name) for name in _COMMENT_COLUMNS if name in header), None)
    for row in reader:
        number = start + reader.line_num
        if not row or not any(cell.strip() for cell in row) or row[0].lstrip().startswith("#"):
            continue
        value = _cell(row, value_at)
        found = classify(value)
        if isinstance(found, str):
            yield Skipped(number, value, found)
            continue
        if type_at is not None and _cell(row, type_at):
            declared = _cell(row, type_at).lower()
            allowed = _TYPE_NAMES.get(declared)
            if allowed is None:
                yield Skipped(number, value, f"unknown type {declared!r}")
                continue
            if found[0] not in allowed:
                yield Skipped(number, value, f"type {declared!r} but the value is a {found[0].value}")
                continue
        yield (found[0], found[1], number, None, _cell(row, comment_at) if comment_at is not None else "")


def _cell(row: Sequence[str], index: int | None) -> str:
    return row[index].strip() if index is not None and index < len(row) else ""


# -- STIX 2.1

_STIX_TOKEN: Final = re.compile(
    r"\s*(?:(?P<open>\[)|(?P<close>\])|(?P<string>'(?:[^'\\]|\\.)*')"
    r"|(?P<op>!=|<=|>=|=|<|>)|(?P<path>[a-z0-9_-]+:(?:[A-Za-z0-9_-]+|'[^']*')(?:\.(?:[A-Za-z0-9_-]+|'[^']*')"
    r"|\[(?:\d+|\*)\])*)|(?P<word>[A-Za-z_]+)|(?P<other>\S))"
)
_STIX_HASHES: Final = {
    "md5": IndicatorType.MD5, "sha-1": IndicatorType.SHA1, "sha1": IndicatorType.SHA1,
    "sha-256": IndicatorType.SHA256, "sha256": IndicatorType.SHA256, "sha-512": IndicatorType.SHA512,
    "sha512": IndicatorType.SHA512,
}


def parse_stix_pattern(pattern: str) -> list[tuple[str, str]] | str:
    """``[path = 'v' OR path = 'v'] OR [...]`` -> [(object path, value)], or the reason it is not supported
    (AND, FOLLOWEDBY, qualifiers, other operators, a syntax error)."""
    tokens: list[tuple[str, str, int]] = []
    position = 0
    while position < len(pattern):
        found = _STIX_TOKEN.match(pattern, position)
        if found is None:
            break
        kind = found.lastgroup or "other"
        tokens.append((kind, found.group(kind), found.start(kind)))
        position = found.end()
    out: list[tuple[str, str]] = []
    index = 0

    def unsupported(at: int) -> str:
        if at >= len(tokens):
            return "unexpected end of pattern"
        kind, text, offset = tokens[at]
        if kind == "word" and text.upper() in {"AND", "FOLLOWEDBY", "WITHIN", "START", "STOP", "REPEATS", "NOT",
                                               "LIKE", "MATCHES", "IN", "ISSUBSET", "ISSUPERSET", "EXISTS"}:
            return f"{text.upper()} is not supported (only = comparisons joined by OR)"
        if kind == "op":
            return f"operator {text!r} is not supported (only =)"
        return f"unexpected {text!r} at offset {offset}"

    while True:
        if index >= len(tokens) or tokens[index][0] != "open":
            return unsupported(index)
        index += 1
        while True:
            if index + 2 >= len(tokens) or tokens[index][0] != "path":
                return unsupported(index)
            if tokens[index + 1][:2] != ("op", "="):
                return unsupported(index + 1)
            if tokens[index + 2][0] != "string":
                return unsupported(index + 2)
            literal = tokens[index + 2][1][1:-1]
            out.append((tokens[index][1], re.sub(r"\\(.)", r"\1", literal)))
            index += 3
            if index < len(tokens) and tokens[index][:2] == ("word", "OR"):
                index += 1
                continue
            break
        if index >= len(tokens) or tokens[index][0] != "close":
            return unsupported(index)
        index += 1
        if index == len(tokens):
            return out
        if tokens[index][:2] != ("word", "OR"):
            return unsupported(index)
        index += 1


def _stix_value(path: str, value: str) -> tuple[IndicatorType, Any] | str:
    object_type, _, prop = path.partition(":")
    if object_type in {"ipv4-addr", "ipv6-addr"} and prop == "value":
        found = classify(value)
        if isinstance(found, str) or found[0] not in {IndicatorType.IP, IndicatorType.CIDR}:
            return f"{path} {value!r} is not an IP address or CIDR range"
        return found
    if object_type == "domain-name" and prop == "value":
        domain = normalise_domain(value)
        return (IndicatorType.DOMAIN, domain) if domain else f"{path} {value!r} is not a domain name"
    if object_type == "url" and prop == "value":
        url = normalise_url(value)
        return (IndicatorType.URL, url) if url else f"{path} {value!r} is not a URL"
    if object_type == "file" and prop.startswith("hashes."):
        algorithm = prop[len("hashes."):].strip("'").lower()
        kind = _STIX_HASHES.get(algorithm)
        if kind is None:
            return f"hash algorithm {algorithm!r} is not supported"
        if not _HEX.fullmatch(value) or _HASH_BY_LENGTH.get(len(value)) is not kind:
            return f"{path} {value!r} is not a {kind.value} hash"
        return kind, value.lower()
    return f"object path {path!r} is not supported"


def parse_stix(data: bytes | str, *, source: str) -> Iterator[Candidate | Skipped]:
    """STIX 2.1 JSON: a bundle, a list of objects or one object. Each `indicator` with ``pattern_type`` stix (the
    default) yields its values; revoked indicators, other pattern types and unsupported patterns are skipped with
    the reason. Objects of other types (malware, relationships, ...) are ignored. The comment is the indicator's
    name, else its description."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise IntelError(f"invalid JSON: {exc}", source=source) from None
    if isinstance(doc, dict) and doc.get("type") == "bundle":
        objects = doc.get("objects") or []
    elif isinstance(doc, dict):
        objects = [doc]
    else:
        objects = doc
    if not isinstance(objects, list):
        raise IntelError("not a STIX bundle, object or list of objects", source=source)
    for position, obj in enumerate(objects):
        if not isinstance(obj, dict) or obj.get("type") != "indicator":
            continue
        ref = str(obj.get("id") or f"objects[{position}]")
        pattern = obj.get("pattern")
        comment = str(obj.get("name") or obj.get("description") or "")
        pattern_text = pattern if isinstance(pattern, str) else ""
        if obj.get("revoked") is True:
            yield Skipped(ref, pattern_text, "revoked")
            continue
        pattern_type = obj.get("pattern_type", "stix")
        if pattern_type != "stix":
            yield Skipped(ref, pattern_text, f"pattern_type {pattern_type!r} is not supported")
            continue
        if not pattern_text:
            yield Skipped(ref, "", "no pattern")
            continue
        comparisons = parse_stix_pattern(pattern_text)
        if isinstance(comparisons, str):
            yield Skipped(ref, pattern_text, comparisons)
            continue
        for path, value in comparisons:
            found = _stix_value(path, value)
            if isinstance(found, str):
                yield Skipped(ref, value, found)
            else:
                yield (found[0], found[1], None, ref, comment)
