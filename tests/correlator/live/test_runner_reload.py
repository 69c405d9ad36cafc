"""The runner's acknowledgement barrier and its reload: a barrier returns only once what was queued before it is
in the store (and fails once the pipeline has ended); a reload switches to new rules between batches, keeps the
open correlation windows of unchanged rules, and keeps the running rules when the new files cannot be loaded."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
import pytest

from collectors.json_reader import normalise_record
from correlator.live.app import build_runner
from correlator.live.config import Listen, RunConfig
from correlator.live.runner import Runner
from correlator.model import Event, EventOrigin
from correlator.runtime import RuntimeOptions
from correlator.store.base import Store
from correlator.store.config import open_store

RULE = """
title: Marker {name}
id: {id}
name: marker_{name}
status: test
logsource: {{product: test}}
detection:
    selection:
        marker: {name}
    condition: selection
level: {level}
"""

CORRELATION = """
title: Three Markers A From One Host
id: 5a0f3f4e-1c1e-4a51-9a0e-0d5b2f1f3c01
name: three_markers
status: test
correlation:
    type: event_count
    rules: [marker_a]
    group-by: [host.name]
    timespan: 1h
    condition: {gte: 3}
level: high
"""

IDS = {"a": "7d1b4a52-7a4e-4c44-9d0e-3b1f0e5e2a01", "b": "7d1b4a52-7a4e-4c44-9d0e-3b1f0e5e2a02"}


def _rules(directory: Path, *names: str) -> Path:
    directory.mkdir(exist_ok=True)
    for name in names:
        (directory / f"marker_{name}.yml").write_text(RULE.format(name=name, id=IDS[name], level="low"), "utf-8")
    (directory / "three_markers.yml").write_text(CORRELATION, encoding="utf-8")
    return directory


def _config(tmp_path: Path, rules: Path, workers: int = 0, **runtime: object) -> RunConfig:
    return RunConfig(store=f"sqlite:///{tmp_path / 'socctl.db'}", state_dir=tmp_path / "state", rules=(rules,),
                     no_default_rules=True, runtime=RuntimeOptions(suppress=False, **runtime),  # type: ignore[arg-type]
                     syslog=Listen(udp=None, tcp=None), metrics=Listen(port=None), http=Listen(port=None),
                     batch_wait_ms=20, workers=workers)


# Detection in the pipeline thread, and in two worker processes: the same behaviour.
WORKERS = pytest.mark.parametrize("workers", [0, 2], ids=["in-thread", "2-workers"])


def _event(marker: str, number: int, host: str = "web01", minute: int = 0) -> Event:
    record = {"@timestamp": f"2026-11-20T01:{minute:02d}:{number:02d}Z", "marker": marker, "host": {"name": host},
              "n": number}
    return normalise_record(record, orjson.dumps(record).decode(), EventOrigin(path="test", offset=number))


def _serve(runner: Runner, scenario: Callable[[Runner], Awaitable[None]]) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        serving = asyncio.create_task(runner.serve(stop))
        try:
            await scenario(runner)
        finally:
            stop.set()
            await serving

    asyncio.run(main())


def _rule_ids(store: Store) -> list[str]:
    return sorted(str(hit.get("rule", {}).get("id")) for hit in store.search("alerts", limit=100).hits)


@WORKERS
def test_a_barrier_returns_once_everything_before_it_is_stored(tmp_path: Path, workers: int) -> None:
    config = _config(tmp_path, _rules(tmp_path / "rules", "a"), workers)
    with open_store(config.store) as store:
        runner, warnings = build_runner(config, store)
        assert warnings == []
        seen: list[int] = []

        async def scenario(runner: Runner) -> None:
            for number in range(5):
                await runner.put("test", _event("a", number))
            await runner.barrier()
            seen.append(store.count("events"))

        _serve(runner, scenario)
        assert seen == [5]
        assert runner.latency.count == 5


def test_a_barrier_fails_once_the_pipeline_has_ended(tmp_path: Path) -> None:
    config = _config(tmp_path, _rules(tmp_path / "rules", "a"))
    with open_store(config.store) as store:
        runner, _ = build_runner(config, store)
        _serve(runner, lambda runner: asyncio.sleep(0))

        async def late() -> None:
            await runner.barrier()

        with pytest.raises(RuntimeError, match="not running"):
            asyncio.run(late())


@WORKERS
def test_a_reload_adds_new_rules_and_keeps_open_windows(tmp_path: Path, workers: int) -> None:
    rules = _rules(tmp_path / "rules", "a")
    config = _config(tmp_path, rules, workers)
    with open_store(config.store) as store:
        runner, _ = build_runner(config, store)
        outcomes: list[bool] = []

        async def scenario(runner: Runner) -> None:
            await runner.put("test", _event("a", 1))
            await runner.put("test", _event("a", 2))
            await runner.put("test", _event("b", 3))  # no rule for b yet
            await runner.barrier()
            _rules(rules, "b")
            outcomes.append(await runner.reload())
            await asyncio.sleep(1.5)  # a slow reload: the idle engine moves event time on meanwhile
            # Event time moves on with the wall clock while the engine is idle (during the reload too): the events
            # after it come 30 minutes later in event time, so a slow reload cannot make them late.
            await runner.put("test", _event("a", 4, minute=30))  # third a: the window opened before the reload
            await runner.put("test", _event("b", 5, minute=30))
            await runner.barrier()

        _serve(runner, scenario)
        assert outcomes == [True]
        assert runner.counters.reloads == 1
        # a only feeds the correlation (no alerts of its own); two a before the reload and one after make three
        assert _rule_ids(store) == ["5a0f3f4e-1c1e-4a51-9a0e-0d5b2f1f3c01", IDS["b"]]  # and only the b after it


@WORKERS
def test_a_reload_that_cannot_load_keeps_the_running_rules(tmp_path: Path, workers: int) -> None:
    assets = tmp_path / "assets.yml"
    assets.write_text("systems: []\n", encoding="utf-8")
    rules = _rules(tmp_path / "rules", "a")
    config = _config(tmp_path, rules, workers, assets=assets)
    with open_store(config.store) as store:
        runner, _ = build_runner(config, store)
        outcomes: list[bool] = []

        async def scenario(runner: Runner) -> None:
            assets.write_text("systems: [{id: 1, level: 9}\n", encoding="utf-8")  # broken YAML
            _rules(rules, "b")
            outcomes.append(await runner.reload())
            await runner.put("test", _event("a", 1))
            await runner.put("test", _event("b", 2))
            await runner.barrier()

        _serve(runner, scenario)
        assert outcomes == [False]
        assert runner.counters.reload_failures == 1
        assert _rule_ids(store) == []  # b's rule came with the failed reload; a only feeds the correlation
        assert store.count("events") == 2

