"""Literal prefilter: for each rule variant, a set of lower-case literals at least one of which must occur in
the event's values for the variant to match (None when no such set exists). One Aho-Corasick automaton per
route bucket finds, in one C pass over the event's values, which variants are candidates.

Soundness: every literal is taken from a value the event must contain (case-folded), so a rule whose literal
set is not found cannot match; rules without a literal set are always evaluated ("always" bucket).
"""

from __future__ import annotations

import itertools
import re
import re._parser as sre_parse  # type: ignore[import-not-found]  # CPython's regex parser (3.11+)
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import ahocorasick_rs

from correlator.accel import native_available
from correlator.sigma.ir import Node, glob_literals

DEFAULT_COMMON = Path(__file__).resolve().parent.parent / "data" / "common_values.txt"
MIN_LITERAL = 3  # shorter literals are too common to narrow anything


def _pattern_literal(kind: str, text: str) -> str | None:
    if kind in ("eq", "sw", "ew", "ct"):
        lit = text.lower()
    elif kind == "glob":
        runs = glob_literals(text)
        lit = max(runs, key=len).lower() if runs else ""
    else:
        return None
    return lit if selective(lit) else None


# Characters rare enough in event values (command-line obfuscation, redirection, pipes, PowerShell's format
# strings) that a literal of one or two of them still narrows: `^^` (cmd escapes), `|`, `<`, the backtick.
RARE_CHARACTERS = frozenset("`^|<>{}~")


def selective(lit: str) -> bool:
    """Narrows anything: MIN_LITERAL characters, any non-ASCII character (homoglyphs, RTLO), or a shorter
    literal with a rare character (`RARE_CHARACTERS`)."""
    if len(lit) >= MIN_LITERAL:
        return True
    return bool(lit) and (not lit.isascii() or not RARE_CHARACTERS.isdisjoint(lit))


def _seq_literals(seq: object) -> list[str] | None:
    """Literal alternatives required by a parsed regex sequence: the longest selective top-level run, or the
    union of the alternatives of a top-level branch. None when nothing selective is required."""
    best: list[str] | None = None
    run: list[str] = []

    def consider(cands: list[str] | None) -> None:
        nonlocal best
        if not cands or not all(selective(c.lower()) for c in cands):
            return
        if best is None or min(map(len, cands)) > min(map(len, best)):
            best = cands

    def flush() -> None:
        if run:
            consider(["".join(run)])
            run.clear()

    for op, av in seq:  # type: ignore[attr-defined]
        if op is sre_parse.LITERAL:
            run.append(chr(av))
            continue
        flush()
        if op is sre_parse.SUBPATTERN:
            consider(_seq_literals(av[-1]))
        elif op is sre_parse.BRANCH:
            alts = [_seq_literals(alt) for alt in av[1]]
            if all(a for a in alts):
                consider([x for a in alts for x in a])  # type: ignore[union-attr]
        elif op in (sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT) and av[0] >= 1:
            consider(_seq_literals(av[2]))
    flush()
    if best is None:
        return None
    lits = [b.lower() for b in best]
    return lits if all(selective(x) for x in lits) else None


def regex_literals(pattern: str, flags: str = "") -> list[str] | None:
    """Literals one of which every match of the regex contains (case-folded), or None."""
    pyflags = re.IGNORECASE if "i" in flags else 0
    try:
        parsed = sre_parse.parse(pattern, pyflags)
    except (re.error, OverflowError, RecursionError):
        return None
    return _seq_literals(parsed)


MAX_CLAUSES = 4


def _leaf_literals(node: Node) -> frozenset[str] | None:
    tag = node[0]
    if tag in ("str", "kw"):
        patterns = node[3] if tag == "str" else node[2]
        out: set[str] = set()
        for kind, text in patterns:
            lit = _pattern_literal(kind, text)
            if lit is None:
                return None
            out.add(lit)
        return frozenset(out)
    if tag in ("re", "kwre"):
        pattern, flags = (node[2], node[3]) if tag == "re" else (node[1], node[2])
        lits = regex_literals(pattern, flags)
        return frozenset(lits) if lits else None
    return None


