"""Load Sigma correlation rules in two passes, collect-all.

Pass 1 (syntax) reads each YAML document (or takes pySigma's parsed objects) and turns each correlation rule into
a `_Parsed` record; the base rules met on the way are remembered by id and name. pySigma parses the
correlation section (`SigmaCorrelationRule`); socctl adds what pySigma 1.5 lacks: range conditions (several
operators at once, as the specification allows) and every failure kept with its file and line.

Pass 2 (references) resolves `rules:` and `aliases:` (by `id` or `name`) against the base rules and the other
correlation rules, rejects duplicate ids, reference cycles and chains through broken rules, and builds resolved
`CorrelationRule`s with their semantic hashes, referenced rules first. A bad rule is reported; the others load.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from correlator.correlation.definitions import ConditionOp, CorrelationType
from correlator.correlation.errors import CorrelationRuleError
from correlator.correlation.rule import Condition, CorrelationRule, semantic_hash

__all__ = [
    "BaseRule",
    "CorrelationSet",
    "load_correlation_collection",
    "load_correlation_paths",
    "load_correlation_texts",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BaseRule:
    """A (non-correlation) rule that correlation rules may reference: by `id` or by `name`."""

    id: str | None
    name: str | None = None
    path: str | None = None

    @property
    def canonical(self) -> str:
        return self.id or self.name or ""


@dataclass(frozen=True, slots=True)
class CorrelationSet:
    """The loaded correlation rules (referenced rules before the rules that reference them) and every failure."""

    rules: tuple[CorrelationRule, ...] = ()
    errors: tuple[CorrelationRuleError, ...] = ()
    base_rules: tuple[BaseRule, ...] = ()  # the base rules the loaded correlation rules reference
    # Rules (base or correlation) whose own alerts are withheld: referenced, and by no rule with `generate: true`.
    withheld: frozenset[str] = field(default_factory=frozenset)

    def emits_own_alerts(self, rule_id: str) -> bool:
        """Whether a rule's own alerts should be output (`generate`); by canonical id, `id` or `name`."""
        if rule_id in self.withheld:
            return False
        for base in self.base_rules:
            if rule_id in (base.id, base.name) and base.canonical in self.withheld:
                return False
        return all(not (rule_id == rule.name and rule.id in self.withheld) for rule in self.rules)

    def raise_first(self) -> None:
        """Fail-fast callers: raise the first failure, if any."""
        if self.errors:
            raise self.errors[0]


@dataclass(slots=True)
class _Parsed:
    """Pass 1's output for one correlation rule: syntax checked, references still as written."""

    path: str
    line: int | None
    id: str | None
    name: str | None
    title: str
    type: CorrelationType
    references: list[str]
    group_by: list[str]
    timespan_ms: int
    condition: Condition
    aliases: dict[str, dict[str, str]]
    generate: bool
    level: str | None
    tags: list[str]
    description: str | None

    @property
    def canonical(self) -> str:
        return self.id or self.name or ""


@dataclass(slots=True)
class _Pass1:
    parsed: list[_Parsed] = field(default_factory=list)
    base: list[BaseRule] = field(default_factory=list)
    errors: list[CorrelationRuleError] = field(default_factory=list)
    failed: dict[str, CorrelationRuleError] = field(default_factory=dict)  # id/name of a failed correlation


# ---------------------------------------------------------------------------------------------------- entry points


def load_correlation_texts(
    documents: Iterable[tuple[str, str]], *, base_rules: Iterable[BaseRule] = (), fail_fast: bool = False
) -> CorrelationSet:
    """Load from `(path, yaml_text)` pairs; each text may hold several YAML documents (base and correlation rules).

    `base_rules` adds rules known elsewhere (e.g. compiled by the Sigma loader) that correlation rules may reference.
    """
    state = _Pass1(base=list(base_rules))
    for path, text in documents:
        _read_text(path, text, state)
    return _finish(state, fail_fast)


