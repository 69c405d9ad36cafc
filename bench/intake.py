"""Live intake throughput and latency (a benchmark that prints figures; not a test).

Starts `socctl run` as a subprocess (embedded SQLite store in a temporary directory, events stored, the
repository's rules plus, when present, the SigmaHQ rules of ../shared/data/sigma/rules: the full rule set) and
sends it Linux auth syslog over TCP (octet-counting, RFC 3164) from a separate sender process:

1. saturation: every message as fast as the engine takes them (TCP backpressure); events/s from the first byte to
   the last event processed, the highest queue depth seen, and p50/p99 intake->store latency (from the engine's
   `socctl_pipeline_latency_seconds` summary);
2. paced: messages at a fixed rate (the issue's target, 20,000/s, by default) for --seconds; the rate the engine
   kept up with and its p50/p99 latency, which at a rate it sustains is the time an event spends in the
   pipeline rather than in a full queue;
3. baseline, same run: the sender into a plain TCP sink that only counts bytes (what the sender and loopback
   allow), so the engine's figure is read against what could reach it.

Then the network sensor: packets/s of `collectors.pcap.read_file` over a capture written with scapy (HTTP,
DNS, scans), against scapy's raw pcap reader over the same file.

    python bench/intake.py [--events 200000] [--rate 20000] [--seconds 10] [--no-sigmahq] [--batch 2000] [--batch-max N]
                           [--no-store-events] [--no-pcap] [--routine] [--workers N [N ...]]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

# Addresses given: without them scapy resolves the MAC with ARP on the real interface (traffic off loopback).
MAC = {"src": "02:00:00:00:00:01", "dst": "02:00:00:00:00:02"}

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SIGMAHQ = ROOT.parent / "shared" / "data" / "sigma" / "rules"

_MESSAGES = (
    "sshd[{pid}]: Failed password for invalid user admin{n} from 203.0.113.{a} port {port} ssh2",
    "sshd[{pid}]: Accepted publickey for deploy from 10.20.{a}.{b} port {port} ssh2: RSA SHA256:abc{n}",
    "sudo[{pid}]:   alice : TTY=pts/{b} ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/systemctl restart app{n}",
    "CRON[{pid}]: (root) CMD (/usr/local/bin/backup.sh {n})",
    "sshd[{pid}]: pam_unix(sshd:session): session opened for user deploy{b}(uid=1001) by (uid=0)",
    "systemd[1]: Started Session {n} of User deploy.",
    "sshd[{pid}]: Connection closed by authenticating user root 198.51.100.{a} port {port} [preauth]",
    "useradd[{pid}]: new user: name=svc{n}, UID={uid}, GID={uid}, home=/home/svc{n}, shell=/bin/bash",
)


_ROUTINE = (1, 2, 3, 4, 5)  # accepted logins, sudo, cron, PAM sessions, systemd: what a quiet day is made of


def messages(count: int, offset: int = 0, *, routine: bool = False) -> list[bytes]:
    """`count` distinct octet-counted RFC 3164 frames (distinct text: each is its own event id); `routine`: only
    the everyday kinds (no failed logins, no new accounts)."""
    kinds = [_MESSAGES[k] for k in _ROUTINE] if routine else list(_MESSAGES)
    out = []
    for i in range(offset, offset + count):
        text = kinds[i % len(kinds)].format(pid=1000 + i % 30000, n=i, a=i % 250, b=(i // 250) % 250,
                                                    port=1024 + i % 60000, uid=2000 + i % 50000)
        frame = f"<38>Nov 24 0{i // 3_600_000 % 10}:{i // 60_000 % 60:02d}:{i // 1000 % 60:02d} " \
                f"host{i % 41:02d} {text}".encode()
        out.append(f"{len(frame)} ".encode() + frame)
    return out


def _send(port: int, frames: list[bytes], rate: float | None, started: Any) -> None:
    """Sender process: everything as fast as possible, or `rate` frames/s in 10 ms slices."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        begin = time.perf_counter()
        started.value = time.time()
        if rate is None:
            step = 2000
            for i in range(0, len(frames), step):
                sock.sendall(b"".join(frames[i:i + step]))
            return
        per_slice = rate / 100
        sent = 0
        while sent < len(frames):
            due = min(len(frames), int((time.perf_counter() - begin) * rate) + int(per_slice))
            if due > sent:
                sock.sendall(b"".join(frames[sent:due]))
                sent = due
            time.sleep(0.005)


