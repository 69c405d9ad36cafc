"""ReDoS protection: each regex gets the cheapest engine that is provably safe for it."""

from __future__ import annotations

import time

import pytest

from correlator.errors import UnsafeRegexError
from correlator.sigma.safe_regex import compile_search, compile_search_with_engine, is_simple


@pytest.mark.parametrize(
    ("pattern", "engine"),
    [
        ("abc", "re"),
        ("a.*b", "re"),
        ("(?<=x)y", "re"),
        ("(a|aa)+$", "re2"),
        ("(a+)+$", "re2"),
        ("a.*b.*c", "re2"),
        ("(a)\\1", "regex-budget"),
        ("(?<=a.*)b", "regex-budget"),
    ],
)
def test_engine_choice(pattern, engine):
    assert compile_search_with_engine(pattern)[1] == engine


@pytest.mark.parametrize("pattern", ["(a+)+$", "(a|aa)+$", "(a*)*b", "(x+x+)+y"])
def test_catastrophic_patterns_finish_fast(pattern):
    search = compile_search(pattern)
    started = time.perf_counter()
    assert not search("a" * 20000 + "!")
    assert time.perf_counter() - started < 1.0


def test_flags():
    assert compile_search("abc", "i")("xABCx")
    assert not compile_search("abc")("xABCx")
    assert compile_search("^b$", "m")("a\nb\nc")
    assert compile_search("a.c", "s")("a\nc")
    assert compile_search("a.*c.*e", "i")("A\nC E") is False
    assert compile_search("a.*c.*e", "is")("A\nC E")


def test_invalid_pattern_names_the_pattern():
    with pytest.raises(UnsafeRegexError, match=r"regular expression 'a\(b' cannot be compiled"):
        compile_search("a(b")


def test_is_simple():
    assert is_simple("foo[a-z]+bar")
    assert not is_simple("foo.*bar.*baz")
    assert not is_simple("(ab+)+")
