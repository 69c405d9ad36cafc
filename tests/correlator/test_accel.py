"""The native extension is part of what CI tests: tests of the native paths skip where it is not built (a user's
machine without cargo), so CI must fail when it is missing rather than skip them silently."""

from __future__ import annotations

import os

import pytest

from correlator.accel import native_available


def test_the_native_extension_is_built_in_ci() -> None:
    if os.environ.get("CI", "").lower() != "true":
        pytest.skip("outside CI the native extension is optional (without cargo socctl uses the Python paths)")
    if os.environ.get("SOCCTL_NATIVE", "1") == "0":
        pytest.skip("SOCCTL_NATIVE=0 selects the Python paths on purpose")
    assert native_available(), ("correlator._native is not importable: scripts/setup must build it (cargo and "
                                "setuptools-rust), else every native test is skipped")
