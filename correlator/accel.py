"""The native extension (correlator/native, Rust): the literal prefilter, the EVTX reader, documents' free text and
the common syslog line (`collectors.syslog_native`).

Everything it does has a pure-Python equivalent giving the same results; it is used when it was built (pip
builds it when cargo is on the machine) and not disabled with SOCCTL_NATIVE=0.
"""

from __future__ import annotations

import os
from functools import cache

__all__ = ["native_available", "reread_native_setting"]


def native_available() -> bool:
    """The native extension is importable and not disabled by SOCCTL_NATIVE=0. The variable is read when first
    asked (it is asked per event and document: an environment lookup there cost more than the choice);
    `reread_native_setting` makes the next call read it again."""
    return _enabled()


def reread_native_setting() -> None:
    """Forget the SOCCTL_NATIVE value read (for a process that changes it: tests, benchmarks)."""
    _enabled.cache_clear()


@cache
def _enabled() -> bool:
    return os.environ.get("SOCCTL_NATIVE", "1") != "0" and _importable()


@cache
def _importable() -> bool:
    try:
        import correlator._native  # noqa: F401
    except ImportError:
        return False
    return True
