"""An ordered map over forked worker processes, for `socctl ingest`: each task goes to whichever worker is free,
and the results come back in task order.

Why not `multiprocessing.Pool`: its worker-handler thread waits on the result pipe too, so while a large result
(a file's alerts) waits to be read it wakes again and again, holding the parent's GIL against the thread that
reads the results; the workers then block on their writes (measured on a replay of 82,550 EVTX events: the
parent spent about a third of its time in that loop, the workers 4% in `send`). Here the parent's one thread
sends tasks and reads results itself, on one pipe per worker.

Workers are forked (they share what the parent built before: compiled rules), serve one task at a time, and end
when their pipe closes. An exception in a task is raised in the parent as `WorkerTaskError` with the worker's
traceback; a worker that dies (a crash in native code, the OOM killer) is a `WorkerTaskError` too. Leaving the
iteration early (an error in the consumer) stops every worker.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import traceback
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any, TypeVar

__all__ = ["WorkerTaskError", "fork_map"]

T = TypeVar("T")
R = TypeVar("R")

_STOP_TIMEOUT_S = 5.0


class WorkerTaskError(RuntimeError):
    """A task failed in a worker process (its traceback is in the message), or the worker died running it."""


def _serve(fn: Callable[[Any], Any], conn: Connection) -> None:
    """A worker: (index, task) in, (index, True, result) or (index, False, traceback) out, until EOF or None."""
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        index, task = message
        try:
            reply = (index, True, fn(task))
        except BaseException:  # every failure goes back to the parent, which raises it
            reply = (index, False, traceback.format_exc())
        conn.send(reply)


def fork_map(fn: Callable[[T], R], tasks: Sequence[T], workers: int) -> Iterator[R]:
    """`fn(task)` for every task, in task order, computed by `workers` forked processes."""
    ctx = multiprocessing.get_context("fork")
    procs: list[Any] = []
    conns: list[Connection] = []
    complete = False
    try:
        for _ in range(max(1, min(workers, len(tasks)))):
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(target=_serve, args=(fn, theirs), daemon=True)
            proc.start()
            theirs.close()
            procs.append(proc)
            conns.append(mine)
        sent = 0
        busy: dict[Connection, int] = {}
        for conn in conns:
            if sent < len(tasks):
                conn.send((sent, tasks[sent]))
                busy[conn] = sent
                sent += 1
        done: dict[int, R] = {}
        following = 0
        while following < len(tasks):
            for ready in wait(list(busy)):
                conn = ready  # type: ignore[assignment]
                try:
                    index, ok, value = conn.recv()
                except (EOFError, OSError) as exc:
                    raise WorkerTaskError(f"a worker process died while running task {busy[conn]}") from exc
                if not ok:
                    raise WorkerTaskError(f"task {index} failed in a worker process:\n{value}")
                done[index] = value
                del busy[conn]
                if sent < len(tasks):
                    conn.send((sent, tasks[sent]))
                    busy[conn] = sent
                    sent += 1
            while following in done:
                yield done.pop(following)
                following += 1
        complete = True
    finally:
        _stop(procs, conns, graceful=complete)


def _stop(procs: list[Any], conns: list[Connection], *, graceful: bool) -> None:
    """Every worker told to end (all tasks done), or terminated (the iteration was left early or failed)."""
    for conn in conns:
        if graceful:
            with contextlib.suppress(OSError):  # the worker is gone already
                conn.send(None)
        conn.close()
    for proc in procs:
        if not graceful:
            proc.terminate()
        proc.join(_STOP_TIMEOUT_S)
        if proc.is_alive():
            proc.kill()
            proc.join(_STOP_TIMEOUT_S)
