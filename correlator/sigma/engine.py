"""The Sigma evaluator: route an event to the rules of its log source, narrow them with the literal prefilter,
evaluate the candidates' compiled predicates, and return alerts.

Route buckets are built lazily, once per distinct source (Windows Channel/EventID, or the Sigma log sources of
a non-Windows event), and cached; an event whose source is unknown is evaluated against every rule whose
required fields it carries, and the unknown source is reported once.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from correlator.model import Alert, Event, MatchedRule
from correlator.sigma.ir import Node
from correlator.sigma.matchers import Pred, compile_node, lowered
from correlator.sigma.prefilter import Candidates, LiteralFields, is_native, make_prefilter
from correlator.sigma.rule import CompiledRule, RouteKey, Variant
from correlator.sigma.sources import SourcesConfig

log = logging.getLogger(__name__)

_UNKNOWN_CACHE_LIMIT = 4096


class LowerView(dict[str, Any]):
    """The case-folded form of an event's fields, computed on first use per field."""

    __slots__ = ("fields",)

    def __init__(self, fields: dict[str, Any]) -> None:
        super().__init__()
        self.fields = fields

    def __missing__(self, key: str) -> Any:
        value = self.fields.get(key)
        low = lowered(value) if value is not None else None
        self[key] = low
        return low


@dataclass(slots=True)
class _Runner:
    """A variant ready to run: its predicate, the rule it belongs to, what it reads. The predicate is compiled
    when the runner is first a candidate (`compiled`): most runners of a bucket never pass the prefilter."""

    rule_index: int
    ir: Node
    fields: tuple[str, ...]
    literals: tuple[frozenset[str], ...] | None
    literal_fields: LiteralFields | None
    required: frozenset[str]
    shown: tuple[str, ...]  # fields copied into an alert's `matched`: what the rule reads, plus routing fields
    pred: Pred | None = None
    event_ids: frozenset[int] | None = None  # EventIDs every match has (from the detection), if any

    def compiled(self) -> Pred:
        if self.pred is None:
            self.pred = compile_node(self.ir)
        return self.pred

    def applies_to(self, names: frozenset[str], event_id: int | None) -> bool:
        """For events of unknown source: the event carries every required field and, unless the rule is
        field-less (keywords), at least one field the rule reads; a rule that needs certain EventIDs only
        applies to an event with one of them."""
        if not self.required <= names:
            return False
        if self.event_ids is not None and event_id not in self.event_ids:
            return False
        return not self.fields or not names.isdisjoint(self.fields)


@dataclass(slots=True)
class _Bucket:
    """The rules one kind of event meets, and their prefilter over the event's values."""

    runners: tuple[_Runner, ...]
    prefilter: Candidates
    needs_ecs: bool  # some rule reads a dotted (ECS) field: match on `Event.fields`, not `Event.native`


@dataclass
class EngineStats:
    events: int = 0
    alerts: int = 0
    evaluated: int = 0  # candidate predicates run
    unknown_sources: dict[str, int] = field(default_factory=dict)
    rule_errors: dict[str, int] = field(default_factory=dict)  # rule id -> evaluations that raised


def _routing_fields(variant: Variant) -> set[str]:
    """The fields a variant's routes test (Windows: Channel and, when routed by it, EventID)."""
    out: set[str] = set()
    for key in variant.routes:
        if key[0] == "win":
            if key[1] is not None:
                out.add("Channel")
            if key[2] is not None:
                out.add("EventID")
    return out


def _hashable(value: Any) -> Any:
    return tuple(value) if value.__class__ is list else value


def _win_keys(channel: str, eid: int | None) -> tuple[RouteKey, ...]:
    return (("win", channel, eid), ("win", channel, None), ("win", None, eid), ("win", None, None))


