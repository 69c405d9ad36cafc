"""Scanning with a compiled `YaraRuleSet`: files or bytes in, one `Alert` per matching rule out.

    scanner = ruleset.scanner(timeout_s=30, cache={})
    for item in scan_paths(scanner, [Path("/srv/www")]):  # Alert | Rejected, never raises for a file
        ...

The per-file externals (`filename`, `filepath`, `extension`, `filetype`, `owner`) are set before each scan.
"""

from __future__ import annotations

import functools
import hashlib
import os
import stat
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yara_x

from correlator.model import Alert, EventOrigin, MatchedRule, Rejected, event_id_for, timed_id
from correlator.yara_rules import (
    DEFAULT_MATCHES_PER_PATTERN,
    DEFAULT_MAX_SIZE,
    DEFAULT_TIMEOUT_S,
    YaraRuleSet,
    level_from_meta,
)

__all__ = [
    "PatternMatch",
    "ScanStats",
    "ScannedFile",
    "YaraHit",
    "YaraScanner",
    "guess_filetype",
    "iter_files",
    "scan_paths",
]

_MAGIC = (
    (b"MZ", "EXE"), (b"\x7fELF", "ELF"), (b"%PDF", "PDF"), (b"PK\x03\x04", "ZIP"), (b"Rar!\x1a\x07", "RAR"),
    (b"\x1f\x8b", "GZIP"), (b"7z\xbc\xaf\x27\x1c", "7Z"), (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "OLE"),
    (b"MDMP", "MDMP"), (b"\xcf\xfa\xed\xfe", "MACHO"), (b"\xce\xfa\xed\xfe", "MACHO"),
    (b"\xca\xfe\xba\xbe", "MACHO"),
)


@dataclass(frozen=True, slots=True)
class PatternMatch:
    pattern: str  # "$a"
    offset: int
    length: int


@dataclass(frozen=True, slots=True)
class YaraHit:
    """One matching rule for one content: what the scan cache stores (no path, so it is shared by copies)."""

    rule: MatchedRule
    matches: tuple[PatternMatch, ...]
    truncated: bool = False  # some pattern had more matches than the per-pattern cap


@dataclass(frozen=True, slots=True)
class ScannedFile:
    """What an alert says about the file: ECS `file.*` plus the values of the per-file externals."""

    path: str | None
    size: int
    sha256: str
    mtime_ms: int = 0
    owner: str = ""
    filetype: str = ""

    @property
    def name(self) -> str:
        return Path(self.path).name if self.path else ""

    @property
    def extension(self) -> str:
        return Path(self.path).suffix[1:].lower() if self.path else ""

    def externals(self) -> dict[str, str]:
        return {
            "filename": self.name,
            "filepath": self.path or "",
            "extension": self.extension,
            "filetype": self.filetype,
            "owner": self.owner,
        }

    def to_ecs(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "path": self.path,
            "name": self.name,
            "size": self.size,
            "hash": {"sha256": self.sha256},
        }
        if self.extension:
            doc["extension"] = self.extension
        if self.owner:
            doc["owner"] = self.owner
        return doc


@dataclass(slots=True)
class ScanStats:
    files: int = 0  # contents scanned or answered from the cache
    bytes: int = 0
    cache_hits: int = 0
    alerts: int = 0
    rejected: int = 0


