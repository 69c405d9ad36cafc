"""Where things live by default. Every default can be overridden by an environment variable or a CLI option;
nothing here reads the environment at import time."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def default_sigma_rules_dir() -> Path:
    """The repository's own Sigma rules (rules/sigma)."""
    return PROJECT_ROOT / "rules" / "sigma"


def default_cache_dir() -> Path:
    """Compiled-rule cache: $SOCCTL_CACHE_DIR, else the user's cache directory."""
    env = os.environ.get("SOCCTL_CACHE_DIR")
    return Path(env) if env else Path(platformdirs.user_cache_dir("socctl"))


def default_placeholders_file() -> Path | None:
    """Placeholder values for `|expand`: $SOCCTL_PLACEHOLDERS, else rules/placeholders.yml if present."""
    env = os.environ.get("SOCCTL_PLACEHOLDERS")
    if env:
        return Path(env)
    candidate = PROJECT_ROOT / "rules" / "placeholders.yml"
    return candidate if candidate.is_file() else None


def default_yara_rules_dir() -> Path:
    """The repository's own YARA rules (`rules/yara`): what `socctl scan`, `ingest` and `run` load by default."""
    return PROJECT_ROOT / "rules" / "yara"


def default_playbooks_dir() -> Path:
    """The repository's playbooks (playbooks/)."""
    return PROJECT_ROOT / "playbooks"


def default_state_dir() -> Path:
    """Correlation and suppression state between runs: $SOCCTL_STATE_DIR, else the user's data directory."""
    env = os.environ.get("SOCCTL_STATE_DIR")
    return Path(env) if env else Path(platformdirs.user_data_dir("socctl")) / "state"
