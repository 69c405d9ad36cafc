"""`socctl run` as the network sensor: a live capture on the loopback interface sees an HTTP download whose body a
YARA rule matches (alert linked to the http event and its flow), and a pcap replayed at start (written here with
scapy: a DNS query for a listed C2 domain) gives the same kind of events as `socctl ingest` would."""

from __future__ import annotations

import http.server
import threading
import urllib.request
from pathlib import Path

from scapy.all import DNS, DNSQR, IP, UDP, Ether, wrpcap  # type: ignore[attr-defined]

from correlator.store.config import open_store
from tests.cli.test_run_cmd import _metrics, _start, _stop, _wait_for
from tests.collectors.test_pcap_live import can_capture  # noqa: F401 - the fixture

CONFIG = """
store: sqlite:///{db}
state_dir: {state}
syslog: {{host: 127.0.0.1, udp: null, tcp: null}}
metrics: {{host: 127.0.0.1, port: 0}}
http: {{host: 127.0.0.1, port: null}}
capture: {{interface: lo, bpf: "tcp port {port}", idle_timeout: 2s}}
yara: {{rules: [{yara}]}}
replay: [{replay}]
intel: [{intel}]
batch_wait: 50ms
"""

RULE = """
rule Province_Test_Dropper {
    meta:
        severity = "high"
    strings:
        $a = "province-dropper-marker-8812"
    condition:
        $a
}
"""

BODY = b"MZ\x90\x00 stage two province-dropper-marker-8812 " + b"\x00" * 200


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args: object) -> None:
        pass


def test_live_capture_and_a_replayed_pcap(tmp_path: Path, can_capture: None) -> None:  # noqa: F811
    db, state, yara = tmp_path / "socctl.db", tmp_path / "state", tmp_path / "yara"
    yara.mkdir()
    (yara / "dropper.yar").write_text(RULE, encoding="utf-8")
    (tmp_path / "iocs.txt").write_text("c2-live.evil.test\n", encoding="utf-8")
    dns = (Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="10.1.1.5", dst="10.1.1.53")
           / UDP(sport=53001, dport=53) / DNS(rd=1, qd=DNSQR(qname="c2-live.evil.test")))
    dns.time = 1_763_600_000.0
    wrpcap(str(tmp_path / "dns.pcap"), [dns])
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    (tmp_path / "run.yml").write_text(CONFIG.format(db=db, state=state, port=port, yara=yara,
                                                    replay=tmp_path / "dns.pcap", intel=tmp_path / "iocs.txt"),
                                      encoding="utf-8")
    process, ports = _start(tmp_path, replay=True)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/download/update.exe", timeout=10) as response:
            assert response.read() == BODY
        _wait_for(lambda: _metrics(ports["metrics"]).get("socctl_alerts_total", 0) >= 2, timeout=60)
        figures = _metrics(ports["metrics"])
        assert figures["socctl_capture_packets_total"] >= 6
        assert figures["socctl_capture_dropped_total"] == 0
    finally:
        _stop(process)
        server.shutdown()
    with open_store(f"sqlite:///{db}") as store:
        alerts = store.search("alerts", "", limit=20).hits
        events = {hit["event"]["id"]: hit for hit in store.search("events", "", limit=50).hits}
    yara_alerts = [a for a in alerts if a["rule"].get("kind") == "yara" or "Dropper" in a["rule"]["title"]]
    assert len(yara_alerts) == 1, alerts
    [hit] = yara_alerts
    http_event = events[hit["event"]["id"]]
    assert http_event["url"]["original"] == "/download/update.exe"
    assert http_event["log"]["file"]["path"] == "capture://lo"
    assert hit["network"]["community_id"] == http_event["network"]["community_id"]
    flows = [e for e in events.values() if e.get("network", {}).get("community_id") == http_event["network"][
        "community_id"] and e["event"].get("dataset") != http_event["event"].get("dataset")]
    assert flows, "the flow event of the download"
    replayed = [e for e in events.values() if e.get("dns", {}).get("question", {}).get("name") == "c2-live.evil.test"]
    assert len(replayed) == 1
    assert any(a["event"]["id"] == replayed[0]["event"]["id"] for a in alerts)  # the C2 domain's intel alert
