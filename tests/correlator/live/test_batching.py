"""Cutting the intake queue into batches, and the runner's batch loop: a batch waits `batch_wait` from when its
first item was queued (an item that waited already goes at once); with detection workers the next batch is
gathered and handed on while the one before it is finished; a pipeline that fails stops the loop, fails the
checkpoints still waiting and raises, whatever is in flight."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from correlator.live.app import build_runner
from correlator.live.batching import Checkpoint, Entry, Queued, gather, queued_at, settle
from correlator.live.intake_queue import IntakeQueue
from correlator.live.runner import Runner
from correlator.store.config import open_store
from tests.correlator.live.test_runner_reload import WORKERS, _config, _event, _rules


def _item(number: int, queued: float) -> Queued:
    return ("test", _event("a", number), queued)


def test_a_batch_whose_first_item_waited_its_batch_wait_goes_with_what_is_queued() -> None:
    async def main() -> tuple[list[Queued], float]:
        queue: IntakeQueue[Entry] = IntakeQueue(100)
        old = time.monotonic() - 1.0  # queued a second ago
        for number in (1, 2):
            queue.put_nowait(_item(number, old))
        first = queue.get_nowait()
        started = time.monotonic()
        batch, _, _ = await gather(queue, first, queued_at(first) + 0.5, 10)
        return batch, time.monotonic() - started

    batch, took = asyncio.run(main())
    assert [item[1].fields["n"] for item in batch] == [1, 2]  # type: ignore[union-attr]
    assert took < 0.25  # not another half second


def test_a_fresh_batch_waits_for_more_until_its_deadline() -> None:
    async def main() -> list[Queued]:
        queue: IntakeQueue[Entry] = IntakeQueue(100)
        first = _item(1, time.monotonic())

        async def later() -> None:
            await asyncio.sleep(0.05)
            await queue.put(_item(2, time.monotonic()))

        task = asyncio.create_task(later())
        batch, _, _ = await gather(queue, first, queued_at(first) + 5.0, 2)  # full at 2: before the deadline
        await task
        return batch

    assert [item[1].fields["n"] for item in asyncio.run(main())] == [1, 2]  # type: ignore[union-attr]


def test_a_checkpoint_ends_its_batch_and_settles_stored_or_failed() -> None:
    async def main() -> tuple[Any, ...]:
        loop = asyncio.get_running_loop()
        queue: IntakeQueue[Entry] = IntakeQueue(100)
        stored, failed = Checkpoint(loop.create_future()), Checkpoint(loop.create_future())
        queue.put_nowait(stored, 0)
        queue.put_nowait(_item(9, time.monotonic()))
        batch, checkpoints, carry = await gather(queue, _item(1, time.monotonic()), time.monotonic() + 5, 10)
        settle(checkpoints)
        settle([failed], OSError("disk full"))
        with pytest.raises(RuntimeError, match="not stored: disk full"):
            await failed.done
        return len(batch), checkpoints == [stored], stored.done.result(), carry, queue.qsize()

    assert asyncio.run(main()) == (1, True, None, [], 1)


# ------------------------------------------------------------------------------------------------ the loop


def test_with_workers_the_next_batch_is_handed_on_while_the_one_before_is_finished(tmp_path: Path) -> None:
    config = _config(tmp_path, _rules(tmp_path / "rules", "a"), workers=2)
    handed_on_during_finish = threading.Event()
    with open_store(config.store) as store:
        runner, _ = build_runner(config, store)
        finish, detect_remote = runner.finish, runner._detect_remote
        finishing = threading.Event()
        finished: list[int] = []

        def slow_finish(batch: list[Queued], detected: Any, started: float) -> None:
            if not finished:  # the first batch: held until the next one is handed to a worker
                finishing.set()
                handed_on_during_finish.wait(timeout=10)
            finish(batch, detected, started)
            finished.append(len(batch))

        def recording(batch: list[Queued], checkpoints: list[Checkpoint]) -> Any:
            if finishing.is_set() and not finished:
                handed_on_during_finish.set()
            return detect_remote(batch, checkpoints)

        runner.finish = slow_finish  # type: ignore[method-assign]
        runner._detect_remote = recording  # type: ignore[method-assign]

        async def scenario(runner: Runner) -> None:
            await runner.put("test", _event("a", 1))
            while not finishing.is_set():
                await asyncio.sleep(0.01)
            await runner.put("test", _event("a", 2))
            await runner.barrier()

        _serve_scenario(runner, scenario)
        assert handed_on_during_finish.is_set()
        assert store.count("events") == 2


@WORKERS
def test_a_failing_store_stops_the_loop_fails_the_waiting_checkpoints_and_raises(tmp_path: Path,
                                                                                 workers: int) -> None:
    config = _config(tmp_path, _rules(tmp_path / "rules", "a"), workers=workers)
    with open_store(config.store) as store:
        runner, _ = build_runner(config, store)

        def broken(*_: Any) -> None:
            raise OSError("disk full")

        runner.finish = broken  # type: ignore[method-assign]
        runner.process = broken  # type: ignore[method-assign]
        outcome: list[BaseException] = []

        async def main() -> None:
            stop = asyncio.Event()
            serving = asyncio.create_task(runner.serve(stop))
            await asyncio.sleep(0.2)
            await runner.put("test", _event("a", 1))
            with pytest.raises(RuntimeError, match="not stored: disk full"):
                await asyncio.wait_for(runner.barrier(), timeout=20)
            try:
                await asyncio.wait_for(serving, timeout=20)  # stops by itself: no stop asked
            except OSError as exc:
                outcome.append(exc)

        asyncio.run(main())
        assert [str(exc) for exc in outcome] == ["disk full"]


def _serve_scenario(runner: Runner, scenario: Any) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        serving = asyncio.create_task(runner.serve(stop))
        try:
            await asyncio.wait_for(scenario(runner), timeout=30)
        finally:
            stop.set()
            await serving

    asyncio.run(main())



def test_while_every_worker_is_busy_the_next_batch_waits_and_grows(tmp_path: Path) -> None:
    config = _config(tmp_path, _rules(tmp_path / "rules", "a"), workers=1)  # batch_wait 20 ms
    release = threading.Event()
    with open_store(config.store) as store:
        runner, _ = build_runner(config, store)
        assert runner.workers is not None
        detect = runner.workers.detect
        sizes: list[int] = []

        def held(index: int, items: Any, now_ms: int, *, store_events: bool) -> Any:
            sizes.append(len(items))
            if len(sizes) == 1:  # the first batch keeps the only worker busy
                release.wait(timeout=10)
            return detect(index, items, now_ms, store_events=store_events)

        runner.workers.detect = held  # type: ignore[method-assign]

        async def scenario(runner: Runner) -> None:
            await runner.put("test", _event("a", 0))
            while not sizes:
                await asyncio.sleep(0.01)
            for number in range(1, 6):  # each alone would be a batch of its own after batch_wait
                await runner.put("test", _event("a", number))
                await asyncio.sleep(0.05)
            release.set()
            await runner.barrier()

        _serve_scenario(runner, scenario)
        assert sizes == [1, 5]
        assert store.count("events") == 6
