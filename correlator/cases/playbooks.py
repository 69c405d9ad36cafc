"""Playbooks: per incident type, the ordered steps of the response, each owned by a layer, with the evidence it
should produce and a deadline relative to the case's creation. Files are ``playbooks/*.yaml``::

    id: pb-account-compromise               # unique; [a-z0-9][a-z0-9._-]*
    title: Brute force and account compromise
    title_vi: Dò quét mật khẩu và chiếm đoạt tài khoản
    incident_type: account_compromise       # one playbook per type (definitions.IncidentType)
    priority: 40                            # 0..100 (default 50): breaks ties between playbooks
    description: ...                        # optional
    match:                                  # an alert matches when any criterion holds (at least one is given)
      tags: [attack.t1110*, bruteforce]     # rule tags, lower case, * and ? wildcards
      tactics: [credential-access]          # ATT&CK tactics -> tag attack.<tactic>
      techniques: [T1110, T1078]            # ATT&CK techniques -> tag attack.t1110 and its sub-techniques
      rule_ids: [...]                       # rule ids (Sigma ids, intel-..., correlation rule ids)
      kinds: [intel]                        # alert kinds: sigma | yara | correlation | intel
    steps:                                  # ordered; deadlines may not decrease
      - id: triage                          # unique in the playbook
        title: Confirm the failed and successful logons
        layer: L2                           # L1 | L2 | L3 | L4
        due: 1h                             # after case creation (ms, s, m, h, d, w)
        evidence: [logon events of the source IP]   # at least one item
        description: ...                    # optional

Loading is collect-all (`load_playbooks`): a broken file becomes a `PlaybookError` (file, line, key, reason) and the
others load; a second pass rejects duplicate ids and incident types (the later file, naming the first). Choosing a
playbook for a case (`PlaybookSet.select`): the playbook matching the most of the case's alerts, then the highest
priority, then the smallest id; so the choice depends on the set of alerts, not on their order.
"""

from __future__ import annotations

import fnmatch
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from correlator.cases.commands import AssignPlaybook
from correlator.cases.definitions import IncidentType, Layer, TaskStatus, format_duration
from correlator.cases.errors import PlaybookError
from correlator.cases.model import Case, CaseAlert, Task
from correlator.definitions import ALERT_KINDS
from correlator.located_yaml import Located, load_located_yaml
from correlator.timespec import TimeSpecError, parse_duration_ms

__all__ = [
    "ALERT_KINDS",
    "ATTACK_TACTICS",
    "Playbook",
    "PlaybookMatch",
    "PlaybookSet",
    "Step",
    "assign_for_type",
    "format_duration",
    "load_playbooks",
    "parse_playbook",
    "tasks_for",
]

ATTACK_TACTICS: Final = frozenset({
    "reconnaissance", "resource-development", "initial-access", "execution", "persistence", "privilege-escalation",
    "defense-evasion", "credential-access", "discovery", "lateral-movement", "collection", "command-and-control",
    "exfiltration", "impact",
})
_ID: Final = re.compile(r"[a-z0-9][a-z0-9._-]*")
_TECHNIQUE: Final = re.compile(r"T\d{4}(\.\d{3})?")
_TOP_KEYS: Final = ("id", "title", "title_vi", "incident_type", "priority", "description", "match", "steps")
_MATCH_KEYS: Final = ("tags", "tactics", "techniques", "rule_ids", "kinds")
_STEP_KEYS: Final = ("id", "title", "layer", "due", "evidence", "description")


