"""Prometheus text exposition of the running engine's figures at `GET /metrics`, and `POST /-/reload` (reload
rules and configuration, as SIGHUP does): a small asyncio HTTP server, no dependency, loopback by default."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from correlator.live.runner import Runner

__all__ = ["QUANTILES_MAX_AGE_S", "MetricsServer", "render"]

# The latency quantiles sort their window: a scraper that asks more often gets ones at most this old.
QUANTILES_MAX_AGE_S: Final = 1.0


def _line(name: str, value: float | int, labels: dict[str, str] | None = None) -> str:
    if labels:
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        return f"socctl_{name}{{{inner}}} {value}"
    return f"socctl_{name} {value}"


def render(runner: Runner) -> str:
    """The exposition text: counters (`_total`) and gauges of the intake, the stages, the store and the
    correlation and suppression state."""
    c = runner.counters
    out: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples: list[str]) -> None:
        out.extend((f"# HELP socctl_{name} {help_text}", f"# TYPE socctl_{name} {kind}", *samples))

    metric("events_in_total", "counter", "Events received, by collector.",
           [_line("events_in_total", n, {"collector": k}) for k, n in sorted(c.events_in.items())]
           or [_line("events_in_total", 0, {"collector": "none"})])
    metric("rejected_total", "counter", "Messages that became dead letters, by collector.",
           [_line("rejected_total", n, {"collector": k}) for k, n in sorted(c.rejected.items())]
           or [_line("rejected_total", 0, {"collector": "none"})])
    metric("events_processed_total", "counter", "Events through detection.",
           [_line("events_processed_total", c.events_processed)])
    metric("events_stored_by_workers_total", "counter",
           "Events the detection workers stored themselves (SQLite; the engine stores the others).",
           [_line("events_stored_by_workers_total", c.events_stored_by_workers)])
    metric("events_out_total", "counter", "Events through detection, by collector.",
           [_line("events_out_total", n, {"collector": k}) for k, n in sorted(c.events_out.items())]
           or [_line("events_out_total", 0, {"collector": "none"})])
    metric("queue_depth", "gauge", "Events waiting between intake and detection.",
           [_line("queue_depth", runner.queue.qsize())])
    metric("queue_capacity", "gauge", "Size of the intake queue.", [_line("queue_capacity", runner.queue.maxsize)])
    metric("samples_expired_total", "counter", "Stored uploads deleted: not uploaded again for `uploads.keep`.",
           [_line("samples_expired_total", c.samples_expired)])
    metric("detection_workers", "gauge", "Detection worker processes (0: detection in the pipeline thread).",
           [_line("detection_workers", len(runner.workers) if runner.workers is not None else 0)])
    metric("detection_workers_replaced_total", "counter", "Detection workers that died and were forked again.",
           [_line("detection_workers_replaced_total", runner.workers.replaced if runner.workers is not None else 0)])
    metric("alerts_total", "counter", "New alerts (after suppression).", [_line("alerts_total", c.alerts)])
    metric("correlation_alerts_total", "counter", "Correlation alerts.",
           [_line("correlation_alerts_total", c.correlation_alerts)])
    metric("suppressed_total", "counter", "Alerts counted into an earlier alert.",
           [_line("suppressed_total", c.suppressed)])
    metric("excepted_total", "counter", "Alerts excepted by the allowlist.", [_line("excepted_total", c.excepted)])
    metric("cases_opened_total", "counter", "Cases opened.", [_line("cases_opened_total", c.cases_opened)])
    metric("cases_updated_total", "counter", "Cases changed by new alerts.",
           [_line("cases_updated_total", c.cases_updated)])
    metric("batch_seconds", "gauge", "Duration of the last detection batch.",
           [_line("batch_seconds", round(c.last_batch_seconds, 6))])
    latency = runner.latency
    metric("pipeline_latency_seconds", "summary",
           "Time from intake to the store (detection, correlation, cases included), over the latest events.",
           [*(_line("pipeline_latency_seconds", round(value, 6), {"quantile": str(q)})
              for q, value in latency.quantiles(max_age_s=QUANTILES_MAX_AGE_S).items()),
            _line("pipeline_latency_seconds_sum", round(latency.total, 6)),
            _line("pipeline_latency_seconds_count", latency.count)])
    metric("payloads_scanned_total", "counter", "Payloads (carved bodies, files) scanned with YARA.",
           [_line("payloads_scanned_total", c.payloads_scanned)])
    metric("payload_cache_hits_total", "counter", "Payloads answered from the YARA hit cache (same sha256).",
           [_line("payload_cache_hits_total", c.payload_cache_hits)])
    metric("yara_alerts_total", "counter", "YARA alerts on payloads.", [_line("yara_alerts_total", c.yara_alerts)])
    metric("rules_loaded", "gauge", "Sigma rules loaded.", [_line("rules_loaded", runner.components.rules)])
    metric("reloads_total", "counter", "Reloads of rules and configuration done.", [_line("reloads_total", c.reloads)])
    metric("reload_failures_total", "counter", "Reloads that failed (the running rules stayed).",
           [_line("reload_failures_total", c.reload_failures)])
    metric("store_pending", "gauge", "Documents waiting in the store's outage spool (store lag).",
           [_line("store_pending", runner.store.pending)])
    if runner.max_event_ms is not None:
        metric("event_time_lag_seconds", "gauge", "Wall clock minus the newest event time seen.",
               [_line("event_time_lag_seconds", round((runner.clock() - runner.max_event_ms) / 1000, 3))])
    if runner.syslog is not None:
        m = runner.syslog.metrics
        metric("syslog_udp_dropped_total", "counter", "UDP datagrams that found the intake queue full.",
               [_line("syslog_udp_dropped_total", m.udp_dropped)])
        metric("syslog_framing_errors_total", "counter", "Frames that broke the syslog framing.",
               [_line("syslog_framing_errors_total", m.framing_errors)])
        metric("syslog_open_connections", "gauge", "Open TCP/TLS connections.",
               [_line("syslog_open_connections", m.open_connections)])
    if runner.http is not None:
        for family in runner.http.metric_families():
            metric(family.name, family.kind, family.help,
                   [_line(family.name, value, {k: str(v) for k, v in labels.items()}) for labels, value in
                    family.samples])
    if runner.capture is not None:
        stats = runner.capture.stats
        for name, value, help_text in (
                ("capture_packets_total", stats.packets, "Packets read off the capture socket."),
                ("capture_dropped_total", stats.dropped, "Packets dropped: the capture's queue was full."),
                ("capture_kernel_dropped_total", stats.kernel_dropped,
                 "Packets the kernel dropped: the socket buffer was full."),
                ("capture_records_total", stats.records, "Flow, DNS, HTTP and TLS records made.")):
            metric(name, "counter", help_text, [_line(name, value)])
    analysis = runner.analysis_metrics
    correlation = analysis.get("correlation")
    if correlation:
        for key in ("live_keys", "live_windows", "held_events"):
            metric(f"correlation_{key}", "gauge", f"Correlation state: {key.replace('_', ' ')}.",
                   [_line(f"correlation_{key}", correlation[key])])
        for key in ("late_events", "evictions"):
            metric(f"correlation_{key}_total", "counter", f"Correlation: {key.replace('_', ' ')}.",
                   [_line(f"correlation_{key}_total", correlation[key])])
    suppression = analysis.get("suppression")
    if suppression:
        metric("suppression_representatives", "gauge", "Live suppression representatives.",
               [_line("suppression_representatives", suppression["representatives"])])
    return "\n".join(out) + "\n"


class MetricsServer:
    def __init__(self, runner: Runner, host: str, port: int) -> None:
        self.runner = runner
        self.host = host
        self.wanted = port
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.wanted)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), timeout=5)
            while (await asyncio.wait_for(reader.readline(), timeout=5)) not in (b"\r\n", b"\n", b""):
                pass
            parts = request.split()
            method, path = (parts[0], parts[1].split(b"?")[0]) if len(parts) >= 2 else (b"", b"")
            if method == b"GET" and path == b"/metrics":
                body, status, kind = render(self.runner).encode(), "200 OK", "text/plain; version=0.0.4"
            elif method == b"POST" and path == b"/-/reload":
                reloaded = await self.runner.reload()
                body = b"reloaded\n" if reloaded else b"reload failed: the running rules stay (see the log)\n"
                status, kind = ("200 OK" if reloaded else "500 Internal Server Error"), "text/plain"
            else:
                body, status, kind = b"not found: try GET /metrics or POST /-/reload\n", "404 Not Found", "text/plain"
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n"
                         "Connection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
