"""Threads named for the operating system: the kernel keeps 15 bytes of a name; a thread that names itself shows
under that name in /proc (so top -H and bench/intake.py tell the engine's threads apart), the engine's pipeline
thread and detection workers included."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from correlator.live.app import build_runner
from correlator.live.thread_names import name_this_thread, os_thread_name
from correlator.store.config import open_store
from tests.correlator.live.test_runner_reload import _config, _rules

LINUX = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="thread names in /proc are Linux's")


def _comm() -> str:
    return Path(f"/proc/self/task/{threading.get_native_id()}/comm").read_text(encoding="utf-8").strip()


@pytest.mark.parametrize(("name", "kept"), [
    ("socctl-pipeline_0", b"socctl-pipeline"),
    ("short", b"short"),
    ("socctl-ảnh-đẹp-quá", "socctl-ảnh-đ".encode()),  # a character cut in half is dropped whole
], ids=["cut", "short", "multibyte"])
def test_the_kernel_keeps_fifteen_bytes_of_a_name(name: str, kept: bytes) -> None:
    assert os_thread_name(name) == kept
    assert len(kept) <= 15


@LINUX
def test_a_thread_that_names_itself_shows_under_that_name() -> None:
    seen: list[tuple[bool, str]] = []

    def run() -> None:
        seen.append((name_this_thread(), _comm()))

    thread = threading.Thread(target=run, name="socctl-probe")
    thread.start()
    thread.join()
    assert seen == [(True, "socctl-probe")]


@LINUX
def test_the_engines_pipeline_thread_carries_its_name(tmp_path: Path) -> None:
    config = _config(tmp_path, _rules(tmp_path / "rules", "a"))
    with open_store(config.store) as store:
        runner, _ = build_runner(config, store)
        try:
            assert runner._pipeline.submit(_comm).result(timeout=10) == "socctl-pipeline"
        finally:
            runner._pipeline.shutdown()


@LINUX
def test_detection_workers_carry_their_name(tmp_path: Path) -> None:
    config = _config(tmp_path, _rules(tmp_path / "rules", "a"), workers=2)
    with open_store(config.store) as store:
        runner, _ = build_runner(config, store)
        assert runner.workers is not None
        try:
            pids = [pid for pid in runner.workers.pids if pid is not None]
            assert len(pids) == 2
            names: list[str] = []
            deadline = time.monotonic() + 10  # each worker names itself as it starts
            while names != ["socctl-detect"] * 2 and time.monotonic() < deadline:
                names = [Path(f"/proc/{pid}/comm").read_text(encoding="utf-8").strip() for pid in pids]
                time.sleep(0.02)
            assert names == ["socctl-detect"] * 2
        finally:
            runner.workers.close()
            runner._pipeline.shutdown()
