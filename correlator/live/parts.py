"""What a `socctl run` runner holds: the components that process events (replaced as a whole on reload), how a
reload builds new ones, and the counters the metrics report."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from correlator.analysis import Analyzer
from correlator.pipeline import Detection
from correlator.runtime import Runtime
from correlator.sink import AlertSink

if TYPE_CHECKING:
    from correlator.live.detect import Detected

__all__ = ["Components", "Counters", "Reloader"]


@dataclass
class Components:
    """What processes events; replaced as a whole on reload."""

    runtime: Runtime
    detection: Detection
    analyzer: Analyzer
    sink: AlertSink
    warnings: list[str]
    rules: int


# Reload in two steps: read what the store holds (in the pipeline thread), then load files (in another thread),
# which returns the function that assembles the components (in the pipeline thread).
Reloader = tuple[Callable[[], Any], Callable[[Any], Callable[[], Components]]]


@dataclass
class Counters:
    events_in: Counter[str] = field(default_factory=Counter)  # by collector
    rejected: Counter[str] = field(default_factory=Counter)  # by collector
    events_out: Counter[str] = field(default_factory=Counter)  # events through detection, by collector
    events_processed: int = 0
    events_stored_by_workers: int = 0  # of those, stored by the detection workers themselves
    alerts: int = 0
    correlation_alerts: int = 0
    suppressed: int = 0
    excepted: int = 0
    cases_opened: int = 0
    cases_updated: int = 0
    batches: int = 0
    last_batch_seconds: float = 0.0
    store_errors: int = 0
    payloads_scanned: int = 0
    payload_cache_hits: int = 0
    yara_alerts: int = 0
    reloads: int = 0
    reload_failures: int = 0
    samples_expired: int = 0  # stored uploads deleted by the sample store's expiry

    def count_stored(self, detected: Detected) -> None:
        """A batch's events, dead letters and payloads, once the batch is stored."""
        result = detected.result
        self.rejected.update(detected.rejected)
        self.events_out.update(detected.events)
        self.events_processed += result.events
        self.events_stored_by_workers += detected.stored
        self.payloads_scanned += result.payloads
        self.payload_cache_hits += result.payload_cache_hits
        self.yara_alerts += result.yara_alerts
        self.excepted += sum(result.excepted.values())
        self.batches += 1
