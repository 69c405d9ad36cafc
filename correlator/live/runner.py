"""`socctl run`: the long-running engine. One asyncio process:

    syslog UDP/TCP ─┐
    replayed files ─┴─> intake queue (bounded) ─> batches ─> detection ─> analysis ─> store + cases
                                                             (one worker thread, in order)

Stages are the ones `socctl ingest` uses (`correlator.pipeline.detect_events`, `correlator.analysis.Analyzer`,
`correlator.sink.AlertSink`), so correlation behaves the same on a replay and live. The boundary between intake
and detection is a queue of `Event | Rejected`: a message broker can take its place later, keyed by host.

Backpressure: the intake queue is bounded; TCP senders and replays wait while it is full, UDP datagrams that find
it full are counted as dropped (`syslog_udp_dropped_total`). The store writes in the worker thread, so a slow
store slows the batches and, through the queue, the intake; Elasticsearch spools to disk when unreachable.

Event time drives correlation; when no event arrives the watermark moves on with the wall clock (the time since
the last event is added to the newest event time), so windows close in a quiet night too. State is saved every
`snapshot_every` and at shutdown, and restored at start: a restart keeps open windows and suppression counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collectors.syslog_server import SyslogFrame, SyslogServer
from correlator.analysis import Analyzer, load_state, save_state
from correlator.live.config import RunConfig
from correlator.live.intake import frame_to_event
from correlator.model import Event, Rejected
from correlator.pipeline import Detection, FileResult, detect_events
from correlator.runtime import Runtime
from correlator.sink import AlertSink
from correlator.store.base import Store

__all__ = ["Counters", "Runner"]

log = logging.getLogger(__name__)

Item = Event | Rejected


@dataclass
class Counters:
    events_in: Counter[str] = field(default_factory=Counter)  # by collector
    rejected: Counter[str] = field(default_factory=Counter)  # by collector
    events_processed: int = 0
    alerts: int = 0
    correlation_alerts: int = 0
    suppressed: int = 0
    excepted: int = 0
    cases_opened: int = 0
    cases_updated: int = 0
    batches: int = 0
    last_batch_seconds: float = 0.0
    store_errors: int = 0


_REPLAY_CHUNK = 1_000


def _take(items: Iterator[Item], count: int) -> list[Item]:
    return list(itertools.islice(items, count))


class Runner:
    def __init__(self, config: RunConfig, store: Store, runtime: Runtime, detection: Detection,
                 analyzer: Analyzer, sink: AlertSink, *, clock: Callable[[], int]) -> None:
        self.config = config
        self.store = store
        self.runtime = runtime
        self.detection = detection
        self.analyzer = analyzer
        self.sink = sink
        self.clock = clock
        self.counters = Counters()
        self.queue: asyncio.Queue[tuple[str, Item]] = asyncio.Queue(maxsize=config.queue)
        self.syslog: SyslogServer | None = None
        self.http: Any = None  # the HTTP intake server, when on
        self.http_tokens_file: Path | None = None
        self.state_path = config.state_dir / "analysis.state"
        self.max_event_ms: int | None = None
        self._last_arrival = time.monotonic()
        self._last_snapshot = time.monotonic()
        self.failure: BaseException | None = None
        # Detection, analysis and the store run in this one thread, in order: the analyzer and the store are not
        # thread-safe, and a batch must be done before the next starts.
        self._pipeline = ThreadPoolExecutor(max_workers=1, thread_name_prefix="socctl-pipeline")
        self.analysis_metrics: dict[str, Any] = {}  # taken in the pipeline thread after each batch

    # ------------------------------------------------------------------------------------------------ intake

    async def _take_frame(self, frame: SyslogFrame) -> None:
        await self.queue.put(self._collected(frame))

    def _try_frame(self, frame: SyslogFrame) -> bool:
        try:
            self.queue.put_nowait(self._collected(frame))
        except asyncio.QueueFull:
            return False
        return True

    def _collected(self, frame: SyslogFrame) -> tuple[str, Item]:
        collector = f"syslog_{frame.transport}"
        self.counters.events_in[collector] += 1
        return collector, frame_to_event(frame)

    async def _replay(self, paths: tuple[Path, ...]) -> None:
        from collectors.files import iter_files, read_path

        loop = asyncio.get_running_loop()
        for path in iter_files(paths):
            items = read_path(path)
            while True:  # read in chunks off the loop: a large file does not sit in memory whole
                chunk: list[Item] = await loop.run_in_executor(None, _take, items, _REPLAY_CHUNK)
                for item in chunk:
                    self.counters.events_in["replay"] += 1
                    await self.queue.put(("replay", item))
                if len(chunk) < _REPLAY_CHUNK:
                    break

    async def _start_http(self, stop: asyncio.Event) -> tuple[asyncio.Task[None] | None, Any]:
        """The HTTP intake (when configured): batches are journaled before the agent gets its 200, then a consumer
        hands them to the intake queue."""
        listen = self.config.http
        if listen.port is None:
            return None, None
        from collectors.http_intake import HttpIntakeServer
        from collectors.intake_journal import IntakeConsumer, IntakeJournal
        from correlator.live.agents import load_agent_tokens

        tokens, self.http_tokens_file = load_agent_tokens(self.config.http_tokens, self.config.state_dir)
        journal = IntakeJournal(self.config.state_dir / "http-intake")

        async def sink(item: Item) -> None:
            self.counters.events_in["http"] += 1
            await self.queue.put(("http", item))

        consumer = IntakeConsumer(journal, sink)
        self.http = HttpIntakeServer(journal, tokens, host=listen.host, port=listen.port, on_journaled=consumer.wake)
        await self.http.start()
        return asyncio.create_task(consumer.run(stop)), journal

    async def _tail(self, stop: asyncio.Event) -> None:
        """Follow the configured files: each new line is decoded in its file's format and queued; offsets are
        kept in `<state_dir>/tail-registry.json`."""
        from collectors.tail import Tailer
        from collectors.tail_format import TailFormats
        from collectors.tail_lines import FileOrigin
        from collectors.tail_state import Registry

        formats = TailFormats(self.config.tail)

        async def sink(line: bytes, origin: FileOrigin) -> None:
            item = formats.decode(line, origin)
            if item is not None:
                self.counters.events_in["tail"] += 1
                await self.queue.put(("tail", item))

        registry = Registry.load(self.config.state_dir / "tail-registry.json")
        tailer = Tailer([spec.path for spec in self.config.tail], sink, registry,
                        poll_interval=self.config.tail_poll_ms / 1000)
        try:
            await tailer.run(stop)
        finally:
            tailer.close()

    # ------------------------------------------------------------------------------------------------ stages

    def process(self, batch: list[tuple[str, Item]]) -> None:
        """One batch through detection, analysis, the store and cases (runs in the worker thread)."""
        started = time.perf_counter()
        counters = self.counters
        for collector, item in batch:
            if isinstance(item, Rejected):
                counters.rejected[collector] += 1
        keep = self.config.store_events
        result = FileResult("live", stored_events=[] if keep else None)
        detection = dataclasses.replace(self.detection, now_ms=self.clock())
        detect_events(iter(item for _, item in batch), detection, result)
        counters.events_processed += result.events
        counters.excepted += sum(result.excepted.values())
        if result.rejected:
            self.store.write_rejected(result.rejected)
        if result.stored_events:
            self.store.write_events(result.stored_events)
        newest: int | None = max((i.timestamp_ms for _, i in batch if isinstance(i, Event)), default=None)
        if newest is not None and (self.max_event_ms is None or newest > self.max_event_ms):
            self.max_event_ms = newest
        outcome = self.analyzer.run(result.alerts, result.matches)
        if self.max_event_ms is not None:
            outcome.extend(self.analyzer.advance(self.max_event_ms))
        self._deliver(outcome)
        self.analysis_metrics = self.analyzer.metrics()
        counters.batches += 1
        counters.last_batch_seconds = time.perf_counter() - started

    def idle(self, quiet_seconds: float) -> None:
        """No event for a while: move event time on by the wall-clock time since the last one."""
        if self.max_event_ms is None:
            return
        self._deliver(self.analyzer.advance(self.max_event_ms + int(quiet_seconds * 1000)))
        self.analysis_metrics = self.analyzer.metrics()

    def _deliver(self, outcome: Any) -> None:
        counters = self.counters
        counters.alerts += len(outcome.alerts)
        counters.correlation_alerts += outcome.correlation_alerts
        counters.suppressed += outcome.suppressed
        if not outcome.alerts and not outcome.updated:
            return
        delivery = self.sink.deliver(outcome)
        counters.cases_opened += delivery.cases_opened
        counters.cases_updated += delivery.cases_updated

    def snapshot(self) -> None:
        save_state(self.analyzer, self.state_path)
        self._last_snapshot = time.monotonic()

    def restore(self) -> bool:
        return load_state(self.analyzer, self.state_path)

    # ------------------------------------------------------------------------------------------------ loop

    async def _batches(self, stop: asyncio.Event) -> None:
        config = self.config
        wait = config.batch_wait_ms / 1000
        while True:
            try:
                first = await asyncio.wait_for(self.queue.get(), timeout=max(wait, 1.0))
            except TimeoutError:
                if stop.is_set() and self.queue.empty():
                    return
                quiet = time.monotonic() - self._last_arrival
                await self._in_pipeline(self.idle, quiet)
                await self._maybe_snapshot()
                continue
            batch = [first]
            deadline = time.monotonic() + wait
            while len(batch) < config.batch:
                try:
                    batch.append(self.queue.get_nowait())
                    continue
                except asyncio.QueueEmpty:
                    pass
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self.queue.get(), timeout=remaining))
                except TimeoutError:
                    break
            self._last_arrival = time.monotonic()
            await self._in_pipeline(self.process, batch)
            await self._maybe_snapshot()

    async def _in_pipeline(self, func: Callable[..., None], *args: Any) -> None:
        await asyncio.get_running_loop().run_in_executor(self._pipeline, func, *args)

    async def _maybe_snapshot(self) -> None:
        if (time.monotonic() - self._last_snapshot) * 1000 >= self.config.snapshot_every_ms:
            await self._in_pipeline(self.snapshot)

    async def serve(self, stop: asyncio.Event, *, ready: Callable[[dict[str, int]], None] | None = None) -> None:
        """Run until `stop` is set: start the listeners and the replay, process, then shut down cleanly (stop
        listening, process what was taken in, save the state, flush the store)."""
        from correlator.live.metrics import MetricsServer

        config = self.config
        listen = config.syslog
        if listen.udp is not None or listen.tcp is not None:
            self.syslog = SyslogServer(self._take_frame, host=listen.host, udp_port=listen.udp, tcp_port=listen.tcp,
                                       try_sink=self._try_frame)
            await self.syslog.start()
        metrics = None
        if config.metrics.port is not None:
            metrics = MetricsServer(self, config.metrics.host, config.metrics.port)
            await metrics.start()
        http_stop = asyncio.Event()
        consumer_task, journal = await self._start_http(http_stop)
        ports = dict(self.syslog.ports) if self.syslog is not None else {}
        if self.http is not None:
            ports["http"] = self.http.port
        if metrics is not None:
            ports["metrics"] = metrics.port
        worker = asyncio.create_task(self._batches(stop))
        replay = asyncio.create_task(self._replay(config.replay)) if config.replay else None
        tail_stop = asyncio.Event()
        tailing = asyncio.create_task(self._tail(tail_stop)) if config.tail else None
        if ready is not None:
            ready(ports)
        stopping = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({worker, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if worker in done:  # the worker failed (a store error): stop intake, keep the state
            self.failure = worker.exception()
        if self.syslog is not None:
            await self.syslog.stop()
        if self.http is not None:  # acknowledged batches not yet handed on stay in the journal for the next start
            await self.http.stop()
            http_stop.set()
            if consumer_task is not None:
                await consumer_task
            journal.close()
        if replay is not None:
            replay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await replay
        if tailing is not None:  # the tailer saves its offsets of what reached the queue
            tail_stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                await tailing
        if self.failure is None:
            stop.set()
            await worker  # drains the queue: the batches end once it is empty
        if metrics is not None:
            await metrics.stop()
        stopping.cancel()
        await self._in_pipeline(self.snapshot)
        await self._in_pipeline(self._flush)
        self._pipeline.shutdown()
        if self.failure is not None:
            raise self.failure

    def _flush(self) -> None:
        waiting = self.store.flush()
        if waiting:
            log.warning("%d documents wait in the store's spool: they are sent when the store is next opened",
                        waiting)
