"""`CaseRepository.add_alerts`: a batch of alerts gives the cases, timelines and audit entries that `add_alert`
one after the other gives, saving each changed case once; a replayed batch changes nothing; a concurrent writer
costs a retry of the key, never an alert; `AlertSink.deliver` counts as before."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import pytest

from correlator.analysis import Outcome, ScoredAlert
from correlator.cases.commands import Assign
from correlator.cases.grouping import CaseGrouper, GroupingConfig, GroupResult, IncomingAlert
from correlator.cases.model import Case
from correlator.cases.repository import CaseConflictError, CaseRepository
from correlator.sink import AlertSink
from correlator.store import Store, VersionConflictError
from correlator.store.sqlite import SqliteStore
from tests.correlator.cases.conftest import HOUR, MINUTE, T0

AT = T0 + 2 * HOUR
WINDOW = 24 * HOUR


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[Callable[[str], Store]]:
    """Opens SQLite stores by name; two opened with one name share a file, as two processes would."""
    opened: list[Store] = []

    def open_store(name: str) -> Store:
        store = SqliteStore(tmp_path / f"{name}.db")
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.close()


def repository(store: Store, keyless: str = "new_case") -> CaseRepository:
    grouping = GroupingConfig.of(("campaign", "host", "user", "source_ip"), keyless=keyless)
    return CaseRepository(store, CaseGrouper(grouping=grouping), lambda: AT)


class CountingStore:
    """A store that counts case puts and audit writes, and can let another writer in before a put of a case."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.puts: Counter[str] = Counter()
        self.audit_writes = 0
        self.before_put: dict[str, Callable[[], object]] = {}  # case id -> what another writer does first

    def put(self, collection: str, doc: dict[str, Any], *, expected_version: int | None) -> None:
        self.puts[doc["id"]] += 1
        hook = self.before_put.pop(doc["id"], None)
        if hook is not None:
            hook()
        self.store.put(collection, doc, expected_version=expected_version)

    def write_audit(self, entries: Sequence[dict[str, Any]]) -> Any:
        self.audit_writes += 1
        return self.store.write_audit(entries)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def stored(store: Store) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every case and audit entry, without the store's write time, in a stable order."""
    cases = store.search("cases", "", sort="id", limit=10_000).hits
    audit = store.search("audit", "", sort="id", limit=10_000).hits
    strip = lambda docs: [{k: v for k, v in doc.items() if k != "@timestamp"} for doc in docs]  # noqa: E731
    return strip(cases), strip(audit)


def flags(results: Sequence[GroupResult]) -> list[tuple[str | None, bool, bool, int | None]]:
    return [(r.case.id if r.case else None, r.opened, r.duplicate, r.case.version if r.case else None)
            for r in results]


@pytest.fixture
def batch(make_incoming: Callable[..., IncomingAlert]) -> list[IncomingAlert]:
    """Alerts of several keys, interleaved: cases opened and fed, a severity raise, an alert out of its case's
    window (a second case for its key), repeats within the batch, keyless alerts (one twice)."""
    items = [make_incoming(f"r{n % 4}", points=30 + 5 * n, host=f"ws{n % 3:02d}", ts=T0 + n * MINUTE)
             for n in range(12)]
    items += [
        make_incoming("r9", points=95, host="WS01", ts=T0 + 20 * MINUTE),  # key host:ws01, severity rises
        make_incoming("r1", points=35, host="ws01", ts=T0 + MINUTE),  # a repeat of the second alert
        make_incoming("r5", points=50, host="ws02", ts=T0 + 3 * WINDOW),  # out of the window: a new case
        make_incoming("r6", points=70, host="ws02", ts=T0 + 3 * WINDOW + MINUTE),  # joins that one
        make_incoming("r7", points=40, host=None),
        make_incoming("r8", points=60, host=None),
        make_incoming("r7", points=40, host=None),  # a keyless repeat
        make_incoming("r2", points=20, host=None, matched={"TargetUserName": "Admin"}),
        make_incoming("r3", points=20, host=None, matched={"TargetUserName": "admin"}),
    ]
    return items


