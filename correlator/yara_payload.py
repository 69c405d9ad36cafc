"""YARA on the content events carry: a carved HTTP response body, an uploaded or dropped file (`Event.payload`).

    payloads = PayloadScanner(compile_rules([Path("rules/yara")]), timeout_s=10)
    outcome = scan_payload(payloads.scanner(), event)  # list[Alert] ([] when clean) | Rejected, never raises

Each YARA hit becomes an alert linked to the event that carried the content: the event's id, time, host and
origin, and (as ECS fields of the alert document) what an analyst pivots on to find the flow and the
transaction: `network.community_id`, the addresses and ports, the URL, method, status and user agent, and the
content's `file.*` (the event's hash and size, which name the whole body even when only its first bytes were
carved). The rule and its matched strings with their offsets come as `correlator.yara_scan` gives them
(`rule.*`, `yara.matches`). A payload over the size limit, or a scan that times out or fails, is a `Rejected`
(stage ``scan``) naming the event, so it goes to the dead letters.

`PayloadScanner` is what a detection stage holds: the compiled rules and the scan settings. It builds a
`YaraScanner` per thread on first use (a yara-x scanner is not thread-safe), and again in a forked process; the
scanners of a process share one bounded hit cache, so identical content is scanned once. It pickles as the
serialised rules. Scan nothing in a process before forking workers from it: yara-x's timeout clock is a thread
started on the first scan, and a forked child does not inherit threads (its scans would never time out).
"""

from __future__ import annotations

import io
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator, MutableMapping
from typing import Any, Final

import yara_x

from correlator.model import Alert, Event, Rejected, nest
from correlator.yara_rules import YaraRuleSet
from correlator.yara_scan import YaraHit, YaraScanner

__all__ = ["DEFAULT_CACHE_ENTRIES", "DEFAULT_PAYLOAD_MAX_SIZE", "DEFAULT_PAYLOAD_TIMEOUT_S", "PIVOT_FIELDS", "HitCache",
           "PayloadScanner", "scan_payload"]

# Payloads are scanned inline, event after event: a tighter budget than `socctl scan`'s per file.
DEFAULT_PAYLOAD_TIMEOUT_S: Final = 10
DEFAULT_PAYLOAD_MAX_SIZE: Final = 16 << 20
DEFAULT_CACHE_ENTRIES: Final = 4096
# Fields of the carrying event copied into each alert (nested ECS), so the alert leads to the flow and the
# transaction. `event.*`, `host.*` and `log.*` are left out: the alert document has its own.
PIVOT_FIELDS: Final = (
    "network.community_id", "network.transport", "network.protocol", "source.ip", "source.port",
    "destination.ip", "destination.port", "destination.domain", "url.full", "url.original", "url.domain",
    "http.request.method", "http.response.status_code", "user_agent.original",
)
_FILE_FIELDS: Final = ("file.name", "file.path", "file.mime_type")


class HitCache(MutableMapping[str, tuple[YaraHit, ...]]):
    """The scan cache of a process: at most `max_entries` contents, the least recently used dropped first.
    Safe to share between threads."""

    def __init__(self, max_entries: int = DEFAULT_CACHE_ENTRIES) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[YaraHit, ...]] = OrderedDict()
        self._lock = threading.Lock()

    def __getitem__(self, key: str) -> tuple[YaraHit, ...]:
        with self._lock:
            value = self._entries[key]
            self._entries.move_to_end(key)
            return value

    def __setitem__(self, key: str, value: tuple[YaraHit, ...]) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def __delitem__(self, key: str) -> None:
        with self._lock:
            del self._entries[key]

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)


