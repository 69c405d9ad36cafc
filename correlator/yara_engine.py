"""YARA over files: compile rule files with yara-x once, scan files or bytes, turn each hit into an `Alert`.

    ruleset = compile_rules([Path("rules/yara")])        # collect-all: bad files land in ruleset.failures
    scanner = ruleset.scanner(timeout_s=30, cache={})
    for item in scan_paths(scanner, [Path("/srv/www")]):  # Alert | Rejected, never raises for a file
        ...

Each rule file is compiled in its own namespace (its path relative to the directory it was found in, without
the suffix), so two files may use the same rule name. The external variables LOKI/THOR-style community rules
expect (`filename`, `filepath`, `extension`, `filetype`, `owner`) are defined for every rule set and set per
file before each scan.

Compiling lives in `correlator.yara_rules`, scanning in `correlator.yara_scan`; this module re-exports both.
"""

from __future__ import annotations

from correlator.yara_rules import (
    DEFAULT_LEVEL,
    DEFAULT_MATCHES_PER_PATTERN,  # noqa: F401 - re-exported: public here before the split
    DEFAULT_MAX_SIZE,
    DEFAULT_TIMEOUT_S,
    FILE_EXTERNALS,
    RULE_SUFFIXES,  # noqa: F401 - re-exported: public here before the split
    YaraLoadError,
    YaraRuleSet,
    compile_rules,
    level_from_meta,
)
from correlator.yara_scan import (
    PatternMatch,
    ScannedFile,
    ScanStats,
    YaraHit,
    YaraScanner,
    guess_filetype,
    iter_files,
    scan_paths,
)

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
