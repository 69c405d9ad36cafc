"""The free text of stored documents (`document_text`): the native walk (correlator/native) gives the Python
function's text for every shape of document, on the shared EVTX corpus too, and leaves the shapes it does not
walk itself to Python. Also `ms_to_iso`'s cached formatting against `datetime`, and the free text the SQLite
store indexes for each new row."""

from __future__ import annotations

import enum
import math
import random
from collections import OrderedDict, namedtuple
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from collectors.files import read_path
from correlator.accel import native_available
from correlator.model import Event, ms_to_iso
from correlator.store.documents import document_text, python_document_text
from correlator.store.sqlite import SqliteStore
from tests.correlator.store.test_contract import T0, build_event

NOT_BUILT = "the native extension (correlator/native) is not built"
needs_native = pytest.mark.skipif(not native_available(), reason=NOT_BUILT)


def native_text(doc: Any) -> str | None:
    from correlator._native import document_text as native

    found: str | None = native(doc)
    return found


class Level(enum.IntEnum):
    HIGH = 3


class Kind(enum.StrEnum):
    ALERT = "alert"


class Named:
    def __str__(self) -> str:
        return "named ✓"


Point = namedtuple("Point", "x y")  # a tuple subclass


class Items(list[Any]):
    def __iter__(self) -> Iterator[Any]:
        return list.__reversed__(self)


def moved() -> OrderedDict[str, Any]:
    ordered = OrderedDict(a="first", b="second", c="third")
    ordered.move_to_end("a")  # the OrderedDict's order, not its underlying dict's
    return ordered


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for level in range(depth):
        value = {"level": level, "inner": [value]}
    return value


# -- the native walk: the same text as Python's -------------------------------------------------------------

SHAPES: dict[str, Any] = {
    "flat": {"message": "hello", "count": 3, "ok": True, "none": None},
    "nested": {"a": {"b": {"c": ["x", 1, {"d": "y"}]}}, "e": "z"},
    "keys are not text": {"key": "value", "other key": 2},
    "unicode": {"m": "naïve café — 日本語 🛡️", "combining": "e\u0301", "rtl": "שלום"},
    "lone surrogate": {"m": "bad \ud800 half", "n": ["\udfff"]},
    "control characters": {"m": "tab\tnewline\nnul\x00end"},
    "empty string": {"m": "", "n": [""]},
    "big ints": {"a": 2**63, "b": -(2**64) - 1, "c": 10**40, "d": [0, -1, 2**62]},
    "floats": {"f": [0.1, 1e-7, 1e-5, 1e-4, 1e16, 1e15, 1e22, 1.5, -0.0, 0.0, 5e-324, 1.7976931348623157e308,
                     123456789.123, 2.5e-10, 1 / 3]},
    "nan and inf": {"f": [math.nan, math.inf, -math.inf]},
    "booleans and None skipped": {"a": True, "b": False, "c": None, "d": [True, None, "kept"]},
    "tuples": {"t": ("a", 1, ("b", 2.5)), "u": ()},
    "empty": {},
    "empty containers": {"a": {}, "b": [], "c": (), "d": {"e": {}}},
    "a list": ["a", 1, {"b": 2}],
    "a string": "just text",
    "a number": 42,
    "a float": 0.1,
    "None": None,
    "True": True,
    "enum members": {"level": Level.HIGH, "kind": Kind.ALERT},
    "other objects": {"d": Decimal("1.10"), "t": datetime(2024, 2, 29, 12, tzinfo=UTC), "o": Named(),
                      "b": b"bytes", "s": frozenset({"only"}), "c": 1 + 2j},
    "event.original skipped": {"@timestamp": "2024-01-01T00:00:00.000Z",
                               "event": {"code": "4688", "original": "raw record", "id": "abc"},
                               "message": "m", "process": {"pid": 4}},
    "event.original first": {"event": {"original": "raw", "id": "x"}, "m": "y"},
    "event.original alone": {"event": {"original": "raw"}},
    "event.original None": {"event": {"original": None, "code": 1}},
    "event without original": {"event": {"code": "4688", "id": "abc"}, "m": "text"},
    "event not a dict": {"event": "an agent's own event string", "m": 1},
    "event a list": {"event": [{"original": "kept: not the top-level event object"}]},
    "original nested deeper": {"process": {"event": {"original": "kept"}}},
    "original in a top-level list": [{"event": {"original": "kept"}}],
    "non-string keys": {1: "one", (2, 3): "tuple key", None: "none key", "event": {5: "five", "original": "x"}},
    "deep but walked": nested(120),  # 240 containers deep
}


