"""Compiling YARA rule files with yara-x: `compile_rules` -> `YaraRuleSet`, rule levels from meta.

Each rule file is compiled in its own namespace (its path relative to the directory it was found in, without
the suffix), so two files may use the same rule name. The external variables LOKI/THOR-style community rules
expect (`filename`, `filepath`, `extension`, `filetype`, `owner`) are defined for every rule set; the scanner
(`correlator.yara_scan`) sets them per file before each scan.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yara_x

from correlator.errors import RuleLoadError

if TYPE_CHECKING:
    from correlator.yara_scan import YaraHit, YaraScanner

__all__ = [
    "DEFAULT_LEVEL",
    "DEFAULT_MAX_SIZE",
    "DEFAULT_TIMEOUT_S",
    "FILE_EXTERNALS",
    "YaraLoadError",
    "YaraRuleSet",
    "compile_rules",
    "level_from_meta",
]

RULE_SUFFIXES = frozenset({".yar", ".yara"})
# Set per scanned file; every rule set defines them (default "") so community rules using them compile.
FILE_EXTERNALS = ("filename", "filepath", "extension", "filetype", "owner")
# Scanner defaults, here because `YaraRuleSet.scanner` takes them too (correlator.yara_scan imports them).
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


class YaraLoadError(RuleLoadError):
    """A YARA rule file that could not be read or compiled; the other files of the set still load."""


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
        from correlator.yara_scan import YaraScanner  # here: correlator.yara_scan imports this module

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