def _metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        text = response.read().decode()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line and not line.startswith("#")}


class Engine:
    def __init__(self, workdir: Path, rules: list[Path], batch: int, queue: int, store_events: bool,
                 workers: int | str = 0, batch_max: int | None = None) -> None:
        self.workdir = workdir
        config = workdir / "run.yml"
        config.write_text(json.dumps({
            "store": f"sqlite:///{workdir / 'socctl.db'}", "state_dir": str(workdir / "state"),
            "rules": [str(path) for path in rules], "syslog": {"host": "127.0.0.1", "udp": None, "tcp": 0},
            "metrics": {"host": "127.0.0.1", "port": 0}, "http": {"host": "127.0.0.1", "port": None},
            "batch": batch, "batch_max": batch_max, "queue": queue, "batch_wait": "50ms", "store_events": store_events,
            "workers": workers}), encoding="utf-8")
        ports_file = workdir / "ports.json"
        started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "correlator.cli", "run", "--config", str(config), "--no-replay", "--ports-file",
             str(ports_file)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=(workdir / "run.log").open("wb"))
        while not ports_file.exists():
            if self.process.poll() is not None:
                raise SystemExit(f"socctl run failed: {(workdir / 'run.log').read_text()[-2000:]}")
            time.sleep(0.05)
        self.start_seconds = time.perf_counter() - started
        self.ports = json.loads(ports_file.read_text())

    def metrics(self) -> dict[str, float]:
        return _metrics(self.ports["metrics"])

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=300)

    def cpu_seconds(self) -> tuple[float, float]:
        """CPU time used so far (user + system) by the engine's own process and by its detection workers."""
        return _cpu(self.process.pid), sum(_cpu(pid) for pid in _children(self.process.pid))


def _cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _thread_cpu(pids: list[int]) -> dict[str, float]:
    """CPU seconds so far per thread name (the engine names its threads: `correlator/live/thread_names.py`),
    threads of one name summed."""
    out: dict[str, float] = {}
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                name = (task / "comm").read_text().strip()
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            name = name if name.startswith("socctl") else "main" if task.name == str(pid) else "other"
            out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def _machine_busy() -> float:
    """CPU seconds the whole machine has been busy (not idle, not waiting for I/O), from /proc/stat."""
    try:
        ticks = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    except (OSError, ValueError, IndexError):
        return float("nan")
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _threads_line(before: dict[str, float], after: dict[str, float], seconds: float, events: int,
                  machine: float) -> str:
    """`name share-of-a-core (µs per event)` per thread name, the busiest first; then the machine's busy share
    and what of it was outside the engine (the sender, the kernel's loopback TCP, anything else)."""
    spent = {name: after[name] - before.get(name, 0.0) for name in after}
    busy = sorted(((cpu, name) for name, cpu in spent.items() if cpu > 0.01), reverse=True)
    threads = ", ".join(f"{name} {cpu / seconds:.0%} ({cpu / events * 1e6:,.0f} µs)" for cpu, name in busy)
    outside = machine - sum(spent.values())
    return (f"{threads}; machine {machine / seconds:.0%} busy of {os.cpu_count()} cores, outside the engine "
            f"{outside / seconds:.0%} ({outside / events * 1e6:,.0f} µs)")


