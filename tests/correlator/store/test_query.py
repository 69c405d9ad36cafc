"""The store query language: parsing to the AST, rendering back, and syntax errors with their position."""

from __future__ import annotations

import pytest

from correlator.store.errors import QuerySyntaxError, StoreError
from correlator.store.query import (
    MAX_DEPTH,
    And,
    FieldExists,
    FieldMatch,
    MatchAll,
    Not,
    Or,
    Query,
    Text,
    is_field_name,
    parse_query,
    to_query_string,
)

PARSE_CASES: list[tuple[str, Query]] = [
    ("", MatchAll()),
    ("   ", MatchAll()),
    ("powershell", Text("powershell")),
    ("powersh*", Text("powersh", prefix=True)),
    ("cmd.exe", Text("cmd.exe")),
    ('"failed to log on"', Text("failed to log on")),
    ('"say \\"hi\\" \\\\ bye"', Text('say "hi" \\ bye')),
    ('"a*b"', Text("a*b")),
    ("and or not", And((Text("and"), Text("or"), Text("not")))),
    ('"AND"', Text("AND")),
    ("host.name:ws-01", FieldMatch("host.name", "ws-01")),
    ("host.name:ws-*", FieldMatch("host.name", "ws-", prefix=True)),
    ('message:"An account failed*"', FieldMatch("message", "An account failed*")),
    ('message:""', FieldMatch("message", "")),
    ("source.ip:*", FieldExists("source.ip")),
    ("@timestamp:2024", FieldMatch("@timestamp", "2024")),
    ("url.full:http://x/y", FieldMatch("url.full", "http://x/y")),
    ("process.executable:C:\\Windows\\cmd.exe", FieldMatch("process.executable", "C:\\Windows\\cmd.exe")),
    ("file.name:a\\*b\\ c", FieldMatch("file.name", "a*b c")),
    ("file.name:\\*", FieldMatch("file.name", "*")),
    ("a\\:b", Text("a:b")),
    ("a b", And((Text("a"), Text("b")))),
    ("a AND b", And((Text("a"), Text("b")))),
    ("a OR b c", Or((Text("a"), And((Text("b"), Text("c")))))),
    ("(a OR b) c", And((Or((Text("a"), Text("b"))), Text("c")))),
    ("NOT a b", And((Not(Text("a")), Text("b")))),
    ("NOT (a OR b)", Not(Or((Text("a"), Text("b"))))),
    ("NOT NOT a", Not(Not(Text("a")))),
    ("a OR b OR c", Or((Text("a"), Text("b"), Text("c")))),
    ("a AND (b AND c)", And((Text("a"), And((Text("b"), Text("c")))))),
    ('"10.0.0.5:443"', Text("10.0.0.5:443")),
    ("x:1 AND(y:2)", And((FieldMatch("x", "1"), FieldMatch("y", "2")))),
]


@pytest.mark.parametrize(("query", "expected"), PARSE_CASES, ids=[case[0] or "<empty>" for case in PARSE_CASES])
def test_parse(query: str, expected: Query) -> None:
    assert parse_query(query) == expected


@pytest.mark.parametrize(("query", "expected"), PARSE_CASES, ids=[case[0] or "<empty>" for case in PARSE_CASES])
def test_render_round_trips(query: str, expected: Query) -> None:
    rendered = to_query_string(expected)
    assert parse_query(rendered) == expected


@pytest.mark.parametrize(
    ("node", "text"),
    [
        (And((Or((Text("a"), Text("b"))), Not(FieldExists("f")))), "(a OR b) AND NOT f:*"),
        (Or((And((Text("a"), Text("b"))), Text("c"))), "a AND b OR c"),
        (Text("two words"), '"two words"'),
        (Text("two words", prefix=True), "two\\ words*"),
        (FieldMatch("f", "a*"), 'f:"a*"'),
        (FieldMatch("f", "C:\\x", prefix=True), "f:C\\:\\\\x*"),
        (Not(And((Text("a"), Text("b")))), "NOT (a AND b)"),
    ],
    ids=["and-or", "or-and", "phrase", "prefix-phrase", "literal-star", "escaped-prefix", "not-group"],
)
def test_render(node: Query, text: str) -> None:
    assert to_query_string(node) == text
    assert parse_query(text) == node


ERROR_CASES = [
    ("a AND", "expected a term after 'AND'", 5),
    ("AND a", "unexpected 'AND'", 0),
    ("a OR OR b", "expected a term after 'OR', found 'OR'", 5),
    ("a AND )", "expected a term after 'AND', found ')'", 6),
    ("NOT", "expected a term after 'NOT'", 3),
    ("(a", "unclosed '('", 0),
    ("x (a OR b", "unclosed '('", 2),
    ("()", "empty parentheses", 0),
    ("a )", "unexpected ')'", 2),
    ('say "hello', "unterminated quoted phrase", 4),
    ('f:"x', "unterminated quoted phrase", 2),
    (":x", "missing field name before ':'", 0),
    ("host.name:", "missing value after 'host.name:'", 10),
    ("host.name: x", "missing value after 'host.name:'", 10),
    ("bad..name:x", "invalid field name 'bad..name' (quote the word to search it as text)", 0),
    ("10.0.0.5:443", "invalid field name '10.0.0.5' (quote the word to search it as text)", 0),
    ("a*b", "'*' is only allowed at the end of a word", 1),
    ("f:a*b*", "'*' is only allowed at the end of a word", 3),
    ("a -", "term '-' has no letters or digits", 2),
    ("*", "term '*' has no letters or digits", 0),
    ('"--"', "phrase \"--\" has no letters or digits", 0),
]


@pytest.mark.parametrize(("query", "reason", "position"), ERROR_CASES, ids=[case[0] for case in ERROR_CASES])
def test_syntax_errors(query: str, reason: str, position: int) -> None:
    with pytest.raises(QuerySyntaxError) as info:
        parse_query(query)
    error = info.value
    assert (error.reason, error.position, error.query) == (reason, position, query)
    assert str(error) == f"{reason} at column {position + 1}: {query!r}"
    assert isinstance(error, StoreError)


def test_error_message_names_the_column() -> None:
    with pytest.raises(QuerySyntaxError) as info:
        parse_query("host.name:x AND (a")
    assert str(info.value) == "unclosed '(' at column 17: 'host.name:x AND (a'"
    assert info.value.column == 17


def test_nesting_is_bounded() -> None:
    deep = "(" * (MAX_DEPTH + 2) + "a" + ")" * (MAX_DEPTH + 2)
    with pytest.raises(QuerySyntaxError) as info:
        parse_query(deep)
    assert info.value.reason == "query is nested too deeply"
    assert parse_query("(" * MAX_DEPTH + "a" + ")" * MAX_DEPTH) == Text("a")


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("host.name", True),
        ("@timestamp", True),
        ("winlog.event_data.Some-Field", True),
        ("_id", True),
        ("a..b", False),
        (".a", False),
        ("a.", False),
        ("1abc", False),
        ("a b", False),
        ('a"b', False),
    ],
)
def test_field_names(name: str, valid: bool) -> None:
    assert is_field_name(name) is valid
