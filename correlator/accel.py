"""The native extension (correlator/native, Rust): the literal prefilter, the EVTX reader and documents' free text.

Everything it does has a pure-Python equivalent giving the same results; it is used when it was built (pip
builds it when cargo is on the machine) and not disabled with SOCCTL_NATIVE=0.
"""

from __future__ import annotations

import os
from functools import cache

__all__ = ["native_available"]


def native_available() -> bool:
    """The native extension is importable and not disabled by SOCCTL_NATIVE=0 (read on every call: cheap enough
    for a per-document choice)."""
    if os.environ.get("SOCCTL_NATIVE", "1") == "0":
        return False
    return _importable()


@cache
def _importable() -> bool:
    try:
        import correlator._native  # noqa: F401
    except ImportError:
        return False
    return True
