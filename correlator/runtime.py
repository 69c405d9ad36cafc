"""Everything around the Sigma engine that a run needs, loaded from files: correlation rules, threat intel, the
asset inventory, the allowlist, the scoring weights, the suppression policy, the cases configuration, the
playbooks and the YARA rules for event payloads. One loader for `socctl ingest` and the running engine, so both
behave the same.

Rule folders are read once for correlation rules: files holding a ``correlation:`` document are parsed in full;
of the others only the top-level ``id:`` and ``name:`` of each document are taken (the base rules that correlation
rules may reference by name), so a warm start over the whole SigmaHQ corpus stays fast. Correlation rules that do
not load are reported with file, line and reason (`Runtime.problems`) and the others work; so are YARA rule
files that do not compile. Configuration files (inventory, scoring, suppression, cases) are fail-fast: a broken one
raises its located error.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

from correlator.analysis import Analyzer
from correlator.cases.config import CasesConfig, load_cases_config
from correlator.cases.grouping import CaseGrouper, group_key
from correlator.cases.playbooks import PlaybookSet, load_playbooks
from correlator.correlation import BaseRule, CorrelationEngine, CorrelationSet, EngineSettings, load_correlation_texts
from correlator.errors import CorrelatorError
from correlator.pipeline import Detection
from correlator.scoring import RuleHistory, ScoringConfig, load_scoring_config
from correlator.settings import default_playbooks_dir, default_yara_rules_dir
from correlator.yara_payload import (
    DEFAULT_CACHE_ENTRIES,
    DEFAULT_PAYLOAD_MAX_SIZE,
    DEFAULT_PAYLOAD_TIMEOUT_S,
    PayloadScanner,
)

if TYPE_CHECKING:
    from correlator.allowlist import Allowlist, AllowlistEntry
    from correlator.assets import Inventory
    from correlator.intel_index import ThreatIntel
    from correlator.sigma.engine import SigmaEngine
    from correlator.sigma.loader import RuleTexts
    from correlator.suppression import SuppressionPolicy

__all__ = ["Problem", "Runtime", "RuntimeConfigError", "RuntimeOptions", "base_rules", "default_yara_rules_dir",
           "load_payload_scanner", "load_runtime", "load_suppression_policy", "scan_correlation_rules"]

_CORRELATION: Final = re.compile(r"^correlation\s*:", re.MULTILINE)
_DOC_SPLIT: Final = re.compile(r"^---\s*$", re.MULTILINE)
_TOP_ID: Final = re.compile(r"^id\s*:\s*['\"]?([^'\"#\s]+)", re.MULTILINE)
_TOP_NAME: Final = re.compile(r"^name\s*:\s*['\"]?([^'\"#\n]+?)['\"]?\s*(?:#.*)?$", re.MULTILINE)


class RuntimeConfigError(CorrelatorError):
    """A configuration file of the run that cannot be used (names the file)."""


@dataclass(frozen=True, slots=True)
class Problem:
    """Something that did not load (the run goes on without it)."""

    what: str  # correlation rule | playbook | allowlist entry | YARA rule file
    path: str
    reason: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class RuntimeOptions:
    rule_paths: Sequence[Path] = ()
    # What the Sigma load of `rule_paths` read for the correlation loader (`RuleSet.texts`); None: read them here.
    rule_texts: RuleTexts | None = None
    intel: Sequence[Path] = ()
    assets: Path | None = None
    allowlist_files: Sequence[Path] = ()
    scoring: Path | None = None
    suppression: Path | None = None
    suppress: bool = True
    cases_config: Path | None = None
    playbooks: Sequence[Path] | None = None  # None: the repository's playbooks/
    lateness_ms: int = 0
    # YARA on event payloads (carved HTTP bodies, uploaded files): rule files or directories (None: the
    # repository's rules/yara), the per-payload scan timeout and size limit, the hit cache's size (contents).
    yara: bool = True
    yara_rules: Sequence[Path] | None = None
    yara_timeout_s: int = DEFAULT_PAYLOAD_TIMEOUT_S
    yara_max_size: int = DEFAULT_PAYLOAD_MAX_SIZE
    yara_cache_entries: int = DEFAULT_CACHE_ENTRIES

    def __post_init__(self) -> None:
        if self.yara_timeout_s < 1:
            raise ValueError(f"yara_timeout_s must be at least 1 second, got {self.yara_timeout_s}")
        if self.yara_max_size < 0 or self.yara_cache_entries < 1:
            raise ValueError("yara_max_size must be >= 0 and yara_cache_entries >= 1")


@dataclass
class Runtime:
    correlations: CorrelationSet
    scoring: ScoringConfig
    cases: CasesConfig
    playbooks: PlaybookSet
    intel: ThreatIntel | None = None
    inventory: Inventory | None = None
    allowlist: Allowlist | None = None
    suppression: SuppressionPolicy | None = None
    lateness_ms: int = 0
    problems: list[Problem] = field(default_factory=list)
    yara: PayloadScanner | None = None

    def correlation_engine(self) -> CorrelationEngine | None:
        if not self.correlations.rules:
            return None
        return CorrelationEngine(self.correlations, EngineSettings(lateness_ms=self.lateness_ms))

    def detection(self, engine: SigmaEngine, correlation: CorrelationEngine | None, now_ms: int) -> Detection:
        """The detection stage for `engine`'s rules: which rule ids feed correlation (and with which fields),
        which are withheld (`generate`)."""
        fields: dict[str, tuple[str, ...]] = {}
        withheld: set[str] = set()
        for rule in engine.rules:
            rule_id = rule.meta.id
            if correlation is not None:
                needed = correlation.fields_for(rule_id)
                if needed is not None:
                    fields[rule_id] = needed
            if not self.correlations.emits_own_alerts(rule_id):
                withheld.add(rule_id)
        return Detection(engine, intel=self.intel, inventory=self.inventory, allowlist=self.allowlist,
                         correlation_fields=fields, withheld=frozenset(withheld), now_ms=now_ms, yara=self.yara)

    def grouper(self) -> CaseGrouper:
        return CaseGrouper(playbooks=self.playbooks, grouping=self.cases.grouping, sla=self.cases.sla,
                           routing=self.cases.routing)

    def analyzer(self, correlation: CorrelationEngine | None,
                 history: Mapping[str, RuleHistory] | None = None) -> Analyzer:
        suppressor = None
        if self.suppression is not None:
            from correlator.suppression import Suppressor

            suppressor = Suppressor(self.suppression)
        grouping = self.cases.grouping
        return Analyzer(self.scoring, correlation=correlation, suppressor=suppressor, inventory=self.inventory,
                        key_of=lambda alert: group_key(alert, grouping), related_window_ms=grouping.window_ms,
                        history=history)


def scan_correlation_rules(paths: Iterable[Path]) -> tuple[list[tuple[str, str]], list[BaseRule], list[Problem]]:
    """Rule files -> (texts of files with correlation rules, base rules of the others, unreadable files). The base
    rules (top-level ``id:``/``name:`` of each document) are taken only when some file holds a correlation rule."""
    documents: list[tuple[str, str]] = []
    others: list[tuple[str, str]] = []
    problems: list[Problem] = []
    for root in paths:
        files = sorted(p for p in root.rglob("*") if p.suffix in (".yml", ".yaml")) if root.is_dir() else [root]
        for file in files:
            try:
                text = file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                problems.append(Problem("rule file", str(file), f"cannot read: {exc}"))
                continue
            (documents if _CORRELATION.search(text) else others).append((str(file), text))
    return documents, base_rules(others) if documents else [], problems


def base_rules(texts: Iterable[tuple[str, str]]) -> list[BaseRule]:
    """The rules correlation rules may reference, from (path, text) of rule files: the top-level ``id:`` and
    ``name:`` of each document."""
    base: list[BaseRule] = []
    for path, text in texts:
        for part in _DOC_SPLIT.split(text):
            found_id, found_name = _TOP_ID.search(part), _TOP_NAME.search(part)
            if found_id or found_name:
                base.append(BaseRule(found_id.group(1) if found_id else None,
                                     found_name.group(1).strip() if found_name else None, path))
    return base


def _load_allowlist(files: Sequence[Path], entries: Sequence[AllowlistEntry],
                    problems: list[Problem]) -> Allowlist | None:
    """The store's entries plus those of the files; a bad entry of a file is reported, the others apply."""
    if not files and not entries:
        return None
    from correlator.allowlist import Allowlist, load_allowlist_file

    everything = {entry.id: entry for entry in entries}
    for path in files:
        loaded = load_allowlist_file(path)
        problems.extend(Problem("allowlist entry", e.source, f"{e.key}: {e.reason}" if e.key else e.reason, e.line)
                        for e in loaded.errors)
        for entry in loaded.entries:
            if entry.id in everything:
                problems.append(Problem("allowlist entry", str(path), f"entry {entry.id} is also in the store: "
                                        "the store's version applies"))
                continue
            everything[entry.id] = entry
    return Allowlist(tuple(everything.values()))


