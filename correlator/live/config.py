"""The configuration of `socctl run`: one YAML file, every key optional, validated with errors that name the
file, line and key; the store URL also from the environment (`SOCCTL_ES_URL`, `SOCCTL_DB`, as every command).

    store: sqlite:///var/lib/socctl/socctl.db     # or http://127.0.0.1:9200
    rules: [/etc/socctl/rules]                    # added to the repository's rules/sigma
    no_default_rules: false
    assets: /etc/socctl/assets.yml
    intel: [/etc/socctl/iocs]
    allowlist: [/etc/socctl/allowlist.yml]        # besides the entries kept in the store
    scoring: /etc/socctl/scoring.yml
    suppression: /etc/socctl/suppression.yml      # or `suppress: false`
    cases_config: /etc/socctl/cases.yml
    playbooks: [/etc/socctl/playbooks]
    lateness: 30s                                 # allowed lateness of events for correlation windows
    state_dir: /var/lib/socctl/state              # correlation and suppression state across restarts
    snapshot_every: 60s
    syslog: {host: 127.0.0.1, udp: 5514, tcp: 5514}   # a port null turns that listener off; TLS (RFC 5425):
                                                  # add tls: 6514, cert: F.pem, key: F.pem[, client_ca: F.pem]
    metrics: {host: 127.0.0.1, port: 9464}            # Prometheus text at /metrics; port null: off
    http: {host: 127.0.0.1, port: 8088}               # NDJSON intake for agents (POST /v1/events); null: off
    http_tokens: /etc/socctl/agents.yml           # [{name, token, organization}]; default: a local token made
                                                  # once in <state_dir>/intake-tokens.yml
    queue: 10000                                  # events waiting between intake and detection
    batch: 1000                                   # events per detection batch (at most, with a short queue)
    batch_max: 4000                               # with a backlog: batches grow up to this (default 4 x batch)
    batch_wait: 200ms                             # how long a batch waits to fill
    workers: auto                                 # detection worker processes (syslog parsing, rules, YARA,
                                                  # event documents): auto (the default) one per core (none
                                                  # on one core); 0: in the engine's pipeline thread
    store_events: true                            # keep every event in the store (alerts point to them)
    replay: [samples/]                            # files read once at start (offline formats)
    tail:                                         # files followed as they grow (rotation and restarts survived)
      - {path: /var/log/auth.log}
      - {path: "/var/log/nginx/*.log", format: web-access, server: nginx}
      - {path: /var/log/audit/audit.log}         # auditd: records assembled into events as they are written
    tail_poll: 250ms
    timezone: UTC                                 # zone of syslog timestamps without one (RFC 3164 and syslog
                                                  # files: the senders' local time), e.g. Asia/Ho_Chi_Minh
    watch:                                        # directories files are dropped into whole: each file read once
      - {path: /srv/drop/evtx, pattern: "*.evtx"}   # (any offline format; `format` forces one)
    samples: {paths: [/var/quarantine], max_bytes: 32MiB, poll: 2s}   # files scanned with YARA once each
    uploads: {enabled: true, max_bytes: 32MiB, keep: 365d}   # POST /v1/files on the HTTP intake (stored under
                                                  # state_dir/samples; a content not uploaded again for `keep`
                                                  # is deleted, swept hourly; keep: null keeps them for ever)
    yara: {enabled: true, rules: [rules/yara], timeout: 10s, max_bytes: 32MiB}   # payloads: carved bodies, files
    capture:                                      # live network sensor (needs root or CAP_NET_RAW)
      interface: eth0
      bpf: "not port 9200"                        # a BPF filter, compiled by libpcap
      internal_networks: [10.0.0.0/8, 192.168.0.0/16]   # flow direction; default RFC 1918 and friends
      idle_timeout: 60s                           # a flow with no packet for this long ends
      carve: true                                 # keep HTTP response bodies for YARA (when YARA is on)

Environment overrides: `SOCCTL_RUN_<KEY>` (upper case) holds a key's value as YAML and wins over the file, e.g.
`SOCCTL_RUN_SYSLOG='{host: 0.0.0.0, udp: 514, tcp: 514}'` or `SOCCTL_RUN_QUEUE=50000`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from collectors.tail_format import TailSpec
from correlator.located_yaml import Located, LocatedError, load_located_yaml
from correlator.runtime import RuntimeOptions
from correlator.settings import default_state_dir
from correlator.timespec import TimeSpecError, parse_duration_ms

__all__ = ["ENV_PREFIX", "Capture", "Listen", "RunConfig", "RunConfigError", "Samples", "TlsFiles", "Uploads", "Watch",
           "environment_overrides", "load_run_config", "parse_run_config"]

_KEYS: Final = ("store", "rules", "no_default_rules", "assets", "intel", "allowlist", "scoring", "suppression",
                "suppress", "cases_config", "playbooks", "lateness", "state_dir", "snapshot_every", "syslog",
                "metrics", "queue", "batch", "batch_max", "batch_wait", "store_events", "replay", "tail", "tail_poll",
                "http", "http_tokens", "samples", "uploads", "yara", "capture", "watch", "workers", "timezone")
ENV_PREFIX: Final = "SOCCTL_RUN_"
MAX_WORKERS: Final = 64
BATCH_GROWTH: Final = 4  # a batch grows to this many times `batch` when a backlog waits (unless batch_max says)
DEFAULT_SAMPLE_BYTES: Final = 32 << 20
DEFAULT_SAMPLE_KEEP_MS: Final = 365 * 86_400_000  # a year: the longest retention of `socctl store retention`
_SIZE: Final = re.compile(r"^\s*(\d+)\s*(B|KiB|MiB|GiB|KB|MB|GB)?\s*$")
_UNITS: Final = {None: 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "KB": 10**3, "MB": 10**6,
                 "GB": 10**9}


class RunConfigError(LocatedError):
    """An invalid `socctl run` configuration: file, line, key and reason."""


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """The syslog TLS listener's certificate chain and key (PEM) and, to require client certificates, the CA."""

    cert: Path
    key: Path
    client_ca: Path | None = None


