"""The collector runs between batches: paused while they run, the young generations after each, everything at
the configured interval."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest

from correlator.gc_policy import BatchCollector


@pytest.fixture
def collections() -> Iterator[list[int]]:
    """The generations collected while the test runs."""
    seen: list[int] = []

    def record(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            seen.append(info["generation"])

    gc.callbacks.append(record)
    try:
        yield seen
    finally:
        gc.callbacks.remove(record)


def test_pause_turns_the_automatic_collector_off_until_resume() -> None:
    assert gc.isenabled()
    collector = BatchCollector()
    collector.pause()
    try:
        assert not gc.isenabled()
        collector.pause()  # twice: resume still restores the state from before the first
    finally:
        collector.resume()
    assert gc.isenabled()


def test_resume_keeps_a_collector_that_was_off_off() -> None:
    gc.disable()
    try:
        collector = BatchCollector()
        collector.pause()
        collector.resume()
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_after_a_batch_the_young_generations_and_at_the_interval_everything(collections: list[int]) -> None:
    now = [100.0]
    collector = BatchCollector(full_every_s=60, clock=lambda: now[0])
    collector.pause()  # no automatic collection from here on: only the collector's own are seen
    collections.clear()  # (one may have run before the pause)
    try:
        collector.after_batch()
        now[0] += 59
        collector.after_batch()
        now[0] += 1
        collector.after_batch()  # 60 s since the start: a full collection
        now[0] += 30
        collector.after_batch()
    finally:
        collector.resume()
    assert collections == [1, 1, 2, 1]
    assert (collector.collections, collector.full_collections) == (3, 1)


def test_cycles_left_by_a_batch_are_freed_after_it() -> None:
    class Node:
        def __init__(self) -> None:
            self.other: Node | None = None

    collector = BatchCollector()
    collector.pause()
    try:
        first, second = Node(), Node()
        first.other, second.other = second, first
        del first, second
        before = sum(1 for obj in gc.get_objects(0) if isinstance(obj, Node))
        collector.after_batch()
        after = sum(1 for obj in gc.get_objects() if isinstance(obj, Node))
    finally:
        collector.resume()
    assert (before, after) == (2, 0)


def test_the_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="full_every_s must be positive, got 0"):
        BatchCollector(full_every_s=0)
