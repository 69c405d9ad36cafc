"""Threads named for the operating system: a running engine's threads (the pipeline, the threads that take the
detection workers' results back, the workers themselves) carry their Python names into the kernel's, so
`top -H`, `ps -L`, /proc/<pid>/task/*/comm and `bench/intake.py` tell which thread spends the CPU. Python does
not do this itself; on Linux `prctl(PR_SET_NAME)` does (15 bytes at most), elsewhere nothing happens."""

from __future__ import annotations

import ctypes
import sys
import threading
from functools import cache
from typing import Any, Final

__all__ = ["name_this_thread", "os_thread_name"]

_PR_SET_NAME: Final = 15
_MAX_BYTES: Final = 15  # the kernel keeps 16 bytes with the terminating NUL


def os_thread_name(name: str) -> bytes:
    """The bytes the kernel keeps of `name`: UTF-8, cut to 15 bytes (a partial character dropped)."""
    return name.encode("utf-8")[:_MAX_BYTES].decode("utf-8", "ignore").encode("utf-8")


def name_this_thread(name: str | None = None) -> bool:
    """Give the calling thread `name` (default: its Python name) in the kernel; False where it cannot be."""
    libc = _libc()
    if libc is None:
        return False
    wanted = os_thread_name(name if name is not None else threading.current_thread().name)
    return bool(libc.prctl(_PR_SET_NAME, ctypes.c_char_p(wanted), 0, 0, 0) == 0)


@cache
def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