@dataclass(frozen=True, slots=True)
class Listen:
    host: str = "127.0.0.1"
    udp: int | None = None
    tcp: int | None = None
    port: int | None = None
    tls: int | None = None
    tls_files: TlsFiles | None = None


@dataclass(frozen=True, slots=True)
class Watch:
    """A drop directory: each complete file matching `pattern` is read once (in `format`, else detected)."""

    path: Path
    pattern: str = "*.evtx"
    format: str | None = None


@dataclass(frozen=True, slots=True)
class Samples:
    """Sample directories watched for files (YARA); off when `paths` is empty."""

    paths: tuple[Path, ...] = ()
    max_bytes: int = DEFAULT_SAMPLE_BYTES
    poll_ms: int = 2_000


@dataclass(frozen=True, slots=True)
class Uploads:
    """`POST /v1/files` on the HTTP intake; stored contents not uploaded again for `keep_ms` are deleted (None:
    kept for ever)."""

    enabled: bool = True
    max_bytes: int = DEFAULT_SAMPLE_BYTES
    keep_ms: int | None = DEFAULT_SAMPLE_KEEP_MS


@dataclass(frozen=True, slots=True)
class Capture:
    """A live capture on `interface` (off when None)."""

    interface: str | None = None
    bpf: str | None = None
    internal_networks: tuple[str, ...] | None = None  # None: the sensor's default
    idle_timeout_ms: int = 60_000
    carve: bool = True


