"""Sigma conditions: boolean operators, parentheses, `1 of` / `all of` with wildcards and `them`."""

from __future__ import annotations

import pytest

from tests.correlator.sigma.conftest import proc, rule

DETECTION = """
sel_a:
  CommandLine|contains: 'alpha'
sel_b:
  CommandLine|contains: 'beta'
filter_x:
  CommandLine|contains: 'xray'
filter_y:
  CommandLine|contains: 'yankee'
_hidden:
  CommandLine|contains: 'zulu'
condition: {condition}
"""

CASES = [
    ("sel_a and sel_b", {"alpha beta": True, "alpha": False}),
    ("sel_a or sel_b", {"beta": True, "gamma": False}),
    ("sel_a and not sel_b", {"alpha": True, "alpha beta": False}),
    ("not sel_a", {"beta": True, "alpha": False}),
    ("(sel_a or sel_b) and not (filter_x or filter_y)", {"beta": True, "beta yankee": False, "xray": False}),
    ("sel_a or sel_b and filter_x", {"alpha": True, "beta": False, "beta xray": True}),  # and binds tighter
    ("1 of sel_*", {"beta": True, "xray": False}),
    ("all of sel_*", {"alpha beta": True, "alpha": False}),
    ("1 of sel_* and not 1 of filter_*", {"alpha": True, "alpha yankee": False, "alpha xray": False}),
    ("all of sel_* and not all of filter_*", {"alpha beta xray": True, "alpha beta xray yankee": False}),
    ("1 of them", {"xray": True, "zulu": False, "nothing": False}),
    ("all of them", {"alpha beta xray yankee": True, "alpha beta xray": False}),
    ("1 of sel_a*", {"alpha": True, "beta": False}),
]


@pytest.mark.parametrize(("condition", "expectations"), CASES, ids=[c for c, _ in CASES])
def test_condition(load, condition, expectations):
    loaded = load(rule(DETECTION.format(condition=condition)))
    assert not loaded.ruleset.errors, loaded.ruleset.errors
    for command_line, expected in expectations.items():
        assert loaded.hits(proc(command_line)) is expected, (condition, command_line)


def test_several_conditions_any_fires(load):
    text = rule("sel_a:\n  CommandLine|contains: 'alpha'\nsel_b:\n  CommandLine|contains: 'beta'\n"
                "condition:\n  - sel_a\n  - sel_b")
    loaded = load(text)
    assert loaded.hits(proc("beta"))
    assert loaded.hits(proc("alpha"))
    assert not loaded.hits(proc("gamma"))


def test_unknown_identifier_is_a_load_error(load):
    loaded = load(rule("sel:\n  CommandLine: 'x'\ncondition: sel and nosuch"))
    assert not loaded.ruleset.rules
    assert "nosuch" in loaded.ruleset.errors[0].reason


def test_one_alert_per_rule_and_event(load):
    loaded = load(rule("sel:\n  CommandLine|contains: 'a'\ncondition: sel"))
    alerts = loaded.engine.match(proc("aaaa"))
    assert len(alerts) == 1
    assert alerts[0].matched == {"Channel": "Microsoft-Windows-Sysmon/Operational", "CommandLine": "aaaa", "EventID": 1}


def test_or_of_regexes_on_one_field_keeps_each_regex_flags(load):
    loaded = load(rule("""
        sel_a:
          CommandLine|re|i: 'fo+x'
        sel_b:
          CommandLine|re: 'BAR$'
        sel_c:
          CommandLine|re|m: '^baz$'
        sel_d:
          CommandLine|re: '(q)\\1'
        condition: 1 of sel_*
    """))
    (variant,) = [v for v in loaded.ruleset.rules[0].variants if v.profile == "sysmon"]
    assert variant.ir[0] == "or"
    assert len(variant.ir[1]) == 2  # three merged into one alternation, the backreference apart
    cases = {"xFOOX": True, "xBAR": True, "xbar": False, "BAR\nx": False, "a\nbaz\nc": True, "xbazx": False,
             "qq": True, "q": False}
    for text, expected in cases.items():
        assert loaded.hits(proc(text)) is expected, text