@dataclass(frozen=True, slots=True)
class PlaybookMatch:
    """Which alerts a playbook fits; compiled once on construction (a set and one regex)."""

    tags: tuple[str, ...] = ()
    tactics: tuple[str, ...] = ()
    techniques: tuple[str, ...] = ()
    rule_ids: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    _exact: frozenset[str] = field(init=False, repr=False, compare=False)
    _pattern: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        exact = {t for t in self.tags if not any(c in t for c in "*?[")}
        exact.update(f"attack.{tactic}" for tactic in self.tactics)
        exact.update(f"attack.{technique.lower()}" for technique in self.techniques)
        patterns = [fnmatch.translate(t) for t in self.tags if t not in exact]
        patterns += [re.escape(f"attack.{technique.lower()}.") + ".*" for technique in self.techniques]
        object.__setattr__(self, "_exact", frozenset(exact))
        object.__setattr__(self, "_pattern", re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None)

    @property
    def empty(self) -> bool:
        return not (self.tags or self.tactics or self.techniques or self.rule_ids or self.kinds)

    def matches(self, tags: Iterable[str], rule_id: str, kind: str) -> bool:
        if rule_id in self.rule_ids or kind in self.kinds:
            return True
        pattern = self._pattern
        for tag in tags:
            low = tag.lower()
            if low in self._exact or (pattern is not None and pattern.fullmatch(low)):
                return True
        return False

    def matches_alert(self, alert: CaseAlert) -> bool:
        return self.matches(alert.tags, alert.rule_id, alert.kind)

    def to_dict(self) -> dict[str, Any]:
        return {name: list(getattr(self, name)) for name in _MATCH_KEYS if getattr(self, name)}


@dataclass(frozen=True, slots=True)
class Step:
    id: str
    title: str
    layer: Layer
    due_ms: int  # after case creation
    evidence: tuple[str, ...]
    description: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "title": self.title, "layer": self.layer.value,
                               "due": format_duration(self.due_ms), "evidence": list(self.evidence)}
        if self.description is not None:
            out["description"] = self.description
        return out


@dataclass(frozen=True, slots=True)
class Playbook:
    id: str
    title: str
    title_vi: str
    incident_type: IncidentType
    match: PlaybookMatch
    steps: tuple[Step, ...]
    priority: int = 50
    description: str | None = None
    source: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The YAML shape: `parse_playbook` of its YAML gives an equal playbook."""
        out: dict[str, Any] = {"id": self.id, "title": self.title, "title_vi": self.title_vi,
                               "incident_type": self.incident_type.value, "priority": self.priority}
        if self.description is not None:
            out["description"] = self.description
        out["match"] = self.match.to_dict()
        out["steps"] = [step.to_dict() for step in self.steps]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "<playbook>") -> Playbook:
        """Validate a mapping of the YAML shape (a `Located` one gives lines in errors)."""
        return _build(data, source)


def assign_for_type(playbooks: PlaybookSet, case: Case, incident_type: IncidentType,
                    reason: str | None = None) -> AssignPlaybook:
    """The command that gives `case` the playbook of `incident_type` (an analyst re-classifying the incident), its
    tasks due from the case's creation; `PlaybookError` when no playbook has that type."""
    playbook = playbooks.for_type(incident_type)
    if playbook is None:
        raise PlaybookError(f"no playbook for incident type {incident_type.value!r}", source="<playbooks>")
    return AssignPlaybook(playbook.id, incident_type, tasks_for(playbook, case.created_ms), reason)


def tasks_for(playbook: Playbook, created_ms: int) -> tuple[Task, ...]:
    """The playbook's steps as tasks of a case created at `created_ms`, all to do."""
    return tuple(Task(id=step.id, title=step.title, layer=step.layer, due_ms=created_ms + step.due_ms,
                      status=TaskStatus.TODO, evidence=step.evidence) for step in playbook.steps)


@dataclass(frozen=True, slots=True)
class PlaybookSet:
    """The loaded playbooks (by id) and the errors of those that did not load."""

    playbooks: Mapping[str, Playbook] = field(default_factory=dict)
    errors: tuple[PlaybookError, ...] = ()

    def get(self, playbook_id: str) -> Playbook | None:
        return self.playbooks.get(playbook_id)

    def for_type(self, incident_type: IncidentType) -> Playbook | None:
        return next((p for p in self.playbooks.values() if p.incident_type is incident_type), None)

    def select(self, alerts: Sequence[CaseAlert]) -> Playbook | None:
        """The playbook of the case whose alerts these are (see the module doc), or None when none matches."""
        kinds = Counter((alert.tags, alert.rule_id, alert.kind) for alert in alerts)  # a case repeats few rules
        ranked = []
        for playbook in self.playbooks.values():
            count = sum(n for (tags, rule_id, kind), n in kinds.items() if playbook.match.matches(tags, rule_id, kind))
            if count:
                ranked.append((-count, -playbook.priority, playbook.id, playbook))
        return min(ranked, key=lambda item: item[:3])[3] if ranked else None


