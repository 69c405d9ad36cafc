"""The collector error hierarchy: one root, every error says where it came from."""

from __future__ import annotations

from pathlib import Path

import pytest

from collectors.errors import (
    CollectorError,
    EmptySourceError,
    NormalisationError,
    SourceReadError,
    UnknownFormatError,
    UnsupportedFormatError,
)
from correlator.model import EventOrigin


@pytest.mark.parametrize(
    "error_type",
    [SourceReadError, UnknownFormatError, EmptySourceError, UnsupportedFormatError, NormalisationError],
    ids=lambda t: t.__name__,
)
def test_every_error_is_a_collector_error(error_type: type[CollectorError]) -> None:
    error = error_type("boom", path=Path("logs/a.json"))
    assert isinstance(error, CollectorError)
    assert str(error) == "logs/a.json: boom"


def test_message_names_line_or_record() -> None:
    assert str(CollectorError("bad", path="a.json", offset=12)) == "a.json:12: bad"
    assert str(CollectorError("bad", path="a.evtx", offset=4096, record_id=77)) == "a.evtx#record=77: bad"
    assert str(CollectorError("bad")) == "bad"


def test_at_origin_copies_the_location() -> None:
    error = NormalisationError.at(EventOrigin(path="s.json", offset=3, format="json"), "no EventID")
    assert isinstance(error, NormalisationError)
    assert (error.reason, error.path, error.offset, error.record_id) == ("no EventID", "s.json", 3, None)
    assert error.where() == "s.json:3"


def test_unsupported_format_is_also_a_value_error() -> None:
    assert issubclass(UnsupportedFormatError, ValueError)
    assert issubclass(EmptySourceError, UnknownFormatError)