class YaraScanner:
    """Scans files or bytes with one rule set. Holds a yara-x scanner: use one per thread.

    `cache` (sha256 [+ the values of the per-file externals the rules mention] -> hits) lets identical content
    be scanned once; it belongs to one rule set and one match cap.
    """

    def __init__(
        self,
        ruleset: YaraRuleSet,
        *,
        timeout_s: int = DEFAULT_TIMEOUT_S,
        max_size: int = DEFAULT_MAX_SIZE,
        cache: MutableMapping[str, tuple[YaraHit, ...]] | None = None,
        max_matches_per_pattern: int = DEFAULT_MATCHES_PER_PATTERN,
    ) -> None:
        if timeout_s < 1:
            raise ValueError(f"timeout_s must be at least 1 second, got {timeout_s}")
        if max_size < 0 or max_matches_per_pattern < 1:
            raise ValueError("max_size must be >= 0 and max_matches_per_pattern >= 1")
        self.ruleset = ruleset
        self.timeout_s = timeout_s
        self.max_size = max_size
        self.cache = cache
        self.max_matches_per_pattern = max_matches_per_pattern
        self.stats = ScanStats()
        self._scanner = yara_x.Scanner(ruleset.rules)
        self._scanner.set_timeout(timeout_s)
        self._active_timeout = timeout_s
        self._rules: dict[tuple[str, str], MatchedRule] = {}

    def scan_file(
        self, path: Path, *, timeout_s: int | None = None, max_size: int | None = None
    ) -> list[Alert] | Rejected:
        """Alerts for one file (`[]` when clean), or `Rejected` when it cannot be read, is too large or not a
        regular file, or the scan times out. `timeout_s`/`max_size` override the scanner's for this call."""
        limit = self.max_size if max_size is None else max_size
        try:
            info = path.stat()
            if not stat.S_ISREG(info.st_mode):
                return self._reject(path, "not a regular file")
            if info.st_size > limit:
                return self._reject(path, f"file too large: {info.st_size} bytes > limit {limit}")
            with path.open("rb") as handle:
                data = handle.read(limit + 1)
        except OSError as exc:
            return self._reject(path, f"cannot read: {exc.strerror or exc}")
        if len(data) > limit:  # grew since stat
            return self._reject(path, f"file too large: more than limit {limit} bytes")
        return self.scan_bytes(
            data,
            path=str(path),
            timestamp_ms=info.st_mtime_ns // 1_000_000,
            owner=_owner_name(info.st_uid),
            timeout_s=timeout_s,
        )

    def scan_bytes(
        self,
        data: bytes,
        *,
        path: str | None = None,
        timestamp_ms: int = 0,
        owner: str = "",
        timeout_s: int | None = None,
    ) -> list[Alert] | Rejected:
        """Alerts for in-memory content; `path`/`owner` feed the externals and the alert's `file.*`, and
        `timestamp_ms` (the file's mtime for `scan_file`) becomes the alert time."""
        digest = hashlib.sha256(data).hexdigest()
        file = ScannedFile(path, len(data), digest, timestamp_ms, owner, guess_filetype(data))
        externals = file.externals()
        key = self._cache_key(digest, externals)
        hits = self.cache.get(key) if self.cache is not None else None
        if hits is not None:
            self.stats.cache_hits += 1
        else:
            outcome = self._scan(data, externals, self.timeout_s if timeout_s is None else timeout_s)
            if isinstance(outcome, str):
                return self._reject(path, outcome, stage="scan")
            hits = outcome
            if self.cache is not None:
                self.cache[key] = hits
        self.stats.files += 1
        self.stats.bytes += len(data)
        self.stats.alerts += len(hits)
        return [_alert(hit, file) for hit in hits]

    def _cache_key(self, digest: str, externals: Mapping[str, str]) -> str:
        used = sorted(self.ruleset.file_externals_used)
        return "\x00".join([digest, *(f"{name}={externals[name]}" for name in used)])

    def _scan(self, data: bytes, externals: Mapping[str, str], timeout_s: int) -> tuple[YaraHit, ...] | str:
        """The hits, or the reason the scan failed."""
        if timeout_s != self._active_timeout:
            self._scanner.set_timeout(timeout_s)
            self._active_timeout = timeout_s
        for name, value in externals.items():
            self._scanner.set_global(name, value)
        try:
            results = self._scanner.scan(data)
        except yara_x.TimeoutError:
            return f"YARA scan timed out after {timeout_s}s"
        except yara_x.ScanError as exc:
            return f"YARA scan failed: {exc}"
        return tuple(self._hit(rule) for rule in results.matching_rules)

    def _hit(self, rule: yara_x.Rule) -> YaraHit:
        cap = self.max_matches_per_pattern
        matches: list[PatternMatch] = []
        truncated = False
        for pattern in rule.patterns:
            found = pattern.matches
            truncated = truncated or len(found) > cap
            matches.extend(PatternMatch(pattern.identifier, m.offset, m.length) for m in found[:cap])
        return YaraHit(self._matched_rule(rule), tuple(matches), truncated)

    def _matched_rule(self, rule: yara_x.Rule) -> MatchedRule:
        key = (rule.namespace, rule.identifier)
        matched = self._rules.get(key)
        if matched is None:
            meta = tuple((name, _plain(value)) for name, value in rule.metadata)
            description = next((v for k, v in meta if k == "description" and isinstance(v, str)), None)
            source = self.ruleset.namespaces.get(rule.namespace)
            matched = MatchedRule(
                id=f"{rule.namespace}:{rule.identifier}",
                title=rule.identifier,
                level=level_from_meta(meta),
                tags=tuple(rule.tags),
                kind="yara",
                namespace=rule.namespace,
                path=str(source) if source is not None else None,
                description=description,
                meta=meta,
            )
            self._rules[key] = matched
        return matched

    def _reject(self, path: Path | str | None, reason: str, *, stage: str = "read") -> Rejected:
        self.stats.rejected += 1
        return Rejected(reason, EventOrigin(path=str(path) if path is not None else None, format="file"),
                        stage=stage)