# -- loading


def load_playbooks(paths: Iterable[str | Path], *, strict: bool = False) -> PlaybookSet:
    """Load every ``*.yaml``/``*.yml`` of the given files and folders (sorted), collect-all; `strict` raises the
    first error instead (fail-fast)."""
    files: list[Path] = []
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix in {".yaml", ".yml"} and p.is_file()))
        else:
            files.append(path)
    loaded: dict[str, Playbook] = {}
    by_type: dict[IncidentType, Playbook] = {}
    errors: list[PlaybookError] = []
    for path in files:
        source = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            errors.append(PlaybookError(f"cannot read: {exc.strerror or exc}", source=source))
            continue
        except UnicodeDecodeError as exc:
            errors.append(PlaybookError(f"not UTF-8 (byte {exc.start})", source=source))
            continue
        try:
            playbook, lines = _parse(text, source)
        except PlaybookError as exc:
            errors.append(exc)
            continue
        # second pass: against the whole collection
        first = loaded.get(playbook.id)
        other = by_type.get(playbook.incident_type)
        if first is not None:
            errors.append(PlaybookError(f"duplicate playbook id (first defined in {first.source})", source=source,
                                        line=lines["id"], key="id"))
        elif other is not None:
            errors.append(PlaybookError(
                f"incident type already has playbook {other.id!r} ({other.source})", source=source,
                line=lines["incident_type"], key="incident_type"))
        else:
            loaded[playbook.id] = playbook
            by_type[playbook.incident_type] = playbook
    if strict and errors:
        raise errors[0]
    return PlaybookSet(MappingProxyType(loaded), tuple(errors))


def parse_playbook(text: str, source: str = "<playbook>") -> Playbook:
    """One playbook from YAML text; raises `PlaybookError` naming `source`, the line and the key."""
    return _parse(text, source)[0]


def _parse(text: str, source: str) -> tuple[Playbook, dict[str, int]]:
    doc = load_located_yaml(text, source, PlaybookError)
    if not isinstance(doc, Located):
        raise PlaybookError("a playbook must be a mapping", source=source, line=1)
    playbook = _build(doc, source)
    return playbook, {key: doc.line_of(key) for key in ("id", "incident_type")}