def load_correlation_paths(
    paths: Iterable[str | Path], *, base_rules: Iterable[BaseRule] = (), fail_fast: bool = False
) -> CorrelationSet:
    """Load every `*.yml`/`*.yaml` file under the given files and directories (sorted, so the order is stable)."""
    documents: list[tuple[str, str]] = []
    errors: list[CorrelationRuleError] = []
    for entry in paths:
        root = Path(entry)
        files = sorted(p for p in root.rglob("*") if p.suffix in (".yml", ".yaml")) if root.is_dir() else [root]
        for file in files:
            try:
                documents.append((str(file), file.read_text(encoding="utf-8")))
            except (OSError, UnicodeDecodeError) as exc:
                errors.append(CorrelationRuleError(str(file), f"cannot read: {exc}"))
    state = _Pass1(base=list(base_rules), errors=errors)
    for path, text in documents:
        _read_text(path, text, state)
    return _finish(state, fail_fast)


def load_correlation_collection(
    collection: Any, *, path: str = "<collection>", base_rules: Iterable[BaseRule] = (), fail_fast: bool = False
) -> CorrelationSet:
    """Load from a pySigma `SigmaCollection` (parsed already): its correlation rules and, as base rules, the rest.

    pySigma 1.5 rejects range conditions itself; use the text or path loaders for rules with ranges.
    """
    from sigma.correlations import SigmaCorrelationRule
    from sigma.rule import SigmaRule

    state = _Pass1(base=list(base_rules))
    for rule in collection.rules:
        source = getattr(rule, "source", None)
        where = str(source.path) if source is not None and getattr(source, "path", None) else path
        line = getattr(source, "line", None) if source is not None else None
        if isinstance(rule, SigmaCorrelationRule):
            _take_pysigma(rule, where, line, None, state)
        elif isinstance(rule, SigmaRule):
            state.base.append(BaseRule(str(rule.id) if rule.id else None, rule.name, where))
    return _finish(state, fail_fast)


# ---------------------------------------------------------------------------------------------------- pass 1


def _documents(text: str) -> Iterable[tuple[int, Any]]:
    """Each YAML document with the (1-based) line it starts on."""
    loader = yaml.SafeLoader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:  # pragma: no cover - check_node said there is one
                break
            yield node.start_mark.line + 1, loader.construct_document(node)
    finally:
        loader.dispose()