def literal_clauses(node: Node) -> list[frozenset[str]]:
    """A conjunction of literal sets (CNF clauses): a match contains at least one literal of every clause."""
    tag = node[0]
    if tag == "and":
        out: list[frozenset[str]] = []
        for child in node[1]:
            for clause in literal_clauses(child):
                if clause not in out:
                    out.append(clause)
        return out
    if tag == "or":
        alternatives = []
        for child in node[1]:
            clauses = literal_clauses(child)
            if not clauses:
                return []
            alternatives.append(clauses)
        return _distribute(alternatives)
    leaf = _leaf_literals(node)
    return [leaf] if leaf else []


MAX_DISTRIBUTED = 16


def _distribute(alternatives: list[list[frozenset[str]]]) -> list[frozenset[str]]:
    """The clauses of an OR of conjunctions, by distribution: (A1 and A2) or B = (A1 or B) and (A2 or B). Each
    alternative keeps its best clauses (by `_score`) while the product stays within MAX_DISTRIBUTED, so which
    of them narrows best is decided later, with every clause of the rule in view (a path fragment on the image
    and a rare one on the command line: the rare one is not lost to the longer common one)."""
    ranked = [sorted(clauses, key=_score, reverse=True) for clauses in alternatives]
    keep = [1] * len(ranked)
    grown = True
    while grown:
        grown = False
        for i, clauses in enumerate(ranked):
            product = 1
            for j, n in enumerate(keep):
                product *= n + 1 if j == i else n
            if keep[i] < len(clauses) and product <= MAX_DISTRIBUTED:
                keep[i] += 1
                grown = True
    out: list[frozenset[str]] = []
    for combo in itertools.product(*(clauses[:n] for clauses, n in zip(ranked, keep, strict=True))):
        clause = frozenset().union(*combo)
        if clause not in out:
            out.append(clause)
    return out


def required_literals(node: Node, common: Sequence[str] = ()) -> tuple[frozenset[str], ...] | None:
    """The most selective clauses (best first, at most MAX_CLAUSES), or None when the node has none.
    A clause with a literal that occurs in a `common` value (so the clause holds in most events) ranks after
    every other clause."""

    def score(lits: frozenset[str]) -> tuple[int, int, int]:
        ubiquitous = any(lit in text for lit in lits for text in common)
        return (0 if ubiquitous else 1, *_score(lits))

    clauses = sorted(literal_clauses(node), key=score, reverse=True)[:MAX_CLAUSES]
    return tuple(clauses) if clauses else None


# literal -> the fields whose values it must occur in (sorted), None when it may occur in any (keywords)
LiteralFields = tuple[tuple[str, tuple[str, ...] | None], ...]


def literal_fields(node: Node, clauses: tuple[frozenset[str], ...] | None) -> LiteralFields | None:
    """Where each literal of `clauses` has to be found: in the value of a field one of the leaves it comes from
    reads, or anywhere when a keyword leaf gives it. Sound: a leaf on field F matches only if F's folded value
    holds one of the leaf's literals."""
    if not clauses:
        return None
    wanted = frozenset().union(*clauses)
    where: dict[str, set[str] | None] = {}

    def walk(n: Node) -> None:
        tag = n[0]
        if tag in ("and", "or"):
            for child in n[1]:
                walk(child)
            return
        lits = _leaf_literals(n)  # None for NOT (its leaves never give clauses) and literal-less leaves
        if not lits:
            return
        field = n[1] if tag in ("str", "re") else None
        for lit in lits & wanted:
            known = where.get(lit, set())
            if field is None or known is None:
                where[lit] = None
            else:
                where[lit] = known | {field}

    walk(node)
    return tuple(
        (lit, None if (f := where.get(lit)) is None else tuple(sorted(f))) for lit in sorted(wanted)
    )


