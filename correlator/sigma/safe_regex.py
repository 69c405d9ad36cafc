"""Regular expressions that cannot hang the engine (ReDoS).

Each rule regex is compiled by the cheapest engine that is provably safe for it:

1. Python `re` when the pattern is *simple*: at most one unbounded repetition, no repetition nested inside
   another, no backreferences. Such a pattern cannot backtrack catastrophically (worst case quadratic in the
   value length, and values are bounded by `MAX_SUBJECT`).
2. RE2 (google-re2) otherwise: linear time by construction, but a slower call from Python.
3. The `regex` module with a time budget per call when RE2 rejects the syntax (lookarounds, backreferences):
   a search that runs out of budget counts as no match and is counted in `RegexBudget.timeouts`.

A pattern none of them accepts is an `UnsafeRegexError` naming the reason.
"""

from __future__ import annotations

import re
import re._parser as sre_parse  # type: ignore[import-not-found]  # CPython's regex parser (3.11+)
from collections.abc import Callable
from dataclasses import dataclass

from correlator.errors import UnsafeRegexError

MAX_SUBJECT = 1 << 16  # characters of a value that a regex sees
TIME_BUDGET_S = 0.05

_REPEATS = {sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT, getattr(sre_parse, "POSSESSIVE_REPEAT", None)}
_UNBOUNDED = sre_parse.MAXREPEAT

Search = Callable[[str], bool]


@dataclass
class RegexBudget:
    """Counts searches that ran out of time (fallback engine only)."""

    timeouts: int = 0


BUDGET = RegexBudget()


def _walk(seq: object, depth: int, state: dict[str, int]) -> None:
    for op, av in seq:  # type: ignore[attr-defined]
        if op in _REPEATS:
            _lo, hi, sub = av
            if hi == _UNBOUNDED or hi > 64:
                state["unbounded"] += 1
            if depth > 0:
                state["nested"] += 1
            _walk(sub, depth + 1, state)
        elif op is sre_parse.SUBPATTERN:
            _walk(av[-1], depth, state)
        elif op is sre_parse.BRANCH:
            if depth > 0:  # alternation under a repetition can backtrack exponentially: (a|aa)+
                state["nested"] += 1
            for alt in av[1]:
                _walk(alt, depth, state)
        elif op in (sre_parse.GROUPREF, getattr(sre_parse, "GROUPREF_EXISTS", None)):
            state["backref"] += 1
        elif op in (sre_parse.ASSERT, sre_parse.ASSERT_NOT):
            _walk(av[1], depth, state)
        elif op is getattr(sre_parse, "ATOMIC_GROUP", None):
            _walk(av, depth, state)


def is_simple(pattern: str, flags: int = 0) -> bool:
    """True when the pattern has at most one unbounded repetition, no nesting and no backreferences."""
    try:
        parsed = sre_parse.parse(pattern, flags)
    except (re.error, OverflowError, RecursionError):
        return False
    state = {"unbounded": 0, "nested": 0, "backref": 0}
    _walk(parsed, 0, state)
    return state["unbounded"] <= 1 and state["nested"] == 0 and state["backref"] == 0


def _py_flags(flags: str) -> int:
    out = 0
    if "i" in flags:
        out |= re.IGNORECASE
    if "m" in flags:
        out |= re.MULTILINE
    if "s" in flags:
        out |= re.DOTALL
    return out


def compile_search(pattern: str, flags: str = "") -> Search:
    return compile_search_with_engine(pattern, flags)[0]


def compile_search_with_engine(pattern: str, flags: str = "") -> tuple[Search, str]:
    """Compile a Sigma `re` value (unanchored search semantics) with flags from i/m/s."""
    pyflags = _py_flags(flags)
    try:
        compiled = re.compile(pattern, pyflags)
    except re.error as exc:
        compiled = None
        py_error: str | None = str(exc)
    else:
        py_error = None
    if compiled is not None and is_simple(pattern, pyflags):
        search = compiled.search

        def py_search(value: str) -> bool:
            return search(value, 0, MAX_SUBJECT) is not None

        return py_search, "re"
    try:
        import re2

        inline = "".join(f for f in "ims" if f in flags)
        options = re2.Options()
        options.log_errors = False
        options.never_capture = True
        r2 = re2.compile(f"(?{inline}){pattern}" if inline else pattern, options)
        r2_search = r2.search

        def re2_search(value: str) -> bool:
            return r2_search(value[:MAX_SUBJECT]) is not None

        return re2_search, "re2"
    except Exception as exc:  # re2 raises its own error type for unsupported syntax
        re2_error = str(exc)
    try:
        import regex

        rx = regex.compile(pattern, pyflags)
    except Exception as exc:
        reason = py_error or re2_error or str(exc)
        raise UnsafeRegexError(f"regular expression {pattern!r} cannot be compiled: {reason}") from exc
    rx_search = rx.search

    def budget_search(value: str) -> bool:
        try:
            return rx_search(value[:MAX_SUBJECT], timeout=TIME_BUDGET_S) is not None
        except TimeoutError:
            BUDGET.timeouts += 1
            return False

    return budget_search, "regex-budget"
