"""Cross-check against a peer engine: pySigma's SQLite backend (the one Zircolite runs) over the shared EVTX corpus.

The same SigmaHQ Windows rules are converted by pySigma with the Sysmon and Windows log-source pipelines into SQL,
run over a table of the events' fields (one column per field, case-insensitive as Zircolite builds it), and the
(rule, event) pairs it finds are compared with what our engine finds on the same events. They must agree except
where the two differ by design, each difference named here:

- our Windows pipeline also maps process_creation rules onto Security 4688 events (pySigma's Windows audit
  pipeline, which the peer is not given): extra pairs of ours on 4688 events;
- our `null` matches an empty value too (EVTX renders an empty <Data/> as ""), the peer's `IS NULL` only an
  absent one: extra pairs of ours where a rule's null field is "" in the event.

Events with a list value (unnamed EventData items) are left out: a SQL column has no list, so the peer's view of
them would be this test's own flattening, not the peer's semantics.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collectors.evtx_reader import read_evtx
from correlator.model import Event
from correlator.sigma.engine import SigmaEngine
from correlator.sigma.ir import Node
from correlator.sigma.loader import RuleSet, load_rules
from correlator.sigma.rule import CompiledRule
from correlator.sigma.sources import load_sources

pytestmark = pytest.mark.corpus

RULE_DIRS = ("rules/windows", "rules-emerging-threats", "rules-threat-hunting/windows", "rules-dfir")
Pair = tuple[str, str]  # (rule id, event id)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _cell(value: Any) -> Any:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int) and abs(value) >= 2**63:  # beyond SQLite's INTEGER
        return str(value)
    return value


def _regexp(pattern: str, value: Any) -> int:
    if value is None:
        return 0
    try:
        return 1 if re.search(pattern, str(value)) else 0
    except re.error:
        return 0


class PeerTable:
    """The events as Zircolite lays them out: one row each, one NOCASE text column per field name (SQLite's
    names are case-insensitive: of two names that differ only in case, the first in the record is kept)."""

    def __init__(self, events: list[Event]) -> None:
        self.db = sqlite3.connect(":memory:")
        self.db.create_function("regexp", 2, _regexp, deterministic=True)
        rows = [self._row(e) for e in events]
        names = {k.lower(): k for row in rows for k in reversed(row)}
        self.columns = set(names)
        self.db.execute("CREATE TABLE logs (" + ", ".join(f"{_quote(n)} TEXT COLLATE NOCASE" for n in names.values())
                        + ")")
        for row in rows:
            keys = list(row)
            self.db.execute(f"INSERT INTO logs ({', '.join(map(_quote, keys))}) VALUES ({', '.join('?' * len(keys))})",
                            [_cell(row[k]) for k in keys])

    @staticmethod
    def _row(event: Event) -> dict[str, Any]:
        row: dict[str, Any] = {"_event_id": event.id}
        seen = {"_event_id"}
        for key, value in event.native.items():
            if key.lower() not in seen:
                seen.add(key.lower())
                row[key] = value
        return row

    def event_ids(self, where: str) -> set[str]:
        """Event ids of the rows a converted query selects; a field no event has is added as an empty column
        (the backend's own `ensure_fields` does the same)."""
        sql = where.replace("<TABLE_NAME>", "logs")
        sql = sql.replace("SELECT *", "SELECT _event_id", 1) if sql.lstrip().upper().startswith("SELECT") else (
            f"SELECT _event_id FROM logs WHERE {sql}")
        while True:
            try:
                return {row[0] for row in self.db.execute(sql)}
            except sqlite3.OperationalError as exc:
                missing = re.fullmatch(r"no such column: (.+)", str(exc))
                if missing is None or missing.group(1).lower() in self.columns:
                    raise
                self.columns.add(missing.group(1).lower())
                self.db.execute(f"ALTER TABLE logs ADD COLUMN {_quote(missing.group(1))} TEXT COLLATE NOCASE")


def _rule_files(sigma: Path) -> list[Path]:
    return sorted(f for d in RULE_DIRS for f in (sigma / d).rglob("*.yml"))


def _peer_pairs(files: list[Path], table: PeerTable) -> tuple[set[Pair], int]:
    from sigma.backends.sqlite import sqliteBackend
    from sigma.collection import SigmaCollection
    from sigma.exceptions import SigmaError
    from sigma.pipelines.sysmon import sysmon_pipeline
    from sigma.pipelines.windows import windows_logsource_pipeline
    from sigma.rule import SigmaRule

    backend = sqliteBackend(sysmon_pipeline() + windows_logsource_pipeline())
    pairs: set[Pair] = set()
    converted = 0
    for path in files:
        try:
            rules = SigmaCollection.from_yaml(path.read_text(encoding="utf-8")).rules
        except SigmaError:
            continue
        for rule in rules:
            if not isinstance(rule, SigmaRule) or rule.id is None:
                continue
            try:
                queries = backend.convert_rule(rule)
            except SigmaError:  # what the backend cannot express (e.g. some modifiers): nothing to compare
                continue
            converted += 1
            for query in queries:
                pairs.update((str(rule.id), event_id) for event_id in table.event_ids(query))
    return pairs, converted


def _null_fields(node: Node) -> Iterator[str]:
    if node[0] == "null":
        yield node[1]
    elif node[0] in ("and", "or"):
        for child in node[1]:
            yield from _null_fields(child)
    elif node[0] == "not":
        yield from _null_fields(node[1])


def _by_design(rule: CompiledRule, event: Event) -> str | None:
    """Why an alert of ours has no peer counterpart, when that is by design (see the module doc)."""
    native = event.native
    if (native.get("Channel"), native.get("EventID")) == ("Security", 4688) and rule.meta.logsource[1] == (
            "process_creation"):
        return "process_creation on Security 4688"
    if any(native.get(f) == "" for v in rule.variants for f in _null_fields(v.ir)):
        return "null matches an empty value"
    return None


@pytest.fixture(scope="module")
def windows_rules(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[RuleSet, list[Path]]:
    files = _rule_files(shared_data / "sigma")
    return load_rules(files, sources=load_sources(None), cache_dir=tmp_path_factory.mktemp("peer-cache")), files


def test_alerts_agree_with_pysigmas_sqlite_backend(shared_data: Path, windows_rules: tuple[RuleSet, list[Path]],
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="correlator")  # unknown-source notes are not what this is about
    ruleset, files = windows_rules
    events = [e for f in sorted((shared_data / "evtx").rglob("*.evtx")) for e in read_evtx(f)
              if isinstance(e, Event)]
    kept = [e for e in events if not any(isinstance(v, list) for v in e.native.values())]
    assert len(kept) > 0.9 * len(events) > 7000

    engine = SigmaEngine(ruleset.rules, load_sources(None))
    by_id = {r.meta.id: r for r in ruleset.rules}
    events_by_id = {e.id: e for e in kept}
    ours = {(a.rule.id, e.id) for e in kept for a in engine.match(e)}
    peer, converted = _peer_pairs(files, PeerTable(kept))
    assert converted > 0.95 * len(ruleset.rules)

    common = ours & peer
    peer_only = sorted(peer - ours)
    ours_only = sorted(p for p in ours - peer if _by_design(by_id[p[0]], events_by_id[p[1]]) is None)

    def show(pairs: list[Pair]) -> str:
        lines = []
        for rule_id, event_id in pairs[:25]:
            native = events_by_id[event_id].native
            title = by_id[rule_id].meta.title if rule_id in by_id else rule_id
            lines.append(f"  {title} ({rule_id}) on {native.get('Channel')}/{native.get('EventID')} "
                         f"record {native.get('EventRecordID')} ({event_id})")
        return "\n".join(lines)

    assert len(common) > 1000, f"too few alerts in common ({len(common)}): the comparison would prove nothing"
    assert not peer_only, f"{len(peer_only)} alerts the peer raises and we do not:\n{show(peer_only)}"
    assert not ours_only, f"{len(ours_only)} alerts we raise and the peer does not:\n{show(ours_only)}"
