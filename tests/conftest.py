"""Shared fixtures. `shared_data` is the third-party corpus in ../shared/data (SigmaHQ rules, YARA
signature-base, sample logs): tests that need it skip when it is absent, except in CI (CI=true), where its
absence is a failure."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from correlator.accel import reread_native_setting

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def _missing(message: str) -> None:
    """Skip a test whose shared data is absent; in CI (CI=true) its absence is a failure."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (required when CI=true)")
    pytest.skip(message)


def require_tool(name: str, package: str) -> None:
    """Skip a test whose command-line tool is absent; in CI (CI=true) that is a failure (scripts/test installs
    it)."""
    if shutil.which(name) is None:
        _missing(f"`{name}` is not installed (apt-get install {package})")


@pytest.fixture
def native_setting(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[bool], None]]:
    """`native_setting(False)`: SOCCTL_NATIVE=0 for this test (read again now and after the test)."""

    def choose(native: bool) -> None:
        monkeypatch.setenv("SOCCTL_NATIVE", "1" if native else "0")
        reread_native_setting()

    yield choose
    monkeypatch.undo()
    reread_native_setting()


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


ES_PORT = os.environ.get("SOCCTL_TEST_ES_PORT", "9250")


@pytest.fixture(scope="session")
def elasticsearch_url() -> Iterator[str]:
    """A real local Elasticsearch (scripts/elasticsearch) on 127.0.0.1:$SOCCTL_TEST_ES_PORT (default 9250),
    started once per session and stopped at its end unless it was already running. Where it cannot be
    fetched or started, the tests that need it skip with the reason, except in CI (CI=true), where they fail."""
    script = REPO_ROOT / "scripts" / "elasticsearch"
    env = {**os.environ, "SOCCTL_ES_PORT": ES_PORT}
    was_running = subprocess.run([script, "status"], env=env, capture_output=True, check=False).returncode == 0
    started = subprocess.run([script, "start"], env=env, capture_output=True, text=True, check=False)
    if started.returncode != 0:
        _missing(f"Elasticsearch could not be started by scripts/elasticsearch: {started.stderr.strip()[-2000:]}")
    yield started.stdout.strip().splitlines()[-1]
    if not was_running and os.environ.get("SOCCTL_TEST_ES_KEEP") != "1":
        subprocess.run([script, "stop"], env=env, capture_output=True, check=False)
