"""`Store.write_prepared` on every backend: events prepared elsewhere (`prepare_event`, as detection workers do)
are stored as `write_events` stores them: the same documents, found by the same searches, duplicates counted."""

from __future__ import annotations

from pathlib import Path

import pytest

from correlator.store import InvalidRequestError, Store
from correlator.store.documents import prepare_event
from correlator.store.sqlite import SqliteStore
from tests.correlator.store.conftest import T0
from tests.correlator.store.test_contract import build_event


def test_prepared_events_are_stored_as_events_are(store: Store, tmp_path: Path) -> None:
    events = [build_event(f"prepared powershell {i}", ts=T0 + i, host=f"ws-{i:02d}") for i in range(4)]
    first = store.write_prepared("events", [prepare_event(e) for e in events[:3]])
    again = store.write_prepared("events", [prepare_event(e) for e in events[2:]])
    assert (first.written, first.duplicates, again.written, again.duplicates) == (3, 0, 1, 1)
    with SqliteStore(tmp_path / "reference.db") as reference:
        reference.write_events(events)
        for query in ("powershell", "host.name:ws-02", '"prepared powershell 3"', "event.code:4688"):
            assert ([hit["event"]["id"] for hit in store.search("events", query, sort="@timestamp").hits]
                    == [hit["event"]["id"] for hit in reference.search("events", query, sort="@timestamp").hits]), \
                query
        assert store.get("events", events[1].id) == reference.get("events", events[1].id)
    assert store.write_prepared("events", []).written == 0


def test_prepared_records_are_not_for_versioned_collections(store: Store) -> None:
    record = prepare_event(build_event("x"))
    with pytest.raises(InvalidRequestError, match="write_prepared cases: a versioned collection is written by put"):
        store.write_prepared("cases", [record])
