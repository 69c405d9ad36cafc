"""Events stored by the detection workers themselves (SQLite): a worker writes its batch's events and says how
many; one whose store fails (or cannot be opened) leaves them to the engine, which stores them as before; the
engine's events end the same either way, and an in-memory database stays with the engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from correlator.live import app as app_module
from correlator.live.app import build_runner, worker_event_store
from correlator.live.detect import Detected
from correlator.live.metrics import render
from correlator.live.runner import Runner
from correlator.live.worker_events import EventWriter
from correlator.pipeline import FileResult
from correlator.store.base import Store
from correlator.store.config import open_store
from correlator.store.documents import PreparedRecord
from correlator.store.errors import StoreError
from tests.correlator.live.test_runner_reload import _config, _event, _rules, _serve


class FakeStore:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.written: list[list[PreparedRecord]] = []

    def write_prepared(self, collection: str, records: list[PreparedRecord]) -> None:
        if self.fail:
            raise StoreError("disk full")
        assert collection == "events"
        self.written.append(list(records))


def _detected(count: int) -> Detected:
    prepared = [PreparedRecord(f"id{n}", 1_000 + n, "{}", (None, None, None), "text") for n in range(count)]
    return Detected(FileResult("live"), prepared=prepared)


def test_a_worker_stores_its_events_and_counts_them() -> None:
    store = FakeStore()
    opened: list[int] = []

    def open_it() -> Any:
        opened.append(1)
        return store

    writer = EventWriter(open_it)
    for count in (3, 0, 2):
        detected = _detected(count)
        writer.store(detected)
        assert (detected.prepared, detected.stored) == ([], count)
    assert [len(batch) for batch in store.written] == [3, 2]
    assert opened == [1]  # opened once, on first use


def test_a_store_that_fails_leaves_the_events_to_the_engine(caplog: pytest.LogCaptureFixture) -> None:
    writer = EventWriter(lambda: FakeStore(fail=True))  # type: ignore[arg-type,return-value]
    detected = _detected(4)
    writer.store(detected)
    assert (len(detected.prepared), detected.stored) == (4, 0)
    assert "4 events left to the engine to store: disk full" in caplog.text


def test_a_store_that_cannot_be_opened_is_tried_again_next_batch() -> None:
    attempts: list[int] = []

    def open_it() -> Store:
        attempts.append(1)
        raise StoreError("unable to open database file")

    writer = EventWriter(open_it)
    for _ in range(2):
        detected = _detected(1)
        writer.store(detected)
        assert len(detected.prepared) == 1
    assert len(attempts) == 2


def test_an_in_memory_database_stays_with_the_engine(tmp_path: Path) -> None:
    with open_store("sqlite:///:memory:") as memory, open_store(f"sqlite:///{tmp_path / 'x.db'}") as on_disk:
        assert worker_event_store(memory) is None
        opener = worker_event_store(on_disk)
        assert opener is not None
        with opener() as own:  # a connection of its own to the same file
            assert own is not on_disk
            assert own.path == on_disk.path  # type: ignore[attr-defined]


def _send_and_stop(runner: Runner, count: int) -> None:
    async def scenario(runner: Runner) -> None:
        for number in range(count):
            await runner.put("test", _event("a", number))
        await runner.barrier()

    _serve(runner, scenario)


def _stored(store: Store) -> tuple[list[str], list[str]]:
    return (sorted(hit["event"]["id"] for hit in store.search("events", limit=50).hits),
            sorted(hit["alert"]["id"] for hit in store.search("alerts", limit=50).hits))


def test_with_workers_over_sqlite_the_workers_store_the_events(tmp_path: Path) -> None:
    rules = _rules(tmp_path / "rules", "a")
    stored = {}
    for workers in (0, 2):
        config = _config(tmp_path / str(workers), rules, workers=workers)
        with open_store(config.store) as store:
            runner, _ = build_runner(config, store)
            _send_and_stop(runner, 12)
            assert store.count("events") == 12
            assert runner.counters.events_stored_by_workers == (12 if workers else 0)
            assert f"socctl_events_stored_by_workers_total {12 if workers else 0}" in render(runner)
            stored[workers] = _stored(store)
    assert stored[2] == stored[0]  # the same events and alerts as the pipeline thread stores
    assert len(stored[2][1]) >= 1


def test_when_the_workers_cannot_store_the_engine_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(_store: Store) -> Any:
        def open_it() -> Store:
            raise StoreError("unable to open database file")
        return open_it

    monkeypatch.setattr(app_module, "worker_event_store", broken)  # before the workers are forked
    config = _config(tmp_path, _rules(tmp_path / "rules", "a"), workers=2)
    with open_store(config.store) as store:
        runner, _ = build_runner(config, store)
        _send_and_stop(runner, 12)
        assert store.count("events") == 12
        assert runner.counters.events_stored_by_workers == 0
