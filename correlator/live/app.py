"""Assemble the running engine from its configuration: rules, the run's components (`correlator.runtime`), the
store, cases, and the runner; run it until SIGTERM/SIGINT, reloading on SIGHUP.

Building is split by what it touches: `read_store_inputs` reads the store (the allowlist kept there, each rule's
alert history) and runs where the store may be used (the pipeline thread of a running engine); `load_parts`
reads only files (rules, the run's configuration files) and may run in any thread; `assemble` joins them."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import gc
import logging
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from correlator.cli.common import RuleOptions, load_sigma
from correlator.live.config import RunConfig
from correlator.live.parts import Components
from correlator.live.runner import Runner
from correlator.store.base import Store, wall_clock_ms

if TYPE_CHECKING:
    from correlator.allowlist import AllowlistEntry
    from correlator.pipeline import Detection
    from correlator.runtime import Runtime
    from correlator.scoring import RuleHistory
    from correlator.sigma.engine import SigmaEngine

__all__ = ["StoreInputs", "assemble", "build_runner", "load_parts", "pid_file", "read_store_inputs",
           "run_until_signalled", "worker_event_store"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoreInputs:
    allowlist: Sequence[AllowlistEntry]
    history: Mapping[str, RuleHistory]


@dataclass(frozen=True)
class _Loaded:
    engine: SigmaEngine
    runtime: Runtime
    warnings: list[str]


def read_store_inputs(store: Store) -> StoreInputs:
    from correlator.allowlist_store import stored_entries
    from correlator.cases.repository import rule_history

    return StoreInputs(stored_entries(store), rule_history(store))


def load_parts(config: RunConfig, inputs: StoreInputs) -> _Loaded:
    """The Sigma engine and the run's components from files (no store access)."""
    from correlator.runtime import load_runtime
    from correlator.sigma.engine import SigmaEngine

    options = RuleOptions(list(config.rules), config.no_default_rules)
    ruleset, sources = load_sigma(options)
    engine = SigmaEngine(ruleset.rules, sources)
    runtime = load_runtime(dataclasses.replace(config.runtime, rule_paths=tuple(options.rule_paths()),
                                               rule_texts=ruleset.texts),
                           allowlist_entries=inputs.allowlist)
    warnings = [f"rule not loaded: {error}" for error in ruleset.errors]
    warnings += [f"{problem.what} not loaded: {problem}" for problem in runtime.problems]
    return _Loaded(engine, runtime, warnings)


def assemble(loaded: _Loaded, inputs: StoreInputs, store: Store) -> Components:
    from correlator.cases.repository import CaseRepository
    from correlator.sink import AlertSink

    runtime = loaded.runtime
    correlation = runtime.correlation_engine()
    detection = runtime.detection(loaded.engine, correlation, wall_clock_ms())
    analyzer = runtime.analyzer(correlation, inputs.history)
    sink = AlertSink(store, CaseRepository(store, runtime.grouper(), wall_clock_ms), wall_clock_ms)
    return Components(runtime, detection, analyzer, sink, loaded.warnings, len(loaded.engine.rules))


def build_runner(config: RunConfig, store: Store) -> tuple[Runner, list[str]]:
    """The runner over `store`, and the warnings of what did not load (rules, correlation rules, playbooks)."""
    inputs = read_store_inputs(store)
    parts = assemble(load_parts(config, inputs), inputs, store)

    def rebuild(inputs: StoreInputs) -> Callable[[], Components]:
        loaded = load_parts(config, inputs)  # files: off the pipeline thread
        return lambda: assemble(loaded, inputs, store)  # run in the pipeline thread

    gc.freeze()  # the compiled rules live as long as the process: the collector need not walk them again
    workers = None
    if config.workers > 0:  # forked now, before any thread: they share the compiled rules
        from correlator.live.workers import DetectionWorkers

        workers = DetectionWorkers(config.workers, parts.detection, functools.partial(worker_detection, config),
                                   events=worker_event_store(store))
    runner = Runner(config, store, parts, clock=wall_clock_ms,
                    reloader=(lambda: read_store_inputs(store), rebuild), workers=workers)
    return runner, parts.warnings


def worker_event_store(store: Store) -> Callable[[], Store] | None:
    """How a detection worker opens its own connection to `store` to write its events itself: a SQLite file
    (other backends, and an in-memory database a worker cannot share, leave the events to the engine)."""
    from correlator.store.config import MEMORY
    from correlator.store.sqlite import SqliteStore

    if not isinstance(store, SqliteStore) or store.path == MEMORY:
        return None
    return functools.partial(SqliteStore, store.path)


def worker_detection(config: RunConfig, inputs: StoreInputs) -> Detection:
    """A detection worker's stage after a reload: the rules and files loaded again, in the worker."""
    loaded = load_parts(config, inputs)
    runtime = loaded.runtime
    detection = runtime.detection(loaded.engine, runtime.correlation_engine(), wall_clock_ms())
    gc.freeze()
    return detection


def pid_file(state_dir: Path) -> Path:
    """Where a running engine writes its process id (`socctl reload` signals it)."""
    return state_dir / "socctl-run.pid"


def run_until_signalled(runner: Runner, ready: Callable[[dict[str, int]], None] | None = None) -> None:
    """Serve until SIGTERM or SIGINT, then shut down cleanly (see `Runner.serve`); SIGHUP reloads rules, assets,
    playbooks and the other configuration files without losing correlation windows (`Runner.reload`)."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        reloads: set[asyncio.Task[bool]] = set()

        def hangup() -> None:
            task = loop.create_task(runner.reload())
            reloads.add(task)
            task.add_done_callback(reloads.discard)

        loop.add_signal_handler(signal.SIGHUP, hangup)
        pid = pid_file(runner.config.state_dir)
        pid.parent.mkdir(parents=True, exist_ok=True)
        pid.write_text(f"{os.getpid()}\n", encoding="utf-8")
        try:
            await runner.serve(stop, ready=ready)
        finally:
            for task in reloads:
                task.cancel()
            with contextlib.suppress(OSError):
                pid.unlink()

    asyncio.run(main())
