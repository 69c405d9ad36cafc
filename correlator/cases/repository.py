"""Cases in the store: one versioned document per case, every change checked against the version it was made from.

A case is stored whole, in the store's ``cases`` collection (`Store.put`): `Case.to_dict(timeline=True)` plus flat
fields to search by (`case_document`: ``rule_ids``, ``host_names``). The timeline stays inline, so a case and its
history change together; each new `TimelineEntry` is also mirrored to the ``audit`` collection after the case is
saved (``subject`` = the case), so "what did alice do today" is one query across cases. Computed views (overdue,
SLA state) are not stored.

Concurrency: every write names the version it was computed from; a `VersionConflictError` (another process
changed the case meanwhile: ingest adding alerts while an analyst assigns it) makes the repository reload the
case, apply the change again and retry, up to `MAX_ATTEMPTS` times, then raise `CaseConflictError`. Nothing is
lost: the second writer's change is recomputed from the first one's result. A command that no longer applies to
the reloaded case raises its `CommandError` (an analyst closing a case that was closed meanwhile).

The streaming path (`add_alerts`, one writer adding many alerts, a batch at a time) keeps the open cases of recently
seen grouping keys in memory (at most `CACHE_KEYS` keys); the cache is only a guess of the stored state: a stale
entry costs one version conflict and a reload. A batch saves each case it changed once, with all its new entries.
Cases opened by another process for a key already cached are seen when that key is next reloaded (after a
conflict, or `forget_cache()`).

Merge and split write two cases, which no store can do atomically: merge closes the source first (after which its
alerts cannot change), then puts them into the target; split takes the alerts out of the case first, then opens
the new case. A failure between the two writes is reported with `IncompleteChangeError`, naming both cases.
"""

from __future__ import annotations

import builtins
import contextlib
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, cast

from correlator.cases.commands import Command, Merge, MergedInto, SplitOut
from correlator.cases.definitions import OPEN_STATUSES, CaseStatus
from correlator.cases.errors import CaseError, CommandError
from correlator.cases.grouping import CaseGrouper, GroupResult, IncomingAlert
from correlator.cases.lifecycle import apply as apply_command
from correlator.cases.model import Case, TimelineEntry
from correlator.scoring import RuleHistory
from correlator.store.base import Store
from correlator.store.errors import StoreError, VersionConflictError
from correlator.store.query import And, FieldMatch, Or

__all__ = [
    "CACHE_KEYS",
    "MAX_ATTEMPTS",
    "AlertsPlan",
    "CaseConflictError",
    "CaseNotFoundError",
    "CaseRepository",
    "IncompleteChangeError",
    "audit_entry",
    "case_document",
    "rule_history",
]

CASES: Final = "cases"
AUDIT: Final = "audit"
MAX_ATTEMPTS: Final = 5  # tries of one change against concurrent writers
CACHE_KEYS: Final = 1_024  # grouping keys whose open cases `add_alerts` keeps in memory
OPEN_CASES_LIMIT: Final = 1_000  # open cases read for one grouping key
RULE_HISTORY_RULES: Final = 10_000  # rules `rule_history` reports


class CaseNotFoundError(CaseError):
    def __init__(self, case_id: str) -> None:
        self.case_id = case_id
        super().__init__(f"case {case_id}: not found")


class CaseConflictError(CaseError):
    """A change still conflicted with other writers after `attempts` tries; `last` is the last conflict."""

    def __init__(self, case_id: str, action: str, attempts: int, last: VersionConflictError | None) -> None:
        self.case_id = case_id
        self.action = action
        self.attempts = attempts
        self.last = last
        super().__init__(f"case {case_id}: {action}: the case kept changing under this change; gave up after "
                         f"{attempts} attempts (last: {last})")


class IncompleteChangeError(CaseError):
    """A change of two cases (merge, split) wrote the first and failed on the second; `cause` says why."""

    def __init__(self, case_id: str, action: str, done: str, cause: Exception) -> None:
        self.case_id = case_id
        self.action = action
        self.cause = cause
        super().__init__(f"case {case_id}: {action}: incomplete: {done}, then: {cause}")