def _alert(hit: YaraHit, file: ScannedFile) -> Alert:
    yara: dict[str, Any] = {
        "matches": [{"pattern": m.pattern, "offset": m.offset, "length": m.length} for m in hit.matches],
    }
    if hit.truncated:
        yara["matches_truncated"] = True
    return Alert(
        rule=hit.rule,
        # One file at one path: copies of the same content elsewhere are distinct alerts, a rescan is not.
        event_id=(event_id_for(f"{file.path}\n{file.sha256}", file.mtime_ms) if file.path
                  else timed_id(file.mtime_ms, file.sha256)),
        timestamp_ms=file.mtime_ms,
        host_name=None,
        origin=EventOrigin(path=file.path, format="file"),
        matched={"yara.patterns": sorted({m.pattern for m in hit.matches})},
        extra={"file": file.to_ecs(), "yara": yara},
    )


def _plain(value: Any) -> Any:
    """Meta values as JSON-friendly scalars (yara-x gives bytes for strings with non-UTF-8 escapes)."""
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else value


@functools.lru_cache(maxsize=256)
def _owner_name(uid: int) -> str:
    try:
        import pwd
    except ImportError:  # Windows
        return ""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return ""


def guess_filetype(data: bytes) -> str:
    """A coarse type from the leading magic bytes ("EXE", "ELF", "PDF", "ZIP", ...), "" when unknown."""
    return next((kind for magic, kind in _MAGIC if data.startswith(magic)), "")


# Walking


def iter_files(paths: Iterable[Path]) -> Iterator[Path | Rejected]:
    """Files under `paths` in a stable order: directories recursively (symlinked directories are not
    followed), other paths as given; an unreadable directory is a `Rejected`."""
    for path in paths:
        if not path.is_dir():
            yield path
            continue
        errors: list[OSError] = []
        for root, dirs, names in os.walk(path, onerror=errors.append):
            dirs.sort()
            while errors:
                error = errors.pop(0)
                yield Rejected(f"cannot list directory: {error.strerror or error}",
                               EventOrigin(path=error.filename or root, format="file"))
            for name in sorted(names):
                yield Path(root, name)
        for error in errors:
            yield Rejected(f"cannot list directory: {error.strerror or error}",
                           EventOrigin(path=error.filename or str(path), format="file"))


def scan_paths(scanner: YaraScanner, paths: Iterable[Path]) -> Iterator[Alert | Rejected]:
    """Every alert of every file under `paths`, and a `Rejected` for each file or directory skipped."""
    for item in iter_files(paths):
        if isinstance(item, Rejected):
            scanner.stats.rejected += 1
            yield item
            continue
        outcome = scanner.scan_file(item)
        if isinstance(outcome, Rejected):
            yield outcome
        else:
            yield from outcome
