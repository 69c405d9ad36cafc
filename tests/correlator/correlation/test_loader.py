from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from sigma.collection import SigmaCollection

from correlator.correlation import (
    BaseRule,
    ConditionOp,
    CorrelationRule,
    CorrelationRuleError,
    CorrelationSet,
    CorrelationType,
    load_correlation_collection,
    load_correlation_paths,
    load_correlation_texts,
)
from tests.correlator.correlation.conftest import BASE, FAILED_ID, rules_text

Load = Callable[..., CorrelationSet]
LINE = BASE.count("\n") + 2  # the first correlation document's line in rules_text(...)


def one(**correlation: object) -> str:
    """A correlation rule named c1 whose `correlation:` section is given as a flow map."""
    body = ", ".join(f"{key.replace('_', '-')}: {value}" for key, value in correlation.items())
    return f"title: c\nname: c1\ncorrelation: {{{body}}}"


def test_loads_every_type_and_resolves_names_and_ids(load: Load) -> None:
    rules = load("""
        title: By id
        id: 0e95725d-7320-415d-80f7-004da920fc11
        level: high
        tags: [attack.credential-access, attack.t1110]
        correlation:
          type: event_count
          rules: [53ba33fd-3a50-4468-a5ef-c583635cfa92]
          group-by: [User]
          timespan: 90m
          condition: {gte: 10}
        ---
        title: By name, range
        name: spread
        correlation:
          type: value_count
          rules: failed
          group-by: User
          timespan: 1d
          condition: {gt: 100, lte: 200, field: WorkstationName}
    """)
    assert rules.errors == ()
    first, second = rules.rules
    assert (first.id, first.type, first.rules, first.timespan_ms, first.level, first.tags) == (
        "0e95725d-7320-415d-80f7-004da920fc11", CorrelationType.EVENT_COUNT, (FAILED_ID,), 90 * 60_000, "high",
        ("attack.credential-access", "attack.t1110"))
    assert first.condition.bounds == ((ConditionOp.GTE, 10),)
    assert first.eager
    assert (second.id, second.rules, second.group_by) == ("spread", (FAILED_ID,), ("User",))
    assert second.condition.bounds == ((ConditionOp.GT, 100), (ConditionOp.LTE, 200))
    assert second.condition.field == "WorkstationName"
    assert not second.eager
    assert second.condition.holds(150)
    assert not second.condition.holds(100)
    assert not second.condition.holds(201)
    assert [b.canonical for b in rules.base_rules] == [FAILED_ID]


@pytest.mark.parametrize(
    ("kind", "condition"),
    [("value_sum", "{gte: 10, field: bytes}"), ("value_avg", "{gt: 1.5, field: bytes}"),
     ("value_percentile", "{gte: 100, field: bytes, percentile: 95}"), ("value_median", "{lt: 3, field: bytes}")],
    ids=["value_sum", "value_avg", "value_percentile", "value_median"],
)
def test_loads_the_v2_1_metric_types(load: Load, kind: str, condition: str) -> None:
    rules = load(one(type=kind, rules="[transfer]", group_by="[host.name]", timespan="5m", condition=condition))
    assert rules.errors == ()
    assert rules.rules[0].type == CorrelationType(kind)


def test_temporal_defaults_to_every_rule(load: Load) -> None:
    rules = load(one(type="temporal", rules="[failed, success, new_conn]", group_by="[User]", timespan="5m"))
    assert rules.rules[0].condition.bounds == ((ConditionOp.GTE, 3),)