def one_by_one(repo: CaseRepository, items: Sequence[IncomingAlert]) -> list[GroupResult]:
    return [repo.add_alert(item, AT) for item in items]


@pytest.mark.parametrize("keyless", ["new_case", "skip"])
def test_a_batch_gives_what_one_by_one_gives(stores: Callable[[str], Store], batch: list[IncomingAlert],
                                            keyless: str) -> None:
    single, batched = repository(stores("single"), keyless), repository(stores("batched"), keyless)
    first, second = batch[:9], batch[9:]  # the second part meets cases the first part saved (and cached)
    expected = one_by_one(single, first) + one_by_one(single, second)
    got = batched.add_alerts(first, AT) + batched.add_alerts(second, AT)
    assert flags(got) == flags(expected)
    assert [r.entries for r in got] == [r.entries for r in expected]
    assert stored(batched.store) == stored(single.store)
    assert len(stored(batched.store)[0]) == (7 if keyless == "new_case" else 5)
    assert {(r.opened, r.duplicate) for r in got if r.case} == {(True, False), (False, False), (False, True)}


def test_a_batch_saves_each_changed_case_once_and_audits_in_one_write(
    stores: Callable[[str], Store], batch: list[IncomingAlert],
) -> None:
    counting = CountingStore(stores("batched"))
    results = repository(cast(Store, counting)).add_alerts(batch, AT)
    changed = {r.case.id for r in results if r.case is not None and not r.duplicate}
    assert counting.puts == dict.fromkeys(changed, 1)
    assert counting.audit_writes == 1  # the timeline entries of every case it saved, in one write


def test_a_batch_on_cases_stored_by_another_process(stores: Callable[[str], Store],
                                                    batch: list[IncomingAlert]) -> None:
    """Cold caches: the open cases of each key are read from the store."""
    single, batched = repository(stores("single")), repository(stores("batched"))
    one_by_one(single, batch[:9])
    one_by_one(batched, batch[:9])
    expected = one_by_one(repository(stores("single")), batch[9:])
    got = repository(stores("batched")).add_alerts(batch[9:], AT)
    assert flags(got) == flags(expected)
    assert stored(batched.store) == stored(single.store)


def test_a_replayed_batch_changes_nothing(stores: Callable[[str], Store], batch: list[IncomingAlert]) -> None:
    repo = repository(stores("batched"))
    first = repo.add_alerts(batch, AT)
    before = stored(repo.store)
    for replay in (repo, repository(stores("batched"))):  # a warm cache, then a cold one
        again = replay.add_alerts(batch, AT + HOUR)
        assert all(r.duplicate for r in again)
        assert [r.case.id for r in again if r.case] == [r.case.id for r in first if r.case]
        assert stored(repo.store) == before


def test_a_concurrent_writer_makes_the_key_retry_and_nothing_is_lost(
    stores: Callable[[str], Store], make_incoming: Callable[..., IncomingAlert]
) -> None:
    counting = CountingStore(stores("shared"))
    ingest, analyst = repository(cast(Store, counting)), repository(stores("shared"))
    case = ingest.add_alert(make_incoming("r1", host="ws01"), T0).case  # ingest caches its version
    other = ingest.add_alert(make_incoming("r1", host="ws02"), T0).case
    assert case is not None
    assert other is not None
    counting.before_put[case.id] = lambda: analyst.apply(case.id, Assign("alice"), "alice")
    items = [make_incoming("r2", host="ws01", ts=T0 + MINUTE), make_incoming("r2", host="ws02", ts=T0 + MINUTE),
             make_incoming("r3", points=90, host="ws01", ts=T0 + 2 * MINUTE)]
    results = ingest.add_alerts(items, AT)
    assert [(r.case.id if r.case else None, r.opened, r.duplicate) for r in results] == [
        (case.id, False, False), (other.id, False, False), (case.id, False, False)]
    assert counting.puts[case.id] == 3  # opened, refused once, then saved on the analyst's version
    final = analyst.require(case.id)
    assert final == results[2].case
    assert final.assignee == "alice"
    assert len(final.alerts) == 3
    assert [entry.seq for entry in final.timeline] == list(range(1, final.version + 1))
    audit = counting.store.search("audit", f'subject.id:"{case.id}"', sort="seq", limit=1_000).hits
    assert [entry["id"] for entry in audit] == [entry.id for entry in final.timeline]


