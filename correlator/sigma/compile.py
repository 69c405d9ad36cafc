"""pySigma rule object -> `CompiledRule` (cold path: imports pySigma).

For each Windows source profile the rule is copied, the profile's pipelines are applied to the copy (pySigma
pipelines change a rule in place), the condition is converted to IR, and the Channel/EventID conditions the
pipelines (or the rule itself) put at the top of the detection are pulled out as routing keys.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sigma.exceptions import SigmaError

from correlator.errors import RuleCompileError
from correlator.sigma.convert import Placeholders, rule_to_ir
from correlator.sigma.ir import Node, fields_of, is_eventid_leaf, make_and, required_fields, route_event_ids
from correlator.sigma.matchers import compile_node
from correlator.sigma.prefilter import literal_fields, load_common_values, required_literals
from correlator.sigma.rule import CompiledRule, Level, RouteKey, RuleMeta, Variant
from correlator.sigma.sources import SourcesConfig, resolve_pipeline

_LEVELS = {lv.value: lv for lv in Level}


@dataclass(frozen=True)
class CompileContext:
    """Everything compiling needs besides the rule: built once per load."""

    sources: SourcesConfig
    profiles: tuple[tuple[str, Any], ...]  # (name, combined pySigma pipeline)
    user_pipeline: Any | None
    other_pipeline: Any | None  # for rules that are not Windows rules (`SourcesConfig.other_pipelines`)
    placeholders: Placeholders
    common: tuple[str, ...]  # ubiquitous values: literals inside them rank last in the prefilter


def make_context(
    sources: SourcesConfig, user_pipelines: Sequence[Any] = (), placeholders: Placeholders | None = None
) -> CompileContext:
    profiles = []
    for prof in sources.windows_profiles:
        pipes = [resolve_pipeline(p, sources.base_dir) for p in prof.pipelines]
        combined = pipes[0]
        for p in pipes[1:]:
            combined = combined + p
        profiles.append((prof.name, combined))
    user = None
    for p in user_pipelines:
        user = p if user is None else user + p
    other = None
    for name in sources.other_pipelines:
        pipe = resolve_pipeline(name, sources.base_dir)
        other = pipe if other is None else other + pipe
    return CompileContext(sources, tuple(profiles), user, other, placeholders or {}, load_common_values())


def extract_windows_route(ir: Node) -> tuple[frozenset[str] | None, frozenset[int] | None, Node]:
    """Pull top-level Channel and EventID equality conditions out of a detection (routing guarantees them).
    EventIDs that appear in every branch of an OR route too, but stay in the detection."""
    conjuncts = ir[1] if ir[0] == "and" else (ir,)
    channels: frozenset[str] | None = None
    eids: frozenset[int] | None = None
    rest: list[Node] = []
    for c in conjuncts:
        if c[0] == "str" and c[1] == "Channel" and not c[2] and all(k == "eq" for k, _ in c[3]):
            found = frozenset(t for _, t in c[3])
            channels = found if channels is None else channels & found
            continue
        ids = is_eventid_leaf(c)
        if ids is not None:
            eids = ids if eids is None else eids & ids
            continue
        rest.append(c)
    remaining = make_and(rest)
    if eids is None:
        eids = route_event_ids(remaining)  # EventIDs in every branch: route by them, keep them in the test
    return channels, eids, remaining


def _meta(rule: Any, path: str) -> RuleMeta:
    level = _LEVELS.get(rule.level.name.lower(), Level.MEDIUM) if rule.level is not None else Level.MEDIUM
    rid = str(rule.id) if rule.id else str(uuid.uuid5(uuid.NAMESPACE_URL, f"socctl:{path}:{rule.title}"))
    ls = rule.logsource
    tags = tuple(f"{t.namespace}.{t.name}" for t in (rule.tags or []))
    author = rule.author if isinstance(rule.author, str) else None
    return RuleMeta(
        id=rid,
        title=str(rule.title),
        level=level,
        status=rule.status.name.lower() if rule.status is not None else None,
        tags=tags,
        description=rule.description,
        path=path,
        logsource=(ls.product, ls.category, ls.service),
        falsepositives=tuple(str(f) for f in (rule.falsepositives or [])),
        author=author,
    )


def _variant(ctx: CompileContext, profile: str, routes: tuple[RouteKey, ...], ir: Node) -> Variant:
    clauses = required_literals(ir, ctx.common)
    return Variant(profile, routes, ir, clauses, literal_fields(ir, clauses), reads=tuple(sorted(fields_of(ir))),
                   required=required_fields(ir), event_ids=route_event_ids(ir))


def _check_compiles(ir: Node) -> None:
    """Build the predicate once at compile time so regex and value errors surface at load, not per event."""
    compile_node(ir)


def compile_rule(rule: Any, path: str, ctx: CompileContext) -> CompiledRule:
    """One parsed pySigma rule -> CompiledRule. Raises RuleCompileError (or SigmaError) on failure."""
    if ctx.user_pipeline is not None:
        rule = copy.deepcopy(rule)
        ctx.user_pipeline.apply(rule)
    product = (rule.logsource.product or "").lower()
    if product != "windows" and ctx.other_pipeline is not None:
        rule = copy.deepcopy(rule)
        ctx.other_pipeline.apply(rule)
    meta = _meta(rule, path)
    generic_ir = rule_to_ir(rule, ctx.placeholders)
    _check_compiles(generic_ir)
    generic = _variant(ctx, "generic", (), generic_ir)
    notes: list[str] = []
    if product != "windows":
        prod, cat, svc = ((v.lower() if v else None) for v in meta.logsource)
        route: RouteKey = ("ls", prod, cat, svc)
        return CompiledRule(meta, (_variant(ctx, "logsource", (route,), generic_ir),), generic, ())

    variants: list[Variant] = []
    seen: set[RouteKey] = set()
    for name, pipeline in ctx.profiles:
        work = copy.deepcopy(rule)
        try:
            pipeline.apply(work)
            ir = rule_to_ir(work, ctx.placeholders)
        except SigmaError as exc:
            notes.append(f"{name}: {exc}")
            continue
        channels, eids, rest = extract_windows_route(ir)
        if channels is None:
            continue
        routes: list[RouteKey] = []
        for ch in sorted(channels):
            for eid in sorted(eids) if eids is not None else [None]:
                key: RouteKey = ("win", ch, eid)
                if key in seen:
                    continue
                schema = ctx.sources.event_schemas.get((ch, eid)) if eid is not None else None
                if schema is not None:
                    missing = sorted(
                        f for f in required_fields(rest)
                        if f not in schema and f not in ctx.sources.windows_system_fields and "." not in f
                    )
                    if missing:
                        notes.append(
                            f"cannot match {ch}/{eid} ({name}): the source has no field {', '.join(missing)}"
                        )
                        seen.add(key)
                        continue
                routes.append(key)
                seen.add(key)
        if routes:
            _check_compiles(rest)
            variants.append(_variant(ctx, name, tuple(routes), rest))
    if not variants:
        # Routed by the EventIDs every match has, when the detection names them (they stay in the test).
        any_eids = route_event_ids(generic_ir)
        if any_eids is None:
            notes.append("log source not mapped to a Windows channel: evaluated against every Windows event")
            any_routes: tuple[RouteKey, ...] = (("win", None, None),)
        else:
            ids = ", ".join(str(eid) for eid in sorted(any_eids))
            notes.append(f"log source not mapped to a Windows channel: evaluated against every Windows event "
                         f"with EventID {ids}")
            any_routes = tuple(("win", None, eid) for eid in sorted(any_eids))
        variants.append(_variant(ctx, "windows-any", any_routes, generic_ir))
    return CompiledRule(meta, tuple(variants), generic, tuple(notes))


def placeholder_values(data: Mapping[str, Any], where: str) -> dict[str, list[str]]:
    """Validate a placeholder values mapping: name -> list of strings."""
    out: dict[str, list[str]] = {}
    for name, values in data.items():
        items = values if isinstance(values, list) else [values]
        if not all(isinstance(v, str | int) for v in items):
            raise RuleCompileError(f"{where}: placeholder {name!r} must map to a string or a list of strings")
        out[str(name)] = [str(v) for v in items]
    return out