@pytest.mark.parametrize(
    ("correlation", "reason"),
    [
        (one(type="event_count", rules="[nope]", group_by="[User]", timespan="5m", condition="{gte: 2}"),
         "unknown rule 'nope' in rules"),
        (one(type="event_count", rules="[failed]", group_by="[User]", timespan="5x", condition="{gte: 2}"),
         "Timespan '5x' is invalid."),
        (one(type="event_count", rules="[failed]", group_by="[User]", timespan="0m", condition="{gte: 2}"),
         "Timespan '0m' must be greater than zero."),
        (one(type="value_count", rules="[failed]", group_by="[User]", timespan="5m", condition="{gte: 2}"),
         "Value count correlation rule without field reference"),
        (one(type="value_percentile", rules="[failed]", group_by="[User]", timespan="5m",
             condition="{gte: 2, field: x}"),
         "value_percentile correlation rule without condition percentile"),
        (one(type="foo", rules="[failed]", group_by="[User]", timespan="5m", condition="{gte: 2}"),
         "'foo' is no valid Sigma correlation type"),
        (one(type="event_count", rules="[failed]", group_by="[User]", timespan="5m"),
         "correlation rule without a valid condition (a map such as {gte: 10})"),
        (one(type="event_count", rules="[failed]", group_by="[User]", timespan="5m", condition="{gte: many}"),
         "'many' is no valid Sigma correlation condition count"),
        (one(type="event_count", rules="[failed]", group_by="[User]", timespan="5m", condition="{gte: 2, foo: 3}"),
         "unknown condition operator 'foo'"),
        (one(type="temporal_ordered", rules="[failed, success]", group_by="[User]", timespan="5m",
             condition="{gte: 1}"),
         "temporal_ordered supports only the default condition (every rule, in order)"),
        (one(type="temporal", rules="[failed, success]", group_by="[User]", timespan="5m",
             condition="'failed and success'"),
         "extended (boolean) correlation conditions are not supported"),
        (one(type="temporal", rules="[failed, success]", group_by="[ip]", timespan="5m",
             aliases="{ip: {failed: source.ip, transfer: destination.ip}}"),
         "alias 'ip' maps rule 'transfer', which is not in rules"),
        ("title: c\ncorrelation: {type: event_count, rules: [failed], timespan: 5m, condition: {gte: 2}}",
         "correlation rule without id or name"),
        ("title: c\nname: failed\ncorrelation: {type: event_count, rules: [success], timespan: 5m, "
         "condition: {gte: 2}}",
         "duplicate rule id or name 'failed' (also in rules/test.yml)"),
    ],
    ids=["unknown-rule", "bad-timespan", "zero-timespan", "value-count-without-field", "percentile-without-pct",
         "unknown-type", "no-condition", "condition-not-a-number", "unknown-operator", "ordered-with-condition",
         "extended-condition", "alias-outside-rules", "no-id-or-name", "id-taken-by-base-rule"],
)
def test_bad_rules_are_reported_with_file_line_and_reason(load: Load, correlation: str, reason: str) -> None:
    rules = load(correlation)
    assert rules.rules == ()
    assert [(e.path, e.line, e.reason) for e in rules.errors] == [("rules/test.yml", LINE, reason)]
    assert str(rules.errors[0]) == f"rules/test.yml:{LINE}: {reason}"


def test_collect_all_reports_every_failure_and_loads_the_rest(load: Load) -> None:
    rules = load("""
        title: ok
        name: ok
        correlation: {type: event_count, rules: [failed], group-by: [User], timespan: 5m, condition: {gte: 2}}
        ---
        title: a
        name: ca
        correlation: {type: event_count, rules: [nope], group-by: [User], timespan: 5m, condition: {gte: 2}}
        ---
        title: above a
        name: cb
        correlation: {type: event_count, rules: [ca], group-by: [User], timespan: 5m, condition: {gte: 2}}
        ---
        title: cycle 1
        name: x1
        correlation: {type: event_count, rules: [x2], group-by: [User], timespan: 5m, condition: {gte: 2}}
        ---
        title: cycle 2
        name: x2
        correlation: {type: event_count, rules: [x1], group-by: [User], timespan: 5m, condition: {gte: 2}}
        ---
        title: dup
        name: ok
        correlation: {type: event_count, rules: [failed], group-by: [User], timespan: 5m, condition: {gte: 3}}
        ---
        title: above a broken syntax rule
        name: cc
        correlation: {type: event_count, rules: [cd], group-by: [User], timespan: 5m, condition: {gte: 2}}
        ---
        title: broken syntax
        name: cd
        correlation: {type: event_count, rules: [failed], group-by: [User], timespan: 1x, condition: {gte: 2}}
    """)
    assert [r.id for r in rules.rules] == ["ok"]
    assert [str(e) for e in rules.errors] == [
        f"rules/test.yml:{LINE + 4}: unknown rule 'nope' in rules",
        f"rules/test.yml:{LINE + 8}: references correlation rule 'ca', which failed to load",
        f"rules/test.yml:{LINE + 12}: reference cycle: x1 -> x2 -> x1",
        f"rules/test.yml:{LINE + 16}: reference cycle: x1 -> x2 -> x1",
        f"rules/test.yml:{LINE + 20}: duplicate rule id or name 'ok' (also in rules/test.yml:{LINE})",
        f"rules/test.yml:{LINE + 24}: references correlation rule 'cd', which failed to load",
        f"rules/test.yml:{LINE + 28}: Timespan '1x' is invalid.",
    ]
    assert all(isinstance(e, CorrelationRuleError) for e in rules.errors)
    assert rules.errors[0].rule_id == "ca"


def test_fail_fast_raises_the_first_failure() -> None:
    text = rules_text(one(type="event_count", rules="[nope]", group_by="[User]", timespan="5m",
                          condition="{gte: 2}"))
    with pytest.raises(CorrelationRuleError) as info:
        load_correlation_texts([("r.yml", text)], fail_fast=True)
    assert str(info.value) == f"r.yml:{LINE}: unknown rule 'nope' in rules"


