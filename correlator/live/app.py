"""Assemble the running engine from its configuration: rules, the run's components (`correlator.runtime`), the
store, cases, and the runner; and run it until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
from collections.abc import Callable

from correlator.cli.common import RuleOptions, load_sigma
from correlator.live.config import RunConfig
from correlator.live.runner import Runner
from correlator.store.base import Store, wall_clock_ms

__all__ = ["build_runner", "run_until_signalled"]


def build_runner(config: RunConfig, store: Store) -> tuple[Runner, list[str]]:
    """The runner over `store`, and the warnings of what did not load (rules, correlation rules, playbooks)."""
    from correlator.allowlist_store import stored_entries
    from correlator.cases.repository import CaseRepository, rule_history
    from correlator.runtime import load_runtime
    from correlator.sigma.engine import SigmaEngine
    from correlator.sink import AlertSink

    options = RuleOptions(list(config.rules), config.no_default_rules)
    ruleset, sources = load_sigma(options)
    engine = SigmaEngine(ruleset.rules, sources)
    runtime = load_runtime(dataclasses.replace(config.runtime, rule_paths=tuple(options.rule_paths())),
                           allowlist_entries=stored_entries(store))
    correlation = runtime.correlation_engine()
    detection = runtime.detection(engine, correlation, wall_clock_ms())
    analyzer = runtime.analyzer(correlation, rule_history(store))
    sink = AlertSink(store, CaseRepository(store, runtime.grouper(), wall_clock_ms), wall_clock_ms)
    warnings = [f"rule not loaded: {error}" for error in ruleset.errors]
    warnings += [f"{problem.what} not loaded: {problem}" for problem in runtime.problems]
    return Runner(config, store, runtime, detection, analyzer, sink, clock=wall_clock_ms), warnings


def run_until_signalled(runner: Runner, ready: Callable[[dict[str, int]], None] | None = None) -> None:
    """Serve until SIGTERM or SIGINT, then shut down cleanly (see `Runner.serve`)."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await runner.serve(stop, ready=ready)

    asyncio.run(main())
