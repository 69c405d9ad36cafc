"""`socctl ingest` with YARA on carved HTTP bodies, end to end: captures written with scapy (HTTP downloads over
TCP between made-up addresses), YARA and Sigma rules written inline. A hit is one alert linked to the http event
(same event id, Community ID and URL) beside the Sigma alert and the flow events; a clean body gives none; a
scan that times out is a dead letter naming the event; identical bodies are scanned once; worker processes give
the same alerts as one process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from correlator.cli import app
from correlator.store.config import open_store
from tests.collectors.test_pcap import Capture, TcpConnection

MARKER = b"SOCCTL-TEST-STAGE2-7f3a"
MARKER_RULE = f"""
rule Stage2_Loader_Marker : loader
{{
    meta:
        description = "a stage-2 loader's marker string"
        severity = "high"
    strings:
        $m = "{MARKER.decode()}"
    condition:
        $m
}}
"""
SLOW_RULE = """
rule Slow {
    condition:
        for all i in (0..filesize) : ( for all j in (0..filesize) : ( uint8(i) != 0x1FF ) )
}
"""
BROKEN_RULE = "rule Broken { strings: $a = \"x\" condition: $b }\n"
SIGMA_RULE = """title: Download from the dl path
id: 6a1d2c3b-4e5f-4a6b-8c7d-9e0f1a2b3c4d
level: low
logsource:
  category: proxy
detection:
  sel:
    url.original|startswith: '/dl/'
  condition: sel