def load_common_values(path: Path = DEFAULT_COMMON) -> tuple[str, ...]:
    """Lower-cased lines of the common-values file (comments and blanks skipped)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return tuple(line.strip().lower() for line in lines if line.strip() and not line.startswith("#"))


def _score(lits: frozenset[str]) -> tuple[int, int]:
    """Prefer sets whose shortest literal is longest (rarer), then fewer literals."""
    return (min(len(x) for x in lits), -len(lits))


class Candidates(Protocol):
    """What the engine needs of a prefilter (the pure-Python `Prefilter` or the native one)."""

    @property
    def always(self) -> Sequence[int]: ...

    @property
    def literals(self) -> int: ...

    def candidates(self, haystack: str) -> list[int]: ...

    def candidates_fields(self, fields: dict[str, Any]) -> list[int]: ...


SEP = "\x1f"  # between values in a haystack: no literal spans two values


def _text(value: Any) -> str:
    """A non-string value as haystack text (list items separated like values)."""
    if value.__class__ is list or value.__class__ is tuple:
        return SEP.join(_text(v) for v in value if v is not None)
    if value.__class__ is bool:
        return "true" if value else "false"
    return str(value)


def haystack_of(fields: dict[str, Any]) -> str:
    """Every value of an event's field view, case-folded, as one haystack (one join and one lower())."""
    return SEP.join([
        v if v.__class__ is str else str(v) if v.__class__ is int else _text(v)
        for v in fields.values() if v is not None
    ]).lower()


def _folded(value: Any) -> str:
    """One value's case-folded haystack text (what `haystack_of` joins)."""
    return (value if value.__class__ is str else str(value) if value.__class__ is int else _text(value)).lower()


ALL_FIELDS = (1 << 64) - 1  # the field mask of a literal that counts wherever it is found
_MASK_BITS = 64  # fields past the 63rd (sorted) share the last bit: coarser, still sound


def _placements(
    clause_sets: Sequence[tuple[frozenset[str], ...] | None], field_sets: Sequence[LiteralFields | None] | None
) -> tuple[list[dict[str, tuple[str, ...]]], list[str]]:
    """Per variant, the fields each of its placed literals counts in, and the bucket's field names (sorted).
    A literal is placed only when every variant using it places it; otherwise it counts anywhere for all."""
    per_variant: list[dict[str, tuple[str, ...]]] = [{} for _ in clause_sets]
    anywhere: set[str] = set()
    for i, clauses in enumerate(clause_sets):
        if not clauses:
            continue
        given = dict(field_sets[i] or ()) if field_sets is not None else {}
        for lit in frozenset().union(*clauses):
            fields = given.get(lit)
            if fields is None:
                anywhere.add(lit)
            else:
                per_variant[i][lit] = fields
    for placed in per_variant:
        for lit in anywhere & placed.keys():
            del placed[lit]
    names = sorted({f for placed in per_variant for fields in placed.values() for f in fields})
    return per_variant, names


def make_prefilter(
    clause_sets: Sequence[tuple[frozenset[str], ...] | None],
    field_sets: Sequence[LiteralFields | None] | None = None,
    *,
    native: bool | None = None,
) -> Candidates:
    """The native prefilter when it is built (same results, several times faster), else the Python one.
    `field_sets` (per variant, see `literal_fields`) lets `candidates_fields` count a literal only where it
    can make a leaf true."""
    if native if native is not None else native_available():
        from correlator._native import NativePrefilter

        prefilter: Candidates = NativePrefilter(clause_sets, field_sets)
        return prefilter
    return Prefilter(clause_sets, field_sets)


def is_native(prefilter: Candidates) -> bool:
    """Whether a prefilter is the native one (which the native EVTX reader can run itself)."""
    return type(prefilter).__name__ == "NativePrefilter" and type(prefilter).__module__ == "correlator._native"


