"""Shared fixtures of the collector tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

WriteFile = Callable[[str, "str | bytes"], Path]


@pytest.fixture
def write(tmp_path: Path) -> WriteFile:
    """Write a file under tmp_path (folders made as needed) and return its path."""
    def _write(name: str, content: str | bytes) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return path

    return _write
