"""`socctl run` with YARA on files: a file an agent uploads (`POST /v1/files`) and a file dropped into a watched
sample directory each become an event carrying the file, scanned by the YARA stage; a hit is an alert linked to
that event, with the file's hash."""

from __future__ import annotations

import hashlib
import json
import urllib.request
from pathlib import Path

import yaml

from correlator.store.config import open_store
from tests.cli.test_run_cmd import _metrics, _start, _stop, _wait_for

CONFIG = """
store: sqlite:///{db}
state_dir: {state}
syslog: {{host: 127.0.0.1, udp: null, tcp: null}}
metrics: {{host: 127.0.0.1, port: 0}}
http: {{host: 127.0.0.1, port: 0}}
samples: {{paths: [{samples}], poll: 100ms}}
yara: {{rules: [{yara}], timeout: 5s}}
batch_wait: 50ms
"""

RULE = """
rule Province_Test_Webshell {
    meta:
        description = "test marker of a web shell"
        severity = "high"
    strings:
        $a = "province-webshell-marker-5521"
    condition:
        $a
}
"""


def test_uploaded_and_dropped_files_are_scanned_with_yara(tmp_path: Path) -> None:
    db, state, samples, yara = (tmp_path / name for name in ("socctl.db", "state", "samples", "yara"))
    samples.mkdir()
    yara.mkdir()
    (yara / "test.yar").write_text(RULE, encoding="utf-8")
    (tmp_path / "run.yml").write_text(CONFIG.format(db=db, state=state, samples=samples, yara=yara), "utf-8")
    process, ports = _start(tmp_path)
    upload = b"<?php /* province-webshell-marker-5521 */ system($_GET['c']); ?>"
    dropped = b"MZ\x90\x00 dropped province-webshell-marker-5521 payload"
    try:
        token = yaml.safe_load((state / "intake-tokens.yml").read_text())[0]["token"]
        request = urllib.request.Request(
            f"http://127.0.0.1:{ports['http']}/v1/files", data=upload, method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream",
                     "X-File-Name": "/var/www/html/upload/shell.php", "X-Host-Name": "web01"})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 201
            assert json.loads(response.read())["sha256"] == hashlib.sha256(upload).hexdigest()
        (samples / "quarantined.exe").write_bytes(dropped)
        (samples / "clean.txt").write_bytes(b"nothing to see")
        _wait_for(lambda: _metrics(ports["metrics"]).get("socctl_alerts_total", 0) >= 2)
        figures = _metrics(ports["metrics"])
        assert figures['socctl_events_in_total{collector="upload"}'] == 1
        assert figures['socctl_events_in_total{collector="samples"}'] == 2
        assert (figures["socctl_payloads_scanned_total"], figures["socctl_yara_alerts_total"]) == (3, 2)
    finally:
        _stop(process)
    with open_store(f"sqlite:///{db}") as store:
        alerts = store.search("alerts", "", limit=10).hits
        events = {hit["event"]["id"]: hit for hit in store.search("events", "", limit=10).hits}
    assert len(alerts) == 2
    by_hash = {alert["file"]["hash"]["sha256"]: alert for alert in alerts}
    assert set(by_hash) == {hashlib.sha256(upload).hexdigest(), hashlib.sha256(dropped).hexdigest()}
    for alert in alerts:
        assert alert["rule"]["name"] == "Province_Test_Webshell" or alert["rule"]["title"] == "Province_Test_Webshell"
        event = events[alert["event"]["id"]]  # linked to the stored event of the file
        assert event["file"]["hash"]["sha256"] == alert["file"]["hash"]["sha256"]
    assert by_hash[hashlib.sha256(upload).hexdigest()]["host"]["name"] == "web01"
    assert len(events) == 3
