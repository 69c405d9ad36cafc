"""The agents' bearer tokens for the HTTP intake: a YAML file of ``[{name, token, organization}]``. Without one
configured, a local token is made once (random, 32 bytes) in ``<state_dir>/intake-tokens.yml`` with mode 0600, so
the default engine takes agent data on loopback without a default secret."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import yaml

from collectors.http_auth import AgentToken
from correlator.errors import CorrelatorError

__all__ = ["AgentTokensError", "load_agent_tokens"]


class AgentTokensError(CorrelatorError):
    pass


def load_agent_tokens(path: Path | None, state_dir: Path) -> tuple[list[AgentToken], Path]:
    """The tokens of `path`, or the local token (made when missing); and the file they came from."""
    if path is None:
        path = state_dir / "intake-tokens.yml"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            entry = [{"name": "local", "token": secrets.token_urlsafe(32)}]
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                yaml.safe_dump(entry, fh)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise AgentTokensError(f"{path}: cannot read the agent tokens: {exc}") from exc
    items = data.get("tokens") if isinstance(data, dict) else data
    if not isinstance(items, list) or not items:
        raise AgentTokensError(f"{path}: expected a list of {{name, token, organization}}")
    tokens = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise AgentTokensError(f"{path}: entry {index}: expected a mapping, not {item!r}")
        try:
            tokens.append(AgentToken.from_dict(item))
        except ValueError as exc:
            raise AgentTokensError(f"{path}: entry {index}: {exc}") from exc
    return tokens, path
