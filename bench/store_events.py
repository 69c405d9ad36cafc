"""Storing events: events/s of `SqliteStore.write_events`, the Python free-text walk against the native one (a
benchmark that prints figures; not a test).

Two sets of N events, each written into a fresh SQLite store (temporary directory) in batches as `socctl run`
writes them:

- Linux auth syslog: bench/intake.py's frames, read as the live intake reads them (`frame_to_event` over a
  `SyslogFrame` without its octet count);
- Windows EVTX: the records of ../shared/data/evtx (repeated, under derived ids, when the corpus has fewer than N).

Each set is written with SOCCTL_NATIVE=0 (every step in Python) and with the native extension, alternating, for
--rounds rounds; the figures are medians over the rounds, and the ratio is native/Python within this run. The ECS
documents are built before timing, and the events are kept out of the garbage collector's way (`gc.freeze`):
the figures are the store's own cost (document, JSON, free text, SQLite).
Then the free-text walk (`document_text`) alone on the same documents, and the syslog set written under its
time-ordered ids (`event_id_for`) against the same events under plain content hashes (the ids before
2026-11-25), alternating: the store's unique id index takes a batch of ordered ids near its end and one of
hashed ids on a page per event, a gap that grows with the store (try --events 200000).

    python bench/store_events.py [--events 20000] [--batch 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
EVTX = ROOT.parent / "shared" / "data" / "evtx"

from bench.intake import messages  # noqa: E402
from collectors.files import read_path  # noqa: E402
from collectors.syslog_server import SyslogFrame  # noqa: E402
from correlator.accel import native_available, reread_native_setting  # noqa: E402
from correlator.live.intake import frame_to_event  # noqa: E402
from correlator.model import Event, event_id_for  # noqa: E402
from correlator.store.documents import document_text, python_document_text  # noqa: E402
from correlator.store.sqlite import SqliteStore  # noqa: E402

RECEIVED_MS = 1_700_000_000_000


def syslog_events(count: int) -> list[Event]:
    events = []
    for i, frame in enumerate(messages(count)):
        data = frame.split(b" ", 1)[1]  # the octet count off
        item = frame_to_event(SyslogFrame(data=data, peer="127.0.0.1", transport="tcp", received_ms=RECEIVED_MS + i))
        if not isinstance(item, Event):
            raise SystemExit(f"frame {i} was rejected: {item!r}")
        events.append(item)
    return events


def _corpus_events() -> Iterator[Event]:
    """Each event of the corpus once (a few records are in two files)."""
    seen: set[str] = set()
    for path in sorted(EVTX.rglob("*.evtx")):
        for item in read_path(path):
            if isinstance(item, Event) and item.id not in seen:
                seen.add(item.id)
                yield item


def evtx_events(count: int) -> list[Event]:
    corpus = list(_corpus_events())
    if not corpus:
        return []
    events = corpus[:count]
    copy = 0
    while len(events) < count:
        copy += 1
        for event in corpus[: count - len(events)]:
            derived = event_id_for(f"{event.id}:{copy}", event.timestamp_ms)
            events.append(Event(derived, event.timestamp_ms, event.raw, ecs=event.ecs, fields=event.fields,
                                origin=event.origin))
    return events


def write_rate(events: list[Event], batch: int, native: bool) -> float:
    """Events/s of writing `events` into a fresh store."""
    os.environ["SOCCTL_NATIVE"] = "1" if native else "0"
    reread_native_setting()
    with tempfile.TemporaryDirectory() as workdir, SqliteStore(Path(workdir) / "socctl.db") as store:
        started = time.perf_counter()
        written = 0
        for k in range(0, len(events), batch):
            written += store.write_events(events[k:k + batch]).written
        elapsed = time.perf_counter() - started
    if written != len(events):
        raise SystemExit(f"{written} of {len(events)} events written")
    return len(events) / elapsed


def content_hashed(events: list[Event]) -> list[Event]:
    """`events` under the ids of before: the first 128 bits of SHA-256 over the raw record (and its index, so
    repeated lines stay distinct as their time-ordered ids are)."""
    return [Event(hashlib.sha256(f"{event.raw}\n{i}".encode()).hexdigest()[:32], event.timestamp_ms, event.raw,
                  ecs=event.ecs, fields=event.fields, origin=event.origin) for i, event in enumerate(events)]


def text_rate(documents: list[dict[str, Any]], text: Callable[[Any], str]) -> float:
    """Documents/s of `text` over `documents`."""
    started = time.perf_counter()
    for doc in documents:
        text(doc)
    return len(documents) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ["SOCCTL_NATIVE"] = "1"
    reread_native_setting()
    if not native_available():
        raise SystemExit("the native extension (correlator/native) is not built: run scripts/setup")

    sets = {"syslog": syslog_events(args.events), "evtx": evtx_events(args.events)}
    if not sets["evtx"]:
        print(f"note: no EVTX corpus at {EVTX}: syslog only")
        del sets["evtx"]
    for events in sets.values():
        for event in events:
            _ = event.ecs  # build deferred ECS documents now: not part of the store's cost
    # The events held here are not the store's garbage: keep the collector from scanning them on every full
    # collection (the engine holds one batch, not N events).
    gc.collect()
    gc.freeze()

    print(f"{args.rounds} rounds, batches of {args.batch}; events/s per round (python | native)")
    rates: dict[tuple[str, bool], list[float]] = {}
    for round_no in range(1, args.rounds + 1):
        for name, events in sets.items():
            order = (False, True) if round_no % 2 else (True, False)
            for native in order:
                rates.setdefault((name, native), []).append(write_rate(events, args.batch, native))
            print(f"  round {round_no} {name:6} {len(events):>7,} events: "
                  f"{rates[name, False][-1]:>9,.0f} | {rates[name, True][-1]:>9,.0f}")
    os.environ["SOCCTL_NATIVE"] = "1"
    reread_native_setting()

    print("\nwrite_events (median events/s):")
    for name in sets:
        slow, fast = statistics.median(rates[name, False]), statistics.median(rates[name, True])
        print(f"  {name:6} python {slow:>9,.0f}   native {fast:>9,.0f}   native/python {fast / slow:.2f}x"
              f"   ({1e6 / slow:.1f} -> {1e6 / fast:.1f} us/event)")

    print("\ndocument_text alone (median documents/s):")
    for name, events in sets.items():
        documents = [event.to_document() for event in events]
        python_rates, native_rates = [], []
        for _ in range(args.rounds):
            python_rates.append(text_rate(documents, python_document_text))
            native_rates.append(text_rate(documents, document_text))
        slow, fast = statistics.median(python_rates), statistics.median(native_rates)
        print(f"  {name:6} python {slow:>10,.0f}   native {fast:>10,.0f}   native/python {fast / slow:.1f}x")

    events = sets["syslog"]
    hashed = content_hashed(events)
    for event in hashed:
        _ = event.ecs
    ordered_rates, hashed_rates = [], []
    for round_no in range(args.rounds):
        for ordered in ((True, False) if round_no % 2 == 0 else (False, True)):
            (ordered_rates if ordered else hashed_rates).append(write_rate(events if ordered else hashed,
                                                                           args.batch, native=True))
    ordered_rate, hashed_rate = statistics.median(ordered_rates), statistics.median(hashed_rates)
    print(f"\nid order, syslog, native (median events/s): content hash {hashed_rate:,.0f}   time-ordered "
          f"{ordered_rate:,.0f}   ordered/hashed {ordered_rate / hashed_rate:.2f}x   "
          f"({1e6 / hashed_rate:.1f} -> {1e6 / ordered_rate:.1f} us/event)")


if __name__ == "__main__":
    main()
