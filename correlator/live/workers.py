"""Detection worker processes for `socctl run` (`workers: N`): the detection half of each batch
(`correlator.live.detect.detect_batch`: syslog parsing, Sigma, intel, YARA, the events' store records) runs in
another process, so it uses another core than the analysis, the store and cases in the engine's own process.

Workers are forked when the engine starts, before any thread or listener exists, and inherit its compiled rules
(no loading of their own). Each serves one request at a time over its own pipe; the engine sends batch k to
worker k mod N and takes the results back in batch order. A reload is a message: every worker loads the new rules
and configuration itself (`load`), and a worker that cannot keeps what it runs and says why.

Over SQLite each worker also stores the events it prepared, through a connection of its own
(`correlator.live.worker_events`): the engine's pipeline thread keeps the analysis, the alerts and the cases.

A worker ignores SIGINT, SIGTERM and SIGHUP (the engine decides when to stop: it drains its queue through the
workers first) and ends when its pipe closes (the engine stopped or died) or when told to.

Nothing one input does stops the engine: a worker that dies on a batch (a crash in native code, the kernel's OOM
killer) is replaced by a new fork and the batch given again; when it dies again, or when detection raises on the
batch, the batch is halved until the items that fail are alone, and each of those becomes a dead letter naming
what happened (`correlator.live.detect.undetected`), the rest detected as usual. A worker that cannot be
replaced (fork fails) fails the batch: the engine then stops without acknowledging it.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import signal
import threading
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

from collectors.syslog_server import SyslogFrame
from correlator.gc_policy import BatchCollector
from correlator.live.detect import Detected, Intake, detect_batch, detect_isolating
from correlator.live.thread_names import name_this_thread
from correlator.live.worker_events import EventWriter
from correlator.pipeline import Detection
from correlator.store.base import Store

__all__ = [
    "DetectionWorkers",
    "WorkerDiedError",
    "WorkerError",
    "WorkerFailedError",
    "default_count",
    "from_wire",
    "to_wire",
]

log = logging.getLogger(__name__)

# (detection, loader, events): what a forked worker starts with; `loader(payload)` builds a new detection on
# reload; `events` opens the store the worker writes its events into itself (None: the engine stores them).
Loader = Callable[[Any], Detection]
_INHERITED: tuple[Detection, Loader, Callable[[], Store] | None] | None = None


class WorkerError(RuntimeError):
    """A detection worker failed a request or went away."""


class WorkerDiedError(WorkerError):
    """The worker went away while it held a request."""


class WorkerFailedError(WorkerError):
    """The request raised in the worker (the worker is alive)."""


def to_wire(items: list[tuple[str, Intake]]) -> list[tuple[str, Any]]:
    """A batch as it crosses to a worker: each syslog frame as a plain tuple. Pickle writes and reads a tuple in
    C, while a named tuple costs a Python call each way: 1.7-2.7 -> 0.5 us per frame in the engine's dispatch
    thread, which holds the GIL the pipeline thread needs."""
    return [(collector, tuple(item)) if type(item) is SyslogFrame else (collector, item) for collector, item in items]


def from_wire(items: list[tuple[str, Any]]) -> list[tuple[str, Intake]]:
    """`to_wire`'s batch back as the collectors queued it (an `Event` or a `Rejected` is never a plain tuple)."""
    return [(collector, SyslogFrame(*item)) if type(item) is tuple else (collector, item) for collector, item in items]