@needs_native
@pytest.mark.parametrize("doc", SHAPES.values(), ids=SHAPES.keys())
def test_native_text_is_pythons(doc: Any) -> None:
    assert native_text(doc) == python_document_text(doc)


def test_event_original_is_left_out() -> None:
    doc = SHAPES["event.original skipped"]
    assert python_document_text(doc) == "2024-01-01T00:00:00.000Z\n4688\nabc\nm\n4"
    assert document_text(doc) == python_document_text(doc)


def test_python_str_formats_numbers() -> None:
    assert python_document_text(SHAPES["floats"]).splitlines()[:5] == ["0.1", "1e-07", "1e-05", "0.0001", "1e+16"]
    assert python_document_text(SHAPES["nan and inf"]) == "nan\ninf\n-inf"


# Subclasses of dict, list and tuple can iterate in their own way, and deep documents meet Python's recursion
# limit: the native walk leaves them to Python, and `document_text` gives Python's text.
LEFT_TO_PYTHON: dict[str, Any] = {
    "ordered dict moved": {"m": moved()},
    "ordered dict at the top": moved(),
    "dict subclass event": {"event": OrderedDict(original="raw", id="x"), "m": "y"},
    "list subclass iterating its own way": {"m": Items(["a", "b", "c"])},
    "namedtuple": {"p": Point(1, "two")},
    "deeper than the native walk": nested(200),  # 400 containers deep
}


@needs_native
@pytest.mark.parametrize("doc", LEFT_TO_PYTHON.values(), ids=LEFT_TO_PYTHON.keys())
def test_unusual_documents_are_left_to_python(doc: Any) -> None:
    assert native_text(doc) is None
    assert document_text(doc) == python_document_text(doc)


def test_an_ordered_dict_keeps_its_order() -> None:
    assert document_text({"m": moved()}) == "second\nthird\nfirst"
    assert document_text({"m": Items(["a", "b", "c"])}) == "c\nb\na"


@pytest.mark.parametrize("native", [True, False], ids=["native", "python"])
def test_socctl_native_0_walks_in_python(monkeypatch: pytest.MonkeyPatch, native_setting: Callable[[bool], None],
                                         native: bool) -> None:
    if native and not native_available():
        pytest.skip(NOT_BUILT)
    native_setting(native)
    calls: list[Any] = []

    def python(doc: Any) -> str:
        calls.append(doc)
        return "python"

    monkeypatch.setattr("correlator.store.documents.python_document_text", python)
    assert document_text({"m": "text"}) == ("text" if native else "python")
    assert calls == ([] if native else [{"m": "text"}])


class Unprintable:
    def __str__(self) -> str:
        raise ValueError("no text for this one")


def self_containing() -> list[Any]:
    loop: list[Any] = ["a"]
    loop.append(loop)
    return loop


ERRORS: dict[str, tuple[Any, type[Exception], str]] = {
    "str() raises": ({"a": "ok", "b": Unprintable()}, ValueError, "no text for this one"),
    "an int too long for str()": ({"n": 10**5000}, ValueError, "Exceeds the limit"),
    "a list containing itself": ({"loop": self_containing()}, RecursionError, "recursion"),
}


