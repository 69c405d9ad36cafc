"""Sigma engine throughput on the shared corpus (a benchmark that prints figures; not a test).

Loads every Windows rule of ../shared/data/sigma, pre-parses the shared EVTX events into memory, then measures
in the same run: events/s on one core for the engine (routing + literal prefilter) and for the naive
evaluator (every rule of the event's log source), their ratio, the always-evaluated bucket sizes, events/s
including EVTX parsing (one core), `socctl ingest` end to end with every core, and peak RSS.

    python bench/sigma_throughput.py [--rules DIR] [--evtx DIR] [--repeat N]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collectors.files import iter_files, read_path  # noqa: E402
from correlator.model import Event  # noqa: E402
from correlator.sigma.engine import SigmaEngine  # noqa: E402
from correlator.sigma.loader import load_rules  # noqa: E402
from correlator.sigma.sources import load_sources  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed_pass(fn, events: list[Event]) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    gc.collect()
    started = time.perf_counter()
    alerts = 0
    for ev in events:
        alerts += len(fn(ev))
    return time.perf_counter() - started, alerts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rules", type=Path, default=SHARED / "sigma" / "rules" / "windows")
    ap.add_argument("--evtx", type=Path, default=SHARED / "evtx")
    ap.add_argument("--repeat", type=int, default=5, help="timed passes per evaluator (median reported)")
    ap.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "socctl-bench-cache")
    ap.add_argument("--skip-ingest", action="store_true")
    ap.add_argument("--ingest-copies", type=int, default=10, help="times the EVTX corpus is replayed by ingest")
    args = ap.parse_args()
    if not args.rules.is_dir() or not args.evtx.is_dir():
        print(f"shared data not found ({args.rules}, {args.evtx})", file=sys.stderr)
        return 2

    sources = load_sources()
    t0 = time.perf_counter()
    cold = load_rules([args.rules], sources=sources, cache_dir=None)
    compile_s = time.perf_counter() - t0
    load_rules([args.rules], sources=sources, cache_dir=args.cache_dir)  # fill the cache
    t0 = time.perf_counter()
    warm = load_rules([args.rules], sources=sources, cache_dir=args.cache_dir)
    engine = SigmaEngine(warm.rules, sources)
    warm_s = time.perf_counter() - t0
    print(f"rules: loaded {cold.loaded}, failed {len(cold.errors)}")
    print(f"compile (cold, {os.cpu_count()} processes): {compile_s:.2f} s; warm start (cache + engine): {warm_s:.2f} s")

    files = list(iter_files([args.evtx]))
    t0 = time.perf_counter()
    events: list[Event] = []
    rejected = 0
    for f in files:
        for item in read_path(f):
            if isinstance(item, Event):
                events.append(item)
            else:
                rejected += 1
    parse_s = time.perf_counter() - t0
    print(f"events: {len(events)} from {len(files)} files ({rejected} rejected); "
          f"parse+normalise {len(events) / parse_s:,.0f} events/s (one core)")

    naive = SigmaEngine(warm.rules, sources)
    timed_pass(engine.match, events)  # warm-up: builds route buckets and automata
    timed_pass(naive.match_naive, events)
    fast_runs = [timed_pass(engine.match, events) for _ in range(args.repeat)]
    naive_runs = [timed_pass(naive.match_naive, events) for _ in range(max(1, args.repeat // 2))]
    fast_s = statistics.median(r[0] for r in fast_runs)
    naive_s = statistics.median(r[0] for r in naive_runs)
    assert fast_runs[0][1] == naive_runs[0][1], "prefiltered and naive alert counts differ"
    fast_rate = len(events) / fast_s
    naive_rate = len(events) / naive_s
    print(f"alerts per pass: {fast_runs[0][1]}")
    print(f"engine (pre-parsed, one core): {fast_rate:,.0f} events/s")
    print(f"naive evaluator (pre-parsed, one core): {naive_rate:,.0f} events/s")
    print(f"ratio engine/naive: {fast_rate / naive_rate:.1f}x")
    per_event = engine.stats.evaluated / max(1, engine.stats.events)
    print(f"candidate rules evaluated per event: {per_event:.1f}")
    sizes = engine.bucket_sizes()
    always = sorted((v[1] for v in sizes.values()), reverse=True)
    print(f"route buckets: {len(sizes)}; always-evaluated rules per bucket: max {always[0] if always else 0}, "
          f"median {statistics.median(always) if always else 0}")

    t0 = time.perf_counter()
    n = 0
    for f in files:
        for item in read_path(f):
            if isinstance(item, Event):
                engine.match(item)
                n += 1
    e2e = n / (time.perf_counter() - t0)
    print(f"end to end in-process (EVTX parse + normalise + match, one core): {e2e:,.0f} events/s")
    print(f"peak RSS (this process): {peak_rss_mb():,.0f} MB")

    if not args.skip_ingest:
        copies = args.ingest_copies
        with tempfile.TemporaryDirectory() as tmp:
            replay = Path(tmp) / "replay"
            for i in range(copies):  # the corpus is small: replay it several times under distinct paths
                for f in files:
                    target = replay / f"copy{i}" / f.relative_to(args.evtx)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.symlink_to(f)
            summary = Path(tmp) / "summary.json"
            cmd = [sys.executable, "-m", "correlator.cli", "ingest", str(replay), "--rules", str(args.rules),
                   "--no-default-rules", "--no-store", "--quiet", "--cache-dir", str(args.cache_dir),
                   "--alerts-out", str(Path(tmp) / "alerts.jsonl"), "--summary-json", str(summary)]
            for workers in (1, os.cpu_count() or 1):
                t0 = time.perf_counter()
                subprocess.run([*cmd, "--workers", str(workers)], check=True, capture_output=True)
                wall = time.perf_counter() - t0
                doc = json.loads(summary.read_text())
                print(f"socctl ingest, {workers} worker(s), {doc['events']} events: {doc['events_per_second']:,} "
                      f"events/s (read+normalise+match+write alerts; {wall:.1f} s wall incl. start-up)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
