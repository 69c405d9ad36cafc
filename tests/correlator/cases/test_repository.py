"""Cases in a store (`CaseRepository`): one document per case, audit mirroring, and concurrent writers (ingest adding
alerts while an analyst changes the same case from another process) that never lose an update."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from correlator.cases.commands import Assign, Comment, MergedInto, Tag, Transition
from correlator.cases.definitions import CaseStatus
from correlator.cases.errors import CommandError
from correlator.cases.grouping import CaseGrouper, IncomingAlert
from correlator.cases.model import Case
from correlator.cases.repository import (
    CaseConflictError,
    CaseNotFoundError,
    CaseRepository,
    audit_entry,
    case_document,
    rule_history,
)
from correlator.scoring import RuleHistory
from correlator.store import Store, VersionConflictError
from correlator.store.elasticsearch import ElasticsearchStore
from correlator.store.sqlite import SqliteStore
from tests.correlator.cases.conftest import HOUR, MINUTE, T0

ANALYST_TIME = T0 + HOUR


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "socctl.db"


@pytest.fixture
def stores(db_path: Path) -> Iterator[Callable[[], Store]]:
    """Opens stores on one SQLite file, as separate processes would."""
    opened: list[Store] = []

    def open_store() -> Store:
        store = SqliteStore(db_path)
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.close()


def repository(store: Store, clock: int = ANALYST_TIME) -> CaseRepository:
    return CaseRepository(store, CaseGrouper(), lambda: clock)


@pytest.fixture
def repo(stores: Callable[[], Store]) -> CaseRepository:
    return repository(stores())


def audit_of(store: Store, case_id: str) -> list[dict[str, Any]]:
    return store.search("audit", f'subject.kind:case AND subject.id:"{case_id}"', sort="seq", limit=1_000).hits


# -- storing cases -------------------------------------------------------------------------------------------


def test_add_alert_opens_and_feeds_a_stored_case(repo: CaseRepository,
                                                 make_incoming: Callable[..., IncomingAlert]) -> None:
    opened = repo.add_alert(make_incoming("r1", points=40, host="WS01"), T0)
    assert opened.opened
    case = opened.case
    assert case is not None
    assert repo.get(case.id) == case
    joined = repo.add_alert(make_incoming("r2", points=80, host="ws01", ts=T0 + MINUTE), T0 + MINUTE)
    assert not joined.opened
    assert joined.case is not None
    assert joined.case.id == case.id
    stored = repo.get(case.id)
    assert stored == joined.case
    assert stored.alert_ids == (opened.case.alerts[0].id, joined.case.alerts[1].id)
    doc = repo.store.get("cases", case.id)
    assert doc is not None
    assert (doc["rule_ids"], doc["host_names"], doc["risk"]["score"]) == (["r1", "r2"], ["WS01", "ws01"], 80)
    assert doc == {**case_document(stored), "@timestamp": doc["@timestamp"]}
    assert "overdue" not in doc


def test_every_timeline_entry_is_mirrored_to_the_audit(repo: CaseRepository,
                                                       make_incoming: Callable[..., IncomingAlert]) -> None:
    case = repo.add_alert(make_incoming("r1"), T0).case
    assert case is not None
    repo.apply(case.id, Assign("alice"), "lead")
    final = repo.apply(case.id, Comment("looking into it"), "alice")
    audit = audit_of(repo.store, case.id)
    assert [entry["id"] for entry in audit] == [entry.id for entry in final.timeline]
    assert audit[-1] == {**audit_entry(final.timeline[-1]), "@timestamp": audit[-1]["@timestamp"]}
    assert [entry["actor"] for entry in repo.store.search("audit", "actor:alice OR actor:lead",
                                                          sort="@timestamp").hits] == ["lead", "alice"]


def test_a_replayed_alert_changes_nothing(repo: CaseRepository, make_incoming: Callable[..., IncomingAlert]) -> None:
    first = repo.add_alert(make_incoming("r1"), T0)
    assert first.case is not None
    again = repo.add_alert(make_incoming("r1"), T0 + HOUR)
    assert again.duplicate
    assert repo.require(first.case.id).version == first.case.version


def test_a_replayed_alert_whose_case_was_closed_is_a_duplicate(
    repo: CaseRepository, make_incoming: Callable[..., IncomingAlert]
) -> None:
    case = repo.add_alert(make_incoming("r1"), T0).case
    assert case is not None
    repo.apply(case.id, Transition(CaseStatus.FALSE_POSITIVE, "lab test"), "alice")
    again = repo.add_alert(make_incoming("r1"), T0 + HOUR)
    assert again.duplicate
    assert again.case is not None
    assert again.case.status is CaseStatus.FALSE_POSITIVE
    assert repo.store.count("cases") == 1


def test_a_keyless_alert_replayed_is_a_duplicate(repo: CaseRepository,
                                                 make_incoming: Callable[..., IncomingAlert]) -> None:
    first = repo.add_alert(make_incoming("r1", host=None), T0)
    assert first.opened
    assert first.case is not None
    assert first.case.group_key is None
    assert repo.add_alert(make_incoming("r1", host=None), T0).duplicate
    assert repo.store.count("cases") == 1


def test_apply_errors_name_the_case_and_command(repo: CaseRepository,
                                                make_incoming: Callable[..., IncomingAlert]) -> None:
    case = repo.add_alert(make_incoming("r1"), T0).case
    assert case is not None
    repo.apply(case.id, Assign("alice"), "lead")
    with pytest.raises(CommandError) as info:
        repo.apply(case.id, Assign("alice"), "lead")
    assert str(info.value) == f"case {case.id}: assign: already assigned to alice"
    with pytest.raises(CommandError) as two_cases:
        repo.apply(case.id, MergedInto("case-other"), "lead")
    assert str(two_cases.value) == f"case {case.id}: merged_into: changes two cases: use CaseRepository.merge or split"
    with pytest.raises(CaseNotFoundError) as missing:
        repo.apply("case-nope", Assign("bob"), "lead")
    assert str(missing.value) == "case case-nope: not found"
    assert repo.get("case-nope") is None


def test_list_and_open_cases(repo: CaseRepository, make_incoming: Callable[..., IncomingAlert]) -> None:
    low = repo.add_alert(make_incoming("r1", points=30, host="ws01"), T0).case
    high = repo.add_alert(make_incoming("r2", points=90, host="ws02"), T0 + MINUTE).case
    other = repo.add_alert(make_incoming("r3", points=60, host="ws03"), T0 + 2 * MINUTE).case
    assert low is not None
    assert high is not None
    assert other is not None
    repo.apply(other.id, Transition(CaseStatus.FALSE_POSITIVE, "known scanner"), "alice")
    total, cases = repo.list(sort="-risk.score")
    assert (total, [c.id for c in cases]) == (3, [high.id, other.id, low.id])
    total, cases = repo.list("NOT status:false_positive", sort="updated_ms", limit=1)
    assert (total, [c.id for c in cases]) == (2, [low.id])
    assert repo.list("rule_ids:r2")[0] == 1
    assert repo.list(since_ms=T0 + MINUTE, until_ms=T0 + 2 * MINUTE)[1] == [repo.require(high.id)]
    assert [c.id for c in repo.open_cases("host:ws01")] == [low.id]
    assert repo.open_cases("host:ws03") == []  # closed
    assert repo.open_cases("host:WS01") == []  # keys are exact


def test_merge_and_split(repo: CaseRepository, make_incoming: Callable[..., IncomingAlert]) -> None:
    target = repo.add_alert(make_incoming("r1", host="ws01"), T0).case
    source = repo.add_alert(make_incoming("r2", host="ws02"), T0 + MINUTE).case
    assert target is not None
    assert source is not None
    merged, closed = repo.merge(target.id, source.id, "alice")
    assert repo.require(target.id) == merged
    assert repo.require(source.id) == closed
    assert closed.status is CaseStatus.CLOSED
    assert closed.merged_into == target.id
    assert set(merged.alert_ids) == {*target.alert_ids, *source.alert_ids}
    assert {entry["action"] for entry in audit_of(repo.store, source.id)} >= {"merged_into"}

    moved = source.alert_ids
    remaining, split_off = repo.split(target.id, moved, "alice")
    assert repo.require(target.id) == remaining
    assert repo.require(split_off.id) == split_off
    assert remaining.alert_ids == target.alert_ids
    assert split_off.alert_ids == moved
    assert split_off.split_from == target.id
    assert [e["action"] for e in audit_of(repo.store, split_off.id)][:1] == ["open"]

    repo.merge(target.id, split_off.id, "alice")  # back together; splitting the same alerts again would reuse the id
    with pytest.raises(CommandError) as info:
        repo.split(target.id, moved, "alice")
    assert str(info.value) == (f"case {target.id}: split_out: case {split_off.id} exists already (these alerts were "
                               "split out of this case before)")
    with pytest.raises(CommandError) as self_merge:
        repo.merge(target.id, target.id, "alice")
    assert str(self_merge.value) == f"case {target.id}: merge: cannot merge a case into itself"


def test_refresh_without_changes_keeps_the_version(repo: CaseRepository,
                                                   make_incoming: Callable[..., IncomingAlert]) -> None:
    case = repo.add_alert(make_incoming("r1"), T0).case
    assert case is not None
    assert repo.refresh(case.id, "alice") == case


def test_rule_history_counts_closed_cases(repo: CaseRepository, make_incoming: Callable[..., IncomingAlert]) -> None:
    cases = [repo.add_alert(make_incoming(rule, host=host), T0).case
             for rule, host in (("r1", "a"), ("r1", "b"), ("r2", "c"), ("r1", "d"))]
    assert all(case is not None for case in cases)
    ids = [cast(Case, case).id for case in cases]
    repo.apply(ids[0], Transition(CaseStatus.FALSE_POSITIVE, "noise"), "alice")
    repo.apply(ids[2], Transition(CaseStatus.FALSE_POSITIVE, "noise"), "alice")
    for status in (CaseStatus.ACKNOWLEDGED, CaseStatus.INVESTIGATING, CaseStatus.CONTAINED, CaseStatus.RESOLVED,
                   CaseStatus.CLOSED):
        repo.apply(ids[1], Transition(status, "work"), "alice")
    assert rule_history(repo.store) == {"r1": RuleHistory(2, 1), "r2": RuleHistory(1, 1)}


# -- concurrent writers --------------------------------------------------------------------------------------


class RacingStore:
    """A store whose next put first lets another writer in (`before_put`), as a second process would."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.before_put: Callable[[], object] | None = None
        self.puts = 0

    def put(self, collection: str, doc: dict[str, Any], *, expected_version: int | None) -> None:
        self.puts += 1
        hook, self.before_put = self.before_put, None
        if hook is not None:
            hook()
        self.store.put(collection, doc, expected_version=expected_version)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def assert_no_lost_update(final: Case, alert_count: int, assignee: str) -> None:
    assert final.assignee == assignee
    assert len(final.alerts) == alert_count
    assert [entry.seq for entry in final.timeline] == list(range(1, final.version + 1))
    assert {"assign", "add_alert"} <= {entry.action for entry in final.timeline}


