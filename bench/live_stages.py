"""Two stages of `socctl run`, old against new in one process (a benchmark that prints ratios; not a test).

1. intake: Linux auth syslog frames (`bench/intake.py`'s `messages`) to `Event` with `frame_to_event`, and the
   same with the ECS document built (what storing the event costs on top);
2. cases: `AlertSink.deliver` of a batch of scored alerts into cases on SQLite: a first batch that opens cases,
   then a second that feeds them (the repository's cache warm);
3. campaign (working tree only): one host's long campaign, `--campaign` alerts in batches of 100, the cost per
   alert as the campaign grows (a case holds at most `grouping.max_alerts`, 1,000: the cost stays flat).

"Old" is the code of a git revision (`--old-rev`, by default the one before these stages were reworked), loaded
from git into this process beside the working tree's. The two run alternately on the same data, round after
round, and the figures are medians: on a busy machine only the ratios mean something.

    python bench/live_stages.py [--events 20000] [--alerts 400] [--hosts 40] [--rounds 7] [--old-rev REV]
                                [--campaign 8000] [--only intake|cases|campaign]
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from intake import messages  # noqa: E402

from collectors.syslog_server import SyslogFrame  # noqa: E402
from correlator.analysis import Outcome, ScoredAlert  # noqa: E402
from correlator.cases.grouping import CaseGrouper  # noqa: E402
from correlator.model import Alert, Event, EventOrigin, MatchedRule  # noqa: E402
from correlator.scoring import Factor, RiskScore, load_scoring_config  # noqa: E402
from correlator.store.sqlite import SqliteStore  # noqa: E402

OLD_REV = "2169810"  # socctl run: collectors acknowledge only what is stored (before syslog and cases were reworked)
RECEIVED_MS = 1_700_000_000_000
INTAKE_MODULES = ("collectors.syslog_parse", "collectors.linux_auth", "collectors.syslog_file",
                  "correlator.live.intake")
CASE_MODULES = ("correlator.cases.repository", "correlator.sink")


@contextmanager
def _installed(names: Sequence[str]) -> Iterator[None]:
    """Put back the working tree's modules (and package attributes) of `names` afterwards."""
    saved = {name: sys.modules.get(name) for name in names}
    try:
        yield
    finally:
        for name, module in saved.items():
            package, _, attr = name.rpartition(".")
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
                setattr(sys.modules[package], attr, module)


def load_revision(rev: str, names: Sequence[str]) -> dict[str, types.ModuleType]:
    """The modules `names` (in import order) as they are at git revision `rev`, importing one another."""
    for name in names:
        importlib.import_module(name)  # the working tree's first, so that they can be put back
    loaded: dict[str, types.ModuleType] = {}
    with _installed(names):
        for name in names:
            path = name.replace(".", "/") + ".py"
            source = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{path}"], check=True,
                                    capture_output=True, text=True).stdout
            module = types.ModuleType(name)
            module.__file__ = f"{rev}:{path}"
            package, _, attr = name.rpartition(".")
            sys.modules[name] = module
            setattr(sys.modules[package], attr, module)
            exec(compile(source, module.__file__, "exec"), module.__dict__)
            loaded[name] = module
    return loaded


def alternate(rounds: int, old: Callable[[], float], new: Callable[[], float]) -> tuple[float, float, float]:
    """Median seconds of `old` and `new` run alternately (each starting every other round), and the median of the
    per-round ratios old/new."""
    olds, news, ratios = [], [], []
    for index in range(rounds):
        if index % 2:
            b, a = new(), old()
        else:
            a, b = old(), new()
        olds.append(a)
        news.append(b)
        ratios.append(a / b)
    return statistics.median(olds), statistics.median(news), statistics.median(ratios)


# ------------------------------------------------------------------------------------------------- intake


def intake(args: argparse.Namespace) -> None:
    old = load_revision(args.old_rev, INTAKE_MODULES)["correlator.live.intake"].frame_to_event
    from correlator.live.intake import frame_to_event as new

    frames = [SyslogFrame(frame.split(b" ", 1)[1], peer="127.0.0.1", transport="tcp", received_ms=RECEIVED_MS)
              for frame in messages(args.events)]
    for frame in frames[:2000]:  # the same events, else the figures compare nothing
        before, after = old(frame), new(frame)
        assert isinstance(before, Event), before
        assert isinstance(after, Event), after
        assert (before.id, before.timestamp_ms, before.raw, before.ecs, before.fields) == \
            (after.id, after.timestamp_ms, after.raw, after.ecs, after.fields)

    def run(convert: Callable[[SyslogFrame], Any], with_ecs: bool) -> Callable[[], float]:
        def timed() -> float:
            started = time.perf_counter()
            for frame in frames:
                event = convert(frame)
                if with_ecs:
                    _ = event.ecs
            return time.perf_counter() - started
        return timed

    n = len(frames)
    for label, with_ecs in (("frame -> Event", False), ("frame -> Event + ECS document", True)):
        a, b, ratio = alternate(args.rounds, run(old, with_ecs), run(new, with_ecs))
        print(f"intake {label}: old {a / n * 1e6:6.1f} µs, new {b / n * 1e6:6.1f} µs per message "
              f"({n / b:,.0f}/s on one core): {ratio:.2f}x")


# -------------------------------------------------------------------------------------------------- cases