"""
SERVER = ("203.0.113.80", 80)
BODY = b"MZ\x90\x00" + bytes(300) + MARKER + b"\xcc" * 700


def download(capture: Capture, client: tuple[str, int], body: bytes, target: str = "/dl/stage2.bin") -> None:
    """A GET and its 200 response (Content-Length framed), the body over 1000-byte segments."""
    tcp = TcpConnection(capture, client, SERVER)
    tcp.handshake()
    tcp.send(True, f"GET {target} HTTP/1.1\r\nHost: files.example.test\r\nUser-Agent: loader/1.0\r\n\r\n".encode())
    tcp.send(False, b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
             + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    tcp.close()


def write_capture(path: Path, *downloads: tuple[tuple[str, int], bytes]) -> Path:
    capture = Capture()
    for client, body in downloads:
        download(capture, client, body)
    return capture.write(path)


Rules = Callable[..., list[str]]


@pytest.fixture
def rules(tmp_path: Path) -> Rules:
    """`rules(name=yara_text, ...)`: the options for the inline Sigma rule and these YARA rule files."""

    def write(**yara: str) -> list[str]:
        sigma, folder = tmp_path / "sigma", tmp_path / "yara"
        sigma.mkdir(exist_ok=True)
        (sigma / "proxy.yml").write_text(SIGMA_RULE, encoding="utf-8")
        folder.mkdir(exist_ok=True)
        for name, text in yara.items():
            (folder / f"{name}.yar").write_text(text, encoding="utf-8")
        return ["--no-default-rules", "--rules", str(sigma), "--yara-rules", str(folder), "--no-cache"]

    return write


def ingest(tmp_path: Path, inputs: list[Path], options: list[str], *extra: str,
           name: str = "run") -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any], str]:
    """Alerts, events, the summary document and the console output of one `socctl ingest` run."""
    alerts, events, summary = (tmp_path / f"{name}-{kind}" for kind in ("alerts.jsonl", "events.jsonl", "s.json"))
    result = CliRunner().invoke(app, [
        "ingest", *map(str, inputs), *options, "--alerts-out", str(alerts), "--events-out", str(events),
        "--summary-json", str(summary), "--quiet", *(extra or ("--no-store", "--workers", "1"))],
        env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return ([orjson.loads(line) for line in alerts.read_bytes().splitlines()],
            [orjson.loads(line) for line in events.read_bytes().splitlines()],
            orjson.loads(summary.read_bytes()), result.output)


def of_kind(alerts: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [alert for alert in alerts if alert["rule"]["kind"] == kind]


def datasets(events: list[dict[str, Any]]) -> list[str]:
    return sorted(event["event"]["dataset"] for event in events)


def test_a_hit_on_a_carved_body_is_an_alert_linked_to_its_http_event(tmp_path: Path, rules: Rules) -> None:
    capture = write_capture(tmp_path / "download.pcap", (("10.0.0.5", 49152), BODY))
    alerts, events, summary, output = ingest(tmp_path, [capture], rules(marker=MARKER_RULE))
    (http,) = [event for event in events if event["event"]["dataset"] == "network.http"]
    assert datasets(events) == ["network.flow", "network.http"]
    (yara,) = of_kind(alerts, "yara")
    assert yara["rule"]["id"] == "marker:Stage2_Loader_Marker"
    assert yara["event"]["id"] == http["event"]["id"]
    assert yara["@timestamp"] == http["@timestamp"]
    assert yara["network"]["community_id"] == http["network"]["community_id"]
    assert yara["url"]["original"] == http["url"]["original"] == "/dl/stage2.bin"
    assert (yara["source"], yara["destination"]["ip"], yara["destination"]["port"]) == (
        {"ip": "10.0.0.5", "port": 49152}, "203.0.113.80", 80)
    assert yara["http"] == {"request": {"method": "GET"}, "response": {"status_code": 200}}
    assert yara["user_agent"] == {"original": "loader/1.0"}
    assert yara["file"]["hash"] == http["file"]["hash"]
    assert yara["file"]["size"] == http["file"]["size"] == len(BODY)
    assert yara["yara"]["matches"] == [{"pattern": "$m", "offset": 304, "length": len(MARKER)}]
    (sigma,) = of_kind(alerts, "sigma")
    assert sigma["event"]["id"] == http["event"]["id"]
    assert yara["log"] == sigma["log"] == {"file": {"path": str(capture)}, "record_id": 4}  # the request's packet
    assert summary["yara"] == {"rules_loaded": 1, "payloads_scanned": 1, "payload_cache_hits": 0, "alerts": 1}
    assert summary["alerts"] == 2
    assert "YARA alerts on payloads" in output
    assert all(MARKER.decode() not in orjson.dumps(event).decode() for event in events)  # the body is not stored


def test_a_body_without_the_string_gives_no_yara_alert(tmp_path: Path, rules: Rules) -> None:
    capture = write_capture(tmp_path / "clean.pcap", (("10.0.0.6", 49153), b"MZ" + bytes(900)))
    alerts, events, summary, _ = ingest(tmp_path, [capture], rules(marker=MARKER_RULE))
    assert [alert["rule"]["kind"] for alert in alerts] == ["sigma"]
    assert datasets(events) == ["network.flow", "network.http"]
    assert summary["yara"] == {"rules_loaded": 1, "payloads_scanned": 1, "payload_cache_hits": 0, "alerts": 0}


def test_identical_bodies_are_scanned_once(tmp_path: Path, rules: Rules) -> None:
    capture = write_capture(tmp_path / "twice.pcap", (("10.0.0.5", 49152), BODY), (("10.0.0.7", 50000), BODY))
    alerts, events, summary, _ = ingest(tmp_path, [capture], [*rules(marker=MARKER_RULE), "--no-suppression"])
    http_ids = sorted(event["event"]["id"] for event in events if event["event"]["dataset"] == "network.http")
    assert sorted(alert["event"]["id"] for alert in of_kind(alerts, "yara")) == http_ids
    assert len(set(http_ids)) == 2
    assert summary["yara"] == {"rules_loaded": 1, "payloads_scanned": 2, "payload_cache_hits": 1, "alerts": 2}


def test_a_scan_that_times_out_is_a_dead_letter_naming_the_event(tmp_path: Path, rules: Rules) -> None:
    capture = write_capture(tmp_path / "big.pcap", (("10.0.0.5", 49152), b"A" * 100_000))
    db = tmp_path / "socctl.db"
    alerts, events, summary, _ = ingest(tmp_path, [capture], [*rules(slow=SLOW_RULE), "--yara-timeout", "1"],
                                        "--store", f"sqlite:///{db}", "--no-cases", "--workers", "1")
    (http,) = [event for event in events if event["event"]["dataset"] == "network.http"]
    assert [alert["rule"]["kind"] for alert in alerts] == ["sigma"]
    assert summary["rejected_by_reason"] == {"YARA scan timed out after 1s": 1}
    assert summary["yara"]["payloads_scanned"] == 1
    with open_store(f"sqlite:///{db}") as store:
        (dead,) = store.search("deadletter", "").hits
    assert dead["reason"] == f"YARA scan timed out after 1s: payload of event {http['event']['id']}"
    assert (dead["stage"], dead["log"]["file"]["path"]) == ("scan", str(capture))


def test_workers_give_the_same_alerts_as_one_process(tmp_path: Path, rules: Rules) -> None:
    captures = [write_capture(tmp_path / f"part{n}.pcap", ((f"10.0.1.{n}", 40000 + n), BODY),
                              ((f"10.0.2.{n}", 41000 + n), b"clean " * 100)) for n in range(1, 5)]
    options = [*rules(marker=MARKER_RULE), "--no-suppression"]
    one, _, one_summary, _ = ingest(tmp_path, captures, options, name="one")
    many, _, many_summary, _ = ingest(tmp_path, captures, options, "--no-store", "--workers", "2", name="many")

    def key(alert: dict[str, Any]) -> str:
        return str(alert["alert"]["id"])

    assert sorted(one, key=key) == sorted(many, key=key)
    assert len(of_kind(one, "yara")) == 4
    assert one_summary["yara"] == {"rules_loaded": 1, "payloads_scanned": 8, "payload_cache_hits": 6, "alerts": 4}
    # each worker process has its own hit cache: fewer hits, the same scans and alerts
    assert {**many_summary["yara"], "payload_cache_hits": 6} == one_summary["yara"]
    assert 0 <= many_summary["yara"]["payload_cache_hits"] <= 6
    assert many_summary["workers"] == 2


def test_no_yara_reads_captures_without_carving(tmp_path: Path, rules: Rules) -> None:
    capture = write_capture(tmp_path / "download.pcap", (("10.0.0.5", 49152), BODY))
    alerts, events, summary, output = ingest(tmp_path, [capture], [*rules(marker=MARKER_RULE), "--no-yara"])
    assert [alert["rule"]["kind"] for alert in alerts] == ["sigma"]
    assert datasets(events) == ["network.flow", "network.http"]
    assert summary["yara"] == {"rules_loaded": 0, "payloads_scanned": 0, "payload_cache_hits": 0, "alerts": 0}
    assert "YARA alerts on payloads" not in output


def test_a_yara_file_that_does_not_compile_is_reported_and_the_others_load(tmp_path: Path, rules: Rules) -> None:
    capture = write_capture(tmp_path / "download.pcap", (("10.0.0.5", 49152), BODY))
    alerts, _, summary, output = ingest(tmp_path, [capture], rules(marker=MARKER_RULE, broken=BROKEN_RULE))
    assert "YARA rule file not loaded" in output
    assert str(tmp_path / "yara" / "broken.yar") in output
    assert len(of_kind(alerts, "yara")) == 1
    assert summary["yara"]["rules_loaded"] == 1