def test_ingest_with_a_stale_cached_case_reloads_after_an_analyst_change(
    stores: Callable[[], Store], make_incoming: Callable[..., IncomingAlert]
) -> None:
    ingest, analyst = repository(stores(), T0), repository(stores())
    case = ingest.add_alert(make_incoming("r1"), T0).case  # ingest now holds version 1+ in its cache
    assert case is not None
    analyst.apply(case.id, Assign("alice"), "alice")
    result = ingest.add_alert(make_incoming("r2", ts=T0 + MINUTE), T0 + MINUTE)
    assert result.case is not None
    assert result.case.id == case.id
    final = analyst.require(case.id)
    assert final == result.case
    assert_no_lost_update(final, alert_count=2, assignee="alice")
    assert [e["id"] for e in audit_of(analyst.store, case.id)] == [e.id for e in final.timeline]


def test_an_analyst_change_raced_by_ingest_is_applied_on_the_new_version(
    stores: Callable[[], Store], make_incoming: Callable[..., IncomingAlert]
) -> None:
    ingest = repository(stores(), T0)
    racing = RacingStore(stores())
    analyst = repository(cast(Store, racing))
    case = ingest.add_alert(make_incoming("r1"), T0).case
    assert case is not None
    racing.before_put = lambda: ingest.add_alert(make_incoming("r2", ts=T0 + MINUTE), T0 + MINUTE)
    final = analyst.apply(case.id, Assign("alice"), "alice")
    assert racing.puts == 2  # refused once, then applied to the version with the new alert
    assert_no_lost_update(final, alert_count=2, assignee="alice")
    assert ingest.require(case.id) == final


