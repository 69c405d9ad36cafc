"""Shared fixtures. `shared_data` is the third-party corpus in ../shared/data (SigmaHQ rules, YARA
signature-base, sample logs): tests that need it skip when it is absent, except in CI (CI=true), where its
absence is a failure."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def _missing(message: str) -> None:
    """Skip a test whose shared data is absent; in CI (CI=true) its absence is a failure."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (required when CI=true)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        _missing(f"shared data corpus not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def shared_path(shared_data: Path) -> Callable[[str], Path]:
    """`shared_path("evtx")`: a folder or file inside the shared corpus. Skips when it is missing, except
    in CI (CI=true), where a missing part of the corpus is a failure like a missing corpus."""

    def resolve(relative: str) -> Path:
        path = shared_data / relative
        if not path.exists():
            _missing(f"{relative} not found in the shared data corpus at {shared_data}")
        return path

    return resolve