def _run_phase(engine: Engine, frames: list[bytes], rate: float | None) -> dict[str, Any]:
    started = mp.Value("d", 0.0)
    sender = mp.Process(target=_send, args=(engine.ports["tcp"], frames, rate, started))
    sender.start()
    total, depth = len(frames), 0.0
    done_at = None
    cpu_before = engine.cpu_seconds()
    pids = [engine.process.pid, *_children(engine.process.pid)]
    threads_before = _thread_cpu(pids)
    machine_before = _machine_busy()
    while True:
        figures = engine.metrics()
        depth = max(depth, figures.get("socctl_queue_depth", 0))
        if figures.get("socctl_events_processed_total", 0) >= total:
            done_at = time.time()
            break
        if not sender.is_alive() and sender.exitcode not in (0, None):
            raise SystemExit(f"sender failed with {sender.exitcode}")
        time.sleep(0.1)
    sender.join()
    cpu_after = engine.cpu_seconds()
    threads_after = _thread_cpu(pids)
    machine = _machine_busy() - machine_before
    # The latency quantiles of /metrics may be a second old: read them once they are not. The alerts stay as at
    # the end of the phase (a quiet second closes correlation windows, which adds alerts).
    time.sleep(1.1)
    latency = engine.metrics()
    seconds = done_at - started.value
    return {"events": total, "seconds": seconds, "rate": total / seconds, "max_queue": depth,
            "engine_us": (cpu_after[0] - cpu_before[0]) / total * 1e6,
            "workers_us": (cpu_after[1] - cpu_before[1]) / total * 1e6,
            "p50": latency.get('socctl_pipeline_latency_seconds{quantile="0.5"}', float("nan")),
            "p99": latency.get('socctl_pipeline_latency_seconds{quantile="0.99"}', float("nan")),
            "alerts": figures.get("socctl_alerts_total", 0),
            "threads": _threads_line(threads_before, threads_after, seconds, total, machine)}