def _outcomes(alerts: int, hosts: int) -> tuple[Outcome, Outcome]:
    scoring = load_scoring_config()

    def scored(n: int, ts: int) -> ScoredAlert:
        points = 20 + (n * 7) % 80
        risk = RiskScore(points, scoring.severity_of(points), (Factor("rule_level", points, "bench"),), "bench")
        rule = MatchedRule(id=f"r{n % 25}", title=f"Rule {n % 25}", level="high", tags=("attack.t1110",))
        alert = Alert(rule=rule, event_id=f"ev-{n}", timestamp_ms=ts, host_name=f"host{n % hosts:03d}",
                      origin=EventOrigin(path="bench"), matched={"user.name": f"user{n % 7}"})
        return ScoredAlert(alert, risk)

    first = Outcome(alerts=[scored(n, RECEIVED_MS + n * 1000) for n in range(alerts)])
    second = Outcome(alerts=[scored(n, RECEIVED_MS + n * 1000) for n in range(alerts, 2 * alerts)])
    return first, second


def cases(args: argparse.Namespace) -> None:
    old = load_revision(args.old_rev, CASE_MODULES)
    from correlator.cases.repository import CaseRepository
    from correlator.sink import AlertSink

    first, second = _outcomes(args.alerts, args.hosts)
    counts: dict[str, list[tuple[int, int, int]]] = {"old": [], "new": []}
    timings: dict[str, list[float]] = {}

    def run(name: str, sink_type: Any, repository_type: Any) -> Callable[[], float]:
        def timed() -> float:
            with tempfile.TemporaryDirectory(prefix="socctl-bench-cases-") as tmp:
                store = SqliteStore(Path(tmp) / "socctl.db")
                try:
                    sink = sink_type(store, repository_type(store, CaseGrouper(), lambda: RECEIVED_MS),
                                     lambda: RECEIVED_MS)
                    seconds = []
                    for outcome in (first, second):
                        started = time.perf_counter()
                        done = sink.deliver(outcome)
                        seconds.append(time.perf_counter() - started)
                        counts[name].append((done.cases_opened, done.cases_updated, done.alerts_in_existing_cases))
                    timings.setdefault(f"{name} first", []).append(seconds[0])
                    timings.setdefault(f"{name} second", []).append(seconds[1])
                    return sum(seconds)
                finally:
                    store.close()
        return timed

    a, b, ratio = alternate(args.rounds, run("old", old["correlator.sink"].AlertSink,
                                             old["correlator.cases.repository"].CaseRepository),
                            run("new", AlertSink, CaseRepository))
    assert counts["old"] == counts["new"], (counts["old"][:2], counts["new"][:2])
    opened, updated, _ = counts["new"][0]
    n = 2 * args.alerts
    print(f"cases: {args.alerts} alerts over {args.hosts} hosts, twice (first batch: {opened} cases opened, "
          f"{updated} fed; same counts old and new)")
    for batch in ("first", "second"):
        old_ms = statistics.median(timings[f"old {batch}"]) / args.alerts * 1000
        new_ms = statistics.median(timings[f"new {batch}"]) / args.alerts * 1000
        print(f"cases deliver, {batch} batch: old {old_ms:.3f} ms, new {new_ms:.3f} ms per alert: "
              f"{old_ms / new_ms:.2f}x")
    print(f"cases deliver, both: old {a / n * 1000:.3f} ms, new {b / n * 1000:.3f} ms per alert: {ratio:.2f}x")


def campaign(args: argparse.Namespace) -> None:
    from correlator.cases.repository import CaseRepository
    from correlator.sink import AlertSink

    first, _ = _outcomes(args.campaign, 1)  # one host: every alert has the same grouping key
    batch = 100
    with tempfile.TemporaryDirectory(prefix="socctl-bench-campaign-") as tmp:
        store = SqliteStore(Path(tmp) / "socctl.db")
        try:
            sink = AlertSink(store, CaseRepository(store, CaseGrouper(), lambda: RECEIVED_MS), lambda: RECEIVED_MS)
            spans: list[float] = []
            for start in range(0, len(first.alerts), batch):
                begun = time.perf_counter()
                sink.deliver(Outcome(alerts=first.alerts[start:start + batch]))
                spans.append(time.perf_counter() - begun)
            per = 1000 // batch
            for k in range(0, len(spans), per):
                chunk = spans[k:k + per]
                print(f"campaign: alerts {k * batch:>6,}-{(k + len(chunk)) * batch:>6,}: "
                      f"{sum(chunk) / (len(chunk) * batch) * 1000:.3f} ms per alert")
            print(f"campaign: {store.count('cases')} cases for {len(first.alerts):,} alerts of one host")
        finally:
            store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--alerts", type=int, default=400, help="Alerts per batch (two batches).")
    parser.add_argument("--hosts", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--old-rev", default=OLD_REV)
    parser.add_argument("--campaign", type=int, default=8_000, help="Alerts of one host's campaign.")
    parser.add_argument("--only", choices=("intake", "cases", "campaign"))
    args = parser.parse_args()
    print(f"old = {args.old_rev}, new = working tree; cpus {os.cpu_count()}, load {os.getloadavg()[0]:.2f}")
    if args.only in (None, "intake"):
        intake(args)
    if args.only in (None, "cases"):
        cases(args)
    if args.only in (None, "campaign"):
        campaign(args)


if __name__ == "__main__":
    main()
