r"""The store's query language, parsed once into a small AST that every backend translates.

Grammar (operators are upper case; `and`, `or`, `not` in lower case are ordinary words)::

    query   := <empty> | or
    or      := and ("OR" and)*
    and     := unary (["AND"] unary)*        adjacent terms are ANDed
    unary   := "NOT" unary | "(" or ")" | leaf
    leaf    := word | "quoted phrase" | field ":" value | field ":" "quoted value" | field ":*"

Leaves:

- ``word`` / ``"quoted phrase"`` -> `Text`: free text. A document matches when the words of the text occur, in
  order and next to each other, among the words of the document's string and number values (``event.original``,
  the raw record, excepted: its content is in the parsed fields). Words are maximal
  runs of letters, digits and ``_``, compared case-insensitively (so ``cmd.exe`` is the two-word phrase
  ``cmd exe``). A trailing ``*`` on a bare word (``powersh*``) makes its last word a prefix.
- ``field:value`` -> `FieldMatch`: the whole value of the dotted field equals ``value``, case-insensitively
  for strings; a number or boolean field matches its textual form (``winlog.event_id:4624``, ``flag:true``);
  for an array field, any element may match. ``field:val*`` is a prefix match on string values. A quoted value
  is taken literally (``process.name:"a b*"`` has no wildcard).
- ``field:*`` -> `FieldExists`: the field is present and not null.

`*` is a wildcard only at the end of a bare word; elsewhere it is an error. Inside a bare word a backslash
escapes whitespace and any of ``( ) " \ * :``; before any other character it is literal, so Windows paths need
no doubling (``process.executable:C:\Windows\cmd.exe``). Inside quotes, ``\"`` and ``\\`` are escapes.
Field names are dotted paths of letters, digits, ``_``, ``@`` and ``-`` (``host.name``, ``@timestamp``).

Precedence: NOT binds tighter than AND, AND tighter than OR; a query of only NOT (``NOT foo``) is allowed.
NOT of a field condition matches documents that lack the field.

Backends translate the AST, never the string. SQLite: FTS5 MATCH and SQL (`correlator.store.sqlite`).
Elasticsearch (planned): `Text` -> ``match_phrase`` / ``match_phrase_prefix`` on a catch-all text field whose
analyzer splits on ``[^\p{L}\p{N}_]+`` and lower-cases; `FieldMatch` -> ``term`` / ``prefix`` with
``case_insensitive: true`` on keyword fields; `FieldExists` -> ``exists``; `And` / `Or` / `Not` -> ``bool``
``filter`` / ``should`` (``minimum_should_match: 1``) / ``must_not``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from correlator.store.errors import QuerySyntaxError

__all__ = [
    "And",
    "FieldExists",
    "FieldMatch",
    "MatchAll",
    "Not",
    "Or",
    "Query",
    "Text",
    "is_field_name",
    "parse_number",
    "parse_query",
    "to_query_string",
]

MAX_DEPTH = 64

_FIELD_NAME = re.compile(r"[A-Za-z_@][A-Za-z0-9_@\-]*(?:\.[A-Za-z0-9_@\-]+)*")
_WORD_CHAR = re.compile(r"\w")
_OPERATORS = frozenset({"AND", "OR", "NOT"})
_BARE_ESCAPABLE = frozenset('()"\\*:')


@dataclass(frozen=True, slots=True)
class MatchAll:
    """The empty query: every document."""


@dataclass(frozen=True, slots=True)
class Text:
    """Free text: the words of `text` as a phrase; with `prefix`, the last word is a prefix."""

    text: str
    prefix: bool = False


@dataclass(frozen=True, slots=True)
class FieldMatch:
    """Exact (case-insensitive) value of a dotted field, or a prefix of it."""

    field: str
    value: str
    prefix: bool = False


@dataclass(frozen=True, slots=True)
class FieldExists:
    """The dotted field is present with a non-null value."""

    field: str


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Query, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Query, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Query


Query = MatchAll | Text | FieldMatch | FieldExists | And | Or | Not


def is_field_name(name: str) -> bool:
    """True for a dotted field name the language accepts (`host.name`, `@timestamp`)."""
    return _FIELD_NAME.fullmatch(name) is not None


def parse_query(query: str) -> Query:
    """Parse a query string; an empty or blank string is `MatchAll`. Raises `QuerySyntaxError`."""
    tokens = _tokenize(query)
    if not tokens:
        return MatchAll()
    return _Parser(query, tokens).parse()


def to_query_string(node: Query) -> str:
    """Render an AST back to query text; `parse_query(to_query_string(q)) == q` for any parsed `q`."""
    match node:
        case MatchAll():
            return ""
        case Text(text=text, prefix=True):
            return _escape_bare(text) + "*"
        case Text(text=text):
            return _render_literal(text, keyword_safe=True)
        case FieldExists(field=name):
            return f"{name}:*"
        case FieldMatch(field=name, value=value, prefix=True):
            return f"{name}:{_escape_bare(value)}*"
        case FieldMatch(field=name, value=value):
            return f"{name}:{_render_literal(value, keyword_safe=False)}"
        case And(items=items):
            return " AND ".join(_render_operand(item, (And, Or)) for item in items)
        case Or(items=items):
            return " OR ".join(_render_operand(item, Or) for item in items)
        case Not(item=item):
            return "NOT " + _render_operand(item, (And, Or))
    raise TypeError(f"not a query node: {node!r}")


# -- rendering -----------------------------------------------------------------------------------------------


def _render_operand(node: Query, wrap: type | tuple[type, ...]) -> str:
    text = to_query_string(node)
    return f"({text})" if isinstance(node, wrap) else text


def _escape_bare(text: str) -> str:
    return "".join("\\" + ch if ch in _BARE_ESCAPABLE or ch.isspace() else ch for ch in text)


def _render_literal(text: str, *, keyword_safe: bool) -> str:
    bare_ok = (
        text
        and not any(ch in _BARE_ESCAPABLE or ch.isspace() for ch in text)
        and not (keyword_safe and text in _OPERATORS)
    )
    if bare_ok:
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# -- tokens --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # "(" | ")" | "AND" | "OR" | "NOT" | "leaf"
    pos: int
    node: Query | None = None


@dataclass(frozen=True, slots=True)
class _Char:
    ch: str
    escaped: bool
    pos: int


def _tokenize(query: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(query)
    while i < n:
        ch = query[i]
        if ch.isspace():
            i += 1
        elif ch in "()":
            tokens.append(_Token(ch, i))
            i += 1
        elif ch == '"':
            text, end = _read_quoted(query, i)
            if not _WORD_CHAR.search(text):
                raise QuerySyntaxError(f"phrase {query[i:end]} has no letters or digits", query, i)
            tokens.append(_Token("leaf", i, Text(text)))
            i = end
        else:
            token, i = _read_bare(query, i)
            tokens.append(token)
    return tokens


def _read_quoted(query: str, start: int) -> tuple[str, int]:
    """The text of the quoted string opening at `start`, and the offset just past its closing quote."""
    buf: list[str] = []
    i, n = start + 1, len(query)
    while i < n:
        ch = query[i]
        if ch == "\\" and i + 1 < n and query[i + 1] in '"\\':
            buf.append(query[i + 1])
            i += 2
        elif ch == '"':
            return "".join(buf), i + 1
        else:
            buf.append(ch)
            i += 1
    raise QuerySyntaxError("unterminated quoted phrase", query, start)


def _read_bare(query: str, start: int) -> tuple[_Token, int]:
    chars: list[_Char] = []
    i, n = start, len(query)
    while i < n and not query[i].isspace() and query[i] not in '()"':
        if query[i] == "\\" and i + 1 < n and (query[i + 1] in _BARE_ESCAPABLE or query[i + 1].isspace()):
            chars.append(_Char(query[i + 1], True, i))
            i += 2
        else:
            chars.append(_Char(query[i], False, i))
            i += 1
    raw = query[start:i]
    if raw in _OPERATORS:
        return _Token(raw, start), i
    colon = next((k for k, c in enumerate(chars) if c.ch == ":" and not c.escaped), None)
    if colon is None:
        return _Token("leaf", start, _text_leaf(query, raw, chars)), i
    if colon == 0:
        raise QuerySyntaxError("missing field name before ':'", query, start)
    name = query[start : chars[colon].pos]
    if not is_field_name(name):
        reason = f"invalid field name {name!r} (quote the word to search it as text)"
        raise QuerySyntaxError(reason, query, start)
    value = chars[colon + 1 :]
    if value:
        return _Token("leaf", start, _value_leaf(query, name, value)), i
    if i < n and query[i] == '"':
        text, end = _read_quoted(query, i)
        return _Token("leaf", start, FieldMatch(name, text)), end
    raise QuerySyntaxError(f"missing value after '{name}:'", query, i)


def _split_wildcard(query: str, chars: list[_Char]) -> tuple[str, bool]:
    prefix = bool(chars) and chars[-1].ch == "*" and not chars[-1].escaped
    body = chars[:-1] if prefix else chars
    for c in body:
        if c.ch == "*" and not c.escaped:
            raise QuerySyntaxError("'*' is only allowed at the end of a word", query, c.pos)
    return "".join(c.ch for c in body), prefix


def _text_leaf(query: str, raw: str, chars: list[_Char]) -> Text:
    text, prefix = _split_wildcard(query, chars)
    if not _WORD_CHAR.search(text):
        raise QuerySyntaxError(f"term {raw!r} has no letters or digits", query, chars[0].pos)
    return Text(text, prefix)


def _value_leaf(query: str, name: str, chars: list[_Char]) -> FieldMatch | FieldExists:
    if len(chars) == 1 and chars[0].ch == "*" and not chars[0].escaped:
        return FieldExists(name)
    value, prefix = _split_wildcard(query, chars)
    return FieldMatch(name, value, prefix)


# -- parser --------------------------------------------------------------------------------------------------


class _Parser:
    """Recursive descent over the token list; every error names the token where parsing stopped."""

    def __init__(self, query: str, tokens: list[_Token]) -> None:
        self._query = query
        self._tokens = tokens
        self._i = 0

    def parse(self) -> Query:
        node = self._or(None, 0)
        token = self._peek()
        if token is not None:
            raise self._error(f"unexpected {_describe(token)}", token.pos)
        return node

    def _peek(self) -> _Token | None:
        return self._tokens[self._i] if self._i < len(self._tokens) else None

    def _next(self) -> _Token:
        token = self._tokens[self._i]
        self._i += 1
        return token

    def _error(self, reason: str, pos: int) -> QuerySyntaxError:
        return QuerySyntaxError(reason, self._query, pos)

    def _or(self, after: _Token | None, depth: int) -> Query:
        items = [self._and(after, depth)]
        while (token := self._peek()) is not None and token.kind == "OR":
            items.append(self._and(self._next(), depth))
        return items[0] if len(items) == 1 else Or(tuple(items))

    def _and(self, after: _Token | None, depth: int) -> Query:
        items = [self._unary(after, depth)]
        while (token := self._peek()) is not None and token.kind not in (")", "OR"):
            operator = self._next() if token.kind == "AND" else None
            items.append(self._unary(operator, depth))
        return items[0] if len(items) == 1 else And(tuple(items))

    def _unary(self, after: _Token | None, depth: int) -> Query:
        if depth > MAX_DEPTH:
            token = self._peek()
            raise self._error("query is nested too deeply", token.pos if token else len(self._query))
        token = self._peek()
        if token is None:
            expected = f"expected a term after {_describe(after)}" if after else "expected a term"
            raise self._error(expected, len(self._query))
        if token.kind == "leaf":
            self._next()
            assert token.node is not None
            return token.node
        if token.kind == "NOT":
            return Not(self._unary(self._next(), depth + 1))
        if token.kind == "(":
            opening = self._next()
            closing = self._peek()
            if closing is None:
                raise self._error("unclosed '('", opening.pos)
            if closing.kind == ")":
                raise self._error("empty parentheses", opening.pos)
            node = self._or(opening, depth + 1)
            closing = self._peek()
            if closing is None or closing.kind != ")":
                raise self._error("unclosed '('", opening.pos)
            self._next()
            return node
        if after is not None:
            reason = f"expected a term after {_describe(after)}, found {_describe(token)}"
            raise self._error(reason, token.pos)
        raise self._error(f"unexpected {_describe(token)}", token.pos)


def _describe(token: _Token) -> str:
    return "a term" if token.kind == "leaf" else f"'{token.kind}'"


def parse_number(value: str) -> int | float | None:
    """The number a `field:value` text stands for (``4242``, ``4.5``, ``1e3``), or None; never NaN or infinity."""
    try:
        return int(value)
    except ValueError:
        pass
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
