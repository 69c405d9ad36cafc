"""Choosing and opening the store backend from a URL or the environment.

Resolution, first match wins:

1. ``url`` argument: ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``, ``sqlite://`` or
   ``sqlite:///:memory:`` (in-memory), or ``http(s)://...`` (Elasticsearch).
2. ``SOCCTL_ES_URL``: Elasticsearch.
3. ``SOCCTL_DB``: a SQLite file path (or a ``sqlite:`` URL as above).
4. ``<user data dir>/socctl.db`` (platformdirs; ``~/.local/share/socctl/socctl.db`` on Linux).

The sqlite URL follows the SQLAlchemy convention: what follows ``sqlite:///`` is the path, so an absolute path
has four slashes. Parent directories of a SQLite file are created.

Elasticsearch options from the environment: ``SOCCTL_ES_PREFIX`` (index prefix, default ``socctl``),
``SOCCTL_AGENCY`` (agency of documents without ``organization.id``, default ``default``), ``SOCCTL_ES_TIMEOUT``
(seconds per request, default 30), ``SOCCTL_SPOOL_DIR`` (where documents wait while Elasticsearch is
unreachable; default ``<user data dir>/spool/<prefix>``) and ``SOCCTL_SPOOL_MAX_BYTES`` (default 1 GiB).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import platformdirs

from correlator.store.base import Clock, Store
from correlator.store.errors import StoreError
from correlator.store.es_mapping import DEFAULT_PREFIX
from correlator.store.sqlite import SqliteStore

__all__ = ["ENV_DB", "ENV_ES_URL", "default_db_path", "open_store", "sqlite_path_from_url", "sqlite_target"]

ENV_DB: Final = "SOCCTL_DB"
ENV_ES_URL: Final = "SOCCTL_ES_URL"
ENV_ES_PREFIX: Final = "SOCCTL_ES_PREFIX"
ENV_AGENCY: Final = "SOCCTL_AGENCY"
ENV_ES_TIMEOUT: Final = "SOCCTL_ES_TIMEOUT"
ENV_SPOOL_DIR: Final = "SOCCTL_SPOOL_DIR"
ENV_SPOOL_MAX_BYTES: Final = "SOCCTL_SPOOL_MAX_BYTES"
MEMORY: Final = ":memory:"


def default_db_path() -> Path:
    return Path(platformdirs.user_data_dir("socctl")) / "socctl.db"


def sqlite_path_from_url(url: str) -> str:
    """The database path in a ``sqlite://`` URL; ``":memory:"`` for ``sqlite://`` and ``sqlite:///:memory:``."""
    if url == "sqlite://":
        return MEMORY
    if not url.startswith("sqlite:///") or url == "sqlite:///":
        raise StoreError(f"invalid sqlite URL {url!r}: expected sqlite:///relative.db or sqlite:////abs.db")
    return url.removeprefix("sqlite:///")


def open_store(
    url: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    clock: Clock | None = None,
    spool: bool = True,
) -> Store:
    """Open the configured store (see the module doc). `environ` defaults to `os.environ`. With `spool` false an
    Elasticsearch store has no spool (readers: the spool is locked by the process that writes)."""
    env = os.environ if environ is None else environ
    kind, where = _resolve(url, env)
    if kind == "elasticsearch":
        return _open_elasticsearch(where, env, clock, spool=spool)
    return SqliteStore(_sqlite_file(where), clock=clock)


def sqlite_target(url: str | None = None, *, environ: Mapping[str, str] | None = None) -> str:
    """The SQLite file `open_store` opens for `url` (``~`` expanded, its directory made); a `StoreError` when that
    is Elasticsearch."""
    kind, where = _resolve(url, os.environ if environ is None else environ)
    if kind == "elasticsearch":
        raise StoreError(f"{where}: an Elasticsearch store, not a SQLite one")
    return _sqlite_file(where)


def _resolve(url: str | None, env: Mapping[str, str]) -> tuple[str, str]:
    """("elasticsearch", URL) or ("sqlite", path) of the store to open (see the module doc)."""
    if not url:
        if env.get(ENV_ES_URL):
            return "elasticsearch", env[ENV_ES_URL]
        url = env.get(ENV_DB) or str(default_db_path())
        if not url.startswith("sqlite:"):
            return "sqlite", url
    if url.startswith(("http://", "https://")):
        return "elasticsearch", url
    if url.startswith("sqlite:"):
        return "sqlite", sqlite_path_from_url(url)
    scheme = url.split(":", 1)[0] if ":" in url else url
    raise StoreError(f"unsupported store URL scheme {scheme!r}: expected sqlite:///path or http(s)://host:port")


def _sqlite_file(path: str) -> str:
    if path == MEMORY:
        return path
    resolved = Path(path).expanduser()
    try:
        resolved.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"{resolved}: cannot create the database directory: {exc}") from exc
    return str(resolved)


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise StoreError(f"{name}={text!r}: expected a number") from None
    if value <= 0:
        raise StoreError(f"{name}={text!r}: expected a number > 0")
    return value


def _open_elasticsearch(url: str, env: Mapping[str, str], clock: Clock | None, *, spool: bool) -> Store:
    from correlator.store.elasticsearch import ElasticsearchStore  # the client is imported only when used

    prefix = env.get(ENV_ES_PREFIX) or DEFAULT_PREFIX
    spool_dir = env.get(ENV_SPOOL_DIR) or str(Path(platformdirs.user_data_dir("socctl")) / "spool" / prefix)
    return ElasticsearchStore(
        url,
        prefix=prefix,
        agency=env.get(ENV_AGENCY) or "default",
        clock=clock,
        spool_dir=spool_dir if spool else None,
        spool_max_bytes=int(_number(env, ENV_SPOOL_MAX_BYTES, 1024**3)),
        request_timeout=_number(env, ENV_ES_TIMEOUT, 30.0),
    )