class Prefilter:
    """Which variants of a bucket are candidates for an event's haystack.

    A variant is triggered by a literal of its first (most selective) clause, found by one Aho-Corasick pass
    over the haystack; it stays a candidate only when each of its other clauses has a literal among those found.
    Variants with no clause are always candidates. With an event's fields (`candidates_fields`), a literal
    the variants place in certain fields counts for a variant only when found in the value of one of the fields
    that variant gives it, and only the values of placed fields are searched for placed literals; keyword
    literals count anywhere. Found literals carry a mask of the fields they were found in (`ALL_FIELDS` for
    anywhere).
    """

    def __init__(
        self,
        clause_sets: Sequence[tuple[frozenset[str], ...] | None],
        field_sets: Sequence[LiteralFields | None] | None = None,
    ) -> None:
        self.always: tuple[int, ...] = tuple(i for i, s in enumerate(clause_sets) if not s)
        per_variant, field_names = _placements(clause_sets, field_sets)
        self.field_bits: dict[str, int] = {
            name: 1 << min(n, _MASK_BITS - 1) for n, name in enumerate(field_names)
        }
        ids: dict[str, int] = {}

        def literal_id(lit: str) -> int:
            return ids.setdefault(lit, len(ids))

        def mask(i: int, lit: str) -> int:
            fields = per_variant[i].get(lit)
            return ALL_FIELDS if fields is None else sum({self.field_bits[f] for f in fields})

        # Every clause's literals join the automata; a triggered variant's other clauses are then mask tests
        # against the literals found (measured faster than substring tests on the haystack).
        triggers: dict[int, list[tuple[int, int]]] = {}
        self.rest: dict[int, tuple[tuple[tuple[int, int], ...], ...]] = {}
        for i, clauses in enumerate(clause_sets):
            if not clauses:
                continue
            for lit in sorted(clauses[0]):
                triggers.setdefault(literal_id(lit), []).append((i, mask(i, lit)))
            if len(clauses) > 1:
                self.rest[i] = tuple(tuple((literal_id(lit), mask(i, lit)) for lit in sorted(c)) for c in clauses[1:])
        self.literals = len(ids)
        self.targets: list[tuple[tuple[int, int], ...]] = [tuple(triggers.get(n, ())) for n in range(len(ids))]
        placed_lits = {lit for placed in per_variant for lit in placed}
        names = list(ids)
        # Two automata: literals found anywhere, and placed literals (searched in placed fields only).
        self.anywhere = [ids[lit] for lit in names if lit not in placed_lits]
        self.placed = [ids[lit] for lit in names if lit in placed_lits]
        self.anywhere_automaton = (
            ahocorasick_rs.AhoCorasick([names[n] for n in self.anywhere]) if self.anywhere else None
        )
        self.placed_automaton = ahocorasick_rs.AhoCorasick([names[n] for n in self.placed]) if self.placed else None

    def _find(self, text: str, bit: int | None, found: dict[int, int]) -> None:
        """Add the literals in one folded text to `found` (literal id -> field mask): anywhere-literals with
        every field, placed ones with the text's field bit when it is a placed field (`bit` None: the text is a
        whole haystack, every literal counts everywhere)."""
        if self.anywhere_automaton is not None:
            anywhere = self.anywhere
            for n, _, _ in self.anywhere_automaton.find_matches_as_indexes(text, overlapping=True):
                found[anywhere[n]] = ALL_FIELDS
        if self.placed_automaton is not None and bit != 0:
            placed, add = self.placed, ALL_FIELDS if bit is None else bit
            for n, _, _ in self.placed_automaton.find_matches_as_indexes(text, overlapping=True):
                found[placed[n]] = found.get(placed[n], 0) | add

    def candidates_fields(self, fields: dict[str, Any]) -> list[int]:
        if not self.literals:
            return list(self.always)
        found: dict[int, int] = {}
        bits = self.field_bits
        for name, value in fields.items():
            if value is not None:
                self._find(_folded(value), bits.get(name, 0), found)
        return self._select(found)

    def candidates(self, haystack: str) -> list[int]:
        """Candidates for a whole haystack: every literal counts wherever it is found."""
        if not self.literals or not haystack:
            return list(self.always)
        found: dict[int, int] = {}
        self._find(haystack, None, found)
        return self._select(found)

    def _select(self, found: dict[int, int]) -> list[int]:
        if not found:
            return list(self.always)
        cands: set[int] = set(self.always)
        targets = self.targets
        rest = self.rest
        for n, where in found.items():
            for i, mask in targets[n]:
                if i in cands or not where & mask:
                    continue
                checks = rest.get(i)
                if checks is None or all(any(found.get(lit, 0) & m for lit, m in clause) for clause in checks):
                    cands.add(i)
        return sorted(cands)