def _baseline(frames: list[bytes]) -> float:
    """Frames/s from the sender into a sink that only reads."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    received = 0
    expected = sum(len(frame) for frame in frames)

    def drain() -> None:
        nonlocal received
        conn, _ = server.accept()
        with conn:
            while received < expected:
                chunk = conn.recv(1 << 20)
                if not chunk:
                    break
                received += len(chunk)

    reader = threading.Thread(target=drain)
    reader.start()
    started = mp.Value("d", 0.0)
    begin = time.time()
    sender = mp.Process(target=_send, args=(port, frames, None, started))
    sender.start()
    sender.join()
    reader.join()
    server.close()
    return len(frames) / (time.time() - max(begin, started.value))


def _pcap_figures(workdir: Path) -> tuple[int, float, float]:
    from scapy.all import DNS, DNSQR, IP, TCP, UDP, Ether, PcapWriter, Raw, RawPcapReader  # type: ignore[attr-defined]

    from collectors.pcap import read_file

    path = workdir / "sensor.pcap"
    packets = 0
    with PcapWriter(str(path), sync=False) as writer:
        t = 1_700_000_000.0
        for flow in range(3000):
            client, port = f"10.0.{flow // 250}.{flow % 250 + 1}", 30000 + flow
            seq = 1000
            for flags, payload in (("S", b""), ("A", b""),
                                   ("PA", f"GET /p/{flow} HTTP/1.1\r\nHost: example.org\r\n\r\n".encode())):
                pkt = Ether(**MAC) / IP(src=client, dst="192.0.2.10") / TCP(sport=port, dport=80, flags=flags, seq=seq)
                pkt = pkt / Raw(payload) if payload else pkt
                pkt.time = t
                writer.write(pkt)
                seq += len(payload) or (1 if flags == "S" else 0)
                t += 0.0001
                packets += 1
            body = b"x" * 512
            reply = (Ether(**MAC) / IP(src="192.0.2.10", dst=client) / TCP(sport=80, dport=port, flags="PA", ack=seq)
                     / Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 512\r\n\r\n" + body))
            reply.time = t
            writer.write(reply)
            dns = Ether(**MAC) / IP(src=client, dst="192.0.2.53") / UDP(sport=port, dport=53) / DNS(
                rd=1, qd=DNSQR(qname=f"h{flow}.example.org"))
            dns.time = t
            writer.write(dns)
            packets += 2
    started = time.perf_counter()
    raw = sum(1 for _ in RawPcapReader(str(path)))
    raw_rate = raw / (time.perf_counter() - started)
    started = time.perf_counter()
    events = sum(1 for _ in read_file(path))
    sensor_rate = packets / (time.perf_counter() - started)
    return events, sensor_rate, raw_rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=20_000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--batch-max", type=int, default=None,
                        help="Largest batch when a backlog waits (`batch_max`; default the engine's: 4 x batch).")
    parser.add_argument("--queue", type=int, default=20_000)
    parser.add_argument("--no-sigmahq", action="store_true", help="Only the repository's rules.")
    parser.add_argument("--no-pcap", action="store_true")
    parser.add_argument("--routine", action="store_true",
                        help="Only everyday messages (no failed logins or new accounts): few alerts.")
    parser.add_argument("--no-store-events", action="store_true",
                        help="Store alerts, cases and dead letters but not every event.")
    parser.add_argument("--workers", nargs="+", default=["0"], metavar="N",
                        help="Detection worker processes (`workers:`; a number or auto). Several values: one "
                             "saturation run each, in the same run; the paced run uses the last.")
    args = parser.parse_args()
    workers = [value if value == "auto" else int(value) for value in args.workers]
    rules = [] if args.no_sigmahq or not SIGMAHQ.is_dir() else [SIGMAHQ]
    print(f"rules: repository{' + SigmaHQ ' + str(SIGMAHQ) if rules else ''}; events "
          f"{'not ' if args.no_store_events else ''}stored; cpus {os.cpu_count()}; load {os.getloadavg()[0]:.2f}")
    saturation_frames = messages(args.events, routine=args.routine)
    paced_frames = messages(int(args.rate * args.seconds), offset=args.events, routine=args.routine)
    with tempfile.TemporaryDirectory(prefix="socctl-bench-intake-") as tmp:
        base = _baseline(saturation_frames)
        print(f"baseline: sender -> byte-counting TCP sink: {base:,.0f} frames/s")
        phases: list[tuple[str, list[bytes], float | None, int | str]] = [
            (f"saturation, workers {count}", saturation_frames, None, count) for count in workers]
        phases.append((f"paced {args.rate:,.0f}/s, workers {workers[-1]}", paced_frames, args.rate, workers[-1]))
        for index, (name, frames, rate, count) in enumerate(phases):
            workdir = Path(tmp) / f"phase{index}"
            workdir.mkdir()
            engine = Engine(workdir, rules, args.batch, args.queue, not args.no_store_events, count, args.batch_max)
            try:
                figures = _run_phase(engine, frames, rate)
            finally:
                engine.stop()
            print(f"{name}: {figures['events']:,.0f} events in {figures['seconds']:.2f}s = {figures['rate']:,.0f} "
                  f"events/s ({figures['rate'] / base:.1%} of baseline); max queue {figures['max_queue']:,.0f}; "
                  f"latency p50 {figures['p50'] * 1000:,.0f} ms, p99 {figures['p99'] * 1000:,.0f} ms; "
                  f"{figures['alerts']:,.0f} alerts; engine start {engine.start_seconds:.1f}s; CPU per event: "
                  f"engine {figures['engine_us']:,.0f} µs, workers {figures['workers_us']:,.0f} µs\n"
                  f"  threads (share of a core, CPU per event): {figures['threads']}")
        if not args.no_pcap:
            events, sensor_rate, raw_rate = _pcap_figures(Path(tmp))
            print(f"sensor: pcap -> {events:,} ECS events at {sensor_rate:,.0f} packets/s; scapy raw reader "
                  f"{raw_rate:,.0f} packets/s (sensor = {sensor_rate / raw_rate:.1%} of raw)")


if __name__ == "__main__":
    main()
