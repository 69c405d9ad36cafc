"""Retention: index names, agency slugs, the policy (validation, dict and YAML forms) and the deletion plan."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from correlator.store.errors import InvalidRequestError, StoreError, UnknownCollectionError
from correlator.store.retention import (
    DAY_MS,
    DEFAULT_LEVEL_DAYS,
    IndexName,
    RetentionAction,
    RetentionPolicy,
    RetentionPolicyError,
    SecurityLevel,
    agency_slug,
    cutoff_ms,
    index_name,
    load_retention_policy,
    parse_days,
    parse_index_name,
    plan_retention,
)

NOW = 1_735_732_800_000  # 2025-01-01T12:00:00Z
MIDNIGHT = 1_735_689_600_000  # 2025-01-01T00:00:00Z


def days_before_midnight(days: int) -> date:
    """The UTC day that ends `days` days before 2025-01-01T00:00Z."""
    return date.fromordinal(date(2025, 1, 1).toordinal() - days - 1)


# -- names


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("sotttt-hanoi", "sotttt-hanoi"),
        ("Sở TT&TT Hà Nội", "so-tt-tt-ha-noi"),
        ("ĐẮK LẮK", "dak-lak"),
        ("Bộ Tài chính / Cục THTK", "bo-tai-chinh-cuc-thtk"),
        ("  --a__b--c--  ", "a__b-c"),
        ("AGENCY_01", "agency_01"),
        ("", "default"),
        ("***", "default"),
    ],
    ids=[
        "already-a-slug",
        "vietnamese",
        "d-with-stroke",
        "punctuation",
        "edges-and-runs",
        "upper",
        "empty",
        "no-letters",
    ],
)
def test_agency_slug(text: str, slug: str) -> None:
    assert agency_slug(text) == slug
    assert agency_slug(slug) == slug  # idempotent


def test_long_agency_slug_is_cut_with_a_hash() -> None:
    slug = agency_slug("a" * 150)
    assert len(slug) == 100
    assert slug == "a" * 91 + "-" + slug[-8:]
    assert agency_slug("a" * 151) != slug  # the hash keeps long ids apart
    assert agency_slug(slug) == slug


@pytest.mark.parametrize(
    ("collection", "agency", "timestamp_ms", "expected"),
    [
        ("events", "sotttt", MIDNIGHT, "socctl-events-sotttt-2025.01.01"),
        ("alerts", "Sở TT&TT", MIDNIGHT - 1, "socctl-alerts-so-tt-tt-2024.12.31"),
        ("deadletter", "", 0, "socctl-deadletter-default-1970.01.01"),
        ("cases", "a-b-c", -1, "socctl-cases-a-b-c-1969.12.31"),
    ],
    ids=["midnight", "last-millisecond-of-a-day", "epoch-default-agency", "before-epoch"],
)
def test_index_name(collection: str, agency: str, timestamp_ms: int, expected: str) -> None:
    assert index_name(collection, agency, timestamp_ms) == expected
    parsed = parse_index_name(expected)
    assert parsed is not None
    assert parsed.name == expected
    assert parsed.start_ms <= timestamp_ms < parsed.end_ms


def test_index_name_errors() -> None:
    with pytest.raises(UnknownCollectionError) as info:
        index_name("event", "x", 0)
    assert str(info.value) == (
        "unknown collection 'event' (expected one of: events, alerts, deadletter, cases, allowlist, audit)"
    )
    with pytest.raises(InvalidRequestError) as bad_time:
        index_name("events", "x", 10**18)
    assert str(bad_time.value) == "timestamp 1000000000000000000 ms is outside the dates an index name can hold"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("socctl-events-sotttt-2025.01.01", IndexName("events", "sotttt", date(2025, 1, 1))),
        ("socctl-alerts-so-tt-tt-ha-noi-2024.02.29", IndexName("alerts", "so-tt-tt-ha-noi", date(2024, 2, 29))),
        ("socctl-deadletter-2024-2024.03.01", IndexName("deadletter", "2024", date(2024, 3, 1))),
        ("socctl-cases-a_b-1999.12.31", IndexName("cases", "a_b", date(1999, 12, 31))),
        ("socctl-events-2025.01.01", None),
        ("socctl-events-sotttt-2025.02.30", None),
        ("socctl-events-sotttt-2025.1.1", None),
        ("socctl-events-sotttt-2025.01.01-000001", None),
        ("socctl-events-sotttt-2025.01.01-reindexed", None),
        ("socctl-event-sotttt-2025.01.01", None),
        ("socctl-events-SoTTTT-2025.01.01", None),
        ("socctl-events--sotttt-2025.01.01", None),
        ("socctl-events-sotttt--2025.01.01", None),
        ("socctl-events", None),
        ("socctl-events-sotttt", None),
        ("other-events-sotttt-2025.01.01", None),
        (".kibana_1", None),
        ("socctl-events-sotttt-2025.01.01 ", None),
    ],
    ids=[
        "plain",
        "hyphenated-agency",
        "agency-that-looks-like-a-year",
        "underscore",
        "no-agency",
        "impossible-date",
        "unpadded-date",
        "rollover-suffix",
        "reindex-suffix",
        "unknown-collection",
        "upper-case-agency",
        "leading-hyphen",
        "double-hyphen",
        "alias",
        "no-date",
        "other-prefix",
        "system-index",
        "trailing-space",
    ],
)
def test_parse_index_name(name: str, expected: IndexName | None) -> None:
    assert parse_index_name(name) == expected


def test_other_prefix() -> None:
    assert parse_index_name("soc-prod-events-x-2025.01.01", prefix="soc-prod") == IndexName(
        "events", "x", date(2025, 1, 1), "soc-prod"
    )
    assert parse_index_name("socctl-events-x-2025.01.01", prefix="soc-prod") is None
    assert index_name("events", "x", MIDNIGHT, prefix="soc-prod") == "soc-prod-events-x-2025.01.01"


def test_index_name_parts_are_validated() -> None:
    with pytest.raises(InvalidRequestError) as info:
        IndexName("events", "Sở TT", date(2025, 1, 1))
    assert str(info.value) == "agency 'Sở TT' is not a slug (expected 'so-tt')"


# -- durations and the policy


@pytest.mark.parametrize(
    ("value", "days"),
    [(30, 30), ("30d", 30), ("2w", 14), ("1m", 30), ("6M", 180), ("1y", 365), (" 3Y ", 1095)],
    ids=["int", "days", "weeks", "month", "months-upper-case", "year", "spaces-and-upper-case"],
)
def test_parse_days(value: object, days: int) -> None:
    assert parse_days(value) == days


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("30", "invalid duration '30'"),
        ("1h", "invalid duration '1h'"),
        ("1.5m", "invalid duration '1.5m'"),
        ("-1d", "invalid duration '-1d'"),
        (True, "invalid duration True"),
        (None, "invalid duration None"),
    ],
    ids=["bare-string", "hours", "fraction", "negative-string", "bool", "none"],
)
def test_parse_days_rejects(value: object, message: str) -> None:
    with pytest.raises(RetentionPolicyError) as info:
        parse_days(value, key="level_days.3")
    assert str(info.value) == (
        f"level_days.3: {message}: expected days as an integer, or <n>d, <n>w, <n>m (30 days) or <n>y (365 days)"
    )


@pytest.mark.parametrize("value", [0, "0d", -5], ids=["zero", "zero-days", "negative"])
def test_parse_days_needs_a_day(value: object) -> None:
    with pytest.raises(RetentionPolicyError) as info:
        parse_days(value)
    assert str(info.value) == f"duration must be at least 1 day, got {value!r}"


def test_default_policy() -> None:
    policy = RetentionPolicy()
    assert dict(policy.level_days) == {1: 30, 2: 30, 3: 90, 4: 180, 5: 365}
    assert policy.default_level == SecurityLevel.LEVEL_5
    assert policy.level_for("anyone") == 5
    assert policy.age_days("anyone", "events") == 365


def test_policy_lookups() -> None:
    policy = RetentionPolicy(level_days={3: 60}, agencies={"so-tt-tt": 3, "bo-x": 2}, collection_days={"deadletter": 7})
    assert dict(policy.level_days) == {**DEFAULT_LEVEL_DAYS, 3: 60}
    assert policy.level_for("Sở TT&TT") == 3  # looked up by slug
    assert policy.age_days("so-tt-tt", "events") == 60
    assert policy.age_days("bo-x", "alerts") == 30
    assert policy.age_days("so-tt-tt", "deadletter") == 7  # the override wins whatever the level
    assert policy.age_days("unknown", "cases") == 365
    with pytest.raises(UnknownCollectionError):
        policy.age_days("bo-x", "logs")


POLICY_ERRORS: list[tuple[dict[str, Any], str]] = [
    ({"level_days": {6: 30}}, "level_days.6: security level must be one of 1, 2, 3, 4, 5, got 6"),
    ({"level_days": {3: 0}}, "level_days.3: age must be a whole number of days >= 1, got 0"),
    ({"level_days": {3: "90d"}}, "level_days.3: age must be a whole number of days >= 1, got '90d'"),
    (
        {"level_days": {4: 60}},
        "level_days.4: level 4 keeps 60 days, less than level 3 (90 days); higher levels must keep data at least "
        "as long",
    ),
    ({"agencies": {"Sở TT": 3}}, "agencies.Sở TT: 'Sở TT' is not an agency slug (expected 'so-tt')"),
    ({"agencies": {"x": 0}}, "agencies.x: security level must be one of 1, 2, 3, 4, 5, got 0"),
    ({"agencies": {"x": True}}, "agencies.x: security level must be one of 1, 2, 3, 4, 5, got True"),
    ({"default_level": 9}, "default_level: security level must be one of 1, 2, 3, 4, 5, got 9"),
    (
        {"collection_days": {"logs": 30}},
        "collection_days: unknown collection 'logs' "
        "(expected one of: events, alerts, deadletter, cases, allowlist, audit)",
    ),
    ({"collection_days": {"cases": -1}}, "collection_days.cases: age must be a whole number of days >= 1, got -1"),
]


@pytest.mark.parametrize(
    ("options", "message"),
    POLICY_ERRORS,
    ids=[
        "unknown-level",
        "zero-age",
        "age-not-an-int",
        "higher-level-kept-shorter",
        "agency-not-a-slug",
        "agency-level-zero",
        "agency-level-bool",
        "default-level",
        "unknown-collection",
        "negative-collection-age",
    ],
)
def test_policy_is_validated_on_construction(options: dict[str, Any], message: str) -> None:
    with pytest.raises(RetentionPolicyError) as info:
        RetentionPolicy(**options)
    assert str(info.value) == message
    assert isinstance(info.value, StoreError)


def test_policy_is_frozen() -> None:
    policy = RetentionPolicy(agencies={"x": 2})
    with pytest.raises(AttributeError):
        policy.default_level = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        policy.agencies["y"] = 3  # type: ignore[index]


@pytest.mark.parametrize(
    "policy",
    [
        RetentionPolicy(),
        RetentionPolicy(
            level_days={1: 7, 2: 45, 5: 400},
            agencies={"so-tt-tt-ha-noi": 3, "bo-tai-chinh": 4},
            default_level=4,
            collection_days={"deadletter": 30, "cases": 3650},
        ),
    ],
    ids=["defaults", "everything-set"],
)
def test_policy_round_trips(policy: RetentionPolicy) -> None:
    data = policy.to_dict()
    assert RetentionPolicy.from_dict(data) == policy
    as_json_keys = {**data, "level_days": {str(level): days for level, days in data["level_days"].items()}}
    assert RetentionPolicy.from_dict(as_json_keys) == policy


def test_from_dict_parses_durations_and_merges_levels() -> None:
    policy = RetentionPolicy.from_dict(
        {"level_days": {"3": "3m", 5: "1y"}, "agencies": {"x": 3}, "collection_days": {"deadletter": "2w"}}
    )
    assert policy == RetentionPolicy(level_days={3: 90}, agencies={"x": 3}, collection_days={"deadletter": 14})


# -- the policy file


@pytest.fixture
def write_policy(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str) -> Path:
        path = tmp_path / "retention.yml"
        path.write_text(text, encoding="utf-8")
        return path

    return write


def test_load_policy_file(write_policy: Callable[[str], Path]) -> None:
    path = write_policy(
        """
