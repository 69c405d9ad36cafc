"""Line splitting with carry-over: complete lines, the incomplete rest, cut oversized lines, final flush."""

from __future__ import annotations

import pytest

from collectors.tail_lines import Piece, split_lines


@pytest.mark.parametrize(("buffer", "lines", "consumed"), [
    (b"a\nbb\n", [b"a", b"bb"], 5),
    (b"a\nbb", [b"a"], 2),
    (b"a\r\nb\r\n", [b"a", b"b"], 6),
    (b"\n\n  \nx\n", [b"", b"", b"  ", b"x"], 7),
    (b"", [], 0),
    (b"no end yet", [], 0),
], ids=["complete", "carry-over", "crlf", "blank-lines-kept", "empty", "no-newline"])
def test_split_lines(buffer: bytes, lines: list[bytes], consumed: int) -> None:
    got = split_lines(buffer)
    assert [piece.data for piece in got.lines] == lines
    assert (got.consumed, got.skipping) == (consumed, False)
    assert buffer[got.consumed:] == buffer[consumed:]


def test_pieces_know_where_they_start_and_end() -> None:
    assert split_lines(b"ab\r\ncd\n").lines == [Piece(b"ab", 0, 4), Piece(b"cd", 4, 7)]


def test_carry_over_joins_a_line_split_across_reads() -> None:
    first = split_lines(b"one\ntw")
    rest = b"one\ntw"[first.consumed:]
    second = split_lines(rest + b"o\nthr")
    assert [p.data for p in first.lines + second.lines] == [b"one", b"two"]
    assert (rest + b"o\nthr")[second.consumed:] == b"thr"


def test_final_hands_on_the_unterminated_last_line_as_partial() -> None:
    got = split_lines(b"a\nlast words\r", final=True)
    assert got.lines == [Piece(b"a", 0, 2), Piece(b"last words", 2, 13, partial=True)]
    assert got.consumed == 13


def test_a_long_line_with_its_end_is_cut_and_flagged() -> None:
    got = split_lines(b"x" * 10 + b"\nok\n", max_line=4)
    assert got.lines == [Piece(b"xxxx", 0, 11, cut=True), Piece(b"ok", 11, 14)]
    assert (got.consumed, got.skipping) == (14, False)


def test_a_long_line_without_its_end_is_cut_and_the_rest_skipped_later() -> None:
    got = split_lines(b"ok\n" + b"y" * 10, max_line=4)
    assert got.lines == [Piece(b"ok", 0, 3), Piece(b"yyyy", 3, 13, cut=True)]
    assert (got.consumed, got.skipping) == (13, True)
    more = split_lines(b"yyy", max_line=4, skipping=True)
    assert (more.lines, more.consumed, more.skipping) == ([], 3, True)
    end = split_lines(b"yy\nnext\n", max_line=4, skipping=True)
    assert (end.lines, end.consumed, end.skipping) == ([Piece(b"next", 3, 8)], 8, False)


def test_a_line_at_the_limit_waits_for_its_crlf() -> None:
    got = split_lines(b"abcd\r", max_line=4)
    assert (got.lines, got.consumed) == ([], 0)
    assert split_lines(b"abcd\r\n", max_line=4).lines == [Piece(b"abcd", 0, 6)]


def test_max_line_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_line must be at least 1, got 0"):
        split_lines(b"a\n", max_line=0)