def case_document(case: Case) -> dict[str, Any]:
    """The stored form of a case: `Case.to_dict` with its timeline, the rule ids and host names of its alerts, and
    `severity_rank` (low 0 .. critical 3) to sort by severity."""
    doc = case.to_dict(timeline=True)
    doc["severity_rank"] = case.severity.rank
    doc["rule_ids"] = sorted({alert.rule_id for alert in case.alerts})
    doc["host_names"] = sorted({alert.host_name for alert in case.alerts if alert.host_name})
    return doc


def audit_entry(entry: TimelineEntry) -> dict[str, Any]:
    """A timeline entry as an audit entry (the store's ``audit`` collection), its subject the case."""
    return {"id": entry.id, "at_ms": entry.at_ms, "actor": entry.actor, "action": entry.action,
            "subject": {"kind": "case", "id": entry.case_id}, "summary": entry.summary,
            "before": dict(entry.before), "after": dict(entry.after), "reason": entry.reason, "seq": entry.seq}


def rule_history(store: Store) -> dict[str, RuleHistory]:
    """Per rule id: of the closed cases holding one of its alerts (merged cases left out), how many were closed as
    false positives."""
    closed = (f"(status:{CaseStatus.CLOSED.value} OR status:{CaseStatus.FALSE_POSITIVE.value}) "
              "AND NOT merged_into:*")
    totals = store.terms(CASES, "rule_ids", closed, size=RULE_HISTORY_RULES)
    false_positives = dict(store.terms(CASES, "rule_ids", f"({closed}) AND status:{CaseStatus.FALSE_POSITIVE.value}",
                                       size=RULE_HISTORY_RULES))
    return {str(rule): RuleHistory(total, int(false_positives.get(rule, 0))) for rule, total in totals}


def _of(entries: Sequence[TimelineEntry], case_id: str) -> tuple[TimelineEntry, ...]:
    return tuple(entry for entry in entries if entry.case_id == case_id)


@dataclass(slots=True)
class _CaseChange:
    """A case changed by a batch of alerts: as it is now, the version it was read at (None: new) and its entries
    since."""

    case: Case
    previous: int | None
    entries: list[TimelineEntry] = field(default_factory=list)


@dataclass(slots=True)
class AlertsPlan:
    """Alerts grouped into cases in memory (`CaseRepository.plan_alerts`), not saved yet: each alert's result in
    the order of `incoming`, and per grouping key the alerts' places and the cases they change."""

    incoming: Sequence[IncomingAlert]
    at_ms: int
    results: builtins.list[GroupResult | None]
    keys: dict[str | None, builtins.list[int]]
    changes: dict[str | None, dict[str, _CaseChange]]


def _settled(result: GroupResult | None, saved: set[str]) -> bool:
    """Whether an alert's result stands after a conflict: no case to save (skipped) or its case saved."""
    return result is not None and (result.case is None or result.case.id in saved)