def _ls_keys(sources: Iterable[tuple[str | None, str | None, str | None]]) -> list[RouteKey]:
    keys: list[RouteKey] = []
    for prod, cat, svc in sources:
        for p in (prod, None):
            for c in (cat, None):
                for s in (svc, None):
                    if p is None and c is None and s is None:
                        continue
                    key: RouteKey = ("ls", p, c, s)
                    if key not in keys:
                        keys.append(key)
    return keys


class SigmaEngine:
    """Evaluate events against compiled rules. Not thread-safe (lazy caches); use one per worker."""

    def __init__(self, rules: Sequence[CompiledRule], sources: SourcesConfig) -> None:
        self.rules = list(rules)
        self.sources = sources
        self._matched = [
            MatchedRule(
                id=r.meta.id, title=r.meta.title, level=r.meta.level.value, tags=r.meta.tags, kind="sigma",
                path=r.meta.path, description=r.meta.description,
            )
            for r in self.rules
        ]
        # Variants by route key; each is compiled into a runner when the first bucket that needs it is built,
        # so start-up does no closure building and sources never seen cost nothing.
        self._by_route: dict[RouteKey, list[tuple[int, Variant]]] = {}
        for i, rule in enumerate(self.rules):
            for variant in rule.variants:
                for key in variant.routes:
                    self._by_route.setdefault(key, []).append((i, variant))
        self._runners: dict[int, _Runner] = {}
        # Runners for events of unknown source, built on the first such event.
        self._generic_by_field: dict[str, list[_Runner]] | None = None
        self._generic_no_field: list[_Runner] = []
        self._buckets: dict[Any, _Bucket] = {}
        # Route keys -> bucket. Sources whose keys with rules are the same (most EventIDs of a channel have no
        # rules of their own) share one bucket, built once.
        self._routed: dict[tuple[RouteKey, ...], _Bucket] = {}
        self._win_buckets: dict[tuple[Any, Any], _Bucket] = {}  # (Channel, EventID) as given -> bucket
        self._ls_fields = sources.logsource_fields
        self._ls_cache: dict[tuple[Any, ...], tuple[RouteKey, ...]] = {}
        self._raw_ls_cache: dict[tuple[Any, ...], tuple[RouteKey, ...]] = {}
        self.stats = EngineStats()

    def _runner_for(self, index: int, variant: Variant) -> _Runner:
        runner = self._runners.get(id(variant))
        if runner is None:
            runner = self._runners[id(variant)] = self._runner(index, variant)
        return runner

    def _runner(self, index: int, variant: Variant) -> _Runner:
        return _Runner(
            rule_index=index,
            ir=variant.ir,
            fields=variant.reads,
            literals=variant.literals,
            literal_fields=variant.literal_fields,
            required=variant.required,
            shown=tuple(sorted({*variant.reads, *_routing_fields(variant)})),
            event_ids=variant.event_ids if not variant.routes else None,
        )

    # -- buckets ---------------------------------------------------------------------------------------
    def _make_bucket(self, runners: list[_Runner]) -> _Bucket:
        ordered = tuple(sorted({id(r): r for r in runners}.values(), key=lambda r: (r.rule_index, r.fields)))
        needs_ecs = any("." in f for r in ordered for f in r.fields)
        prefilter = make_prefilter([r.literals for r in ordered], [r.literal_fields for r in ordered])
        return _Bucket(ordered, prefilter, needs_ecs)

    def _bucket_for_keys(self, keys: tuple[RouteKey, ...]) -> _Bucket:
        bucket = self._routed.get(keys)
        if bucket is None:
            ruled = tuple(k for k in keys if k in self._by_route)
            bucket = self._buckets.get(("routes", ruled))
            if bucket is None:
                runners = [self._runner_for(i, v) for k in ruled for i, v in self._by_route[k]]
                bucket = self._buckets[("routes", ruled)] = self._make_bucket(runners)
            self._routed[keys] = bucket
        return bucket

    def _unknown_bucket(self, event: Event) -> _Bucket:
        names = frozenset(event.fields)
        try:
            event_id: int | None = int(event.native.get("EventID"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            event_id = None
        key = ("unknown", names, event_id)
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) > _UNKNOWN_CACHE_LIMIT:
                self._buckets = {k: v for k, v in self._buckets.items() if k[0] != "unknown"}
            by_field = self._generic_runners()
            runners = [r for r in self._generic_no_field if r.applies_to(names, event_id)]
            for name in names:
                runners.extend(r for r in by_field.get(name, ()) if r.applies_to(names, event_id))
            bucket = self._make_bucket(runners)
            self._buckets[key] = bucket
        return bucket

    def _generic_runners(self) -> dict[str, list[_Runner]]:
        if self._generic_by_field is None:
            self._generic_by_field = {}
            for i, rule in enumerate(self.rules):
                runner = self._runner(i, rule.generic)
                if runner.required:
                    self._generic_by_field.setdefault(min(runner.required), []).append(runner)
                else:
                    self._generic_no_field.append(runner)
        return self._generic_by_field

    def route(self, event: Event) -> tuple[RouteKey, ...] | None:
        """The route keys of an event, or None when its log source is unknown."""
        fields = event.native
        channel = fields.get("Channel")
        if channel is not None and "EventID" in fields:
            eid = fields.get("EventID")
            try:
                eid_int: int | None = int(eid)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                eid_int = None
            return _win_keys(str(channel).lower(), eid_int)
        # The log-source fields as they are (lists as tuples): most events repeat a few combinations, so the
        # keys are looked up by them before any value is case-folded.
        raw = tuple([v if v.__class__ is not list else tuple(v) for v in map(fields.get, self._ls_fields)])
        try:
            cached = self._raw_ls_cache.get(raw)
        except TypeError:  # an object where a name belongs: looked up by its text, as any value, but not kept
            return self._folded_route(raw) or None
        if cached is None:
            cached = self._folded_route(raw)
            if len(self._raw_ls_cache) > _UNKNOWN_CACHE_LIMIT:
                self._raw_ls_cache.clear()
            self._raw_ls_cache[raw] = cached
        return cached or None

    def _folded_route(self, raw: tuple[Any, ...]) -> tuple[RouteKey, ...]:
        """The route keys of the log-source fields' values, case-folded (objects by their text)."""
        sig = tuple(_hashable(lowered(v)) for v in raw)
        cached = self._ls_cache.get(sig)
        if cached is None:
            if len(self._ls_cache) > _UNKNOWN_CACHE_LIMIT:
                self._ls_cache.clear()
            cached = tuple(_ls_keys(self.sources.logsources_for(sig)))
            self._ls_cache[sig] = cached
        return cached

    def quiet_prefilter(self, channel: str, event_id: int) -> object | None:
        """The native prefilter of the Windows events of (`channel`, `event_id`) when its rules read the record's
        own fields only (no ECS view), else None (the Python prefilter, or events that must be built first). The
        native EVTX reader asks this once per source and runs it over the record's values: a record in which it
        finds no candidate (always-evaluated rules are candidates of every record) is sure to raise no alert and
        is not built; the others carry what it found (`Event.prefiltered`)."""
        bucket = self._win_buckets.get((channel, event_id))
        if bucket is None:
            bucket = self._bucket_for_keys(_win_keys(channel.lower(), event_id))
            if len(self._win_buckets) < _UNKNOWN_CACHE_LIMIT:
                self._win_buckets[(channel, event_id)] = bucket
        if bucket.needs_ecs or not is_native(bucket.prefilter):
            return None
        return bucket.prefilter

    def _note_unknown(self, event: Event) -> None:
        f = event.fields
        sig = "/".join(str(f.get(k) or "-") for k in ("event.module", "event.dataset", "event.category"))
        sig = f"{event.origin.format}:{sig}"
        count = self.stats.unknown_sources.get(sig, 0)
        if count == 0:
            log.warning("unknown log source %s (first seen at %s): evaluating every rule whose fields it carries",
                        sig, event.origin.describe())
        self.stats.unknown_sources[sig] = count + 1

    # -- evaluation ------------------------------------------------------------------------------------
    def match(self, event: Event) -> list[Alert]:
        """Alerts for one event (at most one per rule)."""
        stats = self.stats
        stats.events += 1
        bucket = self._bucket(event)
        if not bucket.runners:
            return []
        # The record's own fields (`native`) unless a rule of this source reads an ECS name: the ECS view of a
        # deferred event is built only then. Keywords search the values of the view in use.
        fields = event.fields if bucket.needs_ecs else event.native
        prefiltered = event.prefiltered  # what the reader found with this very prefilter (the EVTX reader's)
        if prefiltered is not None and prefiltered[0] is bucket.prefilter:
            cands = prefiltered[1]
        else:
            cands = bucket.prefilter.candidates_fields(fields)
        if not cands:
            return []
        stats.evaluated += len(cands)
        return self._evaluate(bucket.runners, cands, event, fields)

    def match_naive(self, event: Event) -> list[Alert]:
        """The same alerts without the literal prefilter: every rule of the event's log source is evaluated.
        The baseline for benchmarks and the reference for equivalence tests."""
        self.stats.events += 1
        bucket = self._bucket(event)
        fields = event.fields if bucket.needs_ecs else event.native
        self.stats.evaluated += len(bucket.runners)
        return self._evaluate(bucket.runners, range(len(bucket.runners)), event, fields)

    def _bucket(self, event: Event) -> _Bucket:
        native = event.native
        channel = native.get("Channel")
        if channel is not None:  # Windows: one dict lookup on (Channel, EventID) per event once seen
            bucket = self._win_buckets.get((channel, native.get("EventID")))
            if bucket is not None:
                return bucket
        keys = self.route(event)
        if keys is None:
            self._note_unknown(event)
            return self._unknown_bucket(event)
        bucket = self._bucket_for_keys(keys)
        if keys[0][0] == "win" and len(self._win_buckets) < _UNKNOWN_CACHE_LIMIT:
            with contextlib.suppress(TypeError):  # an unhashable EventID value is routed the slow way each time
                self._win_buckets[(channel, native.get("EventID"))] = bucket
        return bucket

    def _evaluate(
        self, runners: tuple[_Runner, ...], cands: Sequence[int], event: Event, fields: dict[str, Any]
    ) -> list[Alert]:
        low = LowerView(fields)
        alerts: list[Alert] = []
        fired: set[int] = set()
        for i in cands:
            r = runners[i]
            if r.rule_index in fired:
                continue
            try:
                hit = (r.pred or r.compiled())(low, fields)
            except Exception as exc:
                self._rule_failed(r, event, exc)
                continue
            if hit:
                fired.add(r.rule_index)
                alerts.append(self._alert(r, event, fields))
        self.stats.alerts += len(alerts)
        return alerts

    def _rule_failed(self, runner: _Runner, event: Event, exc: Exception) -> None:
        rule = self.rules[runner.rule_index].meta
        count = self.stats.rule_errors.get(rule.id, 0)
        if count == 0:
            log.error("rule %s (%s) failed on event %s at %s: %s: %s; counting further failures",
                      rule.id, rule.path, event.id, event.origin.describe(), type(exc).__name__, exc)
        self.stats.rule_errors[rule.id] = count + 1

    def _alert(self, runner: _Runner, event: Event, fields: dict[str, Any]) -> Alert:
        matched = {f: fields[f] for f in runner.shown if f in fields}
        return Alert(
            rule=self._matched[runner.rule_index],
            event_id=event.id,
            timestamp_ms=event.timestamp_ms,
            host_name=event.host_name,
            origin=event.origin,
            matched=matched,
        )

    # -- introspection (benchmarks, `rules check`) ----------------------------------------------------
    def bucket_sizes(self) -> dict[str, tuple[int, int]]:
        """Per built bucket: (rules, always-evaluated rules)."""
        return {str(k): (len(b.runners), len(b.prefilter.always)) for k, b in self._buckets.items()}