def test_a_conflict_after_another_case_of_the_key_was_saved_keeps_its_results(
    stores: Callable[[str], Store], make_incoming: Callable[..., IncomingAlert]
) -> None:
    """Two cases of one key change; the first is saved, the second conflicts: only the second's alerts are added
    again, and the first's keep their flags (not duplicates of themselves)."""
    counting = CountingStore(stores("shared"))
    ingest, analyst = repository(cast(Store, counting)), repository(stores("shared"))
    old = ingest.add_alert(make_incoming("r1", host="ws01"), T0).case
    assert old is not None
    items = [make_incoming("r2", host="ws01", ts=T0 + 3 * WINDOW),  # opens a new case, saved first
             make_incoming("r3", host="ws01", ts=T0 + MINUTE),  # joins the old one, which the analyst changes
             make_incoming("r4", host="ws01", ts=T0 + 3 * WINDOW + MINUTE)]  # joins the new one
    counting.before_put[old.id] = lambda: analyst.apply(old.id, Assign("bob"), "bob")
    results = ingest.add_alerts(items, AT)
    assert results[0].case is not None
    new_id = results[0].case.id
    assert [(r.case.id if r.case else None, r.opened, r.duplicate) for r in results] == [
        (new_id, True, False), (old.id, False, False), (new_id, False, False)]
    assert counting.puts[new_id] == 1
    assert counting.puts[old.id] == 3
    assert analyst.require(old.id).assignee == "bob"
    assert [a.id for a in analyst.require(old.id).alerts] == [old.alerts[0].id, items[1].alert.id]
    assert [a.id for a in analyst.require(new_id).alerts] == [items[0].alert.id, items[2].alert.id]


def test_a_key_that_keeps_conflicting_gives_up(stores: Callable[[str], Store],
                                              make_incoming: Callable[..., IncomingAlert]) -> None:
    store = stores("shared")
    case = repository(store).add_alert(make_incoming("r1"), T0).case
    assert case is not None

    class AlwaysStale(CountingStore):
        def put(self, collection: str, doc: dict[str, Any], *, expected_version: int | None) -> None:
            self.puts[doc["id"]] += 1
            raise VersionConflictError(collection, doc["id"], expected_version, (expected_version or 0) + 1)

    stale = AlwaysStale(store)
    one = make_incoming("r2", ts=T0 + MINUTE)
    with pytest.raises(CaseConflictError) as single:
        repository(cast(Store, stale)).add_alert(one, AT)
    assert str(single.value) == (
        f"case {case.id}: add_alert {one.alert.id}: the case kept changing under this change; gave up after 5 "
        f"attempts (last: cases/{case.id}: version conflict: expected {case.version}, stored {case.version + 1})")
    two = [one, make_incoming("r3", ts=T0 + MINUTE)]
    with pytest.raises(CaseConflictError) as batch:
        repository(cast(Store, stale)).add_alerts(two, AT)
    assert str(batch.value).startswith(f"case {case.id}: add_alerts {one.alert.id} and 1 more: the case kept changing")
    assert stale.puts[case.id] == 10