class CaseRepository:
    """Cases in `store`, grouped by `grouper`; `clock` (epoch ms) stamps analysts' changes."""

    def __init__(self, store: Store, grouper: CaseGrouper, clock: Callable[[], int], *,
                 max_attempts: int = MAX_ATTEMPTS, cache_keys: int = CACHE_KEYS) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {max_attempts}")
        self.store = store
        self.grouper = grouper
        self.clock = clock
        self.max_attempts = max_attempts
        self.cache_keys = cache_keys
        self._open: OrderedDict[str, dict[str, Case]] = OrderedDict()  # group key -> open cases by id

    # -- reading

    def get(self, case_id: str) -> Case | None:
        doc = self.store.get(CASES, case_id)
        return None if doc is None else Case.from_dict(doc)

    def require(self, case_id: str) -> Case:
        """The case, or `CaseNotFoundError`."""
        case = self.get(case_id)
        if case is None:
            raise CaseNotFoundError(case_id)
        return case

    def open_cases(self, group_key: str) -> builtins.list[Case]:
        """The open cases of a grouping key, as stored now (never the cache)."""
        statuses = Or(tuple(FieldMatch("status", status.value) for status in sorted(OPEN_STATUSES)))
        page = self.store.search(CASES, And((FieldMatch("group_key", group_key), statuses)),
                                 sort="-last_seen_ms", limit=OPEN_CASES_LIMIT)
        cases = (Case.from_dict(hit) for hit in page.hits)
        return [case for case in cases if case.group_key == group_key and case.is_open]  # matching ignores case

    # -- writing

    def save(self, case: Case, entries: Sequence[TimelineEntry], previous_version: int | None, *,
             audit: builtins.list[tuple[Case, TimelineEntry]] | None = None) -> None:
        """Store `case` if the stored one is still at `previous_version` (None: a new case), then mirror `entries`
        (the changes from that version) to the audit collection (or, given `audit`, add them to it for the
        caller to write with others: `_write_audit`). A `VersionConflictError` propagates: nothing was written;
        reload and reapply. An error writing the audit entries after the case was saved propagates too (the
        case's own timeline has them)."""
        try:
            self.store.put(CASES, case_document(case), expected_version=previous_version)
        except VersionConflictError:
            self._forget(case.group_key)
            raise
        self._remember(case)
        if audit is not None:
            audit.extend((case, entry) for entry in entries)
        elif entries:
            self._write_audit([(case, entry) for entry in entries])

    def _write_audit(self, entries: Sequence[tuple[Case, TimelineEntry]]) -> None:
        """The timeline entries of saved cases, in one write to the audit collection."""
        if not entries:
            return
        result = self.store.write_audit([audit_entry(entry) for _, entry in entries])
        if result.failed:
            cases = sorted({f"{case.id} (version {case.version})" for case, _ in entries})
            raise CaseError(f"case {cases[0]}: saved, but the audit refused {len(result.failed)} of the timeline "
                            f"entries of {', '.join(cases)}: {result.failed[:3]}")

    def add_alert(self, incoming: IncomingAlert, at_ms: int) -> GroupResult:
        """Put one scored alert into a case (`CaseGrouper.add` over the open cases of its key) and save it. An
        alert already in its case (a replay) changes nothing: `GroupResult.duplicate`."""
        return self.add_alerts((incoming,), at_ms)[0]

    def add_alerts(self, incoming: Sequence[IncomingAlert], at_ms: int) -> builtins.list[GroupResult]:
        """Put scored alerts into cases as `add_alert` one after the other would, saving each changed case once:
        `plan_alerts`, then `save_alerts`."""
        return self.save_alerts(self.plan_alerts(incoming, at_ms))

    def plan_alerts(self, incoming: Sequence[IncomingAlert], at_ms: int) -> AlertsPlan:
        """Group scored alerts into cases in memory, reading the open cases but writing nothing: the alerts of one
        grouping key go through `CaseGrouper.add` in their order over the key's open cases, each result a
        candidate for the next alert. The engine plans before it takes the store's write lock and saves under it
        (`save_alerts`), so the lock is held for the writes alone."""
        results: builtins.list[GroupResult | None] = [None] * len(incoming)
        keys: dict[str | None, builtins.list[int]] = {}
        for index, item in enumerate(incoming):
            keys.setdefault(self.grouper.key_of(item.alert), []).append(index)
        changes = {key: self._group(key, [(index, incoming[index]) for index in indexes], at_ms, results)
                   for key, indexes in keys.items()}
        return AlertsPlan(incoming, at_ms, results, keys, changes)

    def save_alerts(self, plan: AlertsPlan) -> builtins.list[GroupResult]:
        """Save every case `plan` changed once, from the version it was read at, with all its new timeline
        entries. On a `VersionConflictError` (an analyst saved the case since the plan) the key's cases are read
        again and its alerts not saved yet grouped again (an alert that made it into its case meanwhile is a
        duplicate). The results are in the order of the plan's alerts, with the flags `add_alert` gives
        (`opened`, `duplicate`)."""
        audit: builtins.list[tuple[Case, TimelineEntry]] = []
        try:
            for key, indexes in plan.keys.items():
                self._save_key(key, [(index, plan.incoming[index]) for index in indexes], plan, audit)
        except BaseException:  # what was saved is audited, also when a later key failed (its error wins)
            with contextlib.suppress(StoreError, CaseError):
                self._write_audit(audit)
            raise
        self._write_audit(audit)
        return cast("builtins.list[GroupResult]", plan.results)  # `_save_key` fills every place of its key

    def _save_key(self, key: str | None, items: builtins.list[tuple[int, IncomingAlert]], plan: AlertsPlan,
                  audit: builtins.list[tuple[Case, TimelineEntry]]) -> None:
        """`save_alerts` for the alerts of one key (with their places in the plan): its planned changes first,
        grouped again after a conflict; adds the saved cases' timeline entries to `audit`."""
        pending = items
        changes = plan.changes[key]
        last: VersionConflictError | None = None
        for _ in range(self.max_attempts):
            saved: set[str] = set()
            try:
                for change in changes.values():
                    self.save(change.case, change.entries, change.previous, audit=audit)
                    saved.add(change.case.id)
            except VersionConflictError as exc:
                last = exc
                pending = [(index, item) for index, item in pending if not _settled(plan.results[index], saved)]
                changes = self._group(key, pending, plan.at_ms, plan.results)
                continue
            return
        first = pending[0][1].alert.id
        action = f"add_alert {first}" if len(pending) == 1 else f"add_alerts {first} and {len(pending) - 1} more"
        raise CaseConflictError(last.doc_id if last is not None else "(new)", action, self.max_attempts, last)

    def _group(self, key: str | None, items: builtins.list[tuple[int, IncomingAlert]], at_ms: int,
               results: builtins.list[GroupResult | None]) -> dict[str, _CaseChange]:
        """Group the alerts of one key over its open cases in memory: their results into `results`, and what is to
        be saved, by case id in the order of the first change."""
        cases = {case.id: case for case in self._candidates(key)}  # as this batch leaves them
        changes: dict[str, _CaseChange] = {}
        for index, item in items:
            result = self.grouper.add(item, cases.values(), at_ms)
            case = result.case
            if case is not None and not result.duplicate:
                change = changes.get(case.id)
                if result.opened:  # its id comes from the key and the alert: a replay finds the case it opened
                    existing = change.case if change is not None else self.get(case.id)
                    if existing is not None and existing.has_alert(item.alert.id):
                        results[index] = GroupResult(existing, duplicate=True)
                        continue
                if change is None:
                    previous = None if result.opened else cases[case.id].version
                    change = changes[case.id] = _CaseChange(case, previous)
                change.case = case
                change.entries.extend(result.entries)
                if key is not None:  # keyless alerts are never candidates of each other (as in `_candidates`)
                    if case.is_open:
                        cases[case.id] = case
                    else:
                        cases.pop(case.id, None)
            results[index] = result
        return changes

    def apply(self, case_id: str, command: Command, actor: str) -> Case:
        """Apply an analyst's `command` at the clock's time and save the case; `CaseNotFoundError` and
        `CommandError` propagate. Merges and splits change two cases: they are `merge` and `split`."""
        if isinstance(command, Merge | MergedInto | SplitOut):
            raise CommandError(case_id, command.type, "changes two cases: use CaseRepository.merge or split")

        def change(case: Case, at_ms: int) -> tuple[Case, tuple[TimelineEntry, ...]]:
            changed, entry = apply_command(case, command, actor, at_ms)
            return changed, (entry,)

        return self._change(case_id, command.type, change)

    def refresh(self, case_id: str, actor: str) -> Case:
        """Bring the case in line with the grouper's configuration (`CaseGrouper.refresh`); unchanged if it is."""
        return self._change(case_id, "refresh", lambda case, at_ms: self.grouper.refresh(case, actor, at_ms))

    def merge(self, target_id: str, source_id: str, actor: str) -> tuple[Case, Case]:
        """`target` absorbs `source` (`CaseGrouper.merge`): (the target, the source, closed and merged into it)."""
        last: VersionConflictError | None = None
        for _ in range(self.max_attempts):
            target, source = self.require(target_id), self.require(source_id)
            _, closed, entries = self.grouper.merge(target, source, actor, self.clock())
            try:
                self.save(closed, _of(entries, source.id), source.version)
            except VersionConflictError as exc:
                last = exc
                continue
            break
        else:
            raise CaseConflictError(source_id, f"merge into {target_id}", self.max_attempts, last)

        # The source is closed: its alerts cannot change any more. Its snapshot goes into the target, reloaded
        # and merged again if the target changed meanwhile.
        def absorb(current: Case, at_ms: int) -> tuple[Case, tuple[TimelineEntry, ...]]:
            merged, _, more = self.grouper.merge(current, source, actor, at_ms)
            return merged, _of(more, current.id)

        try:
            merged = self._change(target_id, "merge", absorb)
        except (CaseError, StoreError) as exc:
            raise IncompleteChangeError(target_id, f"merge {source_id}",
                                        f"case {source_id} was closed as merged into {target_id}", exc) from exc
        return merged, closed

    def split(self, case_id: str, alert_ids: Sequence[str], actor: str) -> tuple[Case, Case]:
        """Move `alert_ids` out of the case into a new case (`CaseGrouper.split`): (the case, the new case)."""
        last: VersionConflictError | None = None
        for _ in range(self.max_attempts):
            case = self.require(case_id)
            remaining, new_case, entries = self.grouper.split(case, alert_ids, actor, self.clock())
            if self.get(new_case.id) is not None:
                raise CommandError(case_id, "split_out", f"case {new_case.id} exists already (these alerts were "
                                                         "split out of this case before)")
            try:
                self.save(remaining, _of(entries, case.id), case.version)
            except VersionConflictError as exc:
                last = exc
                continue
            try:
                self.save(new_case, _of(entries, new_case.id), None)
            except (CaseError, StoreError) as exc:
                raise IncompleteChangeError(case_id, "split", f"alerts {', '.join(sorted(set(alert_ids)))} were "
                                            f"taken out of the case for case {new_case.id}", exc) from exc
            return remaining, new_case
        raise CaseConflictError(case_id, "split", self.max_attempts, last)

    def _change(self, case_id: str, action: str,
                change: Callable[[Case, int], tuple[Case, tuple[TimelineEntry, ...]]]) -> Case:
        """Read the case, change it at the clock's time and save it from the version read; again on a conflict."""
        last: VersionConflictError | None = None
        for _ in range(self.max_attempts):
            case = self.require(case_id)
            changed, entries = change(case, self.clock())
            if not entries:
                return case
            try:
                self.save(changed, entries, case.version)
            except VersionConflictError as exc:
                last = exc
                continue
            return changed
        raise CaseConflictError(case_id, action, self.max_attempts, last)

    # -- the cache of open cases (add_alerts)

    def forget_cache(self) -> None:
        self._open.clear()

    def _candidates(self, key: str | None) -> builtins.list[Case]:
        if key is None:
            return []
        cached = self._open.get(key)
        if cached is None:
            cached = {case.id: case for case in self.open_cases(key)}
            self._open[key] = cached
            while len(self._open) > self.cache_keys:
                self._open.popitem(last=False)
        else:
            self._open.move_to_end(key)
        return builtins.list(cached.values())

    def _remember(self, case: Case) -> None:
        cached = self._open.get(case.group_key) if case.group_key is not None else None
        if cached is None:
            return
        if case.is_open:
            cached[case.id] = case
        else:
            cached.pop(case.id, None)

    def _forget(self, key: str | None) -> None:
        if key is not None:
            self._open.pop(key, None)

    # -- listing (last: `list` shadows the builtin in the class body)

    def list(self, query: str = "", *, since_ms: int | None = None, until_ms: int | None = None,
             sort: str = "-updated_ms", limit: int = 50, offset: int = 0) -> tuple[int, builtins.list[Case]]:
        """The cases matching `query` (the store's query language over the stored case fields, e.g.
        ``status:new AND severity:critical``, ``assignee:alice``, ``rule_ids:r1``), created within the time range:
        (total, one page)."""
        page = self.store.search(CASES, query, since_ms=since_ms, until_ms=until_ms, sort=sort, limit=limit,
                                 offset=offset)
        return page.total, [Case.from_dict(hit) for hit in page.hits]
