"""The detection stage over files: faults in a reader or a rule never stop the run and are never silent."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import correlator.pipeline as pipeline
from correlator.pipeline import detect_file
from correlator.sigma.engine import SigmaEngine
from correlator.sigma.loader import load_rules
from correlator.sigma.sources import load_sources

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
RULE = """title: whoami
id: 77777777-7777-4777-8777-777777777777
logsource:
  category: process_creation
  product: windows
detection:
  sel:
    CommandLine|contains: 'whoami'
  condition: sel
"""


@pytest.fixture
def engine(tmp_path: Path) -> SigmaEngine:
    (tmp_path / "r.yml").write_text(RULE)
    sources = load_sources()
    return SigmaEngine(load_rules([tmp_path], sources=sources).rules, sources)


def test_detect_file_finds_alerts_and_rejects(engine):
    good = detect_file(SAMPLES / "windows" / "sysmon_sample.json", engine)
    assert good.events == 8
    assert [a.rule.title for a in good.alerts] == ["whoami"]
    broken = detect_file(SAMPLES / "broken" / "mixed.json", engine)
    assert broken.events == 3
    assert len(broken.rejected) == 2


def test_reader_bug_becomes_a_dead_letter(engine, monkeypatch, caplog):
    def exploding_reader(path, fmt=None, *, tz=None, quiet=None):
        yield from ()
        raise RuntimeError("boom")

    monkeypatch.setattr(pipeline, "read_path", exploding_reader)
    with caplog.at_level(logging.ERROR):
        result = detect_file(SAMPLES / "windows" / "sysmon_sample.json", engine)
    assert [r.reason for r in result.rejected] == ["internal error after 0 events: RuntimeError: boom"]
    assert result.rejected[0].origin.path.endswith("sysmon_sample.json")
    assert "internal error while processing" in caplog.text


def test_rule_that_raises_is_counted_and_the_others_run(engine, caplog):
    events = list(pipeline.read_path(SAMPLES / "windows" / "sysmon_sample.json"))
    whoami = next(e for e in events if "whoami" in str(e.native.get("CommandLine", "")))
    engine.match(whoami)  # builds the bucket
    bucket = next(iter(engine._buckets.values()))
    runner = bucket.runners[0]

    def broken(low, fields):
        raise ValueError("bad value")

    runner.pred = broken
    with caplog.at_level(logging.ERROR):
        assert engine.match(whoami) == []
        assert engine.match(whoami) == []
    assert engine.stats.rule_errors == {"77777777-7777-4777-8777-777777777777": 2}
    assert caplog.text.count("failed on event") == 1
