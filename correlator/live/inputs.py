"""The collectors of the running engine, started by `Runner.serve`: each takes what its source gives, hands it to
the intake queue (`Runner.put`, or `Runner.put_many` for what comes in chunks: both wait while the queue is full)
and acknowledges only through `Runner.barrier` (what was handed on before it is stored)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from correlator.model import Event, Rejected

if TYPE_CHECKING:
    import ssl

    from correlator.live.config import TlsFiles
    from correlator.live.runner import Runner

__all__ = ["make_capture", "replay", "run_capture", "samples", "start_http", "syslog_tls_context", "tail", "watch"]

log = logging.getLogger(__name__)

Item = Event | Rejected
_CHUNK = 1_000  # items read off the loop at a time: a large file does not sit in memory whole


def _take(items: Iterator[Item], count: int) -> list[Item]:
    return list(itertools.islice(items, count))


async def replay(runner: Runner, paths: tuple[Path, ...]) -> None:
    from collectors.files import iter_files, read_path

    loop = asyncio.get_running_loop()
    for path in iter_files(paths):
        items = read_path(path, tz=ZoneInfo(runner.config.timezone))
        while True:  # read in chunks off the loop: a large file does not sit in memory whole
            chunk: list[Item] = await loop.run_in_executor(None, _take, items, _CHUNK)
            await runner.put_many("replay", chunk)
            if len(chunk) < _CHUNK:
                break
    await runner.barrier()  # all of it stored: say what came of it
    c = runner.counters
    log.info("replay of %s done: %d events, %d alerts, %d cases opened, %d updated (socctl cases list)",
             ", ".join(str(path) for path in paths), c.events_in["replay"], c.alerts, c.cases_opened,
             c.cases_updated)


async def start_http(runner: Runner, collector: Callable[[str, Callable[[asyncio.Event], Any]], None]) -> Any:
    """The HTTP intake (when configured): batches are journaled before the agent gets its 200, then a consumer
    hands them to the intake queue and commits them once stored. Returns the journal (None when off)."""
    listen = runner.config.http
    if listen.port is None:
        return None
    from collectors.http_intake import HttpIntakeServer
    from collectors.intake_journal import IntakeConsumer, IntakeJournal
    from correlator.live.agents import load_agent_tokens

    tokens, runner.http_tokens_file = load_agent_tokens(runner.config.http_tokens, runner.config.state_dir)
    journal = IntakeJournal(runner.config.state_dir / "http-intake")

    async def sink(item: Item) -> None:
        await runner.put("http", item)

    async def bulk(items: list[Item]) -> None:  # a journaled batch (an agent's request) as one queue entry
        await runner.put_many("http", items)

    consumer = IntakeConsumer(journal, sink, barrier=runner.barrier, bulk_sink=bulk)
    uploads = runner.config.uploads
    runner.http = HttpIntakeServer(journal, tokens, host=listen.host, port=listen.port, on_journaled=consumer.wake,
                                 samples_dir=runner.config.state_dir / "samples" if uploads.enabled else None,
                                 max_file_bytes=uploads.max_bytes,
                                 timezone=None if runner.config.timezone == "UTC" else runner.config.timezone)
    await runner.http.start()
    collector("http", consumer.run)
    if runner.http.uploads is not None:
        from collectors.upload_queue import UploadConsumer

        async def upload_sink(item: Item) -> None:
            await runner.put("upload", item)

        receiver = UploadConsumer(runner.http.uploads, upload_sink, barrier=runner.barrier)
        runner.http.on_uploaded = receiver.wake
        collector("upload", receiver.run)
        if uploads.keep_ms is not None:
            collector("sample-expiry", lambda stop: expire_samples(runner, uploads.keep_ms or 0, stop))
    return journal


SAMPLE_SWEEP_S = 3600.0


async def expire_samples(runner: Runner, keep_ms: int, stop: asyncio.Event, every_s: float = SAMPLE_SWEEP_S) -> None:
    """Delete stored uploads not uploaded again for `keep_ms`, now and every `every_s` until `stop`."""
    inbox = runner.http.uploads
    while True:
        cutoff = runner.clock() / 1000 - keep_ms / 1000
        files, size = await asyncio.to_thread(inbox.expire, cutoff)
        runner.counters.samples_expired += files
        if files:
            log.info("sample store: %d stored uploads (%d bytes) not uploaded again for %d days deleted", files,
                     size, keep_ms // 86_400_000)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every_s)
        if stop.is_set():
            return


def make_capture(runner: Runner) -> Any:
    """The live capture of the configuration (validated here: an unknown interface or a bad BPF filter
    stops the start with its reason)."""
    from collectors.pcap_live import LiveCapture
    from collectors.pcap_sensor import SensorConfig

    capture = runner.config.capture
    assert capture.interface is not None
    options: dict[str, Any] = {"idle_timeout_s": capture.idle_timeout_ms / 1000,
                               "carve_bodies": capture.carve and runner.components.detection.yara is not None}
    if capture.internal_networks is not None:
        options["internal_networks"] = capture.internal_networks
    return LiveCapture(capture.interface, capture.bpf, SensorConfig(**options))


async def run_capture(runner: Runner, stop: asyncio.Event) -> None:
    async def sink(item: Item) -> None:
        await runner.put("capture", item)

    await runner.capture.run(stop, sink)


async def watch(runner: Runner, stop: asyncio.Event) -> None:
    """The drop directories: each complete new file read once, in chunks off the loop, and recorded (in
    `<state_dir>/watch-registry.json`) only once all of it is stored."""
    from collectors.files import read_path
    from collectors.tail_state import Registry
    from collectors.tail_watch import DirectoryWatch, DroppedFile

    registry = Registry.load(runner.config.state_dir / "watch-registry.json")
    loop = asyncio.get_running_loop()

    def sink_for(fmt: str | None) -> Callable[[DroppedFile], Any]:
        async def sink(dropped: DroppedFile) -> None:
            items = read_path(dropped.path, fmt, tz=ZoneInfo(runner.config.timezone))
            while chunk := await loop.run_in_executor(None, _take, items, _CHUNK):
                await runner.put_many("watch", chunk)
            await runner.barrier()

        return sink

    watches = [DirectoryWatch(spec.path, spec.pattern, sink_for(spec.format), registry,
                              poll_interval=runner.config.tail_poll_ms / 1000 * 4)
               for spec in runner.config.watch]
    await asyncio.gather(*(watch.run(stop) for watch in watches))


async def samples(runner: Runner, stop: asyncio.Event) -> None:
    """Watch the sample directories: each new file once, as an event carrying its bytes (scanned with YARA)."""
    from collectors.samples import SampleWatch

    samples = runner.config.samples

    async def sink(item: Item) -> None:
        await runner.put("samples", item)

    watch = SampleWatch(samples.paths, runner.config.state_dir / "samples-registry.json",
                        max_bytes=samples.max_bytes, poll_interval=samples.poll_ms / 1000, barrier=runner.barrier)
    await watch.run(stop, sink)


async def tail(runner: Runner, stop: asyncio.Event) -> None:
    """Follow the configured files: each new line is decoded in its file's format and queued; offsets are
    kept in `<state_dir>/tail-registry.json`."""
    from collectors.tail import Tailer
    from collectors.tail_format import TailFormats
    from collectors.tail_lines import FileOrigin
    from collectors.tail_state import Registry

    formats = TailFormats(runner.config.tail, tz=ZoneInfo(runner.config.timezone))

    async def put_all(items: list[Item]) -> None:
        await runner.put_many("tail", items)

    async def sink(line: bytes, origin: FileOrigin) -> None:
        await put_all(formats.decode_all(line, origin))

    class Holds:
        """Audit logs' events assembled across lines (`TailFormats.held`/`expire`/`release`)."""

        def held(self, device: int, inode: int) -> tuple[int, int] | None:
            return formats.held(device, inode)

        async def tick(self) -> bool:
            due = formats.expire()
            await put_all(due)
            return bool(due)

        async def release(self, device: int, inode: int) -> None:
            await put_all(formats.release(device, inode))

    registry = Registry.load(runner.config.state_dir / "tail-registry.json")
    tailer = Tailer([spec.path for spec in runner.config.tail], sink, registry,
                    poll_interval=runner.config.tail_poll_ms / 1000, barrier=runner.barrier, holds=Holds())
    try:
        await tailer.run(stop)
    finally:
        tailer.close()


def syslog_tls_context(files: TlsFiles) -> ssl.SSLContext:
    """The server context of the syslog TLS listener (TLS 1.2 at least; client certificates required when a
    client CA is given). A file that cannot be loaded is a `RunConfigError` naming it."""
    import ssl

    from correlator.live.config import RunConfigError

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(files.cert, files.key)
    except (OSError, ssl.SSLError) as exc:
        raise RunConfigError(f"cannot load the syslog TLS certificate and key: {exc}", source=str(files.cert),
                             key="syslog.cert") from None
    if files.client_ca is not None:
        try:
            context.load_verify_locations(cafile=files.client_ca)
        except (OSError, ssl.SSLError) as exc:
            raise RunConfigError(f"cannot load the client CA: {exc}", source=str(files.client_ca),
                                 key="syslog.client_ca") from None
        context.verify_mode = ssl.CERT_REQUIRED
    return context
