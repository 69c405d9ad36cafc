"""`Store.batch`: writes grouped into one unit. On every backend the calls inside behave as they do outside it
(their results, a version conflict raised for its put alone, reads seeing the unit's own writes); on SQLite the
unit is a transaction on each file it uses (`test_sqlite_files`): other connections see nothing until it ends,
and a block that raises leaves nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from correlator.store import Store
from correlator.store import sqlite as sqlite_module
from correlator.store.errors import StoreError, VersionConflictError
from correlator.store.sqlite import SqliteStore
from tests.correlator.store.test_contract import build_event as make_event
from tests.correlator.store.test_contract_versioned import case_doc


def test_calls_inside_a_batch_give_what_they_give_outside(store: Store) -> None:
    events = [make_event(message=f"batch {i}") for i in range(3)]
    with store.batch():
        first = store.write_events(events)
        again = store.write_events(events[:1])
        store.put("cases", case_doc(), expected_version=None)
        store.put("cases", case_doc(version=2, status="acknowledged"), expected_version=1)
        with store.batch():  # a nested block joins the outer one
            store.write_audit([{"id": "audit-1", "at_ms": 1_700_000_000_000, "action": "open"}])
    assert (first.written, first.duplicates, again.written, again.duplicates) == (3, 0, 0, 1)
    assert store.count("events", "batch") == 3
    assert store.get("cases", "case-1a2b")["status"] == "acknowledged"  # type: ignore[index]
    assert store.count("audit") == 1


def test_a_version_conflict_inside_a_batch_undoes_only_its_put(store: Store) -> None:
    store.put("cases", case_doc(), expected_version=None)
    with store.batch():
        store.write_events([make_event(message="kept")])
        with pytest.raises(VersionConflictError):
            store.put("cases", case_doc(version=3, status="closed"), expected_version=2)
        store.put("cases", case_doc("case-other"), expected_version=None)
    assert store.count("events", "kept") == 1
    assert store.get("cases", "case-1a2b")["status"] == "new"  # type: ignore[index]
    assert store.get("cases", "case-other") is not None


def test_sqlite_batch_is_one_transaction(tmp_path: Path) -> None:
    path = tmp_path / "socctl.db"
    with SqliteStore(path) as store, SqliteStore(path) as reader:
        with store.batch():
            store.write_events([make_event(message="pending one")])
            store.put("cases", case_doc(), expected_version=None)
            assert store.count("events", "pending") == 1  # the unit reads its own writes
            assert reader.count("events") == 0  # another connection sees none of them yet
            assert reader.get("cases", "case-1a2b") is None
        assert reader.count("events", "pending") == 1
        assert reader.get("cases", "case-1a2b") is not None


def test_sqlite_batch_that_raises_leaves_nothing(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "socctl.db") as store:
        store.write_events([make_event(message="before")])

        def failing_unit() -> None:
            with store.batch():
                store.write_events([make_event(message="inside")])
                store.put("cases", case_doc(), expected_version=None)
                raise RuntimeError("analysis failed")

        with pytest.raises(RuntimeError, match="analysis failed"):
            failing_unit()
        assert store.count("events", "inside") == 0
        assert store.get("cases", "case-1a2b") is None
        assert store.count("events", "before") == 1
        store.write_events([make_event(message="after")])  # the store goes on: no transaction left open
        assert store.count("events", "after") == 1


def test_sqlite_write_failing_part_way_undoes_the_batch(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No savepoint per call (FTS5 writes its pending data out at each): a write that fails after it began
    writing cannot be undone alone, so the batch keeps none of its writes, even when the block goes on."""
    path = tmp_path / "socctl.db"
    with SqliteStore(path) as store, SqliteStore(path) as reader:

        def broken(doc: object) -> str:
            raise RuntimeError("tokenizer exploded")

        def unit_going_on() -> None:  # swallows the failed write's error
            with store.batch():
                store.put("cases", case_doc(), expected_version=None)
                with pytest.raises(VersionConflictError):  # writes nothing: the batch goes on
                    store.put("cases", case_doc(version=3), expected_version=2)
                monkeypatch.setattr(sqlite_module, "document_text", broken)
                with pytest.raises(RuntimeError, match="tokenizer exploded"):  # the events' rows, then their text
                    store.write_events([make_event(message="half written")])
                monkeypatch.undo()
                store.put("cases", case_doc("case-other"), expected_version=None)

        with pytest.raises(StoreError) as info:
            unit_going_on()
        assert str(info.value) == f"{path}: batch undone: a write inside it failed: tokenizer exploded"
        assert reader.count("events") == 0
        assert reader.get("cases", "case-1a2b") is None
        assert reader.get("cases", "case-other") is None
        with store.batch():  # the store goes on
            store.put("cases", case_doc(), expected_version=None)
        assert reader.get("cases", "case-1a2b") is not None
