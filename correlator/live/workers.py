"""Detection worker processes for `socctl run` (`workers: N`): the detection half of each batch
(`correlator.live.detect.detect_batch`: syslog parsing, Sigma, intel, YARA, the events' store records) runs in
another process, so it uses another core than the analysis, the store and cases in the engine's own process.

Workers are forked when the engine starts, before any thread or listener exists, and inherit its compiled rules
(no loading of their own). Each serves one request at a time over its own pipe; the engine sends batch k to
worker k mod N and takes the results back in batch order. A reload is a message: every worker loads the new rules
and configuration itself (`load`), and a worker that cannot keeps what it runs and says why.

A worker ignores SIGINT, SIGTERM and SIGHUP (the engine decides when to stop: it drains its queue through the
workers first) and ends when its pipe closes (the engine stopped or died) or when told to. A worker that dies or
fails on a batch fails that batch as an error in the pipeline thread would: the engine stops without
acknowledging it.
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

from correlator.live.detect import Detected, Intake, detect_batch
from correlator.pipeline import Detection

__all__ = ["DetectionWorkers", "WorkerError"]

log = logging.getLogger(__name__)

# (detection, loader): what a forked worker starts with; `loader(payload)` builds a new detection on reload.
Loader = Callable[[Any], Detection]
_INHERITED: tuple[Detection, Loader] | None = None


class WorkerError(RuntimeError):
    """A detection worker failed a request or went away."""


def _serve(conn: Connection, others: list[Connection]) -> None:
    """A worker's loop: requests in, answers out, until the pipe closes or `stop`."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    for other in others:  # the engine's ends of every pipe: held here they would keep pipes open past the engine
        other.close()
    assert _INHERITED is not None, "worker forked without a detection stage"
    detection, loader = _INHERITED
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        kind = request[0]
        if kind == "stop":
            return
        answer: Any = None
        try:
            if kind == "detect":
                _, batch, now_ms, store_events = request
                answer = detect_batch(batch, detection, now_ms, store_events=store_events)
            elif kind == "load":
                detection = loader(request[1])
        except Exception as exc:  # any failure goes back to the engine, which decides
            conn.send(("error", f"{type(exc).__name__}: {exc}", traceback.format_exc(limit=8)))
            continue
        conn.send(("ok", answer) if kind in ("detect", "load") else ("error", f"unknown request {kind!r}", ""))


class _Worker:
    def __init__(self, process: multiprocessing.process.BaseProcess, conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.lock = threading.Lock()  # one request at a time on the pipe

    def call(self, request: tuple[Any, ...]) -> Any:
        with self.lock:
            try:
                self.conn.send(request)
                answer = self.conn.recv()
            except (EOFError, OSError, BrokenPipeError) as exc:
                code = self.process.exitcode
                raise WorkerError(f"detection worker {self.process.pid} went away"
                                  f"{'' if code is None else f' (exit code {code})'}: {exc!r}") from exc
        if answer[0] == "error":
            raise WorkerError(f"detection worker {self.process.pid}: {answer[1]}\n{answer[2]}")
        return answer[1]


class DetectionWorkers:
    """`count` forked detection workers sharing `detection` as it is now; `loader` builds a worker's new
    detection stage from what `load` is given. Call from the thread that starts the engine, before any other
    thread exists (fork copies only the calling thread)."""

    def __init__(self, count: int, detection: Detection, loader: Loader) -> None:
        global _INHERITED  # noqa: PLW0603 - the fork start method hands this to the workers
        if count < 1:
            raise ValueError(f"detection workers: need at least 1, got {count}")
        context = multiprocessing.get_context("fork")
        _INHERITED = (detection, loader)
        self._workers: list[_Worker] = []
        try:
            ends: list[Connection] = []
            for index in range(count):
                mine, theirs = context.Pipe()
                ends.append(mine)
                process = context.Process(target=_serve, args=(theirs, list(ends)), daemon=True,
                                          name=f"socctl-detect-{index}")
                process.start()
                theirs.close()
                self._workers.append(_Worker(process, mine))
        except BaseException:
            self.close()
            raise
        finally:
            _INHERITED = None
        self._next = 0
        # A worker ignores SIGTERM, which is how multiprocessing ends daemon children at exit before joining them:
        # stop them first, whatever way the engine's process ends.
        atexit.register(self.close)

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
        """Worker `index` runs `detect_batch` (blocking; safe from several threads, one request per worker)."""
        result = self._workers[index].call(("detect", list(batch), now_ms, store_events))
        assert isinstance(result, Detected)
        return result

    def load(self, payload: Any) -> None:
        """Every worker builds its new detection stage from `payload`; `WorkerError` naming the first that could
        not (it keeps what it runs; so may the others, until the next load)."""
        errors = []
        for worker in self._workers:
            try:
                worker.call(("load", payload))
            except WorkerError as exc:
                errors.append(str(exc))
        if errors:
            raise WorkerError(errors[0])

    def close(self, timeout: float = 5.0) -> None:
        """Stop every worker (waiting up to `timeout` each, then killing it). Closing twice is harmless."""
        atexit.unregister(self.close)
        for worker in self._workers:
            if worker.lock.acquire(timeout=timeout):  # else a request hangs on it: closing the pipe ends that
                try:
                    worker.conn.send(("stop",))
                except (OSError, ValueError):
                    pass
                finally:
                    worker.lock.release()
            worker.conn.close()
        for worker in self._workers:
            worker.process.join(timeout)
            if worker.process.is_alive():
                log.warning("detection worker %s did not stop: killing it", worker.process.pid)
                worker.process.kill()
                worker.process.join(1)


def default_count() -> int:
    """`workers: auto`: one worker per core. The engine's own process (intake, analysis, store, cases) shares the
    cores with them: on 2 cores, 2 workers took 9,300 syslog events/s where 1 took 8,100 (bench/intake.py)."""
    return os.cpu_count() or 1