class PayloadScanner:
    """The YARA stage of detection: rules plus settings; `scanner()` gives this thread's `YaraScanner`."""

    def __init__(self, ruleset: YaraRuleSet, *, timeout_s: int = DEFAULT_PAYLOAD_TIMEOUT_S,
                 max_size: int = DEFAULT_PAYLOAD_MAX_SIZE, cache_entries: int = DEFAULT_CACHE_ENTRIES) -> None:
        if timeout_s < 1:
            raise ValueError(f"timeout_s must be at least 1 second, got {timeout_s}")
        if max_size < 0:
            raise ValueError(f"max_size must be >= 0, got {max_size}")
        if cache_entries < 1:
            raise ValueError(f"cache_entries must be at least 1, got {cache_entries}")
        self.ruleset = ruleset
        self.timeout_s = timeout_s
        self.max_size = max_size
        self.cache_entries = cache_entries
        self._reset()

    def _reset(self) -> None:
        self._pid = os.getpid()
        self._cache = HitCache(self.cache_entries)
        self._local = threading.local()
        self._lock = threading.Lock()

    @property
    def rule_count(self) -> int:
        return self.ruleset.rule_count

    @property
    def cache(self) -> HitCache:
        """This process's hit cache."""
        self._check_process()
        return self._cache

    def scanner(self) -> YaraScanner:
        """The scanner of the calling thread (built on first use), sharing the process's hit cache."""
        self._check_process()
        local = self._local
        scanner: YaraScanner | None = getattr(local, "scanner", None)
        if scanner is None:
            scanner = local.scanner = self.ruleset.scanner(timeout_s=self.timeout_s, max_size=self.max_size,
                                                           cache=self._cache)
        return scanner

    def _check_process(self) -> None:
        if self._pid != os.getpid():  # forked: scanners and cache of the parent stay behind
            with self._lock:
                if self._pid != os.getpid():
                    self._reset()

    def __getstate__(self) -> dict[str, Any]:
        buffer = io.BytesIO()
        self.ruleset.rules.serialize_into(buffer)
        ruleset = self.ruleset
        return {"rules": buffer.getvalue(), "files": ruleset.files, "namespaces": dict(ruleset.namespaces),
                "rule_count": ruleset.rule_count, "externals": ruleset.file_externals_used,
                "timeout_s": self.timeout_s, "max_size": self.max_size, "cache_entries": self.cache_entries}

    def __setstate__(self, state: dict[str, Any]) -> None:
        rules = yara_x.Rules.deserialize_from(io.BytesIO(state["rules"]))
        self.ruleset = YaraRuleSet(rules=rules, files=state["files"], namespaces=state["namespaces"], failures=(),
                                   rule_count=state["rule_count"], file_externals_used=state["externals"])
        self.timeout_s = state["timeout_s"]
        self.max_size = state["max_size"]
        self.cache_entries = state["cache_entries"]
        self._reset()

    def __repr__(self) -> str:
        return (f"PayloadScanner({self.ruleset.rule_count} rules, timeout_s={self.timeout_s}, "
                f"max_size={self.max_size}, cache_entries={self.cache_entries})")


def scan_payload(scanner: YaraScanner, event: Event) -> list[Alert] | Rejected:
    """The YARA alerts of the content `event` carries ([] when it carries none or nothing matches), or a
    `Rejected` (stage ``scan``, naming the event) when the content is over the scanner's size limit or the scan
    times out or fails."""
    payload = event.payload
    if payload is None:
        return []
    if len(payload) > scanner.max_size:
        scanner.stats.rejected += 1
        return _rejected(event, f"payload too large for YARA: event {event.id}: {len(payload)} bytes > limit "
                                f"{scanner.max_size}")
    outcome = scanner.scan_bytes(payload, path=_content_name(event), timestamp_ms=event.timestamp_ms)
    if isinstance(outcome, Rejected):
        return _rejected(event, f"{outcome.reason}: payload of event {event.id}")
    if not outcome:
        return []
    pivot = {name: value for name in PIVOT_FIELDS if (value := event.get(name)) is not None}
    return [_linked(alert, event, pivot, len(payload)) for alert in outcome]


def _rejected(event: Event, reason: str) -> Rejected:
    """A dead letter for the event's payload; the reason's first part (up to a colon) says why, without the
    event id, so that summaries can tally reasons."""
    return Rejected(reason, event.origin, raw=event.raw, stage="scan")


def _content_name(event: Event) -> str | None:
    """What the per-file externals (`filename`, `extension`, ...) see: the event's file path or name, else the
    URL path the content was served from."""
    for name in ("file.path", "file.name", "url.path"):
        value = event.get(name)
        if isinstance(value, str) and value.strip("/"):
            return value
    return None


def _linked(alert: Alert, event: Event, pivot: dict[str, Any], size: int) -> Alert:
    """A scanner alert re-anchored on the event that carried the content."""
    scanned = alert.extra.get("file", {})
    digest = scanned.get("hash", {}).get("sha256")
    content: dict[str, Any] = {
        "file.hash.sha256": event.get("file.hash.sha256") or digest,
        "file.size": event.get("file.size") if event.get("file.size") is not None else size,
    }
    content.update((name, value) for name in _FILE_FIELDS if (value := event.get(name)) is not None)
    yara = dict(alert.extra.get("yara", {}))
    if content["file.hash.sha256"] != digest:  # only the first bytes were carved: say what was scanned
        yara["scanned"] = {"bytes": size, "sha256": digest}
    extra = nest({**pivot, **content})
    extra["yara"] = yara
    return Alert(rule=alert.rule, event_id=event.id, timestamp_ms=event.timestamp_ms, host_name=event.host_name,
                 origin=event.origin, matched=dict(alert.matched), extra=extra)
