"""A compiled Sigma rule: frozen, picklable (it is what the rule cache stores), no closures.

A rule has one *variant* per event source it can match. A Windows `process_creation` rule, for example, has a
Sysmon variant (routed to Channel Microsoft-Windows-Sysmon/Operational, EventID 1, Sysmon field names) and a
Security-audit variant (Channel Security, EventID 4688, fields renamed by the pySigma audit pipeline). The
routing conditions are pulled out of the detection: routing guarantees them, the evaluator never re-tests them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from correlator.sigma.ir import Node

# ("win", channel | None, event_id | None) or ("ls", product | None, category | None, service | None)
RouteKey = tuple[str | int | None, ...]


class Level(StrEnum):
    INFORMATIONAL = "informational"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class RuleMeta:
    id: str
    title: str
    level: Level
    status: str | None
    tags: tuple[str, ...]
    description: str | None
    path: str
    logsource: tuple[str | None, str | None, str | None]  # product, category, service
    falsepositives: tuple[str, ...] = ()
    author: str | None = None


@dataclass(frozen=True, slots=True)
class Variant:
    profile: str  # windows profile name, "logsource" or "generic"
    routes: tuple[RouteKey, ...]
    ir: Node
    # The prefilter's literal clauses (best first), worked out at compile time; None when there are none.
    literals: tuple[frozenset[str], ...] | None = None
    # Where each of those literals must be found: (literal, fields or None for anywhere), sorted by literal.
    literal_fields: tuple[tuple[str, tuple[str, ...] | None], ...] | None = None
    # What the evaluator needs to know of the detection, worked out at compile time too: the fields it reads
    # (sorted), the fields every match has, and the EventIDs every match has (None: any).
    reads: tuple[str, ...] = ()
    required: frozenset[str] = frozenset()
    event_ids: frozenset[int] | None = None


@dataclass(frozen=True, slots=True)
class CompiledRule:
    meta: RuleMeta
    variants: tuple[Variant, ...]
    generic: Variant  # the rule with no pipeline: used for events whose log source is unknown
    notes: tuple[str, ...] = field(default=())  # per-source limitations ("cannot match security/4688: ...")
