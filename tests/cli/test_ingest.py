"""`socctl ingest` and `socctl rules check` end to end on the repository's own samples and inline rules."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from correlator.cli import app
from correlator.store.config import open_store

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "samples"

GOOD_RULE = """title: Whoami
id: 44444444-4444-4444-8444-444444444444
level: medium
logsource:
  category: process_creation
  product: windows
detection:
  sel:
    CommandLine|contains: 'whoami'
  condition: sel
"""
BAD_RULE = """title: Typo
id: 55555555-5555-4555-8555-555555555555
logsource:
  product: windows
detection:
  sel:
    CommandLine|contians: 'x'
  condition: sel
"""


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_ingest_samples_writes_alerts_events_store_and_summary(runner, tmp_path):
    alerts_out, events_out, summary = tmp_path / "alerts.jsonl", tmp_path / "events.jsonl", tmp_path / "s.json"
    db = tmp_path / "socctl.db"
    result = runner.invoke(app, [
        "ingest", str(SAMPLES), "--alerts-out", str(alerts_out), "--events-out", str(events_out),
        "--summary-json", str(summary), "--store", f"sqlite:///{db}", "--cache-dir", str(tmp_path / "cache"),
        "--quiet", "--workers", "1",
    ])
    assert result.exit_code == 0, result.output
    alerts = [orjson.loads(line) for line in alerts_out.read_bytes().splitlines()]
    events = [orjson.loads(line) for line in events_out.read_bytes().splitlines()]
    figures = orjson.loads(summary.read_bytes())
    assert figures["events"] == len(events) > 15
    assert figures["alerts"] == len(alerts) >= 4
    assert figures["rejected"] == 2  # samples/broken/mixed.json has two malformed lines
    titles = {a["rule"]["title"] for a in alerts}
    assert {"Account Discovery Via Whoami /all", "Local Account Created Via Net.EXE",
            "PowerShell Encoded Command In Hidden Window", "User Account Created On Windows"} <= titles
    # (single failed logons, Windows 4625 and sshd, only feed the brute-force correlations: no alert of their own)
    net_user = [a for a in alerts if a["rule"]["title"] == "Local Account Created Via Net.EXE"]
    assert any(a["matched"].get("NewProcessName", "").endswith("net.exe") for a in net_user)  # Security 4688
    for alert in alerts:
        assert alert["event"]["id"]
        assert alert["log"]["file"]["path"].startswith(str(SAMPLES))
        assert {"id", "title", "level", "tags"} <= set(alert["rule"])
    assert all("original" in e["event"] and e["log"]["file"]["path"] for e in events)
    with open_store(f"sqlite:///{db}") as store:
        assert store.count("alerts") == len(alerts)
        dead = store.search("deadletter", "").hits
        assert len(dead) == 2
        assert all("mixed.json" in d["log"]["file"]["path"] for d in dead)


def test_ingest_is_idempotent_in_the_store(runner, tmp_path):
    db = f"sqlite:///{tmp_path / 'socctl.db'}"
    args = ["ingest", str(SAMPLES / "windows"), "--store", db, "--quiet", "--cache-dir", str(tmp_path / "c")]
    assert runner.invoke(app, args).exit_code == 0
    assert runner.invoke(app, args).exit_code == 0
    with open_store(db) as store:
        ids = [h["alert"]["id"] for h in store.search("alerts", "", limit=1000).hits]
    assert len(ids) == len(set(ids)) > 0


def test_ingest_rejects_unknown_format_and_missing_path(runner, tmp_path):
    bad_format = runner.invoke(app, ["ingest", str(SAMPLES), "--format", "xml", "--no-store"])
    assert bad_format.exit_code == 2
    assert "unknown format 'xml'" in bad_format.output
    missing = runner.invoke(app, ["ingest", str(tmp_path / "nope"), "--no-store"])
    assert missing.exit_code == 2
    assert "no such file or directory" in missing.output


def test_ingest_reports_rules_that_do_not_load(runner, tmp_path):
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "good.yml").write_text(GOOD_RULE)
    (rules / "bad.yml").write_text(BAD_RULE)
    out = tmp_path / "alerts.jsonl"
    result = runner.invoke(app, ["ingest", str(SAMPLES / "windows"), "--rules", str(rules), "--no-default-rules",
                                 "--no-store", "--quiet", "--alerts-out", str(out), "--no-cache"])
    assert result.exit_code == 0, result.output
    assert "bad.yml" in result.output
    assert "Unknown modifier 'contians'" in result.output
    assert {orjson.loads(line)["rule"]["title"] for line in out.read_bytes().splitlines()} == {"Whoami"}


def test_rules_check_json(runner, tmp_path):
    (tmp_path / "good.yml").write_text(GOOD_RULE)
    (tmp_path / "bad.yml").write_text(BAD_RULE)
    result = runner.invoke(app, ["rules", "check", str(tmp_path), "--json", "--no-cache"])
    assert result.exit_code == 1
    doc = orjson.loads(result.stdout)
    assert doc["loaded"] == 1
    assert doc["failed"] == [{"path": str(tmp_path / "bad.yml"), "reason": "Unknown modifier 'contians'", "line": 7,
                              "rule_id": "55555555-5555-4555-8555-555555555555"}]


def test_rules_check_text_report_and_tally(runner, tmp_path):
    (tmp_path / "bad.yml").write_text(BAD_RULE)
    (tmp_path / "bad2.yml").write_text(BAD_RULE.replace("5555", "6666"))
    result = runner.invoke(app, ["rules", "check", str(tmp_path), "--no-cache"])
    assert result.exit_code == 1
    assert f"{tmp_path / 'bad.yml'}:7: Unknown modifier 'contians'" in result.output
    assert "Failures by reason" in result.output


def test_rules_check_repository_rules_all_load(runner, tmp_path):
    result = runner.invoke(app, ["rules", "check", "--json", "--cache-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    doc = orjson.loads(result.stdout)
    assert doc["failed"] == []
    assert doc["sigma"]["loaded"] >= 6
    assert doc["yara"]["loaded"] >= 3


@pytest.mark.parametrize("workers", ["1", "2"])
def test_timezone_places_local_syslog_times(runner: CliRunner, tmp_path: Path, workers: str) -> None:
    """RFC 3164 lines carry the servers' local time: --timezone says which; UTC by default."""
    log = tmp_path / "auth.log"
    log.write_text("Nov 20 10:00:00 web01 sshd[1]: Failed password for root from 203.0.113.5 port 4242 ssh2\n",
                   encoding="utf-8")
    other = tmp_path / "secure"
    other.write_text("Nov 20 11:00:00 web02 sshd[2]: Failed password for root from 203.0.113.5 port 4243 ssh2\n",
                     encoding="utf-8")
    stamps = {}
    for zone in ("UTC", "Asia/Ho_Chi_Minh"):
        out = tmp_path / f"events-{zone.replace('/', '-')}.jsonl"
        result = runner.invoke(app, ["ingest", str(log), str(other), "--no-store", "--quiet", "--workers", workers,
                                     "--timezone", zone, "--events-out", str(out),
                                     "--cache-dir", str(tmp_path / "cache")])
        assert result.exit_code == 0, result.output
        stamps[zone] = sorted(orjson.loads(line)["@timestamp"] for line in out.read_text().splitlines())
    assert [s[11:19] for s in stamps["UTC"]] == ["10:00:00", "11:00:00"]
    assert [s[11:19] for s in stamps["Asia/Ho_Chi_Minh"]] == ["03:00:00", "04:00:00"]  # UTC+7


def test_an_unknown_timezone_is_refused(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["ingest", str(SAMPLES), "--no-store", "--timezone", "Mars/Olympus"])
    assert result.exit_code == 2
    assert "unknown time zone 'Mars/Olympus'" in result.output
