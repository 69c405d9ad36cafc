"""The intake queue is bounded in events: entries weigh what they carry, `put` waits for room, and cancelled
waits leave it as it was."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from correlator.live.intake_queue import IntakeQueue


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 10))


def test_entries_come_out_in_order_and_the_size_counts_their_weights() -> None:
    async def test() -> None:
        queue: IntakeQueue[str] = IntakeQueue(10)
        await queue.put("bulk", 4)
        await queue.put("one")
        await queue.put("checkpoint", 0)
        assert (queue.qsize(), len(queue), queue.empty()) == (5, 3, False)
        assert [queue.get_nowait() for _ in range(3)] == ["bulk", "one", "checkpoint"]
        assert (queue.qsize(), len(queue), queue.empty()) == (0, 0, True)
        with pytest.raises(asyncio.QueueEmpty):
            queue.get_nowait()
    run(test)


def test_put_waits_until_the_entry_fits() -> None:
    async def test() -> None:
        queue: IntakeQueue[str] = IntakeQueue(10)
        await queue.put("a", 6)
        late = asyncio.create_task(queue.put("b", 5))
        await asyncio.sleep(0.01)
        assert not late.done()  # 6 + 5 > 10
        assert queue.qsize() == 6
        assert await queue.get() == "a"
        await asyncio.wait_for(late, 1)
        assert (queue.qsize(), queue.get_nowait()) == (5, "b")
    run(test)


def test_an_entry_heavier_than_the_queue_goes_in_alone() -> None:
    async def test() -> None:
        queue: IntakeQueue[str] = IntakeQueue(10)
        await queue.put("huge", 25)  # empty: in it goes, or it would wait for ever
        assert queue.qsize() == 25
        second = asyncio.create_task(queue.put("small", 1))
        await asyncio.sleep(0.01)
        assert not second.done()
        assert queue.get_nowait() == "huge"
        await asyncio.wait_for(second, 1)
        assert queue.get_nowait() == "small"
    run(test)


def test_a_zero_weight_checkpoint_never_waits_and_its_leaving_wakes_a_huge_entry() -> None:
    async def test() -> None:
        queue: IntakeQueue[str] = IntakeQueue(3)
        await queue.put("a", 3)
        await asyncio.wait_for(queue.put("checkpoint", 0), 0.5)
        huge = asyncio.create_task(queue.put("huge", 7))
        await asyncio.sleep(0.01)
        assert queue.get_nowait() == "a"
        await asyncio.sleep(0.01)
        assert not huge.done()  # the checkpoint is still queued: not empty, and 7 > 3
        assert queue.get_nowait() == "checkpoint"
        await asyncio.wait_for(huge, 1)
        assert queue.qsize() == 7
    run(test)


def test_put_nowait_refuses_what_does_not_fit() -> None:
    async def test() -> None:
        queue: IntakeQueue[str] = IntakeQueue(2)
        queue.put_nowait("a")
        queue.put_nowait("b")
        with pytest.raises(asyncio.QueueFull):
            queue.put_nowait("c")
        assert [queue.get_nowait(), queue.get_nowait()] == ["a", "b"]
        with pytest.raises(ValueError, match="weight must not be negative, got -1"):
            queue.put_nowait("d", -1)
    run(test)


def test_cancelled_waits_leave_the_queue_as_it_was() -> None:
    async def test() -> None:
        queue: IntakeQueue[str] = IntakeQueue(1)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(queue.get(), 0.01)
        await queue.put("a")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(queue.put("b"), 0.01)
        assert (queue.qsize(), len(queue)) == (1, 1)  # the cancelled put left nothing behind
        assert await asyncio.wait_for(queue.get(), 1) == "a"
        getter = asyncio.create_task(queue.get())
        await asyncio.sleep(0.01)
        await queue.put("c")
        assert await asyncio.wait_for(getter, 1) == "c"
    run(test)


def test_the_bound_must_be_positive() -> None:
    with pytest.raises(ValueError, match="maxsize must be at least 1, got 0"):
        IntakeQueue(0)