@dataclass(frozen=True)
class RunConfig:
    store: str | None = None
    rules: tuple[Path, ...] = ()
    no_default_rules: bool = False
    runtime: RuntimeOptions = field(default_factory=RuntimeOptions)
    state_dir: Path = field(default_factory=default_state_dir)
    snapshot_every_ms: int = 60_000
    syslog: Listen = Listen(udp=5514, tcp=5514)
    metrics: Listen = Listen(port=9464)
    http: Listen = Listen(port=8088)
    http_tokens: Path | None = None
    queue: int = 10_000
    batch: int = 1_000
    batch_max: int | None = None  # events per batch at most when a backlog waits; None: BATCH_GROWTH x batch
    batch_wait_ms: int = 200
    workers: int = 0  # detection worker processes; 0: in the pipeline thread (a configuration's default: auto)
    store_events: bool = True
    replay: tuple[Path, ...] = ()
    tail: tuple[TailSpec, ...] = ()
    tail_poll_ms: int = 250
    watch: tuple[Watch, ...] = ()
    samples: Samples = Samples()
    uploads: Uploads = Uploads()
    capture: Capture = Capture()
    timezone: str = "UTC"  # IANA zone of timestamps without an offset: syslog RFC 3164, syslog files
    source: str | None = None

    @property
    def largest_batch(self) -> int:
        """Events per batch at most, when a backlog waits."""
        return self.batch_max if self.batch_max is not None else BATCH_GROWTH * self.batch


def load_run_config(path: Path | None) -> RunConfig:
    """The file's configuration, or the defaults when `path` is None."""
    if path is None:
        return parse_run_config("", "<defaults>")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RunConfigError(f"cannot read: {exc}", source=str(path)) from exc
    return parse_run_config(text, str(path))


