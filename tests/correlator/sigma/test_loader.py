"""Loading rule directories: collect-all errors with file and line, filters, the compiled-rule cache."""

from __future__ import annotations

from pathlib import Path

from correlator.sigma.loader import load_rules
from tests.correlator.sigma.conftest import proc, rule

GOOD = rule("sel:\n  CommandLine|contains: 'whoami'\ncondition: sel", title="good",
            rule_id="11111111-1111-4111-8111-111111111111")


def test_bad_rules_are_reported_and_the_others_load(load):
    bad_modifier = rule("sel:\n  CommandLine|contians: 'x'\ncondition: sel", title="typo")
    bad_yaml = "title: broken\nlogsource: [unclosed\n"
    loaded = load(GOOD, bad_modifier, bad_yaml)
    assert [r.meta.title for r in loaded.ruleset.rules] == ["good"]
    by_file = {Path(e.path).name: e for e in loaded.ruleset.errors}
    assert set(by_file) == {"rule_001.yml", "rule_002.yml"}
    typo = by_file["rule_001.yml"]
    assert typo.reason == "Unknown modifier 'contians'"
    assert typo.line == 10
    assert str(typo).endswith("rule_001.yml:10: Unknown modifier 'contians'")
    assert by_file["rule_002.yml"].reason.startswith("invalid YAML")
    assert by_file["rule_002.yml"].line == 3
    assert loaded.hits(proc("whoami"))


def test_missing_condition_and_logsource(load):
    loaded = load("title: t\nid: 22222222-2222-4222-8222-222222222222\nlogsource:\n  product: windows\n"
                  "detection:\n  sel:\n    a: b\n")
    assert not loaded.ruleset.rules
    assert "condition" in loaded.ruleset.errors[0].reason.lower()


def test_duplicate_rule_id_is_reported(load):
    loaded = load(GOOD, GOOD.replace("title: good", "title: copy"))
    assert len(loaded.ruleset.rules) == 1
    assert "duplicate rule id 11111111-1111-4111-8111-111111111111" in loaded.ruleset.errors[0].reason


def test_unreadable_file_is_reported(load, tmp_path, sources):
    rs = load_rules([tmp_path / "missing.yml"], sources=sources)
    assert "cannot read" in rs.errors[0].reason


def test_meta_filter_applies_as_exception(load):
    flt = """title: allow admin whoami
id: 33333333-3333-4333-8333-333333333333
logsource:
  category: process_creation
  product: windows
filter:
  rules:
    - 11111111-1111-4111-8111-111111111111
  selection:
    User: 'CORP\\admin'
  condition: not selection
"""
    loaded = load(GOOD, files={"filter.yml": flt})
    assert loaded.ruleset.filters == 1
    assert loaded.hits(proc("whoami", User="CORP\\bob"))
    assert not loaded.hits(proc("whoami", User="corp\\admin"))


def test_cache_warm_load_equals_cold_and_changed_rule_recompiles_alone(tmp_path, sources):
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    cache = tmp_path / "cache"
    texts = {f"r{i}.yml": rule(f"sel:\n  CommandLine|contains: 'needle{i}'\ncondition: sel", title=f"r{i}")
             for i in range(5)}
    for name, text in texts.items():
        (rules_dir / name).write_text(text)
    cold = load_rules([rules_dir], sources=sources, cache_dir=cache)
    assert (cold.stats.compiled, cold.stats.cache_hits) == (5, 0)
    warm = load_rules([rules_dir], sources=sources, cache_dir=cache)
    assert (warm.stats.compiled, warm.stats.cache_hits) == (0, 5)
    assert warm.rules == cold.rules
    (rules_dir / "r3.yml").write_text(texts["r3.yml"].replace("needle3", "changed3"))
    third = load_rules([rules_dir], sources=sources, cache_dir=cache)
    assert (third.stats.compiled, third.stats.cache_hits) == (1, 4)
    assert "changed3" in repr(third.rules[3].variants)


def test_corrupt_cache_entry_is_recompiled(tmp_path, sources):
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "r.yml").write_text(GOOD)
    cache = tmp_path / "cache"
    load_rules([rules_dir], sources=sources, cache_dir=cache)
    for entry in cache.iterdir():
        entry.write_bytes(b"garbage")
    again = load_rules([rules_dir], sources=sources, cache_dir=cache)
    assert again.stats.compiled == 1
    assert len(again.rules) == 1