def test_deliver_counts_as_one_by_one(stores: Callable[[str], Store], batch: list[IncomingAlert]) -> None:
    """`AlertSink.deliver` with the batch against the counting it did alert by alert."""
    scored = [ScoredAlert(item.alert, item.risk, item.verdict) for item in batch]
    single = repository(stores("single"))
    batched = stores("batched")
    sink = AlertSink(batched, repository(batched), lambda: AT)
    for part in (scored[:9], scored[9:], scored[:4]):  # the last part is a replay
        done = sink.deliver(Outcome(alerts=list(part)))
        opened = updated = existing = 0
        severity: Counter[str] = Counter()
        layers: Counter[str] = Counter()
        touched: dict[str, Case] = {}
        seen: set[str] = set()
        for item in part:
            result = single.add_alert(IncomingAlert(item.alert, item.risk, item.verdict), AT)
            if result.case is None:
                continue
            if result.duplicate:
                existing += 1
            elif result.opened:
                opened += 1
                severity[result.case.severity.value] += 1
                layers[result.case.layer.value] += 1
            elif result.case.id not in seen:
                updated += 1
            seen.add(result.case.id)
            if not result.duplicate:
                touched[result.case.id] = result.case
        assert (done.cases_opened, done.cases_updated, done.alerts_in_existing_cases) == (opened, updated, existing)
        assert (done.case_severity, done.case_layers) == (severity, layers)
        assert done.touched == touched
        assert done.alerts.written + done.alerts.duplicates == len(part)
    assert stored(sink.store) == stored(single.store)


def test_a_sink_refuses_a_repository_on_another_store(stores: Callable[[str], Store]) -> None:
    """A delivery is one unit of writes (`Store.batch`): alerts and cases must go to one store."""
    with pytest.raises(ValueError, match="the case repository must write to the sink's own store"):
        AlertSink(stores("alerts"), repository(stores("alerts")), lambda: AT)
    AlertSink(stores("one"), None, lambda: AT)  # without cases: nothing to share


def test_a_plan_writes_nothing_and_saved_gives_what_add_alerts_gives(
    stores: Callable[[str], Store], batch: list[IncomingAlert],
) -> None:
    """The engine plans before it takes the store's write lock (`plan_alerts` only reads), then saves."""
    planned_store, direct = CountingStore(stores("planned")), repository(stores("direct"))
    repo = repository(cast(Store, planned_store))
    for first in (repo, direct):
        first.add_alerts(batch[:9], AT)  # cases stored and cached: the plan meets them
    before, puts, audit_writes = stored(planned_store.store), dict(planned_store.puts), planned_store.audit_writes
    plan = repo.plan_alerts(batch[9:], AT)
    assert stored(planned_store.store) == before
    assert (dict(planned_store.puts), planned_store.audit_writes) == (puts, audit_writes)
    got = repo.save_alerts(plan)
    expected = direct.add_alerts(batch[9:], AT)
    assert flags(got) == flags(expected)
    assert stored(planned_store.store) == stored(direct.store)


def test_an_analyst_change_between_plan_and_save_is_grouped_again(
    stores: Callable[[str], Store], make_incoming: Callable[..., IncomingAlert]
) -> None:
    ingest, analyst = repository(stores("shared")), repository(stores("shared"))
    case = ingest.add_alert(make_incoming("r1", host="ws01"), T0).case
    assert case is not None
    plan = ingest.plan_alerts([make_incoming("r2", host="ws01", ts=T0 + MINUTE),
                               make_incoming("r3", points=90, host="ws01", ts=T0 + 2 * MINUTE)], AT)
    analyst.apply(case.id, Assign("alice"), "alice")  # saved after the plan read the case
    results = ingest.save_alerts(plan)
    assert [(r.case.id if r.case else None, r.opened, r.duplicate) for r in results] == [
        (case.id, False, False), (case.id, False, False)]
    final = analyst.require(case.id)
    assert final == results[1].case
    assert final.assignee == "alice"
    assert len(final.alerts) == 3
    assert [entry.seq for entry in final.timeline] == list(range(1, final.version + 1))
