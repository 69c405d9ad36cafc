"""Store write throughput (a benchmark that prints figures; not a test).

Writes the same events into the local Elasticsearch with socctl's writer (`ElasticsearchStore.write_events`:
serialisation, the catch-all text, the bulk helper, per-document outcomes) and, in the same run, with a raw
``_bulk`` baseline that posts the very same NDJSON, serialised before the clock starts, through the client's
transport with the same batch size. Each run writes into fresh indices (same templates); runs alternate
baseline/ours to spread the machine's noise. Then the same events into SQLite.

Events: the shared EVTX corpus (../shared/data/evtx), replicated with distinct ids up to --events, ECS built
before timing (normalisation is the pipeline's cost, not the writer's). Before each timed run, as many other
replicas go into the fresh indices untimed, so that the run measures steady-state indexing rather than the
one-off dynamic-mapping updates for the corpus's hundreds of `winlog.event_data.*` fields.

    python bench/es_ingest.py [--events N] [--batch-sizes 500,1000,2000,5000] [--repeat 2] [--url URL]

Without --url it starts scripts/elasticsearch on port $SOCCTL_ES_PORT (default 9250) and stops it after if it
was not already running.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collectors.files import iter_files, read_path  # noqa: E402
from correlator.model import Event, event_id_for  # noqa: E402
from correlator.store.base import event_record  # noqa: E402
from correlator.store.elasticsearch import ElasticsearchStore, WriterSettings  # noqa: E402
from correlator.store.es_bulk import source_with_text  # noqa: E402
from correlator.store.retention import index_name  # noqa: E402
from correlator.store.sqlite import SqliteStore  # noqa: E402

EVTX = ROOT.parent / "shared" / "data" / "evtx"


def load_events(count: int) -> list[Event]:
    unique: dict[str, Event] = {}  # the corpus holds some records twice (the same log in two files)
    for path in iter_files([EVTX]):
        unique.update((item.id, item) for item in read_path(path) if isinstance(item, Event))
    base = list(unique.values())
    if not base:
        raise SystemExit(f"no EVTX events under {EVTX}")
    events: list[Event] = []
    copy = 0
    while len(events) < count:
        for event in base[: count - len(events)]:
            raw = event.raw if copy == 0 else f"{event.raw}#copy{copy}"
            replica = Event(id=event_id_for(raw, event.timestamp_ms), timestamp_ms=event.timestamp_ms, raw=raw,
                            ecs=event.ecs, fields=event.fields, origin=event.origin)
            events.append(replica)
        copy += 1
    return events


def bulk_bodies(events: list[Event], prefix: str, agency: str, batch: int) -> list[bytes]:
    """The NDJSON the writer sends, serialised ahead of time."""
    bodies = []
    for start in range(0, len(events), batch):
        lines = []
        for event in events[start : start + batch]:
            record = event_record(event)
            index = index_name("events", agency, record.timestamp_ms, prefix=prefix)
            lines.append(f'{{"create":{{"_index":"{index}","_id":"{record.id}"}}}}\n{source_with_text(record)}\n')
        bodies.append("".join(lines).encode())
    return bodies


def fresh_store(url: str, batch: int, warmup: list[Event], threads: int = 1) -> ElasticsearchStore:
    """A store on new indices whose mappings the `warmup` events (other ids, same fields and days) have set up:
    the timed run then measures steady-state indexing, not the one-off dynamic-mapping updates of new fields."""
    store = ElasticsearchStore(url, prefix=f"socctl-bench-{uuid.uuid4().hex[:10]}", request_timeout=300,
                               settings=WriterSettings(chunk_size=batch, max_chunk_bytes=100 * 1024 * 1024,
                                                       thread_count=threads))
    result = store.write_events(warmup)
    if result.failed:
        raise SystemExit(f"warm-up: {len(result.failed)} refused, e.g. {result.failed[:2]}")
    stored(store)
    return store


def stored(store: ElasticsearchStore) -> int:
    store._connection().indices.refresh(index=f"{store.prefix}-*")
    return store.count("events")


def run_ours(url: str, events: list[Event], warmup: list[Event], batch: int, threads: int) -> float:
    store = fresh_store(url, batch, warmup, threads)
    try:
        started = time.perf_counter()
        result = store.write_events(events)
        elapsed = time.perf_counter() - started
        if result.written != len(events) or stored(store) != len(events) + len(warmup):
            raise SystemExit(f"ours: wrote {result.written}, failed {result.failed[:3]}")
        return len(events) / elapsed
    finally:
        store.drop_all()
        store.close()


def run_baseline(url: str, events: list[Event], warmup: list[Event], batch: int, threads: int) -> float:
    store = fresh_store(url, batch, warmup)
    try:
        bodies = bulk_bodies(events, store.prefix, store.agency, batch)
        transport = store._connection().transport
        headers = {"content-type": "application/x-ndjson", "accept": "application/json"}

        def post(body: bytes) -> None:
            response = transport.perform_request("PUT", "/_bulk", body=body, headers=headers, request_timeout=300)
            if response.body.get("errors"):
                raise SystemExit("baseline: bulk reported errors")

        started = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(post, bodies))
        elapsed = time.perf_counter() - started
        if stored(store) != len(events) + len(warmup):
            raise SystemExit("baseline: not every event stored")
        return len(events) / elapsed
    finally:
        store.drop_all()
        store.close()


def run_sqlite(events: list[Event], batch: int) -> float:
    with tempfile.TemporaryDirectory() as folder, SqliteStore(Path(folder) / "bench.db") as store:
        started = time.perf_counter()
        for start in range(0, len(events), batch):
            store.write_events(events[start : start + batch])
        return len(events) / (time.perf_counter() - started)


def ensure_server(url: str | None) -> tuple[str, Callable[[], None]]:
    if url:
        return url, lambda: None
    script = ROOT / "scripts" / "elasticsearch"
    env = {**os.environ, "SOCCTL_ES_PORT": os.environ.get("SOCCTL_ES_PORT", "9250")}
    was_running = subprocess.run([script, "status"], env=env, capture_output=True, check=False).returncode == 0
    started = subprocess.run([script, "start"], env=env, capture_output=True, text=True, check=True)

    def stop() -> None:
        if not was_running:
            subprocess.run([script, "stop"], env=env, capture_output=True, check=False)

    return started.stdout.strip().splitlines()[-1], stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--batch-sizes", default="500,1000,2000,5000")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--threads", default="1,2", help="bulk requests in flight (ours and the baseline alike)")
    parser.add_argument("--url")
    args = parser.parse_args()
    batches = [int(b) for b in args.batch_sizes.split(",")]

    both = load_events(2 * args.events)
    events, warmup = both[: args.events], both[args.events :]
    for event in both:
        _ = event.ecs  # normalisation happens before the writer
    size = statistics.mean(len(event_record(e).source) for e in events[:2000])
    print(f"events: {len(events):,} (shared EVTX corpus, replicated), mean document {size:,.0f} bytes")
    url, stop = ensure_server(args.url)
    try:
        print(f"Elasticsearch: {url}")
        rows = []
        for threads in [int(t) for t in args.threads.split(",")]:
            for batch in batches:
                ours: list[float] = []
                raw: list[float] = []
                for _ in range(args.repeat):
                    raw.append(run_baseline(url, events, warmup, batch, threads))
                    ours.append(run_ours(url, events, warmup, batch, threads))
                rows.append((threads, batch, max(raw), max(ours)))
                print(f"threads {threads} batch {batch:>5}: raw _bulk {max(raw):>7,.0f} ev/s   socctl writer "
                      f"{max(ours):>7,.0f} ev/s   ratio {max(ours) / max(raw):.0%}   (runs: raw "
                      f"{[round(r) for r in raw]}, ours {[round(o) for o in ours]})")
        best = max(rows, key=lambda row: row[3])
        print(f"best: {best[0]} threads, batch size {best[1]}: socctl writer {best[3]:,.0f} ev/s = "
              f"{best[3] / best[2]:.0%} of raw _bulk ({best[2]:,.0f} ev/s) with the same settings; target >= 80%")
    finally:
        stop()
    sqlite_rate = max(run_sqlite(events, 2_000) for _ in range(args.repeat))
    print(f"SQLite (WAL, FTS5), batches of 2,000: {sqlite_rate:,.0f} ev/s")


if __name__ == "__main__":
    main()