def _serve(conn: Connection, others: list[Connection]) -> None:
    """A worker's loop: requests in, answers out, until the pipe closes or `stop`."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    for other in others:  # the engine's ends of every pipe: held here they would keep pipes open past the engine
        other.close()
    name_this_thread("socctl-detect")  # in ps and top: the worker process by its work
    assert _INHERITED is not None, "worker forked without a detection stage"
    detection, loader, events = _INHERITED
    writer = EventWriter(events) if events is not None else None
    collector = BatchCollector()  # collects between requests, not during them (gc_policy.py)
    collector.pause()
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        kind = request[0]
        if kind == "stop":
            return
        answer: Any = None
        batch: Any = None
        try:
            if kind == "detect":
                _, batch, now_ms, store_events = request
                answer = detect_batch(from_wire(batch), detection, now_ms, store_events=store_events)
                if writer is not None:
                    writer.store(answer)
            elif kind == "load":
                detection = loader(request[1])
            reply: tuple[Any, ...] | None = (("ok", answer) if kind in ("detect", "load")
                                      else ("error", f"unknown request {kind!r}", ""))
        except Exception as exc:  # any failure goes back to the engine, which decides
            reply = ("error", f"{type(exc).__name__}: {exc}", traceback.format_exc(limit=8))
        conn.send(reply)
        request = batch = answer = reply = None  # the batch and its result are garbage now: collected young
        collector.after_batch()


class _Worker:
    def __init__(self, process: multiprocessing.process.BaseProcess, conn: Connection) -> None:
        self.process = process
        self.conn = conn

    def call(self, request: tuple[Any, ...]) -> Any:
        """One request and its answer (the caller holds the worker's slot lock)."""
        try:
            self.conn.send(request)
            answer = self.conn.recv()
        except (EOFError, OSError, BrokenPipeError) as exc:
            self.process.join(1)
            code = self.process.exitcode
            raise WorkerDiedError(f"detection worker {self.process.pid} went away"
                                  f"{'' if code is None else f' (exit code {code})'}: {exc!r}") from exc
        if answer[0] == "error":
            raise WorkerFailedError(f"detection worker {self.process.pid}: {answer[1]}\n{answer[2]}")
        return answer[1]


class DetectionWorkers:
    """`count` forked detection workers sharing `detection` as it is now; `loader` builds a worker's new
    detection stage from what `load` is given. Start them from the thread that starts the engine, before any
    other thread exists (fork copies only the calling thread). A replacement is forked later, from the thread
    that found the death: it only runs its inherited detection stage, never a lock another thread could have
    held. `detection` is what a replacement starts with: keep it current after a reload. With `events`, each
    worker stores the events it prepares into the store that opens, itself (`correlator.live.worker_events`)."""

    def __init__(self, count: int, detection: Detection, loader: Loader, *,
                 events: Callable[[], Store] | None = None) -> None:
        if count < 1:
            raise ValueError(f"detection workers: need at least 1, got {count}")
        self.detection = detection
        self._loader = loader
        self._events = events  # opens the store each worker writes its events into (in the worker)
        self._context = multiprocessing.get_context("fork")
        self._workers: list[_Worker] = []
        self._slots = [threading.Lock() for _ in range(count)]  # one request at a time per worker, across forks
        self.replaced = 0  # workers that died and were forked again
        try:
            for index in range(count):
                self._workers.append(self._fork(index))
        except BaseException:
            self.close()
            raise
        self._next = 0
        # A worker ignores SIGTERM, which is how multiprocessing ends daemon children at exit before joining them:
        # stop them first, whatever way the engine's process ends.
        atexit.register(self.close)

    def _fork(self, index: int) -> _Worker:
        global _INHERITED  # noqa: PLW0603 - the fork start method hands this to the worker
        mine, theirs = self._context.Pipe()
        ends = [worker.conn for worker in self._workers] + [mine]
        _INHERITED = (self.detection, self._loader, self._events)
        try:
            process = self._context.Process(target=_serve, args=(theirs, ends), daemon=True,
                                            name=f"socctl-detect-{index}")
            process.start()
        finally:
            _INHERITED = None
            theirs.close()
        return _Worker(process, mine)

    def _call(self, index: int, request: tuple[Any, ...]) -> Any:
        """A request to worker `index`; one that died on it is replaced (before `WorkerDiedError` is raised)."""
        with self._slots[index]:
            try:
                return self._workers[index].call(request)
            except WorkerDiedError:
                dead = self._workers[index]
                dead.conn.close()
                if dead.process.is_alive():
                    dead.process.kill()
                dead.process.join(1)
                self._workers[index] = self._fork(index)
                self.replaced += 1
                raise

    def __len__(self) -> int:
        return len(self._workers)

    @property
    def pids(self) -> list[int | None]:
        return [w.process.pid for w in self._workers]

    def assign(self) -> int:
        """The worker for the next batch (round robin)."""
        index = self._next
        self._next = (index + 1) % len(self._workers)
        return index

    def detect(self, index: int, batch: Sequence[tuple[str, Intake]], now_ms: int, *,
               store_events: bool) -> Detected:
        """Worker `index` runs `detect_batch` (blocking; safe from several threads, one request per worker). A
        batch whose worker died is given once more to its replacement; one that still fails is halved until
        the failing items are dead letters (see the module doc)."""
        items = list(batch)
        try:
            return self._detect(index, items, now_ms, store_events)
        except WorkerDiedError as exc:
            log.error("%s on a batch of %d items: a new worker takes it again", exc, len(items))  # noqa: TRY400
            try:
                return self._detect(index, items, now_ms, store_events)
            except WorkerError as again:
                cause: WorkerError = again
        except WorkerFailedError as exc:
            cause = exc
        log.error("detection failed on a batch of %d items (%s): looking for the items that fail",
                  len(items), str(cause).splitlines()[0])
        return detect_isolating(items, lambda part: self._detect(index, part, now_ms, store_events), cause,
                                WorkerError, str)  # a worker that cannot be forked again (OSError) fails the batch

    def _detect(self, index: int, items: list[tuple[str, Intake]], now_ms: int, store_events: bool) -> Detected:
        result = self._call(index, ("detect", to_wire(items), now_ms, store_events))
        assert isinstance(result, Detected)
        return result

    def load(self, payload: Any) -> None:
        """Every worker builds its new detection stage from `payload`; `WorkerError` naming the first that could
        not (it keeps what it runs; so may the others, until the next load)."""
        errors = []
        for index in range(len(self._workers)):
            try:
                self._call(index, ("load", payload))
            except WorkerError as exc:
                errors.append(str(exc))
        if errors:
            raise WorkerError(errors[0])

    def close(self, timeout: float = 5.0) -> None:
        """Stop every worker (waiting up to `timeout` each, then killing it). Closing twice is harmless."""
        atexit.unregister(self.close)
        for slot, worker in zip(self._slots, self._workers, strict=False):
            if slot.acquire(timeout=timeout):  # else a request hangs on it: closing the pipe ends that
                try:
                    worker.conn.send(("stop",))
                except (OSError, ValueError):
                    pass
                finally:
                    slot.release()
            worker.conn.close()
        for worker in self._workers:
            worker.process.join(timeout)
            if worker.process.is_alive():
                log.warning("detection worker %s did not stop: killing it", worker.process.pid)
                worker.process.kill()
                worker.process.join(1)


def default_count(cpus: int | None = None) -> int:
    """`workers: auto`: one worker per core; none on one core (the hand-off would only cost). The engine's own
    process (intake, analysis, store, cases) shares the cores with them: on 2 cores, 2 workers took 9,300 syslog
    events/s where 1 took 8,100 (bench/intake.py)."""
    cores = cpus if cpus is not None else (os.cpu_count() or 1)
    return cores if cores > 1 else 0