def test_a_case_closed_by_an_analyst_gets_no_more_alerts_from_a_stale_cache(
    stores: Callable[[], Store], make_incoming: Callable[..., IncomingAlert]
) -> None:
    ingest, analyst = repository(stores(), T0), repository(stores())
    case = ingest.add_alert(make_incoming("r1"), T0).case
    assert case is not None
    closed = analyst.apply(case.id, Transition(CaseStatus.FALSE_POSITIVE, "test host"), "alice")
    result = ingest.add_alert(make_incoming("r2", ts=T0 + MINUTE), T0 + MINUTE)
    assert result.opened
    assert result.case is not None
    assert result.case.id != case.id
    assert analyst.require(case.id) == closed


def test_merge_raced_by_ingest_keeps_every_alert(
    stores: Callable[[], Store], make_incoming: Callable[..., IncomingAlert]
) -> None:
    ingest = repository(stores(), T0)
    racing = RacingStore(stores())
    analyst = repository(cast(Store, racing))
    target = ingest.add_alert(make_incoming("r1", host="ws01"), T0).case
    source = ingest.add_alert(make_incoming("r2", host="ws02"), T0).case
    assert target is not None
    assert source is not None
    racing.before_put = lambda: ingest.add_alert(make_incoming("r3", host="ws02", ts=T0 + MINUTE), T0 + MINUTE)
    merged, closed = analyst.merge(target.id, source.id, "alice")
    assert len(merged.alerts) == 3  # the alert that reached the source during the merge was merged too
    assert closed.merged_into == target.id
    assert ingest.require(target.id) == merged


