"""YARA over files: compile rule files with yara-x once, scan files or bytes, turn each hit into an `Alert`.

    ruleset = compile_rules([Path("rules/yara")])        # collect-all: bad files land in ruleset.failures
    scanner = ruleset.scanner(timeout_s=30, cache={})
    for item in scan_paths(scanner, [Path("/srv/www")]):  # Alert | Rejected, never raises for a file
        ...

Each rule file is compiled in its own namespace (its path relative to the directory it was found in, without
the suffix), so two files may use the same rule name. The external variables LOKI/THOR-style community rules
expect (`filename`, `filepath`, `extension`, `filetype`, `owner`) are defined for every rule set and set per
file before each scan.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import stat
from collections.abc import Iterable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yara_x

from correlator.errors import RuleLoadError
from correlator.model import Alert, EventOrigin, MatchedRule, Rejected, event_id_for

__all__ = [
    "DEFAULT_LEVEL",
    "DEFAULT_MAX_SIZE",
    "DEFAULT_TIMEOUT_S",
    "FILE_EXTERNALS",
    "PatternMatch",
    "ScanStats",
    "ScannedFile",
    "YaraHit",
    "YaraLoadError",
    "YaraRuleSet",
    "YaraScanner",
    "compile_rules",
    "guess_filetype",
    "iter_files",
    "level_from_meta",
    "scan_paths",
]

RULE_SUFFIXES = frozenset({".yar", ".yara"})
# Set per scanned file; every rule set defines them (default "") so community rules using them compile.
FILE_EXTERNALS = ("filename", "filepath", "extension", "filetype", "owner")
DEFAULT_TIMEOUT_S = 60
DEFAULT_MAX_SIZE = 64 * 1024 * 1024
DEFAULT_MATCHES_PER_PATTERN = 10
# Level of a rule whose meta names none (or none we understand): a YARA hit on a file is worth a look.
DEFAULT_LEVEL = "high"

_LEVEL_NAMES = {
    "informational": "informational", "info": "informational", "low": "low", "medium": "medium",
    "moderate": "medium", "high": "high", "critical": "critical", "crit": "critical",
}
_LEVEL_META_KEYS = ("severity", "level", "score")
# Numbers are read as 0-100 scores (the LOKI/THOR `score` convention): the first floor reached wins.
_SCORE_FLOORS = ((90, "critical"), (70, "high"), (40, "medium"), (20, "low"))
_LOCATION = re.compile(r"^\s*-->\s.*:(\d+):\d+\s*$")
_CARET_LABEL = re.compile(r"^\s*\d*\s*\|\s*\^+\s+(.+)$")
_MAGIC = (
    (b"MZ", "EXE"), (b"\x7fELF", "ELF"), (b"%PDF", "PDF"), (b"PK\x03\x04", "ZIP"), (b"Rar!\x1a\x07", "RAR"),
    (b"\x1f\x8b", "GZIP"), (b"7z\xbc\xaf\x27\x1c", "7Z"), (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "OLE"),
    (b"MDMP", "MDMP"), (b"\xcf\xfa\xed\xfe", "MACHO"), (b"\xce\xfa\xed\xfe", "MACHO"),
    (b"\xca\xfe\xba\xbe", "MACHO"),
)


class YaraLoadError(RuleLoadError):
    """A YARA rule file that could not be read or compiled; the other files of the set still load."""


# Rule side


@dataclass(frozen=True, slots=True)
class _RuleSource:
    path: Path
    namespace: str
    text: str


@dataclass(frozen=True, slots=True)
class YaraRuleSet:
    """Compiled rules plus what went into them. Build with `compile_rules`; scan with `scanner()`."""

    rules: yara_x.Rules
    files: tuple[Path, ...]
    namespaces: Mapping[str, Path]  # namespace -> the file its rules came from
    failures: tuple[YaraLoadError, ...]
    rule_count: int
    # Per-file externals some rule source mentions: their values are part of the scan cache key.
    file_externals_used: frozenset[str] = frozenset()

    @property
    def loaded_files(self) -> int:
        return len(self.files)

    def scanner(
        self,
        *,
        timeout_s: int = DEFAULT_TIMEOUT_S,
        max_size: int = DEFAULT_MAX_SIZE,
        cache: MutableMapping[str, tuple[YaraHit, ...]] | None = None,
        max_matches_per_pattern: int = DEFAULT_MATCHES_PER_PATTERN,
    ) -> YaraScanner:
        return YaraScanner(
            self,
            timeout_s=timeout_s,
            max_size=max_size,
            cache=cache,
            max_matches_per_pattern=max_matches_per_pattern,
        )


def compile_rules(
    paths: Sequence[Path],
    *,
    externals: Mapping[str, str | int | bool] | None = None,
    strict: bool = False,
) -> YaraRuleSet:
    """Compile every *.yar/*.yara under `paths` (directories, walked recursively, or single files).

    A file that cannot be read or compiled becomes a `YaraLoadError` in `failures` and contributes no rules
    (yara-x keeps the rules of a failed source that precede the error, so the set is rebuilt without failed
    files).
    `externals` adds global variables or overrides the default of a per-file one. `strict` raises the first
    failure instead of collecting them.
    """
    globals_ = _globals(externals)
    sources, failures = _read_sources(paths)
    include_dirs = sorted({str(path) for path in paths if path.is_dir()})
    while True:
        compiler, failed = _compile_pass(sources, globals_, include_dirs)
        if not failed:
            break
        failures.extend(failed)
        failed_paths = {error.path for error in failed}
        sources = [source for source in sources if str(source.path) not in failed_paths]
    if strict and failures:
        raise failures[0]
    rules = compiler.build()
    used = frozenset(
        name for name in FILE_EXTERNALS
        if any(re.search(rf"\b{name}\b", source.text) for source in sources)
    )
    return YaraRuleSet(
        rules=rules,
        files=tuple(source.path for source in sources),
        namespaces={source.namespace: source.path for source in sources},
        failures=tuple(failures),
        rule_count=sum(1 for _ in rules),
        file_externals_used=used,
    )


def _globals(externals: Mapping[str, str | int | bool] | None) -> dict[str, str | int | bool]:
    out: dict[str, str | int | bool] = dict.fromkeys(FILE_EXTERNALS, "")
    for name, value in (externals or {}).items():
        if name in FILE_EXTERNALS and not isinstance(value, str):
            kind = type(value).__name__
            raise TypeError(f"external {name!r} is set per file and must be a string, got {kind}")
        out[name] = value
    return out


def _read_sources(paths: Sequence[Path]) -> tuple[list[_RuleSource], list[YaraLoadError]]:
    sources: list[_RuleSource] = []
    failures: list[YaraLoadError] = []
    seen: set[Path] = set()
    taken: set[str] = set()
    for root in paths:
        if root.is_dir():
            found = sorted(p for p in root.rglob("*") if p.suffix.lower() in RULE_SUFFIXES and p.is_file())
            candidates = [(p, p.relative_to(root).with_suffix("").as_posix()) for p in found]
        elif root.exists():
            candidates = [(root, root.stem)]
        else:
            failures.append(YaraLoadError(str(root), "no such file or directory"))
            continue
        for path, name in candidates:
            resolved = path.resolve()
            if resolved in seen:
                continue
            seen.add(resolved)
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                failures.append(YaraLoadError(str(path), f"cannot read: {exc}"))
                continue
            namespace = _unique_namespace(name, root, taken)
            sources.append(_RuleSource(path, namespace, text))
    return sources, failures


def _unique_namespace(name: str, root: Path, taken: set[str]) -> str:
    """`name`, or (same file name under two rule directories) `<dir>/name`, or a numbered variant."""
    candidate = name
    if candidate in taken:
        candidate = f"{root.name}/{name}" if root.is_dir() else f"{root.parent.name}/{name}"
    number = 2
    base = candidate
    while candidate in taken:
        candidate = f"{base}~{number}"
        number += 1
    taken.add(candidate)
    return candidate


def _compile_pass(
    sources: Sequence[_RuleSource], globals_: Mapping[str, str | int | bool], include_dirs: Sequence[str]
) -> tuple[yara_x.Compiler, list[YaraLoadError]]:
    compiler = yara_x.Compiler(relaxed_re_syntax=True)
    for directory in include_dirs:
        compiler.add_include_dir(directory)
    for name, value in globals_.items():
        compiler.define_global(name, value)
    failed: list[YaraLoadError] = []
    for source in sources:
        compiler.new_namespace(source.namespace)
        try:
            compiler.add_source(source.text, origin=str(source.path))
        except yara_x.CompileError as exc:
            reason, line = _describe_compile_error(str(exc))
            failed.append(YaraLoadError(str(source.path), reason, line=line))
    return compiler, failed


def _describe_compile_error(message: str) -> tuple[str, int | None]:
    """yara-x's report -> (first line plus the caret's label, line number)."""
    lines = message.splitlines()
    reason = lines[0].strip() if lines else "compile error"
    line: int | None = None
    for text in lines[1:]:
        if line is None and (location := _LOCATION.match(text)):
            line = int(location.group(1))
        elif label := _CARET_LABEL.match(text):
            reason = f"{reason}: {label.group(1).strip()}"
            break
    return reason, line


def level_from_meta(meta: Iterable[tuple[str, Any]]) -> str:
    """informational|low|medium|high|critical from meta `severity`, else `level`, else `score` (names or 0-100
    numbers); `DEFAULT_LEVEL` ("high") when none of them is understood."""
    values: dict[str, Any] = {}
    for key, value in meta:
        values.setdefault(key.lower(), value)
    for key in _LEVEL_META_KEYS:
        level = _level_of(values.get(key))
        if level is not None:
            return level
    return DEFAULT_LEVEL


def _level_of(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _LEVEL_NAMES:
            return _LEVEL_NAMES[text]
        if not text.isdigit():
            return None
        value = int(text)
    if isinstance(value, int | float):
        return next((level for floor, level in _SCORE_FLOORS if value >= floor), "informational")
    return None


# Scan side


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
        event_id=event_id_for(f"{file.path}\n{file.sha256}") if file.path else file.sha256[:32],
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