def load_suppression_policy(path: Path) -> SuppressionPolicy:
    """A suppression policy file (YAML); errors name the file and the key."""
    import yaml

    from correlator.suppression import SuppressionPolicy, SuppressionPolicyError

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise RuntimeConfigError(f"{path}: cannot read the suppression policy: {exc}") from exc
    try:
        return SuppressionPolicy.from_dict(data)
    except SuppressionPolicyError as exc:
        raise RuntimeConfigError(f"{path}: {exc}") from exc



def load_payload_scanner(options: RuntimeOptions, problems: list[Problem]) -> PayloadScanner | None:
    """The YARA stage of `options` (None when turned off or no rule loads); each rule file that does not
    compile is a problem, the others load."""
    if not options.yara:
        return None
    from correlator.yara_rules import compile_rules

    paths = list(options.yara_rules) if options.yara_rules is not None else [default_yara_rules_dir()]
    ruleset = compile_rules(paths)
    problems.extend(Problem("YARA rule file", e.path, e.reason, e.line) for e in ruleset.failures)
    if ruleset.rule_count == 0:
        return None
    return PayloadScanner(ruleset, timeout_s=options.yara_timeout_s, max_size=options.yara_max_size,
                          cache_entries=options.yara_cache_entries)


def load_runtime(options: RuntimeOptions, *, allowlist_entries: Sequence[AllowlistEntry] = ()) -> Runtime:
    """Load every component named in `options` (see the module doc for what is collect-all and what fails fast).
    `allowlist_entries`: entries kept in the store, added to those of `options.allowlist_files`."""
    problems: list[Problem] = []
    if options.rule_texts is not None:  # the Sigma loader read the files (and reports those it could not)
        documents = list(options.rule_texts.correlation)
        base = base_rules(options.rule_texts.others) if documents else []
    else:
        documents, base, unreadable = scan_correlation_rules(options.rule_paths)
        problems.extend(unreadable)
    correlations = load_correlation_texts(documents, base_rules=base)
    problems.extend(Problem("correlation rule", e.path, e.reason, e.line) for e in correlations.errors)
    playbooks = load_playbooks(options.playbooks if options.playbooks is not None else [default_playbooks_dir()])
    problems.extend(Problem("playbook", e.source, f"{e.key}: {e.reason}" if e.key else e.reason, e.line)
                    for e in playbooks.errors)
    intel = None
    if options.intel:
        from correlator.intel import load_intel

        intel = load_intel(options.intel)
    inventory = None
    if options.assets is not None:
        from correlator.assets_load import load_inventory

        inventory = load_inventory(options.assets)
    suppression = None
    if options.suppress:
        from correlator.suppression import SuppressionPolicy

        suppression = load_suppression_policy(options.suppression) if options.suppression else SuppressionPolicy()
    return Runtime(
        correlations=correlations,
        scoring=load_scoring_config(options.scoring),
        cases=load_cases_config(options.cases_config),
        playbooks=playbooks,
        intel=intel,
        inventory=inventory,
        allowlist=_load_allowlist(options.allowlist_files, allowlist_entries, problems),
        suppression=suppression,
        lateness_ms=options.lateness_ms,
        problems=problems,
        yara=load_payload_scanner(options, problems),
    )