level_days: {2: 1m, 3: 3m, 4: 6M, 5: 1y}
default_level: 5
agencies:
  so-tttt-ha-noi: 3
  bo-tai-chinh: 4
collection_days:
  deadletter: 30d
"""
    )
    assert load_retention_policy(path) == RetentionPolicy(
        agencies={"so-tttt-ha-noi": 3, "bo-tai-chinh": 4}, collection_days={"deadletter": 30}
    )


def test_empty_policy_file_is_the_default(write_policy: Callable[[str], Path]) -> None:
    assert load_retention_policy(write_policy("# nothing configured\n")) == RetentionPolicy()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("level_days: {3: 3h}\n", "level_days.3: invalid duration '3h'"),
        ("agencies: {Sở TT: 3}\n", "agencies.Sở TT: 'Sở TT' is not an agency slug (expected 'so-tt')"),
        ("agencies: {101: 3}\n", "agencies.101: 101 is not an agency slug (quote it in YAML)"),
        ("agencies: [x, y]\n", "agencies: expected a mapping, got list"),
        ("colection_days: {deadletter: 30d}\n", "colection_days: unknown key"),
        ("- 30d\n", "expected a mapping at the top level, got list"),
        ("default_level:\n", "default_level: security level must be one of 1, 2, 3, 4, 5, got None"),
    ],
    ids=[
        "bad-duration",
        "agency-not-a-slug",
        "agency-not-a-string",
        "agencies-not-a-mapping",
        "misspelt-key",
        "not-a-mapping",
        "empty-default-level",
    ],
)
def test_policy_file_errors_name_the_file_and_key(write_policy: Callable[[str], Path], text: str, message: str) -> None:
    path = write_policy(text)
    with pytest.raises(RetentionPolicyError) as info:
        load_retention_policy(path)
    assert str(info.value).startswith(f"{path}: {message}")
    assert info.value.source == str(path)


def test_policy_file_unreadable(tmp_path: Path, write_policy: Callable[[str], Path]) -> None:
    missing = tmp_path / "missing.yml"
    with pytest.raises(RetentionPolicyError) as info:
        load_retention_policy(missing)
    assert str(info.value) == f"{missing}: cannot read retention policy: No such file or directory"
    broken = write_policy("agencies: {x: 3\n")
    with pytest.raises(RetentionPolicyError) as yaml_error:
        load_retention_policy(broken)
    assert str(yaml_error.value).startswith(f"{broken}: invalid YAML: ")
    assert "line 2" in str(yaml_error.value)


# -- the plan


def test_cutoff_ms() -> None:
    policy = RetentionPolicy(agencies={"x": 3}, collection_days={"deadletter": 7})
    assert cutoff_ms(policy, "x", "events", NOW) == NOW - 90 * DAY_MS
    assert cutoff_ms(policy, "x", "deadletter", NOW) == NOW - 7 * DAY_MS
    assert cutoff_ms(policy, "unknown", "alerts", NOW) == NOW - 365 * DAY_MS


@pytest.mark.parametrize(
    ("now_ms", "deleted"),
    [(MIDNIGHT + 30 * DAY_MS, True), (MIDNIGHT + 30 * DAY_MS - 1, False)],
    ids=["day-ends-exactly-at-the-cutoff", "one-millisecond-short"],
)
def test_boundary(now_ms: int, deleted: bool) -> None:
    policy = RetentionPolicy(agencies={"x": 2})
    name = "socctl-events-x-2024.12.31"  # its day ends at MIDNIGHT; level 2 keeps 30 days
    actions = plan_retention([name], policy, now_ms)
    assert [action.index for action in actions] == ([name] if deleted else [])


def test_plan() -> None:
    policy = RetentionPolicy(
        agencies={"so-a": 2, "so-b": 3, "so-c": 4}, collection_days={"deadletter": 7}
    )  # at MIDNIGHT: so-a keeps 30 days, so-b 90, so-c 180, unknown agencies 365, dead letters 7

    def name(collection: str, agency: str, days: int) -> str:
        return f"socctl-{collection}-{agency}-{days_before_midnight(days).strftime('%Y.%m.%d')}"

    names = [
        name("events", "so-a", 30),  # ends 30 days before now: deleted
        name("events", "so-a", 29),  # kept
        name("alerts", "so-b", 90),  # deleted
        name("alerts", "so-b", 89),  # kept
        name("cases", "so-c", 200),  # deleted
        name("events", "so-c", 179),  # kept
        name("events", "unclassified", 364),  # kept: unknown agency, level 5
        name("events", "unclassified", 365),  # deleted
        name("deadletter", "so-c", 7),  # deleted by the collection override
        name("deadletter", "so-c", 6),  # kept
        name("events", "so-a", 30),  # listed twice
        "socctl-events-so-a-2000.01.01-000001",  # not ours: never deleted
        "socctl-events",
        ".kibana_1",
        "logs-2000.01.01",
    ]
    actions = plan_retention(names, policy, MIDNIGHT)
    cutoff = {30: MIDNIGHT - 30 * DAY_MS, 90: MIDNIGHT - 90 * DAY_MS, 180: MIDNIGHT - 180 * DAY_MS}
    assert actions == [
        RetentionAction(name("events", "unclassified", 365), "events", "unclassified", 5,
                        days_before_midnight(365), 365, MIDNIGHT - 365 * DAY_MS),
        RetentionAction(name("cases", "so-c", 200), "cases", "so-c", 4, days_before_midnight(200), 180, cutoff[180]),
        RetentionAction(name("alerts", "so-b", 90), "alerts", "so-b", 3, days_before_midnight(90), 90, cutoff[90]),
        RetentionAction(name("events", "so-a", 30), "events", "so-a", 2, days_before_midnight(30), 30, cutoff[30]),
        RetentionAction(name("deadletter", "so-c", 7), "deadletter", "so-c", 4, days_before_midnight(7), 7,
                        MIDNIGHT - 7 * DAY_MS),
    ]  # fmt: skip
    assert actions[0].to_dict() == {
        "index": "socctl-events-unclassified-2024.01.01",
        "collection": "events",
        "agency": "unclassified",
        "level": 5,
        "day": "2024-01-01",
        "age_days": 365,
        "cutoff": "2024-01-02T00:00:00.000Z",
    }


def test_plan_keeps_everything_when_nothing_is_old() -> None:
    names = [index_name(collection, "x", NOW - 29 * DAY_MS) for collection in ("events", "alerts", "cases")]
    assert plan_retention(names, RetentionPolicy(agencies={"x": 1}), NOW) == []
    assert plan_retention([], RetentionPolicy(), NOW) == []


def test_plan_orders_by_day_then_name() -> None:
    day = "2020.01.01"
    names = [f"socctl-events-b-{day}", f"socctl-alerts-b-{day}", "socctl-events-a-2020.01.02", f"socctl-events-a-{day}"]
    actions = plan_retention(names, RetentionPolicy(), NOW)
    assert [action.index for action in actions] == [
        f"socctl-alerts-b-{day}",
        f"socctl-events-a-{day}",
        f"socctl-events-b-{day}",
        "socctl-events-a-2020.01.02",
    ]