def _read_text(path: str, text: str, state: _Pass1) -> None:
    try:
        documents = list(_documents(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        state.errors.append(
            CorrelationRuleError(path, f"invalid YAML: {problem}", line=mark.line + 1 if mark is not None else None)
        )
        return
    for line, doc in documents:
        if not isinstance(doc, dict):
            continue
        if "correlation" in doc:
            _take_dict(doc, path, line, state)
        elif "detection" in doc:
            rule_id, name = doc.get("id"), doc.get("name")
            state.base.append(BaseRule(str(rule_id) if rule_id else None, str(name) if name else None, path))


def _take_dict(doc: dict[str, Any], path: str, line: int, state: _Pass1) -> None:
    from sigma.correlations import SigmaCorrelationRule

    section = doc.get("correlation")
    condition_raw = section.get("condition") if isinstance(section, dict) else None
    given = doc
    if isinstance(condition_raw, dict):
        # pySigma 1.5 takes exactly one operator; the specification allows a range. Give pySigma the first one
        # and read the whole condition ourselves.
        ops = [k for k in condition_raw if k not in ("field", "percentile")]
        if len(ops) > 1:
            single = {k: v for k, v in condition_raw.items() if k not in ops[1:]}
            given = {**doc, "correlation": {**section, "condition": single}}  # type: ignore[dict-item]
    try:
        rule = SigmaCorrelationRule.from_dict(given, collect_errors=True)
    except UnboundLocalError:  # pySigma 1.5 on a missing or non-map condition of a non-temporal rule
        _fail(state, path, line, _ident(doc), "correlation rule without a valid condition (a map such as {gte: 10})")
        return
    except Exception as exc:  # pySigma raises ValueError, TypeError, ... on bad input
        _fail(state, path, line, _ident(doc), _reason(exc))
        return
    _take_pysigma(rule, path, line, condition_raw if isinstance(condition_raw, dict) else None, state)


def _take_pysigma(rule: Any, path: str, line: int | None, condition_raw: Mapping[str, Any] | None,
                  state: _Pass1) -> None:
    from sigma.correlations import SigmaExtendedCorrelationCondition

    ident = (str(rule.id) if rule.id else None, rule.name)
    if rule.errors:
        _fail(state, path, line, ident, "; ".join(_reason(e) for e in rule.errors))
        return
    if isinstance(rule.condition, SigmaExtendedCorrelationCondition):
        _fail(state, path, line, ident, "extended (boolean) correlation conditions are not supported")
        return
    if not ident[0] and not ident[1]:
        _fail(state, path, line, ident, "correlation rule without id or name")
        return
    try:
        condition = _condition(rule.condition, condition_raw)
    except ValueError as exc:
        _fail(state, path, line, ident, str(exc))
        return
    aliases = {
        alias.alias: {ref.reference: str(fieldname) for ref, fieldname in alias.mapping.items()}
        for alias in rule.aliases
    }
    state.parsed.append(_Parsed(
        path=path, line=line, id=ident[0], name=ident[1], title=str(rule.title or ""),
        type=CorrelationType(rule.type.name.lower()),
        references=[ref.reference for ref in (rule.rules or [])],
        group_by=[str(g) for g in (rule.group_by or [])],
        timespan_ms=int(rule.timespan.seconds) * 1000,
        condition=condition, aliases=aliases, generate=bool(rule.generate),
        level=str(rule.level) if rule.level is not None else None,
        tags=[str(tag) for tag in rule.tags], description=rule.description,
    ))


def _condition(cond: Any, raw: Mapping[str, Any] | None) -> Condition:
    if raw is not None:
        return Condition.from_dict(raw)
    if isinstance(cond.fieldref, list):
        raise ValueError(f"condition field must be one field name, not {cond.fieldref!r}")  # noqa: TRY004
    return Condition(bounds=((ConditionOp(cond.op.name.lower()), cond.count),), field=cond.fieldref,
                     percentile=cond.percentile)


def _ident(doc: Mapping[str, Any]) -> tuple[str | None, str | None]:
    rule_id, name = doc.get("id"), doc.get("name")
    return (str(rule_id) if rule_id else None, str(name) if name else None)


def _reason(exc: BaseException) -> str:
    """The message without pySigma's ` in <absolute path>` suffix (we say where ourselves)."""
    return str(exc.args[0]) if exc.args else type(exc).__name__


def _fail(state: _Pass1, path: str, line: int | None, ident: tuple[str | None, str | None], reason: str) -> None:
    error = CorrelationRuleError(path, reason, line=line, rule_id=ident[0] or ident[1])
    state.errors.append(error)
    for key in ident:
        if key:
            state.failed[key] = error


# ---------------------------------------------------------------------------------------------------- pass 2


def _finish(state: _Pass1, fail_fast: bool) -> CorrelationSet:
    errors = state.errors
    base_index: dict[str, BaseRule] = {}
    for base in state.base:
        for key in (base.id, base.name):
            if key:
                base_index.setdefault(key, base)

    # Index correlation rules by id and name; a key taken twice is an error for the later rule.
    corr_index: dict[str, _Parsed] = {}
    valid: list[_Parsed] = []
    for parsed in state.parsed:
        clash = next((k for k in (parsed.id, parsed.name) if k and (k in corr_index or k in base_index)), None)
        if clash is not None:
            other = corr_index.get(clash)
            where = f"{other.path}:{other.line}" if other is not None else (base_index[clash].path or "?")
            errors.append(CorrelationRuleError(parsed.path, f"duplicate rule id or name '{clash}' (also in {where})",
                                               line=parsed.line, rule_id=parsed.canonical))
            continue
        for key in (parsed.id, parsed.name):
            if key:
                corr_index[key] = parsed
        valid.append(parsed)

    def canonical(ref: str) -> str | None:
        if ref in corr_index:
            return corr_index[ref].canonical
        if ref in base_index:
            return base_index[ref].canonical
        return None

    # Resolve references; a rule referencing a broken or unknown rule is broken too (repeat until stable).
    broken: dict[str, str] = {}
    for parsed in valid:
        reason = _resolve_problem(parsed, canonical, state.failed)
        if reason is not None:
            broken[parsed.canonical] = reason
    changed = True
    while changed:
        changed = False
        for parsed in valid:
            if parsed.canonical in broken:
                continue
            for ref in parsed.references:
                target = corr_index.get(ref)
                if target is not None and target.canonical in broken:
                    broken[parsed.canonical] = f"references correlation rule '{ref}', which failed to load"
                    changed = True
                    break

    # Order: referenced correlation rules first; a cycle is an error for every rule on it.
    order: list[_Parsed] = []
    marks: dict[str, int] = {}  # 1 = visiting, 2 = done

    def visit(parsed: _Parsed, trail: list[str]) -> None:
        key = parsed.canonical
        if marks.get(key) == 2:
            return
        if marks.get(key) == 1:
            cycle = [*trail[trail.index(key):], key]
            for member in cycle[:-1]:
                broken.setdefault(member, "reference cycle: " + " -> ".join(cycle))
            return
        marks[key] = 1
        for ref in parsed.references:
            target = corr_index.get(ref)
            if target is not None:
                visit(target, [*trail, key])
        marks[key] = 2
        order.append(parsed)

    for parsed in valid:
        visit(parsed, [])

    rules: list[CorrelationRule] = []
    hashes: dict[str, str] = {}
    for parsed in order:
        if parsed.canonical in broken or any(
            corr_index[r].canonical in broken for r in parsed.references if r in corr_index
        ):
            reason = broken.get(parsed.canonical) or "references a correlation rule that failed to load"
            errors.append(CorrelationRuleError(parsed.path, reason, line=parsed.line, rule_id=parsed.canonical))
            broken.setdefault(parsed.canonical, reason)
            continue
        try:
            rule = _build(parsed, canonical, hashes)
        except ValueError as exc:
            errors.append(CorrelationRuleError(parsed.path, str(exc), line=parsed.line, rule_id=parsed.canonical))
            broken[parsed.canonical] = str(exc)
            continue
        hashes[rule.id] = rule.semantic_hash
        rules.append(rule)

    errors.sort(key=lambda e: (e.path, e.line or 0))
    for error in errors:
        log.warning("correlation rule not loaded: %s", error)
    if fail_fast and errors:
        raise errors[0]

    loaded = {rule.id for rule in rules}
    referenced_base = sorted({base_index[r].canonical for rule in rules for r in rule.rules if r not in loaded})
    bases = tuple(base_index[key] for key in referenced_base)
    generated: dict[str, bool] = {}
    for rule in rules:
        for ref in rule.rules:
            generated[ref] = generated.get(ref, False) or rule.generate
    withheld = frozenset(ref for ref, gen in generated.items() if not gen)
    return CorrelationSet(rules=tuple(rules), errors=tuple(errors), base_rules=bases, withheld=withheld)


def _resolve_problem(parsed: _Parsed, canonical: Any, failed: Mapping[str, CorrelationRuleError]) -> str | None:
    for ref in parsed.references:
        if canonical(ref) is None:
            if ref in failed:
                return f"references correlation rule '{ref}', which failed to load"
            return f"unknown rule '{ref}' in rules"
    for alias, mapping in parsed.aliases.items():
        for ref in mapping:
            if ref not in parsed.references and canonical(ref) not in {canonical(r) for r in parsed.references}:
                return f"alias '{alias}' maps rule '{ref}', which is not in rules"
    return None


def _build(parsed: _Parsed, canonical: Any, hashes: Mapping[str, str]) -> CorrelationRule:
    refs = tuple(canonical(ref) for ref in parsed.references)
    aliases = tuple(
        (alias, tuple((canonical(ref), fieldname) for ref, fieldname in mapping.items()))
        for alias, mapping in parsed.aliases.items()
    )
    rule = CorrelationRule(
        id=parsed.canonical, name=parsed.name, title=parsed.title, type=parsed.type, rules=refs,
        timespan_ms=parsed.timespan_ms, condition=parsed.condition, group_by=tuple(parsed.group_by),
        aliases=aliases, generate=parsed.generate, level=parsed.level, tags=tuple(parsed.tags),
        description=parsed.description, path=parsed.path, line=parsed.line,
        references=tuple(parsed.references), semantic_hash="-",
    )
    return replace(rule, semantic_hash=semantic_hash(rule, hashes))