def test_a_change_that_keeps_conflicting_gives_up(
    stores: Callable[[], Store], make_incoming: Callable[..., IncomingAlert]
) -> None:
    store = stores()
    case = repository(store).add_alert(make_incoming("r1"), T0).case
    assert case is not None

    class AlwaysStale(RacingStore):
        def put(self, collection: str, doc: dict[str, Any], *, expected_version: int | None) -> None:
            self.puts += 1
            raise VersionConflictError(collection, doc["id"], expected_version, (expected_version or 0) + 1)

    stale = AlwaysStale(store)
    with pytest.raises(CaseConflictError) as info:
        repository(cast(Store, stale)).apply(case.id, Tag(add=("x",)), "alice")
    assert stale.puts == 5
    assert str(info.value) == (
        f"case {case.id}: tag: the case kept changing under this change; gave up after 5 attempts (last: "
        f"cases/{case.id}: version conflict: expected {case.version}, stored {case.version + 1})"
    )


def test_concurrent_writers_on_elasticsearch(elasticsearch_url: str,
                                             make_incoming: Callable[..., IncomingAlert]) -> None:
    prefix = f"socctl-test-{uuid.uuid4().hex[:12]}"
    try:
        with ElasticsearchStore(elasticsearch_url, prefix=prefix) as first, \
                ElasticsearchStore(elasticsearch_url, prefix=prefix) as second:
            ingest = repository(first, T0)
            racing = RacingStore(second)
            analyst = repository(cast(Store, racing))
            case = ingest.add_alert(make_incoming("r1"), T0).case
            assert case is not None
            analyst.apply(case.id, Assign("bob"), "lead")  # ingest's cached copy is now stale
            ingest.add_alert(make_incoming("r2", ts=T0 + MINUTE), T0 + MINUTE)
            racing.before_put = lambda: ingest.add_alert(make_incoming("r3", ts=T0 + 2 * MINUTE), T0 + 2 * MINUTE)
            final = analyst.apply(case.id, Assign("alice"), "lead")
            assert_no_lost_update(final, alert_count=3, assignee="alice")
            assert ingest.require(case.id) == final
            assert ingest.store.count("cases") == 1
            assert [e["id"] for e in audit_of(first, case.id)] == [e.id for e in final.timeline]
    finally:
        ElasticsearchStore(elasticsearch_url, prefix=prefix).drop_all()