def environment_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings given as `SOCCTL_RUN_<KEY>` variables (values are YAML); an unknown key or bad YAML is a
    `RunConfigError` naming the variable."""
    out: dict[str, Any] = {}
    for name, text in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        key = name[len(ENV_PREFIX):].lower()
        if key not in _KEYS:
            raise RunConfigError(f"unknown setting {key!r} (expected one of {', '.join(_KEYS)})", source=name)
        out[key] = load_located_yaml(text, f"environment {name}", RunConfigError)
    return out


def parse_run_config(text: str, source: str = "<run config>", environ: Mapping[str, str] | None = None) -> RunConfig:
    """The configuration in `text`, with the `SOCCTL_RUN_*` variables of `environ` (default: the process
    environment) over it."""
    doc = load_located_yaml(text, source, RunConfigError)
    if doc is not None and not isinstance(doc, Mapping):
        raise RunConfigError("expected a mapping of settings", source=source, line=1)
    overrides = environment_overrides(os.environ if environ is None else environ)
    if doc is None:
        doc = {}
    if overrides:
        merged = _Overridden(doc)
        merged.update(overrides)
        doc = merged
    reader = _Reader(doc, source)
    for key in doc:
        if key not in _KEYS:
            raise reader.fail(str(key), f"unknown setting (expected one of {', '.join(_KEYS)})")
    yara = reader.yara("yara")
    runtime = RuntimeOptions(
        intel=reader.paths("intel"), assets=reader.path("assets"), allowlist_files=reader.paths("allowlist"),
        scoring=reader.path("scoring"), suppression=reader.path("suppression"),
        suppress=reader.flag("suppress", True), cases_config=reader.path("cases_config"),
        playbooks=reader.paths("playbooks") or None, lateness_ms=reader.duration("lateness", 0, zero=True),
        **yara,
    )
    batch = reader.count("batch", 1_000)
    return RunConfig(
        store=reader.text("store"), rules=reader.paths("rules"),
        no_default_rules=reader.flag("no_default_rules", False),
        runtime=runtime, state_dir=reader.path("state_dir") or default_state_dir(),
        snapshot_every_ms=reader.duration("snapshot_every", 60_000),
        syslog=reader.syslog("syslog"),
        metrics=reader.listen("metrics", ("host", "port"), Listen(port=9464)),
        http=reader.listen("http", ("host", "port"), Listen(port=8088)), http_tokens=reader.path("http_tokens"),
        queue=reader.count("queue", 10_000), batch=batch, batch_max=reader.batch_max("batch_max", batch),
        batch_wait_ms=reader.duration("batch_wait", 200), workers=reader.workers("workers"),
        store_events=reader.flag("store_events", True),
        replay=reader.paths("replay"), tail=reader.tail_specs("tail"),
        tail_poll_ms=reader.duration("tail_poll", 250), watch=reader.watches("watch"),
        samples=reader.samples("samples"),
        uploads=reader.uploads("uploads"), capture=reader.capture("capture"), timezone=reader.timezone("timezone"),
        source=source,
    )


class _Overridden(dict[str, Any]):
    """The file's settings with environment overrides: lines are the file's for keys it set, none for others."""

    def __init__(self, doc: Mapping[str, Any]) -> None:
        super().__init__(doc)
        self._file = doc
        self.overridden: set[str] = set()

    def update(self, other: Mapping[str, Any]) -> None:  # type: ignore[override]
        super().update(other)
        self.overridden.update(other)

    def line_of(self, key: str) -> int | None:
        if key in self.overridden or not isinstance(self._file, Located):
            return None
        return self._file.line_of(key)


class _Reader:
    def __init__(self, doc: Mapping[str, Any], source: str) -> None:
        self.doc = doc
        self.source = source

    def fail(self, key: str, reason: str) -> RunConfigError:
        top = key.split(".", 1)[0].split("[", 1)[0]
        if isinstance(self.doc, _Overridden) and top in self.doc.overridden:
            return RunConfigError(reason, source=f"environment {ENV_PREFIX}{top.upper()}", key=key)
        line = self.doc.line_of(key) if isinstance(self.doc, Located | _Overridden) else None
        return RunConfigError(reason, source=self.source, line=line, key=key)

    def size(self, key: str, value: Any) -> int:
        match = _SIZE.match(str(value)) if isinstance(value, int | str) and not isinstance(value, bool) else None
        if match is None or int(match.group(1)) < 1:
            raise self.fail(key, f"expected a size such as 32MiB or 1000000, not {value!r}")
        return int(match.group(1)) * _UNITS[match.group(2)]

    def _section(self, key: str, allowed: tuple[str, ...]) -> Mapping[str, Any] | None:
        value = self.doc.get(key)
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise self.fail(key, f"expected a mapping of {', '.join(allowed)}, not {value!r}")
        for name in value:
            if name not in allowed:
                raise self.fail(f"{key}.{name}", f"unknown setting (expected one of {', '.join(allowed)})")
        return value

    def watches(self, key: str) -> tuple[Watch, ...]:
        from collectors.files import FORMATS

        value = self.doc.get(key)
        if value is None:
            return ()
        if not isinstance(value, list):
            raise self.fail(key, f"expected a list of {{path, pattern, format}}, not {value!r}")
        out = []
        for index, item in enumerate(value):
            entry = {"path": item} if isinstance(item, str) else item
            where = f"{key}[{index}]"
            if not isinstance(entry, Mapping) or set(entry) - {"path", "pattern", "format"} or "path" not in entry:
                raise self.fail(where, f"expected a path or {{path, pattern, format}}, not {item!r}")
            fmt = entry.get("format")
            if fmt is not None and fmt not in FORMATS:
                raise self.fail(f"{where}.format", f"unknown format {fmt!r} (expected one of {', '.join(FORMATS)})")
            pattern = entry.get("pattern", "*.evtx")
            if not isinstance(pattern, str) or not pattern:
                raise self.fail(f"{where}.pattern", f"expected a glob such as *.evtx, not {pattern!r}")
            out.append(Watch(Path(str(entry["path"])), pattern, fmt))
        return tuple(out)

    def samples(self, key: str) -> Samples:
        section = self._section(key, ("paths", "max_bytes", "poll"))
        if section is None:
            return Samples()
        nested = _Reader(section, self.source)
        paths = nested.paths("paths")
        if not paths:
            raise self.fail(f"{key}.paths", "expected at least one directory to watch")
        poll = nested.duration("poll", 2_000)
        return Samples(paths, self.size(f"{key}.max_bytes", section.get("max_bytes", DEFAULT_SAMPLE_BYTES)), poll)

    def yara(self, key: str) -> dict[str, Any]:
        """The YARA settings as `RuntimeOptions` fields (payloads up to the sample size by default, so that every
        file the intake takes is scanned)."""
        section = self._section(key, ("enabled", "rules", "timeout", "max_bytes"))
        if section is None:
            return {"yara_max_size": DEFAULT_SAMPLE_BYTES}
        nested = _Reader(section, self.source)
        timeout_ms = nested.duration("timeout", 10_000)
        if timeout_ms < 1000:
            raise self.fail(f"{key}.timeout", "expected at least 1s")
        return {"yara": nested.flag("enabled", True), "yara_rules": nested.paths("rules") or None,
                "yara_timeout_s": timeout_ms // 1000,
                "yara_max_size": self.size(f"{key}.max_bytes", section.get("max_bytes", DEFAULT_SAMPLE_BYTES))}

    def capture(self, key: str) -> Capture:
        section = self._section(key, ("interface", "bpf", "internal_networks", "idle_timeout", "carve"))
        if section is None:
            return Capture()
        nested = _Reader(section, self.source)
        interface = nested.text("interface")
        if interface is None:
            raise self.fail(f"{key}.interface", "expected the interface to capture on, e.g. eth0")
        networks = section.get("internal_networks")
        if networks is not None:
            if not isinstance(networks, list) or not all(isinstance(n, str) for n in networks):
                raise self.fail(f"{key}.internal_networks", f"expected a list of networks, not {networks!r}")
            from collectors.pcap_flows import NetworkZones

            try:
                NetworkZones(networks)
            except ValueError as exc:
                raise self.fail(f"{key}.internal_networks", str(exc)) from exc
        return Capture(interface, nested.text("bpf"), tuple(networks) if networks is not None else None,
                       nested.duration("idle_timeout", 60_000), nested.flag("carve", True))

    def uploads(self, key: str) -> Uploads:
        section = self._section(key, ("enabled", "max_bytes", "keep"))
        if section is None:
            return Uploads()
        nested = _Reader(section, self.source)
        keep: int | None = DEFAULT_SAMPLE_KEEP_MS
        if "keep" in section:
            try:
                keep = None if section["keep"] is None else parse_duration_ms(str(section["keep"]))
            except TimeSpecError as exc:
                raise self.fail(f"{key}.keep", str(exc)) from exc
        return Uploads(nested.flag("enabled", True),
                       self.size(f"{key}.max_bytes", section.get("max_bytes", DEFAULT_SAMPLE_BYTES)), keep)

    def text(self, key: str) -> str | None:
        value = self.doc.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, f"expected a non-empty string, not {value!r}")
        return value.strip()

    def path(self, key: str) -> Path | None:
        value = self.text(key)
        return Path(value) if value is not None else None

    def paths(self, key: str) -> tuple[Path, ...]:
        value = self.doc.get(key)
        if value is None:
            return ()
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) and v.strip() for v in items):
            raise self.fail(key, f"expected a path or a list of paths, not {value!r}")
        return tuple(Path(v) for v in items)

    def timezone(self, key: str) -> str:
        name = self.text(key) or "UTC"
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise self.fail(key, f"unknown time zone {name!r} (an IANA name such as Asia/Ho_Chi_Minh or UTC)"
                            ) from None
        return name

    def flag(self, key: str, default: bool) -> bool:
        value = self.doc.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, f"expected true or false, not {value!r}")
        return value

    def workers(self, key: str) -> int:
        value = self.doc.get(key, "auto")
        if value == "auto":
            from correlator.live.workers import default_count

            return default_count()
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_WORKERS:
            raise self.fail(key, f"expected auto or a whole number from 0 to {MAX_WORKERS}, not {value!r}")
        return value

    def count(self, key: str, default: int) -> int:
        value = self.doc.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise self.fail(key, f"expected a whole number >= 1, not {value!r}")
        return value

    def batch_max(self, key: str, batch: int) -> int | None:
        if self.doc.get(key) is None:
            return None
        value = self.count(key, batch)
        if value < batch:
            raise self.fail(key, f"must be at least batch ({batch}), not {value}")
        return value

    def duration(self, key: str, default: int, *, zero: bool = False) -> int:
        value = self.doc.get(key)
        if value is None:
            return default
        if zero and value in (0, "0"):
            return 0
        try:
            return parse_duration_ms(str(value))
        except TimeSpecError as exc:
            raise self.fail(key, str(exc)) from exc

    def tail_specs(self, key: str) -> tuple[TailSpec, ...]:
        value = self.doc.get(key)
        if value is None:
            return ()
        if not isinstance(value, list):
            raise self.fail(key, f"expected a list of {{path, format, server}}, not {value!r}")
        specs = []
        for index, item in enumerate(value):
            entry = {"path": item} if isinstance(item, str) else item
            if not isinstance(entry, Mapping) or set(entry) - {"path", "format", "server"} or "path" not in entry:
                raise self.fail(f"{key}[{index}]", f"expected a path or {{path, format, server}}, not {item!r}")
            try:
                specs.append(TailSpec(str(entry["path"]), entry.get("format"), entry.get("server")))
            except (ValueError, TypeError) as exc:
                raise self.fail(f"{key}[{index}]", str(exc)) from exc
        return tuple(specs)

    def syslog(self, key: str) -> Listen:
        """The syslog listeners: host, udp, tcp, and tls with cert, key and client_ca."""
        files = ("cert", "key", "client_ca")
        plain = self.listen(key, ("host", "udp", "tcp", "tls", *files), Listen(udp=5514, tcp=5514), skip=files)
        section = self.doc.get(key) or {}
        nested = _Reader(section, self.source)
        cert, tls_key, ca = (nested.path(name) for name in files)
        if plain.tls is None:
            if cert or tls_key or ca:
                raise self.fail(f"{key}.tls", "cert, key and client_ca are for a TLS port: give tls: 6514")
            return plain
        if cert is None or tls_key is None:
            raise self.fail(f"{key}.tls", "a TLS port needs cert and key (PEM files)")
        return Listen(plain.host, plain.udp, plain.tcp, plain.port, plain.tls, TlsFiles(cert, tls_key, ca))

    def listen(self, key: str, allowed: tuple[str, ...], default: Listen, skip: tuple[str, ...] = ()) -> Listen:
        value = self.doc.get(key)
        if value is None:
            return default
        if not isinstance(value, Mapping):
            raise self.fail(key, f"expected a mapping of {', '.join(allowed)}, not {value!r}")
        for name in value:
            if name not in allowed:
                raise self.fail(f"{key}.{name}", f"unknown setting (expected one of {', '.join(allowed)})")
        ports: dict[str, int | None] = {}
        for name in allowed:
            if name == "host" or name in skip:
                continue
            port = value.get(name, getattr(default, name))
            if port is not None and (not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535):
                raise self.fail(f"{key}.{name}", f"expected a port 0-65535 or null, not {port!r}")
            ports[name] = port
        host = value.get("host", default.host)
        if not isinstance(host, str) or not host:
            raise self.fail(f"{key}.host", f"expected an address, not {host!r}")
        return Listen(host=host, udp=ports.get("udp"), tcp=ports.get("tcp"), port=ports.get("port"),
                      tls=ports.get("tls"))