def _build(doc: Mapping[str, Any], source: str) -> Playbook:
    def line(mapping: Mapping[str, Any], key: str | None = None) -> int | None:
        if isinstance(mapping, Located):
            return mapping.line_of(key) if key is not None else mapping.line
        return None

    def fail(reason: str, mapping: Mapping[str, Any], key: str, name: str | None = None) -> PlaybookError:
        return PlaybookError(reason, source=source, line=line(mapping, key), key=name or key)

    def check_keys(mapping: Mapping[str, Any], known: Sequence[str], prefix: str) -> None:
        for key in mapping:
            if key not in known:
                raise fail(f"unknown key (expected one of {', '.join(known)})", mapping, str(key),
                           f"{prefix}{key}")

    def text(mapping: Mapping[str, Any], key: str, name: str, *, required: bool = True) -> str | None:
        value = mapping.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value.strip():
            what = "missing" if key not in mapping else f"must be a non-empty string, not {value!r}"
            raise PlaybookError(what, source=source, line=line(mapping, key), key=name)
        return value.strip()

    def strings(mapping: Mapping[str, Any], key: str, name: str) -> tuple[str, ...]:
        value = mapping.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise fail(f"must be a list of non-empty strings, not {value!r}", mapping, key, name)
        return tuple(v.strip() for v in value)

    check_keys(doc, _TOP_KEYS, "")
    playbook_id = text(doc, "id", "id")
    assert playbook_id is not None
    if not _ID.fullmatch(playbook_id):
        raise fail(f"invalid id {playbook_id!r} (lower-case letters, digits, '.', '_', '-')", doc, "id")
    title = text(doc, "title", "title")
    title_vi = text(doc, "title_vi", "title_vi")
    raw_type = text(doc, "incident_type", "incident_type")
    try:
        incident_type = IncidentType(raw_type or "")
    except ValueError:
        known = ", ".join(t.value for t in IncidentType)
        raise fail(f"unknown incident type {raw_type!r} (expected one of {known})", doc, "incident_type") from None
    priority = doc.get("priority", 50)
    if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 100:
        raise fail(f"must be an integer 0..100, not {priority!r}", doc, "priority")
    description = text(doc, "description", "description", required=False)

    match_doc = doc.get("match")
    if not isinstance(match_doc, Mapping):
        raise fail("missing" if "match" not in doc else "must be a mapping", doc, "match")
    check_keys(match_doc, _MATCH_KEYS, "match.")
    criteria = {key: strings(match_doc, key, f"match.{key}") for key in _MATCH_KEYS}
    tags = tuple(t.lower() for t in criteria["tags"])
    for tactic in criteria["tactics"]:
        if tactic not in ATTACK_TACTICS:
            raise fail(f"unknown ATT&CK tactic {tactic!r} (expected one of {', '.join(sorted(ATTACK_TACTICS))})",
                       match_doc, "tactics", "match.tactics")
    for technique in criteria["techniques"]:
        if not _TECHNIQUE.fullmatch(technique):
            raise fail(f"invalid ATT&CK technique {technique!r} (expected T1234 or T1234.001)", match_doc,
                       "techniques", "match.techniques")
    for kind in criteria["kinds"]:
        if kind not in ALERT_KINDS:
            raise fail(f"unknown alert kind {kind!r} (expected one of {', '.join(sorted(ALERT_KINDS))})",
                       match_doc, "kinds", "match.kinds")
    match = PlaybookMatch(tags=tags, tactics=criteria["tactics"], techniques=criteria["techniques"],
                          rule_ids=criteria["rule_ids"], kinds=criteria["kinds"])
    if match.empty:
        raise fail("needs at least one of tags, tactics, techniques, rule_ids, kinds", doc, "match")

    raw_steps = doc.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise fail("missing" if "steps" not in doc else "must be a non-empty list of steps", doc, "steps")
    steps: list[Step] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_steps):
        prefix = f"steps[{index}]"
        if not isinstance(raw, Mapping):
            raise fail(f"must be a mapping, not {raw!r}", doc, "steps", prefix)
        check_keys(raw, _STEP_KEYS, f"{prefix}.")
        step_id = text(raw, "id", f"{prefix}.id")
        assert step_id is not None
        if not _ID.fullmatch(step_id):
            raise fail(f"invalid step id {step_id!r} (lower-case letters, digits, '.', '_', '-')", raw, "id",
                       f"{prefix}.id")
        if step_id in seen:
            raise fail(f"duplicate step id {step_id!r}", raw, "id", f"{prefix}.id")
        seen.add(step_id)
        step_title = text(raw, "title", f"{prefix}.title")
        raw_layer = raw.get("layer")
        try:
            layer = Layer(str(raw_layer))
        except ValueError:
            raise fail(f"unknown layer {raw_layer!r} (expected one of L1, L2, L3, L4)", raw, "layer",
                       f"{prefix}.layer") from None
        raw_due = raw.get("due")
        if not isinstance(raw_due, str):
            raise fail("missing" if "due" not in raw else f"must be a duration such as 4h, not {raw_due!r}", raw,
                       "due", f"{prefix}.due")
        try:
            due_ms = parse_duration_ms(raw_due)
        except TimeSpecError as exc:
            raise fail(str(exc), raw, "due", f"{prefix}.due") from None
        if steps and due_ms < steps[-1].due_ms:
            raise fail(f"due {raw_due} is before the previous step's {format_duration(steps[-1].due_ms)} "
                       "(steps are ordered)", raw, "due", f"{prefix}.due")
        evidence = strings(raw, "evidence", f"{prefix}.evidence")
        if not evidence:
            raise fail("at least one item of expected evidence is required", raw, "evidence" if "evidence" in raw
                       else "id", f"{prefix}.evidence")
        steps.append(Step(id=step_id, title=step_title or "", layer=layer, due_ms=due_ms, evidence=evidence,
                          description=text(raw, "description", f"{prefix}.description", required=False)))
    return Playbook(id=playbook_id, title=title or "", title_vi=title_vi or "", incident_type=incident_type,
                    match=match, steps=tuple(steps), priority=priority, description=description, source=source)
