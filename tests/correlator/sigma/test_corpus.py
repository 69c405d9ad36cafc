"""Whole-corpus tests over ../shared/data: every SigmaHQ rule loads (or fails for a documented reason), and the
shared EVTX logs through all shared rules give the golden alert set, in any file order, event by event, and
through `socctl ingest` with worker processes.

Regenerate the golden file with `scripts/regen-golden` and read the diff before committing it.
"""

from __future__ import annotations

import random
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from collectors.evtx_reader import QuietRecords, read_evtx
from collectors.files import detect_format, iter_files, read_path
from correlator.accel import native_available
from correlator.cli import app
from correlator.model import Event
from correlator.sigma.engine import SigmaEngine
from correlator.sigma.loader import RuleSet, load_rules
from correlator.sigma.sources import load_sources

pytestmark = pytest.mark.corpus

GOLDEN = Path(__file__).resolve().parents[2] / "golden" / "evtx_sigma_alerts.txt"
RULE_DIRS = ("rules", "rules-emerging-threats", "rules-threat-hunting", "rules-placeholder", "rules-compliance",
             "rules-dfir")
# Reasons a shared rule may fail for, each written in README.md ("Known limitations").
DOCUMENTED_REASONS = ("has no values: add it to the placeholder values file",)


@pytest.fixture(scope="session")
def corpus_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sigma-cache")


@pytest.fixture(scope="session")
def all_rules(shared_data: Path, corpus_cache: Path) -> RuleSet:
    dirs = [shared_data / "sigma" / d for d in RULE_DIRS if (shared_data / "sigma" / d).is_dir()]
    return load_rules(dirs, sources=load_sources(), cache_dir=corpus_cache)


def test_every_shared_rule_loads_or_fails_for_a_documented_reason(all_rules: RuleSet, shared_data: Path) -> None:
    undocumented = [str(e) for e in all_rules.errors if not any(r in e.reason for r in DOCUMENTED_REASONS)]
    assert not undocumented, f"{len(undocumented)} rules failed for undocumented reasons:\n" + "\n".join(undocumented)
    main = str(shared_data / "sigma" / "rules") + "/"
    main_total = sum(1 for _ in (shared_data / "sigma" / "rules").rglob("*.yml"))
    main_failed = sum(1 for e in all_rules.errors if e.path.startswith(main))
    assert main_total > 3000
    assert (main_total - main_failed) / main_total >= 0.99, f"{main_failed} of {main_total} failed"
    assert all_rules.loaded >= 3700


def test_readme_documents_the_failure_reasons() -> None:
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text(encoding="utf-8")
    for reason in DOCUMENTED_REASONS:
        assert reason in readme


def _alert_lines(alerts: list[tuple[str, str]]) -> list[str]:
    return sorted({f"{rule_id} {event_id}" for rule_id, event_id in alerts})


def _events(files: list[Path]) -> list[Event]:
    return [item for f in files for item in read_path(f) if isinstance(item, Event)]


@pytest.fixture(scope="session")
def evtx_files(shared_data: Path) -> list[Path]:
    files = list(iter_files([shared_data / "evtx"]))
    assert len(files) > 200
    return files


@pytest.fixture(scope="session")
def golden_run(all_rules: RuleSet, evtx_files: list[Path]) -> list[str]:
    engine = SigmaEngine(all_rules.rules, load_sources())
    return _alert_lines([(a.rule.id, a.event_id) for ev in _events(evtx_files) for a in engine.match(ev)])


def test_evtx_alerts_match_golden(golden_run: list[str]) -> None:
    expected = GOLDEN.read_text().splitlines()
    missing = sorted(set(expected) - set(golden_run))
    extra = sorted(set(golden_run) - set(expected))
    diff = (f"{len(missing)} golden alerts missing, {len(extra)} new (regenerate with scripts/regen-golden if "
            f"intended):\nmissing: {missing[:20]}\nextra: {extra[:20]}")
    assert not missing, diff
    assert not extra, diff
    assert len(golden_run) > 1000


def test_shuffled_files_and_events_give_the_same_alerts(
    all_rules: RuleSet, evtx_files: list[Path], golden_run: list[str]
) -> None:
    rng = random.Random(7)
    files = list(evtx_files)
    rng.shuffle(files)
    events = _events(files)
    rng.shuffle(events)
    engine = SigmaEngine(all_rules.rules, load_sources())
    assert _alert_lines([(a.rule.id, a.event_id) for ev in events for a in engine.match(ev)]) == golden_run


def test_ingest_with_workers_gives_the_same_alerts(
    shared_data: Path, corpus_cache: Path, golden_run: list[str], tmp_path: Path
) -> None:
    out = tmp_path / "alerts.jsonl"
    args = ["ingest", str(shared_data / "evtx")]
    for d in RULE_DIRS:
        args += ["--rules", str(shared_data / "sigma" / d)]
    # --no-suppression: the golden set is one alert per (rule, event)
    args += ["--no-default-rules", "--no-store", "--quiet", "--workers", "2", "--cache-dir", str(corpus_cache),
             "--alerts-out", str(out), "--no-suppression"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    docs = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert _alert_lines([(d["rule"]["id"], d["event"]["id"]) for d in docs]) == golden_run
    first = docs[0]
    for key in ("@timestamp", "host", "matched", "log"):
        assert key in first
    assert {"id", "title", "level", "tags"} <= set(first["rule"])
    assert first["log"]["file"]["path"].endswith(".evtx")
    assert isinstance(first["log"]["record_id"], int)


def test_quiet_evtx_records_are_only_those_no_rule_can_match(all_rules: RuleSet, evtx_files: list[Path]) -> None:
    """The native reader skips building a record whose source's prefilter finds no literal in it (`QuietRecords`):
    every record it skips is one the engine, given the built event, finds no candidate in; it skips most of
    those; the records it yields are the others, in order, and what the reader found in them with their
    source's prefilter (`Event.prefiltered`) is what that prefilter finds in the built event."""
    if not native_available():
        pytest.skip("the native extension is not built: the reader skips nothing")
    engine = SigmaEngine(all_rules.rules, load_sources())
    skipped = no_candidates = total = hinted = 0
    for path in evtx_files:
        if detect_format(path) != "evtx":
            continue
        quiet = QuietRecords(engine.quiet_prefilter)
        read = [e for e in read_evtx(path, quiet=quiet) if isinstance(e, Event)]
        kept = [e.id for e in read]
        events = [e for e in read_evtx(path) if isinstance(e, Event)]
        total += len(events)
        for event in read:
            if event.prefiltered is not None:
                prefilter, found = event.prefiltered
                hinted += 1
                assert prefilter is engine._bucket(event).prefilter, path
                assert list(found) == list(prefilter.candidates_fields(event.native)), path
                assert found, path  # a record with no candidate is not yielded at all
        assert len(kept) + quiet.count == len(events), path
        kept_ids = set(kept)
        assert kept == [e.id for e in events if e.id in kept_ids], path  # the same records, in order
        for event in events:
            bucket = engine._bucket(event)
            fields = event.fields if bucket.needs_ecs else event.native
            empty = not bucket.prefilter.candidates_fields(fields)
            no_candidates += empty
            if event.id not in kept_ids:
                skipped += 1
                assert empty, f"{path}: record {event.origin.record_id} skipped but has candidates"
                assert engine.match(event) == []
    assert skipped > 0.4 * total > 3000
    assert hinted > 0.3 * total
    assert skipped > 0.9 * no_candidates  # the few left: values the reader leaves to Python (floats, non-ASCII)
