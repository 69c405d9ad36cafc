"""Runtime loading: correlation rules from the texts the Sigma load already read."""

from __future__ import annotations

import shutil
from pathlib import Path

from correlator.runtime import RuntimeOptions, load_runtime, scan_correlation_rules
from correlator.settings import PROJECT_ROOT
from correlator.sigma.loader import load_rules, rule_texts
from correlator.sigma.sources import load_sources

BASE_RULE = """title: Failed logon
id: 53ba33fd-3a50-4468-a5ef-c583635cfa92
name: failed
logsource: {product: windows, service: security}
detection:
  sel: {EventID: 4625}
  condition: sel
level: low
"""
CORRELATION = """title: Many failures
id: 0e95725d-7320-415d-80f7-004da920fc11
correlation:
  type: event_count
  rules: [failed]
  group-by: [TargetUserName]
  timespan: 5m
  condition: {gte: 10}
level: high
"""


def _options(paths: list[Path], **kwargs: object) -> RuntimeOptions:
    return RuntimeOptions(rule_paths=paths, yara=False, playbooks=[], **kwargs)  # type: ignore[arg-type]


def test_rule_texts_keep_correlation_files_and_the_others_only_when_needed(tmp_path: Path) -> None:
    base = (tmp_path / "base.yml", BASE_RULE.encode())
    corr = (tmp_path / "corr.yml", CORRELATION.encode())
    texts = rule_texts([base, corr])
    assert texts.correlation == ((str(corr[0]), CORRELATION),)
    assert texts.others == ((str(base[0]), BASE_RULE),)
    assert rule_texts([base]).others == ()  # no correlation rule: nothing to resolve against
    assert rule_texts([(tmp_path / "bad.yml", b"correlation: \xff")]).correlation == ()  # not UTF-8: left out


def test_runtime_loads_correlations_from_the_sigma_loads_texts_without_reading_the_files(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "base.yml").write_text(BASE_RULE)
    (rules / "corr.yml").write_text(CORRELATION)
    ruleset = load_rules([rules], sources=load_sources(None))
    shutil.rmtree(rules)  # the runtime must not need them again
    runtime = load_runtime(_options([rules], rule_texts=ruleset.texts))
    assert [r.id for r in runtime.correlations.rules] == ["0e95725d-7320-415d-80f7-004da920fc11"]
    assert runtime.correlations.rules[0].rules == ("53ba33fd-3a50-4468-a5ef-c583635cfa92",)  # name resolved
    assert runtime.correlations.errors == ()
    assert load_runtime(_options([rules])).correlations.rules == ()  # read again: they are gone


def test_texts_give_what_reading_the_files_gives_for_the_repository_rules() -> None:
    paths = [PROJECT_ROOT / "rules" / "sigma"]
    ruleset = load_rules(paths, sources=load_sources(None))
    documents, _base, problems = scan_correlation_rules(paths)
    assert len(documents) >= 3  # the repository's own correlation rules
    from_texts = load_runtime(_options(paths, rule_texts=ruleset.texts)).correlations
    from_files = load_runtime(_options(paths)).correlations
    assert from_texts.rules == from_files.rules
    assert from_texts.errors == from_files.errors == ()
    assert problems == []
    assert len(ruleset.texts.correlation) == len(documents)