@pytest.mark.parametrize(("doc", "error", "message"), ERRORS.values(), ids=ERRORS.keys())
def test_errors_are_pythons(doc: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        python_document_text(doc)
    with pytest.raises(error, match=message):
        document_text(doc)


SCALARS: tuple[Any, ...] = (
    "", "text", "naïve", "日本", "🛡️", "a\nb", "\ud800", 0, -1, 7, 2**63, -(2**70), 0.1, 1e-7, -0.0, 1e16,
    math.nan, math.inf, True, False, None, Level.HIGH, Kind.ALERT,
)
KEYS = ("event", "original", "message", "id", "host", "a", "b", "é")


def random_value(rng: random.Random, depth: int) -> Any:
    roll = rng.random()
    if depth < 5 and roll < 0.2:
        return {rng.choice(KEYS) + str(rng.randrange(3)): random_value(rng, depth + 1)
                for _ in range(rng.randrange(5))}
    if depth < 5 and roll < 0.35:
        items = [random_value(rng, depth + 1) for _ in range(rng.randrange(5))]
        return tuple(items) if roll < 0.25 else items
    if roll < 0.5:
        return rng.choice((rng.uniform(-1e6, 1e6), rng.random() * 10.0 ** rng.randrange(-30, 30),
                           rng.randrange(-(2**80), 2**80), rng.randrange(-100, 100)))
    return rng.choice(SCALARS)


def random_document(rng: random.Random) -> dict[str, Any]:
    doc = {rng.choice(KEYS): random_value(rng, 1) for _ in range(rng.randrange(1, 8))}
    if rng.random() < 0.6:
        event = {rng.choice(KEYS): random_value(rng, 2) for _ in range(rng.randrange(4))}
        event["original"] = rng.choice(SCALARS)
        doc["event"] = event
    return doc


@needs_native
def test_native_text_is_pythons_on_random_documents() -> None:
    rng = random.Random(20240229)
    documents = [random_document(rng) for _ in range(2_000)]
    differing = [doc for doc in documents if native_text(doc) != python_document_text(doc)]
    assert not differing, f"{len(differing)} of {len(documents)} differ, first: {differing[0]!r}"


@needs_native
@pytest.mark.corpus
def test_native_text_is_pythons_on_the_evtx_corpus(shared_path: Callable[[str], Path]) -> None:
    files = sorted(shared_path("evtx").rglob("*.evtx"))
    assert files
    count = 0
    differing: list[str] = []
    for path in files:
        for item in read_path(path):
            if not isinstance(item, Event):
                continue
            for doc in (item.to_document(), item.to_document(with_original=False)):
                count += 1
                if native_text(doc) != python_document_text(doc):
                    differing.append(f"{item.origin.describe()} (with_original={'original' in doc['event']})")
    assert count > 1_000
    assert not differing, f"{len(differing)} of {count} documents differ:\n" + "\n".join(differing[:20])


@needs_native
@pytest.mark.parametrize("path", sorted(Path("samples").rglob("*.json")), ids=str)
def test_native_text_is_pythons_on_the_samples(path: Path) -> None:
    documents = [item.to_document() for item in read_path(path) if isinstance(item, Event)]
    assert documents
    assert [native_text(doc) for doc in documents] == [python_document_text(doc) for doc in documents]


# -- ms_to_iso: cached, the same text as datetime -----------------------------------------------------------

def iso_by_datetime(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


MAX_MS = 253_402_300_800_000


@pytest.mark.parametrize("ms", [
    0, 1, 999, 1_000, 59_999, 60_000, 86_399_999, 86_400_000, T0, T0 + 999,
    1_709_164_800_000,  # 2024-02-29T00:00:00Z
    951_782_400_000,  # 2000-02-29T00:00:00Z
    MAX_MS - 1, -1, -1_000, -86_400_001,
], ids=str)
def test_ms_to_iso_is_datetimes(ms: int) -> None:
    assert ms_to_iso(ms) == iso_by_datetime(ms)
    assert ms_to_iso(ms) == iso_by_datetime(ms)  # from the cache


def test_ms_to_iso_over_many_times() -> None:
    rng = random.Random(7)
    times = [T0 + i * 37 for i in range(10_000)]  # bursts within a second, more seconds than the cache keeps
    times += [rng.randrange(0, MAX_MS) for _ in range(10_000)]
    times += [rng.randrange(1_400_000_000_000, 1_800_000_000_000) for _ in range(10_000)]
    assert [ms_to_iso(ms) for ms in times] == [iso_by_datetime(ms) for ms in times]


def test_ms_to_iso_refuses_what_datetime_refuses() -> None:
    with pytest.raises(ValueError, match="Unknown format code 'd'"):
        ms_to_iso(1.5)  # type: ignore[arg-type]
    for ms in (MAX_MS, MAX_MS + 1_000):
        with pytest.raises(ValueError, match="year 10000 is out of range"):
            iso_by_datetime(ms)
        with pytest.raises(ValueError, match="year 10000 is out of range"):
            ms_to_iso(ms)


# -- the SQLite store indexes each new row's own text ----------------------------------------------------------

@pytest.mark.parametrize("native", [True, False], ids=["native", "python"])
def test_each_new_row_is_indexed_with_its_own_text(native_setting: Callable[[bool], None], tmp_path: Path,
                                                    native: bool) -> None:
    if native and not native_available():
        pytest.skip(NOT_BUILT)
    native_setting(native)
    events = [build_event(f"word{i} shared", ts=T0 + i) for i in range(8)]
    with SqliteStore(tmp_path / "socctl.db") as store:
        assert store.write_events(events[:3]).written == 3  # every record new
        # Stored ones, a duplicate within the batch and new ones mixed: the rows are read back.
        result = store.write_events([events[1], events[3], events[3], events[4], events[0], events[5]])
        assert (result.written, result.duplicates) == (3, 3)
        assert store.write_events(events[6:]).written == 2
        for i, event in enumerate(events):
            hits = store.search("events", f"word{i}").hits
            assert [hit["event"]["id"] for hit in hits] == [event.id]
        assert store.count("events", "shared") == 8
        assert store.count("events", str(T0 + 1)) == 0  # only in event.original, which is not indexed
