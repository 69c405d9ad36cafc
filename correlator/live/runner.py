"""`socctl run`: the long-running engine. One asyncio process (see docs/running.md):

    syslog, HTTP intake and uploads, tailed files, drop and sample directories, live capture, replays
      (collectors: `correlator.live.inputs`)
        ─> intake queue (bounded) ─> batches ─> detection ─> analysis ─> store + cases
                                                (one pipeline thread, in order)

The stages are the ones `socctl ingest` uses (`correlator.pipeline.detect_events`, `correlator.analysis.Analyzer`,
`correlator.sink.AlertSink`), so correlation behaves the same on a replay and live. The boundary between intake
and detection is a queue of `Event | Rejected`: a message broker can take its place later, keyed by host.

Backpressure: the intake queue is bounded; TCP senders and replays wait while it is full, UDP datagrams that find
it full are counted as dropped (`syslog_udp_dropped_total`). The store writes in the worker thread, so a slow
store slows the batches and, through the queue, the intake; Elasticsearch spools to disk when unreachable.

Acknowledgement: a collector that can tell its sender or its source "done" (the HTTP intake's journal, the
tailer's saved positions, the sample watch's registry) awaits `barrier()` first, which returns once everything
queued before it is processed and stored; a kill -9 at any point then loses nothing acknowledged (what was taken
but not yet stored is read again: event ids are content hashes, so that is idempotent). Syslog has no
acknowledgement: what is in the queue at a kill -9 is lost, as with any syslog receiver.

Reload (`reload()`, SIGHUP or `socctl reload`): rules, correlation rules, the asset inventory, threat intel, the
allowlist, scoring, suppression, cases configuration and playbooks are read again off the pipeline; the new
components take over between two batches with the analyzer's state (open correlation windows of unchanged rules,
suppression counts, related alerts) carried over. A reload that fails keeps the running components.

Event time drives correlation; when no event arrives the watermark moves on with the wall clock (the time since
the last event is added to the newest event time), so windows close in a quiet night too. State is saved every
`snapshot_every` and at shutdown, and restored at start: a restart keeps open windows and suppression counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final

from collectors.syslog_server import SyslogFrame, SyslogServer
from correlator.analysis import Analyzer, Outcome, load_state, save_state
from correlator.gc_policy import BatchCollector
from correlator.live import inputs
from correlator.live.batching import (
    Checkpoint,
    Entry,
    InFlight,
    Queued,
    batch_size,
    fail_queued_checkpoints,
    gather,
    queued_at,
    settle,
    waiting,
)
from correlator.live.config import RunConfig
from correlator.live.detect import Detected, Intake, detect_batch, detect_isolating
from correlator.live.intake_queue import IntakeQueue
from correlator.live.latency import LatencyWindow
from correlator.live.parts import Components, Counters, Reloader
from correlator.live.representatives import RepresentativeUpdates
from correlator.live.thread_names import name_this_thread
from correlator.live.workers import DetectionWorkers
from correlator.model import Event, Rejected
from correlator.runtime import Runtime
from correlator.sink import Planned
from correlator.store.base import Store

__all__ = ["Components", "Counters", "Runner"]

log = logging.getLogger(__name__)

Item = Event | Rejected
ANALYSIS_METRICS_EVERY_S: Final = 1.0
METRICS_COST_SHARE: Final = 0.01  # of the pipeline thread's time, at most, for walking the analysis state


def metrics_interval(walk_seconds: float) -> float:
    """Seconds until the analysis metrics are taken again after a walk of the state that took `walk_seconds`:
    ANALYSIS_METRICS_EVERY_S, or longer when the state is large (a walk of 40 ms, some 100,000 open windows:
    every 4 s), so the walks never take more than METRICS_COST_SHARE of the pipeline thread."""
    return max(ANALYSIS_METRICS_EVERY_S, walk_seconds / METRICS_COST_SHARE)


class Runner:
    def __init__(self, config: RunConfig, store: Store, components: Components, *, clock: Callable[[], int],
                 reloader: Reloader | None = None, workers: DetectionWorkers | None = None) -> None:
        self.config = config
        self.workers = workers  # detection in worker processes; None: in the pipeline thread
        # Threads that wait on the workers' answers (one request in flight per worker, plus the next one queued).
        self._dispatch = (ThreadPoolExecutor(max_workers=len(workers) + 1, thread_name_prefix="socctl-dispatch",
                                             initializer=name_this_thread)
                          if workers is not None else None)
        self.store = store
        self.components = components
        self.clock = clock
        self.reloader = reloader
        self.counters = Counters()
        self.latency = LatencyWindow()
        # Entries: one item, the frames of one TCP read (a list, weighing its length) or a checkpoint (nothing).
        self.queue: IntakeQueue[Entry] = IntakeQueue(config.queue)
        self._accepting = True  # False once the batches have ended: a barrier then fails at once
        self._reloading = asyncio.Lock()
        self.syslog: SyslogServer | None = None
        self.http: Any = None  # the HTTP intake server, when on
        self.http_tokens_file: Path | None = None
        self.capture: Any = None  # the live capture, when configured
        self.state_path = config.state_dir / "analysis.state"
        self.max_event_ms: int | None = None
        self._last_arrival = time.monotonic()
        self._in_flight = 0  # batches handed to the detection workers and not yet finished
        self._detecting = 0  # of those, the ones a worker is still detecting
        self._progress: asyncio.Event | None = None  # set by `_remote_batches` when a detection or finish ends
        self._last_snapshot = time.monotonic()
        self.failure: BaseException | None = None
        # Detection, analysis and the store run in this one thread, in order: the analyzer and the store are not
        # thread-safe, and a batch must be done before the next starts.
        self._pipeline = ThreadPoolExecutor(max_workers=1, thread_name_prefix="socctl-pipeline",
                                            initializer=name_this_thread)
        # Taken in the pipeline thread after a batch, at most every ANALYSIS_METRICS_EVERY_S (they walk the
        # correlation state: every batch, that was a tenth of the engine's time at saturation), and with a large
        # state no more often than METRICS_COST_SHARE of the time allows (`_take_analysis_metrics`).
        self.analysis_metrics: dict[str, Any] = {}
        self._metrics_taken = -ANALYSIS_METRICS_EVERY_S
        self._metrics_every = ANALYSIS_METRICS_EVERY_S
        # While serving, the garbage collector runs after each batch rather than during it (gc_policy.py).
        self.collector = BatchCollector()
        # Suppressed counts: representatives re-written at most every few seconds, and when the engine goes
        # quiet, saves its state or stops (representatives.py).
        self.representatives = RepresentativeUpdates(time.monotonic)

    # ------------------------------------------------------------------------------------------------ intake

    async def _take_frame(self, frame: SyslogFrame) -> None:
        await self.queue.put(self._collected(frame))

    async def _take_frames(self, frames: list[SyslogFrame]) -> None:
        """The frames of one read of a connection, queued as one entry."""
        await self.put_many(f"syslog_{frames[0].transport}", frames)

    def _try_frame(self, frame: SyslogFrame) -> bool:
        try:
            self.queue.put_nowait(self._collected(frame))
        except asyncio.QueueFull:
            return False
        return True

    def _collected(self, frame: SyslogFrame) -> Queued:
        collector = f"syslog_{frame.transport}"
        self.counters.events_in[collector] += 1
        return collector, frame, time.monotonic()

    async def put(self, collector: str, item: Item) -> None:
        """Queue an item from `collector` (waits while the queue is full: backpressure)."""
        self.counters.events_in[collector] += 1
        await self.queue.put((collector, item, time.monotonic()))

    async def put_many(self, collector: str, items: Sequence[Intake]) -> None:
        """Queue `items` from `collector` as one entry, in order (waits while the queue is full: backpressure).
        A collector that has many items at once (the frames of one read, a chunk of a file) hands them on with
        one call instead of one each."""
        if not items:
            return
        self.counters.events_in[collector] += len(items)
        taken = time.monotonic()
        await self.queue.put([(collector, item, taken) for item in items], len(items))

    async def barrier(self) -> None:
        """Return once everything queued before this call is processed and stored; raise if it cannot be
        (the pipeline failed or has ended): the caller then must not acknowledge."""
        if not self._accepting:
            raise RuntimeError("the pipeline is not running: nothing more is stored")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self.queue.put(Checkpoint(done), 0)
        await done

    # ------------------------------------------------------------------------------------------------ stages

    @property
    def analyzer(self) -> Analyzer:
        return self.components.analyzer

    @property
    def runtime(self) -> Runtime:
        return self.components.runtime

    def process(self, batch: list[Queued]) -> None:
        """One batch through detection, analysis, the store and cases, here (the pipeline thread)."""
        started = time.perf_counter()
        items = [(collector, item) for collector, item, _ in batch]
        detection, now_ms, keep = self.components.detection, self.clock(), self.config.store_events

        def detect(part: list[tuple[str, Intake]]) -> Detected:
            return detect_batch(part, detection, now_ms, store_events=keep)

        try:
            detected = detect(items)
        except Exception as exc:  # one record must not stop the engine: find it, dead-letter it, go on
            log.exception("detection failed on a batch of %d items: looking for the items that fail", len(items))
            detected = detect_isolating(items, detect, exc)
        self.finish(batch, detected, started)

    def finish(self, batch: list[Queued], detected: Detected, started: float) -> None:
        """The rest of a batch after detection (pipeline thread, batches in order): analysis, then the batch's
        dead letters, events (those its detection worker did not store itself), alerts and cases stored as one
        unit (`Store.batch`)."""
        counters = self.counters
        result = detected.result
        newest = detected.newest_ms
        if newest is not None and (self.max_event_ms is None or newest > self.max_event_ms):
            self.max_event_ms = newest
        outcome = self.analyzer.run(result.alerts, result.matches)
        if self.max_event_ms is not None:
            outcome.extend(self.analyzer.advance(self.max_event_ms))
        planned = self._plan(outcome)  # cases grouped before the batch takes the store's write lock
        with self.store.batch():  # stored together or not at all
            if result.rejected:
                self.store.write_rejected(result.rejected)
            if detected.prepared:
                self.store.write_prepared("events", detected.prepared)
            if planned is not None:
                self._commit(planned)
        # Counted once stored (a reader of the metrics that sees the events processed sees their alerts too).
        counters.count_stored(detected)
        self._take_analysis_metrics()
        counters.last_batch_seconds = time.perf_counter() - started
        stored = time.monotonic()
        self.latency.add([stored - taken for _, _, taken in batch])
        self.collector.after_batch()

    def idle(self, quiet_seconds: float) -> None:
        """No event for a while: move event time on by the wall-clock time since the last one."""
        if self.max_event_ms is None:
            return
        self._deliver(self.analyzer.advance(self.max_event_ms + int(quiet_seconds * 1000)), flush=True)
        self._take_analysis_metrics(force=True)
        self.collector.after_batch()

    def _take_analysis_metrics(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._metrics_taken >= self._metrics_every:
            self.analysis_metrics = self.analyzer.metrics()
            taken = time.monotonic()
            self._metrics_taken = taken
            self._metrics_every = metrics_interval(taken - now)

    def _deliver(self, outcome: Outcome, *, flush: bool = False) -> None:
        """`outcome` into the store and cases, in a batch of its own; its changed representatives are held and
        written with the others held when due (`flush`: now)."""
        planned = self._plan(outcome, flush=flush)
        if planned is not None:
            with self.store.batch():
                self._commit(planned)

    def _plan(self, outcome: Outcome, *, flush: bool = False) -> Planned | None:
        """`outcome` counted, with the representatives due (`flush`: all held) and its alerts grouped into cases
        in memory (`AlertSink.plan`); None when there is nothing to write."""
        counters = self.counters
        counters.alerts += len(outcome.alerts)
        counters.correlation_alerts += outcome.correlation_alerts
        counters.suppressed += outcome.suppressed
        outcome.updated = self.representatives.take(outcome.updated, force=flush)
        if not outcome.alerts and not outcome.updated:
            return None
        return self.components.sink.plan(outcome)

    def _commit(self, planned: Planned) -> None:
        """The alerts, representatives and cases `_plan` made, written inside the caller's batch."""
        delivery = self.components.sink.commit(planned)
        self.counters.cases_opened += delivery.cases_opened
        self.counters.cases_updated += delivery.cases_updated

    def snapshot(self) -> None:
        """Save the analyzer's state, and write the suppressed counts held (unless the pipeline has failed:
        the store may be what failed; the saved state keeps the counts, the next update writes them)."""
        if self.failure is None:
            self._deliver(Outcome(), flush=True)
        save_state(self.analyzer, self.state_path)
        self._last_snapshot = time.monotonic()

    def restore(self) -> bool:
        return load_state(self.analyzer, self.state_path)

    async def reload(self) -> bool:
        """Read rules and configuration files again and switch to them between two batches, keeping the
        analyzer's state. False (the running components stay, the reason logged) when they cannot be loaded."""
        if self.reloader is None:
            log.warning("reload asked but this runner cannot reload")
            return False
        read_store, load_files = self.reloader
        async with self._reloading:
            started = time.perf_counter()
            try:
                inputs = await self._in_pipeline(read_store)
                build = await asyncio.get_running_loop().run_in_executor(None, load_files, inputs)
                if self.workers is not None:  # each worker loads the same files itself (they are valid: just read)
                    await asyncio.get_running_loop().run_in_executor(None, self.workers.load, inputs)
                await self._in_pipeline(self._switch, build)
            except Exception as exc:  # a broken file must not stop the engine: keep what runs
                self.counters.reload_failures += 1
                log.error("reload failed, the running rules and configuration stay: %s", exc)  # noqa: TRY400
                return False
            self.counters.reloads += 1
            parts = self.components
            log.info("reloaded in %.2fs: %d rules, %d correlation rules, %d not loaded", time.perf_counter() - started,
                     parts.rules, len(parts.runtime.correlations.rules), len(parts.warnings))
            for warning in parts.warnings[:20]:
                log.warning("%s", warning)
            return True

    def _switch(self, build: Callable[[], Components]) -> None:
        """Pipeline thread: build the new components and carry the analyzer's state over."""
        fresh = build()
        fresh.analyzer.restore(self.components.analyzer.snapshot())
        self.components = fresh
        if self.workers is not None:  # what a worker forked from now on starts with (the others loaded it)
            self.workers.detection = fresh.detection
        self.analysis_metrics = fresh.analyzer.metrics()
        gc.unfreeze()  # the old rules may hold reference cycles: let the collector free them
        gc.collect()
        gc.freeze()  # and keep the new ones out of its walks

    # ------------------------------------------------------------------------------------------------ loop

    async def _batches(self, drain: asyncio.Event) -> None:
        """Take batches off the queue and process them until `drain` is set and the queue is empty. A checkpoint
        ends its batch and is resolved once the batch is stored."""
        try:
            await self._batch_loop(drain)
        except BaseException as exc:
            self._accepting = False
            fail_queued_checkpoints(self.queue, exc)
            raise
        self._accepting = False
        fail_queued_checkpoints(self.queue, RuntimeError("the pipeline has ended"))

    async def _batch_loop(self, drain: asyncio.Event) -> None:
        if self.workers is None:
            await self._local_batches(drain)
        else:
            await self._remote_batches(drain, len(self.workers))

    async def _take_batch(self, drain: asyncio.Event, carry: list[Queued], busy: Callable[[], bool],
                          ) -> tuple[list[Queued], list[Checkpoint], list[Queued]] | None:
        """The next batch (`gather`), starting with `carry`; None once `drain` is set and the queue is empty.
        A batch waits for more entries until `batch_wait` after its first item was queued (not after it was
        taken: an item that waited behind a busy pipeline goes at once). A quiet second moves event time on
        (`idle`), unless batches are `busy()` (in flight: their events may be older)."""
        wait = self.config.batch_wait_ms / 1000
        first: Entry = carry
        while not carry:
            try:
                first = await asyncio.wait_for(self.queue.get(), timeout=max(wait, 1.0))
                break
            except TimeoutError:
                if drain.is_set() and self.queue.empty():
                    return None
                if not busy():
                    await self._in_pipeline(self.idle, time.monotonic() - self._last_arrival)
                    await self._maybe_snapshot()
        return await gather(self.queue, first, queued_at(first) + wait,
                            batch_size(waiting(self.queue, first), self.config.batch,
                                       self.config.largest_batch))

    async def _local_batches(self, drain: asyncio.Event) -> None:
        """Detection and the rest of each batch in the pipeline thread, one batch after the other."""
        carry: list[Queued] = []
        while (taken := await self._take_batch(drain, carry, lambda: False)) is not None:
            batch, checkpoints, carry = taken
            if batch:
                self._last_arrival = time.monotonic()
                try:
                    await self._in_pipeline(self.process, batch)
                except BaseException as exc:
                    settle(checkpoints, exc)
                    raise
            settle(checkpoints)
            await self._maybe_snapshot()

    async def _remote_batches(self, drain: asyncio.Event, workers: int) -> None:
        """Batches handed to the detection workers as they are gathered while a finisher task finishes them in
        order (`_finish_in_order`), so a batch is gathered and detected while the one before it is stored,
        whatever the load. The next batch is gathered once a worker is free and no more than one batch more
        than there are workers is in flight: while every worker is busy the queue fills, and the batch that
        then goes is larger (what a batch costs is spread over more events) without waiting any longer."""
        handed: asyncio.Queue[InFlight | None] = asyncio.Queue()
        progress = self._progress = asyncio.Event()  # set when a detection or a finish ends
        finisher = asyncio.create_task(self._finish_in_order(handed, progress), name="socctl-finish")

        def in_flight() -> int:
            if finisher.done():  # before the end it only stops by failing: raise its failure
                finisher.result()
            return self._in_flight

        carry: list[Queued] = []
        try:
            while (taken := await self._take_batch(drain, carry, lambda: in_flight() > 0)) is not None:
                batch, checkpoints, carry = taken
                if batch:
                    self._last_arrival = time.monotonic()
                handed.put_nowait(self._detect_remote(batch, checkpoints))
                self._in_flight += 1
                while in_flight() > workers or self._detecting >= workers:
                    progress.clear()
                    progressed = asyncio.ensure_future(progress.wait())
                    try:
                        await asyncio.wait({progressed, finisher}, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        progressed.cancel()
                in_flight()
                await self._maybe_snapshot()
            handed.put_nowait(None)
            await finisher
        except BaseException as exc:
            finisher.cancel()
            with contextlib.suppress(BaseException):
                await finisher
            while not handed.empty():  # handed on, never finished
                entry = handed.get_nowait()
                if entry is not None:
                    settle(entry.checkpoints, exc)
            raise

    async def _finish_in_order(self, handed: asyncio.Queue[InFlight | None], progress: asyncio.Event) -> None:
        """Finish the batches handed to the workers, in order, until None."""
        while (entry := await handed.get()) is not None:
            await self._complete(entry)
            self._in_flight -= 1
            progress.set()

    def _detect_remote(self, batch: list[Queued], checkpoints: list[Checkpoint]) -> InFlight:
        """Hand `batch` to the next detection worker (the answer is awaited in a dispatch thread)."""
        if not batch:
            return InFlight(batch, checkpoints, None, time.perf_counter())
        assert self.workers is not None
        assert self._dispatch is not None
        index = self.workers.assign()
        items = [(collector, item) for collector, item, _ in batch]
        future = asyncio.get_running_loop().run_in_executor(
            self._dispatch, functools.partial(self.workers.detect, index, items, self.clock(),
                                              store_events=self.config.store_events))
        self._detecting += 1
        future.add_done_callback(self._detected)
        return InFlight(batch, checkpoints, future, time.perf_counter())

    def _detected(self, _: asyncio.Future[Detected]) -> None:
        """A worker is done with a batch (event loop thread): the next one may be gathered."""
        self._detecting -= 1
        if self._progress is not None:
            self._progress.set()

    async def _complete(self, entry: InFlight) -> None:
        """Finish a batch handed to a worker (its detection awaited, then `finish` in the pipeline thread) and
        resolve its checkpoints; they fail when it does."""
        try:
            if entry.detected is not None:
                detected = await entry.detected
                await self._in_pipeline(self.finish, entry.batch, detected, entry.started)
        except BaseException as exc:
            settle(entry.checkpoints, exc)
            raise
        settle(entry.checkpoints)

    async def _in_pipeline(self, func: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pipeline, func, *args)

    async def _maybe_snapshot(self) -> None:
        if (time.monotonic() - self._last_snapshot) * 1000 >= self.config.snapshot_every_ms:
            await self._in_pipeline(self.snapshot)

    async def serve(self, stop: asyncio.Event, *, ready: Callable[[dict[str, int]], None] | None = None) -> None:
        """Run until `stop` is set: start the listeners and the collectors, process, then shut down cleanly (stop
        listening, let the collectors finish what they took (they acknowledge through `barrier`), process what
        was queued, save the state, flush the store). When the pipeline fails (a store error) the collectors are
        cancelled without acknowledging anything more, the state is saved and the error raised. The detection
        workers stop with it, whatever happens (a listener that cannot start too)."""
        self.collector.pause()
        try:
            await self._serve(stop, ready)
        finally:
            self.collector.resume()
            if self.workers is not None:
                self.workers.close()
            if self._dispatch is not None:
                self._dispatch.shutdown(wait=False)

    async def _serve(self, stop: asyncio.Event, ready: Callable[[dict[str, int]], None] | None) -> None:
        from correlator.live.metrics import MetricsServer

        config = self.config
        if config.capture.interface is not None:
            self.capture = inputs.make_capture(self)
        listen = config.syslog
        if listen.udp is not None or listen.tcp is not None or listen.tls is not None:
            tls = inputs.syslog_tls_context(listen.tls_files) if listen.tls_files is not None else None
            self.syslog = SyslogServer(self._take_frame, host=listen.host, udp_port=listen.udp, tcp_port=listen.tcp,
                                       tls_port=listen.tls, tls=tls, try_sink=self._try_frame,
                                       bulk_sink=self._take_frames,
                                       timezone=None if config.timezone == "UTC" else config.timezone)
            await self.syslog.start()
        metrics = None
        if config.metrics.port is not None:
            metrics = MetricsServer(self, config.metrics.host, config.metrics.port)
            await metrics.start()
        collectors: list[tuple[str, asyncio.Event, asyncio.Task[None]]] = []

        def collector(name: str, run: Callable[[asyncio.Event], Any]) -> None:
            own_stop = asyncio.Event()
            collectors.append((name, own_stop, asyncio.create_task(run(own_stop), name=f"socctl-{name}")))

        journal = await inputs.start_http(self, collector)
        ports = dict(self.syslog.ports) if self.syslog is not None else {}
        if self.http is not None:
            ports["http"] = self.http.port
        if metrics is not None:
            ports["metrics"] = metrics.port
        drain = asyncio.Event()
        worker = asyncio.create_task(self._batches(drain))
        if config.replay:
            collector("replay", lambda _stop: inputs.replay(self, config.replay))
        if config.tail:
            collector("tail", lambda stop: inputs.tail(self, stop))
        if config.watch:
            collector("watch", lambda stop: inputs.watch(self, stop))
        if config.samples.paths:
            collector("samples", lambda stop: inputs.samples(self, stop))
        if self.capture is not None:
            collector("capture", lambda stop: inputs.run_capture(self, stop))
        await asyncio.sleep(0)  # the collectors' first step: the capture opens its socket before we say ready
        broken = [task for _, _, task in collectors if task.done() and not task.cancelled() and task.exception()]
        stopping = asyncio.create_task(stop.wait())
        if broken:  # a collector that cannot start (no permission to capture): stop, saying why
            self.failure = broken[0].exception()
        else:
            if ready is not None:
                ready(ports)
            done, _ = await asyncio.wait({worker, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if worker in done:  # the worker failed (a store error): stop intake, keep the state
                self.failure = worker.exception()
        if self.syslog is not None:
            await self.syslog.stop()
        if self.http is not None:  # acknowledged batches not yet handed on stay in the journal for the next start
            await self.http.stop()
        await self._stop_collectors(collectors, graceful=self.failure is None)
        if journal is not None:
            journal.close()
        if self.http is not None and self.http.uploads is not None:
            self.http.uploads.close()
        if self.failure is None:
            drain.set()
            await worker  # drains the queue: the batches end once it is empty
        elif not worker.done():
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        if metrics is not None:
            await metrics.stop()
        stopping.cancel()
        await self._in_pipeline(self.snapshot)
        await self._in_pipeline(self._flush)
        self._pipeline.shutdown()
        if self.failure is not None:
            raise self.failure

    @staticmethod
    async def _stop_collectors(collectors: list[tuple[str, asyncio.Event, asyncio.Task[None]]], *,
                               graceful: bool) -> None:
        """Graceful: ask each collector to stop and wait (replays are cancelled: a replay is read again in full
        on the next start). Otherwise cancel them all."""
        for name, own_stop, task in collectors:
            if graceful and name != "replay":
                own_stop.set()
            else:
                task.cancel()
        for name, _, task in collectors:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:  # the collector's own failure: logged, the others still stop cleanly
                log.exception("collector %s ended with an error", name)

    def _flush(self) -> None:
        waiting = self.store.flush()
        if waiting:
            log.warning("%d documents wait in the store's spool: they are sent when the store is next opened",
                        waiting)