def test_invalid_yaml_is_reported_with_its_line() -> None:
    rules = load_correlation_texts([("bad.yml", "title: x\nid: [oops\n"), ("good.yml", rules_text(
        one(type="event_count", rules="[failed]", group_by="[User]", timespan="5m", condition="{gte: 2}")))])
    assert [str(e) for e in rules.errors] == ["bad.yml:3: invalid YAML: expected ',' or ']', but got '<stream end>'"]
    assert [r.id for r in rules.rules] == ["c1"]


def test_references_resolve_across_files_and_to_known_base_rules(tmp_path: Path) -> None:
    (tmp_path / "base.yml").write_text(BASE)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "corr.yaml").write_text(textwrap.dedent("""
        title: external
        name: ext
        correlation: {type: temporal, rules: [failed, compiled_elsewhere], group-by: [User], timespan: 5m}
    """))
    (tmp_path / "notes.txt").write_text("not a rule")
    rules = load_correlation_paths([tmp_path], base_rules=[BaseRule("elsewhere-id", "compiled_elsewhere")])
    assert rules.errors == ()
    assert rules.rules[0].rules == (FAILED_ID, "elsewhere-id")
    assert rules.rules[0].path == str(tmp_path / "sub" / "corr.yaml")


def test_unreadable_path_is_reported(tmp_path: Path) -> None:
    rules = load_correlation_paths([tmp_path / "missing.yml"])
    assert len(rules.errors) == 1
    assert rules.errors[0].path == str(tmp_path / "missing.yml")
    assert rules.errors[0].reason.startswith("cannot read: ")


def test_loads_from_a_pysigma_collection() -> None:
    collection = SigmaCollection.from_yaml(rules_text(
        one(type="event_count", rules="[failed]", group_by="[User]", timespan="5m", condition="{gte: 2}")))
    rules = load_correlation_collection(collection, path="rules/x.yml")
    assert rules.errors == ()
    assert (rules.rules[0].id, rules.rules[0].rules, rules.rules[0].path) == ("c1", (FAILED_ID,), "rules/x.yml")


def test_generate_decides_which_referenced_rules_emit_their_own_alerts(load: Load) -> None:
    rules = load("""
        title: quiet
        name: quiet
        correlation: {type: event_count, rules: [failed], group-by: [User], timespan: 5m, condition: {gte: 2}}
        ---
        title: loud
        name: loud
        correlation:
          type: temporal
          rules: [success, new_conn]
          group-by: [User]
          timespan: 5m
          generate: true
        ---
        title: chain
        name: chain
        correlation: {type: temporal_ordered, rules: [quiet, loud], group-by: [User], timespan: 5m}
    """)
    assert rules.errors == ()
    assert not rules.emits_own_alerts("failed")
    assert not rules.emits_own_alerts(FAILED_ID)
    assert rules.emits_own_alerts("success")
    assert rules.emits_own_alerts("new_conn")
    assert not rules.emits_own_alerts("quiet")
    assert not rules.emits_own_alerts("loud")
    assert rules.emits_own_alerts("chain")
    assert rules.emits_own_alerts("transfer")
    assert [r.id for r in rules.rules] == ["quiet", "loud", "chain"]


def test_semantic_hash_ignores_metadata_and_follows_chains(load: Load) -> None:
    base = "title: {title}\nname: c1\nlevel: {level}\ncorrelation: {{type: event_count, rules: [failed], " \
           "group-by: [User], timespan: {span}, condition: {{gte: 2}}}}\n---\ntitle: up\nname: up\n" \
           "correlation: {{type: temporal, rules: [c1, success], group-by: [User], timespan: 5m}}"
    a = {r.id: r.semantic_hash for r in load(base.format(title="a", level="low", span="5m")).rules}
    b = {r.id: r.semantic_hash for r in load(base.format(title="b", level="high", span="5m")).rules}
    c = {r.id: r.semantic_hash for r in load(base.format(title="a", level="low", span="6m")).rules}
    assert a == b
    assert a["c1"] != c["c1"]
    assert a["up"] != c["up"]


def test_correlation_rule_round_trips(load: Load) -> None:
    rule = load(one(type="temporal", rules="[internal_error, new_conn]", group_by="[internal_ip]", timespan="10s",
                    aliases="{internal_ip: {internal_error: destination.ip, new_conn: source.ip}}")).rules[0]
    assert CorrelationRule.from_dict(rule.to_dict()) == rule
    assert CorrelationRule.from_dict(rule.to_dict()).semantic_hash == rule.semantic_hash
    assert rule.field_for("internal_ip", "new_conn") == "source.ip"
    assert rule.field_for("User", "new_conn") == "User"
